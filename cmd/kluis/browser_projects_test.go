package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The project pages in Chromium (docs/UI.md, Projects): uploads through
// the real file input and by dropping, versions, comparing and going back,
// the trash, rights and groups — in English for the manager and in Dutch
// for the colleague who may only view. Every page passes checkPage.

// addMember invites a member through the API as the organisation's manager
// and accepts the invitation through the API: the setup of a colleague.
func (s *browserSite) addMember(slug, email, name, password string) {
	s.t.Helper()
	var login struct {
		Token string `json:"token"`
	}
	if got := api(s.t, "POST", s.base+"/api/v1/orgs/"+slug+"/login", "", map[string]string{"email": browserMgrEmail, "password": browserMgrPass}, &login); got != http.StatusOK {
		s.t.Fatalf("the manager signs in through the API: got %d, want 200", got)
	}
	if got := api(s.t, "POST", s.base+"/api/v1/orgs/"+slug+"/users", login.Token, map[string]string{"email": email, "name": name, "role": "member"}, nil); got != http.StatusCreated {
		s.t.Fatalf("invite %s through the API: got %d, want 201", email, got)
	}
	link := s.invitationLink(email)
	if got := api(s.t, "POST", s.base+"/api/v1/orgs/"+slug+"/invitations/accept", "",
		map[string]string{"token": tokenOf(link), "name": name, "password": password}, nil); got != http.StatusOK {
		s.t.Fatalf("accept %s's invitation through the API: got %d, want 200", email, got)
	}
}

