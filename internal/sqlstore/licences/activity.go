package licences

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/rights"
)

const periodColumns = `id, project_id, user_id, started_at, ended_at, ended`

// scanPeriod reads a period; an open one past the licence's timeout ends
// at started_at + the timeout, decided with the store's clock (now).
func scanPeriod(row interface{ Scan(...any) error }, l kluis.Licence, now time.Time) (kluis.ActivityPeriod, error) {
	var p kluis.ActivityPeriod
	var user, ended sql.NullString
	var from int64
	var to sql.NullInt64
	if err := row.Scan(&p.ID, &p.Project, &user, &from, &to, &ended); err != nil {
		return p, err
	}
	p.User, p.Ended, p.From = kluis.UserID(user.String), ended.String, sqlstore.FromMicros(from)
	if to.Valid {
		e := sqlstore.FromMicros(to.Int64)
		p.To = &e
	} else if end := p.From.Add(l.ActivityTimeout()); !now.Before(end) {
		p.To, p.Ended = &end, kluis.EndedTimeout
	}
	return p, nil
}

// StartProject opens an activity period (the start right), recorded as
// project.start. The caller's own period of the project that still runs is
// answered as it is, with started false: starting twice is harmless. A
// project that another person runs already counts once towards
// max_active_projects. Errors: not_found, forbidden, licence_limit.
func (s *Service) StartProject(ctx context.Context, org kluis.OrgID, actor kluis.Actor, project kluis.ProjectID) (kluis.ActivityPeriod, bool, error) {
	var p kluis.ActivityPeriod
	started := false
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if _, err := rights.Require(ctx, t, org, actor, project, kluis.RightStart, "project.start"); err != nil {
			return err
		}
		l, err := Load(ctx, t, org)
		if err != nil {
			return err
		}
		if err := closeTimedOut(ctx, t, org, l); err != nil {
			return err
		}
		p, err = scanPeriod(t.QueryRow(ctx, `SELECT `+periodColumns+` FROM activity_periods
			WHERE project_id = ? AND user_id = ? AND ended_at IS NULL`, project, actor.UserID), l, t.Now())
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if l.Ended(t.Now()) {
			return errEnded(l)
		}
		var running int
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM activity_periods WHERE project_id = ? AND ended_at IS NULL`, project).Scan(&running); err != nil {
			return err
		}
		if l.MaxActiveProjects != nil && running == 0 {
			n, err := activeProjects(ctx, t, org, l)
			if err != nil {
				return err
			}
			if n+1 > *l.MaxActiveProjects {
				return kluis.LicenceLimit("max_active_projects", "the licence allows "+strconv.Itoa(*l.MaxActiveProjects)+" active projects")
			}
		}
		p = kluis.ActivityPeriod{ID: kluis.ActivityPeriodID(kluis.NewID(t.Now())), Project: project, User: actor.UserID, From: t.Now()}
		if _, err := t.Exec(ctx, `INSERT INTO activity_periods (id, org_id, project_id, user_id, started_at) VALUES (?, ?, ?, ?, ?)`,
			p.ID, org, project, actor.UserID, sqlstore.Micros(p.From)); err != nil {
			return err
		}
		started = true
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "project.start", rights.ProjectTarget(project), "success",
			map[string]any{"period": string(p.ID)})
	})
	return p, started, err
}

// StopProject ends every open period of the project (the start right),
// recorded as project.stop with how many ended. A project that does not
// run is left as it is, unrecorded. Errors: not_found, forbidden.
func (s *Service) StopProject(ctx context.Context, org kluis.OrgID, actor kluis.Actor, project kluis.ProjectID) error {
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if _, err := rights.Require(ctx, t, org, actor, project, kluis.RightStart, "project.stop"); err != nil {
			return err
		}
		l, err := Load(ctx, t, org)
		if err != nil {
			return err
		}
		if err := closeTimedOut(ctx, t, org, l); err != nil {
			return err
		}
		res, err := t.Exec(ctx, `UPDATE activity_periods SET ended_at = ?, ended = ? WHERE project_id = ? AND ended_at IS NULL`,
			sqlstore.Micros(t.Now()), kluis.EndedStop, project)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 0 {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "project.stop", rights.ProjectTarget(project), "success",
			map[string]any{"periods": n})
	})
}

// FindRunning returns the caller's open period of the project and whether
// anyone runs it (viewer). Errors: not_found.
func (s *Service) FindRunning(ctx context.Context, org kluis.OrgID, actor kluis.Actor, project kluis.ProjectID) (*kluis.ActivityPeriod, bool, error) {
	var mine *kluis.ActivityPeriod
	running := false
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		if _, err := rights.Require(ctx, t, org, actor, project, kluis.RightView, "project.read"); err != nil {
			return err
		}
		l, err := Load(ctx, t, org)
		if err != nil {
			return err
		}
		rows, err := t.Query(ctx, `SELECT `+periodColumns+` FROM activity_periods WHERE project_id = ? AND ended_at IS NULL`, project)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			p, err := scanPeriod(rows, l, t.Now())
			if err != nil {
				return err
			}
			if p.To != nil {
				continue
			}
			running = true
			if p.User == actor.UserID {
				mine = &p
			}
		}
		return rows.Err()
	})
	return mine, running, err
}

// ListActivity lists the periods overlapping f, newest first, at most
// kluis.MaxActivityPage (managers). Reading it is recorded as
// activity.read. Errors: forbidden, invalid_input.
func (s *Service) ListActivity(ctx context.Context, org kluis.OrgID, actor kluis.Actor, f kluis.ActivityFilter) ([]kluis.ActivityPeriod, error) {
	if !kluis.CanReadActivity(actor, org) {
		return nil, s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "activity.read", "")
	}
	return s.list(ctx, org, f, true)
}

// ListActivityAnonymous lists the same periods without who (operator
// admins and support). Errors: forbidden, not_found, invalid_input.
func (s *Service) ListActivityAnonymous(ctx context.Context, org kluis.OrgID, actor kluis.Actor, f kluis.ActivityFilter) ([]kluis.ActivityPeriod, error) {
	if !kluis.CanReadLicence(actor, org) {
		return nil, s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "activity.read", "")
	}
	out, err := s.list(ctx, org, f, false)
	for i := range out {
		out[i].User = ""
	}
	return out, err
}

func (s *Service) list(ctx context.Context, org kluis.OrgID, f kluis.ActivityFilter, people bool) ([]kluis.ActivityPeriod, error) {
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return nil, kluis.Invalid(map[string]string{"until": "must be after since"})
	}
	out := []kluis.ActivityPeriod{}
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		if _, err := t.FindOrg(ctx, org); err != nil {
			return err
		}
		l, err := Load(ctx, t, org)
		if err != nil {
			return err
		}
		q, args := `SELECT `+periodColumns+` FROM activity_periods WHERE org_id = ?`, []any{org}
		if !f.Until.IsZero() {
			q, args = q+` AND started_at < ?`, append(args, sqlstore.Micros(f.Until))
		}
		if !f.Since.IsZero() {
			// Open periods are kept here and judged by their timeout below.
			q, args = q+` AND (ended_at IS NULL OR ended_at > ?)`, append(args, sqlstore.Micros(f.Since))
		}
		rows, err := t.Query(ctx, q+` ORDER BY started_at DESC, id DESC LIMIT `+strconv.Itoa(kluis.MaxActivityPage), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			p, err := scanPeriod(rows, l, t.Now())
			if err != nil {
				return err
			}
			if !f.Since.IsZero() && p.To != nil && !p.To.After(f.Since) {
				continue
			}
			if !people {
				p.User = ""
			}
			out = append(out, p)
		}
		return rows.Err()
	})
	return out, err
}
