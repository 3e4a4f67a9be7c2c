package keys_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
)

// The key store runs on both engines; every store test runs on each.
var engines = []string{keys.SQLite, keys.Postgres}

// env is a key store on a fresh database, with its root key, a movable clock
// and an observer that counts unwraps.
type env struct {
	engine string
	dsn    string
	path   string // the SQLite file; "" on PostgreSQL
	root   *keys.Root
	clock  *kluistest.Clock
	obs    *recorder
	store  *keys.Store
}

func newEnv(t testing.TB, engine string, opts ...keys.Options) *env {
	t.Helper()
	root, err := keys.GenerateRoot()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{engine: engine, root: root, clock: kluistest.NewClock(), obs: newRecorder()}
	if engine == keys.Postgres {
		e.dsn = kluistest.PostgresDSN(t)
	} else {
		e.path = filepath.Join(t.TempDir(), "keys", "keys.db")
		e.dsn = "sqlite://" + e.path
	}
	var o keys.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	e.store = e.open(t, root, o)
	return e
}

// open opens another Store on the env's key store, as another process would.
func (e *env) open(t testing.TB, root *keys.Root, opts keys.Options) *keys.Store {
	t.Helper()
	if opts.Observer == nil {
		opts.Observer = e.obs
	}
	s, err := keys.OpenStore(context.Background(), e.dsn, root, e.clock.Now, opts)
	if err != nil {
		t.Fatalf("open key store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// eachEngine runs f, in parallel, on a fresh env of each engine.
func eachEngine(t *testing.T, f func(t *testing.T, e *env)) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			f(t, newEnv(t, engine))
		})
	}
}

// recorder is an Observer that counts unwraps.
type recorder struct {
	mu      sync.Mutex
	unwraps map[string]int
}

func newRecorder() *recorder { return &recorder{unwraps: map[string]int{}} }

func (r *recorder) KeyUnwrapped(org string, _ keys.Kind) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unwraps[org]++
}

