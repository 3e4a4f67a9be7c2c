package main

import (
	"strings"
	"testing"
)

// The privacy pages in Chromium (issue 15, R34, docs/UI.md): a member
// reads their rights in Dutch, files a request and follows it; the
// manager finds it in the register, handles it with an outcome, and the
// member reads the outcome; both languages pass the accessibility check.
func TestBrowserPersonFilesPrivacyRequestManagerHandlesIt(t *testing.T) {
	t.Parallel()
	s := startBrowserSite(t)
	const slug = "acme"
	s.createOrgWithManager(slug)
	s.addMember(slug, browserMemEmail, browserMemName, browserMemPass)
	b := startBrowser(t)

	mem := b.newPerson("the member", s.base, "nl")
	signIn(mem, slug, browserMemEmail, browserMemPass)
	mem.clickLink("nav.nav", "Privacy & rechten")
	if got := mem.path(); got != "/o/"+slug+"/privacy" {
		t.Fatalf("the navigation's privacy link leads to %s", got)
	}
	for _, right := range []string{"access", "rectification", "erasure", "restriction", "portability", "objection", "complaint"} {
		mem.mustExist(`#rights li[data-right="` + right + `"]`)
	}
	if got := evaluate[string](mem, `document.querySelector("a#authority").href`); got != "https://autoriteitpersoonsgegevens.nl/" {
		t.Errorf("the authority's link is %q", got)
	}
	if evaluate[bool](mem, `document.querySelector("form#privacy-settings, a#go-register") !== null`) {
		t.Errorf("a member is offered the managers' settings or register")
	}
	mem.checkPage("privacy-nl")

	mem.click("a#go-requests")
	mem.mustExist("#requests-empty")
	mem.fill("select#type", "portability")
	mem.submit("file-request")
	if got := notice(mem); !strings.Contains(got, "binnen een maand") {
		t.Errorf("after filing, the notice reads %q", got)
	}
	if got := mem.text(`#requests li[data-type="portability"]`); !strings.Contains(got, "Overdraagbaarheid") || !strings.Contains(got, "Nog open") {
		t.Errorf("the filed request reads %q", got)
	}
	mem.checkPage("privacy-requests-nl")

	mgr := b.newPerson("the manager", s.base, "en")
	signIn(mgr, slug, browserMgrEmail, browserMgrPass)
	mgr.open("/o/" + slug + "/privacy")
	mgr.fill("input#contact", "privacy@acme.example")
	mgr.submit("privacy-settings")
	if got := mgr.text("#privacy-contact"); got != "privacy@acme.example" {
		t.Errorf("the contact reads %q", got)
	}
	mgr.checkPage("privacy")
	mgr.click("a#go-register")
	item := `#register li[data-type="portability"]`
	if got := mgr.text(item); !strings.Contains(got, browserMemName) || !strings.Contains(got, "nobody yet") {
		t.Errorf("the register's item reads %q", got)
	}
	mgr.checkPage("privacy-register")
	id := evaluate[string](mgr, `document.querySelector(`+js(item)+`).dataset.id`)
	mgr.fill("select#status-"+id, "done")
	mgr.fill("textarea#outcome-"+id, "Your data was sent to you as JSON.")
	mgr.submit("handle-" + id)
	if got := notice(mgr); got != "The request is updated." {
		t.Errorf("after handling, the notice reads %q", got)
	}
	if evaluate[bool](mgr, `document.querySelector(`+js(item)+`) !== null`) {
		t.Errorf("a done request is still among the open ones")
	}
	mgr.open("/o/" + slug + "/privacy/register?show=all")
	if got := mgr.text(item); !strings.Contains(got, "Done") || !strings.Contains(got, browserMgrName) {
		t.Errorf("the handled item reads %q", got)
	}

	mem.open("/o/" + slug + "/privacy/requests")
	if got := mem.text(`#requests li[data-type="portability"]`); !strings.Contains(got, "Afgehandeld") || !strings.Contains(got, "Your data was sent to you as JSON.") {
		t.Errorf("the member's request after handling reads %q", got)
	}
	mem.open("/o/" + slug + "/privacy/register")
	if got := mem.text("h1"); strings.Contains(got, "Register") {
		t.Errorf("a member opened the register: %q", got)
	}
}
