package content

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

// Dir is [Blobs] in a folder of the local file system (DATA/content in
// embedded mode), one file per blob:
//
//	<root>/<project>/<first two hex digits of the address>/<address in hex>
//
// A blob is written to a temporary file in its final folder, synced, renamed
// into place and the folder synced, so a blob is either there whole and
// durable or not there at all, even across a power cut. Folders are 0700
// and files 0600. Several processes may share a Dir. A crash can leave
// temporary files (".*.tmp") behind; they are never read as blobs.
type Dir struct {
	root string
}

// trashPrefix names a project folder being deleted: DeleteProject renames
// it out of the way first, so a project is gone at once and as a whole.
const trashPrefix = ".trash-"

// OpenDir opens the blob folder root, creating it (mode 0700) if need be,
// and finishes deleting any project whose deletion a crash interrupted.
func OpenDir(root string) (*Dir, error) {
	if root == "" {
		return nil, errors.New("content: empty blob folder path")
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("content: creating the blob folder: %w", err)
	}
	d := &Dir{root: root}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("content: reading the blob folder: %w", err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), trashPrefix) {
			if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
				return nil, fmt.Errorf("content: finishing a project deletion: %w", err)
			}
		}
	}
	return d, nil
}

// path returns the folder and file name of a blob.
func (d *Dir) path(project string, a Address) (folder, file string) {
	name := a.String()
	folder = filepath.Join(d.root, project, name[:2])
	return folder, filepath.Join(folder, name)
}

// Put implements [Blobs].
func (d *Dir) Put(ctx context.Context, project string, a Address, sealed []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := CheckProject(project); err != nil {
		return err
	}
	if len(sealed) > MaxBlobSize {
		return fmt.Errorf("content: a blob of %d bytes, more than %d", len(sealed), MaxBlobSize)
	}
	folder, file := d.path(project, a)
	if _, err := os.Lstat(file); err == nil {
		// Already there; its folder entry may not be durable yet if the Put
		// that wrote it did not return.
		return syncDir(folder)
	}
	pattern := "." + a.String() + ".*.tmp"
	f, err := os.CreateTemp(folder, pattern)
	if errors.Is(err, fs.ErrNotExist) {
		// The first blob of its folder (making folders first every time
		// costs more than the blob's own write).
		if err := d.mkdirs(project, folder); err != nil {
			return err
		}
		f, err = os.CreateTemp(folder, pattern)
	}
	if err != nil {
		return fmt.Errorf("content: writing blob: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(sealed)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("content: writing blob: %w", err)
	}
	return syncDir(folder)
}

// mkdirs makes the project folder and the blob's folder in it, syncing the
// parent of each folder it makes so that the new entry is durable.
func (d *Dir) mkdirs(project, folder string) error {
	projectDir := filepath.Join(d.root, project)
	for _, dir := range []string{projectDir, folder} {
		err := os.Mkdir(dir, 0o700)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("content: making a blob folder: %w", err)
		}
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return err
		}
	}
	return nil
}

// Get implements [Blobs].
func (d *Dir) Get(ctx context.Context, project string, a Address) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := CheckProject(project); err != nil {
		return nil, err
	}
	_, file := d.path(project, a)
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s in project %s", ErrNotFound, a, project)
	}
	if err != nil {
		return nil, fmt.Errorf("content: reading blob: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("content: reading blob: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Size() > MaxBlobSize {
		return nil, fmt.Errorf("content: blob %s in project %s is not a sealed chunk (%d bytes, %v)", a, project, fi.Size(), fi.Mode().Type())
	}
	// One byte more than the size, to notice a file that grew meanwhile.
	b := make([]byte, fi.Size()+1)
	n, err := io.ReadFull(f, b)
	if err != io.ErrUnexpectedEOF && err != io.EOF {
		if err == nil {
			err = errors.New("the file grew while read")
		}
		return nil, fmt.Errorf("content: reading blob %s: %w", a, err)
	}
	return b[:n], nil
}

// Has implements [Blobs].
func (d *Dir) Has(ctx context.Context, project string, a Address) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := CheckProject(project); err != nil {
		return false, err
	}
	_, file := d.path(project, a)
	fi, err := os.Lstat(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("content: looking for blob: %w", err)
	}
	return fi.Mode().IsRegular(), nil
}

// Delete implements [Blobs].
func (d *Dir) Delete(ctx context.Context, project string, a Address) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := CheckProject(project); err != nil {
		return err
	}
	folder, file := d.path(project, a)
	err := os.Remove(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("content: deleting blob: %w", err)
	}
	return syncDir(folder)
}

// DeleteProject implements [Blobs]. The project's folder is renamed away
// first, so the project's blobs disappear at once; if removing them is
// interrupted, [OpenDir] finishes the job.
func (d *Dir) DeleteProject(ctx context.Context, project string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := CheckProject(project); err != nil {
		return err
	}
	var r [8]byte
	rand.Read(r[:])
	trash := filepath.Join(d.root, trashPrefix+project+"-"+hex.EncodeToString(r[:]))
	err := os.Rename(filepath.Join(d.root, project), trash)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("content: deleting project blobs: %w", err)
	}
	if err := syncDir(d.root); err != nil {
		return err
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("content: deleting project blobs: %w", err)
	}
	return nil
}

// syncDir makes the entries of a folder durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("content: syncing a blob folder: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("content: syncing a blob folder: %w", err)
	}
	return nil
}
