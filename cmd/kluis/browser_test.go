package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/kluis/kluis/internal/kluistest"
)

// The browser acceptance tests (issue 4): people click through the pages of
// a real `kluis serve` in Chromium, in Dutch and in English, and every page
// they reach passes checkPage (browser_harness_test.go).

const (
	browserOpEmail    = "olga.operator@example.com"
	browserOpPassword = "Operator pass 2026!"
	browserMgrEmail   = "marie.manager@example.com"
	browserMgrName    = "Marie Manager"
	browserMgrPass    = "Manager pass 2026!"
	browserMemEmail   = "mia.member@example.com"
	browserMemName    = "Mia Member"
	browserMemPass    = "Member pass 2026!"
)

// readmeScreenshots are the screenshots the README shows (NAME for the
// desktop one, NAME-phone at phone width): with KLUIS_UPDATE_SCREENSHOTS=1,
// checkPage copies them to docs/screenshots.
var readmeScreenshots = map[string]bool{
	"operator-orgs": true, "invite": true, "login-nl": true, "account-nl": true,
	"account-nl-phone": true, "users": true, "user": true, "audit": true,
	"totp-setup": true, "mfa-passkey": true, "account-sessions": true,
	"project-files": true, "versions": true, "version-diff": true,
}

// browserSite is a `kluis serve` for a browser test, with one operator,
// browsed at http://localhost:PORT so that its __Host- cookies hold on
// plain HTTP.
type browserSite struct {
	t    *testing.T
	env  map[string]string
	dir  string
	base string
	srv  *server
	seen map[string]bool // outbox mails already read
}

// startBrowserSite starts `kluis serve` on a free port of 127.0.0.1, with
// http://localhost:PORT as its public URL, and creates the operator.
func startBrowserSite(t *testing.T) *browserSite {
	t.Helper()
	return startBrowserSiteEnv(t, nil)
}

// startBrowserSiteEnv is startBrowserSite with more environment for kluis
// serve and the commands.
func startBrowserSiteEnv(t *testing.T, extra map[string]string) *browserSite {
	t.Helper()
	s := &browserSite{t: t, env: testEnv(), dir: t.TempDir(), seen: map[string]bool{}}
	for k, v := range extra {
		s.env[k] = v
	}
	port := freePort(t)
	s.base = "http://localhost:" + port
	// The links in mails use the public URL, so they are what a person
	// clicks.
	s.srv = startServe(t, s.env, "--addr", "127.0.0.1:"+port, "--data", s.dir, "--public-url", s.base)
	mustCLI(t, s.env, browserOpPassword+"\n", "operator", "create", "--email", browserOpEmail, "--name", "Olga Operator", "--password-stdin", "--data", s.dir)
	return s
}

// freePort returns a port nothing listens on right now.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// invitationLink waits for the next mail in the outbox, checks it goes to
// to, and returns the invitation link in it.
func (s *browserSite) invitationLink(to string) string {
	s.t.Helper()
	return s.mailedLink(to, "invite")
}

// mailedLink waits for the next mail in the outbox, checks it goes to to,
// and returns its one link, which must lead to the page /o/SLUG/PAGE#TOKEN.
func (s *browserSite) mailedLink(to, page string) string {
	s.t.Helper()
	m := waitMail(s.t, s.dir, s.seen, patience)
	if !strings.Contains(m.header.Get("To"), to) {
		s.t.Errorf("the %s mail went to %q, want %q", page, m.header.Get("To"), to)
	}
	links := linkLines(m.body)
	if len(links) != 1 || !regexp.MustCompile(`^`+regexp.QuoteMeta(s.base)+`/o/[a-z0-9-]+/`+page+`#[A-Za-z0-9_-]{20,}$`).MatchString(links[0]) {
		s.t.Fatalf("the %s mail has links %q, want one %s/o/SLUG/%s#TOKEN", page, links, s.base, page)
	}
	return links[0]
}

// createOrgWithManager creates the organisation slug from the command line
// while the server runs, and lets its manager accept through the API: the
// setup of tests that are about something else.
func (s *browserSite) createOrgWithManager(slug string) {
	s.t.Helper()
	mustCLI(s.t, s.env, "", "org", "create", slug, "--name", "Acme", "--manager-email", browserMgrEmail, "--data", s.dir)
	link := s.invitationLink(browserMgrEmail)
	if got := api(s.t, "POST", s.base+"/api/v1/orgs/"+slug+"/invitations/accept", "",
		map[string]string{"token": tokenOf(link), "name": browserMgrName, "password": browserMgrPass}, nil); got != http.StatusOK {
		s.t.Fatalf("accept the manager's invitation through the API: got %d, want 200", got)
	}
}

// signIn signs a person in on the organisation's sign-in page, which sends
// them on to My account.
func signIn(p *person, slug, email, password string) {
	p.t.Helper()
	p.open("/o/" + slug + "/login")
	p.fill("form#login [name=email]", email)
	p.fill("form#login [name=password]", password)
	if resp := p.submit("login"); resp.Status != http.StatusOK || p.path() != "/o/"+slug+"/account" {
		p.t.Fatalf("%s: sign in as %s: got %d at %s, want 200 at /o/%s/account", p.name, email, resp.Status, p.path(), slug)
	}
}

