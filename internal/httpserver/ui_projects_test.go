package httpserver_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/kluistest"
)

// The project pages over real HTTP on both engines (docs/UI.md, Projects):
// what each person sees and may do, and what they must not see. The
// browser test (cmd/kluis) clicks through the same pages in Chromium, with
// real uploads.

// putFile uploads body to path in the project as the page's script does:
// PUT to the API with the browser's session cookie, from the same origin.
func putFile(tb testing.TB, a *testAPI, b *browser, slug, project, path, body string) string {
	tb.Helper()
	r := a.do(tb, request{
		method: "PUT", path: orgPath(slug, "/projects/"+project+"/files/"+path), body: body, contentType: "application/octet-stream",
		cookies: []*http.Cookie{b.cookies["__Host-kluis_session"]}, header: map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": a.srv.URL},
	})
	if r.status != 201 && r.status != 200 {
		tb.Fatalf("upload %s with the session cookie: got %v, want 201 or 200", path, r)
	}
	return strings.Trim(r.header.Get("ETag"), `"`)
}

var projectLink = regexp.MustCompile(`^/o/[a-z0-9-]+/projects/([0-9a-f-]{36})$`)

// createProjectPage creates a project through the list page's form and
// returns its id.
func createProjectPage(tb testing.TB, b *browser, slug, name string) string {
	tb.Helper()
	p := b.post(tb, "/o/"+slug+"/projects", url.Values{"name": {name}})
	m := projectLink.FindStringSubmatch(p.location())
	if p.status != http.StatusSeeOther || m == nil {
		tb.Fatalf("create a project through the page: got %d to %q, want 303 to its page", p.status, p.location())
	}
	return m[1]
}

func mustContain(tb testing.TB, what, haystack string, needles ...string) {
	tb.Helper()
	for _, n := range needles {
		if !strings.Contains(haystack, n) {
			tb.Errorf("%s: the page does not contain %q\n%s", what, n, excerpt(haystack))
		}
	}
}

