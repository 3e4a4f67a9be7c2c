package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/pquerna/otp/totp"
)

// TestOperatorRecoveryFromTheCommandLine (issue 5 item 8; R17, R18): the
// command line gives an operator a new password (from standard input only),
// which ends their sessions and lifts their sign-in lock; disables and
// enables an operator; and removes a lost second factor, after which the
// next sign-in is limited to enrolment again. Each is recorded in the
// platform chain.
func TestOperatorRecoveryFromTheCommandLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := testEnv()
	const (
		email = "olga.operator@example.com"
		oldPw = "Operator pass 2026!"
		newPw = "A new operator pass 77"
	)
	mustCLI(t, env, "", "migrate", "--data", dir)
	mustCLI(t, env, oldPw+"\n", "operator", "create", "--email", email, "--password-stdin", "--data", dir)
	st := openStore(t, dir, "")
	ctx := context.Background()
	seenMail := map[string]bool{}
	login := func(pw string) (kluis.Session, error) {
		t.Helper()
		return st.SignIn.Login(ctx, kluis.OperatorScope, kluis.Origin{}, email, pw)
	}
	alive := func(s kluis.Session) bool {
		_, err := st.SignIn.Authenticate(ctx, kluis.RealmOperator, kluis.Origin{}, s.Token)
		return err == nil
	}

	before, err := login(oldPw)
	if err != nil || !before.MFAEnrolmentRequired {
		t.Fatalf("first sign-in: %v (enrolment only: %v), want a session limited to enrolment", err, before.MFAEnrolmentRequired)
	}
	// Five wrong passwords lock the identifier: then the right one is refused.
	for i := 0; i < 5; i++ {
		login("not the password")
	}
	if _, err := login(oldPw); kluis.ErrorCode(err) != kluis.ETooManyRequests {
		t.Fatalf("the right password after five wrong ones: %v, want too_many_requests", err)
	}

	for _, args := range [][]string{
		{"reset-password", "--email", email},
		{"reset-password", "--password-stdin"},
		{"disable"},
		{"enable", "--email", email, "extra"},
		{"unknown", "--email", email},
	} {
		r := cli(t, env, newPw+"\n", append(append([]string{"operator"}, args...), "--data", dir)...)
		if r.code != 2 {
			t.Errorf("operator %v: got %s, want a usage error", args, r)
		}
		checkErrorShape(t, r.stderr)
	}
	if r := cli(t, env, newPw+"\n", "operator", "reset-password", "--email", "nobody@example.com", "--password-stdin", "--data", dir); r.code != 1 {
		t.Errorf("reset-password of an unknown operator: got %s, want exit 1", r)
	}
	if r := cli(t, env, "short\n", "operator", "reset-password", "--email", email, "--password-stdin", "--data", dir); r.code != 1 {
		t.Errorf("reset-password with a too short password: got %s, want exit 1", r)
	}
	r := mustCLI(t, env, newPw+"\n", "operator", "reset-password", "--email", email, "--password-stdin", "--data", dir)
	if strings.Contains(r.stdout+r.stderr, newPw) || strings.Contains(r.stdout+r.stderr, email) {
		t.Errorf("reset-password printed the password or the address:\n%s", r)
	}
	// The operator is told, as a user would be: a notice to their address,
	// with no password in it (R45).
	mails := readOutbox(t, dir, seenMail)
	if len(mails) != 1 || !strings.Contains(mails[0].header.Get("To"), email) || strings.Contains(mails[0].body, newPw) {
		t.Errorf("after the password reset the outbox holds %+v, want one notice to the operator without the password", mails)
	}
	if alive(before) {
		t.Error("a session from before the password reset still works")
	}
	if _, err := login(oldPw); kluis.ErrorCode(err) != kluis.EUnauthenticated {
		t.Errorf("the old password after the reset: %v, want unauthenticated", err)
	}
	sess, err := login(newPw)
	if err != nil {
		t.Fatalf("the new password after the reset (the lock is lifted): %v", err)
	}

	// Disable: sessions end, sign-in fails like a wrong password; enable.
	r = mustCLI(t, env, "", "operator", "disable", "--email", email, "--data", dir)
	if !strings.Contains(r.stdout, "1 sessions ended") || !strings.Contains(r.stdout, "no operator account is enabled") {
		t.Errorf("disable printed %q", r.stdout)
	}
	if alive(sess) {
		t.Error("a disabled operator's session still works")
	}
	if _, err := login(newPw); kluis.ErrorCode(err) != kluis.EUnauthenticated {
		t.Errorf("a disabled operator signs in: %v, want unauthenticated", err)
	}
	mustCLI(t, env, "", "operator", "enable", "--email", email, "--data", dir)
	if sess, err = login(newPw); err != nil {
		t.Fatalf("an enabled operator signs in: %v", err)
	}

	// Set up an authenticator app, lose it, and reset it.
	id, err := st.SignIn.Authenticate(ctx, kluis.RealmOperator, kluis.Origin{}, sess.Token)
	if err != nil {
		t.Fatal(err)
	}
	actor := id.Actor
	start, err := st.Factors.StartFactor(ctx, kluis.OperatorScope, actor, kluis.FactorTOTP, kluis.FactorSetup{})
	if err != nil {
		t.Fatal(err)
	}
	secret := start.Secret
	code, _ := totp.GenerateCode(secret, time.Now())
	if _, err := st.Factors.ConfirmFactor(ctx, kluis.OperatorScope, actor, kluis.FactorTOTP, kluis.FactorProof{Code: code}); err != nil {
		t.Fatal(err)
	}
	var challenge *kluis.Challenge
	if _, err := login(newPw); !errors.As(err, &challenge) {
		t.Fatalf("sign-in with an app set up: %v, want a challenge", err)
	}
	mustCLI(t, env, "", "operator", "reset-factors", "--email", email, "--data", dir)
	if mails := readOutbox(t, dir, seenMail); len(mails) != 1 || !strings.Contains(mails[0].header.Get("To"), email) {
		t.Errorf("after the factor reset the outbox holds %+v, want one notice to the operator", mails)
	}
	if alive(sess) {
		t.Error("a session from before the factor reset still works")
	}
	if s, err := login(newPw); err != nil || !s.MFAEnrolmentRequired {
		t.Errorf("sign-in after the factor reset: %v (enrolment only: %v), want a session limited to enrolment", err, s.MFAEnrolmentRequired)
	}

	actions := strings.Join(queryStrings(t, "sqlite", dir, "", `SELECT action FROM audit_events WHERE chain = 'platform' AND action IN
		('operator.password_reset', 'operator.disable', 'operator.enable', 'operator.factors_reset') ORDER BY seq`), " ")
	if actions != "operator.password_reset operator.disable operator.enable operator.factors_reset" {
		t.Errorf("the platform chain records %q", actions)
	}
	if r := cli(t, env, "", "audit", "verify", "--data", dir); r.code != 0 {
		t.Errorf("audit verify: %s", r)
	}
}

