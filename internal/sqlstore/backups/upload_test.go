package backups_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/backup"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore/backups"
)

// watchedTarget is a real folder target that counts the chunk uploads in
// flight and their bytes, and fails the chunk puts that fail says to.
type watchedTarget struct {
	*backup.Dir
	mu                sync.Mutex
	puts              int // chunk puts begun
	inFlight, maxIn   int
	largeIn, maxLarge int // of those, larger than the engine's small chunks
	bytesIn, maxBytes int64
	stored            map[string]int // chunks stored, by project and address
	fail              func(n int) bool
	failed            string // the project and address of a chunk whose put failed
}

// chunkKey is a chunk object's project and address: the name's hash part
// differs every time a chunk is encrypted.
func chunkKey(name string) string {
	p, a, _ := backup.ParseChunkName(name)
	return p + "/" + a
}

func (w *watchedTarget) Put(ctx context.Context, name string, r io.Reader) error {
	if !strings.HasPrefix(name, "chunks/") {
		return w.Dir.Put(ctx, name, r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.puts++
	n := w.puts
	w.inFlight++
	w.bytesIn += int64(len(b))
	large := len(b) > backups.SmallChunk+8<<10
	if large {
		w.largeIn++
	}
	w.maxIn, w.maxBytes, w.maxLarge = max(w.maxIn, w.inFlight), max(w.maxBytes, w.bytesIn), max(w.maxLarge, w.largeIn)
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.inFlight--
		w.bytesIn -= int64(len(b))
		if large {
			w.largeIn--
		}
		w.mu.Unlock()
	}()
	if w.fail != nil && w.fail(n) {
		w.mu.Lock()
		w.failed = chunkKey(name)
		w.mu.Unlock()
		return fmt.Errorf("the target refused chunk put %d", n)
	}
	if err := w.Dir.Put(ctx, name, strings.NewReader(string(b))); err != nil {
		return err
	}
	w.mu.Lock()
	w.stored[chunkKey(name)]++
	w.mu.Unlock()
	return nil
}

// manyFiles adds n files of a few KiB each, and one of 9 MiB (chunks
// larger than the engine's small ones), to project p.
func manyFiles(t *testing.T, env *kluistest.Env, org kluis.OrgID, boss kluis.Actor, p kluis.ProjectID, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		body := strings.Repeat(fmt.Sprintf("note %d of many ", i), 200)
		if _, _, err := env.Projects.PutFile(ctx, org, boss, p, kluis.FileWrite{Path: fmt.Sprintf("notes/%03d.txt", i), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	var big strings.Builder
	for i := 0; big.Len() < 9<<20; i++ {
		fmt.Fprintf(&big, "line %d of a large file\n", i*7919%1000003)
	}
	if _, _, err := env.Projects.PutFile(ctx, org, boss, p, kluis.FileWrite{Path: "large.txt", Body: strings.NewReader(big.String())}); err != nil {
		t.Fatal(err)
	}
}

// TestChunkUploadsRunInParallelWithinBounds: a run uploads a target's
// missing chunks several at a time, never more than the engine's bound of
// uploads or of bytes in flight, and a chunk put that fails makes the run
// try the target again without uploading again what the failed attempt
// stored; the backup then verifies and restores whole (R30 R32).
func TestChunkUploadsRunInParallelWithinBounds(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		dir, err := backup.OpenDir(t.TempDir(), "NL")
		if err != nil {
			t.Fatal(err)
		}
		w := &watchedTarget{Dir: dir, stored: map[string]int{}, fail: func(n int) bool { return n == 25 }}
		r := newRig(t, env, w)
		o, boss, _, p := fill(t, env, "acme")
		manyFiles(t, env, o.ID, boss, p, 60)
		b, err := r.engine.Run(ctx, kluis.CLIActor)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if b.Status != kluis.BackupOK || len(b.Copies) != 1 || b.Copies[0].Status != "ok" {
			t.Fatalf("backup %+v, want ok after a second attempt", b)
		}
		if w.failed == "" {
			t.Fatal("the 25th chunk put was never made")
		}
		for key, n := range w.stored {
			if n != 1 {
				t.Errorf("chunk %s stored %d times, want once: the second attempt must reuse what the first stored", key, n)
			}
		}
		if w.stored[w.failed] != 1 {
			t.Errorf("the chunk whose put failed was stored %d times, want once", w.stored[w.failed])
		}
		t.Logf("at most %d uploads (%d large) and %d KiB in flight at once", w.maxIn, w.maxLarge, w.maxBytes>>10)
		if w.maxIn > backups.UploadWorkers || w.maxLarge > backups.UploadLarge || w.maxBytes > backups.UploadMemory {
			t.Errorf("%d uploads (%d large) and %d bytes in flight at once, bounds %d (%d) and %d",
				w.maxIn, w.maxLarge, w.maxBytes, backups.UploadWorkers, backups.UploadLarge, backups.UploadMemory)
		}
		if w.maxLarge == 0 {
			t.Error("no large chunk was uploaded: the test does not exercise large chunks")
		}
		objs, err := dir.List(ctx, "chunks/")
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) != len(w.stored) || len(objs) < 60 {
			t.Fatalf("the target holds %d chunks, %d were stored", len(objs), len(w.stored))
		}
		v, err := r.engine.Verify(ctx, kluis.CLIActor, b.ID)
		if err != nil || v.Damaged {
			t.Fatalf("verify: %+v, %v", v, err)
		}
		into := filepath.Join(t.TempDir(), "restored")
		if _, err := backups.RestoreInstance(ctx, w, []age.Identity{r.identity}, b.ID, backups.Into{DataDir: into}); err != nil {
			t.Fatal(err)
		}
		a := restored(t, into, "")
		for _, path := range []string{"notes/000.txt", "notes/059.txt", "large.txt"} {
			if got, want := readFile(t, a, o.ID, boss, p, path), readFile(t, env.Areas, o.ID, boss, p, path); got != want {
				t.Errorf("restored %s differs (%d bytes, want %d)", path, len(got), len(want))
			}
		}
	})
}

// TestFailingTargetStopsItsUploads: a target that refuses every chunk is
// recorded as failed after its attempts, and the run stops uploading to it
// at the first refusal of each attempt instead of trying every chunk.
func TestFailingTargetStopsItsUploads(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		dir, err := backup.OpenDir(t.TempDir(), "NL")
		if err != nil {
			t.Fatal(err)
		}
		w := &watchedTarget{Dir: dir, stored: map[string]int{}, fail: func(int) bool { return true }}
		r := newRig(t, env, w)
		o, boss, _, p := fill(t, env, "acme")
		manyFiles(t, env, o.ID, boss, p, 100)
		b, err := r.engine.Run(ctx, kluis.CLIActor)
		if err == nil || b.Status != kluis.BackupFailed || b.Copies[0].Status != "failed" {
			t.Fatalf("backup %+v, %v: want failed", b, err)
		}
		// Three attempts, each stopping once the uploads under way end.
		if limit := 3 * backups.UploadWorkers; w.puts > limit {
			t.Errorf("%d chunk puts on a target that refuses all, want at most %d", w.puts, limit)
		}
		if len(w.stored) != 0 {
			t.Errorf("%d chunks stored on a target that refuses all", len(w.stored))
		}
		objs, _ := dir.List(ctx, "backups/")
		if len(objs) != 0 {
			t.Errorf("the failed target holds %d backup objects", len(objs))
		}
	})
}
