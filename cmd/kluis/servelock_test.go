package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore"
)

// serveOnce runs `kluis serve args…` in-process and returns its result when
// it ends by itself; a server that starts instead fails the test.
func serveOnce(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var stdout, stderr kluistest.SyncBuffer
	getenv := func(k string) string { return env[k] }
	err := run(ctx, append([]string{"kluis", "serve"}, args...), getenv, strings.NewReader(""), &stdout, &stderr)
	if ctx.Err() != nil {
		t.Fatalf("the second serve ran until the test's deadline, want a refusal\nstdout:\n%s", stdout.String())
	}
	code := exitCode(err, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// A second kluis serve on the data folder of a running one, with the
// embedded database, refuses before it records anything: the next
// invitation still links to the server that runs. The command line works
// beside the running server. With PostgreSQL several servers share the
// folder and the database (scale-out), so nothing is locked.
func TestSecondServeOnOneDataFolder(t *testing.T) {
	t.Parallel()
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			env := testEnv()
			if engine == sqlstore.Postgres {
				env = testEnv("KLUIS_DB", kluistest.DSN(t, engine), "KLUIS_KEYS_DB", kluistest.DSN(t, engine))
			}
			first := startServe(t, env, "--addr", "127.0.0.1:0", "--data", dir)
			firstURL := "http://" + first.addr

			if engine == sqlstore.Postgres {
				second := startServe(t, env, "--addr", "127.0.0.1:0", "--data", dir, "--public-url", firstURL)
				waitReady(t, "http://"+second.addr)
				return
			}

			r := serveOnce(t, env, "--addr", "127.0.0.1:0", "--data", dir, "--public-url", "http://dead.example:9999")
			if r.code == 0 || !strings.Contains(r.stderr, "kluis: another kluis serve") || !strings.Contains(r.stderr, dir) || !strings.Contains(r.stderr, "\nhint: ") {
				t.Fatalf("a second serve on the folder: got %s, want a refusal naming the folder, with a hint", r)
			}
			checkErrorShape(t, r.stderr)
			if strings.Contains(r.stdout, "listening") {
				t.Errorf("the refused server printed %q", r.stdout)
			}
			// The command line works beside the running server, and the
			// link is the running server's.
			link := mustCLI(t, env, "", "org", "create", "acme", "--name", "Acme", "--manager-email", "m@example.com", "--data", dir).stdout
			if !strings.HasPrefix(link, firstURL+"/o/acme/invite#") {
				t.Errorf("org create beside the server printed %q, want a link to %s (the refused server recorded nothing)", link, firstURL)
			}
			mustCLI(t, env, "", "audit", "verify", "--data", dir)

			// Another data folder is another instance.
			startServe(t, env, "--addr", "127.0.0.1:0", "--data", t.TempDir())

			// Once the first has stopped, the folder is free again.
			if err := first.shutdown(t); err != nil {
				t.Fatalf("serve: %v", err)
			}
			again := startServe(t, env, "--addr", "127.0.0.1:0", "--data", dir)
			if err := again.shutdown(t); err != nil {
				t.Fatalf("serve after the first stopped: %v", err)
			}
		})
	}
}

// A server that was killed leaves its lock file behind but not its lock:
// the next start on the folder works.
func TestKilledServerDoesNotBlockARestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := processEnv()
	p := startServerProcess(t, env, "--addr", "127.0.0.1:0", "--data", dir)
	if r := runProcess(t, env, "", "serve", "--addr", "127.0.0.1:0", "--data", dir); r.code == 0 || !strings.Contains(r.stderr, "another kluis serve") {
		t.Fatalf("a second server process on the folder: got %s, want a refusal", r)
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	if _, err := os.Stat(filepath.Join(dir, serveLockName)); err != nil {
		t.Fatalf("the killed server's lock file: %v, want it left behind", err)
	}
	q := startServerProcess(t, env, "--addr", "127.0.0.1:0", "--data", dir)
	if code := q.terminate(t, patience); code != 0 {
		t.Errorf("the restarted server exited %d after SIGTERM, want 0\nstderr:\n%s", code, q.stderr)
	}
}
