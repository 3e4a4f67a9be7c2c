package keys_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlmigrate"
)

func mustAddress(t testing.TB, s *keys.Store, org, project string, plaintext []byte) [32]byte {
	t.Helper()
	a, err := s.ContentAddress(ctx, org, project, plaintext)
	if err != nil {
		t.Fatalf("content address: %v", err)
	}
	return a
}

func mustSealChunk(t testing.TB, s *keys.Store, org, project string, plaintext []byte) ([32]byte, []byte) {
	t.Helper()
	a := mustAddress(t, s, org, project, plaintext)
	c, err := s.SealChunk(ctx, org, project, a, plaintext)
	if err != nil {
		t.Fatalf("seal chunk: %v", err)
	}
	return a, c
}

func mustOpenChunk(t testing.TB, s *keys.Store, org, project string, a [32]byte, c, want []byte) {
	t.Helper()
	got, err := s.OpenChunk(ctx, org, project, a, c)
	if err != nil {
		t.Fatalf("open chunk: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("open chunk: got %d bytes %.20q, want %d bytes %.20q", len(got), got, len(want), want)
	}
}

func openChunkFails(t testing.TB, s *keys.Store, org, project string, a [32]byte, c []byte, want error) {
	t.Helper()
	got, err := s.OpenChunk(ctx, org, project, a, c)
	if !errors.Is(err, want) {
		t.Fatalf("open chunk: got error %v, want %v", err, want)
	}
	if got != nil {
		t.Fatalf("open chunk returned %d bytes with its error", len(got))
	}
}

// DESIGN §8: a project's address key is made with its project key, in the
// same transaction and under the same actor.
func TestAddressKeyIsMadeWithTheProjectKey(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		org, project := kluistest.Name("org"), kluistest.Name("project")
		if err := e.store.EnsureProjectKey(ctx, org, project, "user:ada"); err != nil {
			t.Fatal(err)
		}
		kinds := map[keys.Kind]int{}
		for _, ev := range e.events(t) {
			if ev.Action != keys.ActionCreated || ev.Actor != "user:ada" {
				t.Errorf("got %s by %q, want key.created by user:ada", ev.Action, ev.Actor)
			}
			kinds[ev.Key.Kind]++
			if ev.Key.Kind == keys.KindAddress && (ev.Key.Org != org || ev.Key.Owner != project) {
				t.Errorf("address key made for %s/%s, want %s/%s", ev.Key.Org, ev.Key.Owner, org, project)
			}
		}
		for _, kind := range []keys.Kind{keys.KindOrg, keys.KindIndex, keys.KindProject, keys.KindAddress} {
			if kinds[kind] != 1 {
				t.Errorf("got %d %s keys made, want 1", kinds[kind], kind)
			}
		}
		// Ensuring again, or sealing a chunk, makes nothing more.
		if err := e.store.EnsureProjectKey(ctx, org, project, "user:ada"); err != nil {
			t.Fatal(err)
		}
		mustSealChunk(t, e.store, org, project, []byte("chunk"))
		if n := len(e.events(t)); n != 4 {
			t.Errorf("got %d events, want 4", n)
		}
		// A project key made on first use makes its address key too.
		other := kluistest.Name("project")
		mustSeal(t, e.store, keys.ProjectKey(org, other), keys.FieldRef{Org: org, Table: "files", Column: "body", Row: "f"}, "x")
		if n := e.count(t, keys.ActionCreated, keys.KindAddress, org); n != 2 {
			t.Errorf("got %d address keys made, want 2", n)
		}
		// An address key does not seal fields.
		if _, err := e.store.Seal(ctx, keys.KeyRef{Kind: keys.KindAddress, Org: org, Owner: project},
			keys.FieldRef{Org: org, Table: "t", Column: "c", Row: "r"}, []byte("x")); err == nil {
			t.Error("an address key sealed a field")
		}

		// A project whose key was made before address keys existed gets one
		// when it is ensured, under the actor.
		old := kluistest.Name("project")
		if err := e.store.EnsureProjectKey(ctx, org, old, "cli"); err != nil {
			t.Fatal(err)
		}
		if n := rawExec(t, e, `DELETE FROM keys WHERE kind = 'address' AND owner_id = '`+old+`'`); n != 1 {
			t.Fatalf("deleted %d address keys, want 1", n)
		}
		fresh := e.open(t, e.root, keys.Options{})
		if err := fresh.EnsureProjectKey(ctx, org, old, "user:bob"); err != nil {
			t.Fatal(err)
		}
		last := e.events(t)[len(e.events(t))-1]
		if last.Key.Kind != keys.KindAddress || last.Key.Owner != old || last.Actor != "user:bob" {
			t.Errorf("the late address key was recorded as %s %s by %q", last.Key.Kind, last.Key.Owner, last.Actor)
		}
		mustAddress(t, fresh, org, old, []byte("x"))
	})
}

