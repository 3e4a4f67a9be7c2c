package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/mail"
)

// envelope is a queued message as sealed in mail_queue.envelope: everything
// that names or addresses the recipient, in one ciphertext.
type envelope struct {
	From    string   `json:"from"`
	To      []string `json:"to"`
	Message []byte   `json:"message"`
}

// mailKey is the key a queued message is sealed under: its recipient's user
// key, so that deleting the user makes every copy unreadable; else the
// organisation's key, else the platform key.
func mailKey(org kluis.OrgID, user kluis.UserID) keys.KeyRef {
	switch {
	case user != "":
		return UserKey(org, user)
	case org != "":
		return keys.OrgKey(string(org))
	}
	return keys.PlatformKey()
}

func mailField(id string, org kluis.OrgID) keys.FieldRef {
	return keys.FieldRef{Org: string(org), Table: tabMail, Column: colEnvelope, Row: id}
}

func (s *Store) sealEnvelope(ctx context.Context, id string, org kluis.OrgID, user kluis.UserID, e envelope) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	return s.Seal(ctx, mailKey(org, user), mailField(id, org), b)
}

var errBadEnvelope = errors.New("not a mail envelope")

func (s *Store) openEnvelope(ctx context.Context, id string, org kluis.OrgID, c []byte) (envelope, error) {
	var e envelope
	b, err := s.Open(ctx, mailField(id, org), c)
	if err != nil {
		return e, err
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("%w: queued mail %s", errBadEnvelope, id)
	}
	return e, nil
}

// The store is the mail worker's queue (mail.Queue): mail is queued in the
// transaction of the action that sends it and stays until delivered, so a
// failed delivery is retried and nothing is lost.
var _ mail.Queue = (*Store)(nil)

// ClaimDue leases up to limit due messages to the caller until the lease
// ends, so two workers (or nodes) never send the same message at once.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]mail.Queued, error) {
	var out []mail.Queued
	err := s.Write(ctx, "", func(t *Tx) error {
		// An invitation mail that could not be delivered while its link
		// worked is useless and carries a token: drop it.
		if _, err := t.Exec(ctx, `DELETE FROM mail_queue WHERE kind = ? AND created_at < ?`, string(mail.Invitation), Micros(now.Add(-InvitationTTL))); err != nil {
			return err
		}
		// The same for reset links, and the links themselves once expired.
		if _, err := t.Exec(ctx, `DELETE FROM mail_queue WHERE kind = ? AND created_at < ?`, string(mail.PasswordReset), Micros(now.Add(-ResetTTL))); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `DELETE FROM password_resets WHERE expires_at < ?`, Micros(now)); err != nil {
			return err
		}
		skip := ""
		if s.db.Engine == Postgres {
			skip = " FOR UPDATE SKIP LOCKED"
		}
		rows, err := t.Query(ctx, `SELECT id, org_id, envelope, attempts FROM mail_queue
			WHERE next_attempt_at <= ? AND lease_until <= ? ORDER BY next_attempt_at LIMIT ?`+skip, Micros(now), Micros(now), limit)
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
			env, err := s.openEnvelope(ctx, r.q.ID, kluis.OrgID(r.org.String), r.env)
			if err != nil && !errors.Is(err, keys.ErrKeyDestroyed) && !errors.Is(err, keys.ErrDecrypt) && !errors.Is(err, errBadEnvelope) {
				return err // the key store is unreachable, say: the message waits
			}
			if err != nil {
				// Unreadable (its key destroyed, or altered): it can
				// never be sent. Dropped, and logged without content.
				s.log.Error("queued mail cannot be decrypted; dropped", "mail", r.q.ID, "err", err.Error())
				if _, err := t.Exec(ctx, `DELETE FROM mail_queue WHERE id = ?`, r.q.ID); err != nil {
					return err
				}
				continue
			}
			r.q.From, r.q.To, r.q.Message = env.From, env.To, env.Message
			out = append(out, r.q)
		}
		for _, q := range out {
			if _, err := t.Exec(ctx, `UPDATE mail_queue SET lease_until = ? WHERE id = ?`, Micros(now.Add(lease)), q.ID); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// MarkSent deletes a delivered message: its addresses and text leave the database.
func (s *Store) MarkSent(ctx context.Context, id string) error {
	_, err := s.db.WriteExec(ctx, `DELETE FROM mail_queue WHERE id = ?`, id)
	return err
}

// MarkFailed counts a failed attempt and schedules the next one.
func (s *Store) MarkFailed(ctx context.Context, id string, next time.Time) error {
	_, err := s.db.WriteExec(ctx, `UPDATE mail_queue SET attempts = attempts + 1, next_attempt_at = ?, lease_until = 0 WHERE id = ?`,
		Micros(next), id)
	return err
}

// QueuedMail counts the messages waiting for delivery (metrics, tests).
func (s *Store) QueuedMail(ctx context.Context) (int, error) {
	var n int
	err := s.db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM mail_queue`).Scan(&n)
	return n, err
}
