package kluis

import (
	"context"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxPathLength bounds a path inside a project, in bytes.
const MaxPathLength = 1024

// DefaultMaxFileSize is the largest file a project takes unless the
// operator configures another limit (1 GiB).
const DefaultMaxFileSize = 1 << 30

// EPreconditionFailed answers a conditional request whose condition does
// not hold (If-Match, If-None-Match): someone else changed the file first.
const EPreconditionFailed = "precondition_failed"

// ErrPreconditionFailed is the answer to a write whose precondition fails.
var ErrPreconditionFailed = &Error{Code: EPreconditionFailed, Message: "the file was changed meanwhile; read it again and retry"}

// ValidatePath checks a path inside a project: "/"-separated UTF-8 without
// a leading "/", no empty, "." or ".." segment, no NUL or other control
// character, at most MaxPathLength bytes. Errors: invalid_input naming path.
func ValidatePath(p string) error {
	bad := func(why string) error { return Invalid(map[string]string{"path": why}) }
	switch {
	case p == "":
		return bad("is required")
	case len(p) > MaxPathLength:
		return bad("must be at most 1024 bytes")
	case !utf8.ValidString(p):
		return bad("must be valid text")
	case strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return bad("must not contain control characters")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return bad(`must not have an empty, "." or ".." segment`)
		}
	}
	return nil
}

// FileInfo describes one file of a project's tree (the working tree, or a
// version's).
type FileInfo struct {
	Path       string
	Size       int64
	ETag       string // without the quotes HTTP adds
	ModifiedAt time.Time
	ModifiedBy UserID
}

// FileWrite is one upload: the file's new content and the condition under
// which it may replace what is there.
type FileWrite struct {
	Path string
	Body io.Reader
	// IfMatch, when set, is the ETag the file must still have (If-Match).
	IfMatch string
	// IfNoneMatch says the file must not exist yet (If-None-Match: *).
	IfNoneMatch bool
}

// Version is a saved, immutable snapshot of a project's whole tree (R10,
// R11): who saved it, when, and why.
type Version struct {
	Number     int
	Author     UserID
	AuthorName string // "" when the author's account is gone
	At         time.Time
	Message    string
	Files      int
	// RestoredFrom is the version whose tree this one took back, or 0.
	RestoredFrom int
}

// MaxVersionMessage bounds a version's message, in characters.
const MaxVersionMessage = 1000

// Diff is what changed from one version to another, by path.
type Diff struct {
	Added, Changed, Removed []string
}

// FileService keeps a project's files (R9): uploads and downloads stream
// in bounded memory, content is sealed under the project's key, identical
// chunks are stored once. Rights as in ProjectService: view to read, edit
// to write. version 0 means the working tree.
type FileService interface {
	// PutFile stores a file, replacing any at its path, and reports
	// whether it is new. Recorded as file.put. Errors: not_found,
	// forbidden, invalid_input, precondition_failed, too_large.
	PutFile(ctx context.Context, org OrgID, actor Actor, project ProjectID, w FileWrite) (FileInfo, bool, error)
	// FindFile describes one file without reading it (HEAD). Errors:
	// not_found.
	FindFile(ctx context.Context, org OrgID, actor Actor, project ProjectID, version int, path string) (FileInfo, error)
	// OpenFile returns a file's content for a download, which is recorded
	// as file.read. The caller closes it. Errors: not_found.
	OpenFile(ctx context.Context, org OrgID, actor Actor, project ProjectID, version int, path string) (FileInfo, io.ReadSeekCloser, error)
	// DeleteFile removes a file from the working tree (versions keep it).
	// Recorded as file.delete. Errors: not_found, forbidden,
	// precondition_failed.
	DeleteFile(ctx context.Context, org OrgID, actor Actor, project ProjectID, path, ifMatch string) error
	// FindTree lists the files under prefix ("" for all, else ending in
	// "/"), ordered by path. Errors: not_found, invalid_input.
	FindTree(ctx context.Context, org OrgID, actor Actor, project ProjectID, version int, prefix string) ([]FileInfo, error)
}

// VersionService saves and restores a project's versions (R10, R11).
// History is never rewritten: going back is a new version.
type VersionService interface {
	// CreateVersion snapshots the working tree (editor). Recorded as
	// version.create. Errors: not_found, forbidden, invalid_input.
	CreateVersion(ctx context.Context, org OrgID, actor Actor, project ProjectID, message string) (Version, error)
	// FindVersions lists the versions, newest first (viewer).
	FindVersions(ctx context.Context, org OrgID, actor Actor, project ProjectID) ([]Version, error)
	// DiffVersions compares version n with version against (0: the one
	// before n). Errors: not_found.
	DiffVersions(ctx context.Context, org OrgID, actor Actor, project ProjectID, n, against int) (Diff, error)
	// RestoreVersion makes a new version whose tree is version n's, and
	// makes it the working tree (editor). Recorded as version.restore.
	// Errors: not_found, forbidden.
	RestoreVersion(ctx context.Context, org OrgID, actor Actor, project ProjectID, n int) (Version, error)
	// WriteVersionZip writes version n as a ZIP archive to w, streaming
	// (viewer). Recorded as file.read. Errors: not_found.
	WriteVersionZip(ctx context.Context, org OrgID, actor Actor, project ProjectID, n int, w io.Writer) error
}
