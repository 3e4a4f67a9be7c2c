package main

import (
	"net/http"
	"strings"
	"testing"
)

// My account lists the person's live sessions — device, address, opened,
// last seen — and ends one, or every other; an ended session's browser is
// signed out at its next page, an ended API session gets 401 (R14, R21).
func TestBrowserSessionsAreListedAndEnded(t *testing.T) {
	t.Parallel()
	s, mgr := signedInManager(t)
	laptop := startBrowser(t).newPerson("the manager's laptop", s.base, "en")
	signIn(laptop, "acme", browserMgrEmail, browserMgrPass)
	var script loginAnswer
	if got := api(t, "POST", s.base+"/api/v1/orgs/acme/login", "", map[string]string{"email": browserMgrEmail, "password": browserMgrPass}, &script); got != http.StatusOK {
		t.Fatalf("sign in through the API: %d", got)
	}

	mgr.open("/o/acme/account")
	rows := evaluate[int](mgr, `document.querySelectorAll("#sessions tbody tr").length`)
	if rows != 3 {
		t.Fatalf("My account lists %d sessions, want 3", rows)
	}
	if got := mgr.text("#sessions tbody tr.current"); !strings.Contains(got, "this browser") || !strings.Contains(got, "127.0.0.1") {
		t.Errorf("the current session's row reads %q", got)
	}
	mgr.checkPage("account-sessions")

	// End one other session: the first row that is not this one.
	if resp := mgr.click("#sessions tbody tr:not(.current) form button"); resp.Status != http.StatusOK || !strings.Contains(notice(mgr), "ended") {
		t.Fatalf("end a session: got %d, notice %q", resp.Status, notice(mgr))
	}
	if got := evaluate[int](mgr, `document.querySelectorAll("#sessions tbody tr").length`); got != 2 {
		t.Errorf("after ending one, %d sessions listed, want 2", got)
	}
	if resp := mgr.submit("end-others"); resp.Status != http.StatusOK {
		t.Fatalf("end every other session: got %d", resp.Status)
	}
	if got := evaluate[int](mgr, `document.querySelectorAll("#sessions tbody tr").length`); got != 1 {
		t.Errorf("after ending the others, %d sessions listed, want 1", got)
	}
	laptop.open("/o/acme/account")
	if got := laptop.path(); got != "/o/acme/signed-out" {
		t.Errorf("the laptop's next page is %s, want /o/acme/signed-out", got)
	}
	if got := api(t, "GET", s.base+"/api/v1/orgs/acme/me", script.Token, nil, nil); got != http.StatusUnauthorized {
		t.Errorf("the API session after ending the others: %d, want 401", got)
	}
	mgr.open("/o/acme/account") // this session still works
	if got := mgr.path(); got != "/o/acme/account" {
		t.Errorf("the manager's own session ended too: at %s", got)
	}
}