// events returns the life-cycle events the key store recorded. Nothing
// marks them done here, so they are all there, oldest first.
func (e *env) events(t testing.TB) []keys.Event {
	t.Helper()
	evs, err := e.store.PendingEvents(ctx, keys.MaxEventBatch)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// count returns how many recorded events are of the action, kind and
// organisation.
func (e *env) count(t testing.TB, a keys.Action, kind keys.Kind, org string) int {
	t.Helper()
	n := 0
	for _, ev := range e.events(t) {
		if ev.Action == a && ev.Key.Kind == kind && ev.Key.Org == org {
			n++
		}
	}
	return n
}

func (r *recorder) unwrapped(org string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unwraps[org]
}

var ctx = context.Background()

func mustSeal(t testing.TB, s *keys.Store, key keys.KeyRef, f keys.FieldRef, plaintext string) []byte {
	t.Helper()
	c, err := s.Seal(ctx, key, f, []byte(plaintext))
	if err != nil {
		t.Fatalf("seal %s: %v", f.Column, err)
	}
	return c
}

func mustOpen(t testing.TB, s *keys.Store, f keys.FieldRef, c []byte, want string) {
	t.Helper()
	got, err := s.Open(ctx, f, c)
	if err != nil {
		t.Fatalf("open %s/%s: %v", f.Column, f.Row, err)
	}
	if string(got) != want {
		t.Fatalf("open %s/%s: got %q, want %q", f.Column, f.Row, got, want)
	}
}

// openFails checks that c does not open at f, with the error wanted, and
// returns no data.
func openFails(t testing.TB, s *keys.Store, f keys.FieldRef, c []byte, want error) {
	t.Helper()
	got, err := s.Open(ctx, f, c)
	if !errors.Is(err, want) {
		t.Fatalf("open %s.%s row %s: got error %v, want %v", f.Table, f.Column, f.Row, err, want)
	}
	if got != nil {
		t.Fatalf("open %s.%s row %s returned data %q with its error", f.Table, f.Column, f.Row, got)
	}
}

func userField(org, user, column string) keys.FieldRef {
	return keys.FieldRef{Org: org, Table: "users", Column: column, Row: user}
}

// R15 R29: personal fields round-trip under every kind of key.
func TestSealOpenRoundTrip(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		org, user, project := kluistest.Name("org"), kluistest.Name("user"), kluistest.Name("project")
		tests := []struct {
			name      string
			key       keys.KeyRef
			field     keys.FieldRef
			plaintext string
		}{
			{"user name", keys.UserKey(org, user), userField(org, user, "name"), "Ada Lovelace"},
			{"user e-mail", keys.UserKey(org, user), userField(org, user, "email"), "ada@example.org"},
			{"empty phone", keys.UserKey(org, user), userField(org, user, "phone"), ""},
			{"unicode", keys.UserKey(org, user), userField(org, user, "name"), "Zoë Ørsted 山田"},
			{"project content", keys.ProjectKey(org, project), keys.FieldRef{Org: org, Table: "files", Column: "body", Row: "f1"}, strings.Repeat("x", 1<<20)},
			{"audit client address", keys.OrgKey(org), keys.FieldRef{Org: org, Table: "audit", Column: "client", Row: "42"}, "192.0.2.7"},
			{"crash report", keys.PlatformKey(), keys.FieldRef{Table: "incidents", Column: "notes", Row: "i1"}, "stack trace"},
		}
		for _, tt := range tests {
			c := mustSeal(t, e.store, tt.key, tt.field, tt.plaintext)
			if len(c) != len(tt.plaintext)+keys.Overhead {
				t.Errorf("%s: ciphertext is %d bytes, want %d", tt.name, len(c), len(tt.plaintext)+keys.Overhead)
			}
			if tt.plaintext != "" && bytes.Contains(c, []byte(tt.plaintext)) {
				t.Errorf("%s: the ciphertext contains the plaintext", tt.name)
			}
			if !bytes.HasPrefix(c, []byte("v1:")) {
				t.Errorf("%s: ciphertext does not begin with v1:", tt.name)
			}
			mustOpen(t, e.store, tt.field, c, tt.plaintext)
			// Another process with the same key store and root key reads it too.
			mustOpen(t, e.open(t, e.root, keys.Options{}), tt.field, c, tt.plaintext)
		}
		// Two seals of one value differ (random nonces).
		a := mustSeal(t, e.store, keys.UserKey(org, user), userField(org, user, "name"), "same")
		b := mustSeal(t, e.store, keys.UserKey(org, user), userField(org, user, "name"), "same")
		if bytes.Equal(a, b) {
			t.Error("two seals of the same value are equal")
		}
		// The organisation's keys were made once, with events.
		for _, kind := range []keys.Kind{keys.KindOrg, keys.KindIndex, keys.KindUser, keys.KindProject} {
			if n := e.count(t, keys.ActionCreated, kind, org); n != 1 {
				t.Errorf("got %d %s key creation events, want 1", n, kind)
			}
		}
	})
}

// R15 R29: a ciphertext moved anywhere else by direct SQL fails with
// ErrDecrypt and never yields someone else's data.
func TestMovedCiphertextFailsToDecrypt(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		orgA, orgB := kluistest.Name("org"), kluistest.Name("org")
		alice, bob, carol := kluistest.Name("user"), kluistest.Name("user"), kluistest.Name("user")
		c := mustSeal(t, e.store, keys.UserKey(orgA, alice), userField(orgA, alice, "email"), "alice@example.org")
		mustSeal(t, e.store, keys.UserKey(orgA, bob), userField(orgA, bob, "email"), "bob@example.org")
		mustSeal(t, e.store, keys.UserKey(orgB, carol), userField(orgB, carol, "email"), "carol@example.org")

		flipped := bytes.Clone(c)
		flipped[len(flipped)-1] ^= 1
		nonce := bytes.Clone(c)
		nonce[len("v1:")+20] ^= 1
		version := bytes.Clone(c)
		version[len("v1:")+19]++
		otherKey := bytes.Clone(c)
		otherKey[len("v1:")] ^= 0xff

		tests := []struct {
			name  string
			field keys.FieldRef
			c     []byte
		}{
			{"another row of the same column", userField(orgA, bob, "email"), c},
			{"another column of the same row", userField(orgA, alice, "name"), c},
			{"another table", keys.FieldRef{Org: orgA, Table: "invitations", Column: "email", Row: alice}, c},
			{"another organisation, same table, column and row", userField(orgB, alice, "email"), c},
			{"another organisation's row", userField(orgB, carol, "email"), c},
			{"a platform row", keys.FieldRef{Table: "users", Column: "email", Row: alice}, c},
			{"one bit of the tag flipped", userField(orgA, alice, "email"), flipped},
			{"one bit of the nonce flipped", userField(orgA, alice, "email"), nonce},
			{"a version that does not exist", userField(orgA, alice, "email"), version},
			{"a key id that does not exist", userField(orgA, alice, "email"), otherKey},
			{"truncated", userField(orgA, alice, "email"), c[:len(c)-1]},
			{"header only", userField(orgA, alice, "email"), c[:len("v1:")+20]},
			{"plaintext", userField(orgA, alice, "email"), []byte("alice@example.org")},
			{"empty", userField(orgA, alice, "email"), nil},
			{"another format version", userField(orgA, alice, "email"), append([]byte("v2:"), c[3:]...)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				openFails(t, e.store, tt.field, tt.c, keys.ErrDecrypt)
			})
		}
		// The original still opens.
		mustOpen(t, e.store, userField(orgA, alice, "email"), c, "alice@example.org")
	})
}

