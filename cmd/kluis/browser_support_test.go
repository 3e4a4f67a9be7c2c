package main

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/kluis/kluis/internal/i18n"
	"github.com/kluis/kluis/internal/kluistest"
)

// Support access by the customer's consent in Chromium (R22, R8, docs/UI.md):
// an operator of role support asks an organisation for view access from the
// organisations list; a manager approves it on the organisation's support
// page; support opens a support session and works on the organisation's
// pages under the banner, with exactly the grant's rights and never on a
// person's own pages; the manager sees that support is in, and every page
// support opened, and ends it; support's next page ends at the operator's
// start page. The admin operator sees each operator's role and last
// sign-in. Every page reached passes checkPage; the whole walk runs twice,
// support in Dutch with the manager in English and the other way round.

const (
	browserSupportEmail = "sam.support@example.com"
	browserSupportName  = "Sam Support"
	browserSupportPass  = "Support pass 2026!"
)

// signInOperatorAs signs an operator in on the operator's sign-in page and
// sets up their authenticator app, which operators must have before
// anything else (R17).
func signInOperatorAs(t *testing.T, op *person, email, password string) {
	t.Helper()
	op.open("/operator/login")
	op.fill("form#login [name=email]", email)
	op.fill("form#login [name=password]", password)
	op.submit("login")
	if resp := op.submit("totp-start"); resp.Status != http.StatusOK {
		t.Fatalf("%s starts the authenticator set-up: got %d", op.name, resp.Status)
	}
	secret := strings.ReplaceAll(op.text("#totp-secret"), " ", "")
	op.fill("form#totp-confirm [name=code]", kluistest.OATHToolCode(t, secret, time.Now()))
	if resp := op.submit("totp-confirm"); resp.Status != http.StatusOK {
		t.Fatalf("%s confirms the authenticator: got %d", op.name, resp.Status)
	}
}

// postForm sends a form the page does not offer, as a person could with the
// browser's tools, and returns the answer.
func postForm(p *person, action string, fields map[string]string) *network.Response {
	p.t.Helper()
	var resp *network.Response
	p.call("post "+action, func(ctx context.Context) error {
		var err error
		resp, err = chromedp.RunResponse(ctx, chromedp.Evaluate[chromedp.Void](`((action, fields) => {
			const f = document.createElement("form"); f.method = "post"; f.action = action;
			for (const [k, v] of Object.entries(fields)) { const i = document.createElement("input"); i.type = "hidden"; i.name = k; i.value = v; f.append(i); }
			document.body.append(f); f.submit(); })(`+js(action)+`, `+js(fields)+`)`))
		return err
	})
	if resp == nil {
		p.t.Fatalf("%s: post %s: no response", p.name, action)
	}
	return resp
}

// navLabels returns the labels of the page's navigation, in order.
func navLabels(p *person) []string {
	p.t.Helper()
	return evaluate[[]string](p, `[...document.querySelectorAll("nav.nav ul a")].map(a => a.innerText.trim())`)
}

// hasCookie reports whether the person's browser holds the cookie name for
// the site.
func hasCookie(p *person, name string) bool {
	p.t.Helper()
	var found bool
	p.call("read the cookies", func(ctx context.Context) error {
		res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{p.base + "/"}})
		if err != nil {
			return err
		}
		for _, c := range res.Cookies {
			found = found || c.Name == name
		}
		return nil
	})
	return found
}

func TestBrowserSupportAccessByConsent(t *testing.T) {
	t.Parallel()
	for _, langs := range [][2]i18n.Lang{{i18n.NL, i18n.EN}, {i18n.EN, i18n.NL}} {
		sup, man := langs[0], langs[1]
		t.Run("support-"+string(sup)+"-manager-"+string(man), func(t *testing.T) {
			t.Parallel()
			supportAccessByConsent(t, sup, man)
		})
	}
}