// TestProjectPagesCarryAProjectFromCreationToTrashAndBack: a member creates
// a project on the list page, uploads, saves versions, compares and
// restores them, gives a colleague viewer, deletes a file and the project
// and brings it back; the colleague sees the project but no upload, and is
// refused every change with the error page in their language; someone
// without a grant gets the not-found page without the project's name
// (R2, R6, R9, R10, R11, R12).
func TestProjectPagesCarryAProjectFromCreationToTrashAndBack(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			ownerAcc := a.addUser(t, o, "member")
			colleagueAcc := a.addUser(t, o, "member")
			strangerAcc := a.addUser(t, o, "member")
			owner := signInPage(t, a, o.Slug, ownerAcc)
			colleague := signInPage(t, a, o.Slug, colleagueAcc)
			colleague.lang = "nl"
			stranger := signInPage(t, a, o.Slug, strangerAcc)
			base := "/o/" + o.Slug

			// The list: empty, a refused empty name next to its field, then
			// a project, whose creator owns it.
			p := owner.get(t, base+"/projects")
			wantPage(t, "the empty project list", p, 200, "")
			mustContain(t, "the empty project list", p.body, `id="no-projects"`, `form id="project-create"`, `href="`+base+`/projects" aria-current="page"`)
			p = owner.post(t, base+"/projects", url.Values{"name": {"  "}})
			wantPage(t, "create a project without a name", p, 400, "")
			mustContain(t, "create a project without a name", p.body, `id="name-error"`, `aria-invalid="true"`)
			name := "Dossier " + kluistest.Name("x")
			id := createProjectPage(t, owner, o.Slug, name)
			proj := base + "/projects/" + id
			p = owner.get(t, proj)
			wantPage(t, "the new project's page", p, 200, "")
			mustContain(t, "the new project's page", p.body, "The project is created", `form id="upload"`, `data-api="/api/v1/orgs/`+o.Slug+`/projects/`+id+`/files/"`,
				`<script src="/static/files.js" defer></script>`, `form id="project-rename"`, `form id="project-delete"`, `id="no-files"`)
			p = owner.get(t, base+"/projects")
			mustContain(t, "the project list", p.body, htmlEscape(name), `href="`+proj+`"`, "rename and delete")

			// Files uploaded through the API with the page's cookie are
			// listed with their size, the uploader's name and a download link.
			etag := putFile(t, a, owner, o.Slug, id, "docs/plan%20A.txt", "first plan")
			putFile(t, a, owner, o.Slug, id, "notes.txt", "notes")
			p = owner.get(t, proj)
			mustContain(t, "the project with files", p.body, "docs/plan A.txt", `href="/api/v1/orgs/`+o.Slug+`/projects/`+id+`/files/docs/plan%20A.txt"`,
				"10 bytes", htmlEscape(ownerAcc.Name), `class="file-delete"`, "No version has been saved yet")
			dl := a.do(t, request{method: "GET", path: orgPath(o.Slug, "/projects/"+id+"/files/docs/plan%20A.txt"), cookies: []*http.Cookie{owner.cookies["__Host-kluis_session"]}})
			if dl.status != 200 || string(dl.body) != "first plan" || !strings.HasPrefix(dl.header.Get("Content-Disposition"), "attachment") {
				t.Errorf("the page's download link with the session cookie: got %v %q, want 200, the bytes, as an attachment", dl, dl.header.Get("Content-Disposition"))
			}

			// Versions: saved with a message, listed newest first with their
			// author; a changed file, a new one and a removed one show in
			// the comparison; going back is a new version.
			wantPage(t, "save version 1", owner.post(t, proj+"/versions", url.Values{"message": {"First draft"}}), 303, proj+"/versions")
			putFile(t, a, owner, o.Slug, id, "docs/plan%20A.txt", "second plan, longer")
			putFile(t, a, owner, o.Slug, id, "extra.txt", "extra")
			wantPage(t, "delete a file with a stale ETag", owner.post(t, proj+"/files/delete", url.Values{"path": {"docs/plan A.txt"}, "etag": {etag}}), 412, "")
			wantPage(t, "delete a file", owner.post(t, proj+"/files/delete", url.Values{"path": {"notes.txt"}}), 303, proj)
			p = owner.get(t, proj)
			mustContain(t, "after deleting a file", p.body, "The file is deleted")
			mustNotContain(t, "after deleting a file", p.body, "notes.txt")
			wantPage(t, "save version 2", owner.post(t, proj+"/versions", url.Values{"message": {"Second draft"}}), 303, proj+"/versions")
			p = owner.get(t, proj+"/versions")
			wantPage(t, "the history", p, 200, "")
			mustContain(t, "the history", p.body, "The version is saved", "First draft", "Second draft", htmlEscape(ownerAcc.Name), `form class="restore"`, `/versions/1/zip"`)
			if i, j := strings.Index(p.body, "Second draft"), strings.Index(p.body, "First draft"); i > j {
				t.Errorf("the history shows version 1 before version 2, want newest first")
			}
			p = owner.get(t, proj+"/versions/2")
			wantPage(t, "version 2", p, 200, "")
			mustContain(t, "version 2 compared with 1", p.body, "What changed since version 1", `<ul id="added"`, "extra.txt", `<ul id="changed"`, "docs/plan A.txt", `<ul id="removed"`, "notes.txt",
				`href="/api/v1/orgs/`+o.Slug+`/projects/`+id+`/versions/2/files/extra.txt"`)
			p = owner.get(t, proj+"/versions/1")
			mustContain(t, "version 1", p.body, `id="first-version"`, "notes.txt")
			p = owner.get(t, proj+"/versions/2?against=1")
			mustContain(t, "version 2 against 1", p.body, `<ul id="added"`)
			wantPage(t, "a version that does not exist", owner.get(t, proj+"/versions/9"), 404, "")
			wantPage(t, "restore version 1", owner.post(t, proj+"/versions/1/restore", nil), 303, proj+"/versions")
			p = owner.get(t, proj+"/versions")
			mustContain(t, "after restoring", p.body, "back to version 1", `data-number="3"`)
			p = owner.get(t, proj)
			mustContain(t, "the working tree after restoring", p.body, "notes.txt")
			mustNotContain(t, "the working tree after restoring", p.body, "extra.txt")

			// Rights: the owner gives the colleague viewer; the colleague
			// sees the project, its files and versions, but no form that
			// changes anything, and is refused each change in Dutch.
			// A member cannot list the organisation's people: the owner
			// names the colleague by their e-mail address, in the form.
			wantPage(t, "give viewer to an unknown address", owner.post(t, proj+"/rights", url.Values{"email": {"nobody-" + colleagueAcc.Email}, "relation": {"viewer"}}), 400, "")
			wantPage(t, "give viewer", owner.post(t, proj+"/rights", url.Values{"email": {colleagueAcc.Email}, "relation": {"viewer"}}), 303, proj+"/rights")
			p = owner.get(t, proj+"/rights")
			mustContain(t, "the owner's rights page", p.body, "The right is given", `data-subject="user:`+colleagueAcc.ID+`" data-relation="viewer"`, `class="grant-remove"`, `id="grant-email"`)
			p = colleague.get(t, proj)
			wantPage(t, "the colleague's view", p, 200, "")
			mustContain(t, "the colleague's view", p.body, htmlEscape(name), "notes.txt", "bekijken")
			mustNotContain(t, "the colleague's view", p.body, `form id="upload"`, "files.js", `class="file-delete"`, `form id="project-rename"`, `form id="project-delete"`)
			p = colleague.get(t, proj+"/versions")
			mustNotContain(t, "the colleague's history", p.body, `form id="version-create"`, `form class="restore"`)
			p = colleague.get(t, proj+"/rights")
			mustNotContain(t, "the colleague's rights page", p.body, `form id="grant"`, `class="grant-remove"`)
			for _, f := range []struct{ path string }{{proj + "/versions"}, {proj + "/versions/1/restore"}, {proj}, {proj + "/delete"}, {proj + "/files/delete"}, {proj + "/rights"}} {
				p = colleague.post(t, f.path, url.Values{"message": {"x"}, "name": {"x"}, "path": {"notes.txt"}, "subject": {"user:" + colleagueAcc.ID}, "relation": {"owner"}})
				wantPage(t, "the viewer posts to "+f.path, p, 403, "")
				mustContain(t, "the viewer posts to "+f.path, p.body, `<html lang="nl">`, "Niet toegestaan")
			}

			// Someone without a grant: the not-found page, nothing of the
			// project on it.
			for _, path := range []string{proj, proj + "/versions", proj + "/versions/1", proj + "/rights"} {
				p = stranger.get(t, path)
				wantPage(t, "a stranger opens "+path, p, 404, "")
				mustNotContain(t, "a stranger opens "+path, p.body, htmlEscape(name), "notes.txt")
			}
			wantPage(t, "a stranger posts a version", stranger.post(t, proj+"/versions", url.Values{"message": {"x"}}), 404, "")
			p = stranger.get(t, base+"/projects")
			mustNotContain(t, "a stranger's project list", p.body, htmlEscape(name))

			// The last owner cannot go; the owner renames, deletes and
			// brings the project back.
			p = owner.post(t, proj+"/rights/remove", url.Values{"subject": {"user:" + ownerAcc.ID}})
			wantPage(t, "remove the last owner", p, 409, "")
			mustContain(t, "remove the last owner", p.body, `role="alert"`, "at least one owner")
			p = owner.post(t, proj, url.Values{"name": {""}})
			wantPage(t, "rename to nothing", p, 400, "")
			mustContain(t, "rename to nothing", p.body, `id="name-error"`)
			wantPage(t, "rename", owner.post(t, proj, url.Values{"name": {name + " II"}}), 303, proj)
			wantPage(t, "delete the project", owner.post(t, proj+"/delete", nil), 303, base+"/trash")
			p = owner.get(t, base+"/trash")
			wantPage(t, "the trash", p, 200, "")
			mustContain(t, "the trash", p.body, "The project is in the trash", htmlEscape(name+" II"), `action="`+proj+`/undelete"`)
			wantPage(t, "the deleted project", owner.get(t, proj), 404, "")
			p = colleague.get(t, base+"/trash")
			mustNotContain(t, "the viewer's trash", p.body, htmlEscape(name))
			wantPage(t, "the viewer brings it back", colleague.post(t, proj+"/undelete", nil), 403, "")
			wantPage(t, "the owner brings it back", owner.post(t, proj+"/undelete", nil), 303, proj)
			p = owner.get(t, proj)
			mustContain(t, "the project back", p.body, "The project is back", "notes.txt")
		})
	}
}