// R15: a key store holds its keys for its own root key only. Starting with
// another root key fails with a clear message and changes nothing.
func TestRootMismatchRefusesAndChangesNothing(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		org, user := kluistest.Name("org"), kluistest.Name("user")
		c := mustSeal(t, e.store, keys.UserKey(org, user), userField(org, user, "name"), "Ada")
		before := dumpKeyStore(t, e)
		e.store.Close()
		var fileBefore []byte
		if e.path != "" {
			fileBefore = readFile(t, e.path)
		}

		other, err := keys.GenerateRoot()
		if err != nil {
			t.Fatal(err)
		}
		s, err := keys.OpenStore(ctx, e.dsn, other, e.clock.Now, keys.Options{})
		if err == nil {
			s.Close()
			t.Fatal("the key store opened with another root key")
		}
		if !errors.Is(err, keys.ErrRootMismatch) {
			t.Fatalf("got %v, want ErrRootMismatch", err)
		}
		for _, want := range []string{e.root.Fingerprint(), other.Fingerprint(), "nothing was changed"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the error %q does not say %q", err, want)
			}
		}
		if e.path != "" {
			if !bytes.Equal(readFile(t, e.path), fileBefore) {
				t.Error("the key store file changed")
			}
		}
		fresh := e.open(t, e.root, keys.Options{})
		if after := dumpKeyStore(t, e); after != before {
			t.Errorf("the key store changed:\nbefore %s\nafter  %s", before, after)
		}
		mustOpen(t, fresh, userField(org, user, "name"), c, "Ada")
	})
}

func TestOpenStoreRefusesBadOptions(t *testing.T) {
	root, _ := keys.GenerateRoot()
	path := filepath.Join(t.TempDir(), "keys.db")
	for _, o := range []keys.Options{{CacheTTL: 2 * time.Minute}, {CacheTTL: -time.Second}, {CacheSize: -1}} {
		if s, err := keys.OpenStore(ctx, path, root, nil, o); err == nil {
			s.Close()
			t.Errorf("OpenStore accepted %+v", o)
		}
	}
	for _, dsn := range []string{"", "mysql://localhost/keys"} {
		if s, err := keys.OpenStore(ctx, dsn, root, nil, keys.Options{}); err == nil {
			s.Close()
			t.Errorf("OpenStore accepted DSN %q", dsn)
		}
	}
	if _, err := keys.OpenStore(ctx, path, nil, nil, keys.Options{}); err == nil {
		t.Error("OpenStore accepted a nil root key")
	}
}

