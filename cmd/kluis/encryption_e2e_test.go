package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kluis/kluis/internal/keys"
)

// e2ePassword satisfies the default password policy.
const e2ePassword = "Rotation pass 2026!"

// rawRequest sends one JSON request and returns the status and the body. It
// never touches t, so a client goroutine can use it.
func rawRequest(client *http.Client, method, url, token, body string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// joinOrg accepts an organisation's first invitation over HTTP and signs in;
// it returns the session token.
func joinOrg(t *testing.T, base, slug, link, email, name string) string {
	t.Helper()
	if got := api(t, "POST", base+"/api/v1/orgs/"+slug+"/invitations/accept", "",
		map[string]string{"token": tokenOf(link), "name": name, "password": e2ePassword}, nil); got != http.StatusOK {
		t.Fatalf("accept %s's invitation: got %d, want 200", slug, got)
	}
	var l loginAnswer
	if got := api(t, "POST", base+"/api/v1/orgs/"+slug+"/login", "", map[string]string{"email": email, "password": e2ePassword}, &l); got != http.StatusOK || l.Token == "" {
		t.Fatalf("login to %s: got %d, want 200 and a token", slug, got)
	}
	var me userAnswer
	if got := api(t, "GET", base+"/api/v1/orgs/"+slug+"/me", l.Token, nil, &me); got != http.StatusOK || me.Email != email || me.Name != name {
		t.Fatalf("GET %s/me: got %d %+v, want 200 and %s", slug, got, me, email)
	}
	return l.Token
}

var rotatedFingerprint = regexp.MustCompile(`root key rotated: fingerprint (\S+)`)

// R28 acceptance: `kluis keys rotate --root` re-wraps the key store under a
// new root key while a server runs and a client reads and writes personal
// data (GET and PATCH /me, sealed and opened with the user's key) without
// pause: no request fails. Afterwards the server still serves — including
// an organisation whose keys it first unwraps after the rotation, under the
// new root key — the audit chains verify, and keys status shows the new root
// key, whose rotation is recorded once in the platform chain.
func TestRootRotationWhileServingDropsNoRequest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := testEnv()
	srv := startServe(t, env, "--addr", "127.0.0.1:0", "--data", dir)
	base := "http://" + srv.addr
	linkA := strings.TrimSpace(mustCLI(t, env, "", "org", "create", "acme", "--name", "Acme", "--manager-email", "boss@acme.example", "--data", dir).stdout)
	linkB := strings.TrimSpace(mustCLI(t, env, "", "org", "create", "beta", "--name", "Beta", "--manager-email", "boss@beta.example", "--data", dir).stdout)
	token := joinOrg(t, base, "acme", linkA, "boss@acme.example", "Boss Acme")
	status := mustCLI(t, env, "", "keys", "status", "--data", dir).stdout
	if !strings.Contains(status, "generation 1") {
		t.Fatalf("keys status before the rotation: %s", status)
	}

	// The client: PATCH /me with a new name and phone, then GET /me, until
	// stopped; every answer must be 200 and show what was written.
	var (
		total    atomic.Int64
		mu       sync.Mutex
		failures []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		client := &http.Client{Timeout: patience}
		me := base + "/api/v1/orgs/acme/me"
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name, phone := fmt.Sprintf("Boss Acme %d", i), fmt.Sprintf("+3161%07d", i)
			body, _ := json.Marshal(map[string]string{"name": name, "phone": phone})
			for _, req := range []struct{ method, body string }{{"PATCH", string(body)}, {"GET", ""}} {
				code, b, err := rawRequest(client, req.method, me, token, req.body)
				total.Add(1)
				var u struct{ Name, Email, Phone string }
				switch {
				case err != nil:
					fail("%s /me #%d: %v", req.method, i, err)
				case code != http.StatusOK:
					fail("%s /me #%d: %d %s", req.method, i, code, b)
				case json.Unmarshal(b, &u) != nil || u.Name != name || u.Phone != phone || u.Email != "boss@acme.example":
					fail("%s /me #%d: answer %s, want name %q, phone %q", req.method, i, b, name, phone)
				}
			}
		}
	}()
	stopClient := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-done
	}
	defer stopClient()

	waitFor(t, patience, "the client's first requests", func() bool { return total.Load() >= 20 })
	before := total.Load()
	r := cli(t, env, "", "keys", "rotate", "--root", "--data", dir)
	during := total.Load() - before
	if r.code != 0 {
		t.Fatalf("keys rotate --root while serving: %s", r)
	}
	m := rotatedFingerprint.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("keys rotate --root printed %q, want the new fingerprint", r.stdout)
	}
	after := total.Load()
	waitFor(t, patience, "the client's requests after the rotation", func() bool { return total.Load() >= after+20 })
	stopClient()
	t.Logf("%d requests in all, %d while the rotation ran", total.Load(), during)
	mu.Lock()
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed around the root key rotation; the first: %s", len(failures), total.Load(), strings.Join(failures[:min(5, len(failures))], "\n"))
	}
	mu.Unlock()

	// The server still serves, also keys it has not unwrapped before: beta's
	// organisation and index keys are wrapped under the new root key only.
	tokenB := joinOrg(t, base, "beta", linkB, "boss@beta.example", "Boss Beta")
	var invited struct {
		User userAnswer `json:"user"`
	}
	if got := api(t, "POST", base+"/api/v1/orgs/beta/users", tokenB, map[string]string{"email": "member@beta.example", "role": "member"}, &invited); got != http.StatusCreated {
		t.Errorf("invite a member of beta after the rotation: got %d, want 201", got)
	}
	var me userAnswer
	if got := api(t, "GET", base+"/api/v1/orgs/acme/me", token, nil, &me); got != http.StatusOK {
		t.Errorf("acme GET /me after the rotation: got %d", got)
	}

	status = mustCLI(t, env, "", "keys", "status", "--data", dir).stdout
	if !strings.Contains(status, "fingerprint "+m[1]+", generation 2") {
		t.Errorf("keys status after the rotation:\n%s\nwant fingerprint %s, generation 2", status, m[1])
	}
	mustCLI(t, env, "", "audit", "verify", "--data", dir)
	if err := srv.shutdown(t); err != nil {
		t.Errorf("serve: %v", err)
	}
	mustCLI(t, env, "", "audit", "verify", "--data", dir)
	rows := queryStrings(t, "sqlite", dir, "", "SELECT details FROM audit_events WHERE chain = 'platform' AND action = 'key.root_rotated'")
	if len(rows) != 1 || !strings.Contains(rows[0], m[1]) {
		t.Errorf("key.root_rotated events: %q, want one naming the new fingerprint", rows)
	}
}

