package kluis

import (
	"context"
	"strconv"
	"time"
)

// Licences and project activity (R13): the operator sets each
// organisation's licence — how many users, projects and concurrently active
// projects it may have, how much it may store, until when — and kluis keeps
// it at the boundary, each limit in the transaction that would exceed it.
// Starting a project opens an activity period that ends when it is stopped,
// when the project goes to the trash, or after the licence's activity
// timeout; managers see who had which project active when, the operator
// the same periods without the people.

// ELicenceLimit refuses a change that would exceed the organisation's
// licence, or one made after its end date; HTTP 409. Fields names the
// limit (max_users, max_projects, max_active_projects, max_storage_bytes,
// ends_at).
const ELicenceLimit = "licence_limit"

// DefaultActivityTimeout is how long, in minutes, an activity period runs
// when nobody stops it: a working day.
const DefaultActivityTimeout = 480

// MaxActivityTimeout is the longest activity timeout a licence may set, in
// minutes: a week.
const MaxActivityTimeout = 7 * 24 * 60

// Licence is what an organisation may use. A nil limit is no limit.
type Licence struct {
	MaxUsers          *int
	MaxProjects       *int
	MaxActiveProjects *int
	MaxStorageBytes   *int64
	// EndsAt is the end of the licence: after it, creating and starting
	// projects and inviting people are refused (ends_at). What exists stays
	// usable, so nobody loses their work to a lapsed contract.
	EndsAt *time.Time
	// ActivityTimeoutMinutes ends an activity period nobody stopped;
	// 0 means DefaultActivityTimeout.
	ActivityTimeoutMinutes int
	UpdatedAt              time.Time // zero for a licence never set
}

// Normalize fills the default timeout and puts the end date in UTC.
func (l Licence) Normalize() Licence {
	if l.ActivityTimeoutMinutes == 0 {
		l.ActivityTimeoutMinutes = DefaultActivityTimeout
	}
	if l.EndsAt != nil {
		t := l.EndsAt.UTC()
		l.EndsAt = &t
	}
	return l
}

// Validate checks a normalised licence: no negative limit, a timeout of 1
// minute to a week. Errors: invalid_input naming each bad field.
func (l Licence) Validate() error {
	bad := map[string]string{}
	for name, v := range map[string]*int{"max_users": l.MaxUsers, "max_projects": l.MaxProjects, "max_active_projects": l.MaxActiveProjects} {
		if v != nil && *v < 0 {
			bad[name] = "must be 0 or more, or null for no limit"
		}
	}
	if l.MaxStorageBytes != nil && *l.MaxStorageBytes < 0 {
		bad["max_storage_bytes"] = "must be 0 or more, or null for no limit"
	}
	if l.ActivityTimeoutMinutes < 1 || l.ActivityTimeoutMinutes > MaxActivityTimeout {
		bad["activity_timeout_minutes"] = "must be 1 to " + strconv.Itoa(MaxActivityTimeout)
	}
	if len(bad) > 0 {
		return Invalid(bad)
	}
	return nil
}

// ActivityTimeout is the licence's activity timeout as a duration.
func (l Licence) ActivityTimeout() time.Duration {
	return time.Duration(l.Normalize().ActivityTimeoutMinutes) * time.Minute
}

// Ended reports whether the licence's end date has passed at now.
func (l Licence) Ended(now time.Time) bool { return l.EndsAt != nil && !now.Before(*l.EndsAt) }

// LicenceUsage is what an organisation uses against its licence.
type LicenceUsage struct {
	// Users counts every person of the organisation who is not erased,
	// invited and disabled ones included.
	Users int
	// Projects counts every project, those in the trash included.
	Projects int
	// ActiveProjects counts the projects with an open activity period.
	ActiveProjects int
	// StorageBytes counts every stored chunk of the organisation's projects
	// once, however many files and versions share it.
	StorageBytes int64
}

// LicenceView is a licence with its organisation's usage.
type LicenceView struct {
	Licence Licence
	Usage   LicenceUsage
}

// LicenceLimit is the licence_limit error naming limit (a field of the
// licence) with a message saying what it allows.
func LicenceLimit(limit, allows string) *Error {
	return &Error{Code: ELicenceLimit, Message: "the organisation's licence does not allow this", Fields: map[string]string{limit: allows}}
}

// ActivityPeriodID identifies an activity period.
type ActivityPeriodID string

// How an activity period ended.
const (
	EndedStop    = "stop"    // someone stopped the project
	EndedTimeout = "timeout" // nobody did within the licence's timeout
	EndedTrash   = "trash"   // the project went to the trash
)

// ActivityPeriod is one time a project was active: started by User at From,
// ended at To (nil while it runs). In the operator's view User is empty.
type ActivityPeriod struct {
	ID      ActivityPeriodID
	Project ProjectID
	User    UserID
	From    time.Time
	To      *time.Time
	Ended   string // "", EndedStop, EndedTimeout or EndedTrash
}

// ActivityFilter limits the periods listed to those that overlap
// [Since, Until); a zero bound is open.
type ActivityFilter struct {
	Since, Until time.Time
}

// MaxActivityPage is the most periods one listing returns, newest first.
const MaxActivityPage = 1000

// LicenceService keeps licences and project activity (R13).
type LicenceService interface {
	// GetLicence returns the organisation's licence and usage (its
	// managers; operator admins and support). Errors: not_found,
	// forbidden.
	GetLicence(ctx context.Context, org OrgID, actor Actor) (LicenceView, error)
	// SetLicence replaces the licence (operator admins), recorded as
	// licence.update in the organisation's chain. Lowering a limit below
	// the usage is allowed: only growth is refused. Errors: forbidden,
	// invalid_input, not_found.
	SetLicence(ctx context.Context, org OrgID, actor Actor, l Licence) (LicenceView, error)
	// StartProject opens an activity period of the project (the start
	// right), recorded as project.start. The caller's own open period of
	// the project is answered as it is (started false). Errors: not_found,
	// forbidden, licence_limit.
	StartProject(ctx context.Context, org OrgID, actor Actor, project ProjectID) (p ActivityPeriod, started bool, err error)
	// StopProject ends every open period of the project (the start
	// right), recorded as project.stop; stopping a project that does not
	// run changes and records nothing. Errors: not_found, forbidden.
	StopProject(ctx context.Context, org OrgID, actor Actor, project ProjectID) error
	// ListActivity lists the periods overlapping f, newest first (managers).
	// Errors: forbidden, invalid_input.
	ListActivity(ctx context.Context, org OrgID, actor Actor, f ActivityFilter) ([]ActivityPeriod, error)
	// ListActivityAnonymous is ListActivity for the operator (admins and
	// support): the same periods without who. Errors: forbidden,
	// not_found.
	ListActivityAnonymous(ctx context.Context, org OrgID, actor Actor, f ActivityFilter) ([]ActivityPeriod, error)
	// FindRunning returns the caller's open period of the project, if any,
	// and whether the project runs at all (viewer). Errors: not_found.
	FindRunning(ctx context.Context, org OrgID, actor Actor, project ProjectID) (mine *ActivityPeriod, running bool, err error)
}
