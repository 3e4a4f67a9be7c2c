package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// Target is one place backups go: a local folder, an SFTP server or an
// S3-compatible bucket. A target only ever sees objects that are already
// encrypted with age; it is not trusted with anything else.
//
// Object names are slash-separated paths of lower-case letters, digits and
// ".-_" (see [CheckName]); a target maps them onto its own namespace under
// its base path or prefix. Implementations are safe for concurrent use.
//
// A name is an object or a folder of objects, never both: where objects
// are files (file://, sftp://) a Put of a name that is a folder, or of a
// name below an object, fails, while S3 would store both; callers choose
// names that never collide. The same cases run over every kind of target
// (TestTargetsBehaveAlike).
type Target interface {
	// Name identifies the target in records, logs and pages: its URL
	// without credentials or query (never a secret).
	Name() string
	// Location is the declared place where the target keeps its data (a
	// country or region such as "NL" or "EU"; R42), "" when not declared.
	Location() string
	// Put stores the object name with the bytes of r. The object appears
	// whole or not at all: a failed or interrupted Put leaves no object of
	// that name (an earlier object of that name stays or is replaced
	// whole).
	Put(ctx context.Context, name string, r io.Reader) error
	// Open reads the object name; a missing object is an error wrapping
	// [ErrNotExist].
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// List returns every object whose name starts with prefix (a prefix
	// ending in "/" lists a folder, recursively), in no particular order.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Delete removes the object name; a missing object is not an error.
	Delete(ctx context.Context, name string) error
	// Close releases connections.
	Close() error
}

// Object is an object a target holds.
type Object struct {
	Name string
	Size int64
}

// ErrNotExist means a target holds no object of the name asked for.
var ErrNotExist = errors.New("backup: no such object")

// CheckName refuses object names that could leave a target's base path or
// that a target could store differently: only lower-case letters, digits,
// ".", "-", "_" and "/" between non-empty parts, no part "." or "..".
func CheckName(name string) error {
	if name == "" || len(name) > 512 {
		return fmt.Errorf("backup: invalid object name %q", truncate(name))
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("backup: invalid object name %q", truncate(name))
		}
		for i := 0; i < len(part); i++ {
			c := part[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
				return fmt.Errorf("backup: invalid object name %q", truncate(name))
			}
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

// TargetConfig is what opening targets needs besides their URLs: the
// settings that hold secrets or pins come from the environment, never from
// the URL (which is logged and shown).
type TargetConfig struct {
	// SFTPHostKey is the pinned host key of SFTP targets, in the
	// authorized_keys format ("ssh-ed25519 AAAA…"); required for sftp://.
	SFTPHostKey string
	// SFTPKeyFile is the private key file SFTP targets log in with.
	SFTPKeyFile string
	// S3AccessKey and S3SecretKey are the credentials of s3:// targets.
	S3AccessKey string
	S3SecretKey string
}

// OpenTargets opens the comma-separated target URLs of KLUIS_BACKUP_TARGETS:
//
//	file:///PATH[?location=NL]
//	sftp://USER@HOST:PORT/PATH[?location=NL]
//	s3://BUCKET/PREFIX?endpoint=URL&region=…[&location=NL]
//
// The optional location query declares where the target keeps its data
// (R42); it is shown to customers. Opening does not connect: a target that
// is down fails its first operation, not the start of kluis.
func OpenTargets(list string, cfg TargetConfig) ([]Target, error) {
	var out []Target
	seen := map[string]bool{}
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		t, err := OpenTarget(raw, cfg)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, err
		}
		if seen[t.Name()] {
			t.Close()
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("backup: target %s is named twice", t.Name())
		}
		seen[t.Name()] = true
		out = append(out, t)
	}
	return out, nil
}

// OpenTarget opens one target URL (see [OpenTargets]).
func OpenTarget(raw string, cfg TargetConfig) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("backup: a target is not a URL")
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return nil, errors.New("backup: a target URL holds a password; use the KLUIS_BACKUP_* settings for secrets")
		}
	}
	q := u.Query()
	location := q.Get("location")
	if !validLocation(location) {
		return nil, fmt.Errorf("backup: location %q is not a country or region code (letters, digits and '-', at most 16)", truncate(location))
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, errors.New("backup: a file:// target names a local path: file:///PATH")
		}
		return OpenDir(u.Path, location)
	case "sftp":
		return openSFTP(u, location, cfg)
	case "s3":
		return openS3(u, location, cfg)
	}
	return nil, fmt.Errorf("backup: unsupported target scheme %q: use file://, sftp:// or s3://", truncate(u.Scheme))
}

func validLocation(s string) bool {
	if len(s) > 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
