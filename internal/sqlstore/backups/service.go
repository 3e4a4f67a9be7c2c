// Package backups is kluis's backup engine and its record (R28 R30 R31 R32
// R42): a run takes one consistent logical snapshot of the data database
// (package sqldump, engine-neutral), copies the projects' sealed chunks as
// they are — never decrypted — to every target that does not hold them
// yet, writes the key store apart as its own object, and encrypts every
// object with age to the operator's recipients (package backup). Retention
// deletes what its rules no longer keep, from every target. A restore loads
// a backup into an empty data folder or database; a drill does so into a
// scratch folder and checks the result.
//
// Threat model. A target is trusted with nothing: it holds only age files,
// and inside them personal data and content stay sealed under kluis's
// keys, so a target that is read sees object names (backup ids, project
// ids and HMAC chunk addresses), sizes and times, never content. The age
// identity stays offline with the operator; the drill key on the server
// opens backups too, which gives nobody more than the server already
// holds. Key store objects hold the root key: they expire after 30 days
// by default, so that a key destroyed by an erasure is gone from every
// backup after that window, and older data backups can no longer reveal
// the erased data.
package backups

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"filippo.io/age"
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/backup"
	"github.com/kluis/kluis/internal/content"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Options configure the engine. Targets, Recipients and KeyFiles are needed
// to run backups; the record (the kluis.BackupService methods) works
// without them.
type Options struct {
	Targets    []backup.Target
	Recipients []age.Recipient
	// Drill is the drill key: every backup is also encrypted to it, and
	// verification and drills open backups with it.
	Drill *age.X25519Identity
	// Blobs is the content store the projects' chunks live in.
	Blobs content.Blobs
	// Witness is the audit checkpoints' copy outside the database; its
	// checkpoints go with every backup.
	Witness audit.WitnessLog
	// CheckpointKey is the audit checkpoints' public key.
	CheckpointKey []byte
	// KeyFiles are the files that belong to the key store: the root key and
	// the audit signing key, by the name a restore gives them under
	// DATA/keys ("root", "audit-signing.key").
	KeyFiles map[string]string
	// TmpDir holds a run's encrypted data and key streams before they are
	// copied to the targets.
	TmpDir string
	// Retention and KeysMaxAge decide what expires.
	Retention  backup.Retention
	KeysMaxAge time.Duration
	// Attempts is how often a target is tried in one run (default 3), and
	// Backoff the wait before the second try (doubling).
	Attempts int
	Backoff  time.Duration
	// Hour and Minute are the daily backup's time of day (UTC), for the
	// schedule pages show.
	Hour, Minute int
	Log          *slog.Logger
}

// Service is the backup engine and record.
type Service struct {
	core *sqlstore.Core
	o    Options
}