// notice returns the text of the page's notice (role=status), or "".
func notice(p *person) string {
	p.t.Helper()
	return evaluate[string](p, `(e => e ? e.innerText.trim() : "")(document.querySelector('[role="status"]'))`)
}

// auditRow is one row of table#audit as shown.
type auditRow struct {
	Action string `json:"action"`
	Who    string `json:"who"`
}

// auditRows returns the rows of table#audit on the page.
func auditRows(p *person) []auditRow {
	p.t.Helper()
	p.mustExist("table#audit")
	return evaluate[[]auditRow](p, `[...document.querySelectorAll("table#audit tbody tr")].map(tr => ({
		action: tr.dataset.action || "",
		who: (tr.cells[2] || {}).innerText || ""}))`)
}

// A new manager accepts the invitation an operator's new organisation sent,
// signs in and invites a member; the member, in Dutch and in a browser
// context of their own, accepts, signs in, edits their profile, changes
// their password, signs in again with it and switches to English, which is
// remembered; the manager sees each of these on the audit page (R1, R3, R4,
// R14, R23, R24, R25, R29). Every page reached passes checkPage, in both
// languages.
func TestBrowserPeopleJoinWorkAndAreAuditedInBothLanguages(t *testing.T) {
	t.Parallel()
	s := startBrowserSite(t)
	b := startBrowser(t)
	const slug = "acme"

	// The operator, in English, creates the organisation.
	op := b.newPerson("the operator", s.base, "en")
	op.open("/")
	if got := op.lang(); got != "en" {
		t.Errorf("the home page for Accept-Language en has <html lang=%q>, want en", got)
	}
	op.checkPage("home")
	op.open("/operator/login")
	op.checkPage("operator-login")
	op.fill("form#login [name=email]", browserOpEmail)
	op.fill("form#login [name=password]", browserOpPassword)
	// Operators must have a second factor (R17, issue 5 item 8): the first
	// sign-in leads to setting up an authenticator app, and nothing else.
	if resp := op.submit("login"); resp.Status != http.StatusOK || op.path() != "/operator/account#mfa-h" {
		t.Fatalf("operator sign-in without a second factor: got %d at %s, want 200 at /operator/account", resp.Status, op.path())
	}
	if got := op.text("#mfa-enrol"); got == "" {
		t.Errorf("the operator's account page does not say a second factor is required")
	}
	op.checkPage("operator-account-enrol")
	if resp := op.submit("totp-start"); resp.Status != http.StatusOK {
		t.Fatalf("operator set-up: got %d, want 200", resp.Status)
	}
	if got := evaluate[bool](op, `(i => i.complete && i.naturalWidth > 100)(document.querySelector("img.qr"))`); !got {
		t.Error("the operator's QR code did not load")
	}
	op.checkPage("operator-totp-setup")
	opSecret := strings.ReplaceAll(op.text("#totp-secret"), " ", "")
	op.fill("form#totp-confirm [name=code]", kluistest.OATHToolCode(t, opSecret, time.Now()))
	if resp := op.submit("totp-confirm"); resp.Status != http.StatusOK {
		t.Fatalf("operator confirm: got %d, want 200", resp.Status)
	}
	if codes := evaluate[[]string](op, `[...document.querySelectorAll("#recovery-codes code")].map(c => c.textContent)`); len(codes) != 10 {
		t.Fatalf("%d operator recovery codes shown, want 10", len(codes))
	}
	op.checkPage("operator-recovery-codes")
	// Signing in again takes two steps.
	op.submit("logout")
	op.open("/operator/login")
	op.fill("form#login [name=email]", browserOpEmail)
	op.fill("form#login [name=password]", browserOpPassword)
	if op.submit("login"); op.path() != "/operator/login/mfa" {
		t.Fatalf("after the operator's password the page is %s, want /operator/login/mfa", op.path())
	}
	op.checkPage("operator-mfa")
	op.fill("form#mfa [name=code]", kluistest.OATHToolCode(t, opSecret, time.Now().Add(30*time.Second)))
	if resp := op.submit("mfa"); resp.Status != http.StatusOK || op.path() != "/operator" {
		t.Fatalf("operator second step: got %d at %s, want 200 at /operator", resp.Status, op.path())
	}
	op.fill("form#create-org [name=name]", "Acme Zorg")
	op.fill("form#create-org [name=slug]", slug)
	op.fill("form#create-org [name=language]", "nl")
	op.fill("form#create-org [name=manager_email]", browserMgrEmail)
	op.fill("form#create-org [name=manager_name]", browserMgrName)
	if resp := op.submit("create-org"); resp.Status != http.StatusOK || op.path() != "/operator" {
		t.Fatalf("create an organisation: got %d at %s, want 200 at /operator", resp.Status, op.path())
	}
	if got := notice(op); got == "" {
		t.Errorf("after creating an organisation the page has no notice, want one (role=status)")
	}
	if got := op.text("table#orgs"); !strings.Contains(got, "Acme Zorg") || !strings.Contains(got, slug) {
		t.Errorf("table#orgs after creating Acme Zorg reads %q, want its name and slug", got)
	}
	op.checkPage("operator-orgs")
	mgrLink := s.invitationLink(browserMgrEmail)

	// The manager, in English, accepts the invitation and signs in.
	mgr := b.newPerson("the manager", s.base, "en")
	acceptInvitation(t, mgr, mgrLink, browserMgrName, browserMgrPass, "invite")
	mgr.checkPage("login")
	signIn(mgr, slug, browserMgrEmail, browserMgrPass)
	if got := mgr.text("main"); !strings.Contains(got, browserMgrEmail) || !strings.Contains(got, browserMgrName) {
		t.Errorf("the manager's My account reads %q, want their name and address (R4)", got)
	}
	mgr.checkPage("account")

	// The manager invites a member.
	mgr.open("/o/" + slug + "/users")
	mgr.fill("form#invite [name=email]", browserMemEmail)
	mgr.fill("form#invite [name=name]", browserMemName)
	mgr.fill("form#invite [name=role]", "member")
	if resp := mgr.submit("invite"); resp.Status != http.StatusOK || mgr.path() != "/o/"+slug+"/users" {
		t.Fatalf("invite a member: got %d at %s, want 200 at /o/%s/users", resp.Status, mgr.path(), slug)
	}
	if got := notice(mgr); got == "" {
		t.Errorf("after the invitation the users page has no notice, want one (role=status)")
	}
	users := mgr.text("table#users")
	if !strings.Contains(users, browserMemName) {
		t.Errorf("table#users reads %q, want the invited %s", users, browserMemName)
	}
	if strings.Contains(users, browserMemEmail) || strings.Contains(users, browserMgrEmail) {
		t.Errorf("table#users reads %q, want the addresses masked (R29)", users)
	}
	mgr.checkPage("users")
	memLink := s.invitationLink(browserMemEmail)

	// The member, in Dutch, in a browser context of their own.
	mem := b.newPerson("the member", s.base, "nl")
	mem.setTimeZone("Europe/Amsterdam")
	acceptInvitation(t, mem, memLink, browserMemName, browserMemPass, "invite-nl")
	if got := mem.lang(); got != "nl" {
		t.Errorf("the member's sign-in page has <html lang=%q>, want nl (Accept-Language nl)", got)
	}
	mem.checkPage("login-nl")

	// A wrong password is refused, with an alert, in Dutch.
	mem.fill("form#login [name=email]", browserMemEmail)
	mem.fill("form#login [name=password]", "not the password")
	if resp := mem.submit("login"); resp.Status != http.StatusUnauthorized {
		t.Errorf("sign in with a wrong password: got %d, want 401", resp.Status)
	}
	if got := mem.text(`[role="alert"]`); got == "" {
		t.Errorf("a failed sign-in shows no alert, want one (role=alert)")
	}
	if got := mem.value("form#login [name=password]"); got != "" {
		t.Errorf("after a failed sign-in the password field holds %q, want it empty (never sent back)", got)
	}
	mem.checkPage("login-nl-failed")

	signIn(mem, slug, browserMemEmail, browserMemPass)
	if got := mem.text("h1"); got != "Mijn account" {
		t.Errorf("the member's account page has the heading %q, want Mijn account (Dutch)", got)
	}
	if got := mem.text("main"); !strings.Contains(got, browserMemEmail) || !strings.Contains(got, browserMemName) {
		t.Errorf("the member's Mijn account reads %q, want their name and address (R4)", got)
	}
	mem.checkPage("account-nl")

	// Times are shown in the member's time zone, which the page's script
	// reports, with Dutch month names.
	checkTimesShownIn(t, mem, "Europe/Amsterdam", dutchMonths)

	// The member edits their profile (R3: the phone is optional).
	const newName, phone = "Mia van Dijk", "+31 6 1234 5678"
	mem.fill("form#profile [name=name]", newName)
	mem.fill("form#profile [name=phone]", phone)
	mem.fill("form#profile [name=maintenance_emails]", "off")
	if resp := mem.submit("profile"); resp.Status != http.StatusOK || mem.path() != "/o/"+slug+"/account" {
		t.Fatalf("save the profile: got %d at %s, want 200 at /o/%s/account", resp.Status, mem.path(), slug)
	}
	if got := notice(mem); got != "Opgeslagen." {
		t.Errorf("after saving the profile the notice reads %q, want Opgeslagen.", got)
	}
	if got := mem.value("form#profile [name=name]"); got != newName {
		t.Errorf("after saving, the profile's name field holds %q, want %q", got, newName)
	}
	// The server keeps a phone number without its spaces.
	if got := mem.text("main"); !strings.Contains(strings.ReplaceAll(got, " ", ""), strings.ReplaceAll(phone, " ", "")) {
		t.Errorf("after saving, Mijn account reads %q, want the phone %q in it (R4)", got, phone)
	}

	// A wrong current password is refused next to its field; the right one
	// changes it.
	const newPassword = "Member pass 2027!"
	mem.fill("form#password [name=current_password]", "not the password")
	mem.fill("form#password [name=new_password]", newPassword)
	if resp := mem.submit("password"); resp.Status != http.StatusBadRequest {
		t.Errorf("change the password with a wrong current one: got %d, want 400", resp.Status)
	}
	if got := mem.text("#current_password-error"); got == "" {
		t.Errorf("a wrong current password shows no #current_password-error, want the error next to its field")
	}
	if got := evaluate[string](mem, `document.querySelector("form#password [name=current_password]").getAttribute("aria-describedby") || ""`); !strings.Contains(got, "current_password-error") {
		t.Errorf("the current password field has aria-describedby %q, want current_password-error in it", got)
	}
	mem.checkPage("account-nl-error")
	mem.fill("form#password [name=current_password]", browserMemPass)
	mem.fill("form#password [name=new_password]", newPassword)
	if resp := mem.submit("password"); resp.Status != http.StatusOK || mem.path() != "/o/"+slug+"/account" {
		t.Fatalf("change the password: got %d at %s, want 200 at /o/%s/account", resp.Status, mem.path(), slug)
	}
	if got := notice(mem); got == "" {
		t.Errorf("after the password change the page has no notice, want one (role=status)")
	}
	mem.checkPage("account-nl-saved")

	// Signed out, the old password no longer opens a session; the new one
	// does (R14).
	if resp := mem.submit("logout"); resp.Status != http.StatusOK || mem.path() != "/o/"+slug+"/login" {
		t.Fatalf("sign out: got %d at %s, want 200 at /o/%s/login", resp.Status, mem.path(), slug)
	}
	if resp := mem.open("/o/" + slug + "/account"); mem.path() != "/o/"+slug+"/login" {
		t.Errorf("My account after signing out: got %d at %s, want the sign-in page (R14)", resp.Status, mem.path())
	}
	mem.fill("form#login [name=email]", browserMemEmail)
	mem.fill("form#login [name=password]", browserMemPass)
	if resp := mem.submit("login"); resp.Status != http.StatusUnauthorized {
		t.Errorf("sign in with the old password: got %d, want 401", resp.Status)
	}
	signIn(mem, slug, browserMemEmail, newPassword)

	// The language switch: English, remembered on the next page although
	// the browser still asks for Dutch.
	if resp := mem.click(`form#lang button[value="en"]`); resp.Status != http.StatusOK {
		t.Fatalf("switch to English: got %d, want 200", resp.Status)
	}
	if got, path := mem.lang(), mem.path(); got != "en" || path != "/o/"+slug+"/account" {
		t.Errorf("after switching to English: <html lang=%q> at %s, want en at /o/%s/account (back where they were)", got, path, slug)
	}
	mem.open("/o/" + slug + "/account")
	if got := mem.lang(); got != "en" {
		t.Errorf("the next page after switching to English has <html lang=%q>, want en (remembered)", got)
	}
	if got := mem.text("h1"); got != "My account" {
		t.Errorf("the next page after switching to English has the heading %q, want My account", got)
	}
	mem.checkPage("account-en")

	// Error pages are pages too: a member who types a manager's address gets
	// the store's refusal, an unknown address the not-found page.
	if resp := mem.open("/o/" + slug + "/users"); resp.Status != http.StatusForbidden {
		t.Errorf("a member opens the people page: got %d, want 403", resp.Status)
	}
	mem.checkPage("forbidden")
	if resp := mem.open("/o/" + slug + "/no-such-page"); resp.Status != http.StatusNotFound {
		t.Errorf("an unknown page: got %d, want 404", resp.Status)
	}
	mem.checkPage("not-found")

	// The manager sees the member's person page (unmasked, recorded as
	// user.read), the policy and the audit log with each of the member's acts.
	mgr.open("/o/" + slug + "/users")
	mgr.clickLink("table#users", newName)
	if got := mgr.text("main"); !strings.Contains(got, browserMemEmail) {
		t.Errorf("the member's person page reads %q, want the unmasked address %s", got, browserMemEmail)
	}
	mgr.checkPage("user")
	mgr.open("/o/" + slug + "/policy")
	mgr.checkPage("policy")
	// The retention periods (R35, R25): a year of inactivity, three of
	// audit events.
	mgr.fill("form#policy [name=inactive_user_days]", "365")
	mgr.fill("form#policy [name=audit_retention_days]", "1095")
	if resp := mgr.submit("policy"); resp.Status != http.StatusOK {
		t.Fatalf("save the retention periods: got %d", resp.Status)
	}
	if a, b := mgr.value("form#policy [name=inactive_user_days]"), mgr.value("form#policy [name=audit_retention_days]"); a != "365" || b != "1095" {
		t.Errorf("after saving, the policy page shows %s and %s days, want 365 and 1095", a, b)
	}
	mgr.open("/o/" + slug + "/audit")
	mgr.checkPage("audit")
	var actions []string
	for _, r := range auditRows(mgr) {
		actions = append(actions, r.Action)
	}
	for _, want := range []string{"user.invite", "user.invitation_accept", "auth.login", "auth.login_failed", "user.update", "user.password_change", "auth.logout", "user.read"} {
		if !slices.Contains(actions, want) {
			t.Errorf("the audit page shows the actions %q, want %s among them (R23, R24)", actions, want)
		}
	}

	// Filtered to the member, the log holds their own acts.
	mgr.fillByLabel("form#audit-filter [name=actor]", newName)
	if resp := mgr.submit("audit-filter"); resp.Status != http.StatusOK {
		t.Fatalf("filter the audit log: got %d, want 200", resp.Status)
	}
	if !strings.Contains(mgr.path(), "actor=") {
		t.Errorf("the filtered audit page is at %s, want the filter in its query (a GET form)", mgr.path())
	}
	rows := auditRows(mgr)
	var mine []string
	for _, r := range rows {
		mine = append(mine, r.Action)
		if !strings.Contains(r.Who, newName) {
			t.Errorf("the audit log filtered to %s shows a row by %q (%s)", newName, r.Who, r.Action)
		}
	}
	for _, want := range []string{"user.invitation_accept", "auth.login", "user.update", "user.password_change"} {
		if !slices.Contains(mine, want) {
			t.Errorf("the audit log filtered to the member shows %q, want %s among them (R23, R25)", mine, want)
		}
	}
	mgr.checkPage("audit-filtered")
	mgr.submit("verify")
	mgr.checkPage("audit-verify")

	// The signed-out page (R21) and the operator signing out.
	mgr.open("/o/" + slug + "/signed-out")
	mgr.checkPage("signed-out")
	if resp := op.submit("logout"); resp.Status != http.StatusOK || op.path() != "/operator/login" {
		t.Errorf("operator sign-out: got %d at %s, want 200 at /operator/login", resp.Status, op.path())
	}

	// No invitation token travelled in a request line or header (R40).
	for _, p := range []*person{mgr, mem} {
		for _, tok := range []string{tokenOf(mgrLink), tokenOf(memLink)} {
			if got := tokenSent(p.requests(), tok); len(got) > 0 {
				t.Errorf("%s's browser sent an invitation token in %q, want it only in a POST body", p.name, got)
			}
		}
	}
	for _, tok := range []string{tokenOf(mgrLink), tokenOf(memLink)} {
		if strings.Contains(s.srv.stderr.String(), tok) {
			t.Errorf("the server's log holds an invitation token")
		}
	}
}

