package projects

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/content"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/licences"
	"github.com/kluis/kluis/internal/sqlstore/rights"
)

// Files of a project's working tree (R9). A file row holds the path and the
// manifest sealed under the project key, found by the path's HMAC under the
// project's address key; the content is in the chunks its manifest names.
// Versions keep copies of these sealed values (versions.go), so their
// associated data names the file row, not the table that holds the copy.

const tabFiles = "project_files"

// fileRef is a file row's identity: the project and the path's HMAC.
type fileRef struct {
	project kluis.ProjectID
	key     []byte
}

func (f fileRef) row() string    { return string(f.project) + "/" + hex.EncodeToString(f.key) }
func (f fileRef) holder() string { return "f:" + hex.EncodeToString(f.key) }

func fileField(org kluis.OrgID, f fileRef, column string) keys.FieldRef {
	return keys.FieldRef{Org: string(org), Table: tabFiles, Column: column, Row: f.row()}
}

// entry is one file as stored: the working tree's row, or a version's copy.
type entry struct {
	Key        []byte `json:"k"`
	Path       []byte `json:"p"` // sealed
	Size       int64  `json:"s"`
	ETag       string `json:"e"`
	Manifest   []byte `json:"m"` // sealed
	ModifiedAt int64  `json:"t"`
	ModifiedBy string `json:"b"`
}

// open turns a stored entry into what callers see, with its manifest.
func (s *Service) open(ctx context.Context, org kluis.OrgID, project kluis.ProjectID, e entry, manifest bool) (kluis.FileInfo, content.FileManifest, error) {
	ref := fileRef{project: project, key: e.Key}
	path, err := s.core.Open(ctx, fileField(org, ref, "path"), e.Path)
	if err != nil {
		return kluis.FileInfo{}, content.FileManifest{}, err
	}
	info := kluis.FileInfo{Path: string(path), Size: e.Size, ETag: e.ETag, ModifiedAt: sqlstore.FromMicros(e.ModifiedAt), ModifiedBy: kluis.UserID(e.ModifiedBy)}
	if !manifest {
		return info, content.FileManifest{}, nil
	}
	raw, err := s.core.Open(ctx, fileField(org, ref, "manifest"), e.Manifest)
	if err != nil {
		return info, content.FileManifest{}, err
	}
	m, err := content.ParseFileManifest(raw)
	return info, m, err
}

const entryColumns = `path_key, path, size, etag, manifest, modified_at, modified_by`

func scanEntry(row interface{ Scan(...any) error }) (entry, error) {
	var e entry
	err := row.Scan(&e.Key, &e.Path, &e.Size, &e.ETag, &e.Manifest, &e.ModifiedAt, &e.ModifiedBy)
	return e, err
}

