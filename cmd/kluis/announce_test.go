package main

import (
	"net/http"
	"strings"
	"testing"
)

// R3, R40, R45 against a running `kluis serve`: the first manager and every
// new invitee start opted out of maintenance mail; `kluis announce` reaches
// only the person who opted in — one mail in the outbox that says a notice
// waits, without the announcement's text — and the opted-out manager and
// member get nothing. It prints a count, never who; bad input is exit 1.
func TestAnnounceReachesOnlyThoseWhoOptedIn(t *testing.T) {
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
	const inEmail, outEmail, pw = "ines.in@example.com", "otto.out@example.com", "Member pass 2026!"
	tokens := map[string]string{}
	for _, email := range []string{inEmail, outEmail} {
		if got := api(t, "POST", base+"/users", mgr, map[string]string{"email": email}, nil); got != http.StatusCreated {
			t.Fatalf("invite: %d", got)
		}
		if got := api(t, "POST", base+"/invitations/accept", "", map[string]string{"token": tokenOf(s.invitationLink(email)), "name": "Someone", "password": pw}, nil); got != http.StatusOK {
			t.Fatalf("accept: %d", got)
		}
		tokens[email] = login(email, pw)
	}
	for who, token := range map[string]string{browserMgrEmail: mgr, inEmail: tokens[inEmail], outEmail: tokens[outEmail]} {
		var me struct {
			MaintenanceEmails bool `json:"maintenance_emails"`
		}
		if got := api(t, "GET", base+"/me", token, nil, &me); got != http.StatusOK || me.MaintenanceEmails {
			t.Errorf("%s: GET /me %d, maintenance_emails %v; want false by default (R40)", who, got, me.MaintenanceEmails)
		}
	}
	if got := api(t, "PATCH", base+"/me", tokens[inEmail], map[string]bool{"maintenance_emails": true}, nil); got != http.StatusOK {
		t.Fatalf("opt in: %d", got)
	}

	const title, text = "Planned maintenance", "The service is down on Sunday from 02:00 to 04:00 UTC.\nNothing is lost."
	if r := cli(t, s.env, "", "announce", "--title", title, "--body-stdin", "--data", s.dir); r.code != 1 || !strings.Contains(r.stderr, "body is required") {
		t.Errorf("an empty text: %s, want exit 1 naming the missing text", r)
	}
	r := mustCLI(t, s.env, text, "announce", "--title", title, "--body-stdin", "--data", s.dir)
	if strings.TrimSpace(r.stdout) != "sent to 1 people" {
		t.Errorf("announce printed %q, want the count", r.stdout)
	}
	m := waitMail(t, s.dir, s.seen, patience)
	if !strings.Contains(m.header.Get("To"), inEmail) || !strings.Contains(m.body, "/o/acme/inbox") {
		t.Errorf("the announcement mail went to %q with body %q, want the opted-in person and a link to the inbox", m.header.Get("To"), m.body)
	}
	for _, secret := range []string{"Sunday", "02:00", title} {
		if strings.Contains(m.raw, secret) {
			t.Errorf("the mail holds the announcement's text %q (R45): %s", secret, m.raw)
		}
	}
	if more := readOutbox(t, s.dir, s.seen); len(more) != 0 {
		t.Errorf("%d more mails, want none for the opted-out manager and member", len(more))
	}
	var inbox struct {
		Notices []struct {
			Kind  string `json:"kind"`
			Title string `json:"title"`
			Body  string `json:"body"`
		} `json:"notices"`
	}
	if got := api(t, "GET", base+"/inbox", tokens[inEmail], nil, &inbox); got != http.StatusOK || len(inbox.Notices) != 1 ||
		inbox.Notices[0].Kind != "maintenance" || inbox.Notices[0].Title != title || inbox.Notices[0].Body != text {
		t.Errorf("the opted-in person's inbox: %d %+v, want the announcement", got, inbox.Notices)
	}
	if got := api(t, "GET", base+"/inbox", tokens[outEmail], nil, &inbox); got != http.StatusOK || len(inbox.Notices) != 0 {
		t.Errorf("the opted-out person's inbox: %d %+v, want nothing", got, inbox.Notices)
	}
}