// R31 R34: deleting a user destroys the user's key: what was sealed under it
// is unreadable for good, here and in every other process, and other users
// are untouched.
func TestDestroyUserKey(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		org, alice, bob := kluistest.Name("org"), kluistest.Name("user"), kluistest.Name("user")
		ca := mustSeal(t, e.store, keys.UserKey(org, alice), userField(org, alice, "name"), "Alice")
		cb := mustSeal(t, e.store, keys.UserKey(org, bob), userField(org, bob, "name"), "Bob")
		corg := mustSeal(t, e.store, keys.OrgKey(org), keys.FieldRef{Org: org, Table: "audit", Column: "client", Row: "1"}, "192.0.2.1")
		other := e.open(t, e.root, keys.Options{}) // another process, cold cache

		if err := e.store.DestroyUserKey(ctx, org, alice, "cli"); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*keys.Store{e.store, other, e.open(t, e.root, keys.Options{})} {
			openFails(t, s, userField(org, alice, "name"), ca, keys.ErrKeyDestroyed)
			mustOpen(t, s, userField(org, bob, "name"), cb, "Bob")
			mustOpen(t, s, keys.FieldRef{Org: org, Table: "audit", Column: "client", Row: "1"}, corg, "192.0.2.1")
		}
		// No fresh key is ever made for the deleted user.
		if _, err := e.store.Seal(ctx, keys.UserKey(org, alice), userField(org, alice, "name"), []byte("Alice")); !errors.Is(err, keys.ErrKeyDestroyed) {
			t.Errorf("seal for a deleted user: got %v, want ErrKeyDestroyed", err)
		}
		if err := e.store.EnsureUserKey(ctx, org, alice, "cli"); !errors.Is(err, keys.ErrKeyDestroyed) {
			t.Errorf("ensure a deleted user's key: got %v, want ErrKeyDestroyed", err)
		}
		if n := e.count(t, keys.ActionDestroyed, keys.KindUser, org); n != 1 {
			t.Errorf("got %d destruction events, want 1", n)
		}
		// Destroying again does nothing; destroying a user who never had a
		// key still bars one from being made.
		if err := e.store.DestroyUserKey(ctx, org, alice, "cli"); err != nil {
			t.Fatal(err)
		}
		if n := e.count(t, keys.ActionDestroyed, keys.KindUser, org); n != 1 {
			t.Errorf("destroying twice: got %d destruction events, want 1", n)
		}
		never := kluistest.Name("user")
		if err := e.store.DestroyUserKey(ctx, org, never, "cli"); err != nil {
			t.Fatal(err)
		}
		if err := e.store.EnsureUserKey(ctx, org, never, "cli"); !errors.Is(err, keys.ErrKeyDestroyed) {
			t.Errorf("ensure the key of a user destroyed before having one: got %v, want ErrKeyDestroyed", err)
		}
	})
}