// acceptInvitation opens an invitation link, checks that the page took the
// token from the fragment into its form and out of the address bar, checks
// the page as pageName, and accepts with name and password, which leads to
// the sign-in page with a notice.
func acceptInvitation(t *testing.T, p *person, link, name, password, pageName string) {
	t.Helper()
	token := tokenOf(link)
	path := strings.TrimPrefix(link[:strings.Index(link, "#")], p.base)
	if resp := p.open(link); resp.Status != http.StatusOK {
		t.Fatalf("%s: open the invitation link: got %d, want 200", p.name, resp.Status)
	}
	if got := p.value("form#accept [name=token]"); got != token {
		t.Errorf("%s: the invitation form's token field holds %q, want the token from the link's fragment", p.name, got)
	}
	if got := evaluate[string](p, `location.href`); strings.Contains(got, token) || strings.Contains(got, "#") {
		t.Errorf("%s: the address bar reads %s, want the fragment (the token) removed", p.name, got)
	}
	if got := p.path(); got != path {
		t.Errorf("%s: the invitation page is at %s, want %s", p.name, got, path)
	}
	p.checkPage(pageName)
	p.fill("form#accept [name=name]", name)
	p.fill("form#accept [name=password]", password)
	slug := strings.Split(path, "/")[2]
	if resp := p.submit("accept"); resp.Status != http.StatusOK || p.path() != "/o/"+slug+"/login" {
		t.Fatalf("%s: accept the invitation: got %d at %s, want 200 at /o/%s/login", p.name, resp.Status, p.path(), slug)
	}
	if got := notice(p); got == "" {
		t.Errorf("%s: after accepting, the sign-in page has no notice, want one (role=status)", p.name)
	}
	// The token went in the POST body, and is not in the history.
	var posted bool
	for _, r := range p.requests() {
		posted = posted || (r.method == http.MethodPost && r.url == p.base+path && strings.Contains(r.postData, "token="+token))
	}
	if !posted {
		t.Errorf("%s: no POST %s with the token in its body was recorded, want the form to post it", p.name, path)
	}
	for _, e := range p.history() {
		if strings.Contains(e, token) {
			t.Errorf("%s: the history holds %s, want no token in it", p.name, e)
		}
	}
}

