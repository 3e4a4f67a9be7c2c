package licences

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Load returns the organisation's licence: the stored one, or no limits
// and the default timeout when none was ever set.
func Load(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID) (kluis.Licence, error) {
	var users, projects, active, storage, ends sql.NullInt64
	var l kluis.Licence
	var updated int64
	err := t.QueryRow(ctx, `SELECT max_users, max_projects, max_active_projects, max_storage_bytes, ends_at, activity_timeout, updated_at
		FROM licences WHERE org_id = ?`, org).Scan(&users, &projects, &active, &storage, &ends, &l.ActivityTimeoutMinutes, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return kluis.Licence{}.Normalize(), nil
	}
	if err != nil {
		return l, err
	}
	l.MaxUsers, l.MaxProjects, l.MaxActiveProjects = nullInt(users), nullInt(projects), nullInt(active)
	if storage.Valid {
		l.MaxStorageBytes = &storage.Int64
	}
	if ends.Valid {
		e := sqlstore.FromMicros(ends.Int64)
		l.EndsAt = &e
	}
	l.UpdatedAt = sqlstore.FromMicros(updated)
	return l.Normalize(), nil
}

func nullInt(n sql.NullInt64) *int {
	if !n.Valid {
		return nil
	}
	v := int(n.Int64)
	return &v
}

func nullable[T int | int64](v *T) any {
	if v == nil {
		return nil
	}
	return int64(*v)
}

// errEnded refuses growth after the licence's end date.
func errEnded(l kluis.Licence) error {
	return kluis.LicenceLimit("ends_at", "the licence has ended")
}

// usage counts what the organisation uses; active projects are counted at
// the transaction's time with the licence's timeout.
func usage(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, l kluis.Licence) (kluis.LicenceUsage, error) {
	var u kluis.LicenceUsage
	if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM users WHERE org_id = ?`, org).Scan(&u.Users); err != nil {
		return u, err
	}
	if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM projects WHERE org_id = ?`, org).Scan(&u.Projects); err != nil {
		return u, err
	}
	var err error
	if u.ActiveProjects, err = activeProjects(ctx, t, org, l); err != nil {
		return u, err
	}
	u.StorageBytes, err = storageBytes(ctx, t, org)
	return u, err
}

func activeProjects(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, l kluis.Licence) (int, error) {
	var n int
	err := t.QueryRow(ctx, `SELECT COUNT(DISTINCT project_id) FROM activity_periods WHERE org_id = ? AND ended_at IS NULL AND started_at > ?`,
		org, sqlstore.Micros(t.Now().Add(-l.ActivityTimeout()))).Scan(&n)
	return n, err
}

// storageBytes is every stored chunk of the organisation's projects, each
// counted once (content_chunks holds one row per chunk and project).
func storageBytes(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID) (int64, error) {
	var n int64
	err := t.QueryRow(ctx, `SELECT COALESCE(SUM(c.size), 0) FROM content_chunks c JOIN projects p ON p.id = c.project_id WHERE p.org_id = ?`,
		org).Scan(&n)
	return n, err
}

// CheckUser refuses inviting one more person when the organisation has as
// many as its licence allows (everyone not erased counts, invited and
// disabled people too), or after the licence's end. Call it in the
// inviting transaction, before the insert.
func CheckUser(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID) error {
	l, err := Load(ctx, t, org)
	if err != nil {
		return err
	}
	if l.Ended(t.Now()) {
		return errEnded(l)
	}
	if l.MaxUsers == nil {
		return nil
	}
	var n int
	if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM users WHERE org_id = ?`, org).Scan(&n); err != nil {
		return err
	}
	if n+1 > *l.MaxUsers {
		return kluis.LicenceLimit("max_users", "the licence allows "+strconv.Itoa(*l.MaxUsers)+" users")
	}
	return nil
}

// CheckProject refuses creating one more project when the organisation has
// as many (those in the trash included) as its licence allows, or after the
// licence's end. Call it in the creating transaction, before the insert.
func CheckProject(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID) error {
	l, err := Load(ctx, t, org)
	if err != nil {
		return err
	}
	if l.Ended(t.Now()) {
		return errEnded(l)
	}
	if l.MaxProjects == nil {
		return nil
	}
	var n int
	if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM projects WHERE org_id = ?`, org).Scan(&n); err != nil {
		return err
	}
	if n+1 > *l.MaxProjects {
		return kluis.LicenceLimit("max_projects", "the licence allows "+strconv.Itoa(*l.MaxProjects)+" projects")
	}
	return nil
}

