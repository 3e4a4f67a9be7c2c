package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore"
)

// backupEnv makes an operator's age key pair (the identity stays with the
// test, as it stays offline with an operator) and a local-folder target.
func backupEnv(t *testing.T, env []string) (out []string, identityFile, target string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	identityFile = filepath.Join(t.TempDir(), "operator.key")
	if err := os.WriteFile(identityFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	target = t.TempDir()
	return append(env, "KLUIS_BACKUP_TARGETS=file://"+target+"?location=NL", "KLUIS_BACKUP_RECIPIENTS="+id.Recipient().String()), identityFile, target
}

func getBody(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: patience}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func putBody(url, token, body string) (int, error) {
	req, _ := http.NewRequest("PUT", url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := (&http.Client{Timeout: patience}).Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// R30 R32 acceptance: a running instance is backed up with `kluis backup
// run` while clients write to it; the backup restores into the other
// engine (SQLite's into an empty PostgreSQL database, PostgreSQL's into a
// fresh folder); the restored instance starts, its
// chains verify, everything written before the backup began is there as it
// was, everything written during it is there whole or not at all, and
// nobody's session survives.
func TestBackupUnderWriteLoadRestoresIntoFolderAndPostgres(t *testing.T) {
	t.Parallel()
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			var extra []string
			if engine == sqlstore.Postgres {
				extra = append(extra, "KLUIS_DB="+kluistest.PostgresDSN(t))
			}
			env, identity, _ := backupEnv(t, processEnv(extra...))
			dir := t.TempDir()
			srv := startServerProcess(t, env, "--addr", "127.0.0.1:0", "--data", dir)
			base := "http://" + srv.addr
			const email = "boss@acme.example"
			r := runProcess(t, env, "", "org", "create", "acme", "--name", "Acme", "--manager-email", email, "--data", dir)
			if r.code != 0 {
				t.Fatalf("org create: %s", r)
			}
			m := waitMail(t, dir, map[string]bool{}, patience)
			token := joinOrg(t, base, "acme", linkLines(m.body)[0], email, "Boss Acme")
			var created struct {
				Project struct{ ID string } `json:"project"`
			}
			if got := api(t, "POST", base+"/api/v1/orgs/acme/projects", token, map[string]string{"name": "Plans"}, &created); got != http.StatusCreated {
				t.Fatalf("create a project: got %d", got)
			}
			files := base + "/api/v1/orgs/acme/projects/" + created.Project.ID + "/files/"
			before := map[string]string{}
			for i := range 10 {
				body := fmt.Sprintf("plan %d: %s", i, strings.Repeat("x", i*10000))
				if code, err := putBody(files+fmt.Sprintf("before/%d.txt", i), token, body); err != nil || code != http.StatusCreated {
					t.Fatalf("upload: %d %v", code, err)
				}
				before[fmt.Sprintf("before/%d.txt", i)] = body
			}
			// Write load while the backup runs.
			stop := make(chan struct{})
			var mu sync.Mutex
			during := map[string]string{}
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					name, body := fmt.Sprintf("during/%d.txt", i), fmt.Sprintf("written while backing up: %d", i)
					if code, err := putBody(files+name, token, body); err == nil && code == http.StatusCreated {
						mu.Lock()
						during[name] = body
						mu.Unlock()
					}
				}
			}()
			r = runProcess(t, env, "", "backup", "run", "--data", dir)
			close(stop)
			wg.Wait()
			if r.code != 0 {
				t.Fatalf("backup run: %s", r)
			}
			lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
			id := lines[len(lines)-1]
			t.Logf("backup %s taken while %d files were written", id, len(during))

			// Each backup restores into the other engine: SQLite's into an
			// empty PostgreSQL database, PostgreSQL's into a fresh folder.
			into := struct{ name, dsn string }{"folder", ""}
			if engine == sqlstore.SQLite {
				into = struct{ name, dsn string }{"postgres", kluistest.PostgresDSN(t)}
			}
			{
				restored := filepath.Join(t.TempDir(), "restored")
				args := []string{"backup", "restore", id, "--identity", identity, "--into", restored, "--data", dir}
				if into.dsn != "" {
					args = append(args, "--into-db", into.dsn)
				}
				r := runProcess(t, env, "", args...)
				if r.code != 0 {
					t.Fatalf("restore into %s: %s", into.name, r)
				}
				renv := processEnv("KLUIS_LOG_LEVEL=debug")
				if into.dsn != "" {
					renv = processEnv("KLUIS_LOG_LEVEL=debug", "KLUIS_DB="+into.dsn)
				}
				if r := runProcess(t, renv, "", "audit", "verify", "--data", restored); r.code != 0 {
					t.Fatalf("audit verify of the %s restore: %s", into.name, r)
				}
				rs := startServerProcess(t, renv, "--addr", "127.0.0.1:0", "--data", restored)
				rbase := "http://" + rs.addr
				if code, _ := getBody(t, rbase+"/api/v1/orgs/acme/me", token); code != http.StatusUnauthorized {
					t.Errorf("the old session answered %d on the %s restore, want 401", code, into.name)
				}
				var l loginAnswer
				if got := api(t, "POST", rbase+"/api/v1/orgs/acme/login", "", map[string]string{"email": email, "password": e2ePassword}, &l); got != http.StatusOK {
					// What the restored server saw, to tell a wrong key from a
					// wrong row (this failed intermittently under load).
					q := `SELECT action || ' ' || outcome || ' ' || details FROM audit_events ORDER BY at DESC LIMIT 3`
					t.Logf("the restored server's log:\n%s\nits newest audit events: %q", rs.stderr.String(), queryStrings(t, into.name, restored, into.dsn, q))
					t.Fatalf("login on the %s restore: %d", into.name, got)
				}
				rfiles := rbase + "/api/v1/orgs/acme/projects/" + created.Project.ID + "/files/"
				for name, want := range before {
					if code, got := getBody(t, rfiles+name, l.Token); code != http.StatusOK || got != want {
						t.Errorf("%s on the %s restore: %d, %d bytes, want %d bytes", name, into.name, code, len(got), len(want))
					}
				}
				mu.Lock()
				present := 0
				for name, want := range during {
					code, got := getBody(t, rfiles+name, l.Token)
					switch {
					case code == http.StatusOK && got == want:
						present++
					case code == http.StatusNotFound:
					default:
						t.Errorf("%s on the %s restore: %d %q", name, into.name, code, got)
					}
				}
				mu.Unlock()
				t.Logf("%s restore: %d of %d files written during the backup are in it", into.name, present, len(during))
				if code := rs.terminate(t, patience); code != 0 {
					t.Errorf("the restored server exited %d", code)
				}
				if r := runProcess(t, renv, "", "audit", "verify", "--data", restored); r.code != 0 {
					t.Fatalf("audit verify after serving the %s restore: %s", into.name, r)
				}
			}
		})
	}
}
