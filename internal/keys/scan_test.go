package keys_test

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
)

// rawDB opens the env's key store behind the Store's back, as an attacker
// with database access (or a backup tool) would.
func rawDB(t testing.TB, e *env) *sql.DB {
	t.Helper()
	driver, source := "pgx", e.dsn
	if e.engine == keys.SQLite {
		driver, source = "sqlite", "file:"+e.path+"?_busy_timeout=10000"
	}
	db, err := sql.Open(driver, source)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func rawExec(t testing.TB, e *env, query string) int64 {
	t.Helper()
	db := rawDB(t, e)
	defer db.Close()
	res, err := db.Exec(query)
	if err != nil {
		t.Fatalf("exec %q: %v", query, err)
	}
	n, _ := res.RowsAffected()
	return n
}

// dumpKeyStore returns every row of the key store as text.
func dumpKeyStore(t testing.TB, e *env) string {
	t.Helper()
	db := rawDB(t, e)
	defer db.Close()
	var b strings.Builder
	for _, q := range []string{
		`SELECT id, root_fingerprint, root_generation, created_at, root_rotated_at FROM key_store`,
		`SELECT version FROM key_store_migrations ORDER BY version`,
		`SELECT id, version, kind, org_id, owner_id, state, wrapped, wrapped_by_id, wrapped_by_version, created_at, retired_at, destroyed_at FROM keys ORDER BY id, version`,
		`SELECT seq, id, action, kind, org_id, owner_id, key_id, version, rewrapped, root_fingerprint, previous_root_fingerprint, at, actor FROM key_events ORDER BY seq`,
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%v\n", vals)
		}
		rows.Close()
	}
	return b.String()
}

// keyStoreBytes returns what an attacker who copies the key store gets: the
// SQLite file and its write-ahead log, or a pg_dump of the database.
func keyStoreBytes(t testing.TB, e *env) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if e.engine == keys.SQLite {
		for _, p := range []string{e.path, e.path + "-wal"} {
			b, err := os.ReadFile(p)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			out[p] = b
		}
		return out
	}
	dump, err := exec.Command("pg_dump", "--dbname="+e.dsn).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	out["pg_dump"] = dump
	return out
}

// encodings returns the forms in which a secret could appear in a dump.
func encodings(secret []byte) map[string][]byte {
	return map[string][]byte{
		"raw":              secret,
		"hex":              []byte(hex.EncodeToString(secret)),
		"HEX":              []byte(strings.ToUpper(hex.EncodeToString(secret))),
		"base64":           []byte(base64.StdEncoding.EncodeToString(secret)),
		"unpadded base64":  []byte(base64.RawStdEncoding.EncodeToString(secret)),
		"base64url":        []byte(base64.URLEncoding.EncodeToString(secret)),
		"unpadded b64-url": []byte(base64.RawURLEncoding.EncodeToString(secret)),
	}
}

// scan fails the test for every secret found in the files.
func scan(t testing.TB, files map[string][]byte, secrets map[string][]byte) {
	t.Helper()
	for name, data := range files {
		for what, secret := range secrets {
			for enc, form := range encodings(secret) {
				if bytes.Contains(data, form) {
					t.Errorf("%s holds %s (%s)", name, what, enc)
				}
			}
		}
	}
}