// CheckStorage refuses a commit after which the organisation stores more
// than its licence allows. Call it in an upload's commit, after the
// upload's chunks are recorded: the refusal rolls the commit back, and the
// chunks stored for it are left to the collector.
func CheckStorage(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID) error {
	l, err := Load(ctx, t, org)
	if err != nil || l.MaxStorageBytes == nil {
		return err
	}
	n, err := storageBytes(ctx, t, org)
	if err != nil {
		return err
	}
	if n > *l.MaxStorageBytes {
		return kluis.LicenceLimit("max_storage_bytes", "the licence allows "+strconv.FormatInt(*l.MaxStorageBytes, 10)+" bytes")
	}
	return nil
}

// closeTimedOut writes the end of the organisation's periods that nobody
// stopped within the timeout: started_at + the timeout.
func closeTimedOut(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, l kluis.Licence) error {
	d := l.ActivityTimeout()
	_, err := t.Exec(ctx, `UPDATE activity_periods SET ended_at = started_at + ?, ended = ? WHERE org_id = ? AND ended_at IS NULL AND started_at <= ?`,
		d.Microseconds(), kluis.EndedTimeout, org, sqlstore.Micros(t.Now().Add(-d)))
	return err
}

// EndActivity ends the open periods of a project that goes to the trash.
// Call it in the deleting transaction.
func EndActivity(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, project kluis.ProjectID) error {
	l, err := Load(ctx, t, org)
	if err != nil {
		return err
	}
	if err := closeTimedOut(ctx, t, org, l); err != nil {
		return err
	}
	_, err = t.Exec(ctx, `UPDATE activity_periods SET ended_at = ?, ended = ? WHERE project_id = ? AND ended_at IS NULL`,
		sqlstore.Micros(t.Now()), kluis.EndedTrash, project)
	return err
}

// GetLicence returns the licence and usage (managers, operator admins and
// support). Errors: not_found, forbidden.
func (s *Service) GetLicence(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (kluis.LicenceView, error) {
	var v kluis.LicenceView
	if !kluis.CanReadLicence(actor, org) {
		return v, s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "licence.read", "")
	}
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		if _, err := t.FindOrg(ctx, org); err != nil {
			return err
		}
		var err error
		if v.Licence, err = Load(ctx, t, org); err != nil {
			return err
		}
		v.Usage, err = usage(ctx, t, org, v.Licence)
		return err
	})
	return v, err
}

// SetLicence replaces the licence (operator admins), recorded as
// licence.update in the organisation's chain with the new limits, so the
// customer sees what changed. Errors: forbidden, invalid_input, not_found.
func (s *Service) SetLicence(ctx context.Context, org kluis.OrgID, actor kluis.Actor, l kluis.Licence) (kluis.LicenceView, error) {
	l = l.Normalize()
	var v kluis.LicenceView
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if _, err := t.FindOrg(ctx, org); err != nil {
			return err
		}
		if !kluis.CanManageLicences(actor) {
			return sqlstore.Deny(sqlstore.OrgChain(org), actor, "licence.update", "", kluis.ErrForbidden)
		}
		if err := l.Validate(); err != nil {
			return err
		}
		var ends any
		if l.EndsAt != nil {
			ends = sqlstore.Micros(*l.EndsAt)
		}
		if _, err := t.Exec(ctx, `INSERT INTO licences (org_id, max_users, max_projects, max_active_projects, max_storage_bytes, ends_at, activity_timeout, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (org_id) DO UPDATE SET max_users = excluded.max_users, max_projects = excluded.max_projects,
			max_active_projects = excluded.max_active_projects, max_storage_bytes = excluded.max_storage_bytes,
			ends_at = excluded.ends_at, activity_timeout = excluded.activity_timeout, updated_at = excluded.updated_at`,
			org, nullable(l.MaxUsers), nullable(l.MaxProjects), nullable(l.MaxActiveProjects), nullable(l.MaxStorageBytes),
			ends, l.ActivityTimeoutMinutes, sqlstore.Micros(t.Now())); err != nil {
			return err
		}
		l.UpdatedAt = t.Now()
		// Retention (R36): a licence renewed during the grace period lifts
		// the read-only state; recorded by this licence.update.
		if !l.Ended(t.Now()) {
			if _, err := t.Exec(ctx, `UPDATE orgs SET terminated_at = NULL WHERE id = ?`, org); err != nil {
				return err
			}
		}
		var err error
		v.Licence = l
		if v.Usage, err = usage(ctx, t, org, l); err != nil {
			return err
		}
		details := map[string]any{"activity_timeout_minutes": l.ActivityTimeoutMinutes}
		for k, p := range map[string]any{"max_users": nullable(l.MaxUsers), "max_projects": nullable(l.MaxProjects),
			"max_active_projects": nullable(l.MaxActiveProjects), "max_storage_bytes": nullable(l.MaxStorageBytes)} {
			details[k] = p
		}
		if l.EndsAt != nil {
			details["ends_at"] = l.EndsAt.Format(time.RFC3339)
		} else {
			details["ends_at"] = nil
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "licence.update", "licence", "success", details)
	})
	return v, err
}
