package main

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/kluis/kluis"
)

// mailsTo waits until n new mails are in the outbox and returns them by
// recipient: mails queued in one transaction are written in no set order.
func (s *browserSite) mailsTo(n int) map[string]outboxMail {
	s.t.Helper()
	var got []outboxMail
	waitFor(s.t, patience, "new mails in the outbox", func() bool {
		got = append(got, readOutbox(s.t, s.dir, s.seen)...)
		return len(got) >= n
	})
	if len(got) != n {
		s.t.Fatalf("got %d new mails in the outbox, want %d", len(got), n)
	}
	out := map[string]outboxMail{}
	for _, m := range got {
		to := strings.Trim(m.header.Get("To"), "<>")
		out[to] = m
	}
	return out
}

// A manager changes their e-mail address on My account: a link goes to the
// new address and a notice with the new address masked (and no link) to the
// old one; the address changes only when the link is opened in the
// manager's session, where the token travels only in a POST body; then the
// manager signs in with the new address, and the old address is told
// (R3, R14, R45). Without a session, the link's page asks to sign in first.
func TestBrowserEmailChangeIsConfirmedByMail(t *testing.T) {
	t.Parallel()
	s, mgr := signedInManager(t)
	const newAddr = "marie.nieuw@example.org"

	mgr.open("/o/acme/account")
	mgr.fill("form#email-change [name=new_email]", newAddr)
	if resp := mgr.submit("email-change"); resp.Status != http.StatusOK || mgr.path() != "/o/acme/account" {
		t.Fatalf("ask for a new address: got %d at %s, want 200 at /o/acme/account", resp.Status, mgr.path())
	}
	if got := notice(mgr); !strings.Contains(got, "link") {
		t.Errorf("after asking, the notice reads %q, want it to say a link is on its way", got)
	}
	if got := mgr.text("#email-pending"); !strings.Contains(got, newAddr) {
		t.Errorf("My account says %q about the pending change, want the new address", got)
	}
	mgr.checkPage("account-email-pending")

	mails := s.mailsTo(2)
	toNew, toOld := mails[newAddr], mails[browserMgrEmail]
	links := linkLines(toNew.body)
	if len(links) != 1 || !regexp.MustCompile(`^`+regexp.QuoteMeta(s.base)+`/o/acme/confirm-email#[A-Za-z0-9_-]{43}$`).MatchString(links[0]) {
		t.Fatalf("the mail to the new address has links %q, want one %s/o/acme/confirm-email#TOKEN", links, s.base)
	}
	link := links[0]
	token := tokenOf(link)
	if !strings.Contains(toOld.body, kluis.MaskEmail(newAddr)) || strings.Contains(toOld.raw, newAddr) || len(linkLines(toOld.body)) != 0 {
		t.Errorf("the notice to the old address:\n%s\nwant the new address masked and no link", toOld.raw)
	}

	// Someone without a session who opens the link is asked to sign in.
	nobody := startBrowser(t).newPerson("someone signed out", s.base, "nl")
	nobody.open(link)
	nobody.mustExist("#sign-in-first")
	nobody.checkPage("confirm-email-signed-out-nl")

	if resp := mgr.open(link); resp.Status != http.StatusOK {
		t.Fatalf("open the confirmation link: got %d, want 200", resp.Status)
	}
	if got := mgr.value("form#confirm-email [name=token]"); got != token {
		t.Errorf("the confirmation form's token field holds %q, want the token from the fragment", got)
	}
	if got := evaluate[string](mgr, `location.href`); strings.Contains(got, "#") {
		t.Errorf("the address bar reads %s, want the fragment removed", got)
	}
	mgr.checkPage("confirm-email")
	if resp := mgr.submit("confirm-email"); resp.Status != http.StatusOK || mgr.path() != "/o/acme/account" {
		t.Fatalf("confirm: got %d at %s, want 200 at /o/acme/account", resp.Status, mgr.path())
	}
	if got := mgr.text("dl.facts"); !strings.Contains(got, newAddr) || strings.Contains(got, browserMgrEmail) {
		t.Errorf("My account shows %q, want the new address only", got)
	}
	if done := waitMail(t, s.dir, s.seen, patience); !strings.Contains(done.header.Get("To"), browserMgrEmail) || !strings.Contains(done.body, kluis.MaskEmail(newAddr)) {
		t.Errorf("after the change a mail to %q:\n%s\nwant the notice to the old address", done.header.Get("To"), done.raw)
	}

	mgr.submit("logout")
	mgr.open("/o/acme/login")
	mgr.fill("form#login [name=email]", browserMgrEmail)
	mgr.fill("form#login [name=password]", browserMgrPass)
	if resp := mgr.submit("login"); resp.Status != http.StatusUnauthorized {
		t.Errorf("sign in with the old address: got %d, want 401", resp.Status)
	}
	signIn(mgr, "acme", newAddr, browserMgrPass)
	if got := tokenSent(mgr.requests(), token); len(got) > 0 {
		t.Errorf("the browser sent the confirmation token in %q, want it only in a POST body", got)
	}
	if strings.Contains(s.srv.stderr.String(), token) || strings.Contains(s.srv.stderr.String(), newAddr) {
		t.Error("the server's log holds the confirmation token or the new address")
	}
}

