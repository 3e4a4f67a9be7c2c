package backups

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/backup"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Verification is the outcome of verifying one backup.
type Verification struct {
	ID string
	// Targets says per target "intact", "damaged: …" or "missing".
	Targets map[string]string
	Damaged bool
	Objects int
}

// ErrUnknownBackup means no target holds the backup asked for.
var ErrUnknownBackup = errors.New("no target holds this backup")

// Verify reads backup id back from every target that holds it and checks
// every object it consists of against the checksums its manifest records
// (the manifest itself is authenticated by age). It needs the drill key.
// Damage is reported, recorded and audited (backup.verify); an error means
// the check could not be made (ErrUnknownBackup, an unreachable target).
func (s *Service) Verify(ctx context.Context, actor kluis.Actor, id string) (Verification, error) {
	v := Verification{ID: id, Targets: map[string]string{}}
	if err := backup.CheckID(id); err != nil {
		return v, ErrUnknownBackup
	}
	ids, err := s.drillIdentities()
	if err != nil {
		return v, err
	}
	found := 0
	for _, t := range s.o.Targets {
		m, err := ReadManifest(ctx, t, ids, id)
		if errors.Is(err, backup.ErrNotExist) {
			v.Targets[t.Name()] = "missing"
			continue
		}
		if err != nil && !errors.Is(err, backup.ErrDamaged) {
			return v, fmt.Errorf("%s: %w", t.Name(), err)
		}
		found++
		if err == nil {
			var n int
			n, err = checkObjects(ctx, t, ids, m)
			v.Objects += n
			if err != nil && !errors.Is(err, backup.ErrDamaged) && !errors.Is(err, backup.ErrNotExist) {
				return v, fmt.Errorf("%s: %w", t.Name(), err)
			}
		}
		if err != nil {
			v.Damaged = true
			v.Targets[t.Name()] = "damaged: " + err.Error()
			continue
		}
		v.Targets[t.Name()] = "intact"
	}
	if found == 0 {
		return v, ErrUnknownBackup
	}
	outcome, verdict := "success", "intact"
	if v.Damaged {
		outcome, verdict = "failure", "damaged"
	}
	err = s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		if _, err := t.Exec(ctx, `UPDATE backups SET verified_at = ?, verify_outcome = ? WHERE id = ?`, sqlstore.Micros(t.Now()), verdict, id); err != nil {
			return err
		}
		return t.Append(ctx, audit.PlatformChain, actor, "backup.verify", id, outcome, map[string]any{"verdict": verdict, "objects": v.Objects, "targets": len(v.Targets)})
	})
	return v, err
}

// checkObjects checks the data stream and every chunk of m on t, and the
// key store a restore of it uses (checkKeys).
func checkObjects(ctx context.Context, t backup.Target, identities []age.Identity, m backup.Manifest) (int, error) {
	n, err := checkKeys(ctx, t, identities, m)
	if err != nil {
		return n, err
	}
	objs := []backup.Written{m.Data}
	for _, c := range m.Chunks {
		objs = append(objs, c.Written)
	}
	for _, w := range objs {
		if err := backup.Check(ctx, t, w.Name, w); err != nil {
			if errors.Is(err, backup.ErrNotExist) {
				return n, fmt.Errorf("%w: %s is missing", backup.ErrDamaged, w.Name)
			}
			return n, err
		}
		n++
	}
	return n, nil
}

func (s *Service) drillIdentities() ([]age.Identity, error) {
	if s.o.Drill == nil {
		return nil, errors.New("no drill key: set KLUIS_BACKUP_DRILL_IDENTITY or let kluis create DATA/keys/backup-drill.key")
	}
	return []age.Identity{s.o.Drill}, nil
}

// Delete removes backup id from every target on request (R31) and records
// it (backup.delete); chunks no other backup uses go with it.
func (s *Service) Delete(ctx context.Context, actor kluis.Actor, id string) error {
	if !actor.CLI && !actor.System && !kluis.CanManageOrgs(actor) {
		return kluis.ErrForbidden
	}
	if err := backup.CheckID(id); err != nil {
		return ErrUnknownBackup
	}
	found := 0
	for _, t := range s.o.Targets {
		objs, err := t.List(ctx, "backups/"+id+"/")
		if err != nil {
			return fmt.Errorf("%s: %w", t.Name(), err)
		}
		if len(objs) > 0 {
			found++
		}
	}
	if found == 0 {
		return ErrUnknownBackup
	}
	return s.remove(ctx, actor, []string{id}, kluis.BackupDeleted, "backup.delete")
}

