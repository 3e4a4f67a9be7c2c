package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/kluistest"
)

// A sole manager who lost their authenticator app is recovered by the
// operator at the command line (R17): `kluis org reset-factors` removes the
// factors, ends the manager's sessions and mails them; the organisation's
// own audit log records it as the command line's; nothing about the person
// is printed. A member is not the operator's to reset.
func TestOrgResetFactorsRecoversASoleManager(t *testing.T) {
	t.Parallel()
	s := startBrowserSite(t)
	s.createOrgWithManager("acme")
	base := s.base + "/api/v1/orgs/acme"
	var login struct {
		Token       string `json:"token"`
		MFARequired bool   `json:"mfa_required"`
	}
	if got := api(t, "POST", base+"/login", "", map[string]string{"email": browserMgrEmail, "password": browserMgrPass}, &login); got != http.StatusOK {
		t.Fatalf("sign in: got %d", got)
	}
	var start struct {
		Secret string `json:"secret"`
	}
	if got := api(t, "POST", base+"/me/totp", login.Token, nil, &start); got != http.StatusOK {
		t.Fatalf("start TOTP: got %d", got)
	}
	if got := api(t, "POST", base+"/me/totp/confirm", login.Token, map[string]string{"code": kluistest.OATHToolCode(t, start.Secret, time.Now())}, nil); got != http.StatusOK {
		t.Fatalf("confirm TOTP: got %d", got)
	}

	r := cli(t, s.env, "", "org", "reset-factors", "acme", "--user-email", "nobody@example.com", "--data", s.dir)
	if r.code != 1 {
		t.Errorf("an unknown address: %s, want exit 1", r)
	}
	r = mustCLI(t, s.env, "", "org", "reset-factors", "acme", "--user-email", browserMgrEmail, "--data", s.dir)
	for _, secret := range []string{browserMgrEmail, browserMgrName, "marie"} {
		if strings.Contains(strings.ToLower(r.stdout+r.stderr), strings.ToLower(secret)) {
			t.Errorf("the command printed %q: %s", secret, r)
		}
	}
	if got := api(t, "GET", base+"/me", login.Token, nil, nil); got != http.StatusUnauthorized {
		t.Errorf("the manager's session after the reset: got %d, want 401", got)
	}
	m := waitMail(t, s.dir, s.seen, patience)
	if !strings.Contains(m.header.Get("To"), browserMgrEmail) || !strings.Contains(m.header.Get("Subject"), "reset") {
		t.Errorf("the reset's mail went to %q with subject %q", m.header.Get("To"), m.header.Get("Subject"))
	}
	login.MFARequired = false
	if got := api(t, "POST", base+"/login", "", map[string]string{"email": browserMgrEmail, "password": browserMgrPass}, &login); got != http.StatusOK || login.MFARequired || login.Token == "" {
		t.Fatalf("sign in after the reset: got %d, mfa_required %v", got, login.MFARequired)
	}
	var audit struct {
		Events []struct {
			Action string `json:"action"`
			Actor  string `json:"actor"`
		} `json:"events"`
	}
	if got := api(t, "GET", base+"/audit", login.Token, nil, &audit); got != http.StatusOK {
		t.Fatalf("read the audit log: got %d", got)
	}
	found := false
	for _, e := range audit.Events {
		found = found || e.Action == "mfa.reset" && e.Actor == "cli"
	}
	if !found {
		t.Errorf("the audit log has no mfa.reset by cli: %+v", audit.Events)
	}

	// With another manager who can still sign in with a factor, the
	// operator's way is closed: that manager resets it.
	const otherEmail, otherPass = "otto.other@example.com", "Other manager 2026!"
	if got := api(t, "POST", base+"/users", login.Token, map[string]string{"email": otherEmail, "name": "Otto", "role": "manager"}, nil); got != http.StatusCreated {
		t.Fatalf("invite a second manager: %d", got)
	}
	if got := api(t, "POST", base+"/invitations/accept", "", map[string]string{"token": tokenOf(s.invitationLink(otherEmail)), "name": "Otto", "password": otherPass}, nil); got != http.StatusOK {
		t.Fatalf("accept: %d", got)
	}
	var other struct {
		Token string `json:"token"`
	}
	api(t, "POST", base+"/login", "", map[string]string{"email": otherEmail, "password": otherPass}, &other)
	if got := api(t, "POST", base+"/me/totp", other.Token, nil, &start); got != http.StatusOK {
		t.Fatalf("start TOTP: got %d", got)
	}
	if got := api(t, "POST", base+"/me/totp/confirm", other.Token, map[string]string{"code": kluistest.OATHToolCode(t, start.Secret, time.Now())}, nil); got != http.StatusOK {
		t.Fatalf("confirm TOTP: got %d", got)
	}
	if r := cli(t, s.env, "", "org", "reset-factors", "acme", "--user-email", browserMgrEmail, "--data", s.dir); r.code == 0 || !strings.Contains(r.stderr, "another manager") {
		t.Errorf("reset-factors while another manager has a factor: %s, want a refusal", r)
	}
}
