package outbox

import (
	"context"
	"errors"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sms"
	"github.com/kluis/kluis/internal/sqlstore"
)

// ClaimDueSMS leases up to limit due text messages to the caller. Messages
// whose code lapsed are dropped first, and so are code rows older than the
// hour the limits look back.
func (s *SMS) ClaimDueSMS(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]sms.Queued, error) {
	var out []sms.Queued
	err := s.core.Write(ctx, "", func(t *sqlstore.Tx) error {
		if _, err := t.Exec(ctx, `DELETE FROM sms_queue WHERE expires_at <= ?`, sqlstore.Micros(now)); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `DELETE FROM sms_codes WHERE created_at <= ?`, sqlstore.Micros(now.Add(-time.Hour))); err != nil {
			return err
		}
		skip := ""
		if s.core.DB().Engine == sqlstore.Postgres {
			skip = " FOR UPDATE SKIP LOCKED"
		}
		rows, err := t.Query(ctx, `SELECT id, org_id, envelope, attempts FROM sms_queue
			WHERE next_attempt_at <= ? AND lease_until <= ? ORDER BY next_attempt_at LIMIT ?`+skip, sqlstore.Micros(now), sqlstore.Micros(now), limit)
		if err != nil {
			return err
		}
		type row struct {
			q   sms.Queued
			org kluis.OrgID
			env []byte
		}
		var claimed []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.q.ID, &r.org, &r.env, &r.q.Attempts); err != nil {
				rows.Close()
				return err
			}
			claimed = append(claimed, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range claimed {
			to, text, err := s.core.OpenSMS(ctx, r.q.ID, r.org, r.env)
			if err != nil && !errors.Is(err, keys.ErrKeyDestroyed) && !errors.Is(err, keys.ErrDecrypt) && !errors.Is(err, sqlstore.ErrBadEnvelope) {
				return err // the key store is unreachable, say: the message waits
			}
			if err != nil {
				s.core.Log().Error("queued SMS cannot be decrypted; dropped", "sms", r.q.ID, "err", err.Error())
				if _, err := t.Exec(ctx, `DELETE FROM sms_queue WHERE id = ?`, r.q.ID); err != nil {
					return err
				}
				continue
			}
			r.q.To, r.q.Text = to, text
			out = append(out, r.q)
		}
		for _, q := range out {
			if _, err := t.Exec(ctx, `UPDATE sms_queue SET lease_until = ? WHERE id = ?`, sqlstore.Micros(now.Add(lease)), q.ID); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// MarkSMSSent deletes a delivered message: its number and text leave the database.
func (s *SMS) MarkSMSSent(ctx context.Context, id string) error {
	_, err := s.core.DB().WriteExec(ctx, `DELETE FROM sms_queue WHERE id = ?`, id)
	return err
}

// MarkSMSFailed counts a failed attempt and schedules the next one.
func (s *SMS) MarkSMSFailed(ctx context.Context, id string, next time.Time) error {
	_, err := s.core.DB().WriteExec(ctx, `UPDATE sms_queue SET attempts = attempts + 1, next_attempt_at = ?, lease_until = 0 WHERE id = ?`, sqlstore.Micros(next), id)
	return err
}

// QueuedSMS counts the text messages waiting for delivery (metrics, tests).
func (s *SMS) QueuedSMS(ctx context.Context) (int, error) {
	var n int
	err := s.core.DB().ReadRow(ctx, `SELECT COUNT(*) FROM sms_queue`).Scan(&n)
	return n, err
}
