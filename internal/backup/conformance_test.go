package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// targetKinds are the three kinds of [Target], each with a function that
// starts its server (or skips the test without one) and returns a maker of
// new, empty targets on it.
var targetKinds = []struct {
	name  string
	setup func(t *testing.T) func(t *testing.T) Target
}{
	{"file", func(t *testing.T) func(t *testing.T) Target {
		return func(t *testing.T) Target {
			return mustOpenTarget(t, "file://"+t.TempDir()+"/backups?location=NL", TargetConfig{})
		}
	}},
	{"sftp", func(t *testing.T) func(t *testing.T) Target {
		s := startSSHD(t)
		n := 0
		return func(t *testing.T) Target {
			n++
			return mustOpenTarget(t, sftpTarget(s, fmt.Sprintf("t%d/backups", n)), sftpConfig(s))
		}
	}},
	{"s3", func(t *testing.T) func(t *testing.T) Target {
		w := startS3(t)
		n := 0
		return func(t *testing.T) Target {
			n++
			return mustOpenTarget(t, s3Target(w, "conformance", fmt.Sprintf("t%d/backups", n)), s3Config(w))
		}
	}},
}

func mustOpenTarget(t *testing.T, url string, cfg TargetConfig) Target {
	t.Helper()
	tg, err := OpenTarget(url, cfg)
	if err != nil {
		t.Fatalf("OpenTarget(%s): %v", url, err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

// TestTargetsBehaveAlike runs the same cases over a local folder, an SFTP
// server (OpenSSH) and an S3-compatible store (versitygw): what backups rely
// on (R30: sent to another location whole or not at all; R42: the declared
// location) holds on every kind of target.
func TestTargetsBehaveAlike(t *testing.T) {
	for _, kind := range targetKinds {
		t.Run(kind.name, func(t *testing.T) {
			newTarget := kind.setup(t)
			for _, c := range conformanceCases {
				t.Run(c.name, func(t *testing.T) {
					c.run(t, newTarget(t))
				})
			}
		})
	}
}

var conformanceCases = []struct {
	name string
	run  func(t *testing.T, tg Target)
}{
	{"put then open returns the bytes, list their size", func(t *testing.T, tg Target) {
		put(t, tg, "b1/manifest.age", "sealed manifest")
		if got := read(t, tg, "b1/manifest.age"); got != "sealed manifest" {
			t.Errorf("read %q, want %q", got, "sealed manifest")
		}
		assertList(t, tg, "", "b1/manifest.age:15")
		if tg.Location() != "NL" {
			t.Errorf("location %q, want NL (R42)", tg.Location())
		}
	}},
	{"an empty object is an object", func(t *testing.T, tg Target) {
		put(t, tg, "empty", "")
		if got := read(t, tg, "empty"); got != "" {
			t.Errorf("read %q, want nothing", got)
		}
		assertList(t, tg, "", "empty:0")
	}},
	{"put replaces an object whole", func(t *testing.T, tg Target) {
		put(t, tg, "b1/data", strings.Repeat("old ", 1000))
		put(t, tg, "b1/data", "new")
		if got := read(t, tg, "b1/data"); got != "new" {
			t.Errorf("read %q, want %q", truncate(got), "new")
		}
		assertList(t, tg, "", "b1/data:3")
	}},
	{"a put whose reader fails leaves no object", func(t *testing.T, tg Target) {
		err := tg.Put(context.Background(), "b1/data", failingReader(200<<10))
		if !errors.Is(err, errReader) {
			t.Fatalf("put got %v, want the reader's error", err)
		}
		assertNotExist(t, tg, "b1/data")
		assertList(t, tg, "")
	}},
	{"a put whose reader fails keeps the earlier object", func(t *testing.T, tg Target) {
		put(t, tg, "b1/data", "earlier")
		if err := tg.Put(context.Background(), "b1/data", failingReader(200<<10)); err == nil {
			t.Fatal("put with a failing reader succeeded")
		}
		if got := read(t, tg, "b1/data"); got != "earlier" {
			t.Errorf("read %q, want the earlier object", truncate(got))
		}
		assertList(t, tg, "", "b1/data:7")
	}},
	{"a cancelled put leaves no object", func(t *testing.T, tg Target) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		r := io.MultiReader(io.LimitReader(pattern(1), 100<<10), cancelReader{cancel}, pattern(2))
		if err := tg.Put(ctx, "b1/data", r); err == nil {
			t.Fatal("a cancelled put succeeded")
		}
		assertNotExist(t, tg, "b1/data")
		assertList(t, tg, "")
	}},
	{"list is recursive under a prefix", func(t *testing.T, tg Target) {
		for _, n := range []string{"a/b/c", "a/d", "ab", "b/x", "a/b/c2/e"} {
			put(t, tg, n, n)
		}
		for _, c := range []struct {
			prefix string
			want   []string
		}{
			{"", []string{"a/b/c:5", "a/b/c2/e:8", "a/d:3", "ab:2", "b/x:3"}},
			{"a/", []string{"a/b/c:5", "a/b/c2/e:8", "a/d:3"}},
			{"a", []string{"a/b/c:5", "a/b/c2/e:8", "a/d:3", "ab:2"}},
			{"a/b/", []string{"a/b/c:5", "a/b/c2/e:8"}},
			{"a/b/c", []string{"a/b/c:5", "a/b/c2/e:8"}},
			{"a/b/c/", nil},
			{"a/b/c2/e", []string{"a/b/c2/e:8"}},
			{"c/", nil},
			{"zz", nil},
		} {
			assertList(t, tg, c.prefix, c.want...)
		}
	}},
	{"open of a missing object is ErrNotExist", func(t *testing.T, tg Target) {
		assertNotExist(t, tg, "missing")
		assertNotExist(t, tg, "no/such/folder")
		put(t, tg, "a/b", "x")
		assertNotExist(t, tg, "a/c")
		assertNotExist(t, tg, "a")
	}},
	{"delete removes; a missing object is no error", func(t *testing.T, tg Target) {
		put(t, tg, "b1/x", "x")
		put(t, tg, "b1/y", "y")
		for range 2 {
			if err := tg.Delete(context.Background(), "b1/x"); err != nil {
				t.Fatalf("delete: %v", err)
			}
		}
		if err := tg.Delete(context.Background(), "no/such/object"); err != nil {
			t.Fatalf("delete of a missing object: %v", err)
		}
		assertNotExist(t, tg, "b1/x")
		assertList(t, tg, "", "b1/y:1")
	}},
	{"names that could leave the target are refused", func(t *testing.T, tg Target) {
		for _, name := range []string{"", "../escape", "a/../../escape", "/abs", "a//b", "Upper", "a/./b", "sp ace", "a/"} {
			if err := tg.Put(context.Background(), name, strings.NewReader("x")); err == nil {
				t.Errorf("put %q succeeded", name)
			}
			if _, err := tg.Open(context.Background(), name); err == nil || errors.Is(err, ErrNotExist) {
				t.Errorf("open %q: got %v, want an invalid name", name, err)
			}
			if err := tg.Delete(context.Background(), name); err == nil {
				t.Errorf("delete %q succeeded", name)
			}
		}
		assertList(t, tg, "")
	}},
	{"a big object streams through", func(t *testing.T, tg Target) {
		const size = 20 << 20 // more than one part of an S3 upload
		if err := tg.Put(context.Background(), "big/object", io.LimitReader(pattern(7), size)); err != nil {
			t.Fatalf("put: %v", err)
		}
		want := sha256.New()
		io.Copy(want, io.LimitReader(pattern(7), size))
		r, err := tg.Open(context.Background(), "big/object")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		got := sha256.New()
		n, err := io.Copy(got, r)
		if err != nil || n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
			t.Fatalf("read %d bytes (%v), want %d with the same digest", n, err, size)
		}
		assertList(t, tg, "big/", fmt.Sprintf("big/object:%d", size))
	}},
	{"concurrent puts and opens", func(t *testing.T, tg Target) {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 8 {
			wg.Go(func() {
				name := fmt.Sprintf("c/%d", i)
				body := strings.Repeat(name, 10000)
				if err := tg.Put(context.Background(), name, strings.NewReader(body)); err != nil {
					errs <- err
					return
				}
				r, err := tg.Open(context.Background(), name)
				if err != nil {
					errs <- err
					return
				}
				defer r.Close()
				b, err := io.ReadAll(r)
				if err != nil || string(b) != body {
					errs <- fmt.Errorf("%s: read %d bytes (%v), want %d", name, len(b), err, len(body))
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if objs, err := tg.List(context.Background(), "c/"); err != nil || len(objs) != 8 {
			t.Errorf("list got %d objects (%v), want 8", len(objs), err)
		}
	}},
}

func put(t *testing.T, tg Target, name, body string) {
	t.Helper()
	if err := tg.Put(context.Background(), name, strings.NewReader(body)); err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
}

func read(t *testing.T, tg Target, name string) string {
	t.Helper()
	r, err := tg.Open(context.Background(), name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

func assertNotExist(t *testing.T, tg Target, name string) {
	t.Helper()
	r, err := tg.Open(context.Background(), name)
	if err == nil {
		r.Close()
		t.Fatalf("open %s succeeded, want ErrNotExist", name)
	}
	if !errors.Is(err, ErrNotExist) {
		t.Fatalf("open %s: got %v, want ErrNotExist", name, err)
	}
}

// assertList checks that List(prefix) holds exactly want, as "name:size".
func assertList(t *testing.T, tg Target, prefix string, want ...string) {
	t.Helper()
	objs, err := tg.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, fmt.Sprintf("%s:%d", o.Name, o.Size))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("list %q got %q, want %q", prefix, got, want)
	}
}

// pattern is an endless stream of bytes that seed determines.
func pattern(seed byte) io.Reader {
	return rand.NewChaCha8([32]byte{seed})
}

var errReader = errors.New("the reader broke")

// failingReader yields n bytes, then fails.
func failingReader(n int64) io.Reader {
	return io.MultiReader(io.LimitReader(pattern(3), n), errorReader{})
}

type errorReader struct{}

func (errorReader) Read([]byte) (int, error) { return 0, errReader }

// cancelReader cancels a context when read, and yields nothing.
type cancelReader struct{ cancel context.CancelFunc }

func (c cancelReader) Read([]byte) (int, error) {
	c.cancel()
	return 0, io.EOF
}
