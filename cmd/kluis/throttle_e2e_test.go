package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/kluistest"
)

// attempt is one sign-in over HTTP from a client address (through the
// trusted proxy on loopback), with an optional device cookie.
type attemptAnswer struct {
	status int
	retry  string
	body   string
	device *http.Cookie
}

func signInFrom(t *testing.T, base, slug, from, email, password string, device *http.Cookie) attemptAnswer {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"email": email, "password": password})
	req, err := http.NewRequest("POST", base+"/api/v1/orgs/"+slug+"/login", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", from)
	if device != nil {
		req.AddCookie(device)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	a := attemptAnswer{status: resp.StatusCode, retry: resp.Header.Get("Retry-After"), body: string(body)}
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-kluis_device" {
			a.device = c
		}
	}
	if a.status == 429 && a.retry == "" {
		t.Fatalf("429 without Retry-After")
	}
	return a
}

// TestThrottleHoldsAcrossTwoProcessesOnOnePostgreSQL (R18, docs/SECURITY.md "Brute-force protection"):
// two kluis processes share one PostgreSQL database; 1,000 wrong passwords
// spread over both, against an existing account and against an unknown
// identifier, meet one lock and one address block with the documented
// numbers and the same answers; the owner's device cookie from one node
// lets them in through the other from the attacked address.
func TestThrottleHoldsAcrossTwoProcessesOnOnePostgreSQL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := processEnv("KLUIS_DB="+kluistest.PostgresDSN(t), "KLUIS_KEYS_DB="+kluistest.PostgresDSN(t), "KLUIS_TRUSTED_PROXIES=127.0.0.1/32")
	nodeA := startServerProcess(t, env, "--addr", "127.0.0.1:0", "--data", dir)
	baseA := "http://" + nodeA.addr
	nodeB := startServerProcess(t, env, "--addr", "127.0.0.1:0", "--data", dir, "--public-url", baseA)
	baseB := "http://" + nodeB.addr
	nodes := []string{baseA, baseB}

	const managerEmail, managerPw = "owner@twonodes.example", "Owner pass 2026!"
	r := runProcess(t, env, "", "org", "create", "twonodes", "--name", "Two nodes", "--manager-email", managerEmail, "--data", dir)
	if r.code != 0 {
		t.Fatalf("org create: %s", r)
	}
	token := tokenOf(strings.TrimSpace(r.stdout))
	if got := api(t, "POST", baseA+"/api/v1/orgs/twonodes/invitations/accept", "", map[string]string{"token": token, "name": "Owner", "password": managerPw}, nil); got != 200 {
		t.Fatalf("accept: %d", got)
	}
	first := signInFrom(t, baseA, "twonodes", "198.51.100.1", managerEmail, managerPw, nil)
	if first.status != 200 || first.device == nil {
		t.Fatalf("owner's first sign-in on node A: %d, device cookie %v", first.status, first.device)
	}
	var login loginAnswer
	json.Unmarshal([]byte(first.body), &login)

	outcomes := func(from, email string) []attemptAnswer {
		var out []attemptAnswer
		for i := range 1000 {
			out = append(out, signInFrom(t, nodes[i%2], "twonodes", from, email, "Wrong pass 1 x", nil))
		}
		return out
	}
	known := outcomes("203.0.113.7", managerEmail)
	unknown := outcomes("203.0.113.8", "nobody@twonodes.example")
	for i := range known {
		if known[i].status != unknown[i].status || known[i].body != unknown[i].body {
			t.Fatalf("attempt %d: existing account %d %s, unknown %d %s", i+1, known[i].status, known[i].body, unknown[i].status, unknown[i].body)
		}
	}
	checked := 0
	for i, a := range known {
		if a.status == 401 {
			checked++
			if i >= 4 {
				t.Errorf("attempt %d was checked after the lock", i+1)
			}
		} else if a.status != 429 {
			t.Errorf("attempt %d answered %d", i+1, a.status)
		}
	}
	if checked != 4 {
		t.Errorf("%d guesses were checked over two nodes, want 4 (threshold 5)", checked)
	}
	if known[19].retry == "" || known[999].retry == "" {
		t.Errorf("no Retry-After at the block")
	}

	// The owner, with the device cookie node A gave, signs in on node B from
	// the attacked address; an unknown browser cannot.
	if a := signInFrom(t, baseB, "twonodes", "203.0.113.7", managerEmail, managerPw, first.device); a.status != 200 {
		t.Errorf("owner with the device cookie on node B from the attacked address: %d %s", a.status, a.body)
	}
	if a := signInFrom(t, baseB, "twonodes", "198.51.100.2", managerEmail, managerPw, nil); a.status != 429 {
		t.Errorf("unknown browser with the right password on node B: %d, want 429", a.status)
	}

	// Both nodes recorded into the one chain: the lock and the blocks.
	var page struct {
		Events []struct {
			Action string `json:"action"`
		} `json:"events"`
	}
	second := signInFrom(t, baseA, "twonodes", "203.0.113.7", managerEmail, managerPw, first.device)
	json.Unmarshal([]byte(second.body), &login)
	if got := api(t, "GET", baseB+"/api/v1/orgs/twonodes/audit?limit=1000", login.Token, nil, &page); got != 200 {
		t.Fatalf("audit: %d", got)
	}
	counts := map[string]int{}
	for _, e := range page.Events {
		counts[e.Action]++
	}
	if counts["auth.locked"] != 2 || counts["auth.address_blocked"] != 2 || counts["auth.login_failed"] < 40 {
		t.Errorf("audit counts %v, want 2 locks, 2 address blocks, at least 40 failures", counts)
	}
	nodeA.terminate(t, patience)
	nodeB.terminate(t, patience)
	if r := runProcess(t, env, "", "audit", "verify", "--data", dir); r.code != 0 {
		t.Errorf("audit verify after two nodes: %s", r)
	}
}