func supportAccessByConsent(t *testing.T, supLang, mgrLang i18n.Lang) {
	// 1. An organisation with a manager, and a member who owns a project
	// with a file; an operator of role support next to the admin the site
	// starts with.
	s := startBrowserSite(t)
	const slug = "acme"
	s.createOrgWithManager(slug)
	s.addMember(slug, browserMemEmail, browserMemName, browserMemPass)
	mustCLI(t, s.env, browserSupportPass+"\n", "operator", "create", "--role", "support", "--email", browserSupportEmail,
		"--name", browserSupportName, "--password-stdin", "--data", s.dir)
	var login struct {
		Token string `json:"token"`
	}
	if got := api(t, "POST", s.base+"/api/v1/orgs/"+slug+"/login", "", map[string]string{"email": browserMemEmail, "password": browserMemPass}, &login); got != http.StatusOK {
		t.Fatalf("the member signs in through the API: got %d, want 200", got)
	}
	const projectName = "Harbour study"
	var created struct {
		Project struct{ ID string } `json:"project"`
	}
	if got := api(t, "POST", s.base+"/api/v1/orgs/"+slug+"/projects", login.Token, map[string]string{"name": projectName}, &created); got != http.StatusCreated {
		t.Fatalf("the member creates a project: got %d, want 201", got)
	}
	req, err := http.NewRequest("PUT", s.base+"/api/v1/orgs/"+slug+"/projects/"+created.Project.ID+"/files/plan.txt", strings.NewReader("the harbour plan"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+login.Token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("the member uploads plan.txt: got %d, want 201", resp.StatusCode)
	}
	project := "/o/" + slug + "/projects/" + created.Project.ID
	b := startBrowser(t)
	shot := func(name string, l i18n.Lang) string { return "support-" + name + "-" + string(l) }
	T := func(l i18n.Lang, key string, args ...any) string { return l.T(key, args...) }

	// 2. Support signs in, finds Support access on the organisations list
	// and asks for view access to the whole organisation, with a reason.
	sup := b.newPerson("support", s.base, string(supLang))
	signInOperatorAs(t, sup, browserSupportEmail, browserSupportPass)
	sup.open("/operator")
	if slices.Contains(navLabels(sup), T(supLang, "nav.operators")) {
		t.Errorf("support's navigation reads %q, want no %s (admins only, R8)", navLabels(sup), T(supLang, "nav.operators"))
	}
	sup.checkPage(shot("operator-orgs", supLang))
	sup.clickLink("table#orgs", T(supLang, "orgs.support_go"))
	if got := sup.path(); got != "/operator/orgs/"+slug+"/support" {
		t.Fatalf("the Support access link leads to %s, want /operator/orgs/%s/support", got, slug)
	}
	if got := sup.value("form#support-request [name=scope]"); got != "org" {
		t.Errorf("the request form's scope starts as %q, want org", got)
	}
	sup.checkPage(shot("operator-empty", supLang))
	const reason = "Ticket 4711: the harbour plan will not open"
	sup.fill("form#support-request [name=right]", "view")
	sup.fill("form#support-request [name=reason]", reason)
	if resp := sup.submit("support-request"); resp.Status != http.StatusOK || sup.path() != "/operator/orgs/"+slug+"/support" {
		t.Fatalf("ask for access: got %d at %s", resp.Status, sup.path())
	}
	if got := notice(sup); got != T(supLang, "notice.support_requested") {
		t.Errorf("after asking the notice reads %q, want %q", got, T(supLang, "notice.support_requested"))
	}
	if got := sup.text("#op-requests"); !strings.Contains(got, T(supLang, "support.request.open")) {
		t.Errorf("support's requests read %q, want the request as %q", got, T(supLang, "support.request.open"))
	}
	sup.checkPage(shot("operator-asked", supLang))

	// 3. The manager signs in (so the authentication is fresh), finds the
	// request on the support page, and approves it for one day.
	mgr := b.newPerson("the manager", s.base, string(mgrLang))
	signIn(mgr, slug, browserMgrEmail, browserMgrPass)
	mgr.clickLink("nav.nav", T(mgrLang, "nav.support"))
	if got := mgr.path(); got != "/o/"+slug+"/support" {
		t.Fatalf("the navigation's support link leads to %s", got)
	}
	mgr.mustExist("#no-grants")
	if got := mgr.text("table#support-requests tbody"); !strings.Contains(got, reason) || !strings.Contains(got, T(mgrLang, "support.right.view")) {
		t.Errorf("the requests read %q, want the reason and %q", got, T(mgrLang, "support.right.view"))
	}
	mgr.checkPage(shot("manager-request", mgrLang))
	mgr.fill("form.request-approve [name=days]", "1")
	if resp := mgr.click("form.request-approve button"); resp.Status != http.StatusOK || mgr.path() != "/o/"+slug+"/support" {
		t.Fatalf("approve the request: got %d at %s", resp.Status, mgr.path())
	}
	if got := notice(mgr); got != T(mgrLang, "notice.support_approved") {
		t.Errorf("after approving the notice reads %q", got)
	}
	grant := evaluate[string](mgr, `(s => s ? s.dataset.grant : "")(document.querySelector("section.support-grant[data-status=active]"))`)
	if grant == "" {
		t.Fatalf("after approving, the support page has no active grant: %q", mgr.text("main"))
	}
	g := `section.support-grant[data-grant="` + grant + `"]`
	if got := mgr.text(g); !strings.Contains(got, reason) || !strings.Contains(got, browserMgrName) {
		t.Errorf("the grant reads %q, want the reason and who let support in", got)
	}
	if got := mgr.text(g + " h2"); !strings.Contains(got, T(mgrLang, "support.scope_org")) || !strings.Contains(got, T(mgrLang, "support.status.active")) {
		t.Errorf("the grant's heading reads %q, want the whole organisation, active", got)
	}
	if got := mgr.text("table#support-requests tbody"); !strings.Contains(got, T(mgrLang, "support.request.approved")) {
		t.Errorf("the request reads %q after approving, want %q", got, T(mgrLang, "support.request.approved"))
	}
	mgr.checkPage(shot("manager-granted", mgrLang))

	// 4. Support reloads its page and opens a support session: the
	// organisation's pages, under the banner naming support and the grant.
	sup.open("/operator/orgs/" + slug + "/support")
	row := `table#op-grants tr[data-grant="` + grant + `"]`
	sup.mustExist(row)
	sup.checkPage(shot("operator-granted", supLang))
	if resp := sup.click(row + " form.open-session button"); resp.Status != http.StatusOK || sup.path() != "/o/"+slug+"/projects" {
		t.Fatalf("open a support session: got %d at %s, want 200 at /o/%s/projects", resp.Status, sup.path(), slug)
	}
	banner := func(where string) {
		t.Helper()
		got := sup.text("#support-banner")
		if !strings.Contains(got, browserSupportName) || !strings.Contains(got, grant) || !strings.Contains(got, T(supLang, "support.right.view")) {
			t.Errorf("the banner on %s reads %q, want %s, grant %s and %q", where, got, browserSupportName, grant, T(supLang, "support.right.view"))
		}
	}
	banner("the projects page")
	if sup.lang() != string(supLang) {
		t.Errorf("the support session's page is in %q, want %q", sup.lang(), supLang)
	}
	wantNav := []string{T(supLang, "nav.projects"), T(supLang, "nav.users"), T(supLang, "nav.groups"), T(supLang, "nav.audit")}
	if got := navLabels(sup); !slices.Equal(got, wantNav) {
		t.Errorf("the support session's navigation reads %q, want %q (no %s)", got, wantNav, T(supLang, "nav.account"))
	}
	if evaluate[bool](sup, `document.querySelector("form#project-create") !== null`) {
		t.Errorf("the projects page of a support session offers form#project-create, want none (support never creates)")
	}
	sup.checkPage(shot("session-projects", supLang))

	// The member's project: its file, and nothing that changes it.
	sup.clickLink("table#projects", projectName)
	if got := sup.path(); got != project {
		t.Fatalf("the project's link leads to %s, want %s", got, project)
	}
	banner("the project")
	if got := fileNames(sup); !slices.Equal(got, []string{"plan.txt"}) {
		t.Errorf("the project page lists %q to support, want plan.txt", got)
	}
	for _, absent := range []string{"form#upload", "form.file-delete", "form#project-rename", "form#project-delete"} {
		if evaluate[bool](sup, `document.querySelector(`+js(absent)+`) !== null`) {
			t.Errorf("the project page of a view grant has %s, want none", absent)
		}
	}
	sup.checkPage(shot("session-project", supLang))
	// A change posted anyway is refused: a view grant writes nothing.
	if resp := postForm(sup, project, map[string]string{"name": "Renamed by support"}); resp.Status != http.StatusForbidden ||
		sup.text("h1") != T(supLang, "error.forbidden.title") {
		t.Errorf("support renames the project: got %d with heading %q, want 403 %s", resp.Status, sup.text("h1"), T(supLang, "error.forbidden.title"))
	}
	banner("the refusal")
	sup.checkPage(shot("session-refused", supLang))

	// People: the list, without the invitation form a view grant cannot
	// send; an invitation posted anyway is refused too.
	sup.clickLink("nav.nav", T(supLang, "nav.users"))
	if got := sup.path(); got != "/o/"+slug+"/users" {
		t.Fatalf("the navigation's people link leads to %s", got)
	}
	if got := sup.text("table#users"); !strings.Contains(got, browserMemName) || !strings.Contains(got, browserMgrName) {
		t.Errorf("the people page reads %q to support, want the manager and the member", got)
	}
	if evaluate[bool](sup, `document.querySelector("form#invite") !== null`) {
		t.Errorf("the people page of a view grant offers form#invite, want none")
	}
	banner("the people page")
	sup.checkPage(shot("session-people", supLang))
	if resp := postForm(sup, "/o/"+slug+"/users", map[string]string{"email": "eve@example.com", "name": "Eve", "role": "manager"}); resp.Status != http.StatusForbidden {
		t.Errorf("support invites someone: got %d, want 403", resp.Status)
	}
	sup.clickLink("nav.nav", T(supLang, "nav.groups"))
	if evaluate[bool](sup, `document.querySelector("form#group-create, form.group-delete, form.member-add") !== null`) {
		t.Errorf("the groups page of a view grant offers a form that changes groups, want none")
	}
	banner("the groups page")
	sup.checkPage(shot("session-groups", supLang))
	sup.clickLink("nav.nav", T(supLang, "nav.audit"))
	banner("the audit log")
	sup.checkPage(shot("session-audit", supLang))

	// A person's own pages are not support's.
	if resp := sup.open("/o/" + slug + "/account"); resp.Status != http.StatusForbidden || sup.text("h1") != T(supLang, "error.forbidden.title") {
		t.Errorf("support opens My account: got %d with heading %q, want 403 %s", resp.Status, sup.text("h1"), T(supLang, "error.forbidden.title"))
	}
	if resp := sup.open("/o/" + slug + "/policy"); resp.Status != http.StatusForbidden {
		t.Errorf("support opens the policy (a signed-in person's page): got %d, want 403", resp.Status)
	}

	// 5. The manager's pages say support is in; the support page lists
	// every page support opened, and the manager ends the access.
	mgr.open("/o/" + slug + "/projects")
	if got := mgr.text(".support-in"); !strings.Contains(got, browserSupportName) {
		t.Errorf("the manager's projects page says %q about support, want %s named", got, browserSupportName)
	}
	mgr.checkPage(shot("manager-support-in", mgrLang))
	mgr.click(".support-in a")
	if got := mgr.path(); got != "/o/"+slug+"/support" {
		t.Fatalf("the support-in notice leads to %s, want /o/%s/support", got, slug)
	}
	uses := evaluate[[]string](mgr, `[...document.querySelectorAll(`+js(g+" table.uses tbody tr")+`)].map(tr => tr.innerText.replace(/\s+/g, " "))`)
	all := strings.Join(uses, "\n")
	for _, want := range []string{"GET /o/{org}/projects", "GET /o/{org}/projects/{id}", "project:" + created.Project.ID, "GET /o/{org}/users", "POST /o/{org}/projects/{id}", "GET /o/{org}/audit"} {
		if !strings.Contains(all, want) {
			t.Errorf("the grant's uses read\n%s\nwant %q among them", all, want)
		}
	}
	for _, u := range uses {
		if !strings.Contains(u, "support:") {
			t.Errorf("the use %q does not name support:OPERATOR", u)
		}
	}
	mgr.checkPage(shot("manager-uses", mgrLang))
	if resp := mgr.click(g + " form.grant-revoke button"); resp.Status != http.StatusOK || mgr.path() != "/o/"+slug+"/support" {
		t.Fatalf("revoke the grant: got %d at %s", resp.Status, mgr.path())
	}
	if got := notice(mgr); got != T(mgrLang, "notice.support_revoked") {
		t.Errorf("after revoking the notice reads %q", got)
	}
	if got := evaluate[string](mgr, `document.querySelector(`+js(g)+`).dataset.status`); got != "revoked" {
		t.Errorf("the grant's state is %q after revoking, want revoked", got)
	}
	if evaluate[bool](mgr, `document.querySelector(".support-in") !== null`) {
		t.Errorf("after revoking, the manager's page still says support is in: %q", mgr.text(".support-in"))
	}
	mgr.checkPage(shot("manager-revoked", mgrLang))

	// 6. Support's next page ends at the operator's start page, with the
	// cookie gone.
	if !hasCookie(sup, "__Host-kluis_support") {
		t.Errorf("before its next page, support's browser holds no support cookie")
	}
	if resp := sup.open("/o/" + slug + "/users"); resp.Status != http.StatusOK || sup.path() != "/operator" {
		t.Fatalf("support's next page after the revocation: got %d at %s, want 200 at /operator", resp.Status, sup.path())
	}
	if got := notice(sup); got != T(supLang, "notice.support_ended") {
		t.Errorf("at the operator's start page the notice reads %q, want %q", got, T(supLang, "notice.support_ended"))
	}
	if evaluate[bool](sup, `document.querySelector("#support-banner") !== null`) {
		t.Errorf("after the revocation the page still carries the banner")
	}
	if hasCookie(sup, "__Host-kluis_support") {
		t.Errorf("after the revocation support's browser still holds the support cookie")
	}
	sup.checkPage(shot("operator-ended", supLang))
	if resp := sup.open(project); resp.Status == http.StatusOK && sup.path() == project {
		t.Errorf("after the revocation support still opens the project")
	}
	sup.open("/operator/orgs/" + slug + "/support")
	if got := sup.text(row); !strings.Contains(got, T(supLang, "support.status.revoked")) || evaluate[bool](sup, `document.querySelector(`+js(row+" form.open-session")+`) !== null`) {
		t.Errorf("support's grant reads %q after the revocation, want %q and no way to open a session", got, T(supLang, "support.status.revoked"))
	}

	// 7. The admin sees every operator with role and last sign-in.
	adm := b.newPerson("the admin", s.base, string(supLang))
	signInOperator(t, adm)
	adm.open("/operator")
	adm.clickLink("nav.nav", T(supLang, "nav.operators"))
	if got := adm.path(); got != "/operator/operators" {
		t.Fatalf("the navigation's operators link leads to %s", got)
	}
	ops := evaluate[[]string](adm, `[...document.querySelectorAll("table#operators tbody tr")].map(tr => tr.innerText.replace(/\s+/g, " "))`)
	if len(ops) != 2 {
		t.Fatalf("table#operators lists %q, want the two operators", ops)
	}
	for _, want := range [][2]string{{"Olga Operator", T(supLang, "operator_role.admin")}, {browserSupportName, T(supLang, "operator_role.support")}} {
		i := slices.IndexFunc(ops, func(r string) bool { return strings.Contains(r, want[0]) })
		switch {
		case i < 0:
			t.Errorf("table#operators lists %q, want %s", ops, want[0])
		case !strings.Contains(ops[i], want[1]):
			t.Errorf("%s's row reads %q, want the role %q", want[0], ops[i], want[1])
		case strings.Contains(ops[i], T(supLang, "operators.never")):
			t.Errorf("%s's row reads %q, want a last sign-in", want[0], ops[i])
		}
	}
	if n := evaluate[int](adm, `document.querySelectorAll("table#operators tbody td time[datetime]").length`); n != 2 {
		t.Errorf("table#operators shows %d sign-in times, want 2", n)
	}
	adm.checkPage(shot("operators", supLang))
}
