package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/kluis/kluis/internal/kluistest"
)

// A person's own data in Chromium (issue 15; R4, R5, R34; docs/UI.md): a
// member downloads their data from My account — a ZIP whose every file is
// valid against its schema, with their name and address and nobody
// else's —, reads on the delete page what goes and what stays, deletes
// their account and can no longer sign in; the manager, in Dutch, finds
// "Export this person's data" on the person's page and the delete page's
// statement in Dutch. Every page passes checkPage.

// allowDownloads lets p's browser save downloads in a folder of the test's
// own, and returns it.
func allowDownloads(t *testing.T, p *person) string {
	t.Helper()
	dir := t.TempDir()
	p.call("allow downloads", func(ctx context.Context) error {
		_, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
			Behavior:         cdpbrowser.SetDownloadBehaviorBehaviorAllow,
			BrowserContextID: chromedp.FromContext(ctx).BrowserContextID,
			DownloadPath:     dir,
		})
		return err
	})
	return dir
}

// pressDownload presses the button of form#formID and returns the file it
// downloaded; or "" when it led to the re-authentication page instead.
func pressDownload(t *testing.T, p *person, slug, formID, downloads string) string {
	t.Helper()
	p.mustExist("form#" + formID + " button")
	p.do("press "+formID, chromedp.Click(chromedp.CSS("form#"+formID+" button")))
	for deadline := time.Now().Add(actionTimeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
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
			return ""
		}
	}
	t.Fatalf("%s led neither to a download nor to the re-authentication page (at %s)", formID, p.path())
	return ""
}

// reauthenticate fills the re-authentication page with password.
func reauthenticate(t *testing.T, p *person, password string) {
	t.Helper()
	p.fill("form#reauth [name=password]", password)
	if resp := p.submit("reauth"); resp.Status != http.StatusOK {
		t.Fatalf("re-authenticate: got %d", resp.Status)
	}
}

func TestBrowserPersonDownloadsTheirDataAndDeletesTheirAccount(t *testing.T) {
	t.Parallel()
	s := startBrowserSite(t)
	const slug = "acme"
	s.createOrgWithManager(slug)
	s.addMember(slug, browserMemEmail, browserMemName, browserMemPass)
	b := startBrowser(t)

	// R4, R34: the member downloads their data from My account.
	mem := b.newPerson("the member", s.base, "en")
	signIn(mem, slug, browserMemEmail, browserMemPass)
	mem.mustExist("form#my-export")
	mem.checkPage("personal-account")
	downloads := allowDownloads(t, mem)
	file := pressDownload(t, mem, slug, "my-export", downloads)
	if file == "" {
		reauthenticate(t, mem, browserMemPass)
		mem.open("/o/" + slug + "/account")
		if file = pressDownload(t, mem, slug, "my-export", downloads); file == "" {
			t.Fatalf("after re-authenticating the download still leads to %s", mem.path())
		}
	}
	if got := filepath.Base(file); !strings.HasPrefix(got, slug+"-personal-export-") {
		t.Errorf("the download is named %s, want %s-personal-export-DATE.zip", got, slug)
	}
	files := readDownloadedZip(t, file)
	for _, name := range []string{"README.md", "profile.json", "audit_events.json", "requests.json"} {
		if _, ok := files[name]; !ok {
			t.Errorf("the download holds no %s", name)
		}
	}
	for name, b := range files {
		if !strings.Contains(name, "/") && strings.HasSuffix(name, ".json") {
			for _, p := range kluistest.CheckJSONSchema(files["schema/"+name], b) {
				t.Errorf("%s: %s", name, p)
			}
		}
		if bytes.Contains(b, []byte(browserMgrEmail)) || bytes.Contains(b, []byte(browserMgrName)) {
			t.Errorf("%s holds the manager's name or address", name)
		}
	}
	if p := string(files["profile.json"]); !strings.Contains(p, browserMemEmail) || !strings.Contains(p, browserMemName) {
		t.Errorf("profile.json lacks the member's name or address: %s", p)
	}
	if got := mem.path(); got != "/o/"+slug+"/account" {
		t.Errorf("after the download the tab is at %s, want My account", got)
	}

	// The manager, in Dutch: the person's page offers their export, and
	// the delete page says what goes and what stays.
	mgr := b.newPerson("the manager", s.base, "nl")
	signIn(mgr, slug, browserMgrEmail, browserMgrPass)
	mgr.open("/o/" + slug + "/users")
	mgr.clickLink("table#users", browserMemName)
	if got := mgr.text("form#user-export button"); got != "Gegevens van deze persoon exporteren" {
		t.Errorf("the person page's export button reads %q", got)
	}
	mgr.checkPage("personal-user-export-nl")
	mgr.open("/o/" + slug + "/account/delete")
	if got := mgr.text("#goes-h") + " / " + mgr.text("#stays-h"); got != "Wat verdwijnt / Wat blijft" {
		t.Errorf("the delete page's headings in Dutch read %q", got)
	}
	mgr.checkPage("personal-delete-nl")

	// R5, R34: the member deletes their account.
	mem.click("a#account-delete-link")
	if got := mem.path(); got != "/o/"+slug+"/account/delete" {
		t.Fatalf("the delete link leads to %s", got)
	}
	if got := mem.text("#goes"); !strings.Contains(got, "Your key is destroyed") {
		t.Errorf("the delete page's statement of what goes reads %q", got)
	}
	if got := mem.text("#stays"); !strings.Contains(got, "projects") {
		t.Errorf("the delete page's statement of what stays reads %q", got)
	}
	mem.checkPage("personal-delete")
	resp := mem.submit("account-delete")
	if strings.HasPrefix(mem.path(), "/o/"+slug+"/account/reauth") {
		reauthenticate(t, mem, browserMemPass)
		mem.open("/o/" + slug + "/account/delete")
		resp = mem.submit("account-delete")
	}
	if resp.Status != http.StatusOK || mem.path() != "/o/"+slug+"/login" {
		t.Fatalf("delete the account: got %d at %s, want 200 at the sign-in page", resp.Status, mem.path())
	}
	if got := notice(mem); got != "Your account is deleted." {
		t.Errorf("after the deletion the notice reads %q", got)
	}
	mem.checkPage("personal-deleted")
	mem.fill("form#login [name=email]", browserMemEmail)
	mem.fill("form#login [name=password]", browserMemPass)
	if resp := mem.submit("login"); resp.Status == http.StatusOK && mem.path() == "/o/"+slug+"/account" {
		t.Errorf("the deleted member still signs in")
	}

	// The manager's list no longer holds them.
	mgr.open("/o/" + slug + "/users")
	if got := mgr.text("table#users"); strings.Contains(got, browserMemName) {
		t.Errorf("table#users still names the deleted member: %q", got)
	}
}
