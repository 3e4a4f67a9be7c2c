package outbox

import (
	"context"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sms"
	"github.com/kluis/kluis/internal/sqlstore"
)

// NewSMS returns the text-message queue over core.
func NewSMS(core *sqlstore.Core) *SMS {
	return &SMS{q: queue[sms.Queued]{
		core:  core,
		table: "sms_queue",
		kind:  "sms",
		prune: pruneSMS,
		open: func(ctx context.Context, id string, org kluis.OrgID, envelope []byte, attempts int) (sms.Queued, error) {
			to, text, err := core.OpenSMS(ctx, id, org, envelope)
			if err != nil {
				return sms.Queued{}, err
			}
			return sms.Queued{ID: id, To: to, Text: text, Attempts: attempts}, nil
		},
	}}
}

// pruneSMS drops messages whose code lapsed, and code rows older than the
// hour the sending limits look back.
func pruneSMS(ctx context.Context, t *sqlstore.Tx, now time.Time) error {
	if _, err := t.Exec(ctx, `DELETE FROM sms_queue WHERE expires_at <= ?`, sqlstore.Micros(now)); err != nil {
		return err
	}
	_, err := t.Exec(ctx, `DELETE FROM sms_codes WHERE created_at <= ?`, sqlstore.Micros(now.Add(-time.Hour)))
	return err
}

// ClaimDueSMS leases up to limit due text messages to the caller.
func (s *SMS) ClaimDueSMS(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]sms.Queued, error) {
	return s.q.claim(ctx, now, limit, lease)
}

// MarkSMSSent deletes a delivered message: its number and text leave the database.
func (s *SMS) MarkSMSSent(ctx context.Context, id string) error { return s.q.sent(ctx, id) }

// MarkSMSFailed counts a failed attempt and schedules the next one.
func (s *SMS) MarkSMSFailed(ctx context.Context, id string, next time.Time) error {
	return s.q.failed(ctx, id, next)
}

// QueuedSMS counts the text messages waiting for delivery (metrics, tests).
func (s *SMS) QueuedSMS(ctx context.Context) (int, error) { return s.q.count(ctx) }
