package backup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Dir is a [Target] in a folder of the local file system (file:///PATH):
// typically a mounted disk or network share of another machine. Objects are
// files under the folder; a file is written under a temporary name, synced
// and renamed into place, so it is whole or absent.
type Dir struct {
	root     string
	location string
}

// OpenDir opens the folder root as a target, creating it (mode 0700).
func OpenDir(root, location string) (*Dir, error) {
	if root == "" || !filepath.IsAbs(root) {
		return nil, errors.New("backup: a file:// target needs an absolute path")
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("backup: creating the target folder: %w", err)
	}
	return &Dir{root: filepath.Clean(root), location: location}, nil
}

// Name implements [Target].
func (d *Dir) Name() string { return "file://" + d.root }

// Location implements [Target].
func (d *Dir) Location() string { return d.location }

func (d *Dir) path(name string) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	return filepath.Join(d.root, filepath.FromSlash(name)), nil
}

// Put implements [Target].
func (d *Dir) Put(ctx context.Context, name string, r io.Reader) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	folder := filepath.Dir(p)
	if err := os.MkdirAll(folder, 0o700); err != nil {
		return err
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(folder, "."+filepath.Base(p)+"."+hex.EncodeToString(rnd[:])+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, ctxReader{ctx, r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if dir, err := os.Open(folder); err == nil {
		err = dir.Sync()
		dir.Close()
		return err
	}
	return nil
}

// Open implements [Target].
func (d *Dir) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err == nil {
		// A folder opens too, but it is no object.
		if info, serr := f.Stat(); serr != nil || !info.Mode().IsRegular() {
			f.Close()
			err = serr
			if err == nil {
				err = fs.ErrNotExist
			}
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotExist, name)
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// List implements [Target].
func (d *Dir) List(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	start := d.root
	// Walk from the deepest folder the prefix names completely.
	if i := strings.LastIndex(prefix, "/"); i > 0 {
		if err := CheckName(prefix[:i]); err != nil {
			return nil, err
		}
		start = filepath.Join(d.root, filepath.FromSlash(prefix[:i]))
	}
	err := filepath.WalkDir(start, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if !strings.HasPrefix(name, prefix) || CheckName(name) != nil {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		out = append(out, Object{Name: name, Size: info.Size()})
		return nil
	})
	return out, err
}

// Delete implements [Target].
func (d *Dir) Delete(ctx context.Context, name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Close implements [Target].
func (d *Dir) Close() error { return nil }

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Root is the folder the target writes to.
func (d *Dir) Root() string { return d.root }