// The invitation token travels only in the body of the form's POST: not in
// any request line, Referer or other header the browser sends, not in the
// address bar or history, and not in the server's log (R40, R14).
func TestBrowserInvitationTokenTravelsOnlyInAPostBody(t *testing.T) {
	t.Parallel()
	s := startBrowserSite(t)
	b := startBrowser(t)
	r := mustCLI(t, s.env, "", "org", "create", "acme", "--name", "Acme", "--manager-email", browserMgrEmail, "--data", s.dir)
	link := s.invitationLink(browserMgrEmail)
	if printed := strings.TrimSpace(r.stdout); printed != link {
		t.Errorf("org create printed %q, want the mailed link %q", printed, link)
	}
	token := tokenOf(link)

	mgr := b.newPerson("the manager", s.base, "en")
	acceptInvitation(t, mgr, link, browserMgrName, browserMgrPass, "invite-token")
	// Another page after it: a Referer would carry the page's address.
	signIn(mgr, "acme", browserMgrEmail, browserMgrPass)

	if got := tokenSent(mgr.requests(), token); len(got) > 0 {
		t.Errorf("the browser sent the token in %q, want it only in a POST body", got)
	}
	var lines []string
	for _, r := range mgr.requests() {
		if r.url != "" && !strings.HasPrefix(r.method, "(") {
			lines = append(lines, r.String())
		}
	}
	if !slices.Contains(lines, "GET "+s.base+"/o/acme/invite") || !slices.Contains(lines, "POST "+s.base+"/o/acme/invite") {
		t.Errorf("the recorded request lines are %q, want GET and POST /o/acme/invite among them", lines)
	}
	if strings.Contains(s.srv.stderr.String(), token) {
		t.Errorf("the server's log holds the token")
	}
}