// A manager creates a read-only API token on My account: its secret is
// shown once, works as a bearer token for reading with a plain HTTP client
// but not for changing anything, is listed without its secret, and stops
// working when revoked (R6, R14).
func TestBrowserAPITokenShownOnceAndRevoked(t *testing.T) {
	t.Parallel()
	s, mgr := signedInManager(t)
	mgr.open("/o/acme/account")
	mgr.mustExist("#no-tokens")
	mgr.fill("form#token-create [name=token_name]", "nightly export")
	mgr.fill("form#token-create [name=scope]", "read")
	mgr.fill("form#token-create [name=expires_in]", "30")
	if resp := mgr.submit("token-create"); resp.Status != http.StatusOK || mgr.path() != "/o/acme/account/tokens" {
		t.Fatalf("create a token: got %d at %s, want 200 at /o/acme/account/tokens", resp.Status, mgr.path())
	}
	secret := mgr.text("#token-secret")
	if !strings.HasPrefix(secret, "kluis_pat_") {
		t.Fatalf("the page shows %q as the secret, want kluis_pat_…", secret)
	}
	mgr.checkPage("token-created")

	var me struct {
		Email string `json:"email"`
	}
	if got := api(t, "GET", s.base+"/api/v1/orgs/acme/me", secret, nil, &me); got != http.StatusOK || me.Email != browserMgrEmail {
		t.Errorf("GET /me with the token: got %d %q, want 200 and the manager's address", got, me.Email)
	}
	if got := api(t, "PATCH", s.base+"/api/v1/orgs/acme/me", secret, map[string]string{"name": "Changed by a script"}, nil); got != http.StatusForbidden {
		t.Errorf("PATCH /me with the read-only token: got %d, want 403", got)
	}

	mgr.open("/o/acme/account")
	if got := mgr.text("table#tokens"); !strings.Contains(got, "nightly export") {
		t.Errorf("the token table reads %q, want the token's name", got)
	}
	if html := evaluate[string](mgr, `document.documentElement.outerHTML`); strings.Contains(html, secret) || strings.Contains(html, strings.TrimPrefix(secret, "kluis_pat_")) {
		t.Error("My account shows the token's secret again")
	}
	mgr.checkPage("account-tokens")
	if resp := mgr.click("table#tokens button[type=submit]"); resp.Status != http.StatusOK || mgr.path() != "/o/acme/account" {
		t.Fatalf("revoke: got %d at %s, want 200 at /o/acme/account", resp.Status, mgr.path())
	}
	mgr.mustExist("#no-tokens")
	if got := api(t, "GET", s.base+"/api/v1/orgs/acme/me", secret, nil, nil); got != http.StatusUnauthorized {
		t.Errorf("GET /me with the revoked token: got %d, want 401", got)
	}
	if got := tokenSent(mgr.requests(), secret); len(got) > 0 {
		t.Errorf("the browser sent the token's secret in %q", got)
	}
	if strings.Contains(s.srv.stderr.String(), secret) {
		t.Error("the server's log holds the token's secret")
	}
}
