package main

import (
	"net/http"
	"strings"
	"testing"
)

// R5 at the command line: `kluis user delete` erases one person when the
// organisation asks — their session ends, the event with the reason is in
// the organisation's chain as the command line's and the chain verifies,
// both managers get a mail that only says a notice waits, and nothing
// about the person is printed. An unknown address and the last manager
// are refused with exit 1 (not_found, conflict).
func TestUserDeleteErasesOnRequest(t *testing.T) {
	t.Parallel()
	s := startBrowserSite(t)
	s.createOrgWithManager("acme")
	base := s.base + "/api/v1/orgs/acme"
	login := func(email, pw string) string {
		var la struct {
			Token string `json:"token"`
		}
		if got := api(t, "POST", base+"/login", "", map[string]string{"email": email, "password": pw}, &la); got != http.StatusOK {
			t.Fatalf("sign in: got %d", got)
		}
		return la.Token
	}
	mgr := login(browserMgrEmail, browserMgrPass)
	const otherEmail, otherPass = "otto.other@example.com", "Other manager 2026!"
	const memEmail, memName, memPass = "erik.erased@example.com", "Erik Erased", "Member pass 2026!"
	for _, p := range [][3]string{{otherEmail, "Otto", "manager"}, {memEmail, memName, "member"}} {
		if got := api(t, "POST", base+"/users", mgr, map[string]string{"email": p[0], "name": p[1], "role": p[2]}, nil); got != http.StatusCreated {
			t.Fatalf("invite: %d", got)
		}
		pw := otherPass
		if p[0] == memEmail {
			pw = memPass
		}
		if got := api(t, "POST", base+"/invitations/accept", "", map[string]string{"token": tokenOf(s.invitationLink(p[0])), "name": p[1], "password": pw}, nil); got != http.StatusOK {
			t.Fatalf("accept: %d", got)
		}
		if p[2] == "manager" { // R8: Marie is told that Otto became a manager
			if m := waitMail(t, s.dir, s.seen, patience); !strings.Contains(m.header.Get("To"), browserMgrEmail) || !strings.Contains(m.body, "/o/acme/inbox") || strings.Contains(m.raw, "Otto") {
				t.Errorf("the new manager's notice mail: %s", m.raw)
			}
		}
	}
	mem := login(memEmail, memPass)

	const reason = "Written request 2026-31 from Acme HR"
	r := cli(t, s.env, "", "user", "delete", "--org", "acme", "--email", "nobody@example.com", "--reason", reason, "--data", s.dir)
	if r.code != 1 || !strings.Contains(r.stderr, "not_found") || strings.Contains(r.stderr, "nobody@") {
		t.Errorf("an unknown address: %s, want exit 1 not_found without the address", r)
	}
	r = mustCLI(t, s.env, "", "user", "delete", "--org", "acme", "--email", memEmail, "--reason", reason, "--data", s.dir)
	for _, secret := range []string{memEmail, memName, "erik"} {
		if strings.Contains(strings.ToLower(r.stdout+r.stderr), strings.ToLower(secret)) {
			t.Errorf("the command printed %q: %s", secret, r)
		}
	}
	if got := api(t, "GET", base+"/me", mem, nil, nil); got != http.StatusUnauthorized {
		t.Errorf("the erased person's session: got %d, want 401", got)
	}
	var got []outboxMail
	waitFor(t, patience, "the managers' mails", func() bool {
		got = append(got, readOutbox(t, s.dir, s.seen)...)
		return len(got) >= 2
	})
	for _, m := range got {
		if !strings.Contains(m.body, "/o/acme/inbox") {
			t.Errorf("the managers' mail has no inbox link: %s", m.body)
		}
		for _, secret := range []string{memEmail, memName, "2026-31", "HR"} {
			if strings.Contains(m.raw, secret) {
				t.Errorf("the managers' mail holds %q: %s", secret, m.raw)
			}
		}
	}
	var audit struct {
		Events []struct {
			Action string `json:"action"`
			Actor  string `json:"actor"`
		} `json:"events"`
	}
	if got := api(t, "GET", base+"/audit", mgr, nil, &audit); got != http.StatusOK {
		t.Fatalf("read the audit log: got %d", got)
	}
	found := false
	for _, e := range audit.Events {
		found = found || e.Action == "user.delete" && e.Actor == "cli"
	}
	if !found {
		t.Errorf("the audit log has no user.delete by cli: %+v", audit.Events)
	}
	mustCLI(t, s.env, "", "audit", "verify", "--org", "acme", "--data", s.dir)

	mustCLI(t, s.env, "", "user", "delete", "--org", "acme", "--email", otherEmail, "--reason", "asked", "--data", s.dir)
	r = cli(t, s.env, "", "user", "delete", "--org", "acme", "--email", browserMgrEmail, "--reason", "asked", "--data", s.dir)
	if r.code != 1 || !strings.Contains(r.stderr, "conflict") {
		t.Errorf("erasing the last manager: %s, want exit 1 with conflict", r)
	}
	if got := api(t, "GET", base+"/me", mgr, nil, nil); got != http.StatusOK {
		t.Errorf("the last manager after the refusal: got %d, want 200", got)
	}
	if r := cli(t, s.env, "", "user", "delete", "--org", "acme", "--email", memEmail, "--data", s.dir); r.code != 2 {
		t.Errorf("without a reason: %s, want a usage error", r)
	}
}
