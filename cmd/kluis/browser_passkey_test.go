package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// addVirtualAuthenticator gives p's tab a platform authenticator of
// Chromium's WebAuthn test domain: CTAP 2.1, internal, with resident keys
// and user verification that succeeds, answering without a touch.
func addVirtualAuthenticator(p *person) {
	p.t.Helper()
	p.call("add a virtual authenticator", func(ctx context.Context) error {
		if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
				Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true,
				HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
			},
		})
		return err
	})
}

// A manager adds a passkey on My account (kluis.js hands the page's options
// to navigator.credentials.create and posts the answer), gets recovery
// codes as with a first factor, sees it listed, and then signs in with it
// as the second step, and confirms a sensitive change with it, at
// http://localhost:PORT, the relying party localhost (R17).
func TestBrowserPasskeySignIn(t *testing.T) {
	t.Parallel()
	_, mgr := signedInManager(t)
	addVirtualAuthenticator(mgr)

	mgr.open("/o/acme/account")
	if resp := mgr.submit("passkey-new"); resp.Status != http.StatusOK {
		t.Fatalf("start adding a passkey: got %d at %s, want 200", resp.Status, mgr.path())
	}
	mgr.checkPage("passkey-setup")
	mgr.fill("form#passkey-add [name=passkey_name]", "Laptop")
	if resp := mgr.submit("passkey-add"); resp.Status != http.StatusOK {
		t.Fatalf("add the passkey: got %d at %s, want 200", resp.Status, mgr.path())
	}
	if codes := evaluate[[]string](mgr, `[...document.querySelectorAll("#recovery-codes code")].map(c => c.textContent)`); len(codes) != 10 {
		t.Fatalf("%d recovery codes shown after the first passkey, want 10", len(codes))
	}
	mgr.open("/o/acme/account")
	if got := mgr.text("#passkeys"); !strings.Contains(got, "Laptop") {
		t.Errorf("the passkeys listed read %q, want Laptop", got)
	}
	if got := mgr.text("#mfa-state"); !strings.Contains(got, "10 recovery codes") {
		t.Errorf("two-step sign-in reads %q", got)
	}

	mgr.click("form#logout button")
	mgr.open("/o/acme/login")
	mgr.fill("form#login [name=email]", browserMgrEmail)
	mgr.fill("form#login [name=password]", browserMgrPass)
	mgr.submit("login")
	if got := mgr.path(); got != "/o/acme/login/mfa" {
		t.Fatalf("after the password, the page is %s, want /o/acme/login/mfa", got)
	}
	mgr.checkPage("mfa-passkey")
	if resp := mgr.submit("mfa-passkey"); resp.Status != http.StatusOK || mgr.path() != "/o/acme/account" {
		t.Fatalf("second step with the passkey: got %d at %s, want 200 at /o/acme/account", resp.Status, mgr.path())
	}
	if got := mgr.text("#passkeys"); !strings.Contains(got, "last used") {
		t.Errorf("after signing in with it, the passkey reads %q", got)
	}

	mgr.open("/o/acme/account/reauth")
	mgr.checkPage("reauth-passkey")
	mgr.fill("form#reauth-passkey [name=password]", browserMgrPass)
	if resp := mgr.submit("reauth-passkey"); resp.Status != http.StatusOK || mgr.path() != "/o/acme/account" {
		t.Fatalf("confirm with the passkey: got %d at %s, want 200 at /o/acme/account", resp.Status, mgr.path())
	}
	if got := notice(mgr); got == "" {
		t.Error("no notice after confirming with the passkey")
	}
}

// An operator's first sign-in is limited to setting up a second factor;
// they set up a passkey (no app), get recovery codes as with a first
// factor, and then sign in with the passkey as the second step, in
// Chromium: the one factor core serves the operator's staff as it serves
// an organisation's people (R17, R22, issue 11).
func TestBrowserOperatorPasskeySignIn(t *testing.T) {
	t.Parallel()
	s := startBrowserSite(t)
	b := startBrowser(t)
	op := b.newPerson("the operator", s.base, "en")
	addVirtualAuthenticator(op)

	op.open("/operator/login")
	op.fill("form#login [name=email]", browserOpEmail)
	op.fill("form#login [name=password]", browserOpPassword)
	if resp := op.submit("login"); resp.Status != http.StatusOK || op.path() != "/operator/account#mfa-h" {
		t.Fatalf("operator sign-in without a second factor: got %d at %s, want 200 at /operator/account", resp.Status, op.path())
	}
	if resp := op.submit("passkey-new"); resp.Status != http.StatusOK {
		t.Fatalf("start adding a passkey: got %d at %s, want 200", resp.Status, op.path())
	}
	op.checkPage("operator-passkey-setup")
	op.fill("form#passkey-add [name=passkey_name]", "Security key")
	if resp := op.submit("passkey-add"); resp.Status != http.StatusOK {
		t.Fatalf("add the passkey: got %d at %s, want 200", resp.Status, op.path())
	}
	if codes := evaluate[[]string](op, `[...document.querySelectorAll("#recovery-codes code")].map(c => c.textContent)`); len(codes) != 10 {
		t.Fatalf("%d recovery codes shown after the operator's first passkey, want 10", len(codes))
	}
	// The passkey lifted the enrolment limit: the organisations page opens.
	if resp := op.open("/operator"); resp.Status != http.StatusOK || op.path() != "/operator" {
		t.Fatalf("after the passkey, /operator: got %d at %s, want 200", resp.Status, op.path())
	}
	op.open("/operator/account")
	if got := op.text("#passkeys"); !strings.Contains(got, "Security key") {
		t.Errorf("the operator's passkeys read %q, want Security key", got)
	}

	op.submit("logout")
	op.open("/operator/login")
	op.fill("form#login [name=email]", browserOpEmail)
	op.fill("form#login [name=password]", browserOpPassword)
	if op.submit("login"); op.path() != "/operator/login/mfa" {
		t.Fatalf("after the operator's password the page is %s, want /operator/login/mfa", op.path())
	}
	op.checkPage("operator-mfa-passkey")
	if resp := op.submit("mfa-passkey"); resp.Status != http.StatusOK || op.path() != "/operator" {
		t.Fatalf("the operator's second step with the passkey: got %d at %s, want 200 at /operator", resp.Status, op.path())
	}
	op.open("/operator/account")
	if got := op.text("#passkeys"); !strings.Contains(got, "last used") {
		t.Errorf("after signing in with it, the operator's passkey reads %q", got)
	}
}
