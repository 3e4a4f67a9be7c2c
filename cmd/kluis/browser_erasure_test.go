package main

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// Erasure on the organisation's request, the inbox, the count of
// administrators and the organisation's own export in Chromium (issue 13;
// R5, R8, R9; docs/UI.md): the operator admin erases a member and a manager
// from the erase page and is refused the last manager; the remaining
// manager, in Dutch, finds the notices in the inbox — without the erased
// people's names, addresses or the reason — and marks them read; sees the
// counts of administrators, caps the managers in the policy and is refused
// a manager beyond the cap, with the cap named; and downloads the
// organisation's export as a ZIP. Every page passes checkPage.

const (
	erasureBenEmail  = "ben.beheerder@example.com"
	erasureBenName   = "Ben Beheerder"
	erasureBenPass   = "Beheerder wachtwoord 2026!"
	erasureNoorEmail = "noor.lid@example.com"
	erasureNoorName  = "Noor Lid"
	erasureNoorPass  = "Lid wachtwoord 2026!"
	erasureReason    = "Schriftelijk verzoek van Acme, brief 2026-0311"
)

// addPersonWithRole invites someone with role through the API as the
// organisation's first manager and accepts the invitation through the API.
func (s *browserSite) addPersonWithRole(slug, email, name, password, role string) {
	s.t.Helper()
	var login struct {
		Token string `json:"token"`
	}
	if got := api(s.t, "POST", s.base+"/api/v1/orgs/"+slug+"/login", "", map[string]string{"email": browserMgrEmail, "password": browserMgrPass}, &login); got != http.StatusOK {
		s.t.Fatalf("the manager signs in through the API: got %d, want 200", got)
	}
	if got := api(s.t, "POST", s.base+"/api/v1/orgs/"+slug+"/users", login.Token, map[string]string{"email": email, "name": name, "role": role}, nil); got != http.StatusCreated {
		s.t.Fatalf("invite %s as %s through the API: got %d, want 201", email, role, got)
	}
	link := s.invitationLink(email)
	if got := api(s.t, "POST", s.base+"/api/v1/orgs/"+slug+"/invitations/accept", "",
		map[string]string{"token": tokenOf(link), "name": name, "password": password}, nil); got != http.StatusOK {
		s.t.Fatalf("accept %s's invitation through the API: got %d, want 200", email, got)
	}
}

// erase fills the operator's form#erase and sends it.
func erase(op *person, email, reason string) *network.Response {
	op.t.Helper()
	op.fill("form#erase [name=email]", email)
	op.fill("form#erase [name=reason]", reason)
	return op.submit("erase")
}

// pageHTML returns the page's whole markup, for what must not be in it.
func pageHTML(p *person) string {
	p.t.Helper()
	return evaluate[string](p, `document.documentElement.outerHTML`)
}

// inboxLink returns the text of the navigation's link to the inbox.
func inboxLink(p *person, slug string) string {
	p.t.Helper()
	return evaluate[string](p, `(a => a ? a.innerText.trim() : "")(document.querySelector('nav.nav a[href="/o/`+slug+`/inbox"]'))`)
}

// exportResponse is what the network reported about the export's answer.
type exportResponse struct {
	mu          sync.Mutex
	status      int64
	contentType string
	disposition string
}

