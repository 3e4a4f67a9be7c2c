package outbox

import (
	"context"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/sqlstore"
)

// NewMail returns the mail queue over core.
func NewMail(core *sqlstore.Core) *Mail {
	return &Mail{q: queue[mail.Queued]{
		core:  core,
		table: "mail_queue",
		kind:  "mail",
		prune: pruneMail,
		open: func(ctx context.Context, id string, org kluis.OrgID, envelope []byte, attempts int) (mail.Queued, error) {
			env, err := core.OpenMail(ctx, id, org, envelope)
			if err != nil {
				return mail.Queued{}, err
			}
			return mail.Queued{ID: id, From: env.From, To: env.To, Message: env.Message, Attempts: attempts}, nil
		},
	}}
}

// pruneMail drops an invitation or reset mail that could not be delivered
// while its link worked: it is useless and carries a token. The reset
// links themselves go once expired.
func pruneMail(ctx context.Context, t *sqlstore.Tx, now time.Time) error {
	if _, err := t.Exec(ctx, `DELETE FROM mail_queue WHERE kind = ? AND created_at < ?`, string(mail.Invitation), sqlstore.Micros(now.Add(-kluis.InvitationTTL))); err != nil {
		return err
	}
	if _, err := t.Exec(ctx, `DELETE FROM mail_queue WHERE kind = ? AND created_at < ?`, string(mail.PasswordReset), sqlstore.Micros(now.Add(-kluis.ResetTTL))); err != nil {
		return err
	}
	_, err := t.Exec(ctx, `DELETE FROM password_resets WHERE expires_at < ?`, sqlstore.Micros(now))
	return err
}

// ClaimDue leases up to limit due messages to the caller until the lease
// ends, so two workers (or nodes) never send the same message at once.
func (s *Mail) ClaimDue(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]mail.Queued, error) {
	return s.q.claim(ctx, now, limit, lease)
}

// MarkSent deletes a delivered message: its addresses and text leave the database.
func (s *Mail) MarkSent(ctx context.Context, id string) error { return s.q.sent(ctx, id) }

// MarkFailed counts a failed attempt and schedules the next one.
func (s *Mail) MarkFailed(ctx context.Context, id string, next time.Time) error {
	return s.q.failed(ctx, id, next)
}

// QueuedMail counts the messages waiting for delivery (metrics, tests).
func (s *Mail) QueuedMail(ctx context.Context) (int, error) { return s.q.count(ctx) }
