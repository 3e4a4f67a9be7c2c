// Package projects is the area of the customer's projects (R9, R10, R11,
// R12): projects with their files and versions, and the trash. Every method
// asks the rights engine (package rights) inside its transaction, so no
// route reaches a project's content without passing it.
//
// A project's name, like its content, is sealed under the project's own key
// (DESIGN §4, §8). When a project leaves the trash its key is destroyed:
// a copy of the database or the content store taken before can no longer
// reveal anything of it.
//
// It implements kluis.ProjectService.
package projects

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/content"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/licences"
	"github.com/kluis/kluis/internal/sqlstore/rights"
)

// Service is the projects area: projects, their files and versions.
type Service struct {
	core        *sqlstore.Core
	blobs       content.Blobs
	maxFileSize int64
}

// Options are what the projects area needs beyond the core.
type Options struct {
	// Blobs keeps the sealed chunks: a content.Dir in embedded mode;
	// nil keeps them in the database (DBBlobs), as with PostgreSQL.
	Blobs content.Blobs
	// MaxFileSize bounds one file; 0 means kluis.DefaultMaxFileSize.
	MaxFileSize int64
}

// New returns the projects area over core.
func New(core *sqlstore.Core, o Options) *Service {
	if o.Blobs == nil {
		o.Blobs = DBBlobs(core.DB())
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = kluis.DefaultMaxFileSize
	}
	return &Service{core: core, blobs: o.Blobs, maxFileSize: o.MaxFileSize}
}

var (
	_ kluis.ProjectService = (*Service)(nil)
	_ kluis.FileService    = (*Service)(nil)
	_ kluis.VersionService = (*Service)(nil)
)

const tabProjects = "projects"

func nameField(org kluis.OrgID, id kluis.ProjectID) keys.FieldRef {
	return keys.FieldRef{Org: string(org), Table: tabProjects, Column: sqlstore.ColName, Row: string(id)}
}

func projectKey(org kluis.OrgID, id kluis.ProjectID) keys.KeyRef {
	return keys.ProjectKey(string(org), string(id))
}

// CreateProject makes a project whose owner is the caller, with a key of
// its own. Recorded as project.create. Errors: unauthenticated, forbidden,
// invalid_input.
func (s *Service) CreateProject(ctx context.Context, org kluis.OrgID, actor kluis.Actor, in kluis.ProjectInput) (kluis.Project, error) {
	in = in.Normalize()
	var p kluis.Project
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if !kluis.CanCreateProject(actor, org) {
			return sqlstore.DenyAccess(sqlstore.OrgChain(org), actor, "", "project.create", kluis.ErrForbidden)
		}
		if err := in.Validate(); err != nil {
			return err
		}
		if err := licences.CheckProject(ctx, t, org); err != nil {
			return err
		}
		p = kluis.Project{ID: kluis.ProjectID(kluis.NewID(t.Now())), Name: in.Name, CreatedAt: t.Now(), Rights: kluis.AllRights}
		if err := s.core.Keys().EnsureProjectKey(ctx, string(org), string(p.ID), actor.AuditName()); err != nil {
			return err
		}
		sealed, err := s.core.Seal(ctx, projectKey(org, p.ID), nameField(org, p.ID), []byte(p.Name))
		if err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `INSERT INTO projects (id, org_id, name, created_at) VALUES (?, ?, ?, ?)`,
			p.ID, org, sealed, sqlstore.Micros(t.Now())); err != nil {
			return err
		}
		if err := rights.InsertOwner(ctx, t, org, p.ID, actor.UserID); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "project.create", rights.ProjectTarget(p.ID), "success", nil)
	})
	return p, err
}

const projectColumns = `id, name, created_at, deleted_at, purge_at`

// sealedProject is a projects row as stored, its name still sealed.
type sealedProject struct {
	kluis.Project
	name []byte
}

func scanProject(row interface{ Scan(...any) error }) (sealedProject, error) {
	var sp sealedProject
	var created int64
	var deleted, purge sql.NullInt64
	if err := row.Scan(&sp.ID, &sp.name, &created, &deleted, &purge); err != nil {
		return sp, err
	}
	sp.CreatedAt = sqlstore.FromMicros(created)
	sp.DeletedAt, sp.PurgeAt = sqlstore.NullMicros(deleted), sqlstore.NullMicros(purge)
	return sp, nil
}

// openProject opens a project's sealed name.
func (s *Service) openProject(ctx context.Context, org kluis.OrgID, sp sealedProject) (kluis.Project, error) {
	plain, err := s.core.Open(ctx, nameField(org, sp.ID), sp.name)
	if err != nil {
		return kluis.Project{}, err
	}
	p := sp.Project
	p.Name = string(plain)
	return p, nil
}

