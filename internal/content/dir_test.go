package content_test

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/content"
)

// encodings returns the forms in which a secret could appear in a file:
// as is, in hexadecimal, and in base64 at each of the three alignments (the
// last characters, which depend on what follows, left out).
func encodings(secret []byte) map[string][]byte {
	forms := map[string][]byte{
		"text":  secret,
		"hex":   []byte(hex.EncodeToString(secret)),
		"HEX":   []byte(strings.ToUpper(hex.EncodeToString(secret))),
		"UTF16": []byte(strings.Join(strings.Split(string(secret), ""), "\x00")),
	}
	for skip := range 3 {
		for name, enc := range map[string]*base64.Encoding{"base64": base64.StdEncoding, "base64url": base64.URLEncoding} {
			s := enc.EncodeToString(secret[skip:])
			forms[name+string(rune('0'+skip))] = []byte(s[:len(s)-4])
		}
	}
	return forms
}

func TestDirKeepsBlobs(t *testing.T) {
	root := filepath.Join(t.TempDir(), "content")
	d, err := content.OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	p, q := kluis.NewID(time.Now()), kluis.NewID(time.Now())
	a, b := address(1), address(2)

	if ok, err := d.Has(ctx, p, a); err != nil || ok {
		t.Fatalf("has before put: %v, %v", ok, err)
	}
	if _, err := d.Get(ctx, p, a); !errors.Is(err, content.ErrNotFound) {
		t.Fatalf("get before put: got %v, want ErrNotFound", err)
	}
	if err := d.Put(ctx, p, a, []byte("sealed a")); err != nil {
		t.Fatal(err)
	}
	// Putting again is idempotent.
	if err := d.Put(ctx, p, a, []byte("sealed a again")); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, p, b, nil); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, q, a, []byte("sealed in q")); err != nil {
		t.Fatal(err)
	}
	if got, err := d.Get(ctx, p, a); err != nil || (string(got) != "sealed a" && string(got) != "sealed a again") {
		t.Fatalf("get: %q, %v", got, err)
	}
	if got, err := d.Get(ctx, p, b); err != nil || len(got) != 0 {
		t.Fatalf("get an empty blob: %q, %v", got, err)
	}
	if ok, err := d.Has(ctx, p, a); err != nil || !ok {
		t.Fatalf("has after put: %v, %v", ok, err)
	}
	if _, err := os.Stat(filepath.Join(root, p, a.String()[:2], a.String())); err != nil {
		t.Fatalf("the blob is not where the layout says: %v", err)
	}
	// No temporary file stays behind.
	filepath.WalkDir(root, func(path string, de os.DirEntry, err error) error {
		if strings.HasSuffix(path, ".tmp") {
			t.Errorf("temporary file %s left behind", path)
		}
		return nil
	})

	if err := d.Delete(ctx, p, a); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, p, a); err != nil {
		t.Fatalf("deleting a missing blob: %v", err)
	}
	if ok, _ := d.Has(ctx, p, a); ok {
		t.Fatal("a deleted blob is still there")
	}
	if got, err := d.Get(ctx, q, a); err != nil || string(got) != "sealed in q" {
		t.Fatalf("another project's blob: %q, %v", got, err)
	}

	if err := d.DeleteProject(ctx, p); err != nil {
		t.Fatal(err)
	}
	if ok, _ := d.Has(ctx, p, b); ok {
		t.Fatal("a blob of a deleted project is still there")
	}
	if err := d.DeleteProject(ctx, p); err != nil {
		t.Fatalf("deleting a project without blobs: %v", err)
	}
	if ok, _ := d.Has(ctx, q, a); !ok {
		t.Fatal("deleting a project deleted another's blob")
	}

	// Oversized blobs are refused both ways.
	if err := d.Put(ctx, p, a, make([]byte, content.MaxBlobSize+1)); err == nil {
		t.Error("put a blob over MaxBlobSize")
	}
	if err := os.MkdirAll(filepath.Join(root, q, b.String()[:2]), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, q, b.String()[:2], b.String()), make([]byte, content.MaxBlobSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get(ctx, q, b); err == nil {
		t.Error("got a blob over MaxBlobSize")
	}

	// A deletion interrupted by a crash is finished by the next OpenDir.
	trash := filepath.Join(root, ".trash-"+q+"-0011223344556677")
	if err := os.Rename(filepath.Join(root, q), trash); err != nil {
		t.Fatal(err)
	}
	if _, err := content.OpenDir(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(trash); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the interrupted deletion was not finished: %v", err)
	}
}

// Project ids name folders, so only UUIDs are accepted: nothing can reach
// outside the blob folder.
func TestDirRefusesProjectIDsThatAreNotUUIDs(t *testing.T) {
	root := filepath.Join(t.TempDir(), "content")
	d, err := content.OpenDir(root)
	if err != nil {
		t.Fatal(err)
	}
	id := kluis.NewID(time.Now())
	for _, p := range []string{
		"",
		"..",
		"../../../../../../../../../../../../etc",
		"../" + id[3:],
		id[:35] + "/",
		strings.ToUpper(id),
		id + "0",
		id[:35],
		strings.ReplaceAll(id, "-", "0"),
		id[:8] + "/" + id[9:],
		id[:20] + "\x00" + id[21:],
		".trash-" + id[7:],
	} {
		a := address(3)
		errs := map[string]error{
			"Put":           d.Put(ctx, p, a, []byte("x")),
			"Delete":        d.Delete(ctx, p, a),
			"DeleteProject": d.DeleteProject(ctx, p),
		}
		_, errs["Get"] = d.Get(ctx, p, a)
		_, errs["Has"] = d.Has(ctx, p, a)
		for name, err := range errs {
			if !errors.Is(err, content.ErrBadProject) {
				t.Errorf("%s with project %q: got %v, want ErrBadProject", name, p, err)
			}
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("refused calls left %d entries in the folder", len(entries))
	}
	if err := content.CheckProject(id); err != nil {
		t.Errorf("a UUID made by kluis.NewID was refused: %v", err)
	}
}
