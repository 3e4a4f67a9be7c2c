// Package sms sends short text messages: the one-time codes of the "sms"
// second factor (R17). A Sender delivers one message; the Worker moves
// messages from a persistent Queue to a Sender with retries, as the mail
// worker does for mail.
//
// # Threat model
//
// A text message is the weakest second factor kluis offers: the network
// operator, the SMS gateway and anyone who takes over the number (a SIM swap,
// a ported number, malware on the phone) can read the code. This package
// keeps the rest of kluis from adding to that:
//
//   - Codes are six random digits from crypto/rand (NewCode).
//   - Phone numbers and texts never appear in errors or log lines of this
//     package; log lines name the queue id only. A Sender must keep to the
//     same rule (its errors are logged).
//   - The gateway's token comes from the environment, is sent only as a
//     bearer token over the configured URL and is never logged.
//   - Delivery is at least once: a message whose send failed is retried
//     until its code lapses; the queue drops it then (the code is useless).
//
// What the package does not do: decide who may receive a code, how many,
// or check one. The storage layer does (rate limits, single use, expiry,
// the shared lock on wrong codes).
package sms

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// Sender delivers one text message.
//
// Implementations must keep the number, the text and credentials out of
// their errors and log lines: the Worker logs the errors.
type Sender interface {
	// Send hands text over for delivery to the E.164 number to. It
	// returns once the gateway accepted the message, or an error; it
	// honours ctx. An error means the message may be tried again.
	Send(ctx context.Context, to, text string) error
}

// Both senders of this package fit.
var (
	_ Sender = (*Outbox)(nil)
	_ Sender = (*HTTPProvider)(nil)
)

// CodeDigits is how many digits a code has.
const CodeDigits = 6

// NewCode returns a code of CodeDigits random decimal digits.
func NewCode() string {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		panic("sms: crypto/rand failed: " + err.Error())
	}
	return fmt.Sprintf("%06d", n.Int64())
}

// NormalizeCode removes what people type around a code: spaces, dashes.
func NormalizeCode(code string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '\u00a0', '\t':
			return -1
		}
		return r
	}, code)
}

// ErrNumber is returned by ParseNumber for anything that is not an
// international number.
var ErrNumber = errors.New("must be an international number starting with + and the country code, such as +31 6 12345678")

// ParseNumber returns the E.164 form of a phone number as people type it:
// spaces, dashes, dots and brackets are removed; what is left must be "+",
// a country code not starting with 0, and at most 15 digits in all (at
// least 8). A leading "00" stands for "+". Errors: ErrNumber, which never
// repeats the number.
func ParseNumber(s string) (string, error) {
	n := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '.', '(', ')', '/', '\u00a0', '\t':
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if strings.HasPrefix(n, "00") {
		n = "+" + n[2:]
	}
	digits, ok := strings.CutPrefix(n, "+")
	if !ok || len(digits) < 8 || len(digits) > 15 || digits[0] == '0' ||
		strings.ContainsFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) {
		return "", ErrNumber
	}
	return n, nil
}

// Mask shows an E.164 number with all but its country code's first digit
// and its last two digits hidden, for pages that remind a person which
// number a code went to: +31612345678 becomes +3*********78.
func Mask(number string) string {
	if len(number) < 5 {
		return strings.Repeat("*", len(number))
	}
	return number[:2] + strings.Repeat("*", len(number)-4) + number[len(number)-2:]
}

// CodeText is the text of a message that carries a code, in the language
// lang ("en" or "nl"). host, when not empty, is the site's host name: the
// last line is then "@host #code", the origin-bound format that lets a
// browser offer the code only on that site (WebOTP).
func CodeText(lang, code, host string) string {
	var b strings.Builder
	switch lang {
	case "nl":
		fmt.Fprintf(&b, "Je kluis-code is %s. Hij werkt één keer, 5 minuten. Geef hem aan niemand, ook niet aan wie zegt van kluis te zijn.", code)
	default:
		fmt.Fprintf(&b, "Your kluis code is %s. It works once, for 5 minutes. Never give it to anyone, even someone who says they are from kluis.", code)
	}
	if host != "" {
		fmt.Fprintf(&b, "\n\n@%s #%s", host, code)
	}
	return b.String()
}
