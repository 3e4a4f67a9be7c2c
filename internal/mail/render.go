package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"text/template"
	"unicode"
)

// Kind names a notice template.
type Kind string

// The notices kluis sends.
const (
	// Invitation invites someone to join an organisation; Data.Link is the
	// invitation link and is required.
	Invitation Kind = "invitation"
	// PasswordChanged tells an account holder that their password was
	// changed; Data.Link, a link to sign in, is optional.
	PasswordChanged Kind = "password_changed"
	// PasswordReset carries a single-use link to choose a new password;
	// Data.Link is required.
	PasswordReset Kind = "password_reset"
	// AccountLocked tells an account holder that sign-ins to their account
	// were locked after repeated failures; Data.Link lifts the lock and is
	// required.
	AccountLocked Kind = "account_locked"
	// SecurityAlarm tells managers (with Data.Link to the audit log) and the
	// operator's security address (without a link) that many sign-ins of
	// the organisation are failing.
	SecurityAlarm Kind = "security_alarm"
	// SecurityDigest summarises the brute-force protection for the
	// operator's security address; Data.Digest is required and
	// Data.OrgName names the instance.
	SecurityDigest Kind = "security_digest"
	// OperatorAlert tells the operator's security address that something
	// needs attention (an alert opened: a broken audit chain, a failed
	// backup) and where to look; Data.Alert names the alert's kind and
	// Data.OrgName the instance. It names nothing else.
	OperatorAlert Kind = "operator_alert"
)

// Digest is the content of a SecurityDigest: counts only, and the slugs of
// the organisations that raised an alarm (R26).
type Digest struct {
	Hours     int // the period covered
	Locks     int // identifiers locked
	Blocks    int // client addresses blocked
	Alarms    int // organisation-wide alarms
	AlarmOrgs []string
}

// Data is what a notice may contain: deliberately no names and no addresses
// (R3, R40, R45).
type Data struct {
	OrgName string // the organisation's display name
	Link    string // absolute http(s) URL; may be empty for PasswordChanged
	Digest  *Digest
	// Masked is an address with most of it hidden (kluis.MaskEmail): the
	// e-mail change notices name the new address only so.
	Masked string
	// Alert is the kind of alert an OperatorAlert reports
	// (kluis.AlertKinds): lower-case letters and underscores only.
	Alert string
}

//go:embed templates
var templateFS embed.FS

// Render returns the subject and plain-text body of notice k in language
// lang ("nl" or "en"; a region such as "nl-BE" is ignored, and any other
// language falls back to "en"). Each link stands on a line of its own.
//
// It returns an error for an unknown kind, an empty organisation name, an
// organisation name with control characters (line breaks could forge
// content), a link that is not an absolute http(s) URL without spaces, and a
// missing link for an Invitation. Errors never contain the link, which may
// carry a secret token.
func Render(k Kind, lang string, d Data) (subject, body string, err error) {
	switch k {
	case Invitation, PasswordReset, AccountLocked, NoticeWaiting:
		if d.Link == "" {
			return "", "", fmt.Errorf("mail: a %s needs a link", k)
		}
	case SecurityDigest:
		if d.Digest == nil {
			return "", "", errors.New("mail: a security digest needs its counts")
		}
		for _, slug := range d.Digest.AlarmOrgs {
			if strings.IndexFunc(slug, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') }) >= 0 {
				return "", "", errors.New("mail: a security digest names an organisation by its slug only")
			}
		}
	case OperatorAlert:
		if d.Alert == "" || strings.IndexFunc(d.Alert, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r == '_') }) >= 0 {
			return "", "", errors.New("mail: an operator alert names its kind, in lower-case letters and underscores")
		}
	case PasswordChanged, SecurityAlarm, FactorsReset:
	case EmailChangeConfirm, EmailChangeRequested, EmailChanged:
		if err := checkEmailChange(k, d); err != nil {
			return "", "", err
		}
	default:
		return "", "", fmt.Errorf("mail: unknown notice kind %q", string(k))
	}
	if strings.TrimSpace(d.OrgName) == "" || strings.IndexFunc(d.OrgName, unicode.IsControl) >= 0 {
		return "", "", errors.New("mail: organisation name is empty or contains control characters")
	}
	if d.Link != "" && !isHTTPURL(d.Link) {
		return "", "", errors.New("mail: link is not an absolute http(s) URL")
	}

	name := "templates/" + language(lang) + "/" + string(k) + ".txt"
	tmpl, err := template.New(string(k)+".txt").Option("missingkey=error").ParseFS(templateFS, name)
	if err != nil {
		return "", "", fmt.Errorf("mail: template %s: %w", name, err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, d); err != nil {
		return "", "", fmt.Errorf("mail: template %s: %w", name, err)
	}
	first, rest, _ := strings.Cut(buf.String(), "\n")
	subject, ok := strings.CutPrefix(first, "Subject: ")
	if !ok || strings.TrimSpace(subject) == "" {
		return "", "", fmt.Errorf("mail: template %s does not start with a subject line", name)
	}
	body = strings.TrimSpace(rest) + "\n"
	return strings.TrimSpace(subject), body, nil
}

// language maps a language tag to one of the template languages.
func language(lang string) string {
	base, _, _ := strings.Cut(strings.ToLower(lang), "-")
	base, _, _ = strings.Cut(base, "_")
	if base == "nl" {
		return "nl"
	}
	return "en"
}

func isHTTPURL(s string) bool {
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil
}

// NeededToSignIn reports whether a notice serves its recipient's own
// sign-in: the reset link they asked for, the unlock link of their locked
// account, and the notices that their password changed or their second
// factors were reset (which warn the owner of a takeover). These are the only mails sent to a person whose
// processing is restricted (R34): everything else about them is dropped.
func (k Kind) NeededToSignIn() bool { return slices.Contains(SignInKinds, k) }

// SignInKinds are the notices that serve their recipient's own sign-in
// (NeededToSignIn).
var SignInKinds = []Kind{PasswordReset, AccountLocked, PasswordChanged, FactorsReset}