// DESIGN §8: content addresses are stable within a project, differ between
// projects and organisations, and do not change when the organisation key
// rotates; path indexes are a separate domain of the same key.
func TestContentAddresses(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		orgA, orgB := kluistest.Name("org"), kluistest.Name("org")
		p1, p2 := kluistest.Name("project"), kluistest.Name("project")
		data := []byte("the same bytes in every project")
		a := mustAddress(t, e.store, orgA, p1, data)
		path, err := e.store.PathIndex(ctx, orgA, p1, string(data))
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name  string
			got   [32]byte
			equal bool
		}{
			{"same project and bytes", mustAddress(t, e.store, orgA, p1, data), true},
			{"same in another process", mustAddress(t, e.open(t, e.root, keys.Options{}), orgA, p1, data), true},
			{"another project of the organisation", mustAddress(t, e.store, orgA, p2, data), false},
			{"the same project id in another organisation", mustAddress(t, e.store, orgB, p1, data), false},
			{"other bytes", mustAddress(t, e.store, orgA, p1, []byte("other bytes")), false},
			{"the path index of the same bytes", path, false},
		}
		for _, tt := range tests {
			if (a == tt.got) != tt.equal {
				t.Errorf("%s: equal is %v, want %v", tt.name, !tt.equal, tt.equal)
			}
		}
		if bytes.Contains(a[:], []byte("same")) {
			t.Error("the address holds the bytes")
		}
		empty := mustAddress(t, e.store, orgA, p1, nil)
		if empty == ([32]byte{}) {
			t.Error("the address of no bytes is zero")
		}

		_, sealed := mustSealChunk(t, e.store, orgA, p1, data)
		stale := e.open(t, e.root, keys.Options{}) // caches the address key before the rotation
		mustAddress(t, stale, orgA, p1, data)
		if _, err := e.store.RotateOrgKey(ctx, orgA, "cli"); err != nil {
			t.Fatal(err)
		}
		for name, s := range map[string]*keys.Store{"this process": e.store, "a fresh process": e.open(t, e.root, keys.Options{}), "a process with cached keys": stale} {
			if got := mustAddress(t, s, orgA, p1, data); got != a {
				t.Errorf("%s: the content address changed with the rotation", name)
			}
			if got, err := s.PathIndex(ctx, orgA, p1, string(data)); err != nil || got != path {
				t.Errorf("%s: the path index changed with the rotation (%v)", name, err)
			}
			mustOpenChunk(t, s, orgA, p1, a, sealed, data)
		}
		// New chunks are sealed under the project key's new version.
		_, c2 := mustSealChunk(t, e.store, orgA, p1, data)
		if kv, err := keys.ParseCiphertext(c2); err != nil || kv.Version != 2 {
			t.Errorf("a chunk sealed after the rotation used %v (%v), want version 2", kv, err)
		}
		// The address keys were re-wrapped under the new organisation key
		// version, not renewed.
		st, err := e.store.KeyStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range st.Keys {
			if k.Key.Kind != keys.KindOrg || k.Key.Org != orgA {
				continue
			}
			want := map[int]int{1: 0, 2: 2}[k.Version]
			if k.Addresses != want {
				t.Errorf("organisation key version %d wraps %d address keys, want %d", k.Version, k.Addresses, want)
			}
		}
		if n := e.count(t, keys.ActionRotated, keys.KindAddress, orgA); n != 0 {
			t.Errorf("got %d address key rotations, want 0", n)
		}
		for _, ev := range e.events(t) {
			if ev.Action == keys.ActionRotated && ev.Key.Kind == keys.KindOrg && ev.Rewrapped != 4 {
				t.Errorf("the organisation key rotation counts %d keys renewed or re-wrapped, want 4 (2 project keys, 2 address keys)", ev.Rewrapped)
			}
		}
	})
}

