// Package orgexport is the area of the organisation's own export (R9): a
// manager, freshly authenticated, takes everything the organisation holds
// as one ZIP archive — its settings, its people's profiles, groups,
// projects with their files and version history, and its audit chain with
// the signed checkpoints and the key that checks them — in the layout of
// docs/EXPORT.md, which also travels inside the archive as README.md.
//
// The archive is streamed: project files go from the content store to the
// ZIP writer a chunk at a time, the audit chain a line at a time, so memory
// does not grow with the size of the organisation. The export is recorded
// (org.export) before the first byte is written.
//
// It implements kluis.ExportService.
package orgexport

import (
	"archive/zip"
	"compress/flate"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/auditlog"
	"github.com/kluis/kluis/internal/sqlstore/projects"
	"github.com/kluis/kluis/internal/sqlstore/rights"
)

// Service is the export area.
type Service struct {
	core     *sqlstore.Core
	projects *projects.Service
	rights   *rights.Service
	audit    *auditlog.Service
}

// New returns the export area over core and the areas whose data it reads.
func New(core *sqlstore.Core, p *projects.Service, r *rights.Service, a *auditlog.Service) *Service {
	return &Service{core: core, projects: p, rights: r, audit: a}
}

var _ kluis.ExportService = (*Service)(nil)

// readme is the archive's README.md: the layout, the schema of each file and
// how to verify the audit chain (the same text as docs/EXPORT.md's layout).
//
//go:embed readme.md
var readme string

// withheld is a project the export names but does not hold: under the
// "owners" policy a manager holds no right on a project nobody granted them
// (R7), and the export gives them no more than they may open.
type withheld struct {
	ID     kluis.ProjectID `json:"id"`
	Reason string          `json:"reason"`
}

const reasonNoGrant = "project_access is owners and the exporting manager holds no grant on this project"

// ExportOrg writes the organisation's export to w (see kluis.ExportService).
// Recorded as org.export with the numbers of projects exported and
// withheld. Errors before the first byte: forbidden, reauth_required.
func (s *Service) ExportOrg(ctx context.Context, org kluis.OrgID, actor kluis.Actor, w io.Writer) error {
	chain := sqlstore.OrgChain(org)
	target := "org:" + string(org)
	if !kluis.CanExportOrg(actor, org) {
		return s.core.Refuse(ctx, chain, actor, "org.export", target)
	}
	if !kluis.FreshlyAuthenticated(actor, s.core.Now()) {
		if err := s.core.RecordRefusal(ctx, chain, actor, "org.export", target, "failure", map[string]any{"reason": "reauth_required"}); err != nil {
			return err
		}
		return kluis.ErrReauthRequired
	}
	all, err := s.projects.ExportProjects(ctx, org)
	if err != nil {
		return err
	}
	var o kluis.Org
	var pol kluis.Policy
	var readable []kluis.Project
	var others []withheld
	if err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		var err error
		if o, err = t.FindOrg(ctx, org); err != nil {
			return err
		}
		if pol, err = t.Policy(ctx, org); err != nil {
			return err
		}
		for _, p := range all {
			st, err := rights.Of(ctx, t, org, actor, p.ID)
			if err != nil {
				return err
			}
			if st.Rights.Has(kluis.RightView) {
				readable = append(readable, p)
			} else {
				others = append(others, withheld{ID: p.ID, Reason: reasonNoGrant})
			}
		}
		return nil
	}); err != nil {
		return err
	}
	// Recorded before the first byte leaves, and whatever the client does
	// with the stream afterwards.
	if err := s.core.Write(context.WithoutCancel(ctx), chain, func(t *sqlstore.Tx) error {
		return t.Append(ctx, chain, actor, "org.export", target, "success",
			map[string]any{"projects": len(readable), "withheld": len(others)})
	}); err != nil {
		return err
	}
	zw := zip.NewWriter(w)
	// Project files are often incompressible (models, images): the fastest
	// level keeps the export near the speed of the disk.
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
	if err := s.write(ctx, zw, o, pol, readable, others); err != nil {
		return err
	}
	return zw.Close()
}

