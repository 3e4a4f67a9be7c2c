package secretfile_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kluis/kluis/internal/secretfile"
)

func TestCreateThenRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "k")
	if err := secretfile.Create(path, []byte("secret")); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s: got mode %v (%v), want %04o", p, fi.Mode().Perm(), err, want)
		}
	}
	got, err := secretfile.Read(path)
	if err != nil || string(got) != "secret" {
		t.Fatalf("Read: got %q, %v", got, err)
	}
	if err := secretfile.Create(path, []byte("other")); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create over an existing file: got %v, want fs.ErrExist", err)
	}
	if got, _ := secretfile.Read(path); string(got) != "secret" {
		t.Fatal("an existing secret file was replaced")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestReadRefuses(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte("x"), 0o644)
	if _, err := secretfile.Read(open); !errors.Is(err, secretfile.ErrInsecure) {
		t.Errorf("group-readable file: got %v, want ErrInsecure", err)
	}
	big := filepath.Join(dir, "big")
	os.WriteFile(big, bytes.Repeat([]byte("x"), secretfile.MaxSize+1), 0o600)
	if _, err := secretfile.Read(big); err == nil {
		t.Error("oversized file: got no error")
	}
	if _, err := secretfile.Read(dir); err == nil {
		t.Error("directory: got no error")
	}
	if _, err := secretfile.Read(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want fs.ErrNotExist", err)
	}
}

// Concurrent creators end with one file holding one of their contents whole.
func TestConcurrentCreateFirstWins(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			secretfile.Create(path, []byte(fmt.Sprintf("candidate-%02d", i)))
		}()
	}
	wg.Wait()
	got, err := secretfile.Read(path)
	if err != nil || len(got) != len("candidate-00") {
		t.Fatalf("got %q, %v", got, err)
	}
}
