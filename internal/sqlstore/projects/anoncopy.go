package projects

// The projects' part of an anonymised copy of the instance (kluis export
// --anonymize, R39, R48; docs/OPERATIONS.md). ReadShape reads a project of
// the source as its shape only: which files at which (opened) paths, their
// sizes and content identities, and every version's tree. It never reads a
// file's content. WriteCopy writes that shape into the copy under the
// copy's keys, with stand-in content the caller generates and the paths
// the caller fakes. The caller (internal/anoncopy) decides that it may;
// like the export, these methods check no rights.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/content"
	"github.com/kluis/kluis/internal/sqlstore"
)

// ShapeFile is one file of a project's working tree or of a version, as
// its shape: ETag stands for the content (equal ETags, equal bytes).
type ShapeFile struct {
	Path       string
	Size       int64
	ETag       string
	ModifiedAt int64 // Unix microseconds
	ModifiedBy string
}

// ShapeVersion is one saved version.
type ShapeVersion struct {
	Number       int
	Author       string
	At           int64 // Unix microseconds
	RestoredFrom int
	Files        []ShapeFile
}

// Shape is a project without its content and without its name.
type Shape struct {
	ID                 kluis.ProjectID
	CreatedAt          int64
	DeletedAt, PurgeAt sql.NullInt64
	Files              []ShapeFile
	Versions           []ShapeVersion
}

// ReadProjectShapes lists every project of org, in the trash or not, in
// order of creation, without files or versions: ReadShape fills in one at
// a time, so a copy holds one project's trees in memory, not all.
func (s *Service) ReadProjectShapes(ctx context.Context, org kluis.OrgID) ([]Shape, error) {
	var out []Shape
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		rows, err := t.Query(ctx, `SELECT id, created_at, deleted_at, purge_at FROM projects WHERE org_id = ? ORDER BY id`, org)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var sh Shape
			if err := rows.Scan(&sh.ID, &sh.CreatedAt, &sh.DeletedAt, &sh.PurgeAt); err != nil {
				return err
			}
			out = append(out, sh)
		}
		return rows.Err()
	})
	return out, err
}

func (s *Service) shapeFiles(ctx context.Context, org kluis.OrgID, project kluis.ProjectID, tree []entry) ([]ShapeFile, error) {
	out := make([]ShapeFile, 0, len(tree))
	for _, e := range tree {
		info, _, err := s.open(ctx, org, project, e, false)
		if err != nil {
			return nil, err
		}
		out = append(out, ShapeFile{Path: info.Path, Size: e.Size, ETag: e.ETag, ModifiedAt: e.ModifiedAt, ModifiedBy: e.ModifiedBy})
	}
	return out, nil
}

// ReadShape reads the working tree and the versions of the project of sh
// (from ReadProjectShapes), with their paths opened; never a file's content.
func (s *Service) ReadShape(ctx context.Context, org kluis.OrgID, sh *Shape) error {
	var tree []entry
	var versions []ShapeVersion
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		var err error
		if tree, err = workingTree(ctx, t, sh.ID); err != nil {
			return err
		}
		rows, err := t.Query(ctx, `SELECT number, author, at, restored_from FROM project_versions WHERE project_id = ? ORDER BY number`, sh.ID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var v ShapeVersion
			var from sql.NullInt64
			if err := rows.Scan(&v.Number, &v.Author, &v.At, &from); err != nil {
				return err
			}
			v.RestoredFrom = int(from.Int64)
			versions = append(versions, v)
		}
		return rows.Err()
	})
	if err != nil {
		return err
	}
	if sh.Files, err = s.shapeFiles(ctx, org, sh.ID, tree); err != nil {
		return err
	}
	for i := range versions {
		var vt []entry
		if err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
			vt, err = s.versionTree(ctx, t, org, sh.ID, versions[i].Number)
			return err
		}); err != nil {
			return err
		}
		if versions[i].Files, err = s.shapeFiles(ctx, org, sh.ID, vt); err != nil {
			return err
		}
	}
	sh.Versions = versions
	return nil
}

// CopyNames are the faked values WriteCopy writes in place of the source's.
type CopyNames struct {
	Project string                     // the project's name
	Path    func(string) string        // a file's path
	Message func(ShapeVersion) string  // a version's message
	Content func(ShapeFile) io.Reader  // the stand-in of a file's content (called once per ETag)
	Audit   func(t *sqlstore.Tx) error // records the copy in the transaction that writes it
}