// write fills the archive, in the order of docs/EXPORT.md.
func (s *Service) write(ctx context.Context, zw *zip.Writer, o kluis.Org, pol kluis.Policy, readable []kluis.Project, others []withheld) error {
	if err := AddText(zw, "README.md", readmeFor(o, others)); err != nil {
		return err
	}
	if others == nil {
		others = []withheld{}
	}
	if err := AddJSON(zw, "organisation.json", organisationFile{
		ID: string(o.ID), Slug: o.Slug, Name: o.Name, Language: o.Language, CreatedAt: o.CreatedAt.UTC(),
		Policy: pol, ExportedAt: s.core.Now().UTC(), Projects: len(readable), WithheldProjects: others,
	}); err != nil {
		return err
	}
	if err := s.writeUsers(ctx, zw, o.ID); err != nil {
		return err
	}
	if err := s.writeGroups(ctx, zw, o.ID); err != nil {
		return err
	}
	for _, p := range readable {
		if err := s.writeProject(ctx, zw, o.ID, p); err != nil {
			return fmt.Errorf("project %s: %w", p.ID, err)
		}
	}
	ew, err := zw.Create(audit.ExportEventsFile)
	if err != nil {
		return err
	}
	cps, pub, err := s.audit.ExportChain(ctx, o.ID, ew)
	if err != nil {
		return err
	}
	if err := AddJSON(zw, audit.ExportCheckpointsFile, cps); err != nil {
		return err
	}
	return AddText(zw, audit.ExportPublicKeyFile, string(pub))
}

type organisationFile struct {
	ID               string       `json:"id"`
	Slug             string       `json:"slug"`
	Name             string       `json:"name"`
	Language         string       `json:"language"`
	CreatedAt        time.Time    `json:"created_at"`
	Policy           kluis.Policy `json:"policy"`
	ExportedAt       time.Time    `json:"exported_at"`
	Projects         int          `json:"projects"`
	WithheldProjects []withheld   `json:"withheld_projects"`
}

type userFile struct {
	ID                string     `json:"id"`
	Name              string     `json:"name"`
	Email             string     `json:"email"`
	Phone             string     `json:"phone,omitempty"`
	Role              kluis.Role `json:"role"`
	Status            string     `json:"status"`
	MaintenanceEmails bool       `json:"maintenance_emails"`
	CreatedAt         time.Time  `json:"created_at"`
	LastLoginAt       *time.Time `json:"last_login_at"`
	Restricted        bool       `json:"restricted,omitempty"`
}

// writeUsers writes users.json: every person's profile, never a password
// hash, factor secret or token. A person whose processing is restricted
// (R34) is listed by id, role and status only: their name and address read
// kluis.Withheld, and phone, mail choice and last sign-in are left out.
func (s *Service) writeUsers(ctx context.Context, zw *zip.Writer, org kluis.OrgID) error {
	var sealed []sqlstore.SealedUser
	if err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		rows, err := t.Query(ctx, `SELECT `+sqlstore.UserColumns+` FROM users WHERE org_id = ? ORDER BY created_at, id`, org)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			su, err := sqlstore.ScanSealedUser(rows)
			if err != nil {
				return err
			}
			sealed = append(sealed, su)
		}
		return rows.Err()
	}); err != nil {
		return err
	}
	out := make([]userFile, 0, len(sealed))
	for _, su := range sealed {
		u, err := s.core.OpenUser(ctx, su)
		if err != nil {
			return err
		}
		f := userFile{ID: string(u.ID), Name: u.Name, Email: u.Email, Phone: u.Phone, Role: u.Role, Status: string(u.Status),
			MaintenanceEmails: u.MaintenanceEmails, CreatedAt: u.CreatedAt.UTC()}
		if !u.LastLoginAt.IsZero() {
			at := u.LastLoginAt.UTC()
			f.LastLoginAt = &at
		}
		if u.Restricted() {
			f = userFile{ID: f.ID, Name: kluis.Withheld, Email: kluis.Withheld, Role: f.Role, Status: f.Status, CreatedAt: f.CreatedAt, Restricted: true}
		}
		out = append(out, f)
	}
	return AddJSON(zw, "users.json", map[string]any{"users": out})
}