// TestInstanceLoginsFromTheCommandLine (R19): kluis logins --stop stops the
// logins of every organisation, also of one created afterwards, and ends
// their sessions; --resume lets people in again. Both are recorded in the
// platform chain.
func TestInstanceLoginsFromTheCommandLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := testEnv()
	mustCLI(t, env, "", "migrate", "--data", dir)
	mustCLI(t, env, "", "org", "create", "acme", "--name", "Acme", "--manager-email", "m@example.com", "--data", dir)
	for _, args := range [][]string{{}, {"--stop", "--resume"}, {"acme", "--stop"}} {
		r := cli(t, env, "", append(append([]string{"logins"}, args...), "--data", dir)...)
		if r.code != 2 {
			t.Errorf("logins %v: got %s, want a usage error", args, r)
		}
		checkErrorShape(t, r.stderr)
	}
	if got := mustCLI(t, env, "", "logins", "--stop", "--data", dir).stdout; got != "logins of every organisation stopped, 0 sessions ended\n" {
		t.Errorf("logins --stop printed %q", got)
	}
	mustCLI(t, env, "", "org", "create", "beta", "--name", "Beta", "--manager-email", "m@example.com", "--data", dir)
	st := openStore(t, dir, "")
	ctx := context.Background()
	for _, slug := range []string{"acme", "beta"} {
		o, err := st.Orgs.FindOrgBySlug(ctx, slug)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := kluistest.Login(ctx, st.SignIn, o.ID, "m@example.com", "Whatever 123 x"); kluis.ErrorCode(err) != kluis.ELoginsDisabled {
			t.Errorf("login to %s while the instance is stopped: %v, want logins_disabled", slug, err)
		}
	}
	mustCLI(t, env, "", "logins", "--resume", "--data", dir)
	o, _ := st.Orgs.FindOrgBySlug(ctx, "beta")
	if _, _, err := kluistest.Login(ctx, st.SignIn, o.ID, "m@example.com", "Whatever 123 x"); kluis.ErrorCode(err) != kluis.EUnauthenticated {
		t.Errorf("login after the resume: %v, want unauthenticated (logins open, wrong password)", err)
	}
	actions := strings.Join(queryStrings(t, "sqlite", dir, "", `SELECT action FROM audit_events WHERE chain = 'platform' AND action LIKE 'instance.%' ORDER BY seq`), " ")
	if actions != "instance.logins_stop instance.logins_resume" {
		t.Errorf("the platform chain records %q", actions)
	}
}
