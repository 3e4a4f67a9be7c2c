// Package outbox is the queues of mail and text messages as the delivery
// workers see them (mail.Queue, sms.Queue): messages are queued in the
// transaction of the action that sends them (sqlstore.Tx.QueueMail,
// QueueSMS) and stay until delivered, so a failed delivery is retried and
// nothing is lost. Leases keep two workers, on this node or another, from
// sending the same message. Both queues are one implementation (queue)
// over their own table; they differ in what lapses and how a message is
// opened.
package outbox

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/sms"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Mail is the mail queue.
type Mail struct{ q queue[mail.Queued] }

// SMS is the text-message queue.
type SMS struct{ q queue[sms.Queued] }

var (
	_ mail.Queue = (*Mail)(nil)
	_ sms.Queue  = (*SMS)(nil)
)

// queue is one outbox table (mail_queue, sms_queue: id, org_id, envelope,
// attempts, next_attempt_at, lease_until).
type queue[M any] struct {
	core  *sqlstore.Core
	table string // a constant, never input
	kind  string // how log lines name a message: "mail", "sms"
	// prune drops, in the claiming transaction, what lapsed before it
	// could be sent.
	prune func(ctx context.Context, t *sqlstore.Tx, now time.Time) error
	// open decrypts a claimed envelope into the message the worker sends.
	open func(ctx context.Context, id string, org kluis.OrgID, envelope []byte, attempts int) (M, error)
}

// claim leases up to limit due messages to the caller until the lease
// ends, so two workers (or nodes) never send the same message at once. A
// message that can never be opened (its key destroyed, or altered) is
// dropped and logged without content; when the key store cannot be
// reached, nothing is claimed and the messages wait.
func (q *queue[M]) claim(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]M, error) {
	var out []M
	err := q.core.Write(ctx, "", func(t *sqlstore.Tx) error {
		out = nil
		if err := q.prune(ctx, t, now); err != nil {
			return err
		}
		skip := ""
		if q.core.DB().Engine == sqlstore.Postgres {
			skip = " FOR UPDATE SKIP LOCKED"
		}
		rows, err := t.Query(ctx, `SELECT id, org_id, envelope, attempts FROM `+q.table+`
			WHERE next_attempt_at <= ? AND lease_until <= ? ORDER BY next_attempt_at LIMIT ?`+skip, sqlstore.Micros(now), sqlstore.Micros(now), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		type row struct {
			id       string
			org      sql.NullString
			env      []byte
			attempts int
		}
		var claimed []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.org, &r.env, &r.attempts); err != nil {
				return err
			}
			claimed = append(claimed, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		var ids []string
		for _, r := range claimed {
			m, err := q.open(ctx, r.id, kluis.OrgID(r.org.String), r.env, r.attempts)
			if err != nil && !errors.Is(err, keys.ErrKeyDestroyed) && !errors.Is(err, keys.ErrDecrypt) && !errors.Is(err, sqlstore.ErrBadEnvelope) {
				return err // the key store is unreachable, say: the message waits
			}
			if err != nil {
				q.core.Log().Error("queued message cannot be decrypted; dropped", q.kind, r.id, "err", err.Error())
				if _, err := t.Exec(ctx, `DELETE FROM `+q.table+` WHERE id = ?`, r.id); err != nil {
					return err
				}
				continue
			}
			out, ids = append(out, m), append(ids, r.id)
		}
		for _, id := range ids {
			if _, err := t.Exec(ctx, `UPDATE `+q.table+` SET lease_until = ? WHERE id = ?`, sqlstore.Micros(now.Add(lease)), id); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// sent deletes a delivered message: its addresses and text leave the
// database.
func (q *queue[M]) sent(ctx context.Context, id string) error {
	_, err := q.core.DB().WriteExec(ctx, `DELETE FROM `+q.table+` WHERE id = ?`, id)
	return err
}

// failed counts a failed attempt, ends the lease and schedules the next
// attempt.
func (q *queue[M]) failed(ctx context.Context, id string, next time.Time) error {
	_, err := q.core.DB().WriteExec(ctx, `UPDATE `+q.table+` SET attempts = attempts + 1, next_attempt_at = ?, lease_until = 0 WHERE id = ?`,
		sqlstore.Micros(next), id)
	return err
}

// count is the number of messages waiting for delivery.
func (q *queue[M]) count(ctx context.Context) (int, error) {
	var n int
	err := q.core.DB().ReadRow(ctx, `SELECT COUNT(*) FROM `+q.table).Scan(&n)
	return n, err
}