type groupFile struct {
	ID        kluis.GroupID  `json:"id"`
	Name      string         `json:"name"`
	CreatedAt time.Time      `json:"created_at"`
	Members   []kluis.UserID `json:"members"`
}

func (s *Service) writeGroups(ctx context.Context, zw *zip.Writer, org kluis.OrgID) error {
	var out []groupFile
	if err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		gs, err := rights.GroupsOf(ctx, s.core, t, org)
		for _, g := range gs {
			out = append(out, groupFile{ID: g.ID, Name: g.Name, CreatedAt: g.CreatedAt.UTC(), Members: g.Members})
		}
		return err
	}); err != nil {
		return err
	}
	if out == nil {
		out = []groupFile{}
	}
	return AddJSON(zw, "groups.json", map[string]any{"groups": out})
}

type grantFile struct {
	Subject  string         `json:"subject"`
	Relation kluis.Relation `json:"relation"`
}

type projectFile struct {
	ID        kluis.ProjectID         `json:"id"`
	Name      string                  `json:"name"`
	CreatedAt time.Time               `json:"created_at"`
	Trash     *trashFile              `json:"trash"`
	Grants    []grantFile             `json:"grants"`
	Files     []projects.ExportedFile `json:"files"`
}

type trashFile struct {
	DeletedAt time.Time `json:"deleted_at"`
	PurgeAt   time.Time `json:"purge_at"`
}

// writeProject writes the project's files and versions.json (streamed from
// the content store), then project.json with the files' SHA-256s.
func (s *Service) writeProject(ctx context.Context, zw *zip.Writer, org kluis.OrgID, p kluis.Project) error {
	prefix := "projects/" + string(p.ID) + "/"
	files, err := s.projects.ExportContent(ctx, org, p.ID, zw, prefix)
	if err != nil {
		return err
	}
	pf := projectFile{ID: p.ID, Name: p.Name, CreatedAt: p.CreatedAt.UTC(), Grants: []grantFile{}, Files: files}
	if !p.DeletedAt.IsZero() {
		pf.Trash = &trashFile{DeletedAt: p.DeletedAt.UTC(), PurgeAt: p.PurgeAt.UTC()}
	}
	if err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		gs, err := rights.GrantsOf(ctx, t, p.ID)
		for _, g := range gs {
			pf.Grants = append(pf.Grants, grantFile{Subject: g.Subject.String(), Relation: g.Relation})
		}
		return err
	}); err != nil {
		return err
	}
	return AddJSON(zw, prefix+"project.json", pf)
}

// AddJSON writes v as indented JSON, HTML left unescaped, to the archive
// entry name. The personal export writes its files the same way.
func AddJSON(zw *zip.Writer, name string, v any) error {
	w, err := zw.Create(name)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// AddText writes text to the archive entry name.
func AddText(zw *zip.Writer, name, text string) error {
	w, err := zw.Create(name)
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, text)
	return err
}

// readmeFor is the archive's README.md with this organisation's header and,
// when projects were withheld, their ids and the reason.
func readmeFor(o kluis.Org, others []withheld) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Export of %s (%s)\n\n", o.Name, o.Slug)
	if len(others) > 0 {
		b.WriteString("## Projects not in this export\n\n")
		b.WriteString("The organisation's policy `project_access` is `owners`: a manager holds no right on a project\n")
		b.WriteString("unless its owners granted one. These projects exist but the manager who made this export may\n")
		b.WriteString("not open them, so only their ids are listed (also in `organisation.json`, `withheld_projects`).\n")
		b.WriteString("An owner of each can grant the manager a viewer right, after which a new export holds it.\n\n")
		for _, w := range others {
			fmt.Fprintf(&b, "- `%s`\n", w.ID)
		}
		b.WriteString("\n")
	}
	b.WriteString(readme)
	return b.String()
}