// TestProjectPagesForManagersNamePeopleAndGroups: a manager's rights page
// names people and groups and offers them all; the groups page creates a
// group, adds and removes a member and deletes it; members get the
// refusal (R2, R7).
func TestProjectPagesForManagersNamePeopleAndGroups(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			memAcc := a.addUser(t, o, "member")
			mgr := signInPage(t, a, o.Slug, o.Manager)
			mem := signInPage(t, a, o.Slug, memAcc)
			base := "/o/" + o.Slug

			p := mem.get(t, base+"/groups")
			wantPage(t, "a member opens the groups", p, 403, "")
			mustNotContain(t, "a member's navigation", mem.get(t, base+"/projects").body, base+"/groups")

			p = mgr.get(t, base+"/groups")
			wantPage(t, "the groups page", p, 200, "")
			mustContain(t, "the groups page", p.body, `id="no-groups"`, `form id="group-create"`, `href="`+base+`/groups" aria-current="page"`)
			wantPage(t, "a group without a name", mgr.post(t, base+"/groups", url.Values{"name": {""}}), 400, "")
			groupName := "Reviewers " + kluistest.Name("g")
			wantPage(t, "create a group", mgr.post(t, base+"/groups", url.Values{"name": {groupName}}), 303, base+"/groups")
			p = mgr.get(t, base+"/groups")
			group := regexp.MustCompile(`data-group="([0-9a-f-]{36})"`).FindStringSubmatch(p.body)
			if group == nil {
				t.Fatalf("the groups page after creating one has no group\n%s", excerpt(p.body))
			}
			mustContain(t, "the groups page with a group", p.body, htmlEscape(groupName), `<option value="`+memAcc.ID+`">`+htmlEscape(memAcc.Name))
			wantPage(t, "add a member", mgr.post(t, base+"/groups/"+group[1]+"/members", url.Values{"user": {memAcc.ID}}), 303, base+"/groups")
			p = mgr.get(t, base+"/groups")
			mustContain(t, "the group with a member", p.body, "Added to the group", `action="`+base+`/groups/`+group[1]+`/members/`+memAcc.ID+`/remove"`)

			// The manager's rights page names the people and the group.
			id := createProjectPage(t, mem, o.Slug, "Shared "+kluistest.Name("p"))
			proj := base + "/projects/" + id
			wantPage(t, "the manager gives the group editor", mgr.post(t, proj+"/rights", url.Values{"subject": {"group:" + group[1]}, "relation": {"editor"}}), 303, proj+"/rights")
			p = mgr.get(t, proj+"/rights")
			wantPage(t, "the manager's rights page", p, 200, "")
			mustContain(t, "the manager's rights page", p.body, htmlEscape(memAcc.Name), "Group "+htmlEscape(groupName), `<option value="group:`+group[1]+`"`, `<option value="user:`+memAcc.ID+`"`)
			p = mem.get(t, proj+"/rights")
			mustContain(t, "the owner's rights page", p.body, htmlEscape(memAcc.Name), "a group", `id="grant-email"`)
			mustNotContain(t, "the owner's rights page", p.body, htmlEscape(groupName), htmlEscape(o.Manager.Name))

			wantPage(t, "remove the member", mgr.post(t, base+"/groups/"+group[1]+"/members/"+memAcc.ID+"/remove", nil), 303, base+"/groups")
			wantPage(t, "a member deletes the group", mem.post(t, base+"/groups/"+group[1]+"/delete", nil), 403, "")
			wantPage(t, "delete the group", mgr.post(t, base+"/groups/"+group[1]+"/delete", nil), 303, base+"/groups")
			p = mgr.get(t, base+"/groups")
			mustContain(t, "after deleting the group", p.body, "The group is deleted", `id="no-groups"`)
		})
	}
}

