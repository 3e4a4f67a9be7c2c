package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/kluistest"
)

// R25, docs/SECURITY.md "Audit": the database records which key signs its checkpoints. A
// command run with the key missing or replaced (another data folder on the
// same PostgreSQL database, a node without a copy) refuses with exit 2
// instead of signing checkpoints nobody else can verify.
func TestCommandsRefuseAnotherAuditSigningKey(t *testing.T) {
	dsn := kluistest.DSN(t, "postgres")
	first, second := t.TempDir(), t.TempDir()
	env := testEnv("KLUIS_DB", dsn)
	mustCLI(t, env, "", "migrate", "--data", first)
	mustCLI(t, env, "", "org", "create", "acme", "--name", "Acme", "--manager-email", "boss@acme.example", "--data", first)
	key := filepath.Join(first, "keys", "audit-signing.key")
	if _, err := os.Stat(key); err != nil {
		t.Fatalf("no signing key was created: %v", err)
	}

	r := cli(t, env, "", "audit", "verify", "--data", second)
	if r.code != 2 || !strings.Contains(r.stderr, "missing") {
		t.Fatalf("verify with no key: got %s, want exit 2 naming the missing key", r)
	}
	if _, err := os.Stat(filepath.Join(second, "keys", "audit-signing.key")); err == nil {
		t.Fatal("a new signing key was created for a database that has one")
	}

	// Another valid key in the second folder: refused too.
	third := t.TempDir()
	mustCLI(t, testEnv(), "", "migrate", "--data", third)
	mustCLI(t, testEnv(), "", "org", "create", "beta", "--name", "Beta", "--manager-email", "boss@beta.example", "--data", third)
	if err := os.MkdirAll(filepath.Join(second, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(filepath.Join(third, "keys", "audit-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(second, "keys", "audit-signing.key"), other, 0o600); err != nil {
		t.Fatal(err)
	}
	r = cli(t, env, "", "audit", "verify", "--data", second)
	if r.code != 2 || !strings.Contains(r.stderr, "not the one") {
		t.Fatalf("verify with another key: got %s, want exit 2", r)
	}
	mustCLI(t, env, "", "audit", "verify", "--data", first)
}