// New returns the engine over core.
func New(core *sqlstore.Core, o Options) *Service {
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.Backoff <= 0 {
		o.Backoff = 2 * time.Second
	}
	if o.Retention.MaxAge == 0 {
		o.Retention = backup.DefaultRetention
	}
	if o.KeysMaxAge == 0 {
		o.KeysMaxAge = backup.KeysMaxAge
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{core: core, o: o}
}

var _ kluis.BackupService = (*Service)(nil)

// recipients are the operator's and the drill key's.
func (s *Service) recipients() []age.Recipient {
	r := append([]age.Recipient(nil), s.o.Recipients...)
	if s.o.Drill != nil {
		r = append(r, s.o.Drill.Recipient())
	}
	return r
}

// Backups implements kluis.BackupService.
func (s *Service) Backups(ctx context.Context, actor kluis.Actor, limit int) ([]kluis.Backup, error) {
	if !kluis.CanSeeBackups(actor) && !actor.CLI && !actor.System {
		return nil, kluis.ErrForbidden
	}
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	var out []kluis.Backup
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		rows, err := t.Query(ctx, `SELECT id, started_at, finished_at, kind, status, size, verified_at, verify_outcome
			FROM backups ORDER BY started_at DESC, id DESC LIMIT ?`, limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			var b kluis.Backup
			var started int64
			var finished, verified sql.NullInt64
			if err := rows.Scan(&b.ID, &started, &finished, &b.Kind, &b.Status, &b.Size, &verified, &b.Verified); err != nil {
				rows.Close()
				return err
			}
			b.StartedAt = sqlstore.FromMicros(started)
			if finished.Valid {
				b.FinishedAt = sqlstore.FromMicros(finished.Int64)
			}
			if verified.Valid {
				b.VerifiedAt = sqlstore.FromMicros(verified.Int64)
			}
			out = append(out, b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		idx := map[string]int{}
		for i, b := range out {
			idx[b.ID] = i
		}
		rows, err = t.Query(ctx, `SELECT backup_id, target, location, status, error, bytes FROM backup_copies ORDER BY backup_id, position`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var c kluis.BackupCopy
			if err := rows.Scan(&id, &c.Target, &c.Location, &c.Status, &c.Error, &c.Bytes); err != nil {
				return err
			}
			if i, ok := idx[id]; ok {
				out[i].Copies = append(out[i].Copies, c)
			}
		}
		return rows.Err()
	})
	return out, err
}

// Backup returns one backup's record, or kluis.ErrNotFound.
func (s *Service) Backup(ctx context.Context, actor kluis.Actor, id string) (kluis.Backup, error) {
	all, err := s.Backups(ctx, actor, 0)
	if err != nil {
		return kluis.Backup{}, err
	}
	for _, b := range all {
		if b.ID == id {
			return b, nil
		}
	}
	return kluis.Backup{}, kluis.ErrNotFound
}

// Drills implements kluis.BackupService.
func (s *Service) Drills(ctx context.Context, actor kluis.Actor, limit int) ([]kluis.BackupDrill, error) {
	if !kluis.CanSeeBackups(actor) && !actor.CLI && !actor.System {
		return nil, kluis.ErrForbidden
	}
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	var out []kluis.BackupDrill
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		rows, err := t.Query(ctx, `SELECT id, backup_id, at, duration_ms, outcome, detail FROM backup_drills ORDER BY at DESC, id DESC LIMIT ?`, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d kluis.BackupDrill
			var at, ms int64
			if err := rows.Scan(&d.ID, &d.BackupID, &at, &ms, &d.Outcome, &d.Detail); err != nil {
				return err
			}
			d.At, d.Duration = sqlstore.FromMicros(at), time.Duration(ms)*time.Millisecond
			out = append(out, d)
		}
		return rows.Err()
	})
	return out, err
}

// Holdings implements kluis.BackupService.
func (s *Service) Holdings(ctx context.Context, actor kluis.Actor, org kluis.OrgID) ([]kluis.BackupHolding, error) {
	if !kluis.CanSeeBackupHoldings(actor, org) {
		if actor.IsOperator() {
			// Operator staff know the organisation exists: refused and
			// recorded in its chain, as a licence read is.
			return nil, s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "backup.holdings", "")
		}
		return nil, kluis.ErrNotFound
	}
	var out []kluis.BackupHolding
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		rows, err := t.Query(ctx, `SELECT h.backup_id, b.started_at, h.users, h.projects, h.files, h.versions, h.chunks, h.audit_events
			FROM backup_holdings h JOIN backups b ON b.id = h.backup_id
			WHERE h.org_id = ? AND b.status IN ('ok', 'partial') ORDER BY b.started_at DESC`, org)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			h := kluis.BackupHolding{Org: org}
			var at int64
			if err := rows.Scan(&h.BackupID, &at, &h.Users, &h.Projects, &h.Files, &h.Versions, &h.Chunks, &h.AuditEvents); err != nil {
				return err
			}
			h.At = sqlstore.FromMicros(at)
			out = append(out, h)
		}
		return rows.Err()
	})
	return out, err
}

