package kluis

import (
	"context"
	"time"
)

// Retention (R25, R35, R36): data that is no longer needed disappears on
// time, by the scheduled job "retention", without anyone remembering.

// InactivityNoticeDays is how many days before the erasure for inactivity
// (R35) a person gets a notice in their inbox (and a mail that one waits).
const InactivityNoticeDays = 30

// DefaultLicenceGrace is how long an organisation stays read-only after its
// licence ended before its personal data, projects and keys are erased
// (R36); kluis serve's --licence-grace moves it.
const DefaultLicenceGrace = 30 * 24 * time.Hour

// NoticeInactivity tells a person that their account will be erased for
// inactivity unless they sign in (R35); NoticeLicenceEnded tells managers
// that the organisation's licence ended and it is read-only (R36).
const (
	NoticeInactivity   = "inactivity"
	NoticeLicenceEnded = "licence_ended"
)

// RetentionReport counts what one run of the retention job did: counts
// only, never who (it goes into the job's record and the platform chain).
type RetentionReport struct {
	Notified         int   // people told that their account will be erased
	Erased           int   // people erased for inactivity
	LastManagersKept int   // inactive last managers kept (and reported)
	OrgsTerminated   int   // organisations whose licence ended: read-only now
	OrgsPurged       int   // organisations erased after the grace period
	AuditPruned      int64 // audit events pruned behind a signed record
	ExpiredPurged    int64 // expired sessions, invitations, tokens, challenges, … removed
}

// LicenceReadOnly refuses a change to an organisation whose licence has
// ended (R36): during the grace period it can be read and exported, not
// changed. HTTP 409 licence_limit naming ends_at.
func LicenceReadOnly() *Error {
	return LicenceLimit("ends_at", "the organisation's licence has ended; it is read-only until its data is erased or the licence is renewed")
}

// RetentionService runs the retention rules and tells whether an
// organisation is read-only.
type RetentionService interface {
	// RunRetention applies every rule once, at the store's clock, as the
	// system actor, and records retention.run in the platform chain.
	RunRetention(ctx context.Context) (RetentionReport, error)
	// ReadOnly reports whether the organisation's licence has ended, so
	// that it only reads (R36). No rights check: no personal data.
	ReadOnly(ctx context.Context, org OrgID) (bool, error)
}
