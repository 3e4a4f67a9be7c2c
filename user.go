package kluis

import (
	"context"
	"fmt"
	"net/mail"
	"strings"
	"time"
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

// InvitationTTL is how long an invitation link works.
const InvitationTTL = 72 * time.Hour

// UserService is how managers administer the people of their organisation
// (R2, R5, R8), and how an invited person joins. Every method is one
// transaction with its audit event; another organisation's person is
// not_found (R1).
type UserService interface {
	// InviteUser creates an invited user and mails the invitation. Errors:
	// forbidden, invalid_input, conflict.
	InviteUser(ctx context.Context, org OrgID, actor Actor, in UserInput) (User, error)
	// ResendInvitation mails a new link; the old one stops working.
	// Errors: forbidden, not_found, conflict.
	ResendInvitation(ctx context.Context, org OrgID, actor Actor, id UserID) error
	// RevokeInvitation makes the link stop working. Errors: forbidden,
	// not_found.
	RevokeInvitation(ctx context.Context, org OrgID, actor Actor, id UserID) error
	// AcceptInvitation sets the invited person's name and password with
	// the link's token. Errors: not_found, invalid_input,
	// too_many_requests.
	AcceptInvitation(ctx context.Context, org OrgID, from Origin, token, name, password string) (User, error)
	// FindUsers lists the organisation's people (a recorded read). Errors:
	// forbidden.
	FindUsers(ctx context.Context, org OrgID, actor Actor) ([]User, error)
	// FindUserByID returns one person (a recorded read). Errors:
	// forbidden, not_found.
	FindUserByID(ctx context.Context, org OrgID, actor Actor, id UserID) (User, error)
	// UpdateUser changes a person's name, role or status, recorded with
	// the old and new values (R34). Errors: forbidden, not_found,
	// invalid_input, conflict (the last manager), processing_restricted.
	UpdateUser(ctx context.Context, org OrgID, actor Actor, id UserID, in UserInput) (User, error)
	// DeleteUser deletes a person and destroys their key. Errors:
	// forbidden, not_found, conflict (the last manager),
	// processing_restricted.
	DeleteUser(ctx context.Context, org OrgID, actor Actor, id UserID) error
	// EraseOnRequest is the operator's erasure of one person when the
	// organisation asks (R5): found by e-mail address, deleted like
	// DeleteUser with their key destroyed, recorded in the organisation's
	// chain with the reason (sealed), and told to its managers in their
	// inbox. Operator admins and the command line (CanEraseOnRequest).
	// Errors: forbidden, invalid_input, not_found, conflict (the last
	// manager).
	EraseOnRequest(ctx context.Context, actor Actor, org OrgID, email, reason string) error
	// CountAdministrators tells managers how many managers their
	// organisation has, its cap, and how many operators hold each role
	// (R8). Counts only. Errors: forbidden.
	CountAdministrators(ctx context.Context, org OrgID, actor Actor) (Administrators, error)
}

// MaxReasonLength bounds the reason an operator gives for an erasure.
const MaxReasonLength = 1000

// EmailChangeTTL is how long an e-mail change's confirmation link works.
const EmailChangeTTL = 24 * time.Hour

// AccountService is a person's own account (R3, R4): their profile, their
// e-mail address, and what happened to their sign-ins. Reading one's own
// data is not recorded; every change is.
type AccountService interface {
	// UpdateMe changes the signed-in person's name, phone or maintenance
	// mail choice, recorded with the old and new values (R34). Errors:
	// unauthenticated, invalid_input, processing_restricted.
	UpdateMe(ctx context.Context, org OrgID, actor Actor, in UserInput) (User, error)
	// RequestEmailChange mails a confirmation link to the new address.
	// Errors: unauthenticated, reauth_required, invalid_input, conflict,
	// processing_restricted.
	RequestEmailChange(ctx context.Context, org OrgID, actor Actor, newEmail string) error
	// PendingEmailChange returns the address waiting for confirmation and
	// until when. Errors: unauthenticated, not_found.
	PendingEmailChange(ctx context.Context, org OrgID, actor Actor) (string, time.Time, error)
	// ConfirmEmailChange makes the new address the person's, with the
	// link's token, in the person's own session. Errors: unauthenticated,
	// not_found, conflict, processing_restricted.
	ConfirmEmailChange(ctx context.Context, org OrgID, actor Actor, token string) error
	// FindSignIns returns the person's most recent sign-ins and failed
	// attempts, newest first. Errors: unauthenticated.
	FindSignIns(ctx context.Context, org OrgID, actor Actor, limit int) ([]SignIn, error)
}