// load reads a project's row and opens its name.
func (s *Service) load(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, id kluis.ProjectID) (kluis.Project, error) {
	sp, err := scanProject(t.QueryRow(ctx, `SELECT `+projectColumns+` FROM projects WHERE org_id = ? AND id = ?`, org, id))
	if errors.Is(err, sql.ErrNoRows) {
		return kluis.Project{}, kluis.ErrNotFound
	}
	if err != nil {
		return kluis.Project{}, err
	}
	return s.openProject(ctx, org, sp)
}

// FindProjects lists a page of the projects the caller may view, in order
// of creation, with what the caller may do to each. It loads only those:
// the rights engine picks the page's ids first. Reading one's projects is
// not recorded.
func (s *Service) FindProjects(ctx context.Context, org kluis.OrgID, actor kluis.Actor, f kluis.ProjectFilter) ([]kluis.Project, error) {
	return s.list(ctx, org, actor, f, false)
}

func (s *Service) list(ctx context.Context, org kluis.OrgID, actor kluis.Actor, f kluis.ProjectFilter, trashed bool) ([]kluis.Project, error) {
	if !actor.IsOrgUser(org) && !actor.IsSupport(org) {
		return nil, kluis.ErrUnauthenticated
	}
	limit := f.Limit
	if limit <= 0 {
		limit = kluis.DefaultProjectPage
	}
	limit = min(limit, kluis.MaxProjectPage)
	out := []kluis.Project{}
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		page, err := rights.Visible(ctx, t, org, actor, f.After, limit, trashed)
		if err != nil || len(page.IDs) == 0 {
			return err
		}
		// The page's rows in one read.
		args := make([]any, 0, len(page.IDs)+1)
		args = append(args, org)
		for _, id := range page.IDs {
			args = append(args, id)
		}
		rows, err := t.Query(ctx, `SELECT `+projectColumns+` FROM projects WHERE org_id = ? AND id IN (`+
			strings.TrimSuffix(strings.Repeat("?, ", len(page.IDs)), ", ")+`)`, args...)
		if err != nil {
			return err
		}
		byID := make(map[kluis.ProjectID]sealedProject, len(page.IDs))
		for rows.Next() {
			sp, err := scanProject(rows)
			if err != nil {
				rows.Close()
				return err
			}
			byID[sp.ID] = sp
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range page.IDs {
			sp, ok := byID[id]
			if !ok {
				continue
			}
			p, err := s.openProject(ctx, org, sp)
			if err != nil {
				return err
			}
			p.Rights = page.Rights[id]
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// FindProject returns one project with what the caller may do to it
// (viewer). Errors: not_found.
func (s *Service) FindProject(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.ProjectID) (kluis.Project, error) {
	var p kluis.Project
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		st, err := rights.Require(ctx, t, org, actor, id, kluis.RightView, "project.read")
		if err != nil {
			return err
		}
		p, err = s.load(ctx, t, org, id)
		p.Rights = st.Rights
		return err
	})
	return p, err
}

// UpdateProject renames a project (owner: the delete right). Recorded as
// project.update with the names of the changed fields. Errors: not_found,
// forbidden, invalid_input.
func (s *Service) UpdateProject(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.ProjectID, in kluis.ProjectInput) (kluis.Project, error) {
	in = in.Normalize()
	var p kluis.Project
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		st, err := rights.Require(ctx, t, org, actor, id, kluis.RightDelete, "project.update")
		if err != nil {
			return err
		}
		if err := in.Validate(); err != nil {
			return err
		}
		if p, err = s.load(ctx, t, org, id); err != nil {
			return err
		}
		p.Rights = st.Rights
		if p.Name == in.Name {
			return nil
		}
		sealed, err := s.core.Seal(ctx, projectKey(org, id), nameField(org, id), []byte(in.Name))
		if err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE projects SET name = ? WHERE org_id = ? AND id = ?`, sealed, org, id); err != nil {
			return err
		}
		p.Name = in.Name
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "project.update", rights.ProjectTarget(id), "success",
			map[string]any{"fields": []string{"name"}})
	})
	return p, err
}

// DeleteProject moves a project to the trash (owner) for the
// organisation's trash period; afterwards PurgeProjects destroys its key.
// Recorded as project.delete. Errors: not_found, forbidden.
func (s *Service) DeleteProject(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.ProjectID) error {
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if _, err := rights.Require(ctx, t, org, actor, id, kluis.RightDelete, "project.delete"); err != nil {
			return err
		}
		pol, err := t.Policy(ctx, org)
		if err != nil {
			return err
		}
		purge := t.Now().Add(time.Duration(pol.TrashDays) * 24 * time.Hour)
		if err := licences.EndActivity(ctx, t, org, id); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE projects SET deleted_at = ?, purge_at = ? WHERE org_id = ? AND id = ?`,
			sqlstore.Micros(t.Now()), sqlstore.Micros(purge), org, id); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "project.delete", rights.ProjectTarget(id), "success",
			map[string]any{"purge_at": purge.Format(time.RFC3339)})
	})
}

