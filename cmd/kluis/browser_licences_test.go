package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/kluistest"
)

// Licences and activity in Chromium (R13, docs/UI.md): the operator sets an
// organisation's licence on its page, a member starts and stops a project
// on the project's page, and the manager sees the period, with the
// member's name, on the licence page; the operator sees it without.

// signInOperator signs the operator in and sets up an authenticator app:
// operators must have a second factor before anything else.
func signInOperator(t *testing.T, op *person) {
	t.Helper()
	op.open("/operator/login")
	op.fill("form#login [name=email]", browserOpEmail)
	op.fill("form#login [name=password]", browserOpPassword)
	op.submit("login")
	if resp := op.submit("totp-start"); resp.Status != http.StatusOK {
		t.Fatalf("the operator starts the authenticator set-up: got %d", resp.Status)
	}
	secret := strings.ReplaceAll(op.text("#totp-secret"), " ", "")
	op.fill("form#totp-confirm [name=code]", kluistest.OATHToolCode(t, secret, time.Now()))
	if resp := op.submit("totp-confirm"); resp.Status != http.StatusOK {
		t.Fatalf("the operator confirms the authenticator: got %d", resp.Status)
	}
}

func TestBrowserLicenceAndActivity(t *testing.T) {
	t.Parallel()
	s := startBrowserSite(t)
	const slug = "acme"
	s.createOrgWithManager(slug)
	s.addMember(slug, browserMemEmail, browserMemName, browserMemPass)
	b := startBrowser(t)

	// The operator opens the organisation from the list and sets a licence.
	op := b.newPerson("the operator", s.base, "en")
	signInOperator(t, op)
	op.open("/operator")
	op.clickLink("table#orgs", "Acme")
	if got := op.path(); got != "/operator/orgs/"+slug {
		t.Fatalf("the organisation's name leads to %s, want /operator/orgs/%s", got, slug)
	}
	op.fill("form#licence [name=max_active_projects]", "1")
	op.fill("form#licence [name=max_users]", "5")
	if resp := op.submit("licence"); resp.Status != http.StatusOK || op.path() != "/operator/orgs/"+slug {
		t.Fatalf("set the licence: got %d at %s", resp.Status, op.path())
	}
	if got := op.text("table#usage"); !strings.Contains(got, "Active projects") || !strings.Contains(got, "5") {
		t.Errorf("the usage table reads %q, want the limits set", got)
	}
	op.mustExist("#no-activity")
	op.checkPage("operator-org")

	// A member creates a project and starts and stops it, in Dutch.
	mem := b.newPerson("the member", s.base, "nl")
	signIn(mem, slug, browserMemEmail, browserMemPass)
	mem.open("/o/" + slug + "/projects")
	mem.fill("form#project-create [name=name]", "Havenstudie")
	mem.submit("project-create")
	project := mem.path()
	if got := mem.text("#run-state"); got != "Het project is niet actief." {
		t.Errorf("before the start the project reads %q", got)
	}
	if resp := mem.submit("project-start"); resp.Status != http.StatusOK || mem.path() != project {
		t.Fatalf("start: got %d at %s, want 200 at %s", resp.Status, mem.path(), project)
	}
	if got := mem.text("#run-state"); !strings.HasPrefix(got, "Je startte dit project op") {
		t.Errorf("after the start the project reads %q", got)
	}
	mem.checkPage("project-running")
	if resp := mem.submit("project-stop"); resp.Status != http.StatusOK {
		t.Fatalf("stop: got %d", resp.Status)
	}
	if got := notice(mem); got != "Het project is gestopt." {
		t.Errorf("after the stop the notice reads %q", got)
	}

	// The manager finds Licence in the navigation: the period, by whom.
	mgr := b.newPerson("the manager", s.base, "en")
	signIn(mgr, slug, browserMgrEmail, browserMgrPass)
	mgr.clickLink("nav.nav", "Licence")
	if got := mgr.path(); got != "/o/"+slug+"/licence" {
		t.Fatalf("the navigation's Licence leads to %s", got)
	}
	row := mgr.text("table#activity tbody")
	if !strings.Contains(row, browserMemName) || !strings.Contains(row, "Havenstudie") || strings.Contains(row, "active now") {
		t.Errorf("the activity log reads %q, want the member, the project and an end", row)
	}
	if got := mgr.text("table#usage"); !strings.Contains(got, "Users") {
		t.Errorf("the usage table reads %q", got)
	}
	mgr.checkPage("licence")

	// The operator sees the period without the person.
	op.open("/operator/orgs/" + slug)
	got := op.text("table#activity")
	if strings.Contains(got, browserMemName) || strings.Contains(got, "Havenstudie") || strings.Count(got, ":") < 2 {
		t.Errorf("the operator's activity log reads %q, want a period without the person or the project's name", got)
	}
}