// signedInManager starts kluis with the organisation acme and a browser in
// which its manager is signed in, in English.
func signedInManager(t *testing.T) (*browserSite, *person) {
	t.Helper()
	s := startBrowserSite(t)
	s.createOrgWithManager("acme")
	mgr := startBrowser(t).newPerson("the manager", s.base, "en")
	signIn(mgr, "acme", browserMgrEmail, browserMgrPass)
	return s, mgr
}

// A user name that is markup is shown as text on every page that shows it,
// and never runs: no element is made from it and its script does not run
// (R49).
func TestBrowserUserNameIsShownAsTextAndNeverRuns(t *testing.T) {
	t.Parallel()
	s, mgr := signedInManager(t)

	const evil = `<script>window.__kluisPwned=1</script><img src=x onerror="window.__kluisPwned=2">`
	mgr.open("/o/acme/users")
	mgr.fill("form#invite [name=email]", "eve@example.com")
	mgr.fill("form#invite [name=name]", evil)
	mgr.fill("form#invite [name=role]", "member")
	if resp := mgr.submit("invite"); resp.Status != http.StatusOK || mgr.path() != "/o/acme/users" {
		t.Fatalf("invite a person named %q: got %d at %s, want 200 at /o/acme/users", evil, resp.Status, mgr.path())
	}
	s.invitationLink("eve@example.com")

	checkInert := func(page, where string) {
		t.Helper()
		if got := evaluate[string](mgr, `document.querySelector(`+js(where)+`).textContent`); !strings.Contains(got, evil) {
			t.Errorf("%s: %s reads %q, want the name as literal text %q", page, where, got, evil)
		}
		made := evaluate[[]string](mgr, `[...document.querySelectorAll("img, script")]
			.filter(e => e.matches('img[src="x"]') || (e.textContent || "").includes("__kluisPwned") || e.hasAttribute("onerror"))
			.map(e => e.outerHTML)`)
		if len(made) > 0 {
			t.Errorf("%s: elements were made from the name: %q", page, made)
		}
		if got := evaluate[string](mgr, `typeof window.__kluisPwned`); got != "undefined" {
			t.Errorf("%s: window.__kluisPwned is a %s, want undefined (the name's script ran)", page, got)
		}
	}
	checkInert("the users page", "table#users")
	mgr.checkPage("xss-users")
	mgr.clickLink("table#users", evil)
	checkInert("the person page", "main")
	mgr.checkPage("xss-user")
	mgr.click("a#delete-link")
	checkInert("the delete confirmation", "main")
	mgr.checkPage("xss-user-delete")
	mgr.open("/o/acme/audit")
	checkInert("the audit page", "table#audit")
	mgr.checkPage("xss-audit")
}