// FindTrash lists the projects in the trash that the caller could bring
// back: their owners', and every one for a manager under the "managers"
// policy. Under "owners" a manager sees only what they own, since even a
// project's name is its owners' business (R7).
func (s *Service) FindTrash(ctx context.Context, org kluis.OrgID, actor kluis.Actor) ([]kluis.Project, error) {
	all, err := s.list(ctx, org, actor, kluis.ProjectFilter{Limit: kluis.MaxProjectPage}, true)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, p := range all {
		if p.Rights.Has(kluis.RightDelete) {
			out = append(out, p)
		}
	}
	return out, nil
}

// UndeleteProject brings a project back from the trash (owner). Recorded
// as project.undelete. Errors: not_found, forbidden.
func (s *Service) UndeleteProject(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.ProjectID) (kluis.Project, error) {
	var p kluis.Project
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		st, err := rights.RequireTrashed(ctx, t, org, actor, id, kluis.RightDelete, "project.undelete")
		if err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE projects SET deleted_at = NULL, purge_at = NULL WHERE org_id = ? AND id = ?`, org, id); err != nil {
			return err
		}
		if p, err = s.load(ctx, t, org, id); err != nil {
			return err
		}
		p.Rights = st.Rights
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "project.undelete", rights.ProjectTarget(id), "success", nil)
	})
	return p, err
}

// PurgeProjects ends the projects whose time in the trash is over (R12):
// their rows, files, versions, grants and chunks go, and their keys are
// destroyed right after, so that nothing of them can be read again from a
// copy taken before. Each purge is one write, recorded as project.purge by
// the system. It returns how many projects it purged; it runs under the
// job lease of the caller (serve's maintenance loop).
func (s *Service) PurgeProjects(ctx context.Context) (int, error) {
	type due struct {
		id  kluis.ProjectID
		org kluis.OrgID
	}
	var list []due
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		rows, err := t.Query(ctx, `SELECT id, org_id FROM projects WHERE purge_at IS NOT NULL AND purge_at <= ? ORDER BY purge_at LIMIT 100`,
			sqlstore.Micros(t.Now()))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d due
			if err := rows.Scan(&d.id, &d.org); err != nil {
				return err
			}
			list = append(list, d)
		}
		return rows.Err()
	})
	if err != nil {
		return 0, err
	}
	purged := 0
	for _, d := range list {
		var shred string
		err := s.core.Write(ctx, sqlstore.OrgChain(d.org), func(t *sqlstore.Tx) error {
			// Brought back meanwhile: it stays.
			var n int
			if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM projects WHERE org_id = ? AND id = ? AND purge_at IS NOT NULL AND purge_at <= ?`,
				d.org, d.id, sqlstore.Micros(t.Now())).Scan(&n); err != nil || n == 0 {
				return err
			}
			for _, q := range []string{
				`DELETE FROM chunk_refs WHERE project_id = ?`,
				`DELETE FROM content_chunks WHERE project_id = ?`,
				`DELETE FROM content_blobs WHERE project_id = ?`,
				`DELETE FROM projects WHERE id = ?`,
			} {
				if _, err := t.Exec(ctx, q, d.id); err != nil {
					return err
				}
			}
			var err error
			if shred, err = t.ScheduleProjectShred(ctx, d.org, d.id); err != nil {
				return err
			}
			return t.Append(ctx, sqlstore.OrgChain(d.org), kluis.SystemActor, "project.purge", rights.ProjectTarget(d.id), "success", nil)
		})
		if err != nil {
			return purged, err
		}
		if shred == "" {
			continue
		}
		s.core.ShredNow(ctx, kluis.SystemActor, shred)
		if err := s.blobs.DeleteProject(ctx, string(d.id)); err != nil {
			// Sealed under a destroyed key, the chunks are unreadable;
			// a folder's interrupted deletion is finished at the next
			// start (content.OpenDir).
			s.core.Log().Warn("a purged project's chunks stay in the content store, unreadable (their key is destroyed)", "err", err.Error())
		}
		purged++
	}
	return purged, nil
}
