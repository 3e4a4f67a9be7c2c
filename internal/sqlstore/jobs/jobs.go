// Package jobs is the area of scheduled work (DESIGN §9): the leases that
// let each periodic job run on one node at a time, the record of every
// run, and the operator's alerts.
//
// A job's lease is one row of job_leases: the node holding it, until when,
// the run it holds it for, when the job last succeeded and last failed.
// Claim takes the lease when the job is due by its Schedule and no lease
// runs, and begins a run in the same transaction; the node renews the lease
// (Heartbeat) while the run goes on and ends it with Finish, which records
// the outcome in job_runs and appends job.run to the platform chain in one
// transaction. A node that dies mid-run stops renewing: once the lease has
// expired, the next node to claim the job marks that run abandoned (also
// audited) and runs the job itself. A failed run is retried after
// RetryWait; an abandoned one at once.
//
// Alerts are what needs the operator: one open row per kind and subject,
// raised again without a new row, mailed to the security address once when
// it opens, resolved by an operator (or by kluis when the job that failed
// succeeds). Nothing here holds personal data: details are kluis's own
// words and counts, subjects are names of jobs and ids of chains.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/sqlstore"
)

// platformChain is where every run and alert is recorded.
const platformChain = audit.PlatformChain

// Service is the scheduled work's area.
type Service struct {
	core *sqlstore.Core
	// securityEmail receives a mail when an alert opens; empty: none.
	securityEmail string
}

// New returns the area over core; an alert that opens is mailed to
// securityEmail (the operator's security address) unless it is empty.
func New(core *sqlstore.Core, securityEmail string) *Service {
	return &Service{core: core, securityEmail: securityEmail}
}

// ErrNotRunning is Finish's answer for a run that has ended already: most
// likely another node marked it abandoned after this node's lease expired.
var ErrNotRunning = errors.New("jobs: the run has ended already (abandoned after its lease expired?)")

// maxDetail bounds a run's or an alert's detail, in bytes.
const maxDetail = 500

// clean makes a detail one bounded line: control characters become spaces.
func clean(s string) string {
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s))
	if len(s) > maxDetail {
		cut := maxDetail
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// validName reports whether a job's name is lower-case letters, digits and
// underscores: it goes into metrics' labels and the audit chain.
func validName(job string) bool {
	return job != "" && len(job) <= 64 && strings.IndexFunc(job, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_')
	}) < 0
}

func checkName(job string) error {
	if !validName(job) {
		return fmt.Errorf("jobs: %q is not a job name (lower-case letters, digits, underscores)", job)
	}
	return nil
}

// auditOutcome is the audit event's outcome for a run's.
func auditOutcome(outcome string) string {
	if outcome == kluis.JobOK {
		return "success"
	}
	return "failure"
}

// appendRun records a run that ended as job.run in the platform chain.
func appendRun(ctx context.Context, t *sqlstore.Tx, id, job, holder string, started time.Time, outcome, detail string) error {
	return t.Append(ctx, platformChain, kluis.SystemActor, "job.run", "job:"+job, auditOutcome(outcome), map[string]any{
		"run": id, "job": job, "holder": holder, "outcome": outcome,
		"duration_ms": t.Now().Sub(started).Milliseconds(), "detail": detail,
	})
}
