package kluis

import (
	"context"
	"time"
)

// NoticeID identifies a notice in a person's inbox.
type NoticeID string

// Notice is a message for one person of an organisation, waiting in their
// inbox after sign-in: what happened that they should know, told inside
// kluis rather than by mail (R45: a mail only says that a notice waits).
// Title and body are in the organisation's language and are stored sealed
// under the recipient's key.
type Notice struct {
	ID    NoticeID
	Kind  string
	At    time.Time
	Read  bool
	Title string
	Body  string
}

// The kinds of notices.
const (
	// NoticeErasedOnRequest tells an organisation's managers that the
	// operator erased one of its people on the organisation's request (R5).
	// It names no one: the erased person's data is gone.
	NoticeErasedOnRequest = "erased_on_request"
	// NoticeManagerGranted tells the other managers that someone became a
	// manager (R8).
	NoticeManagerGranted = "manager_granted"
	// NoticePrivacyRequestDue tells an organisation's managers that a
	// data-subject request is due in a week, tomorrow, or overdue (R34;
	// the register's reminders).
	NoticePrivacyRequestDue = "privacy_request_due"
	// NoticePrivacyRequestUpdated tells a person that a manager changed the
	// status of their data-subject request (R34).
	NoticePrivacyRequestUpdated = "privacy_request_updated"
)

// InboxService is a person's own inbox. Another person's notice is
// not_found.
type InboxService interface {
	// FindNotices lists the caller's notices, newest first. Reading one's
	// own inbox is not recorded. Errors: unauthenticated.
	FindNotices(ctx context.Context, org OrgID, actor Actor) ([]Notice, error)
	// CountUnread counts the caller's unread notices, for the navigation.
	// Errors: unauthenticated.
	CountUnread(ctx context.Context, org OrgID, actor Actor) (int, error)
	// MarkNoticeRead marks one of the caller's notices read. Errors:
	// unauthenticated, not_found.
	MarkNoticeRead(ctx context.Context, org OrgID, actor Actor, id NoticeID) error
}

// Administrators is how many people hold administrative power over an
// organisation (R8): its managers, with the cap its policy sets, and the
// platform's operators by role. Counts only: never who.
type Administrators struct {
	Managers    int
	MaxManagers *int // nil: no cap
	Operators   map[OperatorRole]int
}

// MaxManagersCap is the highest cap a policy may set on the number of
// managers.
const MaxManagersCap = 100
