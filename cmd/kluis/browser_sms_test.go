package main

import (
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/sms"
)

// waitSMS waits for the next text message in the development SMS outbox
// of the data folder, checks it goes to to, and returns its code.
func waitSMS(t *testing.T, dataDir, to string, seen map[string]bool) string {
	t.Helper()
	var got []sms.OutboxMessage
	waitFor(t, patience, "a text message in the SMS outbox", func() bool {
		all, err := sms.ReadOutbox(filepath.Join(dataDir, "sms-outbox"))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range all {
			if !seen[m.Name] {
				seen[m.Name] = true
				got = append(got, m)
			}
		}
		return len(got) > 0
	})
	if len(got) != 1 || got[0].To != to {
		t.Fatalf("new text messages %+v, want one to %s", got, to)
	}
	code := regexp.MustCompile(`\b\d{6}\b`).FindString(got[0].Text)
	if code == "" {
		t.Fatalf("no code in the text message %q", got[0].Text)
	}
	return code
}

// A manager verifies a mobile number on My account (a code arrives by SMS
// and is typed back), gets recovery codes as with a first factor, and then
// signs in with a code sent by SMS as the second step: one press of "Send
// me a code by SMS", the code typed into the code field (R17). No script
// is needed for any of it.
func TestBrowserSMSSignIn(t *testing.T) {
	t.Parallel()
	s, mgr := signedInManager(t)
	const number = "+31612345678"
	seen := map[string]bool{}

	mgr.open("/o/acme/account")
	mgr.fill("form#sms-start [name=sms_phone]", "+31 6 1234 5678")
	if resp := mgr.submit("sms-start"); resp.Status != http.StatusOK || mgr.path() != "/o/acme/account/sms" {
		t.Fatalf("send a code to verify: got %d at %s, want 200 at /o/acme/account/sms", resp.Status, mgr.path())
	}
	if got := mgr.text("#sms-sent-to"); !strings.Contains(got, "+3********78") || strings.Contains(got, "612345678") {
		t.Errorf("the page says %q, want the number masked", got)
	}
	mgr.checkPage("sms-setup")
	mgr.fill("form#sms-confirm [name=code]", waitSMS(t, s.dir, number, seen))
	if resp := mgr.submit("sms-confirm"); resp.Status != http.StatusOK {
		t.Fatalf("confirm the code: got %d at %s, want 200", resp.Status, mgr.path())
	}
	if codes := evaluate[[]string](mgr, `[...document.querySelectorAll("#recovery-codes code")].map(c => c.textContent)`); len(codes) != 10 {
		t.Fatalf("%d recovery codes shown after the first factor, want 10", len(codes))
	}
	mgr.open("/o/acme/account")
	if got := mgr.text("#sms-number"); !strings.Contains(got, "+3********78") {
		t.Errorf("My account reads %q about codes by SMS", got)
	}

	mgr.click("form#logout button")
	mgr.open("/o/acme/login")
	mgr.fill("form#login [name=email]", browserMgrEmail)
	mgr.fill("form#login [name=password]", browserMgrPass)
	mgr.submit("login")
	if got := mgr.path(); got != "/o/acme/login/mfa" {
		t.Fatalf("after the password, the page is %s, want /o/acme/login/mfa", got)
	}
	if resp := mgr.submit("mfa-sms-send"); resp.Status != http.StatusOK {
		t.Fatalf("send me a code: got %d at %s, want 200", resp.Status, mgr.path())
	}
	if got := notice(mgr); !strings.Contains(got, "SMS") {
		t.Errorf("the notice after sending reads %q", got)
	}
	if got := mgr.value("form#mfa [name=method]"); got != "sms" {
		t.Errorf("the method chosen after sending is %q, want sms", got)
	}
	mgr.checkPage("mfa-sms")
	mgr.fill("form#mfa [name=code]", waitSMS(t, s.dir, number, seen))
	if resp := mgr.submit("mfa"); resp.Status != http.StatusOK || mgr.path() != "/o/acme/account" {
		t.Fatalf("second step with the code: got %d at %s, want 200 at /o/acme/account", resp.Status, mgr.path())
	}
	if strings.Contains(s.srv.stderr.String(), "612345678") {
		t.Error("the server's log holds the number")
	}
}
