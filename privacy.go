package kluis

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The data-subject request register (issue 15, R34): every request a person
// makes to exercise a GDPR right is recorded per organisation with the
// dates the law sets, shown to the organisation's managers, who handle it,
// and followed by the person who made it. A privacy page per organisation
// tells its people their rights, whom to contact and where to complain.

// PrivacyRequestID identifies a data-subject request.
type PrivacyRequestID string

// PrivacyRequestType is the right a data-subject request exercises (GDPR
// Art. 15 to 21).
type PrivacyRequestType string

// The types of data-subject request.
const (
	RequestAccess        PrivacyRequestType = "access"        // Art. 15
	RequestRectification PrivacyRequestType = "rectification" // Art. 16
	RequestErasure       PrivacyRequestType = "erasure"       // Art. 17
	RequestRestriction   PrivacyRequestType = "restriction"   // Art. 18
	RequestPortability   PrivacyRequestType = "portability"   // Art. 20
	RequestObjection     PrivacyRequestType = "objection"     // Art. 21
)

// PrivacyRequestTypes are every type, in the order pages list them.
var PrivacyRequestTypes = []PrivacyRequestType{RequestAccess, RequestRectification, RequestErasure, RequestRestriction, RequestPortability, RequestObjection}

// Valid reports whether t is one of PrivacyRequestTypes.
func (t PrivacyRequestType) Valid() bool { return slices.Contains(PrivacyRequestTypes, t) }

// PrivacyRequestStatus is where a data-subject request stands.
type PrivacyRequestStatus string

// The statuses of a data-subject request.
const (
	RequestOpen       PrivacyRequestStatus = "open"
	RequestInProgress PrivacyRequestStatus = "in_progress"
	RequestDone       PrivacyRequestStatus = "done"
	RequestRefused    PrivacyRequestStatus = "refused"
)

// PrivacyRequestStatuses are every status, in the order pages list them.
var PrivacyRequestStatuses = []PrivacyRequestStatus{RequestOpen, RequestInProgress, RequestDone, RequestRefused}

// Valid reports whether s is one of PrivacyRequestStatuses.
func (s PrivacyRequestStatus) Valid() bool { return slices.Contains(PrivacyRequestStatuses, s) }

// Closed reports whether a request in status s needs nothing more: done or
// refused. Closed requests get no reminders and are never overdue.
func (s PrivacyRequestStatus) Closed() bool { return s == RequestDone || s == RequestRefused }

// PrivacyRequestDue is when a request received at received must be
// answered: one month later (GDPR Art. 12(3)), counted as Regulation (EEC,
// Euratom) No 1182/71 art. 3(2)(c) counts a period in months — it ends
// with the last moment of the day of the next month that bears the same
// date as the day of receipt or, when that month has no such date, of its
// last day. So 15 January ends on 15 February at 23:59:59.999999, 31
// January on the last day of February, 31 March on 30 April. Days are
// counted in UTC.
func PrivacyRequestDue(received time.Time) time.Time { return PrivacyRequestDueIn(received, 1) }

// PrivacyRequestDueIn is the end of a period of months calendar months
// from received, counted as PrivacyRequestDue counts one: a request whose
// due date was extended by two further months (GDPR Art. 12(3)) is due
// PrivacyRequestDueIn(received, 3).
func PrivacyRequestDueIn(received time.Time, months int) time.Time {
	r := received.UTC()
	y, m, d := r.Date()
	first := time.Date(y, m+time.Month(months), 1, 0, 0, 0, 0, time.UTC)
	last := first.AddDate(0, 1, -1).Day() // the last day of that month
	day := min(d, last)
	return time.Date(first.Year(), first.Month(), day, 0, 0, 0, 0, time.UTC).Add(24*time.Hour - time.Microsecond)
}

// MaxExtensionMonths is how far a request's due date may be extended
// beyond the first month, "where necessary, taking into account the
// complexity and number of the requests" (GDPR Art. 12(3)).
const MaxExtensionMonths = 2

// The reminders the register sends an organisation's managers about an
// open request: a week before its due date, a day before, and once when it
// is overdue. Each is sent at most once per request; a request first seen
// late gets only the latest reminder that applies.
const (
	ReminderNone    = 0
	ReminderWeek    = 1 // 7 days before due
	ReminderDay     = 2 // 1 day before due
	ReminderOverdue = 3 // past due
)