// writeFile writes a file for an upload into dir and returns its path.
func writeFile(t *testing.T, dir, name string, body []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, body, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// upload chooses files in the project page's file input, as a person does
// in the file dialog, and sends the form; the page's script sends each file
// to the API and loads the page again, which this returns.
func upload(p *person, files ...string) *network.Response {
	p.t.Helper()
	p.mustExist("form#upload #upload-file")
	p.do("choose the files", chromedp.SetUploadFiles(chromedp.CSS("#upload-file"), files))
	return p.submit("upload")
}

// fileNames returns the paths table#files lists.
func fileNames(p *person) []string {
	p.t.Helper()
	return evaluate[[]string](p, `[...document.querySelectorAll("table#files tbody tr")].map(tr => tr.dataset.path)`)
}

// fetchText downloads href in the page, with its cookies, and returns the
// body and the Content-Disposition.
func fetchText(p *person, href string) (body, disposition string) {
	p.t.Helper()
	r := evaluate[[]string](p, `fetch(`+js(href)+`).then(r => r.text().then(t => [t, r.headers.get("Content-Disposition") || "", String(r.status)]))`, chromedp.EvalAwaitPromise)
	if len(r) != 3 || r[2] != "200" {
		p.t.Fatalf("%s: download %s: got %q, want 200", p.name, href, r)
	}
	return r[0], r[1]
}

// downloadHref returns the download link of path in table#files.
func downloadHref(p *person, path string) string {
	p.t.Helper()
	href := evaluate[string](p, `(tr => tr ? tr.querySelector("a[download]").getAttribute("href") : "")([...document.querySelectorAll("table#files tbody tr")].find(tr => tr.dataset.path === `+js(path)+`))`)
	if href == "" {
		p.t.Fatalf("%s: table#files on %s has no download link for %s", p.name, p.location(), path)
	}
	return href
}

func TestBrowserProjectFilesVersionsAndRightsInBothLanguages(t *testing.T) {
	t.Parallel()
	s := startBrowserSite(t)
	const slug = "acme"
	s.createOrgWithManager(slug)
	s.addMember(slug, browserMemEmail, browserMemName, browserMemPass)
	b := startBrowser(t)
	dir := t.TempDir()

	// The manager finds Projects in the navigation and creates one.
	mgr := b.newPerson("the manager", s.base, "en")
	signIn(mgr, slug, browserMgrEmail, browserMgrPass)
	mgr.clickLink("nav.nav", "Projects")
	if got := mgr.path(); got != "/o/"+slug+"/projects" {
		t.Fatalf("the navigation's Projects leads to %s, want /o/%s/projects", got, slug)
	}
	mgr.mustExist("#no-projects")
	mgr.checkPage("projects-empty")
	const name = "Harbour study"
	mgr.fill("form#project-create [name=name]", name)
	if resp := mgr.submit("project-create"); resp.Status != http.StatusOK || !regexp.MustCompile(`^/o/acme/projects/[0-9a-f-]{36}$`).MatchString(mgr.path()) {
		t.Fatalf("create a project: got %d at %s, want 200 at its page", resp.Status, mgr.path())
	}
	project := mgr.path()
	if got := notice(mgr); !strings.Contains(got, "created") {
		t.Errorf("after creating the project the notice reads %q, want it to say so", got)
	}
	mgr.checkPage("project-new")

	// Two files through the real file input, one of them large enough for
	// the progress bar to move; the bar's values are kept in the tab's
	// session storage, which outlives the page's reload.
	plan := writeFile(t, dir, "plan.txt", []byte("first plan"))
	big := writeFile(t, dir, "survey.bin", bytes.Repeat([]byte("harbour "), 1<<19)) // 4 MiB
	evaluate[bool](mgr, `(bar => { new MutationObserver(() => sessionStorage.setItem("progress",
		(sessionStorage.getItem("progress") || "") + " " + bar.value)).observe(bar, {attributes: true}); return true })(document.getElementById("upload-progress"))`)
	if resp := upload(mgr, plan, big); resp.Status != http.StatusOK || mgr.path() != project {
		t.Fatalf("upload two files: got %d at %s, want 200 at %s", resp.Status, mgr.path(), project)
	}
	if got := notice(mgr); got != "Uploaded." {
		t.Errorf("after the upload the notice reads %q, want Uploaded.", got)
	}
	if got := fileNames(mgr); strings.Join(got, ",") != "plan.txt,survey.bin" {
		t.Errorf("table#files lists %q after the upload, want plan.txt and survey.bin", got)
	}
	if got := mgr.text("table#files"); !strings.Contains(got, browserMgrName) || !strings.Contains(got, "4.2 MB") {
		t.Errorf("table#files reads %q, want the uploader's name and the size 4.2 MB", got)
	}
	progress := strings.Fields(evaluate[string](mgr, `sessionStorage.getItem("progress") || ""`))
	if len(progress) < 2 || progress[len(progress)-1] != "100" {
		t.Errorf("the progress bar showed %q during the upload, want it to move up to 100", progress)
	}
	body, disposition := fetchText(mgr, downloadHref(mgr, "plan.txt"))
	if body != "first plan" || !strings.HasPrefix(disposition, "attachment") {
		t.Errorf("the download link gives %q with Content-Disposition %q, want the file as an attachment", body, disposition)
	}
	mgr.checkPage("project-files")

	// A file dropped on the page goes in too.
	mgr.call("drop a file on the page", func(ctx context.Context) error {
		_, err := chromedp.RunResponse(ctx, chromedp.Evaluate[chromedp.Void](`(() => {
			const dt = new DataTransfer();
			dt.items.add(new File(["dropped notes"], "notes.txt", {type: "text/plain"}));
			document.querySelector("main").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
		})()`))
		return err
	})
	if got := fileNames(mgr); strings.Join(got, ",") != "notes.txt,plan.txt,survey.bin" {
		t.Errorf("table#files lists %q after dropping notes.txt, want it among them", got)
	}

	// Version 1, then a changed file and version 2.
	mgr.clickLink("nav.tabs", "Versions")
	mgr.mustExist("#no-versions")
	mgr.fill("form#version-create [name=message]", "First draft")
	if resp := mgr.submit("version-create"); resp.Status != http.StatusOK || mgr.path() != project+"/versions" {
		t.Fatalf("save version 1: got %d at %s", resp.Status, mgr.path())
	}
	mgr.open(project)
	writeFile(t, dir, "plan.txt", []byte("second plan, longer"))
	upload(mgr, plan)
	mgr.clickLink("nav.tabs", "Versions")
	mgr.fill("form#version-create [name=message]", "Second draft")
	mgr.submit("version-create")
	if got := notice(mgr); !strings.Contains(got, "saved") {
		t.Errorf("after saving a version the notice reads %q", got)
	}
	rows := evaluate[[]string](mgr, `[...document.querySelectorAll("table#versions tbody tr")].map(tr => tr.dataset.number + " " + tr.innerText.replace(/\s+/g, " "))`)
	if len(rows) != 2 || !strings.HasPrefix(rows[0], "2 ") || !strings.Contains(rows[0], "Second draft") || !strings.Contains(rows[1], "First draft") || !strings.Contains(rows[1], browserMgrName) {
		t.Errorf("table#versions reads %q, want version 2 then 1, with messages and the author (R11)", rows)
	}
	mgr.checkPage("versions")

	// Comparing 2 with the one before: plan.txt changed.
	mgr.click(`table#versions tr[data-number="2"] a.compare`)
	if got := mgr.text("#changed"); got != "plan.txt" {
		t.Errorf("version 2 compared with 1 lists %q as changed, want plan.txt", got)
	}
	mgr.mustExist(`#version-files`)
	mgr.checkPage("version-diff")

	// Going back to version 1 is version 3.
	mgr.clickLink("nav.tabs", "Versions")
	if resp := mgr.click(`table#versions tr[data-number="1"] form.restore button`); resp.Status != http.StatusOK || mgr.path() != project+"/versions" {
		t.Fatalf("restore version 1: got %d at %s", resp.Status, mgr.path())
	}
	if got := mgr.text(`table#versions tr[data-number="3"]`); !strings.Contains(got, "back to version 1") {
		t.Errorf("version 3 reads %q, want it marked as going back to version 1", got)
	}
	mgr.open(project)
	if body, _ := fetchText(mgr, downloadHref(mgr, "plan.txt")); body != "first plan" {
		t.Errorf("after going back to version 1, plan.txt holds %q, want the first plan", body)
	}

	// The manager makes the colleague a viewer.
	mgr.clickLink("nav.tabs", "Rights")
	mgr.fillByLabel("form#grant [name=subject]", browserMemName)
	mgr.fill("form#grant [name=relation]", "viewer")
	if resp := mgr.submit("grant"); resp.Status != http.StatusOK || mgr.path() != project+"/rights" {
		t.Fatalf("give viewer: got %d at %s", resp.Status, mgr.path())
	}
	if got := mgr.text("table#grants"); !strings.Contains(got, browserMemName) || !strings.Contains(got, browserMgrName) {
		t.Errorf("table#grants reads %q, want the colleague and the manager by name", got)
	}
	mgr.checkPage("rights")

	// The colleague, in Dutch, sees the project and its history, but
	// nothing that changes them; a change they try anyway is refused with
	// the error page in Dutch.
	mem := b.newPerson("the colleague", s.base, "nl")
	signIn(mem, slug, browserMemEmail, browserMemPass)
	mem.clickLink("nav.nav", "Projecten")
	mem.checkPage("projects-nl")
	mem.clickLink("table#projects", name)
	if got := mem.path(); got != project {
		t.Fatalf("the colleague's link leads to %s, want %s", got, project)
	}
	for _, absent := range []string{"form#upload", "form.file-delete", "form#project-rename", "form#project-delete"} {
		if evaluate[bool](mem, `document.querySelector(`+js(absent)+`) !== null`) {
			t.Errorf("the viewer's project page has %s, want none", absent)
		}
	}
	if got := fileNames(mem); len(got) != 3 {
		t.Errorf("the viewer's project page lists %q, want the three files", got)
	}
	if got := mem.text("#may"); !strings.Contains(got, "bekijken") || strings.Contains(got, "bewerken") {
		t.Errorf("the viewer's page says %q about what they may, want bekijken only", got)
	}
	mem.checkPage("project-nl-viewer")
	mem.clickLink("nav.tabs", "Versies")
	if evaluate[bool](mem, `document.querySelector("form#version-create, form.restore") !== null`) {
		t.Errorf("the viewer's history offers saving or going back, want neither")
	}
	mem.checkPage("versions-nl-viewer")
	var resp *network.Response
	mem.call("post a restore anyway", func(ctx context.Context) error {
		var err error
		resp, err = chromedp.RunResponse(ctx, chromedp.Evaluate[chromedp.Void](`(() => {
			const f = document.createElement("form"); f.method = "post"; f.action = `+js(project+"/versions/1/restore")+`;
			document.body.append(f); f.submit(); })()`))
		return err
	})
	if resp == nil || resp.Status != http.StatusForbidden || mem.lang() != "nl" || mem.text("h1") != "Niet toegestaan" {
		t.Errorf("the viewer's restore: got %v with heading %q, want 403 Niet toegestaan", resp, mem.text("h1"))
	}

	// The trash: the manager deletes the project and brings it back.
	mgr.open(project)
	if resp := mgr.submit("project-delete"); resp.Status != http.StatusOK || mgr.path() != "/o/"+slug+"/trash" {
		t.Fatalf("delete the project: got %d at %s", resp.Status, mgr.path())
	}
	if got := mgr.text("table#trash"); !strings.Contains(got, name) {
		t.Errorf("table#trash reads %q, want %s with its purge date", got, name)
	}
	mgr.checkPage("trash")
	if resp := mem.open(project); resp.Status != http.StatusNotFound {
		t.Errorf("the viewer opens the deleted project: got %d, want 404", resp.Status)
	}
	if resp := mgr.click("table#trash form.undelete button"); resp.Status != http.StatusOK || mgr.path() != project {
		t.Fatalf("bring the project back: got %d at %s", resp.Status, mgr.path())
	}
	if got := notice(mgr); !strings.Contains(got, "back") {
		t.Errorf("after bringing it back the notice reads %q", got)
	}

	// Groups: the manager makes one with the colleague in it.
	mgr.clickLink("nav.nav", "Groups")
	mgr.fill("form#group-create [name=name]", "Reviewers")
	mgr.submit("group-create")
	mgr.fillByLabel("form.member-add select", browserMemName)
	if resp := mgr.click("form.member-add button"); resp.Status != http.StatusOK {
		t.Fatalf("add the colleague to the group: got %d", resp.Status)
	}
	if got := mgr.text("section.group ul.members"); !strings.Contains(got, browserMemName) {
		t.Errorf("the group's members read %q, want %s", got, browserMemName)
	}
	mgr.checkPage("groups")
}