// workingTree reads every file row of the working tree.
func workingTree(ctx context.Context, t *sqlstore.Tx, project kluis.ProjectID) ([]entry, error) {
	rows, err := t.Query(ctx, `SELECT `+entryColumns+` FROM project_files WHERE project_id = ?`, project)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// pathKey is the path's HMAC under the project's address key.
func (s *Service) pathKey(ctx context.Context, org kluis.OrgID, project kluis.ProjectID, path string) ([]byte, error) {
	k, err := s.core.Keys().PathIndex(ctx, string(org), string(project), path)
	if errors.Is(err, keys.ErrKeyDestroyed) {
		return nil, kluis.ErrNotFound
	}
	return k[:], err
}

func (s *Service) sealer(org kluis.OrgID, project kluis.ProjectID) content.Sealer {
	return content.ProjectSealer(s.core.Keys(), string(org), string(project))
}

// PutFile stores a file's content from w.Body, streaming, and makes it the
// file at w.Path in the working tree. The rights are checked before a byte
// is stored and again when the file is committed; If-Match and
// If-None-Match are judged at the commit, so of two editors who both read
// a file, the second to save gets precondition_failed instead of silently
// overwriting the first. Recorded as file.put. Errors: not_found,
// forbidden, invalid_input, precondition_failed, too_large, conflict.
func (s *Service) PutFile(ctx context.Context, org kluis.OrgID, actor kluis.Actor, project kluis.ProjectID, w kluis.FileWrite) (kluis.FileInfo, bool, error) {
	require := func(t *sqlstore.Tx) error {
		_, err := rights.Require(ctx, t, org, actor, project, kluis.RightEdit, "file.put")
		if err == nil {
			err = kluis.ValidatePath(w.Path)
		}
		return err
	}
	upload, err := s.beginUpload(ctx, org, project, require)
	if err != nil {
		return kluis.FileInfo{}, false, err
	}
	stored, err := content.Store(ctx, w.Body, s.sealer(org, project), s.blobs, s.maxFileSize)
	if err != nil {
		s.endUpload(ctx, org, project, upload, stored.New)
		if errors.Is(err, content.ErrTooLarge) {
			return kluis.FileInfo{}, false, kluis.Errorf(kluis.ETooLarge, "the file is larger than this server takes")
		}
		if errors.Is(err, keys.ErrKeyDestroyed) {
			return kluis.FileInfo{}, false, kluis.ErrNotFound
		}
		return kluis.FileInfo{}, false, err
	}
	m := stored.Manifest
	key, err := s.pathKey(ctx, org, project, w.Path)
	if err != nil {
		s.endUpload(ctx, org, project, upload, stored.New)
		return kluis.FileInfo{}, false, err
	}
	ref := fileRef{project: project, key: key}
	raw, err := m.MarshalBinary()
	if err != nil {
		s.endUpload(ctx, org, project, upload, stored.New)
		return kluis.FileInfo{}, false, err
	}
	pk := projectKey(org, project)
	sealedPath, err := s.core.Seal(ctx, pk, fileField(org, ref, "path"), []byte(w.Path))
	if err == nil {
		raw, err = s.core.Seal(ctx, pk, fileField(org, ref, "manifest"), raw)
	}
	if err != nil {
		s.endUpload(ctx, org, project, upload, stored.New)
		return kluis.FileInfo{}, false, err
	}
	info := kluis.FileInfo{Path: w.Path, Size: m.Size, ETag: m.ETag(), ModifiedBy: kluis.AuthorOf(actor)}
	created := false
	err = s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if err := require(t); err != nil {
			return err
		}
		var etag string
		err := t.QueryRow(ctx, `SELECT etag FROM project_files WHERE project_id = ? AND path_key = ?`, project, key).Scan(&etag)
		exists := err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if w.IfNoneMatch && exists || w.IfMatch != "" && (!exists || w.IfMatch != etag) {
			return kluis.ErrPreconditionFailed
		}
		created = !exists
		info.ModifiedAt = t.Now()
		if err := recordChunks(ctx, t, project, append(stored.New, stored.Found...)); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `INSERT INTO project_files (project_id, `+entryColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (project_id, path_key) DO UPDATE SET path = excluded.path, size = excluded.size, etag = excluded.etag,
			manifest = excluded.manifest, modified_at = excluded.modified_at, modified_by = excluded.modified_by`,
			project, key, sealedPath, m.Size, info.ETag, raw, sqlstore.Micros(t.Now()), string(kluis.AuthorOf(actor))); err != nil {
			return err
		}
		if err := holdChunks(ctx, t, project, ref.holder(), m); err != nil {
			return err
		}
		if err := sizeChunks(ctx, t, project, m); err != nil {
			return err
		}
		if err := licences.CheckStorage(ctx, t, org); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `DELETE FROM content_uploads WHERE id = ?`, upload); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "file.put", rights.ProjectTarget(project), "success",
			map[string]any{"file": hex.EncodeToString(key[:8]), "size": m.Size, "new": created})
	})
	if err != nil {
		s.endUpload(ctx, org, project, upload, stored.New)
		return kluis.FileInfo{}, false, err
	}
	return info, created, nil
}

// findEntry finds one file of the working tree (version 0) or of version n.
func (s *Service) findEntry(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, project kluis.ProjectID, version int, path string) (entry, error) {
	if err := kluis.ValidatePath(path); err != nil {
		return entry{}, err
	}
	key, err := s.pathKey(ctx, org, project, path)
	if err != nil {
		return entry{}, err
	}
	if version == 0 {
		e, err := scanEntry(t.QueryRow(ctx, `SELECT `+entryColumns+` FROM project_files WHERE project_id = ? AND path_key = ?`, project, key))
		if errors.Is(err, sql.ErrNoRows) {
			return e, kluis.ErrNotFound
		}
		return e, err
	}
	tree, err := s.versionTree(ctx, t, org, project, version)
	if err != nil {
		return entry{}, err
	}
	for _, e := range tree {
		if string(e.Key) == string(key) {
			return e, nil
		}
	}
	return entry{}, kluis.ErrNotFound
}

// FindFile describes one file without reading it (viewer; HEAD). Errors:
// not_found, invalid_input.
func (s *Service) FindFile(ctx context.Context, org kluis.OrgID, actor kluis.Actor, project kluis.ProjectID, version int, path string) (kluis.FileInfo, error) {
	var info kluis.FileInfo
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		if _, err := rights.Require(ctx, t, org, actor, project, kluis.RightView, "file.read"); err != nil {
			return err
		}
		e, err := s.findEntry(ctx, t, org, project, version, path)
		if err != nil {
			return err
		}
		info, _, err = s.open(ctx, org, project, e, false)
		return err
	})
	return info, err
}

// fileReader is a download: the content streamed from its chunks.
type fileReader struct{ *content.Reader }

func (fileReader) Close() error { return nil }

// OpenFile returns a file's content for a download (viewer), recorded as
// file.read (R24: access to the customer's data is registered). Errors:
// not_found, invalid_input.
func (s *Service) OpenFile(ctx context.Context, org kluis.OrgID, actor kluis.Actor, project kluis.ProjectID, version int, path string) (kluis.FileInfo, io.ReadSeekCloser, error) {
	var info kluis.FileInfo
	var m content.FileManifest
	var key []byte
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		if _, err := rights.Require(ctx, t, org, actor, project, kluis.RightView, "file.read"); err != nil {
			return err
		}
		e, err := s.findEntry(ctx, t, org, project, version, path)
		if err != nil {
			return err
		}
		key = e.Key
		info, m, err = s.open(ctx, org, project, e, true)
		return err
	})
	if err != nil {
		return info, nil, err
	}
	details := map[string]any{"file": hex.EncodeToString(key[:8])}
	if version > 0 {
		details["version"] = version
	}
	if err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "file.read", rights.ProjectTarget(project), "success", details)
	}); err != nil {
		return info, nil, err
	}
	return info, fileReader{content.NewReader(ctx, m, s.sealer(org, project), s.blobs)}, nil
}

// DeleteFile removes a file from the working tree (editor); saved versions
// keep it. ifMatch, when set, is the ETag it must still have. Recorded as
// file.delete. Errors: not_found, forbidden, invalid_input,
// precondition_failed.
func (s *Service) DeleteFile(ctx context.Context, org kluis.OrgID, actor kluis.Actor, project kluis.ProjectID, path, ifMatch string) error {
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if _, err := rights.Require(ctx, t, org, actor, project, kluis.RightEdit, "file.delete"); err != nil {
			return err
		}
		e, err := s.findEntry(ctx, t, org, project, 0, path)
		if err != nil {
			return err
		}
		if ifMatch != "" && ifMatch != e.ETag {
			return kluis.ErrPreconditionFailed
		}
		ref := fileRef{project: project, key: e.Key}
		if _, err := t.Exec(ctx, `DELETE FROM project_files WHERE project_id = ? AND path_key = ?`, project, e.Key); err != nil {
			return err
		}
		if err := holdChunks(ctx, t, project, ref.holder()); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "file.delete", rights.ProjectTarget(project), "success",
			map[string]any{"file": hex.EncodeToString(e.Key[:8])})
	})
}

// FindTree lists the files of the working tree (version 0) or of version n
// under prefix ("" or a folder ending in "/"), ordered by path (viewer).
// Errors: not_found, invalid_input.
func (s *Service) FindTree(ctx context.Context, org kluis.OrgID, actor kluis.Actor, project kluis.ProjectID, version int, prefix string) ([]kluis.FileInfo, error) {
	if prefix != "" && (!strings.HasSuffix(prefix, "/") || kluis.ValidatePath(strings.TrimSuffix(prefix, "/")) != nil) {
		return nil, kluis.Invalid(map[string]string{"prefix": `must be a folder path ending in "/"`})
	}
	out := []kluis.FileInfo{}
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		if _, err := rights.Require(ctx, t, org, actor, project, kluis.RightView, "file.list"); err != nil {
			return err
		}
		var tree []entry
		var err error
		if version == 0 {
			tree, err = workingTree(ctx, t, project)
		} else {
			tree, err = s.versionTree(ctx, t, org, project, version)
		}
		if err != nil {
			return err
		}
		for _, e := range tree {
			info, _, err := s.open(ctx, org, project, e, false)
			if err != nil {
				return err
			}
			if strings.HasPrefix(info.Path, prefix) {
				out = append(out, info)
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b kluis.FileInfo) int { return strings.Compare(a.Path, b.Path) })
	return out, err
}
