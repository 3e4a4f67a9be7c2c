package kluis

import (
	"context"
	"time"
)

// Backups (R28 R30 R31 R32 R42): kluis backs itself up on a schedule to one
// or more targets in other places, every object encrypted with age to the
// operator's recipients, keeps backups no longer than its retention rules
// and a hard maximum age allow, restores a backup into a scratch place on a
// schedule to prove it restores (a drill), and records all of it. The
// operator sees every backup and drill; an organisation's people see where
// their data is backed up and when it last was, and was last proven to
// restore.

// Backup statuses. A backup is ok when every target holds it, partial when
// some do, failed when none does.
const (
	BackupRunning = "running"
	BackupOK      = "ok"
	BackupPartial = "partial"
	BackupFailed  = "failed"
	BackupDeleted = "deleted" // removed from every target on request
	BackupExpired = "expired" // removed from every target by retention
)

// Backup is one backup run and where it went.
type Backup struct {
	ID         string
	StartedAt  time.Time
	FinishedAt time.Time // zero while running
	// Kind is "full" when no target held any of its chunks before, else
	// "incremental".
	Kind   string
	Status string
	// Size is the bytes this run wrote to its targets (each target counted).
	Size int64
	// Copies are the targets it was written to, in configuration order.
	Copies []BackupCopy
	// VerifiedAt and Verified are the last verification: "intact" or
	// "damaged"; zero and "" when never verified.
	VerifiedAt time.Time
	Verified   string
}

// BackupCopy is one backup on one target.
type BackupCopy struct {
	Target   string // the target's URL without secrets
	Location string // the declared location, "" when not declared (R42)
	Status   string // "ok", "failed", "deleted"
	Error    string // why it failed: no personal data, never a secret
	Bytes    int64
}

// BackupDrill is one restore drill (R32): a backup restored into a scratch
// place and checked.
type BackupDrill struct {
	ID       string
	BackupID string
	At       time.Time
	Duration time.Duration
	// Outcome is "ok" or "failed"; Detail says what was checked or what
	// failed (counts and names, no personal data).
	Outcome string
	Detail  string
}

// BackupHolding is what one backup holds for one organisation (R31):
// counts, never the data itself.
type BackupHolding struct {
	BackupID    string
	At          time.Time
	Org         OrgID
	Users       int64
	Projects    int64
	Files       int64
	Versions    int64
	Chunks      int64
	AuditEvents int64
}

// BackupLocation is a declared place backups go (R42).
type BackupLocation struct {
	Target   string
	Location string
}

// BackupOverview is what an organisation's people see of backups: where
// they go, and when the newest good backup and the newest good drill were.
type BackupOverview struct {
	Locations  []string // declared locations, "" for a target without one
	LastBackup time.Time
	LastDrill  time.Time
	MaxAgeDays int
}

// BackupService is the record of backups and drills. Runs, restores and
// deletions are made by the backup engine (kluis backup, and the scheduled
// jobs of kluis serve); this is what pages and commands read.
type BackupService interface {
	// Backups lists backups, newest first (at most limit). Operators only
	// (CanSeeBackups); else EForbidden.
	Backups(ctx context.Context, actor Actor, limit int) ([]Backup, error)
	// Drills lists restore drills, newest first (at most limit). Operators
	// only (CanSeeBackups).
	Drills(ctx context.Context, actor Actor, limit int) ([]BackupDrill, error)
	// Holdings says what each retained backup holds for one organisation
	// (R31). Operator admins (CanManageOrgs), and the organisation's
	// managers; other operator staff get EForbidden, recorded in the
	// organisation's chain as backup.holdings, anyone else ENotFound.
	Holdings(ctx context.Context, actor Actor, org OrgID) ([]BackupHolding, error)
	// Overview is what the organisation's people see (R42): every person of
	// the organisation.
	Overview(ctx context.Context, actor Actor, org OrgID) (BackupOverview, error)
	// Schedule says when the next backup is due and what is kept.
	// Operators only (CanSeeBackups).
	Schedule(ctx context.Context, actor Actor) (BackupSchedule, error)
}

// BackupSchedule is how backups are configured: the targets with their
// declared locations, the next daily run and the retention rules.
type BackupSchedule struct {
	Targets    []BackupLocation
	Next       time.Time // zero when no target is configured
	Retention  string    // e.g. "14d,8w,24m"
	MaxAgeDays int
}

// CanSeeBackups: every operator role sees backups and drills (they hold no
// personal data: ids, times, sizes, targets and outcomes).
func CanSeeBackups(a Actor) bool {
	return a.HasOperatorRole(OperatorAdmin, OperatorSupport, OperatorSecurity)
}

// CanSeeBackupHoldings: what a backup holds for an organisation — its
// managers, and operator admins (R31).
func CanSeeBackupHoldings(a Actor, org OrgID) bool {
	return a.IsManager(org) || a.HasOperatorRole(OperatorAdmin) || a.CLI
}

// CanSeeBackupOverview: every person of the organisation sees where its
// data is backed up and whether backups and drills are current (R42).
func CanSeeBackupOverview(a Actor, org OrgID) bool { return a.IsOrgUser(org) }