// DESIGN §8: a chunk opens only for its organisation, project and address.
func TestMovedChunkFailsToDecrypt(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		orgA, orgB := kluistest.Name("org"), kluistest.Name("org")
		p1, p2 := kluistest.Name("project"), kluistest.Name("project")
		data := []byte("chunk of project one")
		a, c := mustSealChunk(t, e.store, orgA, p1, data)
		b, _ := mustSealChunk(t, e.store, orgA, p1, []byte("another chunk"))
		a2 := mustAddress(t, e.store, orgA, p2, data)
		mustSealChunk(t, e.store, orgB, p1, data)

		flipped := bytes.Clone(c)
		flipped[len(flipped)-1] ^= 1
		tests := []struct {
			name         string
			org, project string
			address      [32]byte
			c            []byte
		}{
			{"another address in the project", orgA, p1, b, c},
			{"another project of the organisation, its own address", orgA, p2, a2, c},
			{"another project of the organisation, the same address", orgA, p2, a, c},
			{"the same project id in another organisation", orgB, p1, a, c},
			{"one bit flipped", orgA, p1, a, flipped},
			{"truncated", orgA, p1, a, c[:len(c)-1]},
			{"plaintext", orgA, p1, a, data},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				openChunkFails(t, e.store, tt.org, tt.project, tt.address, tt.c, keys.ErrDecrypt)
			})
		}
		// A chunk is not a field, nor a field a chunk.
		openFails(t, e.store, keys.FieldRef{Org: orgA, Table: "content", Column: "chunk", Row: p1}, c, keys.ErrDecrypt)
		field := mustSeal(t, e.store, keys.ProjectKey(orgA, p1), keys.FieldRef{Org: orgA, Table: "files", Column: "body", Row: "f"}, string(data))
		openChunkFails(t, e.store, orgA, p1, a, field, keys.ErrDecrypt)
		mustOpenChunk(t, e.store, orgA, p1, a, c, data)
	})
}

// R31 R34 DESIGN §8: destroying a project's key destroys its address key:
// nothing of the project opens, no address or path index is computed, and
// nothing is made afresh; other projects are untouched.
func TestDestroyProjectKeyDestroysItsAddressKey(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		const ttl = 30 * time.Second
		org, gone, kept := kluistest.Name("org"), kluistest.Name("project"), kluistest.Name("project")
		data := []byte("project content")
		a, c := mustSealChunk(t, e.store, org, gone, data)
		ka, kc := mustSealChunk(t, e.store, org, kept, data)
		warm := e.open(t, e.root, keys.Options{CacheTTL: ttl})
		mustOpenChunk(t, warm, org, gone, a, c, data)
		mustAddress(t, warm, org, gone, data)

		if err := e.store.DestroyProjectKey(ctx, org, gone, "user:ada"); err != nil {
			t.Fatal(err)
		}
		for kind, want := range map[keys.Kind]int{keys.KindProject: 1, keys.KindAddress: 1} {
			if n := e.count(t, keys.ActionDestroyed, kind, org); n != want {
				t.Errorf("got %d %s key destruction events, want %d", n, kind, want)
			}
		}
		destroyed := func(t *testing.T, s *keys.Store) {
			t.Helper()
			openChunkFails(t, s, org, gone, a, c, keys.ErrKeyDestroyed)
			if _, err := s.ContentAddress(ctx, org, gone, data); !errors.Is(err, keys.ErrKeyDestroyed) {
				t.Errorf("content address: got %v, want ErrKeyDestroyed", err)
			}
			if _, err := s.PathIndex(ctx, org, gone, "a/b.txt"); !errors.Is(err, keys.ErrKeyDestroyed) {
				t.Errorf("path index: got %v, want ErrKeyDestroyed", err)
			}
			if _, err := s.SealChunk(ctx, org, gone, a, data); !errors.Is(err, keys.ErrKeyDestroyed) {
				t.Errorf("seal chunk: got %v, want ErrKeyDestroyed", err)
			}
			if err := s.EnsureProjectKey(ctx, org, gone, "cli"); !errors.Is(err, keys.ErrKeyDestroyed) {
				t.Errorf("ensure project key: got %v, want ErrKeyDestroyed", err)
			}
			mustOpenChunk(t, s, org, kept, ka, kc, data)
			if got := mustAddress(t, s, org, kept, data); got != ka {
				t.Error("another project's address changed")
			}
		}
		destroyed(t, e.store)
		destroyed(t, e.open(t, e.root, keys.Options{}))
		// A process that had the keys cached stops using them within its TTL.
		e.clock.Advance(ttl)
		destroyed(t, warm)

		// A project destroyed before it had keys never gets an address key.
		never := kluistest.Name("project")
		if err := e.store.DestroyProjectKey(ctx, org, never, "cli"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.ContentAddress(ctx, org, never, data); !errors.Is(err, keys.ErrKeyDestroyed) {
			t.Errorf("content address of a project destroyed before its keys: got %v, want ErrKeyDestroyed", err)
		}
		if n := e.count(t, keys.ActionCreated, keys.KindAddress, org); n != 2 {
			t.Errorf("got %d address keys made, want 2", n)
		}

		// Deleting the organisation destroys the remaining address key.
		if err := e.store.DestroyOrgKeys(ctx, org, "cli"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.ContentAddress(ctx, org, kept, data); !errors.Is(err, keys.ErrKeyDestroyed) {
			t.Errorf("content address in a deleted organisation: got %v, want ErrKeyDestroyed", err)
		}
		if n := e.count(t, keys.ActionDestroyed, keys.KindAddress, org); n != 2 {
			t.Errorf("got %d address key destruction events, want 2", n)
		}
	})
}

