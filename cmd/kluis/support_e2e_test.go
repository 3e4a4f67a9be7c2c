package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/kluistest"
)

// TestSupportEndsOnEveryNode (R22): two `kluis serve` processes on one
// PostgreSQL. Support opens a session on node A through a manager's grant
// and works on node B with it; the manager revokes on node A and node B
// answers not_found at the very next request. A second grant's end is
// passed (its row's end moved to the past, as the clock would): node B
// refuses it at once too. Nothing is cached on a node.
func TestSupportEndsOnEveryNode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dsn := kluistest.PostgresDSN(t)
	env := processEnv("KLUIS_DB="+dsn, "KLUIS_KEYS_DB="+kluistest.PostgresDSN(t))
	nodeA := startServerProcess(t, env, "--addr", "127.0.0.1:0", "--data", dir)
	baseA := "http://" + nodeA.addr
	nodeB := startServerProcess(t, env, "--addr", "127.0.0.1:0", "--data", dir, "--public-url", baseA)
	baseB := "http://" + nodeB.addr

	const managerEmail, managerPw = "boss@supportnodes.example", "Manager pass 2026!"
	const supportEmail, supportPw = "sam.support@operator.example", "Support pass 2026!!"
	r := runProcess(t, env, "", "org", "create", "supportnodes", "--name", "Support nodes", "--manager-email", managerEmail, "--data", dir)
	if r.code != 0 {
		t.Fatalf("org create: %s", r)
	}
	if got := api(t, "POST", baseA+"/api/v1/orgs/supportnodes/invitations/accept", "", map[string]string{"token": tokenOf(strings.TrimSpace(r.stdout)), "name": "Boss", "password": managerPw}, nil); got != 200 {
		t.Fatalf("accept: %d", got)
	}
	var manager loginAnswer
	if got := api(t, "POST", baseA+"/api/v1/orgs/supportnodes/login", "", map[string]string{"email": managerEmail, "password": managerPw}, &manager); got != 200 {
		t.Fatalf("manager login: %d", got)
	}
	if r := runProcess(t, env, supportPw+"\n", "operator", "create", "--email", supportEmail, "--name", "Sam", "--role", "support", "--password-stdin", "--data", dir); r.code != 0 {
		t.Fatalf("operator create --role support: %s", r)
	}
	var op loginAnswer
	if got := api(t, "POST", baseA+"/api/v1/operator/login", "", map[string]string{"email": supportEmail, "password": supportPw}, &op); got != 200 {
		t.Fatalf("operator login: %d", got)
	}
	var totp struct {
		Secret     string `json:"secret"`
		OTPAuthURL string `json:"otpauth_url"`
	}
	if got := api(t, "POST", baseA+"/api/v1/operator/me/totp", op.Token, nil, &totp); got != 200 {
		t.Fatalf("operator TOTP: %d", got)
	}
	if got := api(t, "POST", baseA+"/api/v1/operator/me/totp/confirm", op.Token, map[string]string{"code": kluistest.OATHToolCode(t, totp.Secret, time.Now())}, nil); got != 200 {
		t.Fatalf("operator TOTP confirm: %d", got)
	}

	grant := func(hours int) string {
		t.Helper()
		var g struct {
			Grant struct {
				ID string `json:"id"`
			} `json:"grant"`
		}
		if got := api(t, "POST", baseA+"/api/v1/orgs/supportnodes/support-grants", manager.Token, map[string]any{
			"scope": "org", "right": "view", "reason": "ticket 12", "expires_at": time.Now().Add(time.Duration(hours) * time.Hour)}, &g); got != 201 {
			t.Fatalf("grant: %d", got)
		}
		return g.Grant.ID
	}
	open := func(id string) string {
		t.Helper()
		var s struct {
			Token     string    `json:"token"`
			ExpiresAt time.Time `json:"expires_at"`
		}
		if got := api(t, "POST", baseA+"/api/v1/operator/orgs/supportnodes/support-session", op.Token, map[string]string{"grant": id}, &s); got != 200 {
			t.Fatalf("support session: %d", got)
		}
		return s.Token
	}
	users := func(base, token string) int {
		return api(t, "GET", base+"/api/v1/orgs/supportnodes/users", token, nil, nil)
	}

	first := grant(24)
	token := open(first)
	if got := users(baseB, token); got != http.StatusOK {
		t.Fatalf("support on node B: %d, want 200", got)
	}
	if got := api(t, "DELETE", baseA+"/api/v1/orgs/supportnodes/support-grants/"+first, manager.Token, nil, nil); got != http.StatusNoContent {
		t.Fatalf("revoke on node A: %d", got)
	}
	if got := users(baseB, token); got != http.StatusNotFound {
		t.Fatalf("node B after the revocation on node A: %d, want 404 at once", got)
	}

	second := grant(24)
	token = open(second)
	if got := users(baseB, token); got != http.StatusOK {
		t.Fatalf("second grant on node B: %d", got)
	}
	// The grant's end passes: what the clock would do in a day, done to
	// its row, seen by node B's own clock at the next request.
	if got := queryStrings(t, "postgres", dir, dsn, `UPDATE support_grants SET expires_at = expires_at - 86400000000 WHERE id = '`+second+`' RETURNING id`); len(got) != 1 {
		t.Fatalf("moving the grant's end: %v", got)
	}
	if got := users(baseB, token); got != http.StatusNotFound {
		t.Fatalf("node B after the grant's end: %d, want 404 at once", got)
	}
	if got := users(baseA, token); got != http.StatusNotFound {
		t.Fatalf("node A after the grant's end: %d, want 404", got)
	}
}