// R35 R36: deleting an organisation destroys its key, its index key and
// every key below them; other organisations are untouched.
func TestDestroyOrgKeys(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		type sealed struct {
			field keys.FieldRef
			c     []byte
			want  string
		}
		seal := func(org string) []sealed {
			user, project := kluistest.Name("user"), kluistest.Name("project")
			var out []sealed
			for _, x := range []struct {
				key   keys.KeyRef
				field keys.FieldRef
				value string
			}{
				{keys.UserKey(org, user), userField(org, user, "email"), "u@example.org"},
				{keys.ProjectKey(org, project), keys.FieldRef{Org: org, Table: "files", Column: "body", Row: project}, "content"},
				{keys.OrgKey(org), keys.FieldRef{Org: org, Table: "audit", Column: "client", Row: "7"}, "198.51.100.4"},
			} {
				out = append(out, sealed{x.field, mustSeal(t, e.store, x.key, x.field, x.value), x.value})
			}
			return out
		}
		orgA, orgB := kluistest.Name("org"), kluistest.Name("org")
		a, b := seal(orgA), seal(orgB)
		indexB, err := e.store.BlindIndex(ctx, orgB, "u@example.org")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.RotateOrgKey(ctx, orgA, "cli"); err != nil {
			t.Fatal(err)
		}

		if err := e.store.DestroyOrgKeys(ctx, orgA, "cli"); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*keys.Store{e.store, e.open(t, e.root, keys.Options{})} {
			for _, x := range a {
				openFails(t, s, x.field, x.c, keys.ErrKeyDestroyed)
			}
			for _, x := range b {
				mustOpen(t, s, x.field, x.c, x.want)
			}
			if _, err := s.BlindIndex(ctx, orgA, "u@example.org"); !errors.Is(err, keys.ErrKeyDestroyed) {
				t.Errorf("blind index of a deleted organisation: got %v, want ErrKeyDestroyed", err)
			}
			if got, err := s.BlindIndex(ctx, orgB, "u@example.org"); err != nil || !bytes.Equal(got, indexB) {
				t.Errorf("blind index of another organisation changed: %v", err)
			}
		}
		for _, ref := range []keys.KeyRef{keys.OrgKey(orgA), keys.UserKey(orgA, kluistest.Name("user")), keys.ProjectKey(orgA, kluistest.Name("project"))} {
			if _, err := e.store.Seal(ctx, ref, keys.FieldRef{Org: orgA, Table: "t", Column: "c", Row: "r"}, []byte("x")); !errors.Is(err, keys.ErrKeyDestroyed) {
				t.Errorf("seal under a new %s key of a deleted organisation: got %v, want ErrKeyDestroyed", ref.Kind, err)
			}
		}
		// Both versions of the organisation key, the user key and the project
		// key (the rotation renewed them), and the index key.
		for kind, want := range map[keys.Kind]int{keys.KindOrg: 2, keys.KindIndex: 1, keys.KindUser: 2, keys.KindProject: 2} {
			if n := e.count(t, keys.ActionDestroyed, kind, orgA); n != want {
				t.Errorf("got %d %s destruction events, want %d", n, kind, want)
			}
		}
		st, err := e.store.KeyStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range st.Keys {
			if k.Key.Org == orgA && (k.State != keys.StateDestroyed || k.DestroyedAt.IsZero()) {
				t.Errorf("%s v%d of the deleted organisation is %s", k.Key.Kind, k.Version, k.State)
			}
			if k.Key.Org == orgB && k.State != keys.StateActive {
				t.Errorf("%s v%d of another organisation is %s", k.Key.Kind, k.Version, k.State)
			}
		}
	})
}

// R31: a destruction made by another process takes effect here within the
// cache TTL, measured on the store's clock.
func TestCacheTTLBoundsAForeignDestruction(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		const ttl = 30 * time.Second
		first := e.open(t, e.root, keys.Options{CacheTTL: ttl})
		org, user := kluistest.Name("org"), kluistest.Name("user")
		f := userField(org, user, "name")
		c := mustSeal(t, first, keys.UserKey(org, user), f, "Ada")
		mustOpen(t, first, f, c, "Ada")

		second := e.open(t, e.root, keys.Options{CacheTTL: ttl})
		if err := second.DestroyUserKey(ctx, org, user, "cli"); err != nil {
			t.Fatal(err)
		}
		openFails(t, second, f, c, keys.ErrKeyDestroyed)
		// Within the TTL the first process may still use its cached key...
		e.clock.Advance(ttl - time.Second)
		mustOpen(t, first, f, c, "Ada")
		// ...and from the TTL on it may not.
		e.clock.Advance(time.Second)
		openFails(t, first, f, c, keys.ErrKeyDestroyed)
		if _, err := first.Seal(ctx, keys.UserKey(org, user), f, []byte("Ada")); !errors.Is(err, keys.ErrKeyDestroyed) {
			t.Errorf("seal after the TTL: got %v, want ErrKeyDestroyed", err)
		}
	})
}

// The cache is bounded: it never holds more keys than asked for.
func TestCacheIsBounded(t *testing.T) {
	e := newEnv(t, keys.SQLite, keys.Options{CacheSize: 8})
	org := kluistest.Name("org")
	var cs [][]byte
	var users []string
	for range 20 {
		u := kluistest.Name("user")
		users = append(users, u)
		cs = append(cs, mustSeal(t, e.store, keys.UserKey(org, u), userField(org, u, "name"), u))
	}
	if n := keys.CachedKeys(e.store); n > 8 {
		t.Errorf("the cache holds %d keys, want at most 8", n)
	}
	for i, u := range users {
		mustOpen(t, e.store, userField(org, u, "name"), cs[i], u)
	}
	if n := keys.CachedKeys(e.store); n > 8 {
		t.Errorf("the cache holds %d keys, want at most 8", n)
	}
}

