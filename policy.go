package kluis

import (
	_ "embed"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Password limits that no organisation policy can move (R16).
const (
	MinPasswordLength = 8   // the floor; managers may raise it, never lower it
	MaxPasswordLength = 256 // characters after NFKC normalisation
)

// Policy is an organisation's password and session policy (R16, R21).
type Policy struct {
	PasswordMinLength    int  `json:"password_min_length"`
	PasswordRequireDigit bool `json:"password_require_digit"`
	PasswordRequireUpper bool `json:"password_require_upper"`
	SessionIdleMinutes   int  `json:"session_idle_minutes"`
	SessionMaxHours      int  `json:"session_max_hours"`
	// MFA says whether people need a second factor (R17): MFAOff,
	// MFAOptional or MFARequired.
	MFA string `json:"mfa"`
	// LockoutThreshold is how many failed sign-ins in a row lock an
	// identifier for unknown browsers (R18, DESIGN §6).
	LockoutThreshold int `json:"lockout_threshold"`
	// ProjectAccess says who decides about project content (R2, R7):
	// ProjectAccessManagers or ProjectAccessOwners.
	ProjectAccess string `json:"project_access"`
	// TrashDays is how long a deleted project stays in the trash, where its
	// owner can bring it back, before its key is destroyed (R12).
	TrashDays int `json:"trash_days"`
	// SupportApprovals is how many managers must agree before support
	// access takes effect (R22): 1, the granter alone, or 2, a second
	// manager too (four eyes).
	SupportApprovals int `json:"support_approvals"`
	// MaxManagers caps the number of managers (R8: few administrators);
	// nil is no cap. In UpdatePolicy, nil keeps the current value and 0
	// removes the cap.
	MaxManagers *int `json:"max_managers"`
	// InactiveUserDays is how long a person may stay inactive before
	// the retention job erases them (R35); a notice comes
	// InactivityNoticeDays before. 0 in UpdatePolicy keeps the value.
	InactiveUserDays int `json:"inactive_user_days"`
	// AuditRetentionDays is how long audit events are kept before the
	// retention job prunes them behind a signed record (R25). 0 in
	// UpdatePolicy keeps the value.
	AuditRetentionDays int `json:"audit_retention_days"`
}

// Retention bounds (R25, R35): a person is erased after 90 days to ten
// years of inactivity (default two years); audit events are kept one to
// ten years (default two).
const (
	DefaultInactiveUserDays   = 730
	MinInactiveUserDays       = 90
	MaxInactiveUserDays       = 3650
	DefaultAuditRetentionDays = 730
	MinAuditRetentionDays     = 365
	MaxAuditRetentionDays     = 3650
)

// The values of Policy.MFA.
const (
	MFAOff      = "off"      // no new second factor can be enrolled; enrolled ones still count
	MFAOptional = "optional" // people may enrol one; enrolled factors are asked
	MFARequired = "required" // a session without a factor is limited to enrolment
)

// Lockout threshold bounds: below 3 typing mistakes lock people out, above 20
// the lock no longer slows a guesser.
const (
	MinLockoutThreshold = 3
	MaxLockoutThreshold = 20
)

// DefaultPolicy is the policy of a new organisation.
var DefaultPolicy = Policy{
	PasswordMinLength:  8,
	SessionIdleMinutes: 30,
	SessionMaxHours:    12,
	MFA:                MFAOptional,
	LockoutThreshold:   5,
	ProjectAccess:      ProjectAccessManagers,
	TrashDays:          DefaultTrashDays,
	SupportApprovals:   1,
	InactiveUserDays:   DefaultInactiveUserDays,
	AuditRetentionDays: DefaultAuditRetentionDays,
}

// Validate checks the policy's bounds and names each problem per field.
func (p Policy) Validate() error {
	f := map[string]string{}
	if p.PasswordMinLength < MinPasswordLength || p.PasswordMinLength > 128 {
		f["password_min_length"] = fmt.Sprintf("must be between %d and 128", MinPasswordLength)
	}
	if p.SessionIdleMinutes < 1 || p.SessionIdleMinutes > 24*60 {
		f["session_idle_minutes"] = "must be between 1 and 1440"
	}
	if p.SessionMaxHours < 1 || p.SessionMaxHours > 30*24 {
		f["session_max_hours"] = "must be between 1 and 720"
	}
	switch p.MFA {
	case MFAOff, MFAOptional, MFARequired:
	default:
		f["mfa"] = "must be off, optional or required"
	}
	if p.LockoutThreshold < MinLockoutThreshold || p.LockoutThreshold > MaxLockoutThreshold {
		f["lockout_threshold"] = fmt.Sprintf("must be between %d and %d", MinLockoutThreshold, MaxLockoutThreshold)
	}
	switch p.ProjectAccess {
	case ProjectAccessManagers, ProjectAccessOwners:
	default:
		f["project_access"] = "must be managers or owners"
	}
	if p.TrashDays < 1 || p.TrashDays > MaxTrashDays {
		f["trash_days"] = "must be between 1 and " + strconv.Itoa(MaxTrashDays)
	}
	if p.SupportApprovals != 1 && p.SupportApprovals != 2 {
		f["support_approvals"] = "must be 1 or 2"
	}
	if p.MaxManagers != nil && (*p.MaxManagers < 0 || *p.MaxManagers > MaxManagersCap) {
		f["max_managers"] = "must be empty (no cap) or at most " + strconv.Itoa(MaxManagersCap)
	}
	if p.InactiveUserDays < MinInactiveUserDays || p.InactiveUserDays > MaxInactiveUserDays {
		f["inactive_user_days"] = fmt.Sprintf("must be between %d and %d", MinInactiveUserDays, MaxInactiveUserDays)
	}
	if p.AuditRetentionDays < MinAuditRetentionDays || p.AuditRetentionDays > MaxAuditRetentionDays {
		f["audit_retention_days"] = fmt.Sprintf("must be between %d and %d", MinAuditRetentionDays, MaxAuditRetentionDays)
	}
	if len(f) > 0 {
		return Invalid(f)
	}
	return nil
}

// IdleTimeout is how long a session may go unused.
func (p Policy) IdleTimeout() time.Duration {
	return time.Duration(p.SessionIdleMinutes) * time.Minute
}

// MaxLifetime is the absolute lifetime of a session.
func (p Policy) MaxLifetime() time.Duration {
	return time.Duration(p.SessionMaxHours) * time.Hour
}

// NormalizePassword returns the NFKC form of a password, so that the same
// password typed on different keyboards or systems gives the same hash.
func NormalizePassword(pw string) string { return norm.NFKC.String(pw) }

// CheckPassword tells whether a new password (already normalised) satisfies
// the policy. The returned message is meant for the person choosing it.
func (p Policy) CheckPassword(pw string) error {
	if !utf8.ValidString(pw) {
		return fmt.Errorf("must be valid text")
	}
	n := utf8.RuneCountInString(pw)
	min := max(p.PasswordMinLength, MinPasswordLength)
	if n < min {
		return fmt.Errorf("must be at least %d characters", min)
	}
	if n > MaxPasswordLength {
		return fmt.Errorf("must be at most %d characters", MaxPasswordLength)
	}
	if strings.TrimSpace(pw) == "" {
		return fmt.Errorf("must not be only spaces")
	}
	if IsCommonPassword(pw) {
		return fmt.Errorf("is one of the most common passwords; choose an unusual one, such as a few unrelated words")
	}
	if p.PasswordRequireDigit && !strings.ContainsFunc(pw, unicode.IsDigit) {
		return fmt.Errorf("must contain a digit")
	}
	if p.PasswordRequireUpper && !strings.ContainsFunc(pw, unicode.IsUpper) {
		return fmt.Errorf("must contain an upper-case letter")
	}
	return nil
}

//go:embed common_passwords.txt
var commonPasswordsText string

// commonPasswords are the lines of common_passwords.txt after its header, in
// byte order: splitting costs well under a millisecond at start, and a lookup
// is a binary search (a map took 7 ms and 1.2 MB at every command's start).
var commonPasswords = func() []string {
	body := commonPasswordsText
	for strings.HasPrefix(body, "#") {
		_, body, _ = strings.Cut(body, "\n")
	}
	return strings.Split(strings.TrimSuffix(body, "\n"), "\n")
}()

// IsCommonPassword reports whether pw (normalised), ignoring case, is one of
// the most common leaked passwords that kluis refuses (issue 5, R16).
func IsCommonPassword(pw string) bool {
	_, ok := slices.BinarySearch(commonPasswords, strings.ToLower(pw))
	return ok
}
