package httpserver_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/kluistest"
)

type mfaAnswer struct {
	MFARequired bool     `json:"mfa_required"`
	Challenge   string   `json:"challenge"`
	Methods     []string `json:"methods"`
	ExpiresAt   string   `json:"expires_at"`
}

// TestTwoStepLoginWithAnAuthenticatorApp (R17): enrolment with a QR secret
// confirmed by a first code; the password step then opens no session but a
// challenge; codes from oathtool complete it, each once, one step either
// way; recovery codes work once; the challenge is single-use, short-lived
// and ends after five wrong codes; removing the factor needs a fresh
// authentication, which replaces the session.
func TestTwoStepLoginWithAnAuthenticatorApp(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			clock := a.env.Clock
			other := a.login(t, o.Slug, mem.Email, mem.Password).Token

			r := a.call(t, "POST", orgPath(o.Slug, "/me/totp"), mem.Token, nil)
			wantStatus(t, "start TOTP", r, 200)
			start := decodeStrict[struct {
				Secret     string `json:"secret"`
				OTPAuthURL string `json:"otpauth_url"`
			}](t, r)
			if !strings.HasPrefix(start.OTPAuthURL, "otpauth://totp/") || !strings.Contains(start.OTPAuthURL, start.Secret) {
				t.Fatalf("start answer %s", r.body)
			}
			wantInvalid(t, "confirm with a wrong code", a.call(t, "POST", orgPath(o.Slug, "/me/totp/confirm"), mem.Token, map[string]string{"code": "000000"}), "code")
			first := kluistest.OATHToolCode(t, start.Secret, clock.Now())
			r = a.call(t, "POST", orgPath(o.Slug, "/me/totp/confirm"), mem.Token, map[string]string{"code": first})
			wantStatus(t, "confirm", r, 200)
			recovery := decodeStrict[struct {
				RecoveryCodes []string `json:"recovery_codes"`
			}](t, r).RecoveryCodes
			if len(recovery) != 10 {
				t.Fatalf("%d recovery codes, want 10", len(recovery))
			}
			wantError(t, "another session after enrolment", a.call(t, "GET", orgPath(o.Slug, "/me"), other, nil), 401, "unauthenticated")
			a.me(t, o.Slug, mem.Token)

			password := func() mfaAnswer {
				t.Helper()
				r := a.call(t, "POST", orgPath(o.Slug, "/login"), "", map[string]string{"email": mem.Email, "password": mem.Password})
				wantStatus(t, "password step", r, 200)
				if r.header.Get("Set-Cookie") != "" {
					t.Error("the password step set a cookie")
				}
				m := decodeStrict[mfaAnswer](t, r)
				if !m.MFARequired || len(m.Challenge) != 43 || strings.Join(m.Methods, ",") != "totp,recovery" {
					t.Fatalf("password step answer %s", r.body)
				}
				return m
			}
			second := func(challenge, method, code string) response {
				t.Helper()
				return a.call(t, "POST", orgPath(o.Slug, "/login/mfa"), "", map[string]string{"challenge": challenge, "method": method, "code": code})
			}

			ch := password()
			wantError(t, "the confirming code again", second(ch.Challenge, "totp", first), 401, "unauthenticated")
			wantError(t, "a code of 90 s ago", second(ch.Challenge, "totp", kluistest.OATHToolCode(t, start.Secret, clock.Now().Add(-90*time.Second))), 401, "unauthenticated")
			clock.Advance(30 * time.Second)
			code := kluistest.OATHToolCode(t, start.Secret, clock.Now())
			r = second(ch.Challenge, "totp", code)
			wantStatus(t, "the next code", r, 200)
			if la := decodeStrict[loginAnswer](t, r); la.Token == "" || la.User == nil {
				t.Fatalf("second step answer %s", r.body)
			}
			wantError(t, "the challenge again", second(ch.Challenge, "totp", kluistest.OATHToolCode(t, start.Secret, clock.Now().Add(30*time.Second))), 401, "unauthenticated")
			wantError(t, "the code again with a new challenge", second(password().Challenge, "totp", code), 401, "unauthenticated")

			ch = password()
			wantStatus(t, "a recovery code, typed loosely", second(ch.Challenge, "recovery", strings.ToUpper(strings.ReplaceAll(recovery[0], "-", " "))), 200)
			wantError(t, "the recovery code again", second(password().Challenge, "recovery", recovery[0]), 401, "unauthenticated")

			ch = password()
			for i := 0; i < 5; i++ {
				wantError(t, "a wrong code", second(ch.Challenge, "totp", "123456"), 401, "unauthenticated")
			}
			clock.Advance(30 * time.Second)
			wantError(t, "a right code after five wrong ones", second(ch.Challenge, "totp", kluistest.OATHToolCode(t, start.Secret, clock.Now())), 401, "unauthenticated")
			ch = password()
			clock.Advance(6 * time.Minute)
			wantError(t, "a right code after six minutes", second(ch.Challenge, "totp", kluistest.OATHToolCode(t, start.Secret, clock.Now())), 401, "unauthenticated")

			// A password reset does not bypass the factor.
			wantStatus(t, "ask a reset", a.call(t, "POST", orgPath(o.Slug, "/password-reset"), "", map[string]string{"email": mem.Email}), 202)
			mem.Password = uniquePassword()
			wantStatus(t, "reset", a.call(t, "POST", orgPath(o.Slug, "/password-reset/confirm"), "", map[string]string{"token": kluistest.Token(kluistest.Link(t, a.mail(t)[0])), "new_password": mem.Password}), 204)
			ch = password()
			clock.Advance(30 * time.Second)
			r = second(ch.Challenge, "totp", kluistest.OATHToolCode(t, start.Secret, clock.Now()))
			wantStatus(t, "sign in after the reset", r, 200)
			token := decodeStrict[loginAnswer](t, r).Token

			// Removing the factor needs a fresh authentication.
			clock.Advance(6 * time.Minute)
			wantError(t, "remove after six minutes", a.call(t, "DELETE", orgPath(o.Slug, "/me/totp"), token, nil), 403, "reauth_required")
			wantInvalid(t, "reauth without the code", a.call(t, "POST", orgPath(o.Slug, "/me/reauth"), token, map[string]string{"password": mem.Password}), "code")
			clock.Advance(30 * time.Second)
			r = a.call(t, "POST", orgPath(o.Slug, "/me/reauth"), token, map[string]string{"password": mem.Password, "code": kluistest.OATHToolCode(t, start.Secret, clock.Now())})
			wantStatus(t, "reauth", r, 200)
			fresh := decodeStrict[loginAnswer](t, r).Token
			wantError(t, "the session before reauth", a.call(t, "GET", orgPath(o.Slug, "/me"), token, nil), 401, "unauthenticated")
			wantStatus(t, "remove", a.call(t, "DELETE", orgPath(o.Slug, "/me/totp"), fresh, nil), 204)
			a.login(t, o.Slug, mem.Email, mem.Password) // one step again

			got := countActions(a.auditLog(t, o.Slug, a.login(t, o.Slug, o.Manager.Email, o.Manager.Password).Token))
			for action, want := range map[string]int{
				"mfa.totp_start/success": 1, "mfa.totp_enable/failure": 1, "mfa.totp_enable/success": 1, "mfa.totp_disable/success": 1,
				"auth.login_password/success": 7, "auth.reauth/success": 1, "auth.reauth/failure": 1,
			} {
				if got[action] != want {
					t.Errorf("%s recorded %d times, want %d", action, got[action], want)
				}
			}
			mustNotContain(t, "the server log", a.logs.String(), start.Secret, recovery[0], ch.Challenge)
		})
	}
}