// A form posted to kluis from another site is refused with 403 before any
// handler runs, even for a signed-in person, and changes nothing (R14).
func TestBrowserFormFromAnotherSiteIsRefused(t *testing.T) {
	t.Parallel()
	s, mgr := signedInManager(t)

	// 127.0.0.1 is another site than localhost.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html lang="en"><head><title>You won</title></head><body><main>
<form id="evil" method="post" action="%s/o/acme/account/profile">
<input type="hidden" name="name" value="Mallory was here"><input type="hidden" name="phone" value="">
<button type="submit">Claim your prize</button></form></main></body></html>`, s.base)
	}))
	defer evil.Close()
	mgr.open(evil.URL)
	if resp := mgr.submit("evil"); resp.Status != http.StatusForbidden {
		t.Errorf("the form posted from %s: got %d, want 403", evil.URL, resp.Status)
	}
	mgr.open("/o/acme/account")
	if got := mgr.value("form#profile [name=name]"); got != browserMgrName {
		t.Errorf("after the cross-site post the name is %q, want %q unchanged", got, browserMgrName)
	}
	// The same form from kluis's own page is accepted: the refusal is about
	// the origin, not the form.
	mgr.fill("form#profile [name=name]", "Marie Beheerder")
	if resp := mgr.submit("profile"); resp.Status != http.StatusOK {
		t.Errorf("the profile form posted from its own page: got %d, want 200", resp.Status)
	}
	if got := mgr.value("form#profile [name=name]"); got != "Marie Beheerder" {
		t.Errorf("after the same-site post the name is %q, want Marie Beheerder", got)
	}
}

// dutchMonths are the months' abbreviations in Dutch, January first.
var dutchMonths = []string{"jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec"}

// checkTimesShownIn checks every <time> in main: its text shows the clock
// time of its datetime attribute in the time zone tz, and the month by its
// name in months.
func checkTimesShownIn(t *testing.T, p *person, tz string, months []string) {
	t.Helper()
	loc, err := time.LoadLocation(tz)
	if err != nil {
		t.Logf("not checking the times: no time zone database here: %v", err)
		return
	}
	times := evaluate[[][2]string](p, `[...document.querySelectorAll("main time[datetime]")].map(e => [e.dateTime, e.innerText])`)
	if len(times) == 0 {
		t.Errorf("%s: the page %s shows no <time datetime>, want the dates as <time>", p.name, p.path())
	}
	for _, tt := range times {
		at, err := time.Parse(time.RFC3339, tt[0])
		if err != nil {
			t.Errorf("%s: <time datetime=%q>: %v", p.name, tt[0], err)
			continue
		}
		local := at.In(loc)
		if clock, month := local.Format("15:04"), months[local.Month()-1]; !strings.Contains(tt[1], clock) || !strings.Contains(strings.ToLower(tt[1]), month) {
			cookie := evaluate[string](p, `document.cookie.split("; ").filter(c => c.startsWith("kluis_tz=")).join("; ")`)
			t.Errorf("%s: <time datetime=%q> reads %q, want the clock time %s and the month %q (%s; the page's cookie: %q)", p.name, tt[0], tt[1], clock, month, tz, cookie)
		}
	}
}

// A person who forgot their password asks for a link on the sign-in page,
// gets it by mail, chooses a new password on the page the link opens (the
// token travels only in the form's body), and signs in with it; the old
// password no longer works (R20).
func TestBrowserForgottenPasswordIsResetByMail(t *testing.T) {
	t.Parallel()
	s := startBrowserSite(t)
	s.createOrgWithManager("acme")
	mgr := startBrowser(t).newPerson("the manager", s.base, "nl")

	mgr.open("/o/acme/login")
	mgr.click("a#forgot-link")
	if got := mgr.path(); got != "/o/acme/forgot" {
		t.Fatalf("the forgot-password link leads to %s, want /o/acme/forgot", got)
	}
	mgr.checkPage("forgot-nl")
	mgr.fill("form#forgot [name=email]", browserMgrEmail)
	if resp := mgr.submit("forgot"); resp.Status != http.StatusOK || mgr.path() != "/o/acme/forgot" {
		t.Fatalf("ask for a reset link: got %d at %s, want 200 at /o/acme/forgot", resp.Status, mgr.path())
	}
	if got := notice(mgr); !strings.Contains(got, "link") {
		t.Errorf("after asking, the notice reads %q, want it to say a link is on its way", got)
	}
	mgr.checkPage("forgot-sent-nl")

	link := s.mailedLink(browserMgrEmail, "reset")
	token := tokenOf(link)
	if resp := mgr.open(link); resp.Status != http.StatusOK {
		t.Fatalf("open the reset link: got %d, want 200", resp.Status)
	}
	if got := mgr.value("form#reset [name=token]"); got != token {
		t.Errorf("the reset form's token field holds %q, want the token from the link's fragment", got)
	}
	if got := evaluate[string](mgr, `location.href`); strings.Contains(got, "#") {
		t.Errorf("the address bar reads %s, want the fragment removed", got)
	}
	mgr.checkPage("reset-nl")
	const newPassword = "Nieuw wachtwoord voor de winter 7"
	mgr.fill("form#reset [name=new_password]", newPassword)
	if resp := mgr.submit("reset"); resp.Status != http.StatusOK || mgr.path() != "/o/acme/login" {
		t.Fatalf("save the new password: got %d at %s, want 200 at /o/acme/login", resp.Status, mgr.path())
	}
	if got := notice(mgr); got == "" {
		t.Error("after the reset, the sign-in page has no notice")
	}
	// The link worked once.
	mgr.open(link)
	mgr.fill("form#reset [name=new_password]", "Nog een ander wachtwoord 8")
	if resp := mgr.submit("reset"); resp.Status != http.StatusBadRequest {
		t.Errorf("the reset link a second time: got %d, want 400", resp.Status)
	}
	mgr.open("/o/acme/login")
	mgr.fill("form#login [name=email]", browserMgrEmail)
	mgr.fill("form#login [name=password]", browserMgrPass)
	if resp := mgr.submit("login"); resp.Status != http.StatusUnauthorized {
		t.Errorf("sign in with the old password: got %d, want 401", resp.Status)
	}
	signIn(mgr, "acme", browserMgrEmail, newPassword)
	if got := tokenSent(mgr.requests(), token); len(got) > 0 {
		t.Errorf("the browser sent the reset token in %q, want it only in a POST body", got)
	}
	if strings.Contains(s.srv.stderr.String(), token) {
		t.Error("the server's log holds the reset token")
	}
}

// A manager stops every sign-in of the organisation from the policy page:
// the member's open session ends at once (their next page says they were
// signed out), nobody can sign in and the sign-in page says why; resuming
// lets the member in again (R19, R21).
func TestBrowserManagerStopsEverySignIn(t *testing.T) {
	t.Parallel()
	s, mgr := signedInManager(t)
	mgr.open("/o/acme/users")
	mgr.fill("form#invite [name=email]", browserMemEmail)
	mgr.fill("form#invite [name=name]", browserMemName)
	mgr.submit("invite")
	if got := api(t, "POST", s.base+"/api/v1/orgs/acme/invitations/accept", "",
		map[string]string{"token": tokenOf(s.invitationLink(browserMemEmail)), "name": browserMemName, "password": browserMemPass}, nil); got != http.StatusOK {
		t.Fatalf("the member accepts through the API: got %d, want 200", got)
	}
	mem := startBrowser(t).newPerson("the member", s.base, "nl")
	signIn(mem, "acme", browserMemEmail, browserMemPass)

	mgr.open("/o/acme/policy")
	mgr.checkPage("policy-logins")
	if resp := mgr.submit("logins"); resp.Status != http.StatusOK || mgr.path() != "/o/acme/policy" {
		t.Fatalf("stop every sign-in: got %d at %s, want 200 at /o/acme/policy", resp.Status, mgr.path())
	}
	if got := mgr.text("#logins-state"); !strings.Contains(got, "stopped") {
		t.Errorf("after stopping, the policy page says %q", got)
	}
	mgr.checkPage("policy-logins-stopped")

	mem.open("/o/acme/account")
	if got := mem.path(); got != "/o/acme/signed-out" {
		t.Errorf("the member's next page is %s, want /o/acme/signed-out", got)
	}
	mem.open("/o/acme/login")
	mem.fill("form#login [name=email]", browserMemEmail)
	mem.fill("form#login [name=password]", browserMemPass)
	if resp := mem.submit("login"); resp.Status != http.StatusForbidden {
		t.Errorf("sign in while stopped: got %d, want 403", resp.Status)
	}
	if got := mem.text(`[role="alert"]`); !strings.Contains(got, "gestopt") {
		t.Errorf("the sign-in page while stopped says %q, want that signing in is stopped", got)
	}
	mem.checkPage("login-stopped-nl")

	mgr.open("/o/acme/policy")
	if resp := mgr.submit("logins"); resp.Status != http.StatusOK {
		t.Fatalf("resume: got %d, want 200", resp.Status)
	}
	signIn(mem, "acme", browserMemEmail, browserMemPass)
}

// A manager sets up an authenticator app on My account (QR code and typed
// key, confirmed with a code from oathtool), gets ten recovery codes once,
// then signs in in two steps: with the next code, and later with a
// recovery code, which works once (R17).
func TestBrowserTwoStepSignIn(t *testing.T) {
	t.Parallel()
	_, mgr := signedInManager(t)
	mgr.open("/o/acme/account")
	if got := mgr.text("#mfa-state"); !strings.Contains(got, "Off") {
		t.Errorf("two-step sign-in before set-up reads %q", got)
	}
	if resp := mgr.submit("totp-start"); resp.Status != http.StatusOK {
		t.Fatalf("start the set-up: got %d, want 200", resp.Status)
	}
	if got := evaluate[bool](mgr, `(i => i.complete && i.naturalWidth > 100)(document.querySelector("img.qr"))`); !got {
		t.Error("the QR code did not load")
	}
	mgr.checkPage("totp-setup")
	secret := strings.ReplaceAll(mgr.text("#totp-secret"), " ", "")
	if len(secret) < 16 {
		t.Fatalf("the typed key reads %q", secret)
	}
	mgr.fill("form#totp-confirm [name=code]", kluistest.OATHToolCode(t, secret, time.Now()))
	if resp := mgr.submit("totp-confirm"); resp.Status != http.StatusOK {
		t.Fatalf("confirm: got %d, want 200", resp.Status)
	}
	codes := evaluate[[]string](mgr, `[...document.querySelectorAll("#recovery-codes code")].map(c => c.textContent)`)
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes shown, want 10", len(codes))
	}
	mgr.checkPage("recovery-codes")
	mgr.open("/o/acme/account")
	if got := mgr.text("#mfa-state"); !strings.Contains(got, "10 recovery codes") {
		t.Errorf("after set-up, two-step sign-in reads %q", got)
	}

	signInTwoSteps := func(method, code string) *network.Response {
		t.Helper()
		mgr.click("form#logout button")
		mgr.open("/o/acme/login")
		mgr.fill("form#login [name=email]", browserMgrEmail)
		mgr.fill("form#login [name=password]", browserMgrPass)
		mgr.submit("login")
		if got := mgr.path(); got != "/o/acme/login/mfa" {
			t.Fatalf("after the password, the page is %s, want /o/acme/login/mfa", got)
		}
		mgr.fill("form#mfa [name=method]", method)
		mgr.fill("form#mfa [name=code]", code)
		return mgr.submit("mfa")
	}
	// The confirming code's step is used up: the next step's code works.
	if resp := signInTwoSteps("totp", kluistest.OATHToolCode(t, secret, time.Now().Add(30*time.Second))); resp.Status != http.StatusOK || mgr.path() != "/o/acme/account" {
		t.Fatalf("second step with the next code: got %d at %s, want 200 at /o/acme/account", resp.Status, mgr.path())
	}
	mgr.open("/o/acme/account")
	if resp := signInTwoSteps("recovery", codes[3]); resp.Status != http.StatusOK || mgr.path() != "/o/acme/account" {
		t.Fatalf("second step with a recovery code: got %d at %s", resp.Status, mgr.path())
	}
	mgr.open("/o/acme/account")
	if resp := signInTwoSteps("recovery", codes[3]); resp.Status != http.StatusUnauthorized {
		t.Errorf("the same recovery code again: got %d, want 401", resp.Status)
	}
	mgr.checkPage("mfa-failed")
}
