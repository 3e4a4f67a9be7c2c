package kluis

import (
	"context"
	"slices"
	"time"
)

// Scheduled work (DESIGN §9): kluis serve runs periodic jobs — the daily
// check of every audit chain, purging projects, collecting chunks, the
// security digest, and the backups — each on one node at a time under a
// lease in the database. Every run is recorded (start, end, outcome) and
// audited in the platform chain as job.run. What needs the operator's
// attention becomes an Alert: mailed to the security address once when it
// opens, shown by `kluis jobs`, counted in the metrics, until an operator
// resolves it. Neither a run nor an alert holds personal data: a detail is
// counts and kluis's own words, a subject a job's name or a chain's id.

// The outcomes of a job run.
const (
	// JobRunning is a run that has begun and not ended.
	JobRunning = "running"
	// JobOK is a run that did its work.
	JobOK = "ok"
	// JobFailed is a run that ended in an error; the job is retried after a
	// short back-off.
	JobFailed = "failed"
	// JobAbandoned is a run whose node stopped (or died) before it ended:
	// the next node to claim the job marks it so and runs the job again.
	JobAbandoned = "abandoned"
)

// JobRun is one run of a scheduled job.
type JobRun struct {
	ID     string
	Job    string // the job's name: audit_verify, project_purge, …
	Holder string // the node that ran it (host name and a random part)
	// StartedAt is when the run began; FinishedAt is zero while it runs.
	StartedAt, FinishedAt time.Time
	Outcome               string // JobRunning, JobOK, JobFailed or JobAbandoned
	// Detail says what the run did or why it failed, without personal data.
	Detail string
}

// The kinds of alert.
const (
	// AlertAuditChainBroken: the daily check found an audit chain broken
	// (R25); the subject is the chain's id ("platform" or "org:ID").
	AlertAuditChainBroken = "audit_chain_broken"
	// AlertJobFailed: a scheduled job's run failed; the subject is the
	// job's name. It resolves itself when the job next succeeds.
	AlertJobFailed = "job_failed"
	// AlertBackupFailed: a backup could not be made or stored (R30).
	AlertBackupFailed = "backup_failed"
	// AlertBackupStale: the newest backup is older than it should be (R30).
	AlertBackupStale = "backup_stale"
	// AlertDrillFailed: a restore drill of the newest backup failed (R32).
	AlertDrillFailed = "drill_failed"
	// AlertInactiveLastManager: the retention job kept an organisation's
	// last manager although inactive beyond its period (R35); the subject
	// is the organisation's chain id ("org:ID"), never the person.
	AlertInactiveLastManager = "inactive_last_manager"
)

// AlertKinds are every kind of alert, in the order pages and metrics list
// them.
var AlertKinds = []string{AlertAuditChainBroken, AlertJobFailed, AlertBackupFailed, AlertBackupStale, AlertDrillFailed, AlertInactiveLastManager}

// ValidAlertKind reports whether kind is one of AlertKinds.
func ValidAlertKind(kind string) bool { return slices.Contains(AlertKinds, kind) }

// Alert is something the operator must look at. An open alert of a kind
// and subject is one row: raising it again while it is open moves its time
// and detail and counts the raise, and mails nobody again.
type Alert struct {
	ID      string
	Kind    string // one of AlertKinds
	Subject string // what it is about: a chain's id, a job's name, a backup target's name
	// OpenedAt is when it was first raised, At when it was last raised.
	OpenedAt, At time.Time
	Raised       int    // how often it was raised while open
	Detail       string // the latest raise's detail, without personal data
	ResolvedAt   time.Time
}

// JobService is the scheduled work as the operator's pages and commands
// see it.
type JobService interface {
	// FindJobRuns lists the newest runs first, of one job or of every job
	// (job empty), at most limit (1 to 1000; 0 means 50). Every operator
	// role and the command line (CanSeeJobs). Errors: forbidden.
	FindJobRuns(ctx context.Context, actor Actor, job string, limit int) ([]JobRun, error)
	// OpenAlerts lists the alerts not resolved, the most recently raised
	// first. Every operator role and the command line. Errors: forbidden.
	OpenAlerts(ctx context.Context, actor Actor) ([]Alert, error)
	// ResolveAlert marks an open alert resolved, recorded in the platform
	// chain as alert.resolved. Operator admins and security staff, and the
	// command line (CanResolveAlerts). Errors: forbidden, not_found (no
	// such alert, or resolved already).
	ResolveAlert(ctx context.Context, actor Actor, id string) error
}
