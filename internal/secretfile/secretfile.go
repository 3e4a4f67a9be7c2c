// Package secretfile reads and creates the small files that hold kluis's
// secret keys (the root key, the audit signing key).
//
// Threat model: other local users of the machine, and a crash at any moment.
// A secret file is created with mode 0600 in a 0700 directory, written to a
// temporary file opened with O_EXCL, synced, and hard-linked into place, so
// it never replaces an existing file, a reader never sees half a key, and
// several processes creating the same file at once end with one key (the
// first link wins). A file that its group or others may access is refused
// rather than silently fixed: the key may already have been read.
package secretfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
)

// MaxSize is the largest secret file Read accepts.
const MaxSize = 4096

// ErrInsecure is returned (wrapped, with the path and mode) by Read for a
// file that its group or others may access.
var ErrInsecure = errors.New("secret file is accessible by group or others")

// Read returns the contents of the secret file at path. A missing file gets
// an error wrapping fs.ErrNotExist; a file that is not a regular file, or is
// larger than MaxSize, is an error; an accessible one wraps ErrInsecure.
func Read(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	// Windows has no such mode bits; its ACLs are the operator's business.
	if mode := fi.Mode().Perm(); mode&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%w: %s has mode %04o", ErrInsecure, path, mode)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxSize)
	}
	return data, nil
}

// Create writes data to a new secret file at path (mode 0600; its directory
// is made with mode 0700 if missing). It never replaces a file: if path
// exists it returns an error wrapping fs.ErrExist and changes nothing. The
// file system must support hard links.
func Create(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// os.CreateTemp opens with O_EXCL and mode 0600.
	tmp, err := os.CreateTemp(dir, ".secret-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// Link, unlike Rename, fails when path exists: the first creator wins.
	if err := os.Link(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a new directory entry in dir durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
