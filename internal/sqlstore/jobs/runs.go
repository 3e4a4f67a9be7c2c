package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Claimed is what Claim took.
type Claimed struct {
	// Run is the run that begins now: the caller runs the job, renews the
	// lease with Heartbeat and ends the run with Finish. Empty when the job
	// is not to run now (not due, or another node holds its lease).
	Run string
	// Abandoned is the run of a node that stopped renewing the lease,
	// which this claim marked abandoned; empty for none.
	Abandoned string
}

// leaseRow is a job's row of job_leases.
type leaseRow struct {
	holder      string
	until       int64
	last, fail  sql.NullInt64
	run         sql.NullString
	initialised bool
}

// claimable reports whether the lease is free at now and the job due by s:
// its next time after the last success has come, and a failed run's
// back-off is over.
func (l leaseRow) claimable(now time.Time, s Schedule) bool {
	if now.Before(sqlstore.FromMicros(l.until)) {
		return false
	}
	if l.last.Valid && s.Next(sqlstore.FromMicros(l.last.Int64)).After(now) {
		return false
	}
	return !l.fail.Valid || !sqlstore.FromMicros(l.fail.Int64).Add(RetryWait(s)).After(now)
}

const selectLease = `SELECT holder, lease_until, last_run_at, failed_at, run_id FROM job_leases WHERE name = ?`

func (l *leaseRow) scan(row *sql.Row) error {
	err := row.Scan(&l.holder, &l.until, &l.last, &l.fail, &l.run)
	l.initialised = err == nil
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	return err
}

