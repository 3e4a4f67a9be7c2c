package kluis

import (
	"context"
	"encoding/json"
	"time"
)

// AuditFilter selects events of one organisation's log (R25).
type AuditFilter struct {
	After  int64     // only events with a greater sequence number
	Before int64     // only events with a smaller sequence number (0: no bound)
	Newest bool      // newest first; the next page is then Before the last one
	Limit  int       // 1…MaxAuditPage; 0 means 100
	Action string    // exact action, or a prefix ending in "." ("user.")
	Actor  string    // "user:ID", "operator:ID", "cli", "anonymous"
	Since  time.Time // inclusive
	Until  time.Time // exclusive
}

// MaxAuditPage is the largest page of AuditService.FindAuditEvents.
const MaxAuditPage = 1000

// Placeholders for sealed audit values that a reader may not or cannot see.
const (
	// Hidden replaces a personal value in a list (R29): it is shown when
	// one event is opened.
	Hidden = "[hidden]"
	// Erased replaces a value whose key was destroyed (crypto-shredding).
	Erased = "[erased]"
)

// AuditEvent is an event as a manager reads it.
type AuditEvent struct {
	Seq     int64
	At      time.Time
	Actor   string
	Action  string
	Target  string
	Outcome string
	Details json.RawMessage
	// Client is the address the request came from, decrypted; empty for
	// the command line, background work, and in lists (R29).
	Client string
	Hash   [32]byte
}

// ChainCheck is the outcome of verifying one audit chain (R25).
type ChainCheck struct {
	Chain string
	// OK is true when nothing was found broken.
	OK bool
	// Checked is the number of events examined, up to and including the
	// first broken one.
	Checked int64
	// FirstBrokenSeq is the lowest broken sequence number, or 0 when OK.
	FirstBrokenSeq int64
	// Problem names what is wrong at FirstBrokenSeq ("" when OK).
	Problem string
}

// AuditService lets an organisation's managers review their log (R23, R25):
// search, filter, export and check it for tampering.
type AuditService interface {
	// FindAuditEvents returns a page of events and the sequence number to
	// continue after (0 at the end). Managers only. Errors: forbidden,
	// invalid_input.
	FindAuditEvents(ctx context.Context, org OrgID, actor Actor, f AuditFilter) ([]AuditEvent, int64, error)
	// ExportAudit streams every matching event to emit, with client
	// addresses (a recorded read). Errors: forbidden.
	ExportAudit(ctx context.Context, org OrgID, actor Actor, f AuditFilter, emit func(AuditEvent) error) error
	// VerifyOrgAudit checks the organisation's chain. Errors: forbidden.
	VerifyOrgAudit(ctx context.Context, org OrgID, actor Actor) (ChainCheck, error)
	// FindAuditPeople names the people the log mentions, for the log page.
	// Errors: forbidden.
	FindAuditPeople(ctx context.Context, org OrgID, actor Actor) (map[UserID]string, error)
}
