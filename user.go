package kluis

import (
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// NormalizeEmail returns the form of an e-mail address that uniqueness and
// login compare: NFKC, trimmed, the whole address lower-cased. Nothing
// cleverer: no dot or plus folding (DESIGN §4).
func NormalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(norm.NFKC.String(email)))
}

// ValidateEmail checks a normalised e-mail address: a bare addr-spec, at most
// 254 bytes. The message never repeats the address.
func ValidateEmail(email string) error {
	if email == "" {
		return fmt.Errorf("is required")
	}
	if len(email) > 254 || !utf8.ValidString(email) {
		return fmt.Errorf("is not a valid e-mail address")
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" {
		return fmt.Errorf("is not a valid e-mail address")
	}
	return nil
}

// NormalizeName trims a person's or organisation's name and applies NFC.
func NormalizeName(name string) string { return strings.TrimSpace(norm.NFC.String(name)) }

// ValidateName checks a normalised name: 1 to 200 characters, no control characters.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("is required")
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > 200 {
		return fmt.Errorf("must be at most 200 characters")
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		return fmt.Errorf("must not contain control characters")
	}
	return nil
}

// NormalizePhone removes the spaces, dashes, dots and brackets people type in
// phone numbers.
func NormalizePhone(phone string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '.', '(', ')', '\u00a0':
			return -1
		}
		return r
	}, strings.TrimSpace(phone))
}

// ValidatePhone checks a normalised phone number: empty (phone is optional,
// R3), or an optional '+' followed by 6 to 15 digits (E.164 length).
func ValidatePhone(phone string) error {
	if phone == "" {
		return nil
	}
	digits := strings.TrimPrefix(phone, "+")
	if len(digits) < 6 || len(digits) > 15 || strings.ContainsFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) {
		return fmt.Errorf("must be a phone number such as +31 20 123 4567")
	}
	return nil
}

// UserInput is the personal data of a new or changed user, before
// normalisation. Nil fields are left unchanged by an update.
type UserInput struct {
	Email             *string
	Name              *string
	Phone             *string
	MaintenanceEmails *bool
	Role              *Role
	Disabled          *bool
}

// Normalize returns a copy with every present field normalised.
func (in UserInput) Normalize() UserInput {
	out := in
	if in.Email != nil {
		s := NormalizeEmail(*in.Email)
		out.Email = &s
	}
	if in.Name != nil {
		s := NormalizeName(*in.Name)
		out.Name = &s
	}
	if in.Phone != nil {
		s := NormalizePhone(*in.Phone)
		out.Phone = &s
	}
	return out
}

// Validate checks every present field of a normalised input and names each
// problem per field.
func (in UserInput) Validate() error {
	f := map[string]string{}
	if in.Email != nil {
		if err := ValidateEmail(*in.Email); err != nil {
			f["email"] = err.Error()
		}
	}
	if in.Name != nil {
		if err := ValidateName(*in.Name); err != nil {
			f["name"] = err.Error()
		}
	}
	if in.Phone != nil {
		if err := ValidatePhone(*in.Phone); err != nil {
			f["phone"] = err.Error()
		}
	}
	if in.Role != nil && !in.Role.Valid() {
		f["role"] = "must be manager or member"
	}
	if len(f) > 0 {
		return Invalid(f)
	}
	return nil
}

// Masking (R29): lists show contact details only as far as needed to tell
// entries apart; the full value is one audited read away.

// MaskEmail keeps the first character of the local part and the domain:
// "jan@example.org" → "j***@example.org". A value without "@" is masked
// whole.
func MaskEmail(email string) string {
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" {
		return "***"
	}
	r := []rune(local)
	return string(r[0]) + "***@" + domain
}

// MaskPhone keeps the last two digits and the layout: "+31 6 12345678" →
// "+** * ******78". An empty value stays empty.
func MaskPhone(phone string) string {
	digits := 0
	for _, r := range phone {
		if r >= '0' && r <= '9' {
			digits++
		}
	}
	out := []rune(phone)
	for i, r := range out {
		if r >= '0' && r <= '9' {
			if digits > 2 {
				out[i] = '*'
			}
			digits--
		}
	}
	return string(out)
}

// Masked returns the user with e-mail address and phone number masked, for
// lists (R29).
func (u User) Masked() User {
	u.Email, u.Phone = MaskEmail(u.Email), MaskPhone(u.Phone)
	return u
}
