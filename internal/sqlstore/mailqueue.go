package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kluis/kluis/internal/mail"
)

// The store is the mail worker's queue (mail.Queue): mail is queued in the
// transaction of the action that sends it and stays until delivered, so a
// failed delivery is retried and nothing is lost.
var _ mail.Queue = (*Store)(nil)

// ClaimDue leases up to limit due messages to the caller until the lease
// ends, so two workers (or nodes) never send the same message at once.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]mail.Queued, error) {
	var out []mail.Queued
	err := s.write(ctx, "", func(t *Tx) error {
		// An invitation mail that could not be delivered while its link
		// worked is useless and carries a token: drop it.
		if _, err := t.exec(ctx, `DELETE FROM mail_queue WHERE kind = ? AND created_at < ?`, string(mail.Invitation), micros(now.Add(-InvitationTTL))); err != nil {
			return err
		}
		skip := ""
		if s.db.Engine == Postgres {
			skip = " FOR UPDATE SKIP LOCKED"
		}
		rows, err := t.query(ctx, `SELECT id, sender, recipients, message, attempts FROM mail_queue
			WHERE next_attempt_at <= ? AND lease_until <= ? ORDER BY next_attempt_at LIMIT ?`+skip, micros(now), micros(now), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var q mail.Queued
			var rcpt string
			if err := rows.Scan(&q.ID, &q.From, &rcpt, &q.Message, &q.Attempts); err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(rcpt), &q.To); err != nil {
				return fmt.Errorf("queued mail %s: bad recipients", q.ID)
			}
			out = append(out, q)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		for _, q := range out {
			if _, err := t.exec(ctx, `UPDATE mail_queue SET lease_until = ? WHERE id = ?`, micros(now.Add(lease)), q.ID); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// MarkSent deletes a delivered message: its addresses and text leave the database.
func (s *Store) MarkSent(ctx context.Context, id string) error {
	_, err := s.db.writeExec(ctx, `DELETE FROM mail_queue WHERE id = ?`, id)
	return err
}

// MarkFailed counts a failed attempt and schedules the next one.
func (s *Store) MarkFailed(ctx context.Context, id string, next time.Time) error {
	_, err := s.db.writeExec(ctx, `UPDATE mail_queue SET attempts = attempts + 1, next_attempt_at = ?, lease_until = 0 WHERE id = ?`,
		micros(next), id)
	return err
}

// QueuedMail counts the messages waiting for delivery (metrics, tests).
func (s *Store) QueuedMail(ctx context.Context) (int, error) {
	var n int
	err := s.db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM mail_queue`).Scan(&n)
	return n, err
}
