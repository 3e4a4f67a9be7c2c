package projects

import (
	"archive/zip"
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/content"
	"github.com/kluis/kluis/internal/sqlstore"
)

// A project's part of the organisation's export (R9, docs/EXPORT.md). The
// export area decides who may read which project and records the export;
// these methods only read, streaming content one chunk at a time.

// ExportedFile is one file of a tree in the export.
type ExportedFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	// ETag identifies the content inside the project: equal ETags, equal
	// bytes. SHA256 is the plain SHA-256 of the bytes, for the files of the
	// current tree (and for a version's file with the same ETag).
	ETag       string    `json:"etag"`
	SHA256     string    `json:"sha256,omitempty"`
	ModifiedAt time.Time `json:"modified_at"`
	ModifiedBy string    `json:"modified_by,omitempty"`
}

// ExportedVersion is one saved version in versions.json.
type ExportedVersion struct {
	Number       int            `json:"number"`
	Author       string         `json:"author"`
	At           time.Time      `json:"at"`
	Message      string         `json:"message"`
	RestoredFrom int            `json:"restored_from,omitempty"`
	Files        []ExportedFile `json:"files"`
}

// ExportProjects lists every project of org, in the trash or not, with its
// name opened, in order of creation.
func (s *Service) ExportProjects(ctx context.Context, org kluis.OrgID) ([]kluis.Project, error) {
	var out []kluis.Project
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		rows, err := t.Query(ctx, `SELECT `+projectColumns+` FROM projects WHERE org_id = ? ORDER BY id`, org)
		if err != nil {
			return err
		}
		var sealed []sealedProject
		for rows.Next() {
			sp, err := scanProject(rows)
			if err != nil {
				rows.Close()
				return err
			}
			sealed = append(sealed, sp)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, sp := range sealed {
			p, err := s.openProject(ctx, org, sp)
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// ExportContent writes the files of project's working tree under
// prefix+"files/", byte for byte, and every saved version under
// prefix+"versions.json"; it returns the working tree's files with the
// SHA-256 of each. The caller decided that the files may be read.
func (s *Service) ExportContent(ctx context.Context, org kluis.OrgID, project kluis.ProjectID, zw *zip.Writer, prefix string) ([]ExportedFile, error) {
	var tree []entry
	if err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		var err error
		tree, err = workingTree(ctx, t, project)
		return err
	}); err != nil {
		return nil, err
	}
	sealer := s.sealer(org, project)
	files := make([]ExportedFile, 0, len(tree))
	sums := map[string]string{} // ETag → SHA-256
	for _, e := range tree {
		info, m, err := s.open(ctx, org, project, e, true)
		if err != nil {
			return nil, err
		}
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: prefix + "files/" + info.Path, Method: zip.Deflate, Modified: info.ModifiedAt})
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(fw, h), content.NewReader(ctx, m, sealer, s.blobs)); err != nil {
			return nil, err
		}
		f := exportedFile(info)
		f.SHA256 = hex.EncodeToString(h.Sum(nil))
		sums[f.ETag] = f.SHA256
		files = append(files, f)
	}
	slices.SortFunc(files, func(a, b ExportedFile) int { return strings.Compare(a.Path, b.Path) })
	w, err := zw.Create(prefix + "versions.json")
	if err != nil {
		return nil, err
	}
	return files, s.exportVersions(ctx, org, project, w, sums)
}

func exportedFile(info kluis.FileInfo) ExportedFile {
	return ExportedFile{Path: info.Path, Size: info.Size, ETag: info.ETag, ModifiedAt: info.ModifiedAt.UTC(), ModifiedBy: string(info.ModifiedBy)}
}

// exportVersions writes {"versions":[…]} oldest first, one version's tree
// in memory at a time.
func (s *Service) exportVersions(ctx context.Context, org kluis.OrgID, project kluis.ProjectID, w io.Writer, sums map[string]string) error {
	type row struct {
		v   ExportedVersion
		msg []byte
	}
	var list []row
	if err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		rows, err := t.Query(ctx, `SELECT number, author, at, message, restored_from FROM project_versions WHERE project_id = ? ORDER BY number`, project)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r row
			var at int64
			var from sql.NullInt64
			if err := rows.Scan(&r.v.Number, &r.v.Author, &at, &r.msg, &from); err != nil {
				return err
			}
			r.v.At, r.v.RestoredFrom = sqlstore.FromMicros(at).UTC(), int(from.Int64)
			list = append(list, r)
		}
		return rows.Err()
	}); err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	bw.WriteString(`{"versions":[`)
	for i, r := range list {
		msg, err := s.core.Open(ctx, versionField(org, project, r.v.Number, "message"), r.msg)
		if err != nil {
			return err
		}
		r.v.Message = string(msg)
		var tree []entry
		if err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
			tree, err = s.versionTree(ctx, t, org, project, r.v.Number)
			return err
		}); err != nil {
			return err
		}
		r.v.Files = make([]ExportedFile, 0, len(tree))
		for _, e := range tree {
			info, _, err := s.open(ctx, org, project, e, false)
			if err != nil {
				return err
			}
			f := exportedFile(info)
			f.SHA256 = sums[f.ETag]
			r.v.Files = append(r.v.Files, f)
		}
		slices.SortFunc(r.v.Files, func(a, b ExportedFile) int { return strings.Compare(a.Path, b.Path) })
		b, err := json.Marshal(r.v)
		if err != nil {
			return err
		}
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.WriteString("\n")
		bw.Write(b)
	}
	bw.WriteString("\n]}\n")
	return bw.Flush()
}
