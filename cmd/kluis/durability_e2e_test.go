package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore"
)

// TestKilledServerLosesNoAcknowledgedWrite: a write answered 2xx is
// committed (DESIGN §7, §10: group commit answers a request only after its
// batch's commit). Managers invite people from many connections at once;
// the server is killed with SIGKILL in the middle of it; the data folder
// reopened holds every invitation that was answered 201, and the audit
// chains verify, checkpoints included (R23, R25).
func TestKilledServerLosesNoAcknowledgedWrite(t *testing.T) {
	t.Parallel()
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			var extra []string
			if engine == sqlstore.Postgres {
				extra = append(extra, "KLUIS_DB="+kluistest.PostgresDSN(t))
			}
			killedServer(t, processEnv(extra...))
		})
	}
}

func killedServer(t *testing.T, env []string) {
	dir := t.TempDir()
	const managerEmail, managerPw = "kim.manager@example.com", "Manager pass 2026!"
	srv := startServerProcess(t, env, "--addr", "127.0.0.1:0", "--data", dir)
	base := "http://" + srv.addr + "/api/v1/orgs/acme"
	r := runProcess(t, env, "", "org", "create", "acme", "--name", "Acme", "--manager-email", managerEmail, "--data", dir)
	if r.code != 0 {
		t.Fatalf("org create: %s", r)
	}
	if got := api(t, "POST", base+"/invitations/accept", "",
		map[string]string{"token": tokenOf(strings.TrimSpace(r.stdout)), "name": "Kim", "password": managerPw}, nil); got != http.StatusOK {
		t.Fatalf("accept the manager's invitation: got %d, want 200", got)
	}
	var mgr loginAnswer
	if got := api(t, "POST", base+"/login", "", map[string]string{"email": managerEmail, "password": managerPw}, &mgr); got != http.StatusOK {
		t.Fatalf("manager login: got %d, want 200", got)
	}

	// Invitations from 16 connections until the server is killed; every
	// one answered 201 is acknowledged.
	type invitation struct{ id, name string }
	var (
		mu    sync.Mutex
		acked []invitation
		sent  atomic.Int64
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range 16 {
		wg.Go(func() {
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("Person %d-%d", w, k)
				body := fmt.Sprintf(`{"email":"p%d-%d@example.com","name":%q,"role":"member"}`, w, k, name)
				req, _ := http.NewRequest("POST", base+"/users", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+mgr.Token)
				sent.Add(1)
				resp, err := client.Do(req)
				if err != nil {
					return // the server is gone
				}
				var answer struct {
					User userAnswer `json:"user"`
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					return // the server is gone: not acknowledged
				}
				if resp.StatusCode == http.StatusCreated && json.Unmarshal(b, &answer) == nil && answer.User.ID != "" {
					mu.Lock()
					acked = append(acked, invitation{answer.User.ID, name})
					mu.Unlock()
				}
			}
		})
	}
	// Kill once the load is well under way.
	loadStart := time.Now()
	waitFor(t, 15*time.Second, "100 acknowledged invitations", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 100
	})
	time.Sleep(300 * time.Millisecond)
	if err := srv.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-srv.exited
	close(stop)
	wg.Wait()
	t.Logf("killed after %v with %d invitations acknowledged of %d sent", time.Since(loadStart).Round(time.Millisecond), len(acked), sent.Load())

	if r := runProcess(t, env, "", "audit", "verify", "--data", dir); r.code != 0 {
		t.Fatalf("audit verify after SIGKILL: %s", r)
	}
	srv = startServerProcess(t, env, "--addr", "127.0.0.1:0", "--data", dir)
	base = "http://" + srv.addr + "/api/v1/orgs/acme"
	var list struct {
		Users []userAnswer `json:"users"`
	}
	if got := api(t, "GET", base+"/users", mgr.Token, nil, &list); got != http.StatusOK {
		t.Fatalf("list users after the restart: got %d, want 200", got)
	}
	stored := map[string]string{}
	for _, u := range list.Users {
		stored[u.ID] = u.Name
	}
	t.Logf("after the restart: %d users stored, %d invitations acknowledged", len(stored), len(acked))
	lost := 0
	for _, a := range acked {
		if name, ok := stored[a.id]; !ok || name != a.name {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged invitation of %s (%s) is not stored (got name %q)", a.name, a.id, name)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged invitations lost", lost, len(acked))
	}
	if len(stored) < len(acked)+1 {
		t.Errorf("%d users stored, want at least the manager and %d acknowledged", len(stored), len(acked))
	}
	if code := srv.terminate(t, 10*time.Second); code != 0 {
		t.Errorf("the restarted server exited %d after SIGTERM\nstderr:\n%s", code, srv.stderr)
	}
	if r := runProcess(t, env, "", "audit", "verify", "--data", dir); r.code != 0 {
		t.Fatalf("audit verify after the restart: %s", r)
	}
}
