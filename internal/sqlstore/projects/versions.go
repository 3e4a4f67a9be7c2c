package projects

import (
	"archive/zip"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/content"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/rights"
)

// Versions (R10, R11): a version is an immutable snapshot of the working
// tree — the file rows as they were, sealed values and all, in one sealed
// list — with its author, time and message. Saving one decrypts nothing:
// the tree is the rows' ciphertext, and the chunks it holds are the working
// tree's, copied in one statement. Going back to a version is a new version
// whose tree is the old one's; history is never rewritten.

const tabVersions = "project_versions"

func versionField(org kluis.OrgID, project kluis.ProjectID, n int, column string) keys.FieldRef {
	return keys.FieldRef{Org: string(org), Table: tabVersions, Column: column, Row: string(project) + "/" + strconv.Itoa(n)}
}

func versionHolder(n int) string { return "v:" + strconv.Itoa(n) }

// versionTree reads and opens version n's tree. Errors: not_found.
func (s *Service) versionTree(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, project kluis.ProjectID, n int) ([]entry, error) {
	var sealed []byte
	err := t.QueryRow(ctx, `SELECT tree FROM project_versions WHERE project_id = ? AND number = ?`, project, n).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, kluis.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	raw, err := s.core.Open(ctx, versionField(org, project, n, "tree"), sealed)
	if err != nil {
		return nil, err
	}
	var tree []entry
	if err := json.Unmarshal(raw, &tree); err != nil {
		return nil, err
	}
	return tree, nil
}