// A key store made before address keys existed migrates with its keys and
// its pending events, whose sequence keeps counting.
func TestMigrationToAddressKeysKeepsKeysAndEvents(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			var (
				dsn, driver, source string
				postgres            = engine == keys.Postgres
			)
			if postgres {
				dsn = kluistest.PostgresDSN(t)
				driver, source = "pgx", dsn
			} else {
				path := filepath.Join(t.TempDir(), "keys.db")
				dsn, driver, source = "sqlite://"+path, "sqlite", "file:"+path+"?_busy_timeout=10000"
			}
			db, err := sql.Open(driver, source)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ms, err := sqlmigrate.Load(os.DirFS("migrations"), engine)
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) < 4 || ms[3].Version != 4 {
				t.Fatalf("want migration 4 to be the fourth")
			}
			r := sqlmigrate.Runner{DB: db, Table: "key_store_migrations", Postgres: postgres, LockID: 7283542}
			if _, err := r.Apply(ctx, ms[:3]); err != nil {
				t.Fatal(err)
			}
			root, err := keys.GenerateRoot()
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{
				`INSERT INTO key_store (id, root_fingerprint, root_generation, created_at, root_rotated_at) VALUES (1, '` + root.Fingerprint() + `', 1, 1, 1)`,
				`INSERT INTO keys (id, version, kind, org_id, owner_id, state, wrapped, wrapped_by_id, wrapped_by_version, created_at)
					VALUES ('00112233445566778899aabbccddeeff', 1, 'project', 'o', 'p', 'destroyed', NULL, '', 0, 5)`,
				`INSERT INTO key_events (id, action, kind, org_id, owner_id, key_id, version, rewrapped, root_fingerprint, previous_root_fingerprint, at, actor)
					VALUES ('e1', 'key.created', 'project', 'o', 'p', '00112233445566778899aabbccddeeff', 1, 0, '', '', 5, 'cli')`,
				`INSERT INTO key_events (id, action, kind, org_id, owner_id, key_id, version, rewrapped, root_fingerprint, previous_root_fingerprint, at, actor)
					VALUES ('e2', 'key.destroyed', 'project', 'o', 'p', '00112233445566778899aabbccddeeff', 1, 0, '', '', 6, 'cli')`,
				`DELETE FROM key_events WHERE id = 'e2'`,
			} {
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}

			s, err := keys.OpenStore(context.Background(), dsn, root, nil, keys.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.EnsureProjectKey(ctx, "o2", "p2", "cli"); err != nil {
				t.Fatal(err)
			}
			if err := s.DestroyProjectKey(ctx, "o", "p", "cli"); err != nil {
				t.Fatal(err)
			}
			var state string
			if err := db.QueryRowContext(ctx, `SELECT state FROM keys WHERE id = '00112233445566778899aabbccddeeff'`).Scan(&state); err != nil || state != "destroyed" {
				t.Errorf("the old key row: %q, %v", state, err)
			}
			rows, err := db.QueryContext(ctx, `SELECT seq, id, kind FROM key_events ORDER BY seq`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var got []string
			prev := int64(0)
			for rows.Next() {
				var (
					seq      int64
					id, kind string
				)
				if err := rows.Scan(&seq, &id, &kind); err != nil {
					t.Fatal(err)
				}
				if id == "e1" && seq != 1 {
					t.Errorf("the pending event moved to seq %d", seq)
				}
				if id != "e1" && seq <= 2 {
					t.Errorf("a new event reused seq %d of an event already done", seq)
				}
				if seq <= prev {
					t.Errorf("seq %d after %d", seq, prev)
				}
				prev = seq
				if id != "e1" {
					id = "new"
				}
				got = append(got, id+":"+kind)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if want := "e1:project new:org new:index new:project new:address"; strings.Join(got, " ") != want {
				t.Errorf("events: got %s, want %s", strings.Join(got, " "), want)
			}
		})
	}
}
