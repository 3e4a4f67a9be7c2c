package outbox

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/sqlstore"
)

// ClaimDue leases up to limit due messages to the caller until the lease
// ends, so two workers (or nodes) never send the same message at once.
func (s *Mail) ClaimDue(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]mail.Queued, error) {
	var out []mail.Queued
	err := s.core.Write(ctx, "", func(t *sqlstore.Tx) error {
		// An invitation mail that could not be delivered while its link
		// worked is useless and carries a token: drop it.
		if _, err := t.Exec(ctx, `DELETE FROM mail_queue WHERE kind = ? AND created_at < ?`, string(mail.Invitation), sqlstore.Micros(now.Add(-kluis.InvitationTTL))); err != nil {
			return err
		}
		// The same for reset links, and the links themselves once expired.
		if _, err := t.Exec(ctx, `DELETE FROM mail_queue WHERE kind = ? AND created_at < ?`, string(mail.PasswordReset), sqlstore.Micros(now.Add(-kluis.ResetTTL))); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `DELETE FROM password_resets WHERE expires_at < ?`, sqlstore.Micros(now)); err != nil {
			return err
		}
		skip := ""
		if s.core.DB().Engine == sqlstore.Postgres {
			skip = " FOR UPDATE SKIP LOCKED"
		}
		rows, err := t.Query(ctx, `SELECT id, org_id, envelope, attempts FROM mail_queue
			WHERE next_attempt_at <= ? AND lease_until <= ? ORDER BY next_attempt_at LIMIT ?`+skip, sqlstore.Micros(now), sqlstore.Micros(now), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		type row struct {
			q   mail.Queued
			org sql.NullString
			env []byte
		}
		var claimed []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.q.ID, &r.org, &r.env, &r.q.Attempts); err != nil {
				return err
			}
			claimed = append(claimed, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		for _, r := range claimed {
			env, err := s.core.OpenMail(ctx, r.q.ID, kluis.OrgID(r.org.String), r.env)
			if err != nil && !errors.Is(err, keys.ErrKeyDestroyed) && !errors.Is(err, keys.ErrDecrypt) && !errors.Is(err, sqlstore.ErrBadEnvelope) {
				return err // the key store is unreachable, say: the message waits
			}
			if err != nil {
				// Unreadable (its key destroyed, or altered): it can
				// never be sent. Dropped, and logged without content.
				s.core.Log().Error("queued mail cannot be decrypted; dropped", "mail", r.q.ID, "err", err.Error())
				if _, err := t.Exec(ctx, `DELETE FROM mail_queue WHERE id = ?`, r.q.ID); err != nil {
					return err
				}
				continue
			}
			r.q.From, r.q.To, r.q.Message = env.From, env.To, env.Message
			out = append(out, r.q)
		}
		for _, q := range out {
			if _, err := t.Exec(ctx, `UPDATE mail_queue SET lease_until = ? WHERE id = ?`, sqlstore.Micros(now.Add(lease)), q.ID); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// MarkSent deletes a delivered message: its addresses and text leave the database.
func (s *Mail) MarkSent(ctx context.Context, id string) error {
	_, err := s.core.DB().WriteExec(ctx, `DELETE FROM mail_queue WHERE id = ?`, id)
	return err
}

// MarkFailed counts a failed attempt and schedules the next one.
func (s *Mail) MarkFailed(ctx context.Context, id string, next time.Time) error {
	_, err := s.core.DB().WriteExec(ctx, `UPDATE mail_queue SET attempts = attempts + 1, next_attempt_at = ?, lease_until = 0 WHERE id = ?`,
		sqlstore.Micros(next), id)
	return err
}

// QueuedMail counts the messages waiting for delivery (metrics, tests).
func (s *Mail) QueuedMail(ctx context.Context) (int, error) {
	var n int
	err := s.core.DB().ReadRow(ctx, `SELECT COUNT(*) FROM mail_queue`).Scan(&n)
	return n, err
}