// Claim takes job's lease for holder, for lease, when the job is due by s
// and no lease on it runs (DESIGN §9), and begins a run; it returns the run
// (Claimed.Run empty when the job is not to run now). Of several nodes
// claiming at once exactly one gets the run. When the lease expired while
// its run was still running — its node died or stopped — that run is
// marked abandoned, recorded as job.run, and the job runs here. The
// schedule counts from the start of the last run that succeeded.
func (s *Service) Claim(ctx context.Context, job, holder string, sched Schedule, lease time.Duration) (Claimed, error) {
	if err := checkName(job); err != nil {
		return Claimed{}, err
	}
	// Most ticks find the job not due or held: a read answers them.
	var l leaseRow
	if err := l.scan(s.core.DB().ReadRow(ctx, selectLease, job)); err != nil {
		return Claimed{}, err
	}
	if l.initialised && !l.claimable(s.core.Now(), sched) {
		return Claimed{}, nil
	}
	var c Claimed
	err := s.core.Write(ctx, platformChain, func(t *sqlstore.Tx) error {
		c = Claimed{}
		if _, err := t.Exec(ctx, `INSERT INTO job_leases (name, holder, lease_until) VALUES (?, '', 0) ON CONFLICT (name) DO NOTHING`, job); err != nil {
			return err
		}
		var l leaseRow
		if err := l.scan(t.QueryRow(ctx, selectLease+t.ForUpdate(), job)); err != nil {
			return err
		}
		if !l.claimable(t.Now(), sched) {
			return nil
		}
		if l.run.Valid && l.run.String != "" {
			ok, err := abandon(ctx, t, l.run.String, "its node stopped renewing the lease")
			if err != nil {
				return err
			}
			if ok {
				c.Abandoned = l.run.String
			}
		}
		id := kluis.NewID(t.Now())
		if _, err := t.Exec(ctx, `INSERT INTO job_runs (id, job, holder, started_at, outcome, detail) VALUES (?, ?, ?, ?, ?, '')`,
			id, job, holder, sqlstore.Micros(t.Now()), kluis.JobRunning); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE job_leases SET holder = ?, lease_until = ?, run_id = ? WHERE name = ?`,
			holder, sqlstore.Micros(t.Now().Add(lease)), id, job); err != nil {
			return err
		}
		c.Run = id
		return nil
	})
	return c, err
}

// abandon marks a running run abandoned and records it; it reports whether
// the run was still running.
func abandon(ctx context.Context, t *sqlstore.Tx, id, detail string) (bool, error) {
	var job, holder, outcome string
	var started int64
	err := t.QueryRow(ctx, `SELECT job, holder, started_at, outcome FROM job_runs WHERE id = ?`+t.ForUpdate(), id).Scan(&job, &holder, &started, &outcome)
	if errors.Is(err, sql.ErrNoRows) || err == nil && outcome != kluis.JobRunning {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if _, err := t.Exec(ctx, `UPDATE job_runs SET outcome = ?, finished_at = ?, detail = ? WHERE id = ?`,
		kluis.JobAbandoned, sqlstore.Micros(t.Now()), detail, id); err != nil {
		return false, err
	}
	return true, appendRun(ctx, t, id, job, holder, sqlstore.FromMicros(started), kluis.JobAbandoned, detail)
}

// Heartbeat renews the lease of a claimed run for another lease from now;
// it reports false when the run no longer holds the lease (it expired and
// another node took the job over): the caller should stop the run.
func (s *Service) Heartbeat(ctx context.Context, job, run string, lease time.Duration) (bool, error) {
	held := false
	err := s.core.Write(ctx, "", func(t *sqlstore.Tx) error {
		res, err := t.Exec(ctx, `UPDATE job_leases SET lease_until = ? WHERE name = ? AND run_id = ?`,
			sqlstore.Micros(t.Now().Add(lease)), job, run)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		held = n == 1
		return err
	})
	return held, err
}

// Begin records the start of a run that no schedule claimed — one started
// by hand, such as a backup from the command line — and returns its id;
// Finish ends it. It takes no lease and its success does not move the
// job's schedule.
func (s *Service) Begin(ctx context.Context, job, holder string) (string, error) {
	if err := checkName(job); err != nil {
		return "", err
	}
	var id string
	err := s.core.Write(ctx, "", func(t *sqlstore.Tx) error {
		id = kluis.NewID(t.Now())
		_, err := t.Exec(ctx, `INSERT INTO job_runs (id, job, holder, started_at, outcome, detail) VALUES (?, ?, ?, ?, ?, '')`,
			id, job, holder, sqlstore.Micros(t.Now()), kluis.JobRunning)
		return err
	})
	return id, err
}

// Finish ends a run with outcome ok, failed or abandoned and detail (no
// personal data; cut to one line of 500 bytes), and appends job.run to the
// platform chain with the job, the outcome and the duration, in one
// transaction. For a claimed run it also gives the lease back: ok sets the
// job's last success (the schedule counts from this run's start) and
// resolves an open job_failed alert of the job; failed records the failure
// (the job is retried after RetryWait) and raises job_failed; abandoned —
// the node is stopping — lets the next claimer run the job at once. Errors:
// not_found for an unknown run, ErrNotRunning when it ended already.
func (s *Service) Finish(ctx context.Context, run, outcome, detail string) error {
	switch outcome {
	case kluis.JobOK, kluis.JobFailed, kluis.JobAbandoned:
	default:
		return fmt.Errorf("jobs: %q is not an outcome a run finishes with", outcome)
	}
	detail = clean(detail)
	return s.core.Write(ctx, platformChain, func(t *sqlstore.Tx) error {
		var job, holder, state string
		var started int64
		err := t.QueryRow(ctx, `SELECT job, holder, started_at, outcome FROM job_runs WHERE id = ?`+t.ForUpdate(), run).Scan(&job, &holder, &started, &state)
		if errors.Is(err, sql.ErrNoRows) {
			return kluis.ErrNotFound
		}
		if err != nil {
			return err
		}
		if state != kluis.JobRunning {
			return ErrNotRunning
		}
		now := sqlstore.Micros(t.Now())
		if _, err := t.Exec(ctx, `UPDATE job_runs SET outcome = ?, finished_at = ?, detail = ? WHERE id = ?`, outcome, now, detail, run); err != nil {
			return err
		}
		const release = `UPDATE job_leases SET holder = '', lease_until = 0, run_id = NULL`
		switch outcome {
		case kluis.JobOK:
			if _, err := t.Exec(ctx, release+`, last_run_at = ?, failed_at = NULL WHERE name = ? AND run_id = ?`, started, job, run); err != nil {
				return err
			}
			if _, err := s.settle(ctx, t, kluis.AlertJobFailed, job); err != nil {
				return err
			}
		case kluis.JobFailed:
			if _, err := t.Exec(ctx, release+`, failed_at = ? WHERE name = ? AND run_id = ?`, now, job, run); err != nil {
				return err
			}
			if _, _, err := s.raise(ctx, t, kluis.AlertJobFailed, job, "run "+run+" failed: "+detail); err != nil {
				return err
			}
		default:
			if _, err := t.Exec(ctx, release+` WHERE name = ? AND run_id = ?`, job, run); err != nil {
				return err
			}
		}
		return appendRun(ctx, t, run, job, holder, sqlstore.FromMicros(started), outcome, detail)
	})
}

// FindJobRuns lists the newest runs first, of job or of every job (job
// empty), at most limit (1 to 1000; 0 means 50). Every operator role and
// the command line. Errors: forbidden, invalid_input (limit).
func (s *Service) FindJobRuns(ctx context.Context, actor kluis.Actor, job string, limit int) ([]kluis.JobRun, error) {
	if !kluis.CanSeeJobs(actor) {
		return nil, s.core.Refuse(ctx, platformChain, actor, "jobs.list", "")
	}
	if limit == 0 {
		limit = 50
	}
	if limit < 1 || limit > 1000 {
		return nil, kluis.Invalid(map[string]string{"limit": "must be 1 to 1000"})
	}
	q, args := `SELECT id, job, holder, started_at, finished_at, outcome, detail FROM job_runs`, []any{}
	if job != "" {
		q, args = q+` WHERE job = ?`, append(args, job)
	}
	rows, err := s.core.DB().Query(ctx, q+` ORDER BY started_at DESC, id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kluis.JobRun
	for rows.Next() {
		var r kluis.JobRun
		var started int64
		var finished sql.NullInt64
		if err := rows.Scan(&r.ID, &r.Job, &r.Holder, &started, &finished, &r.Outcome, &r.Detail); err != nil {
			return nil, err
		}
		r.StartedAt, r.FinishedAt = sqlstore.FromMicros(started), sqlstore.NullMicros(finished)
		out = append(out, r)
	}
	return out, rows.Err()
}

// LastSuccesses returns when each job's last successful claimed run
// started: the metrics' kluis_job_last_success_timestamp_seconds, the same
// on every node.
func (s *Service) LastSuccesses(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.core.DB().Query(ctx, `SELECT name, last_run_at FROM job_leases WHERE last_run_at IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var name string
		var at int64
		if err := rows.Scan(&name, &at); err != nil {
			return nil, err
		}
		out[name] = sqlstore.FromMicros(at)
	}
	return out, rows.Err()
}
