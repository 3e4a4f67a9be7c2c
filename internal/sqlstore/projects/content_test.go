package projects_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/content"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore"
)

// noise is a deterministic stream of n pseudo-random bytes.
func noise(seed uint64, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}), n)
}

func put(tb testing.TB, env *kluistest.Env, org kluis.OrgID, actor kluis.Actor, p kluis.ProjectID, path string, body io.Reader) kluis.FileInfo {
	tb.Helper()
	info, _, err := env.Projects.PutFile(context.Background(), org, actor, p, kluis.FileWrite{Path: path, Body: body})
	if err != nil {
		tb.Fatalf("PutFile %s: %v", path, err)
	}
	return info
}

func count(tb testing.TB, env *kluistest.Env, query string) int {
	tb.Helper()
	return len(env.Query(tb, query))
}

// blobs returns the project's sealed chunks as the content store holds
// them, by address: files of the content folder, or content_blobs rows.
func blobs(tb testing.TB, env *kluistest.Env, p kluis.ProjectID) map[content.Address][]byte {
	tb.Helper()
	out := map[content.Address][]byte{}
	if env.Engine == sqlstore.Postgres {
		for _, r := range env.Query(tb, `SELECT address, data FROM content_blobs WHERE project_id = '`+string(p)+`'`) {
			out[content.Address(r[0])] = r[1]
		}
		return out
	}
	filepath.WalkDir(filepath.Join(env.Dir, "content", string(p)), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		var a content.Address
		if _, err := hexDecode(a[:], d.Name()); err != nil {
			tb.Fatalf("blob file %s: %v", d.Name(), err)
		}
		b, _ := os.ReadFile(path)
		out[a] = b
		return nil
	})
	return out
}

// TestSameContentIsStoredOnce (DESIGN §8): the same 50 MiB under two paths
// and in a version adds its chunks once; what is read back is what was
// written.
func TestSameContentIsStoredOnce(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "dedup-"+env.Engine)
		p, err := env.Projects.CreateProject(ctx, o.ID, mgr, kluis.ProjectInput{Name: "Big"})
		if err != nil {
			t.Fatal(err)
		}
		const size = 50 << 20
		put(t, env, o.ID, mgr, p.ID, "a.bin", noise(1, size))
		chunks := count(t, env, `SELECT address FROM content_chunks WHERE project_id = '`+string(p.ID)+`'`)
		stored := len(blobs(t, env, p.ID))
		if chunks < size/content.MaxChunkSize || stored != chunks {
			t.Fatalf("one 50 MiB file: %d chunk rows, %d blobs", chunks, stored)
		}
		put(t, env, o.ID, mgr, p.ID, "copy/b.bin", noise(1, size))
		if _, err := env.Projects.CreateVersion(ctx, o.ID, mgr, p.ID, "both"); err != nil {
			t.Fatal(err)
		}
		if got := len(blobs(t, env, p.ID)); got != stored {
			t.Errorf("after a second copy and a version: %d blobs, want %d", got, stored)
		}
		if got := count(t, env, `SELECT address FROM content_chunks WHERE project_id = '`+string(p.ID)+`'`); got != chunks {
			t.Errorf("after a second copy: %d chunk rows, want %d", got, chunks)
		}
		_, rc, err := env.Projects.OpenFile(ctx, o.ID, mgr, p.ID, 1, "copy/b.bin")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		got, want := sha256.New(), sha256.New()
		io.Copy(got, rc)
		io.Copy(want, noise(1, size))
		if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
			t.Error("the bytes read back are not the bytes written")
		}
	})
}

