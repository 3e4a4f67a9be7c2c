package main

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/kluistest"
)

// R28, docs/KEYS.md: the key store lives apart from the data and opens only with
// the root key it was made with; a wrong root key refuses with a clear message
// and changes nothing: not a row of the key store or of the data database,
// and not what keys status shows. (Its AGE column counts seconds from now, so
// it is left out of that comparison; the rows hold the creation times.)
func TestWrongRootKeyRefusesAndChangesNothing(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			dir := t.TempDir()
			env := testEnv()
			dataDB := databaseSource{"sqlite", filepath.Join(dir, "kluis.db")}
			keysDB := databaseSource{"sqlite", filepath.Join(dir, "keys", "keys.db")}
			if engine == "postgres" {
				dataDSN, keysDSN := kluistest.DSN(t, engine), kluistest.DSN(t, engine)
				env = testEnv("KLUIS_DB", dataDSN, "KLUIS_KEYS_DB", keysDSN)
				dataDB, keysDB = databaseSource{"pgx", dataDSN}, databaseSource{"pgx", keysDSN}
			}
			mustCLI(t, env, "", "migrate", "--data", dir)
			mustCLI(t, env, "", "org", "create", "acme", "--name", "Acme", "--manager-email", "boss@acme.example", "--data", dir)
			status := mustCLI(t, env, "", "keys", "status", "--data", dir).stdout
			if !strings.Contains(status, "root key: fingerprint ") || !strings.Contains(status, "org key of organisation ") {
				t.Fatalf("keys status: got %q", status)
			}
			keysBefore, dataBefore := keysDB.rows(t), dataDB.rows(t)
			if len(keysBefore) == 0 || len(dataBefore) == 0 {
				t.Fatalf("found %d rows in the key store and %d in the data database, want some in both", len(keysBefore), len(dataBefore))
			}

			env2 := map[string]string{}
			for k, v := range env {
				env2[k] = v
			}
			// A root key that exists but is not the store's.
			otherDir := t.TempDir()
			mustCLI(t, testEnv(), "", "migrate", "--data", otherDir)
			mustCLI(t, testEnv(), "", "org", "list", "--data", otherDir)
			env2["KLUIS_ROOT_KEY_FILE"] = filepath.Join(otherDir, "keys", "root")
			r := cli(t, env2, "", "org", "list", "--data", dir)
			if r.code != 2 || !strings.Contains(r.stderr, "not the key the key store was made with") {
				t.Fatalf("wrong root key: got %s, want exit 2 with a clear message", r)
			}
			checkErrorShape(t, r.stderr)
			for _, db := range []struct {
				name          string
				before, after []string
			}{
				{"key store", keysBefore, keysDB.rows(t)},
				{"data database", dataBefore, dataDB.rows(t)},
			} {
				if diff := diffLines(db.before, db.after); diff != "" {
					t.Errorf("the refused start changed the %s (- before, + after):\n%s", db.name, diff)
				}
			}
			got := mustCLI(t, env, "", "keys", "status", "--data", dir).stdout
			if got, want := withoutAgeColumn(t, got), withoutAgeColumn(t, status); got != want {
				t.Fatalf("the refused start changed what keys status shows:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// databaseSource names a database for a connection of the test's own:
// driver "sqlite" with a file, or "pgx" with a DSN.
type databaseSource struct{ driver, source string }

// rows returns every row of every table, one line each ("table: values"),
// sorted: two snapshots are equal when no row was added, removed or
// changed.
func (d databaseSource) rows(t testing.TB) []string {
	t.Helper()
	tables := `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`
	if d.driver == "pgx" {
		tables = `SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables
			WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`
	}
	var out []string
	for _, table := range kluistest.QueryRows(t, d.driver, d.source, tables) {
		name := string(table[0])
		query := "SELECT * FROM " + name
		if d.driver == "sqlite" {
			query = `SELECT * FROM "` + name + `"`
		}
		for _, row := range kluistest.QueryRows(t, d.driver, d.source, query) {
			var b strings.Builder
			b.WriteString(name + ":")
			for _, v := range row {
				b.WriteString(" " + strconv.Quote(string(v)))
			}
			out = append(out, b.String())
		}
	}
	sort.Strings(out)
	return out
}

// diffLines lists the lines only in before (-) and only in after (+).
func diffLines(before, after []string) string {
	count := map[string]int{}
	for _, l := range before {
		count[l]++
	}
	for _, l := range after {
		count[l]--
	}
	var b strings.Builder
	for _, l := range slices.Sorted(maps.Keys(count)) {
		switch n := count[l]; {
		case n > 0:
			fmt.Fprintf(&b, "- %s (%d×)\n", l, n)
		case n < 0:
			fmt.Fprintf(&b, "+ %s (%d×)\n", l, -n)
		}
	}
	return b.String()
}

// withoutAgeColumn returns keys status output with the AGE column of the
// key table left out: the only part that moves with the clock.
func withoutAgeColumn(t testing.TB, status string) string {
	t.Helper()
	lines := strings.Split(status, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "KEY ") {
			continue
		}
		start := strings.Index(l, "AGE")
		if start < 0 {
			t.Fatalf("keys status has no AGE column: %q", l)
		}
		end := start + len("AGE")
		for end < len(l) && l[end] == ' ' {
			end++
		}
		// The table's rows follow the header up to the first empty line;
		// tabwriter gives every row the header's column positions.
		for j := i; j < len(lines) && lines[j] != ""; j++ {
			row := lines[j]
			if len(row) < end {
				t.Fatalf("keys status row %q is shorter than its header", row)
			}
			lines[j] = row[:start] + row[end:]
		}
		return strings.Join(lines, "\n")
	}
	t.Fatalf("keys status has no key table:\n%s", status)
	return ""
}

// R28: the root key rotates without touching data; afterwards only the new
// key opens the key store, and an export to an age recipient decrypts (with
// Debian's age, a tool nobody here wrote) to the new root key.
func TestRootKeyRotationAndExport(t *testing.T) {
	dir := t.TempDir()
	env := testEnv()
	mustCLI(t, env, "", "migrate", "--data", dir)
	mustCLI(t, env, "", "org", "create", "acme", "--name", "Acme", "--manager-email", "boss@acme.example", "--data", dir)
	rootPath := filepath.Join(dir, "keys", "root")
	old, err := os.ReadFile(rootPath)
	if err != nil {
		t.Fatal(err)
	}
	r := mustCLI(t, env, "", "keys", "rotate", "--root", "--data", dir)
	if !strings.Contains(r.stdout, "root key rotated") {
		t.Fatalf("rotate: got %s", r)
	}
	rotated, err := os.ReadFile(rootPath)
	if err != nil || bytes.Equal(rotated, old) {
		t.Fatalf("the root key file was not replaced (%v)", err)
	}
	if _, err := os.Stat(rootPath + ".new"); err == nil {
		t.Fatal("root.new left behind")
	}
	mustCLI(t, env, "", "audit", "verify", "--data", dir)
	// The rotation is in the platform chain, with the fingerprints and
	// without key material (R28: a log of key use).
	rows := queryStrings(t, "sqlite", dir, "", "SELECT details FROM audit_events WHERE chain = 'platform' AND action = 'key.root_rotated'")
	if len(rows) != 1 || !strings.Contains(rows[0], `"root_fingerprint"`) || strings.Contains(rows[0], string(rotated)) {
		t.Fatalf("key.root_rotated events: got %q, want one with the fingerprints", rows)
	}
	oldFile := filepath.Join(t.TempDir(), "old-root")
	if err := os.WriteFile(oldFile, old, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, testEnv("KLUIS_ROOT_KEY_FILE", oldFile), "", "org", "list", "--data", dir); r.code != 2 {
		t.Fatalf("the old root key still opens the key store: %s", r)
	}

	ageBin, err := exec.LookPath("age")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("age is not installed")
		}
		t.Skip("age is not installed (Debian package age)")
	}
	identity := filepath.Join(t.TempDir(), "identity")
	out, err := exec.Command(ageBin+"-keygen", "-o", identity).CombinedOutput()
	if err != nil {
		t.Fatalf("age-keygen: %v %s", err, out)
	}
	recipient := ""
	for _, line := range strings.Split(string(out), "\n") {
		if _, pub, ok := strings.Cut(line, "Public key: "); ok {
			recipient = strings.TrimSpace(pub)
		}
	}
	r = mustCLI(t, env, "", "keys", "export-root", "--age-recipient", recipient, "--data", dir)
	if bytes.Contains([]byte(r.stdout), rotated) {
		t.Fatal("the export holds the root key in clear")
	}
	cmd := exec.Command(ageBin, "-d", "-i", identity)
	cmd.Stdin = strings.NewReader(r.stdout)
	plain, err := cmd.Output()
	if err != nil {
		t.Fatalf("age -d: %v", err)
	}
	if !bytes.Equal(plain, rotated) {
		t.Fatal("the decrypted export is not the root key file")
	}
	if r := cli(t, env, "", "keys", "export-root", "--age-recipient", "not-a-key", "--data", dir); r.code != 2 {
		t.Fatalf("bad recipient: got %s, want exit 2", r)
	}
}