// WriteCopy writes the project of shape sh into this (the copy's) store
// with a key of its own: its row with the name given, its working tree
// and its versions with the faked paths and messages, and stand-in content
// stored through the content store. Files of equal content in the source
// share their stand-in, so versions share chunks as the source's do.
func (s *Service) WriteCopy(ctx context.Context, org kluis.OrgID, sh Shape, n CopyNames) error {
	if err := s.core.Keys().EnsureProjectKey(ctx, string(org), string(sh.ID), kluis.CLIActor.AuditName()); err != nil {
		return err
	}
	pk := projectKey(org, sh.ID)
	sealer := s.sealer(org, sh.ID)
	stored := map[string]content.FileManifest{} // source ETag → stand-in
	var addrs []content.Address
	made := map[string]entry{} // fake path + source ETag → the entry
	build := func(f ShapeFile) (entry, content.FileManifest, error) {
		m, ok := stored[f.ETag]
		if !ok {
			st, err := content.Store(ctx, n.Content(f), sealer, s.blobs, content.MaxFileSize)
			if err != nil {
				return entry{}, m, err
			}
			m = st.Manifest
			stored[f.ETag] = m
			addrs = append(addrs, st.New...)
			addrs = append(addrs, st.Found...)
		}
		path := n.Path(f.Path)
		if e, ok := made[path+"\x00"+f.ETag]; ok {
			e.ModifiedAt, e.ModifiedBy = f.ModifiedAt, f.ModifiedBy
			return e, m, nil
		}
		key, err := s.pathKey(ctx, org, sh.ID, path)
		if err != nil {
			return entry{}, m, err
		}
		ref := fileRef{project: sh.ID, key: key}
		raw, err := m.MarshalBinary()
		if err != nil {
			return entry{}, m, err
		}
		sealedPath, err := s.core.Seal(ctx, pk, fileField(org, ref, "path"), []byte(path))
		if err != nil {
			return entry{}, m, err
		}
		sealedManifest, err := s.core.Seal(ctx, pk, fileField(org, ref, "manifest"), raw)
		if err != nil {
			return entry{}, m, err
		}
		e := entry{Key: key, Path: sealedPath, Size: m.Size, ETag: m.ETag(), Manifest: sealedManifest, ModifiedAt: f.ModifiedAt, ModifiedBy: f.ModifiedBy}
		made[path+"\x00"+f.ETag] = e
		return e, m, nil
	}
	type built struct {
		entries   []entry
		manifests []content.FileManifest
	}
	buildTree := func(files []ShapeFile) (built, error) {
		var b built
		for _, f := range files {
			e, m, err := build(f)
			if err != nil {
				return b, err
			}
			b.entries, b.manifests = append(b.entries, e), append(b.manifests, m)
		}
		return b, nil
	}
	work, err := buildTree(sh.Files)
	if err != nil {
		return err
	}
	vtrees := make([]built, len(sh.Versions))
	for i, v := range sh.Versions {
		if vtrees[i], err = buildTree(v.Files); err != nil {
			return err
		}
	}
	name, err := s.core.Seal(ctx, pk, nameField(org, sh.ID), []byte(n.Project))
	if err != nil {
		return err
	}
	type sealedVersion struct{ tree, msg []byte }
	sv := make([]sealedVersion, len(sh.Versions))
	for i, v := range sh.Versions {
		tree := vtrees[i].entries
		if tree == nil {
			tree = []entry{}
		}
		raw, err := json.Marshal(tree)
		if err != nil {
			return err
		}
		if sv[i].tree, err = s.core.Seal(ctx, pk, versionField(org, sh.ID, v.Number, "tree"), raw); err != nil {
			return err
		}
		if sv[i].msg, err = s.core.Seal(ctx, pk, versionField(org, sh.ID, v.Number, "message"), []byte(n.Message(v))); err != nil {
			return err
		}
	}
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if _, err := t.Exec(ctx, `INSERT INTO projects (id, org_id, name, created_at, deleted_at, purge_at) VALUES (?, ?, ?, ?, ?, ?)`,
			sh.ID, org, name, sh.CreatedAt, sh.DeletedAt, sh.PurgeAt); err != nil {
			return fmt.Errorf("copy project: %w", err)
		}
		if err := recordChunks(ctx, t, sh.ID, addrs); err != nil {
			return err
		}
		for i, e := range work.entries {
			if _, err := t.Exec(ctx, `INSERT INTO project_files (project_id, `+entryColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				sh.ID, e.Key, e.Path, e.Size, e.ETag, e.Manifest, e.ModifiedAt, e.ModifiedBy); err != nil {
				return fmt.Errorf("copy file: %w", err)
			}
			ref := fileRef{project: sh.ID, key: e.Key}
			if err := holdChunks(ctx, t, sh.ID, ref.holder(), work.manifests[i]); err != nil {
				return err
			}
			if err := sizeChunks(ctx, t, sh.ID, work.manifests[i]); err != nil {
				return err
			}
		}
		for i, v := range sh.Versions {
			var from any
			if v.RestoredFrom > 0 {
				from = v.RestoredFrom
			}
			if _, err := t.Exec(ctx, `INSERT INTO project_versions (project_id, number, author, at, message, tree, files, restored_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				sh.ID, v.Number, v.Author, v.At, sv[i].msg, sv[i].tree, len(vtrees[i].entries), from); err != nil {
				return fmt.Errorf("copy version: %w", err)
			}
			if err := holdChunks(ctx, t, sh.ID, versionHolder(v.Number), vtrees[i].manifests...); err != nil {
				return err
			}
			for _, m := range vtrees[i].manifests {
				if err := sizeChunks(ctx, t, sh.ID, m); err != nil {
					return err
				}
			}
		}
		return n.Audit(t)
	})
}
