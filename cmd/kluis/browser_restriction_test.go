package main

import (
	"net/http"
	"strings"
	"testing"
)

// Restriction of processing and maintenance announcements in Chromium
// (issue 15; R3, R34, R40, R45; docs/UI.md): a member, in Dutch, restricts
// processing on My account, sees the state, and is refused a change of
// their profile with the page's error; the manager, in English, sees the
// state on the person's page and lifts it; the operator admin sends an
// announcement from its page and learns only how many it reached — nobody,
// since new people start opted out. Every page passes checkPage.
func TestBrowserRestrictionAndAnnouncements(t *testing.T) {
	t.Parallel()
	s := startBrowserSite(t)
	const slug = "acme"
	s.createOrgWithManager(slug)
	s.addMember(slug, browserMemEmail, browserMemName, browserMemPass)
	var login struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if got := api(t, "POST", s.base+"/api/v1/orgs/"+slug+"/login", "", map[string]string{"email": browserMemEmail, "password": browserMemPass}, &login); got != http.StatusOK || login.User.ID == "" {
		t.Fatalf("the member signs in through the API: got %d", got)
	}
	b := startBrowser(t)

	mem := b.newPerson("the member", s.base, "nl")
	signIn(mem, slug, browserMemEmail, browserMemPass)
	if got := mem.text("#restriction-state"); got != "De verwerking is niet beperkt." {
		t.Errorf("My account says %q, want that processing is not restricted", got)
	}
	if resp := mem.submit("restrict"); resp.Status != http.StatusOK || mem.path() != "/o/"+slug+"/account" {
		t.Fatalf("restrict: got %d at %s", resp.Status, mem.path())
	}
	if got := notice(mem); got != "De verwerking is beperkt." {
		t.Errorf("after restricting the notice reads %q", got)
	}
	if got := mem.text("#restriction-state"); !strings.HasPrefix(got, "De verwerking is beperkt sinds") {
		t.Errorf("My account says %q, want restricted since", got)
	}
	mem.checkPage("restriction-account-nl")
	mem.fill("form#profile [name=name]", "Mia Anders")
	if resp := mem.submit("profile"); resp.Status != http.StatusConflict {
		t.Errorf("a profile change while restricted: got %d, want 409", resp.Status)
	}
	if got := mem.text("div.alert[role=alert]"); !strings.Contains(got, "beperkt") {
		t.Errorf("the refused profile change shows %q, want the restriction named", got)
	}

	mgr := b.newPerson("the manager", s.base, "en")
	signIn(mgr, slug, browserMgrEmail, browserMgrPass)
	mgr.open("/o/" + slug + "/users/" + login.User.ID)
	if got := mgr.text("#restriction-state"); !strings.HasPrefix(got, "Processing is restricted since") {
		t.Errorf("the person's page says %q, want restricted since", got)
	}
	mgr.checkPage("restriction-user")
	if resp := mgr.submit("lift-restriction"); resp.Status != http.StatusOK {
		t.Fatalf("lift: got %d", resp.Status)
	}
	if got := notice(mgr); got != "The restriction is lifted." {
		t.Errorf("after lifting the notice reads %q", got)
	}
	if got := mgr.text("#restriction-state"); got != "Processing is not restricted." {
		t.Errorf("after lifting the person's page says %q", got)
	}

	op := b.newPerson("the operator", s.base, "en")
	signInOperator(t, op)
	op.open("/operator")
	op.click(`nav a[href="/operator/announcements"]`)
	op.fill("form#announce [name=title]", "Planned maintenance")
	op.fill("form#announce [name=body]", "Sunday 02:00 to 04:00 UTC.")
	if resp := op.submit("announce"); resp.Status != http.StatusOK {
		t.Fatalf("announce: got %d", resp.Status)
	}
	if got := op.text("#announce-sent"); got != "Sent to 0 people." {
		t.Errorf("the announcement page says %q, want nobody reached (everyone starts opted out)", got)
	}
	op.checkPage("announcements")
}