// R28: between the moment `kluis keys rotate --root` commits the key store
// under the new root key and the moment it puts the new root key file in the
// old one's place (cmd/kluis/keys.go rotateRootKey: SaveRoot(root.new),
// RotateRoot — which also records the rotation in the key store — then
// rename), a running server that must unwrap a key it has not cached yet
// reloads the root key file, still finds the old key, and fails the request.
// This test puts the key store in exactly that state, with the keys package
// as the command does, and asks the server for a login to an organisation
// whose keys it has not unwrapped yet: the answer must be the ordinary 401,
// not an error.
func TestServerUnwrapsBetweenRootRotationCommitAndFileSwap(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := testEnv()
	srv := startServe(t, env, "--addr", "127.0.0.1:0", "--data", dir)
	base := "http://" + srv.addr
	mustCLI(t, env, "", "org", "create", "acme", "--name", "Acme", "--manager-email", "boss@acme.example", "--data", dir)
	login := func() int {
		return api(t, "POST", base+"/api/v1/orgs/acme/login", "", map[string]string{"email": "nobody@acme.example", "password": "wrong password"}, nil)
	}

	// The command's first two steps.
	ctx := context.Background()
	rootPath := filepath.Join(dir, "keys", "root")
	root, err := keys.LoadRoot(rootPath)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keys.OpenStore(ctx, filepath.Join(dir, "keys", "keys.db"), root, nil, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	newRoot, err := keys.GenerateRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.SaveRoot(rootPath+".new", newRoot); err != nil {
		t.Fatal(err)
	}
	if err := ks.RotateRoot(ctx, newRoot, "cli"); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(rootPath)
	if !bytes.Equal(old, root.MarshalPEM()) {
		t.Fatal("the root key file changed: the test does not reproduce the window")
	}
	if got := login(); got != http.StatusUnauthorized {
		t.Errorf("a failed login while the new root key is committed but not yet in place: got %d, want 401", got)
	}
	// The command's last step; then it works.
	if err := os.Rename(rootPath+".new", rootPath); err != nil {
		t.Fatal(err)
	}
	if got := login(); got != http.StatusUnauthorized {
		t.Errorf("a failed login after the rotation: got %d, want 401", got)
	}
}