// R15: organisation key rotation starts a new version for new seals; the
// retired version still opens what it sealed, and user keys stay readable.
func TestRotateOrgKey(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		org, user := kluistest.Name("org"), kluistest.Name("user")
		orgField := keys.FieldRef{Org: org, Table: "audit", Column: "client", Row: "1"}
		old := mustSeal(t, e.store, keys.OrgKey(org), orgField, "192.0.2.1")
		cu := mustSeal(t, e.store, keys.UserKey(org, user), userField(org, user, "name"), "Ada")
		index, err := e.store.BlindIndex(ctx, org, "ada@example.org")
		if err != nil {
			t.Fatal(err)
		}
		stale := e.open(t, e.root, keys.Options{}) // a process that knows version 1 as active
		mustSeal(t, stale, keys.OrgKey(org), orgField, "warm")
		v1, err := keys.ParseCiphertext(old)
		if err != nil {
			t.Fatal(err)
		}

		v2, err := e.store.RotateOrgKey(ctx, org, "cli")
		if err != nil {
			t.Fatal(err)
		}
		if v2.ID != v1.ID || v2.Version != 2 {
			t.Fatalf("rotation made %v, want version 2 of %v", v2, v1.ID)
		}
		if got, err := e.store.ActiveVersion(ctx, keys.OrgKey(org)); err != nil || got != v2 {
			t.Errorf("active version: got %v, %v, want %v", got, err, v2)
		}
		fresh := e.open(t, e.root, keys.Options{})
		for _, s := range []*keys.Store{e.store, fresh} {
			mustOpen(t, s, orgField, old, "192.0.2.1")
			mustOpen(t, s, userField(org, user, "name"), cu, "Ada")
			c := mustSeal(t, s, keys.OrgKey(org), orgField, "192.0.2.2")
			if kv, _ := keys.ParseCiphertext(c); kv != v2 {
				t.Errorf("a new seal used %v, want %v", kv, v2)
			}
			if got, err := s.BlindIndex(ctx, org, "ada@example.org"); err != nil || !bytes.Equal(got, index) {
				t.Errorf("the blind index changed with the rotation (%v)", err)
			}
		}
		// The process that cached version 1 as active moves on within the TTL.
		e.clock.Advance(keys.DefaultCacheTTL)
		if kv, _ := keys.ParseCiphertext(mustSeal(t, stale, keys.OrgKey(org), orgField, "x")); kv != v2 {
			t.Errorf("after the TTL another process sealed with %v, want %v", kv, v2)
		}

		st, err := e.store.KeyStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var states []string
		for _, k := range st.Keys {
			if k.Key.Kind == keys.KindOrg && k.Key.Org == org {
				states = append(states, string(k.State))
				wantUsers := 1 // version 1 wraps the user key's retired version 1, version 2 its new version 2
				if k.Users != wantUsers {
					t.Errorf("version %d wraps %d user keys, want %d", k.Version, k.Users, wantUsers)
				}
				if k.Version == 1 && k.RetiredAt.IsZero() {
					t.Error("version 1 has no retirement time")
				}
			}
		}
		if got := strings.Join(states, ","); got != "retired,active" {
			t.Errorf("organisation key versions: got %s, want retired,active", got)
		}
		if e.count(t, keys.ActionRotated, keys.KindOrg, org) != 1 || e.count(t, keys.ActionRetired, keys.KindOrg, org) != 1 {
			t.Error("want one rotation and one retirement event")
		}
		// The user key got a new version too: new seals use it, the old one opens.
		if uv, err := e.store.ActiveVersion(ctx, keys.UserKey(org, user)); err != nil || uv.Version != 2 {
			t.Errorf("user key after the rotation: %v, %v; want version 2", uv, err)
		}
		if kv, _ := keys.ParseCiphertext(mustSeal(t, e.store, keys.UserKey(org, user), userField(org, user, "name"), "Ada")); kv.Version != 2 {
			t.Errorf("a new user seal used %v, want version 2", kv)
		}
		if e.count(t, keys.ActionRotated, keys.KindUser, org) != 1 || e.count(t, keys.ActionRetired, keys.KindUser, org) != 1 {
			t.Error("want one rotation and one retirement event of the user key")
		}
		if _, err := e.store.RotateOrgKey(ctx, kluistest.Name("org"), "cli"); !errors.Is(err, keys.ErrNoKey) {
			t.Errorf("rotating a key never made: got %v, want ErrNoKey", err)
		}
	})
}

