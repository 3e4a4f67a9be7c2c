package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/kluistest"
)

// R28, DESIGN §4: the key store lives apart from the data and opens only with
// the root key it was made with; a wrong root key refuses with a clear message
// and changes nothing.
func TestWrongRootKeyRefusesAndChangesNothing(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			dir := t.TempDir()
			env := testEnv()
			if engine == "postgres" {
				env = testEnv("KLUIS_DB", kluistest.DSN(t, engine), "KLUIS_KEYS_DB", kluistest.DSN(t, engine))
			}
			mustCLI(t, env, "", "migrate", "--data", dir)
			mustCLI(t, env, "", "org", "create", "acme", "--name", "Acme", "--manager-email", "boss@acme.example", "--data", dir)
			status := mustCLI(t, env, "", "keys", "status", "--data", dir).stdout
			if !strings.Contains(status, "root key: fingerprint ") {
				t.Fatalf("keys status: got %q", status)
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
			if got := mustCLI(t, env, "", "keys", "status", "--data", dir).stdout; withoutAges(got) != withoutAges(status) {
				t.Fatalf("the refused start changed the key store:\n got %s\nwant %s", got, status)
			}
		})
	}
}

// ageColumn matches an AGE of keys status (a duration in whole seconds).
var ageColumn = regexp.MustCompile(`\b(\d+h)?(\d+m)?\d+s\b`)

// withoutAges is keys status without the keys' ages, which grow with the
// clock and not with a change, and without the column padding they move.
func withoutAges(status string) string {
	lines := strings.Split(ageColumn.ReplaceAllString(status, "AGE"), "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
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