// ReminderDue is the reminder a request due at due should have had by now:
// ReminderNone, ReminderWeek, ReminderDay or ReminderOverdue.
func ReminderDue(due, now time.Time) int {
	switch {
	case now.After(due):
		return ReminderOverdue
	case !now.Before(due.Add(-24 * time.Hour)):
		return ReminderDay
	case !now.Before(due.Add(-7 * 24 * time.Hour)):
		return ReminderWeek
	}
	return ReminderNone
}

// MaxOutcomeLength bounds a request's outcome, in characters.
const MaxOutcomeLength = 2000

// MaxOpenRequestsPerPerson caps the requests one person has open at once,
// so a script cannot flood the register.
const MaxOpenRequestsPerPerson = 20

// PrivacyRequest is one data-subject request as the register shows it.
type PrivacyRequest struct {
	ID   PrivacyRequestID
	Type PrivacyRequestType
	// Subject is the person the request is about (who made it, or for whom
	// a manager recorded it); SubjectName is empty once they are erased.
	Subject     UserID
	SubjectName string
	ReceivedAt  time.Time
	DueAt       time.Time
	Status      PrivacyRequestStatus
	// Handler is the manager handling it, empty until one does.
	Handler     UserID
	HandlerName string
	// Outcome is what was done or why it was refused, as the manager wrote
	// it: sealed under the organisation key.
	Outcome   string
	UpdatedAt time.Time
	// Overdue is set when the request was read still open past its due
	// date (by the store's clock).
	Overdue bool
	// ExtendedMonths is by how many months its due date was extended (0,
	// 1 or 2; GDPR Art. 12(3)).
	ExtendedMonths int
}

// PrivacyRequestInput files a request. Subject is empty for one's own; a
// manager may name a person of the organisation who asked by other means
// (mail, phone, letter).
type PrivacyRequestInput struct {
	Type    PrivacyRequestType
	Subject UserID
}

// Validate checks a new request: a known type. Errors: invalid_input
// naming type.
func (in PrivacyRequestInput) Validate() error {
	if !in.Type.Valid() {
		return Invalid(map[string]string{"type": "must be access, rectification, erasure, restriction, portability or objection"})
	}
	return nil
}

// PrivacyRequestUpdate is a manager's handling of a request; nil fields
// stay as they are.
type PrivacyRequestUpdate struct {
	Status  *PrivacyRequestStatus
	Handler *UserID
	Outcome *string
	// ExtendMonths extends the due date by further months (GDPR Art.
	// 12(3)): the total extension is 1 or 2 (MaxExtensionMonths); it only
	// grows, only while the request is open and its first month has not
	// ended, and the outcome must then tell the person the reasons.
	ExtendMonths *int
}

// Normalize trims the outcome.
func (u PrivacyRequestUpdate) Normalize() PrivacyRequestUpdate {
	if u.Outcome != nil {
		o := strings.TrimSpace(*u.Outcome)
		u.Outcome = &o
	}
	return u
}