// R15: the root key rotates while clients seal and open; no operation fails,
// and afterwards only the new root key opens the key store.
func TestRotateRootWhileSealingDropsNothing(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		s := e.open(t, e.root, keys.Options{CacheTTL: time.Second})
		orgs := []string{kluistest.Name("org"), kluistest.Name("org"), kluistest.Name("org")}
		for _, org := range orgs {
			if err := s.EnsureOrgKey(ctx, org, "cli"); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.EnsurePlatformKey(ctx, "cli"); err != nil {
			t.Fatal(err)
		}
		type sealed struct {
			f keys.FieldRef
			c []byte
			v string
		}
		var (
			mu     sync.Mutex
			all    []sealed
			wg     sync.WaitGroup
			stop   = make(chan struct{})
			errs   = make(chan error, 100)
			counts [4]int
		)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					org := orgs[i%len(orgs)]
					key := keys.UserKey(org, kluistest.Name("user"))
					if i%5 == 0 {
						org = kluistest.Name("org") // a new organisation: a root-wrapped key is made
						key = keys.OrgKey(org)
					}
					f := keys.FieldRef{Org: org, Table: "users", Column: "name", Row: kluistest.Name("row")}
					c, err := s.Seal(ctx, key, f, []byte(f.Row))
					if err != nil {
						errs <- err
						return
					}
					if got, err := s.Open(ctx, f, c); err != nil || string(got) != f.Row {
						errs <- errors.Join(errors.New("open after seal failed"), err)
						return
					}
					mu.Lock()
					all = append(all, sealed{f, c, f.Row})
					if len(all) > 1 {
						old := all[(i*7)%len(all)]
						mu.Unlock()
						if got, err := s.Open(ctx, old.f, old.c); err != nil || string(got) != old.v {
							errs <- errors.Join(errors.New("open of an older ciphertext failed"), err)
							return
						}
					} else {
						mu.Unlock()
					}
					counts[w]++
					if i%3 == 0 {
						e.clock.Advance(time.Second) // expire the cache: keys are unwrapped again
					}
				}
			}()
		}
		time.Sleep(100 * time.Millisecond)
		newRoot, err := keys.GenerateRoot()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.RotateRoot(ctx, newRoot, "cli"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		close(stop)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("during the root rotation: %v", err)
		}
		if counts[0] == 0 {
			t.Fatal("the clients did nothing")
		}

		if _, err := keys.OpenStore(ctx, e.dsn, e.root, e.clock.Now, keys.Options{}); !errors.Is(err, keys.ErrRootMismatch) {
			t.Fatalf("opening with the old root key after rotation: got %v, want ErrRootMismatch", err)
		}
		after := e.open(t, newRoot, keys.Options{})
		for _, x := range all {
			mustOpen(t, after, x.f, x.c, x.v)
		}
		st, err := after.KeyStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.RootGeneration != 2 || st.RootFingerprint != newRoot.Fingerprint() {
			t.Errorf("status: root generation %d fingerprint %s, want 2 and %s", st.RootGeneration, st.RootFingerprint, newRoot.Fingerprint())
		}
		if n := e.count(t, keys.ActionRootRotated, "", ""); n != 1 {
			t.Fatalf("got %d root rotation events, want 1", n)
		}
		for _, ev := range e.events(t) {
			if ev.Action != keys.ActionRootRotated {
				continue
			}
			// At least three organisations with an organisation and an index
			// key each, and the platform key.
			if ev.PreviousRootFingerprint != e.root.Fingerprint() || ev.RootFingerprint != newRoot.Fingerprint() || ev.Version != 2 || ev.Rewrapped < 7 {
				t.Errorf("root rotation event %+v", ev)
			}
		}
		if err := after.RotateRoot(ctx, newRoot, "cli"); err == nil {
			t.Error("rotating to the current root key succeeded")
		}
	})
}

