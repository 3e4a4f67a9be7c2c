// Package mfa holds kluis's second factors that need no outside service:
// TOTP (RFC 6238) for authenticator apps and single-use recovery codes. It is
// a leaf library: secrets come in and go out as values; the store keeps them
// sealed under the user's key and remembers the last time step used.
//
// Threat model: a code seen by someone else (over a shoulder, in a phishing
// page relayed at once) is worth one login at most: every code, including the
// one that confirmed enrolment, is accepted once, because a step may only be
// used if it is later than the last one used. A stolen database alone gives
// neither the TOTP secret (sealed) nor the recovery codes (only HMACs under
// a key kept apart from the data).
package mfa

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"image/png"
	"net/url"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters (R17): SHA-1, 6 digits, 30-second steps, one step of skew
// either way — what every authenticator app speaks.
const (
	Period = 30 * time.Second
	Digits = 6
	Skew   = 1
)

var validateOpts = totp.ValidateOpts{Period: uint(Period / time.Second), Skew: 0, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// NewTOTP makes a new random secret (160 bits) and its otpauth:// URL for an
// authenticator app, labelled issuer:account.
func NewTOTP(issuer, account string) (secret, url string, err error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: issuer, AccountName: account, Period: uint(Period / time.Second),
		SecretSize: 20, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		return "", "", errors.New("mfa: no new TOTP secret")
	}
	return key.Secret(), URL(issuer, account, key.Secret()), nil
}

// Step is the TOTP time step of t.
func Step(t time.Time) int64 { return t.Unix() / int64(Period/time.Second) }

// VerifyTOTP checks code against the secret at t, one step either way, and
// accepts only a step later than lastStep (each code works once). It returns
// the step the code belongs to.
func VerifyTOTP(secret, code string, t time.Time, lastStep int64) (int64, bool) {
	code = strings.TrimSpace(code)
	if len(code) != Digits {
		return 0, false
	}
	now := Step(t)
	for step := now - Skew; step <= now+Skew; step++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*int64(Period/time.Second), 0), validateOpts)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, step > lastStep
		}
	}
	return 0, false
}

// errQRCode never carries the URL, which holds the secret.
var errQRCode = errors.New("mfa: the QR code could not be made")

// QRCode returns a PNG of the otpauth:// URL for an app to scan. Its error
// never contains the URL (it holds the secret).
func QRCode(url string) ([]byte, error) {
	key, err := otp.NewKeyFromURL(url)
	if err != nil {
		return nil, errQRCode
	}
	img, err := key.Image(240, 240)
	if err != nil {
		return nil, errQRCode
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// RecoveryCodes is how many recovery codes a person gets.
const RecoveryCodes = 10

var recoveryEncoding = base32.NewEncoding("abcdefghijkmnpqrstuvwxyz23456789").WithPadding(base32.NoPadding)

// NewRecoveryCodes returns n random codes of 50 bits each, written as
// "xxxxx-xxxxx" in an alphabet without look-alikes (no l, o, 0, 1).
func NewRecoveryCodes(n int) []string {
	out := make([]string, n)
	for i := range out {
		var b [7]byte
		if _, err := rand.Read(b[:]); err != nil {
			panic("mfa: crypto/rand failed: " + err.Error())
		}
		s := recoveryEncoding.EncodeToString(b[:])[:10]
		out[i] = s[:5] + "-" + s[5:]
	}
	return out
}

// NormalizeRecoveryCode is the form of a recovery code the store keys and
// compares: lower case, without spaces and dashes, so that a code typed as
// "ABCDE FGHIJ" matches. The store keeps only a keyed hash of it (an HMAC
// under a key kept apart from the data), so a copy of the database alone
// cannot be searched for the codes.
func NormalizeRecoveryCode(code string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '\t':
			return -1
		}
		return r
	}, strings.ToLower(strings.TrimSpace(code)))
}

// URL returns the otpauth:// URL of a secret, labelled issuer:account.
func URL(issuer, account, secret string) string {
	v := url.Values{}
	v.Set("secret", secret)
	v.Set("issuer", issuer)
	v.Set("algorithm", "SHA1")
	v.Set("digits", "6")
	v.Set("period", "30")
	u := url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + issuer + ":" + account, RawQuery: v.Encode()}
	return u.String()
}