// R28, issue 3 item 4: kluis keys rotate --org starts new versions and
// re-encrypts the organisation's data, printing progress; keys status then
// shows no data row but audit rows under retired versions, and the chains
// verify. KLUIS_KEY_CACHE_TTL keeps the settling wait short.
func TestOrgKeyRotationFromTheCommandLine(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			dir := t.TempDir()
			env := testEnv("KLUIS_KEY_CACHE_TTL", "200ms")
			if engine == "postgres" {
				env = testEnv("KLUIS_KEY_CACHE_TTL", "200ms", "KLUIS_DB", kluistest.DSN(t, engine), "KLUIS_KEYS_DB", kluistest.DSN(t, engine))
			}
			mustCLI(t, env, "", "migrate", "--data", dir)
			mustCLI(t, env, "", "org", "create", "acme", "--name", "Acme", "--manager-email", "boss@acme.example", "--data", dir)
			mustCLI(t, env, "", "org", "create", "beta", "--name", "Beta", "--manager-email", "boss@beta.example", "--data", dir)

			r := mustCLI(t, env, "", "keys", "rotate", "--org", "acme", "--data", dir)
			if !strings.Contains(r.stdout, "acme: organisation key rotated to version 2") ||
				!strings.Contains(r.stdout, "acme: re-encryption finished, 1 rows re-encrypted") { // the manager (the command delivered the invitation mail)
				t.Errorf("keys rotate --org: got %q", r.stdout)
			}
			status := mustCLI(t, env, "", "keys", "status", "--data", dir).stdout
			acme, beta := statusLine(status, "acme"), statusLine(status, "beta")
			if !strings.Contains(acme, "finished") || !strings.HasSuffix(acme, " 0  1") { // the invitation's sealed address
				t.Errorf("keys status for acme: %q, want finished, no data row and the audit rows under retired versions\n%s", acme, status)
			}
			if beta != "beta  never  rotated  0  0" {
				t.Errorf("keys status for beta: %q\n%s", beta, status)
			}
			if !strings.Contains(status, "retired") {
				t.Errorf("keys status shows no retired version:\n%s", status)
			}
			if r := cli(t, env, "", "audit", "verify", "--data", dir); r.code != 0 {
				t.Errorf("audit verify after the rotation: %s", r)
			}
			if r := cli(t, env, "", "keys", "rotate", "--org", "nope", "--data", dir); r.code != 1 || !strings.Contains(r.stderr, "no organisation nope") {
				t.Errorf("rotating an unknown organisation: %s", r)
			}
			if r := cli(t, env, "", "keys", "rotate", "--org", "acme", "--root", "--data", dir); r.code != 2 {
				t.Errorf("rotate --root and --org at once: %s, want exit 2", r)
			}
		})
	}
}

// statusLine returns the line of keys status that starts with slug, its
// columns joined by single double-spaces.
func statusLine(status, slug string) string {
	for _, l := range strings.Split(status, "\n") {
		if strings.HasPrefix(l, slug+" ") {
			return strings.Join(strings.Fields(l), "  ")
		}
	}
	return ""
}