// R15 R28: the key store holds no unwrapped key and no plaintext, whether
// copied while kluis runs (file and write-ahead log) or dumped; and after a
// destruction not even the destroyed key's wrapped bytes remain (SQLite:
// secure_delete and a truncated log).
func TestKeyStoreHoldsNoKeyMaterialOrPlaintext(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		org, user, gone, project := kluistest.Name("org"), kluistest.Name("user"), kluistest.Name("user"), kluistest.Name("project")
		markers := map[string]string{
			"name marker":     "MARKERNAME7c1f Zoë",
			"e-mail marker":   "marker.9d2e@example.org",
			"phone marker":    "+31 6 MARKER 4417",
			"project marker":  "MARKERPROJECT 55aa",
			"platform marker": "MARKERPLATFORM 0b0b",
		}
		mustSeal(t, e.store, keys.UserKey(org, user), userField(org, user, "name"), markers["name marker"])
		mustSeal(t, e.store, keys.UserKey(org, user), userField(org, user, "email"), markers["e-mail marker"])
		mustSeal(t, e.store, keys.UserKey(org, gone), userField(org, gone, "phone"), markers["phone marker"])
		mustSeal(t, e.store, keys.ProjectKey(org, project), keys.FieldRef{Org: org, Table: "files", Column: "body", Row: project}, markers["project marker"])
		mustSeal(t, e.store, keys.PlatformKey(), keys.FieldRef{Table: "incidents", Column: "notes", Row: "1"}, markers["platform marker"])
		if _, err := e.store.BlindIndex(ctx, org, markers["e-mail marker"]); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.RotateOrgKey(ctx, org, "cli"); err != nil {
			t.Fatal(err)
		}

		live, err := keys.LiveKeys(ctx, e.store)
		if err != nil {
			t.Fatal(err)
		}
		if len(live) != 11 { // org v1 and v2, index, 2 users and the project in 2 versions each, the project's address key, platform
			t.Fatalf("found %d live keys, want 11", len(live))
		}
		secrets := map[string][]byte{}
		for what, m := range markers {
			secrets[what] = []byte(m)
		}
		for i, s := range keys.RootSecrets(e.root) {
			secrets[fmt.Sprintf("root secret %d", i)] = s
		}
		var goneWrapped []byte
		for _, k := range live {
			if len(k.Raw) != 32 {
				t.Fatalf("the %s is %d bytes, want 32", k.Ref.Kind, len(k.Raw))
			}
			secrets["unwrapped "+string(k.Ref.Kind)+" key "+k.KV.String()] = k.Raw
			if k.Ref == keys.UserKey(org, gone) {
				goneWrapped = k.Wrapped
			}
		}

		// The key events are in the scanned bytes too.
		if n := len(e.events(t)); n < 10 {
			t.Fatalf("the key store recorded %d key events, want at least 10", n)
		}
		files := keyStoreBytes(t, e)
		scan(t, files, secrets)
		// The scan looks at the right bytes: the wrapped keys are there.
		found := false
		for _, data := range files {
			for _, form := range encodings(goneWrapped) {
				found = found || bytes.Contains(data, form)
			}
		}
		if !found {
			t.Fatal("the wrapped keys are not in the scanned bytes: the scan proves nothing")
		}

		if err := e.store.DestroyUserKey(ctx, org, gone, "cli"); err != nil {
			t.Fatal(err)
		}
		secrets["wrapped bytes of the destroyed key"] = goneWrapped
		scan(t, keyStoreBytes(t, e), secrets)
		e.store.Close()
		scan(t, keyStoreBytes(t, e), secrets)
	})
}

// R15: wrapped keys are bound to their rows: bytes swapped between rows of
// the key store do not unwrap, and nothing is decrypted with the wrong key.
func TestKeyStoreTamperingIsDetected(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		org, alice, bob := kluistest.Name("org"), kluistest.Name("user"), kluistest.Name("user")
		ca := mustSeal(t, e.store, keys.UserKey(org, alice), userField(org, alice, "name"), "Alice")
		mustSeal(t, e.store, keys.UserKey(org, bob), userField(org, bob, "name"), "Bob")
		if n := rawExec(t, e, `UPDATE keys SET wrapped = (SELECT wrapped FROM keys WHERE owner_id = '`+bob+`') WHERE owner_id = '`+alice+`'`); n != 1 {
			t.Fatalf("swapped %d rows, want 1", n)
		}
		got, err := e.open(t, e.root, keys.Options{}).Open(ctx, userField(org, alice, "name"), ca)
		if err == nil || got != nil {
			t.Fatalf("a key store row holding another key's bytes opened: %q, %v", got, err)
		}
		if !strings.Contains(err.Error(), "does not unwrap") {
			t.Errorf("the error %q does not say the key did not unwrap", err)
		}
	})
}

// R15: the SQLite key store, its write-ahead log and shared-memory file are
// readable by kluis alone, in a directory only kluis may enter.
func TestSQLiteKeyStoreFilesArePrivate(t *testing.T) {
	e := newEnv(t, keys.SQLite)
	org := kluistest.Name("org")
	mustSeal(t, e.store, keys.OrgKey(org), keys.FieldRef{Org: org, Table: "t", Column: "c", Row: "r"}, "x")
	for _, p := range []string{e.path, e.path + "-wal", e.path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", p, mode)
		}
	}
	di, err := os.Stat(filepath.Dir(e.path))
	if err != nil {
		t.Fatal(err)
	}
	if mode := di.Mode().Perm(); mode != 0o700 {
		t.Errorf("the key store directory has mode %04o, want 0700", mode)
	}
}
