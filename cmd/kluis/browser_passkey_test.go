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