func TestBrowserErasureInboxAndExport(t *testing.T) {
	t.Parallel()
	s := startBrowserSite(t)
	const slug = "acme"
	// A Dutch organisation: its notices are written in its language.
	mustCLI(t, s.env, "", "org", "create", slug, "--name", "Acme", "--language", "nl", "--manager-email", browserMgrEmail, "--data", s.dir)
	if got := api(t, "POST", s.base+"/api/v1/orgs/"+slug+"/invitations/accept", "",
		map[string]string{"token": tokenOf(s.invitationLink(browserMgrEmail)), "name": browserMgrName, "password": browserMgrPass}, nil); got != http.StatusOK {
		t.Fatalf("accept the first manager's invitation through the API: got %d, want 200", got)
	}
	s.addMember(slug, browserMemEmail, browserMemName, browserMemPass)
	s.addPersonWithRole(slug, erasureNoorEmail, erasureNoorName, erasureNoorPass, "member")
	s.addPersonWithRole(slug, erasureBenEmail, erasureBenName, erasureBenPass, "manager")
	b := startBrowser(t)

	// The operator admin finds the erase link in the organisation's row.
	op := b.newPerson("the operator", s.base, "en")
	signInOperator(t, op)
	op.open("/operator")
	op.click(`table#orgs a.erase[href="/operator/orgs/` + slug + `/erase"]`)
	if got := op.path(); got != "/operator/orgs/"+slug+"/erase" {
		t.Fatalf("the erase link leads to %s, want /operator/orgs/%s/erase", got, slug)
	}
	op.mustExist("form#erase")
	op.checkPage("erasure-form")

	// R5: the member is erased on request, with the reason.
	if resp := erase(op, browserMemEmail, erasureReason); resp.Status != http.StatusOK || op.path() != "/operator" {
		t.Fatalf("erase the member: got %d at %s, want 200 at /operator", resp.Status, op.path())
	}
	if got := notice(op); got != "The person is erased and the organisation's managers are told." {
		t.Errorf("after the erasure the notice reads %q", got)
	}
	if html := pageHTML(op); strings.Contains(html, browserMemEmail) || strings.Contains(html, erasureReason) {
		t.Errorf("the page after the erasure shows the erased address or the reason again")
	}
	op.checkPage("erasure-done")

	// The same address again: nobody by that address any more.
	op.open("/operator/orgs/" + slug + "/erase")
	if resp := erase(op, browserMemEmail, erasureReason); resp.Status != http.StatusNotFound {
		t.Errorf("erase the erased member again: got %d, want 404", resp.Status)
	}

	// One manager goes; the other, now the last, is refused on the page.
	op.open("/operator/orgs/" + slug + "/erase")
	if resp := erase(op, browserMgrEmail, erasureReason); resp.Status != http.StatusOK || op.path() != "/operator" {
		t.Fatalf("erase the first manager: got %d at %s, want 200 at /operator", resp.Status, op.path())
	}
	op.open("/operator/orgs/" + slug + "/erase")
	if resp := erase(op, erasureBenEmail, erasureReason); resp.Status != http.StatusConflict {
		t.Errorf("erase the last manager: got %d, want 409", resp.Status)
	}
	if got := op.text(`[role="alert"]`); !strings.Contains(got, "at least one active manager") {
		t.Errorf("the refusal to erase the last manager reads %q, want it to say an organisation keeps one", got)
	}
	op.mustExist("form#erase")
	op.checkPage("erasure-last-manager")

	// The last manager is still there: he signs in, in Dutch, and the
	// navigation counts his unread notices.
	mgr := b.newPerson("the manager", s.base, "nl")
	signIn(mgr, slug, erasureBenEmail, erasureBenPass)
	if got := inboxLink(mgr, slug); got != "Postvak (2 ongelezen)" {
		t.Errorf("the navigation's inbox link reads %q, want Postvak (2 ongelezen)", got)
	}
	mgr.clickLink("nav.nav", "Postvak")
	if got := mgr.path(); got != "/o/"+slug+"/inbox" {
		t.Fatalf("the navigation's Postvak leads to %s", got)
	}
	kinds := evaluate[[]string](mgr, `[...document.querySelectorAll("ul#notices li")].map(li => li.dataset.kind)`)
	if len(kinds) != 2 || kinds[0] != "erased_on_request" || kinds[1] != "erased_on_request" {
		t.Errorf("ul#notices holds notices of kinds %q, want two erased_on_request", kinds)
	}
	if got := mgr.text("ul#notices"); !strings.Contains(got, "Een persoon is gewist op verzoek van je organisatie") {
		t.Errorf("the inbox reads %q, want the erasure notice in Dutch", got)
	}
	html := pageHTML(mgr)
	for _, secret := range []string{browserMemName, browserMemEmail, browserMgrName, browserMgrEmail, erasureReason, "Mia", "Marie"} {
		if strings.Contains(html, secret) {
			t.Errorf("the inbox holds %q: an erased person's name or address or the reason", secret)
		}
	}
	mgr.checkPage("erasure-inbox-nl")
	for i := 0; i < 2; i++ {
		if resp := mgr.click("ul#notices form.mark-read button"); resp.Status != http.StatusOK || mgr.path() != "/o/"+slug+"/inbox" {
			t.Fatalf("mark a notice read: got %d at %s", resp.Status, mgr.path())
		}
	}
	if evaluate[bool](mgr, `document.querySelector("ul#notices form.mark-read, ul#notices li.unread") !== null`) {
		t.Errorf("after marking both read the inbox still shows an unread notice")
	}
	if got := inboxLink(mgr, slug); got != "Postvak" {
		t.Errorf("after reading everything the inbox link reads %q, want Postvak without a count", got)
	}
	mgr.checkPage("erasure-inbox-read-nl")

	// R8: the counts of administrators on the users page.
	mgr.open("/o/" + slug + "/users")
	if got := mgr.text("#administrators #admins-managers"); !strings.Contains(got, "Beheerders in deze organisatie: 1.") || !strings.Contains(got, "geen grens") {
		t.Errorf("#admins-managers reads %q, want one manager and no cap", got)
	}
	if got := mgr.text("#administrators #admins-operators"); !strings.Contains(got, "1 admin, 0 support, 0 security") {
		t.Errorf("#admins-operators reads %q, want one admin operator", got)
	}
	if got := mgr.text("table#users"); strings.Contains(got, browserMemName) || strings.Contains(got, browserMgrName) {
		t.Errorf("table#users reads %q, want the erased people gone", got)
	}
	mgr.checkPage("erasure-administrators-nl")

	// The policy caps the managers at the current number.
	mgr.open("/o/" + slug + "/policy")
	mgr.fill("form#policy [name=max_managers]", "1")
	if resp := mgr.submit("policy"); resp.Status != http.StatusOK {
		t.Fatalf("save the policy with max_managers 1: got %d", resp.Status)
	}
	if got := mgr.value("form#policy [name=max_managers]"); got != "1" {
		t.Errorf("after saving, max_managers holds %q, want 1", got)
	}
	mgr.open("/o/" + slug + "/users")
	if got := mgr.text("#admins-managers"); !strings.Contains(got, "Hoogstens 1 beheerders") {
		t.Errorf("#admins-managers reads %q, want the cap of 1", got)
	}

	// Inviting a manager beyond the cap is refused, naming the cap.
	mgr.fill("form#invite [name=email]", "nieuwe.beheerder@example.com")
	mgr.fill("form#invite [name=name]", "Nieuwe Beheerder")
	mgr.fill("form#invite [name=role]", "manager")
	if resp := mgr.submit("invite"); resp.Status != http.StatusConflict {
		t.Errorf("invite a second manager under a cap of 1: got %d, want 409", resp.Status)
	}
	if got := mgr.text(`[role="alert"]`); !strings.Contains(got, "beleid") || !strings.Contains(got, "1") {
		t.Errorf("the refusal to invite a manager reads %q, want the policy's cap of 1 named", got)
	}
	mgr.checkPage("erasure-cap-invite-nl")

	// So is making a member a manager.
	mgr.open("/o/" + slug + "/users")
	mgr.clickLink("table#users", erasureNoorName)
	mgr.fill("form#user [name=role]", "manager")
	if resp := mgr.submit("user"); resp.Status != http.StatusConflict {
		t.Errorf("make a member manager under a cap of 1: got %d, want 409", resp.Status)
	}
	if got := mgr.text(`[role="alert"]`); !strings.Contains(got, "beleid") || !strings.Contains(got, "1") {
		t.Errorf("the refusal to promote reads %q, want the policy's cap of 1 named", got)
	}
	mgr.checkPage("erasure-cap-promote-nl")
	mgr.open("/o/" + slug + "/users")
	if got := mgr.text("#admins-managers"); !strings.Contains(got, "Beheerders in deze organisatie: 1.") {
		t.Errorf("after the refusals #admins-managers reads %q, want still one manager", got)
	}

	// R9: the export. The download lands in a folder of the test's own.
	downloads := t.TempDir()
	mgr.call("allow downloads", func(ctx context.Context) error {
		_, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
			Behavior:         cdpbrowser.SetDownloadBehaviorBehaviorAllow,
			BrowserContextID: chromedp.FromContext(ctx).BrowserContextID,
			DownloadPath:     downloads,
		})
		return err
	})
	var answer exportResponse
	if err := chromedp.Listen(mgr.ctx, func(ev any) {
		if ev, ok := ev.(*network.EventResponseReceived); ok && strings.HasSuffix(ev.Response.URL, "/o/"+slug+"/export") {
			answer.mu.Lock()
			defer answer.mu.Unlock()
			answer.status = ev.Response.Status
			for k, v := range ev.Response.Headers {
				switch strings.ToLower(k) {
				case "content-type":
					answer.contentType, _ = v.(string)
				case "content-disposition":
					answer.disposition, _ = v.(string)
				}
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	mgr.open("/o/" + slug + "/policy")
	mgr.checkPage("erasure-export-card-nl")
	zipFile := pressExport(t, mgr, slug, downloads)
	if zipFile == "" { // sent through re-authentication first
		mgr.checkPage("erasure-export-reauth-nl")
		mgr.fill("form#reauth [name=password]", erasureBenPass)
		if resp := mgr.submit("reauth"); resp.Status != http.StatusOK {
			t.Fatalf("re-authenticate: got %d", resp.Status)
		}
		mgr.open("/o/" + slug + "/policy")
		if zipFile = pressExport(t, mgr, slug, downloads); zipFile == "" {
			t.Fatalf("after re-authenticating the export still leads to %s", mgr.path())
		}
	}
	// The network's report of the answer may come after the file.
	waited := time.Now()
	for deadline := time.Now().Add(actionTimeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		answer.mu.Lock()
		done := answer.status != 0
		answer.mu.Unlock()
		if done {
			break
		}
	}
	t.Logf("the network reported the export's answer %v after the file", time.Since(waited).Round(time.Millisecond))
	answer.mu.Lock()
	if answer.status != http.StatusOK || answer.contentType != "application/zip" || !strings.HasPrefix(answer.disposition, "attachment") {
		t.Errorf("the export answered %d, Content-Type %q, Content-Disposition %q; want 200 application/zip as an attachment",
			answer.status, answer.contentType, answer.disposition)
	}
	answer.mu.Unlock()
	if got := filepath.Base(zipFile); !strings.HasPrefix(got, slug+"-export-") || !strings.HasSuffix(got, ".zip") {
		t.Errorf("the download is named %s, want %s-export-DATE.zip", got, slug)
	}
	files := readDownloadedZip(t, zipFile)
	for _, want := range []string{"README.md", "users.json"} {
		if _, ok := files[want]; !ok {
			t.Errorf("the export holds no %s", want)
		}
	}
	users := string(files["users.json"])
	if !strings.Contains(users, erasureBenEmail) || !strings.Contains(users, erasureNoorEmail) {
		t.Errorf("users.json does not hold the organisation's people: %.300s", users)
	}
	if strings.Contains(users, browserMemEmail) || strings.Contains(users, browserMgrEmail) {
		t.Errorf("users.json still holds an erased person's address")
	}
	// The page stayed where it was: a download, not a navigation.
	if got := mgr.path(); got != "/o/"+slug+"/policy" {
		t.Errorf("after the download the tab is at %s, want the policy page", got)
	}
}

// pressExport presses the export button and returns the downloaded file;
// or "" when the button led to the re-authentication page instead.
func pressExport(t *testing.T, p *person, slug, downloads string) string {
	t.Helper()
	p.mustExist("form#org-export button")
	p.do("press the export button", chromedp.Click(chromedp.CSS("form#org-export button")))
	deadline := time.Now().Add(actionTimeout)
	for time.Now().Before(deadline) {
		entries, err := os.ReadDir(downloads)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".zip") {
				return filepath.Join(downloads, e.Name())
			}
		}
		if strings.HasPrefix(p.path(), "/o/"+slug+"/account/reauth") {
			if got := notice(p); got != "Bevestig eerst dat jij het bent." {
				t.Errorf("the re-authentication page's notice reads %q", got)
			}
			return ""
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the export button led neither to a download in %s nor to the re-authentication page (at %s)", downloads, p.path())
	return ""
}

// readDownloadedZip reads the ZIP archive a browser downloaded into a map
// from entry name to content.
func readDownloadedZip(t *testing.T, file string) map[string][]byte {
	t.Helper()
	body, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("the download %s is not a ZIP: %v", filepath.Base(file), err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatalf("open %s in the download: %v", f.Name, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read %s in the download: %v", f.Name, err)
		}
		files[f.Name] = b
	}
	return files
}