// remove deletes backups from every target, then the chunks no remaining
// backup names, and records each removal: a copy is marked deleted on the
// targets that removed it, and the backup is recorded removed (with its
// audit event) only once every target has. A target that failed keeps the
// backup, and the error says so; the next expiry (or delete) tries again,
// since both work from what the targets hold.
func (s *Service) remove(ctx context.Context, actor kluis.Actor, ids []string, status, action string) error {
	var errs []error
	failed := map[string][]string{} // backup id → targets that still hold it
	for _, t := range s.o.Targets {
		for _, id := range ids {
			// The manifest goes first: a half-removed backup is no backup.
			var terr error
			for _, name := range []string{backup.ManifestName(id), backup.DataName(id)} {
				if err := t.Delete(ctx, name); err != nil && terr == nil {
					terr = err
				}
			}
			if terr == nil {
				rest, err := t.List(ctx, "backups/"+id+"/")
				for _, o := range rest {
					if derr := t.Delete(ctx, o.Name); derr != nil && err == nil {
						err = derr
					}
				}
				terr = err
			}
			if terr != nil {
				errs = append(errs, fmt.Errorf("%s: removing %s: %w", t.Name(), id, terr))
				failed[id] = append(failed[id], t.Name())
			}
		}
		if err := s.collect(ctx, t); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.Name(), err))
		}
	}
	for _, id := range ids {
		err := s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
			for _, tg := range s.o.Targets {
				if slices.Contains(failed[id], tg.Name()) {
					continue
				}
				if _, err := t.Exec(ctx, `UPDATE backup_copies SET status = 'deleted' WHERE backup_id = ? AND target = ?`, id, tg.Name()); err != nil {
					return err
				}
			}
			if len(failed[id]) > 0 {
				return nil
			}
			if _, err := t.Exec(ctx, `UPDATE backups SET status = ?, removed_at = ? WHERE id = ?`, status, sqlstore.Micros(t.Now()), id); err != nil {
				return err
			}
			return t.Append(ctx, audit.PlatformChain, actor, action, id, "success", map[string]any{"targets": len(s.o.Targets)})
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// collect deletes the chunk objects of t that no backup on t names, unless
// a backup is running (it may be about to name one of them).
func (s *Service) collect(ctx context.Context, t backup.Target) error {
	ids, err := s.drillIdentities()
	if err != nil {
		s.o.Log.Warn("backup chunks not collected: no drill key")
		return nil
	}
	running := 0
	if err := s.core.Read(ctx, func(tx *sqlstore.Tx) error {
		return tx.QueryRow(ctx, `SELECT COUNT(*) FROM backups WHERE status = 'running' AND started_at > ?`,
			sqlstore.Micros(tx.Now().Add(-6*time.Hour))).Scan(&running)
	}); err != nil {
		return err
	}
	if running > 0 {
		return nil
	}
	backups, err := listBackups(ctx, t)
	if err != nil {
		return err
	}
	used := map[string]bool{}
	for _, id := range backups {
		m, err := ReadManifest(ctx, t, ids, id)
		if err != nil {
			// A manifest that cannot be read protects nothing it names:
			// keep every chunk rather than guess.
			return fmt.Errorf("reading the manifest of %s: %w", id, err)
		}
		for _, c := range m.Chunks {
			used[c.Name] = true
		}
	}
	objs, err := t.List(ctx, "chunks/")
	if err != nil {
		return err
	}
	for _, o := range objs {
		if !used[o.Name] {
			if err := t.Delete(ctx, o.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// listBackups returns the ids of the backups whose manifest t holds, oldest
// first.
func listBackups(ctx context.Context, t backup.Target) ([]string, error) {
	objs, err := t.List(ctx, "backups/")
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, o := range objs {
		if strings.HasSuffix(o.Name, "/manifest.age") {
			if id, ok := backup.IDFromName(o.Name); ok {
				ids = append(ids, id)
			}
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Expire applies retention on every target: backups the rules no longer
// keep, and every backup older than the maximum age, are removed (recorded
// as backup.expire); key store objects older than KeysMaxAge go too, but
// the newest stays. A backup goes only when the rules keep it on no target:
// a target that missed the newest runs (partial backups) keeps its own
// newest. It returns the ids it removed.
func (s *Service) Expire(ctx context.Context) ([]string, error) {
	now := s.core.Now()
	drop, kept := map[string]bool{}, map[string]bool{}
	var errs []error
	for _, t := range s.o.Targets {
		ids, err := listBackups(ctx, t)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.Name(), err))
			continue
		}
		times := make([]time.Time, len(ids))
		for i, id := range ids {
			times[i], _ = backup.IDTime(id)
		}
		for i, keep := range s.o.Retention.Keep(now, times) {
			if keep {
				kept[ids[i]] = true
			} else {
				drop[ids[i]] = true
			}
		}
		keysObjs, err := t.List(ctx, "keys/")
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.Name(), err))
			continue
		}
		var keyIDs []string
		for _, o := range keysObjs {
			if id, ok := backup.IDFromName(o.Name); ok {
				keyIDs = append(keyIDs, id)
			}
		}
		sort.Strings(keyIDs)
		for i, id := range keyIDs {
			at, _ := backup.IDTime(id)
			if i < len(keyIDs)-1 && now.Sub(at) > s.o.KeysMaxAge {
				if err := t.Delete(ctx, backup.KeysName(id)); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", t.Name(), err))
				}
			}
		}
	}
	var out []string
	for id := range drop {
		if !kept[id] {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	if len(out) > 0 {
		errs = append(errs, s.remove(ctx, kluis.SystemActor, out, kluis.BackupExpired, "backup.expire"))
	}
	return out, errors.Join(errs...)
}

// NewestGood returns when the newest backup that every target got
// finished; zero when there is none.
func (s *Service) NewestGood(ctx context.Context) (time.Time, error) {
	var at time.Time
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		var v *int64
		if err := t.QueryRow(ctx, `SELECT MAX(finished_at) FROM backups WHERE status = 'ok'`).Scan(&v); err != nil {
			return err
		}
		if v != nil {
			at = sqlstore.FromMicros(*v)
		}
		return nil
	})
	return at, err
}

// FirstAttempt returns when the first backup was started; zero when none
// ever was.
func (s *Service) FirstAttempt(ctx context.Context) (time.Time, error) {
	var at time.Time
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		var v *int64
		if err := t.QueryRow(ctx, `SELECT MIN(started_at) FROM backups`).Scan(&v); err != nil {
			return err
		}
		if v != nil {
			at = sqlstore.FromMicros(*v)
		}
		return nil
	})
	return at, err
}
