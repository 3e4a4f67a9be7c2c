package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kluis/kluis"
)

// Crypto-shredding (DESIGN §4). Deleting a user or an organisation destroys
// its keys, so that the rows left behind anywhere — a copy of the data
// database, a dump, a backup, the ciphertext in audit details — can no longer
// be decrypted. The key store is another database, so the destruction cannot
// commit with the deletion. The order protects the data: the deletion commits
// first, with a key_shreds row saying which keys to destroy; the keys are
// destroyed right after, and the row is removed. If that fails (the key store
// is unreachable, the process dies), the row stays and Shred retries it: at
// the next deletion, every minute while serving, and at every start. Never
// the other way round: destroying first and then failing to delete would
// make a live user's data unreadable.

// scheduleShred records, in the deleting transaction, that the user's key
// (user "" for every key of the organisation) is to be destroyed, and
// returns the record's id.
func (t *Tx) ScheduleShred(ctx context.Context, org kluis.OrgID, user kluis.UserID) (string, error) {
	u := sql.NullString{String: string(user), Valid: user != ""}
	id := kluis.NewID(t.Now())
	if _, err := t.Exec(ctx, `INSERT INTO key_shreds (id, org_id, user_id, created_at, attempts) VALUES (?, ?, ?, ?, 0)`,
		id, org, u, Micros(t.Now())); err != nil {
		return "", fmt.Errorf("schedule key destruction: %w", err)
	}
	return id, nil
}

// ScheduleProjectShred records, in the transaction that purges a project,
// that the project's keys are to be destroyed, and returns the record's id.
func (t *Tx) ScheduleProjectShred(ctx context.Context, org kluis.OrgID, project kluis.ProjectID) (string, error) {
	id := kluis.NewID(t.Now())
	if _, err := t.Exec(ctx, `INSERT INTO key_shreds (id, org_id, project_id, created_at, attempts) VALUES (?, ?, ?, ?, 0)`,
		id, org, project, Micros(t.Now())); err != nil {
		return "", fmt.Errorf("schedule key destruction: %w", err)
	}
	return id, nil
}

// shredNow destroys the keys one deletion scheduled, right after it
// committed, as the deleting request's actor; a failure is logged and
// retried later by Shred, the deletion stands. Only that deletion's keys:
// another organisation's pending destruction is never recorded under this
// request's actor.
func (s *Core) ShredNow(ctx context.Context, actor kluis.Actor, id string) {
	if n, err := s.shred(context.WithoutCancel(ctx), actor, id); err != nil {
		s.log.Error("key destruction failed; it is retried", "pending", n, "err", err.Error())
	}
}

// Shred destroys the keys of deleted users and organisations whose
// destruction did not happen right after the deletion (see above), as the
// system actor, and returns how many are still pending afterwards.
func (s *Core) Shred(ctx context.Context) (pending int, err error) {
	return s.shred(ctx, kluis.SystemActor, "")
}

// shred works on the pending destruction id, or on all when id is "", as
// actor's change, and records the key events in the audit chains.
func (s *Core) shred(ctx context.Context, actor kluis.Actor, only string) (pending int, err error) {
	type job struct {
		id      string
		org     kluis.OrgID
		user    sql.NullString
		project sql.NullString
	}
	query, args := `SELECT id, org_id, user_id, project_id FROM key_shreds ORDER BY created_at, id`, []any(nil)
	if only != "" {
		query, args = `SELECT id, org_id, user_id, project_id FROM key_shreds WHERE id = ?`, []any{only}
	}
	rows, err := s.db.writer.QueryContext(ctx, s.db.Q(query), args...)
	if err != nil {
		return 0, err
	}
	var jobs []job
	for rows.Next() {
		var j job
		if err := rows.Scan(&j.id, &j.org, &j.user, &j.project); err != nil {
			rows.Close()
			return 0, err
		}
		jobs = append(jobs, j)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(jobs) > 0 {
		defer s.DrainAfterKeyChange(ctx)
	}
	var firstErr error
	for _, j := range jobs {
		var derr error
		switch {
		case j.user.Valid:
			derr = s.keys.DestroyUserKey(ctx, string(j.org), j.user.String, actor.AuditName())
		case j.project.Valid:
			derr = s.keys.DestroyProjectKey(ctx, string(j.org), j.project.String, actor.AuditName())
		default:
			derr = s.keys.DestroyOrgKeys(ctx, string(j.org), actor.AuditName())
		}
		if derr != nil {
			pending++
			if firstErr == nil {
				firstErr = derr
			}
			s.db.WriteExec(ctx, `UPDATE key_shreds SET attempts = attempts + 1 WHERE id = ?`, j.id)
			continue
		}
		if _, err := s.db.WriteExec(ctx, `DELETE FROM key_shreds WHERE id = ?`, j.id); err != nil {
			pending++ // destroyed; destroying again does nothing
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return pending, firstErr
}