// Overview implements kluis.BackupService.
func (s *Service) Overview(ctx context.Context, actor kluis.Actor, org kluis.OrgID) (kluis.BackupOverview, error) {
	if !kluis.CanSeeBackupOverview(actor, org) {
		return kluis.BackupOverview{}, kluis.ErrNotFound
	}
	o := kluis.BackupOverview{MaxAgeDays: int(s.o.Retention.MaxAge / (24 * time.Hour))}
	for _, t := range s.o.Targets {
		o.Locations = append(o.Locations, t.Location())
	}
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		var last, drill sql.NullInt64
		if err := t.QueryRow(ctx, `SELECT MAX(finished_at) FROM backups WHERE status = 'ok'`).Scan(&last); err != nil {
			return err
		}
		if err := t.QueryRow(ctx, `SELECT MAX(at) FROM backup_drills WHERE outcome = 'ok'`).Scan(&drill); err != nil {
			return err
		}
		if last.Valid {
			o.LastBackup = sqlstore.FromMicros(last.Int64)
		}
		if drill.Valid {
			o.LastDrill = sqlstore.FromMicros(drill.Int64)
		}
		return nil
	})
	return o, err
}

// Targets are the configured targets, for pages and commands.
func (s *Service) Targets() []backup.Target { return s.o.Targets }

// errNoTargets refuses a run without targets or recipients.
var errNoTargets = errors.New("no backup targets or recipients are configured: set KLUIS_BACKUP_TARGETS and KLUIS_BACKUP_RECIPIENTS")

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// RecordRestore appends backup.restore to the platform chain of the
// instance a whole-instance restore made (its chain continues from the
// backup's).
func (s *Service) RecordRestore(ctx context.Context, actor kluis.Actor, id string, details map[string]any) error {
	return s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		return t.Append(ctx, audit.PlatformChain, actor, "backup.restore", id, "success", details)
	})
}

// RecordDrill records a restore drill and audits it (backup.drill); d gets
// its id.
func (s *Service) RecordDrill(ctx context.Context, actor kluis.Actor, d *kluis.BackupDrill) error {
	return s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		if d.At.IsZero() {
			d.At = t.Now()
		}
		d.ID = kluis.NewID(d.At)
		if _, err := t.Exec(ctx, `INSERT INTO backup_drills (id, backup_id, at, duration_ms, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)`,
			d.ID, d.BackupID, sqlstore.Micros(d.At), d.Duration.Milliseconds(), d.Outcome, d.Detail); err != nil {
			return err
		}
		outcome := "success"
		if d.Outcome != "ok" {
			outcome = "failure"
		}
		return t.Append(ctx, audit.PlatformChain, actor, "backup.drill", d.BackupID, outcome,
			map[string]any{"duration_ms": d.Duration.Milliseconds(), "detail": d.Detail})
	})
}

// DrillCandidate returns the newest backup (or the oldest retained one)
// and the first target that holds it.
func (s *Service) DrillCandidate(ctx context.Context, oldest bool) (backup.Target, string, error) {
	var errs []error
	for _, t := range s.o.Targets {
		ids, err := listBackups(ctx, t)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.Name(), err))
			continue
		}
		if len(ids) == 0 {
			continue
		}
		if oldest {
			return t, ids[0], nil
		}
		return t, ids[len(ids)-1], nil
	}
	if len(errs) > 0 {
		return nil, "", errors.Join(errs...)
	}
	return nil, "", errors.New("no target holds a backup")
}

// Schedule implements kluis.BackupService.
func (s *Service) Schedule(ctx context.Context, actor kluis.Actor) (kluis.BackupSchedule, error) {
	if !kluis.CanSeeBackups(actor) && !actor.CLI && !actor.System {
		return kluis.BackupSchedule{}, kluis.ErrForbidden
	}
	r := s.o.Retention
	out := kluis.BackupSchedule{Retention: fmt.Sprintf("%dd,%dw,%dm", r.Daily, r.Weekly, r.Monthly), MaxAgeDays: int(r.MaxAge / (24 * time.Hour))}
	for _, t := range s.o.Targets {
		out.Targets = append(out.Targets, kluis.BackupLocation{Target: t.Name(), Location: t.Location()})
	}
	if len(s.o.Targets) > 0 {
		now := s.core.Now().UTC()
		next := time.Date(now.Year(), now.Month(), now.Day(), s.o.Hour, s.o.Minute, 0, 0, time.UTC)
		if !next.After(now) {
			next = next.Add(24 * time.Hour)
		}
		out.Next = next
	}
	return out, nil
}