// R15: a process that still holds the old root key picks up the new one
// through Options.ReloadRoot once another process rotated it.
func TestRootRotatedByAnotherProcess(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		dir := t.TempDir()
		path := filepath.Join(dir, "root")
		if err := keys.SaveRoot(path, e.root); err != nil {
			t.Fatal(err)
		}
		if err := keys.SaveRoot(path, e.root); err == nil {
			t.Error("SaveRoot replaced an existing file")
		}
		server := e.open(t, e.root, keys.Options{ReloadRoot: func() (*keys.Root, error) { return keys.LoadRoot(path) }})
		plain := e.open(t, e.root, keys.Options{})
		org, user := kluistest.Name("org"), kluistest.Name("user")
		f := userField(org, user, "name")
		c := mustSeal(t, server, keys.UserKey(org, user), f, "Ada")

		// The CLI: a new root key next to the old, rotate, rename.
		newRoot, _ := keys.GenerateRoot()
		if err := keys.SaveRoot(path+".new", newRoot); err != nil {
			t.Fatal(err)
		}
		if err := e.open(t, e.root, keys.Options{}).RotateRoot(ctx, newRoot, "cli"); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}

		e.clock.Advance(keys.DefaultCacheTTL)
		mustOpen(t, server, f, c, "Ada")
		newOrg := kluistest.Name("org")
		mustSeal(t, server, keys.OrgKey(newOrg), keys.FieldRef{Org: newOrg, Table: "t", Column: "c", Row: "r"}, "x")
		// Without a way to reload, the process says what happened.
		if _, err := plain.Open(ctx, f, c); !errors.Is(err, keys.ErrRootMismatch) {
			t.Errorf("open after a foreign root rotation without ReloadRoot: got %v, want ErrRootMismatch", err)
		}
	})
}

// R29: the blind index is stable within an organisation and differs
// between organisations and values.
func TestBlindIndex(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		orgA, orgB := kluistest.Name("org"), kluistest.Name("org")
		index := func(s *keys.Store, org, v string) []byte {
			t.Helper()
			b, err := s.BlindIndex(ctx, org, v)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != 32 {
				t.Fatalf("blind index of %d bytes, want 32", len(b))
			}
			return b
		}
		a := index(e.store, orgA, "ada@example.org")
		tests := []struct {
			name  string
			got   []byte
			equal bool
		}{
			{"same organisation and value", index(e.store, orgA, "ada@example.org"), true},
			{"same in another process", index(e.open(t, e.root, keys.Options{}), orgA, "ada@example.org"), true},
			{"another organisation", index(e.store, orgB, "ada@example.org"), false},
			{"another value", index(e.store, orgA, "ada@example.com"), false},
		}
		for _, tt := range tests {
			if bytes.Equal(a, tt.got) != tt.equal {
				t.Errorf("%s: equal is %v, want %v", tt.name, !tt.equal, tt.equal)
			}
		}
		if bytes.Contains(a, []byte("ada")) {
			t.Error("the blind index holds the value")
		}
	})
}

// R28: unwraps are counted per organisation.
func TestUnwrapsAreCountedPerOrganisation(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		orgA, orgB, user := kluistest.Name("org"), kluistest.Name("org"), kluistest.Name("user")
		c := mustSeal(t, e.store, keys.UserKey(orgA, user), userField(orgA, user, "name"), "Ada")
		if err := e.store.EnsureOrgKey(ctx, orgB, "cli"); err != nil {
			t.Fatal(err)
		}
		obs := newRecorder()
		s := e.open(t, e.root, keys.Options{Observer: obs})
		mustOpen(t, s, userField(orgA, user, "name"), c, "Ada")
		mustOpen(t, s, userField(orgA, user, "name"), c, "Ada")
		// The user key and the organisation key above it, once each.
		if n := obs.unwrapped(orgA); n != 2 {
			t.Errorf("got %d unwraps for the organisation, want 2", n)
		}
		if n := obs.unwrapped(orgB); n != 0 {
			t.Errorf("got %d unwraps for an organisation not used, want 0", n)
		}
	})
}