// TestNothingReadableAtRest (R9, R12, R28): a marker inside an uploaded
// file, its path and the version's message appear nowhere the instance
// stores (data folder, content store, WAL, pg_dump) as text, hex or
// base64; and once the project has left the trash, the copy taken before
// cannot be opened: its keys are destroyed.
func TestNothingReadableAtRest(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "atrest-"+env.Engine)
		p, err := env.Projects.CreateProject(ctx, o.ID, mgr, kluis.ProjectInput{Name: "ProjectNameMarker7q"})
		if err != nil {
			t.Fatal(err)
		}
		const marker = "ContentMarker7qZ"
		var body bytes.Buffer
		for body.Len() < 3<<20 {
			body.WriteString(marker + " ")
			io.CopyN(&body, noise(uint64(body.Len()), 997), 997)
		}
		put(t, env, o.ID, mgr, p.ID, "PathMarker7q/notes.txt", bytes.NewReader(body.Bytes()))
		if _, err := env.Projects.CreateVersion(ctx, o.ID, mgr, p.ID, "MessageMarker7q"); err != nil {
			t.Fatal(err)
		}
		before := env.StoredBytes(t)
		if found := kluistest.FindMarkers(before, marker, "PathMarker7q", "MessageMarker7q", "ProjectNameMarker7q"); len(found) > 0 {
			t.Fatalf("readable at rest: %v", found)
		}
		copied := blobs(t, env, p.ID)
		if len(copied) == 0 {
			t.Fatal("no blobs to copy: the test would prove nothing")
		}
		// Sanity: with the keys, the copy opens.
		for a, sealed := range copied {
			if _, err := env.KeyStore.OpenChunk(ctx, string(o.ID), string(p.ID), a, sealed); err != nil {
				t.Fatalf("the copy does not open even with its key: %v", err)
			}
			break
		}

		if err := env.Projects.DeleteProject(ctx, o.ID, mgr, p.ID); err != nil {
			t.Fatal(err)
		}
		env.Clock.Advance((kluis.DefaultTrashDays + 1) * 24 * time.Hour)
		if n, err := env.Projects.PurgeProjects(ctx); err != nil || n != 1 {
			t.Fatalf("purge: %d, %v", n, err)
		}
		if left := blobs(t, env, p.ID); len(left) != 0 {
			t.Errorf("%d blobs left after the purge", len(left))
		}
		for a, sealed := range copied {
			if _, err := env.KeyStore.OpenChunk(ctx, string(o.ID), string(p.ID), a, sealed); !errors.Is(err, keys.ErrKeyDestroyed) {
				t.Fatalf("a chunk from the copy: %v, want its key destroyed", err)
			}
		}
		if _, err := env.KeyStore.ContentAddress(ctx, string(o.ID), string(p.ID), []byte(marker)); !errors.Is(err, keys.ErrKeyDestroyed) {
			t.Errorf("addressing content after the purge: %v, want the address key destroyed", err)
		}
	})
}

// TestChunkCollection: chunks that no file or version uses any more are
// collected once they are an hour old, never while an upload of their
// project runs; what is still used stays readable.
func TestChunkCollection(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "gc-"+env.Engine)
		p, _ := env.Projects.CreateProject(ctx, o.ID, mgr, kluis.ProjectInput{Name: "GC"})
		put(t, env, o.ID, mgr, p.ID, "a.bin", noise(7, 3<<20))
		first := len(blobs(t, env, p.ID))
		put(t, env, o.ID, mgr, p.ID, "a.bin", noise(8, 3<<20)) // the first content is unused now
		both := len(blobs(t, env, p.ID))
		if both <= first {
			t.Fatalf("%d blobs after replacing, want more than %d", both, first)
		}
		if n, err := env.Projects.CollectChunks(ctx); err != nil || n != 0 {
			t.Fatalf("collect at once: %d, %v; want nothing (an hour's grace)", n, err)
		}
		env.Clock.Advance(2 * time.Hour)
		// An upload of the project in progress keeps the collector away.
		env.MustExec(t, `INSERT INTO content_uploads (id, project_id, started_at) VALUES ('u1', '`+string(p.ID)+`', `+itoa(env.Clock.Now().UnixMicro())+`)`)
		if n, err := env.Projects.CollectChunks(ctx); err != nil || n != 0 {
			t.Fatalf("collect during an upload: %d, %v; want nothing", n, err)
		}
		env.MustExec(t, `DELETE FROM content_uploads WHERE id = 'u1'`)
		n, err := env.Projects.CollectChunks(ctx)
		if err != nil || n != both-first {
			t.Fatalf("collect: %d, %v; want the %d unused", n, err, both-first)
		}
		if left := len(blobs(t, env, p.ID)); left != both-n {
			t.Errorf("%d blobs left, want %d", left, both-n)
		}
		_, rc, err := env.Projects.OpenFile(ctx, o.ID, mgr, p.ID, 0, "a.bin")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		want, _ := io.ReadAll(noise(8, 3<<20))
		if !bytes.Equal(got, want) {
			t.Error("the file still in use does not read back whole")
		}
	})
}

func hexDecode(dst []byte, s string) (int, error) { return hex.Decode(dst, []byte(s)) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestDeletedOrganisationTakesItsContent (R5, R12): deleting an
// organisation removes its projects' chunks from the content store too.
func TestDeletedOrganisationTakesItsContent(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		slug := "orgdel-" + env.Engine
		o, mgr := env.NewOrg(t, slug)
		p, _ := env.Projects.CreateProject(ctx, o.ID, mgr, kluis.ProjectInput{Name: "Doomed"})
		put(t, env, o.ID, mgr, p.ID, "a.bin", noise(9, 2<<20))
		if len(blobs(t, env, p.ID)) == 0 {
			t.Fatal("nothing stored: the test would prove nothing")
		}
		if err := env.Orgs.DeleteOrg(ctx, kluis.CLIActor, slug); err != nil {
			t.Fatal(err)
		}
		if n := len(blobs(t, env, p.ID)); n != 0 {
			t.Errorf("%d blobs of the deleted organisation's project remain", n)
		}
		for _, table := range []string{"content_chunks", "chunk_refs", "project_files", "project_versions", "project_grants"} {
			if n := count(t, env, `SELECT project_id FROM `+table+` WHERE project_id = '`+string(p.ID)+`'`); n != 0 {
				t.Errorf("%s: %d rows of the deleted organisation's project remain", table, n)
			}
		}
	})
}
