package personal

import (
	"context"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/orgexport"
	"github.com/kluis/kluis/internal/sqlstore/projects"
	"github.com/kluis/kluis/internal/sqlstore/rights"
)

// The person's part of the organisation's projects. Which files are
// "theirs": the files of a project's current working tree that they wrote
// last (the file's modified_by) — what they put there and nobody has
// replaced since. Saved versions hold copies of files by many people and
// belong to the project (the organisation's, R9); the versions the person
// saved are listed with their messages. Both only for projects that
// whoever takes the export may view now; for any other project only counts.

// reasonNoRight says why a project's content is not in the export.
const reasonNoRight = "whoever took this export may not view this project now"

type projectRow struct {
	ID               string  `json:"id"`
	Name             *string `json:"name"`
	InTrash          bool    `json:"in_trash"`
	Relation         *string `json:"relation"`
	VersionsAuthored int     `json:"versions_authored"`
	FilesLastWritten int     `json:"files_last_written"`
	ContentIncluded  bool    `json:"content_included"`
	Withheld         string  `json:"withheld,omitempty"`
}

type versionRow struct {
	Project      string    `json:"project"`
	Number       int       `json:"number"`
	At           time.Time `json:"at"`
	Message      string    `json:"message"`
	Files        int       `json:"files"`
	RestoredFrom *int      `json:"restored_from"`
}

type fileRow struct {
	Project    string    `json:"project"`
	Path       string    `json:"path"`
	Size       int64     `json:"size"`
	SHA256     string    `json:"sha256"`
	ModifiedAt time.Time `json:"modified_at"`
	Content    string    `json:"content"`
}

// involvement is how the person touches one project.
type involvement struct {
	relation        string
	versions, files int
}

// involvements finds the projects of the organisation the person saved a
// version of, last wrote a file of, or holds a direct grant on.
func (x *exporter) involvements(ctx context.Context) (map[kluis.ProjectID]*involvement, error) {
	out := map[kluis.ProjectID]*involvement{}
	get := func(p kluis.ProjectID) *involvement {
		if out[p] == nil {
			out[p] = &involvement{}
		}
		return out[p]
	}
	err := x.s.core.Read(ctx, func(t *sqlstore.Tx) error {
		for _, q := range []struct {
			query string
			add   func(*involvement, int, string)
		}{
			{`SELECT v.project_id, COUNT(*), '' FROM project_versions v JOIN projects p ON p.id = v.project_id
				WHERE p.org_id = ? AND v.author = ? GROUP BY v.project_id`, func(i *involvement, n int, _ string) { i.versions = n }},
			{`SELECT f.project_id, COUNT(*), '' FROM project_files f JOIN projects p ON p.id = f.project_id
				WHERE p.org_id = ? AND f.modified_by = ? GROUP BY f.project_id`, func(i *involvement, n int, _ string) { i.files = n }},
			{`SELECT project_id, 0, relation FROM project_grants WHERE org_id = ? AND user_id = ?`, func(i *involvement, _ int, r string) { i.relation = r }},
		} {
			rows, err := t.Query(ctx, q.query, x.org.ID, x.u.ID)
			if err != nil {
				return err
			}
			for rows.Next() {
				var p kluis.ProjectID
				var n int
				var rel string
				if err := rows.Scan(&p, &n, &rel); err != nil {
					rows.Close()
					return err
				}
				q.add(get(p), n, rel)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// writeProjects writes projects.json, versions.json, files.json and the
// files themselves under files/PROJECT/PATH.
func (x *exporter) writeProjects(ctx context.Context) error {
	inv, err := x.involvements(ctx)
	if err != nil {
		return err
	}
	var all []kluis.Project
	if len(inv) > 0 {
		if all, err = x.s.projects.ExportProjects(ctx, x.org.ID); err != nil {
			return err
		}
	}
	list := []projectRow{}
	versions := []versionRow{}
	files := []fileRow{}
	for _, p := range all {
		in, ok := inv[p.ID]
		if !ok {
			continue
		}
		row := projectRow{ID: string(p.ID), InTrash: !p.DeletedAt.IsZero(), VersionsAuthored: in.versions, FilesLastWritten: in.files}
		if in.relation != "" {
			rel := in.relation
			row.Relation = &rel
		}
		var readable bool
		if err := x.s.core.Read(ctx, func(t *sqlstore.Tx) error {
			st, err := rights.Of(ctx, t, x.org.ID, x.actor, p.ID)
			readable = err == nil && st.Rights.Has(kluis.RightView)
			return nil
		}); err != nil {
			return err
		}
		if !readable {
			row.Withheld = reasonNoRight
			list = append(list, row)
			continue
		}
		name := p.Name
		row.Name, row.ContentIncluded = &name, true
		list = append(list, row)
		if in.versions > 0 {
			vs, err := x.s.projects.VersionsBy(ctx, x.org.ID, p.ID, x.u.ID)
			if err != nil {
				return err
			}
			for _, v := range vs {
				vr := versionRow{Project: string(p.ID), Number: v.Number, At: v.At.UTC(), Message: v.Message, Files: v.Files}
				if v.RestoredFrom > 0 {
					n := v.RestoredFrom
					vr.RestoredFrom = &n
				}
				versions = append(versions, vr)
			}
		}
		if in.files > 0 {
			prefix := "files/" + string(p.ID) + "/"
			fs, err := x.s.projects.ExportFilesBy(ctx, x.org.ID, p.ID, x.u.ID, x.zw, prefix)
			if err != nil {
				return err
			}
			for _, f := range fs {
				files = append(files, fileFrom(p.ID, prefix, f))
			}
		}
	}
	if err := orgexport.AddJSON(x.zw, "projects.json", map[string]any{"projects": list}); err != nil {
		return err
	}
	if err := orgexport.AddJSON(x.zw, "versions.json", map[string]any{"versions": versions}); err != nil {
		return err
	}
	return orgexport.AddJSON(x.zw, "files.json", map[string]any{"files": files})
}

func fileFrom(p kluis.ProjectID, prefix string, f projects.ExportedFile) fileRow {
	return fileRow{Project: string(p), Path: f.Path, Size: f.Size, SHA256: f.SHA256, ModifiedAt: f.ModifiedAt.UTC(), Content: prefix + f.Path}
}