// Validate checks a normalised update: a known status, an outcome of at
// most MaxOutcomeLength characters without control characters but line
// breaks and tabs, and something to change. Errors: invalid_input naming
// status, outcome.
func (u PrivacyRequestUpdate) Validate() error {
	f := map[string]string{}
	if u.Status == nil && u.Handler == nil && u.Outcome == nil && u.ExtendMonths == nil {
		f["status"] = "give status, handler or outcome"
	}
	if u.ExtendMonths != nil && (*u.ExtendMonths < 1 || *u.ExtendMonths > MaxExtensionMonths) {
		f["extend_months"] = "must be 1 or 2"
	}
	if u.Status != nil && !u.Status.Valid() {
		f["status"] = "must be open, in_progress, done or refused"
	}
	if u.Outcome != nil {
		switch o := *u.Outcome; {
		case !utf8.ValidString(o) || utf8.RuneCountInString(o) > MaxOutcomeLength:
			f["outcome"] = "must be at most 2000 characters"
		case strings.ContainsFunc(o, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' }):
			f["outcome"] = "must not contain control characters"
		}
	}
	if len(f) > 0 {
		return Invalid(f)
	}
	return nil
}

// CanHandlePrivacyRequests: an organisation's managers see and handle all
// of its data-subject requests. Support sessions never do (the register
// says who exercised which right, and is none of the operator's business).
func CanHandlePrivacyRequests(a Actor, org OrgID) bool { return a.IsManager(org) }

// CanFilePrivacyRequest: every person of the organisation files their own
// requests; a manager may record one for another of its people.
func CanFilePrivacyRequest(a Actor, org OrgID, subject UserID) bool {
	return a.IsOrgUser(org) && (subject == "" || subject == a.UserID || a.IsManager(org))
}

// PrivacySettings are what an organisation's privacy page tells its people
// beyond their rights: whom to contact at the controller, and the
// supervisory authority to complain to (by default the Dutch Autoriteit
// Persoonsgegevens). The contact is what the organisation publishes anyway
// (GDPR Art. 13(1)(a,b)): a role address, not a private one.
type PrivacySettings struct {
	Contact       string // the controller's privacy contact; empty: not set yet
	AuthorityName string
	AuthorityURL  string
}

// The default supervisory authority.
const (
	DefaultAuthorityName = "Autoriteit Persoonsgegevens"
	DefaultAuthorityURL  = "https://autoriteitpersoonsgegevens.nl"
)

// DefaultPrivacySettings are an organisation's settings until its managers
// change them.
func DefaultPrivacySettings() PrivacySettings {
	return PrivacySettings{AuthorityName: DefaultAuthorityName, AuthorityURL: DefaultAuthorityURL}
}

// Normalize trims every field.
func (s PrivacySettings) Normalize() PrivacySettings {
	s.Contact = strings.TrimSpace(s.Contact)
	s.AuthorityName = strings.TrimSpace(s.AuthorityName)
	s.AuthorityURL = strings.TrimSpace(s.AuthorityURL)
	return s
}

// Validate checks normalised settings: a contact of at most 500 characters,
// an authority's name (1 to 200 characters) and an https address of at
// most 500. Errors: invalid_input naming contact, authority_name,
// authority_url.
func (s PrivacySettings) Validate() error {
	f := map[string]string{}
	ctl := func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\r' }
	switch {
	case !utf8.ValidString(s.Contact) || utf8.RuneCountInString(s.Contact) > 500:
		f["contact"] = "must be at most 500 characters"
	case strings.ContainsFunc(s.Contact, ctl):
		f["contact"] = "must not contain control characters"
	}
	switch {
	case s.AuthorityName == "":
		f["authority_name"] = "is required"
	case !utf8.ValidString(s.AuthorityName) || utf8.RuneCountInString(s.AuthorityName) > 200:
		f["authority_name"] = "must be at most 200 characters"
	case strings.ContainsFunc(s.AuthorityName, unicode.IsControl):
		f["authority_name"] = "must not contain control characters"
	}
	if u, err := url.Parse(s.AuthorityURL); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || len(s.AuthorityURL) > 500 {
		f["authority_url"] = "must be an https address"
	}
	if len(f) > 0 {
		return Invalid(f)
	}
	return nil
}

// PrivacyRequestService is the register of data-subject requests (R34) and
// the organisation's privacy settings. Another organisation's request, and
// for a person who is not a manager someone else's, is not_found.
type PrivacyRequestService interface {
	// FilePrivacyRequest records a request received now, due one month
	// later (PrivacyRequestDue), recorded as dsr.create. Every person of
	// the organisation for themselves; managers for any of its people.
	// Errors: unauthenticated, forbidden, invalid_input (type, subject),
	// conflict (too many open requests).
	FilePrivacyRequest(ctx context.Context, org OrgID, actor Actor, in PrivacyRequestInput) (PrivacyRequest, error)
	// FindPrivacyRequests lists requests, newest first: all of the
	// organisation's for a manager (recorded as dsr.list), the caller's own
	// for anyone else and with mine (not recorded). Errors:
	// unauthenticated.
	FindPrivacyRequests(ctx context.Context, org OrgID, actor Actor, mine bool) ([]PrivacyRequest, error)
	// UpdatePrivacyRequest sets a request's status, handler or outcome,
	// recorded as dsr.update. A handler must be a manager; refusing needs
	// an outcome (the reasons, GDPR Art. 12(4)). Managers only. Errors:
	// unauthenticated, forbidden, not_found, invalid_input.
	UpdatePrivacyRequest(ctx context.Context, org OrgID, actor Actor, id PrivacyRequestID, u PrivacyRequestUpdate) (PrivacyRequest, error)
	// FindPrivacySettings returns the organisation's privacy settings, the
	// defaults until changed. Every person of the organisation. Errors:
	// unauthenticated.
	FindPrivacySettings(ctx context.Context, org OrgID, actor Actor) (PrivacySettings, error)
	// UpdatePrivacySettings sets them, recorded as privacy.update.
	// Managers only. Errors: forbidden, invalid_input.
	UpdatePrivacySettings(ctx context.Context, org OrgID, actor Actor, s PrivacySettings) (PrivacySettings, error)
}