// insertVersion stores a new version with tree and returns it.
func (s *Service) insertVersion(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, actor kluis.Actor, project kluis.ProjectID, tree []entry, message string, from int) (kluis.Version, error) {
	var last sql.NullInt64
	if err := t.QueryRow(ctx, `SELECT MAX(number) FROM project_versions WHERE project_id = ?`, project).Scan(&last); err != nil {
		return kluis.Version{}, err
	}
	v := kluis.Version{Number: int(last.Int64) + 1, Author: kluis.AuthorOf(actor), At: t.Now(), Message: message, Files: len(tree), RestoredFrom: from}
	if tree == nil {
		tree = []entry{}
	}
	raw, err := json.Marshal(tree)
	if err != nil {
		return v, err
	}
	pk := projectKey(org, project)
	sealedTree, err := s.core.Seal(ctx, pk, versionField(org, project, v.Number, "tree"), raw)
	if err != nil {
		return v, err
	}
	sealedMsg, err := s.core.Seal(ctx, pk, versionField(org, project, v.Number, "message"), []byte(message))
	if err != nil {
		return v, err
	}
	var restored any
	if from > 0 {
		restored = from
	}
	if _, err := t.Exec(ctx, `INSERT INTO project_versions (project_id, number, author, at, message, tree, files, restored_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		project, v.Number, string(v.Author), sqlstore.Micros(t.Now()), sealedMsg, sealedTree, len(tree), restored); err != nil {
		return v, err
	}
	return v, nil
}

func validMessage(m string) (string, error) {
	m = strings.TrimSpace(m)
	if !utf8.ValidString(m) || utf8.RuneCountInString(m) > kluis.MaxVersionMessage ||
		strings.ContainsFunc(m, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) {
		return "", kluis.Invalid(map[string]string{"message": "must be at most 1000 characters of text"})
	}
	return m, nil
}

// CreateVersion saves the working tree as a new version (editor), numbered
// from 1. Recorded as version.create. Errors: not_found, forbidden,
// invalid_input.
func (s *Service) CreateVersion(ctx context.Context, org kluis.OrgID, actor kluis.Actor, project kluis.ProjectID, message string) (kluis.Version, error) {
	var v kluis.Version
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if _, err := rights.Require(ctx, t, org, actor, project, kluis.RightEdit, "version.create"); err != nil {
			return err
		}
		msg, err := validMessage(message)
		if err != nil {
			return err
		}
		tree, err := workingTree(ctx, t, project)
		if err != nil {
			return err
		}
		if v, err = s.insertVersion(ctx, t, org, actor, project, tree, msg, 0); err != nil {
			return err
		}
		// The version holds exactly the working tree's chunks.
		if _, err := t.Exec(ctx, `INSERT INTO chunk_refs (project_id, address, holder)
			SELECT DISTINCT project_id, address, ? FROM chunk_refs WHERE project_id = ? AND holder >= 'f:' AND holder < 'f;'`,
			versionHolder(v.Number), project); err != nil {
			return err
		}
		v.AuthorName = s.authorName(ctx, t, org, v.Author, nil)
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "version.create", rights.ProjectTarget(project), "success",
			map[string]any{"version": v.Number, "files": v.Files})
	})
	return v, err
}

// authorName is the name of a version's author as a project member sees
// it, or "" when the account is gone (erased: its key destroyed).
func (s *Service) authorName(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, id kluis.UserID, cache map[kluis.UserID]string) string {
	if name, ok := cache[id]; ok {
		return name
	}
	name := ""
	// Support's work has no person's name: the pages name support in the
	// reader's language.
	if u, err := t.FindUser(ctx, org, id); err == nil && !kluis.IsSupportAuthor(id) {
		name = u.Name
	}
	if cache != nil {
		cache[id] = name
	}
	return name
}

// FindVersions lists a project's versions, newest first (viewer), with
// their authors' names (R11).
func (s *Service) FindVersions(ctx context.Context, org kluis.OrgID, actor kluis.Actor, project kluis.ProjectID) ([]kluis.Version, error) {
	out := []kluis.Version{}
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		if _, err := rights.Require(ctx, t, org, actor, project, kluis.RightView, "version.list"); err != nil {
			return err
		}
		rows, err := t.Query(ctx, `SELECT number, author, at, message, files, restored_from FROM project_versions
			WHERE project_id = ? ORDER BY number DESC`, project)
		if err != nil {
			return err
		}
		type row struct {
			v   kluis.Version
			msg []byte
		}
		var list []row
		for rows.Next() {
			var r row
			var at int64
			var from sql.NullInt64
			if err := rows.Scan(&r.v.Number, &r.v.Author, &at, &r.msg, &r.v.Files, &from); err != nil {
				rows.Close()
				return err
			}
			r.v.At, r.v.RestoredFrom = sqlstore.FromMicros(at), int(from.Int64)
			list = append(list, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		names := map[kluis.UserID]string{}
		for _, r := range list {
			msg, err := s.core.Open(ctx, versionField(org, project, r.v.Number, "message"), r.msg)
			if err != nil {
				return err
			}
			r.v.Message = string(msg)
			r.v.AuthorName = s.authorName(ctx, t, org, r.v.Author, names)
			out = append(out, r.v)
		}
		return nil
	})
	return out, err
}

// DiffVersions says which paths were added, changed and removed going from
// version against to version n (against 0: the version before n; before
// version 1, nothing). Errors: not_found.
func (s *Service) DiffVersions(ctx context.Context, org kluis.OrgID, actor kluis.Actor, project kluis.ProjectID, n, against int) (kluis.Diff, error) {
	d := kluis.Diff{Added: []string{}, Changed: []string{}, Removed: []string{}}
	if n < 1 || against < 0 {
		return d, kluis.ErrNotFound
	}
	if against == 0 {
		against = n - 1
	}
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		if _, err := rights.Require(ctx, t, org, actor, project, kluis.RightView, "version.diff"); err != nil {
			return err
		}
		to, err := s.versionTree(ctx, t, org, project, n)
		if err != nil {
			return err
		}
		var from []entry
		if against > 0 {
			if from, err = s.versionTree(ctx, t, org, project, against); err != nil {
				return err
			}
		}
		before := map[string]entry{}
		for _, e := range from {
			before[string(e.Key)] = e
		}
		path := func(e entry) (string, error) {
			info, _, err := s.open(ctx, org, project, e, false)
			return info.Path, err
		}
		for _, e := range to {
			old, ok := before[string(e.Key)]
			delete(before, string(e.Key))
			if ok && old.ETag == e.ETag {
				continue
			}
			p, err := path(e)
			if err != nil {
				return err
			}
			if ok {
				d.Changed = append(d.Changed, p)
			} else {
				d.Added = append(d.Added, p)
			}
		}
		for _, e := range before {
			p, err := path(e)
			if err != nil {
				return err
			}
			d.Removed = append(d.Removed, p)
		}
		return nil
	})
	for _, l := range [][]string{d.Added, d.Changed, d.Removed} {
		slices.Sort(l)
	}
	return d, err
}

// RestoreVersion goes back to version n (editor): a new version whose tree
// is n's, which becomes the working tree. Recorded as version.restore.
// Errors: not_found, forbidden.
func (s *Service) RestoreVersion(ctx context.Context, org kluis.OrgID, actor kluis.Actor, project kluis.ProjectID, n int) (kluis.Version, error) {
	var v kluis.Version
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if _, err := rights.Require(ctx, t, org, actor, project, kluis.RightEdit, "version.restore"); err != nil {
			return err
		}
		tree, err := s.versionTree(ctx, t, org, project, n)
		if err != nil {
			return err
		}
		if v, err = s.insertVersion(ctx, t, org, actor, project, tree, "", n); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `INSERT INTO chunk_refs (project_id, address, holder)
			SELECT project_id, address, ? FROM chunk_refs WHERE project_id = ? AND holder = ?`,
			versionHolder(v.Number), project, versionHolder(n)); err != nil {
			return err
		}
		// The working tree becomes the version's.
		if _, err := t.Exec(ctx, `DELETE FROM project_files WHERE project_id = ?`, project); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `DELETE FROM chunk_refs WHERE project_id = ? AND holder >= 'f:' AND holder < 'f;'`, project); err != nil {
			return err
		}
		for _, e := range tree {
			if _, err := t.Exec(ctx, `INSERT INTO project_files (project_id, `+entryColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				project, e.Key, e.Path, e.Size, e.ETag, e.Manifest, e.ModifiedAt, e.ModifiedBy); err != nil {
				return err
			}
			_, m, err := s.open(ctx, org, project, e, true)
			if err != nil {
				return err
			}
			if err := holdChunks(ctx, t, project, fileRef{project: project, key: e.Key}.holder(), m); err != nil {
				return err
			}
		}
		v.AuthorName = s.authorName(ctx, t, org, v.Author, nil)
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "version.restore", rights.ProjectTarget(project), "success",
			map[string]any{"version": v.Number, "from": n})
	})
	return v, err
}

// WriteVersionZip writes version n as a ZIP archive to w, one file at a
// time, streaming (viewer). Recorded as file.read of the whole version.
// Errors: not_found.
func (s *Service) WriteVersionZip(ctx context.Context, org kluis.OrgID, actor kluis.Actor, project kluis.ProjectID, n int, w io.Writer) error {
	var tree []entry
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		if _, err := rights.Require(ctx, t, org, actor, project, kluis.RightView, "file.read"); err != nil {
			return err
		}
		var err error
		tree, err = s.versionTree(ctx, t, org, project, n)
		return err
	})
	if err != nil {
		return err
	}
	if err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "file.read", rights.ProjectTarget(project), "success",
			map[string]any{"version": n, "zip": true, "files": len(tree)})
	}); err != nil {
		return err
	}
	zw := zip.NewWriter(w)
	sealer := s.sealer(org, project)
	for _, e := range tree {
		info, m, err := s.open(ctx, org, project, e, true)
		if err != nil {
			return err
		}
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: info.Path, Method: zip.Deflate, Modified: info.ModifiedAt})
		if err != nil {
			return err
		}
		if _, err := io.Copy(fw, content.NewReader(ctx, m, sealer, s.blobs)); err != nil {
			return err
		}
	}
	return zw.Close()
}
