package sqlstore

import (
	"context"
	"database/sql"
	"time"
)

// ClaimJob takes the lease of the periodic job name for holder (DESIGN §9)
// when the job is due — its last run at least every ago — and no other
// holder's lease is running; it reports whether holder should run it now.
// The same code runs on one node (SQLite) and many (PostgreSQL): the lease
// row decides, so each job runs on one node at a time.
func (s *Core) ClaimJob(ctx context.Context, name, holder string, every, lease time.Duration) (bool, error) {
	due := false
	err := s.Write(ctx, "", func(t *Tx) error {
		if _, err := t.Exec(ctx, `INSERT INTO job_leases (name, holder, lease_until) VALUES (?, '', 0) ON CONFLICT (name) DO NOTHING`, name); err != nil {
			return err
		}
		var h string
		var until int64
		var last sql.NullInt64
		if err := t.QueryRow(ctx, `SELECT holder, lease_until, last_run_at FROM job_leases WHERE name = ?`+t.db.ForUpdate(), name).Scan(&h, &until, &last); err != nil {
			return err
		}
		if last.Valid && t.Now().Sub(FromMicros(last.Int64)) < every || t.Now().Before(FromMicros(until)) && h != holder {
			return nil
		}
		due = true
		_, err := t.Exec(ctx, `UPDATE job_leases SET holder = ?, lease_until = ? WHERE name = ?`, holder, Micros(t.Now().Add(lease)), name)
		return err
	})
	return due, err
}
