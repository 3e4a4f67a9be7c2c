package main

import (
	"net/http"
	"strings"
	"testing"
)

// Someone guesses a member's password: after five failures the account is
// locked for browsers it never signed in with, and the member's browser is
// told to wait. The manager sees the lock on the member's page and lifts
// it; when it happens again, the member lifts it through the mailed link
// (R18, docs/SECURITY.md "Brute-force protection").
func TestBrowserLockIsLiftedByTheManagerAndByMail(t *testing.T) {
	t.Parallel()
	s, mgr := signedInManager(t)
	mgr.open("/o/acme/users")
	mgr.fill("form#invite [name=email]", browserMemEmail)
	mgr.fill("form#invite [name=name]", browserMemName)
	mgr.submit("invite")
	var accepted struct {
		User userAnswer `json:"user"`
	}
	if got := api(t, "POST", s.base+"/api/v1/orgs/acme/invitations/accept", "",
		map[string]string{"token": tokenOf(s.invitationLink(browserMemEmail)), "name": browserMemName, "password": browserMemPass}, &accepted); got != http.StatusOK {
		t.Fatalf("the member accepts through the API: got %d, want 200", got)
	}
	guess := func() {
		for range 5 {
			api(t, "POST", s.base+"/api/v1/orgs/acme/login", "", map[string]string{"email": browserMemEmail, "password": "Guess 1 wrong"}, nil)
		}
	}
	guess()
	s.mailedLink(browserMemEmail, "unlock") // the first lock's link, lifted below by the manager

	mem := startBrowser(t).newPerson("the member", s.base, "en")
	mem.open("/o/acme/login")
	mem.fill("form#login [name=email]", browserMemEmail)
	mem.fill("form#login [name=password]", browserMemPass)
	if resp := mem.submit("login"); resp.Status != http.StatusTooManyRequests || resp.Headers["Retry-After"] == nil {
		t.Errorf("the right password in a new browser while locked: got %d (Retry-After %v), want 429 with Retry-After", resp.Status, resp.Headers["Retry-After"])
	}
	if got := mem.text(`[role="alert"]`); !strings.Contains(got, "Too many attempts") {
		t.Errorf("the sign-in page while locked says %q", got)
	}
	mem.checkPage("login-locked")

	mgr.open("/o/acme/users/" + accepted.User.ID)
	if got := mgr.text("#lock-state"); !strings.Contains(got, "locked") {
		t.Errorf("the member's page says %q, want the lock", got)
	}
	mgr.checkPage("user-locked")
	if resp := mgr.submit("unlock"); resp.Status != http.StatusOK || !strings.Contains(notice(mgr), "lifted") {
		t.Fatalf("lift the lock: got %d, notice %q", resp.Status, notice(mgr))
	}
	signIn(mem, "acme", browserMemEmail, browserMemPass)
	mem.submit("logout")

	// Again, and this time the member lifts it from a new browser by mail.
	guess()
	link := s.mailedLink(browserMemEmail, "unlock")
	other := startBrowser(t).newPerson("the member elsewhere", s.base, "nl")
	other.open(link)
	other.checkPage("unlock-nl")
	if resp := other.submit("unlock"); resp.Status != http.StatusOK || other.path() != "/o/acme/login" {
		t.Fatalf("lift the lock by link: got %d at %s", resp.Status, other.path())
	}
	if got := notice(other); !strings.Contains(got, "opgeheven") {
		t.Errorf("after the link the notice is %q", got)
	}
	signIn(other, "acme", browserMemEmail, browserMemPass)
}
