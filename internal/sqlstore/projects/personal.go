package projects

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/content"
	"github.com/kluis/kluis/internal/sqlstore"
)

// A person's part of a project in their personal export (R4, R34,
// docs/PERSONAL-EXPORT.md): the versions they saved and the files of the
// working tree they last wrote. The personal-data area decides who may read
// which project and records the export; these methods only read.

// AuthoredVersion is one saved version a person authored.
type AuthoredVersion struct {
	Number       int
	At           time.Time
	Message      string
	Files        int
	RestoredFrom int
}

// VersionsBy lists the versions of project that user saved, oldest first,
// with their messages opened.
func (s *Service) VersionsBy(ctx context.Context, org kluis.OrgID, project kluis.ProjectID, user kluis.UserID) ([]AuthoredVersion, error) {
	var out []AuthoredVersion
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		rows, err := t.Query(ctx, `SELECT v.number, v.at, v.message, v.files, v.restored_from FROM project_versions v
			JOIN projects p ON p.id = v.project_id
			WHERE p.org_id = ? AND v.project_id = ? AND v.author = ? ORDER BY v.number`, org, project, user)
		if err != nil {
			return err
		}
		type row struct {
			v   AuthoredVersion
			msg []byte
		}
		var list []row
		for rows.Next() {
			var r row
			var at int64
			var from sql.NullInt64
			if err := rows.Scan(&r.v.Number, &at, &r.msg, &r.v.Files, &from); err != nil {
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
		for _, r := range list {
			msg, err := s.core.Open(ctx, versionField(org, project, r.v.Number, "message"), r.msg)
			if err != nil {
				return err
			}
			r.v.Message = string(msg)
			out = append(out, r.v)
		}
		return nil
	})
	return out, err
}

// ExportFilesBy writes the files of project's working tree that user last
// wrote (modified_by) under prefix, byte for byte, streaming, and returns
// them ordered by path with the SHA-256 of each. The caller decided that
// the files may be read.
func (s *Service) ExportFilesBy(ctx context.Context, org kluis.OrgID, project kluis.ProjectID, user kluis.UserID, zw *zip.Writer, prefix string) ([]ExportedFile, error) {
	var tree []entry
	if err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		rows, err := t.Query(ctx, `SELECT `+entryColumns+` FROM project_files f JOIN projects p ON p.id = f.project_id
			WHERE p.org_id = ? AND f.project_id = ? AND f.modified_by = ?`, org, project, user)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanEntry(rows)
			if err != nil {
				return err
			}
			tree = append(tree, e)
		}
		return rows.Err()
	}); err != nil {
		return nil, err
	}
	type opened struct {
		info kluis.FileInfo
		m    content.FileManifest
	}
	var files []opened
	for _, e := range tree {
		info, m, err := s.open(ctx, org, project, e, true)
		if err != nil {
			return nil, err
		}
		files = append(files, opened{info, m})
	}
	slices.SortFunc(files, func(a, b opened) int { return strings.Compare(a.info.Path, b.info.Path) })
	sealer := s.sealer(org, project)
	out := make([]ExportedFile, 0, len(files))
	for _, f := range files {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: prefix + f.info.Path, Method: zip.Deflate, Modified: f.info.ModifiedAt})
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(fw, h), content.NewReader(ctx, f.m, sealer, s.blobs)); err != nil {
			return nil, err
		}
		ef := exportedFile(f.info)
		ef.SHA256 = hex.EncodeToString(h.Sum(nil))
		out = append(out, ef)
	}
	return out, nil
}
