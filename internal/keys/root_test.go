package keys_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kluis/kluis/internal/keys"
)

// R15: the root key is made once, at first start, in a file only kluis may
// read, and is the same key on every later start.
func TestLoadOrCreateRootMakesOneSecretFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "keys")
	path := filepath.Join(dir, "root")
	r, err := keys.LoadOrCreateRoot(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("root key file mode %04o, want 0600", mode)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if mode := di.Mode().Perm(); mode != 0o700 {
		t.Errorf("root key directory mode %04o, want 0700", mode)
	}
	data := readFile(t, path)
	for _, want := range []string{"-----BEGIN KLUIS ROOT KEY-----", "Version: 1", "export-root"} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("the root key file lacks %q", want)
		}
	}
	for _, load := range []func(string) (*keys.Root, error){keys.LoadOrCreateRoot, keys.LoadRoot} {
		again, err := load(path)
		if err != nil {
			t.Fatal(err)
		}
		if again.Fingerprint() != r.Fingerprint() {
			t.Error("loading the root key again gave another key")
		}
	}
	if !bytes.Equal(readFile(t, path), data) {
		t.Error("loading the root key changed its file")
	}
}

func TestLoadRootNeverCreates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "root")
	if _, err := keys.LoadRoot(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want fs.ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, fs.ErrNotExist) {
		t.Error("LoadRoot created something")
	}
}

// R15: a root key file that others may have read, or that is not a root key,
// is refused, never repaired or replaced.
func TestLoadRootRefusesBadFiles(t *testing.T) {
	good, err := keys.GenerateRoot()
	if err != nil {
		t.Fatal(err)
	}
	pemText := string(good.MarshalPEM())
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    error
	}{
		{"readable by the group", pemText, 0o640, keys.ErrInsecureKeyFile},
		{"readable by others", pemText, 0o604, keys.ErrInsecureKeyFile},
		{"empty", "", 0o600, nil},
		{"another PEM type", strings.ReplaceAll(pemText, "KLUIS ROOT KEY", "KLUIS AUDIT SIGNING KEY"), 0o600, nil},
		{"another version", strings.Replace(pemText, "Version: 1", "Version: 2", 1), 0o600, nil},
		{"no version", strings.Replace(pemText, "Version: 1\n", "", 1), 0o600, nil},
		{"trailing text", pemText + "more\n", 0o600, nil},
		{"two keys", pemText + pemText, 0o600, nil},
		{"short key", "-----BEGIN KLUIS ROOT KEY-----\nVersion: 1\n\nAAAA\n-----END KLUIS ROOT KEY-----\n", 0o600, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "root")
			if err := os.WriteFile(path, []byte(tt.content), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			for _, load := range []func(string) (*keys.Root, error){keys.LoadRoot, keys.LoadOrCreateRoot} {
				r, err := load(path)
				if err == nil {
					t.Fatalf("loaded a root key (%s)", r.Fingerprint())
				}
				if tt.want != nil && !errors.Is(err, tt.want) {
					t.Errorf("got %v, want %v", err, tt.want)
				}
				if strings.Contains(err.Error(), pemText) {
					t.Error("the error quotes the key file")
				}
			}
			if got := readFile(t, path); string(got) != tt.content {
				t.Error("the refused file was changed")
			}
		})
	}
}

// R15: processes starting together on a fresh data folder end with one root
// key between them.
func TestConcurrentLoadOrCreateRootEndsWithOneKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	path := filepath.Join(dir, "root")
	const n = 32
	fps := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := keys.LoadOrCreateRoot(path)
			errs[i] = err
			if err == nil {
				fps[i] = r.Fingerprint()
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("creator %d: %v", i, errs[i])
		}
		if fps[i] != fps[0] {
			t.Fatalf("creator %d got root key %s, creator 0 got %s", i, fps[i], fps[0])
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "root" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the key directory holds %v, want only root", names)
	}
}

// The fingerprint names a root key without revealing it.
func TestRootFingerprint(t *testing.T) {
	a, _ := keys.GenerateRoot()
	b, _ := keys.GenerateRoot()
	if a.Fingerprint() == b.Fingerprint() {
		t.Error("two root keys have one fingerprint")
	}
	parsed, err := keys.ParseRoot(a.MarshalPEM())
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Fingerprint() != a.Fingerprint() {
		t.Error("a root key read back has another fingerprint")
	}
	for _, secret := range keys.RootSecrets(a) {
		if strings.Contains(a.Fingerprint(), hex.EncodeToString(secret)) {
			t.Error("the fingerprint holds the key")
		}
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