// TestProjectPagesListThirtyAtATime: the list pages with ?after=, 30
// projects a page.
func TestProjectPagesListThirtyAtATime(t *testing.T) {
	a := newTestAPI(t, kluistest.Engines[0])
	o := a.newOrg(t)
	for i := range 31 {
		wantStatus(t, "create a project", a.call(t, "POST", orgPath(o.Slug, "/projects"), o.Manager.Token, map[string]string{"name": fmt.Sprintf("Project %02d", i)}), 201)
	}
	b := signInPage(t, a, o.Slug, o.Manager)
	p := b.get(t, "/o/"+o.Slug+"/projects")
	rows := regexp.MustCompile(`<tr data-id="([^"]+)"`)
	seen := map[string]bool{}
	for _, m := range rows.FindAllStringSubmatch(p.body, -1) {
		seen[m[1]] = true
	}
	if len(seen) != 30 {
		t.Errorf("the first page lists %d projects, want 30", len(seen))
	}
	next := regexp.MustCompile(`<a id="next" href="([^"]+)"`).FindStringSubmatch(p.body)
	if next == nil {
		t.Fatalf("the first page of 31 projects has no next link")
	}
	p = b.get(t, strings.ReplaceAll(next[1], "&amp;", "&"))
	wantPage(t, "the second page", p, 200, "")
	second := rows.FindAllStringSubmatch(p.body, -1)
	if len(second) != 1 || seen[second[0][1]] {
		t.Errorf("the second page lists %q, want the one project the first page did not", second)
	}
	mustNotContain(t, "the last page", p.body, `id="next"`)
	wantPage(t, "a malformed cursor", b.get(t, "/o/"+o.Slug+"/projects?after=x"), 400, "")
}
