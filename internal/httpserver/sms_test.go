package httpserver_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sms"
)

// lastSMS delivers the queued text messages and returns the code of the
// only new one, which must go to number.
func lastSMS(t *testing.T, a *testAPI, number string) string {
	t.Helper()
	msgs := a.env.SMS(t)
	if len(msgs) != 1 {
		t.Fatalf("%d new text messages, want 1", len(msgs))
	}
	if msgs[0].To != number {
		t.Fatalf("the text message went to %q, want %q", msgs[0].To, number)
	}
	return kluistest.SMSCode(t, msgs[0])
}

// TestSMSCodesAreASecondFactor (R17): a person verifies a number (fresh
// authentication, E.164, a code sent to it, typed back) and gets recovery
// codes with this first factor; the password step then offers "sms"; a
// code asked for a challenge completes it, once; codes lapse after five
// minutes and undelivered ones are dropped; at most three codes per
// challenge and five per person an hour go out; a code re-authenticates;
// removing the number needs a fresh authentication. The audit log records
// each step, and neither it nor the server log holds the number or a code.
func TestSMSCodesAreASecondFactor(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			clock := a.env.Clock
			const number = "+31612345678"
			other := a.login(t, o.Slug, mem.Email, mem.Password).Token

			wantInvalid(t, "a number without the country code", a.call(t, "POST", orgPath(o.Slug, "/me/sms"), mem.Token, map[string]string{"phone": "06 1234 5678"}), "phone")
			r := a.call(t, "POST", orgPath(o.Slug, "/me/sms"), mem.Token, map[string]string{"phone": "+31 6 1234-5678"})
			wantStatus(t, "start verifying", r, 202)
			if got := decodeStrict[struct {
				Phone string `json:"phone"`
			}](t, r).Phone; got != "+3********78" {
				t.Errorf("the answer shows the number as %q, want +3********78", got)
			}
			enrol := lastSMS(t, a, number)
			wrong := "000000"
			if enrol == wrong {
				wrong = "111111"
			}
			wantInvalid(t, "confirm with a wrong code", a.call(t, "POST", orgPath(o.Slug, "/me/sms/confirm"), mem.Token, map[string]string{"code": wrong}), "code")
			r = a.call(t, "POST", orgPath(o.Slug, "/me/sms/confirm"), mem.Token, map[string]string{"code": enrol})
			wantStatus(t, "confirm", r, 200)
			recovery := decodeStrict[struct {
				RecoveryCodes []string `json:"recovery_codes"`
			}](t, r).RecoveryCodes
			if len(recovery) != 10 {
				t.Fatalf("%d recovery codes with the first factor, want 10", len(recovery))
			}
			wantError(t, "another session after enrolment", a.call(t, "GET", orgPath(o.Slug, "/me"), other, nil), 401, "unauthenticated")
			wantError(t, "confirm again", a.call(t, "POST", orgPath(o.Slug, "/me/sms/confirm"), mem.Token, map[string]string{"code": enrol}), 404, "not_found")
			wantError(t, "a second number", a.call(t, "POST", orgPath(o.Slug, "/me/sms"), mem.Token, map[string]string{"phone": "+32470123456"}), 409, "conflict")

			password := func() mfaAnswer {
				t.Helper()
				r := a.call(t, "POST", orgPath(o.Slug, "/login"), "", map[string]string{"email": mem.Email, "password": mem.Password})
				wantStatus(t, "password step", r, 200)
				m := decodeStrict[mfaAnswer](t, r)
				if !m.MFARequired || strings.Join(m.Methods, ",") != "sms,recovery" {
					t.Fatalf("password step answer %s", r.body)
				}
				return m
			}
			send := func(challenge string) response {
				t.Helper()
				return a.call(t, "POST", orgPath(o.Slug, "/login/mfa/sms"), "", map[string]string{"challenge": challenge})
			}
			second := func(challenge, code string) response {
				t.Helper()
				return a.call(t, "POST", orgPath(o.Slug, "/login/mfa"), "", map[string]string{"challenge": challenge, "method": "sms", "code": code})
			}

			wantError(t, "a code for no challenge", send(strings.Repeat("A", 43)), 401, "unauthenticated")
			if n := len(a.env.SMS(t)); n != 0 {
				t.Errorf("%d text messages for no challenge, want none", n)
			}
			ch := password()
			wantError(t, "a code before one was sent", second(ch.Challenge, enrol), 401, "unauthenticated")
			wantStatus(t, "send a code", send(ch.Challenge), 202)
			code := lastSMS(t, a, number)
			r = second(ch.Challenge, code[:3]+" "+code[3:])
			wantStatus(t, "second step with the code, typed with a space", r, 200)
			if la := decodeStrict[loginAnswer](t, r); la.Token == "" || la.User == nil {
				t.Fatalf("second step answer %s", r.body)
			}
			ch2 := password()
			wantError(t, "the code again with a new challenge", second(ch2.Challenge, code), 401, "unauthenticated")
			wantStatus(t, "send a code for the new challenge", send(ch2.Challenge), 202)
			code2 := lastSMS(t, a, number)
			wantStatus(t, "its own code", second(ch2.Challenge, code2), 200)
			wantError(t, "the same code twice", second(password().Challenge, code2), 401, "unauthenticated")

			// Limits: three codes per challenge, five per person an hour
			// (four were sent this hour already).
			clock.Advance(61 * time.Minute)
			ch = password()
			for i := 0; i < kluis.SMSCodesPerChallenge; i++ {
				wantStatus(t, "a code for the challenge", send(ch.Challenge), 202)
			}
			limited := send(ch.Challenge)
			wantError(t, "a fourth code for one challenge", limited, 429, "too_many_requests")
			if limited.header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
			codes := a.env.SMS(t)
			if len(codes) != kluis.SMSCodesPerChallenge {
				t.Fatalf("%d text messages, want %d", len(codes), kluis.SMSCodesPerChallenge)
			}
			ch = password()
			for i := kluis.SMSCodesPerChallenge; i < kluis.SMSCodesPerHour; i++ {
				wantStatus(t, "a code within the hourly limit", send(ch.Challenge), 202)
			}
			wantError(t, "a sixth code in an hour", send(password().Challenge), 429, "too_many_requests")
			a.env.SMS(t)

			// Lapsed: a code of a re-authentication (bound to the session)
			// after five minutes, and an undelivered message is dropped.
			clock.Advance(61 * time.Minute)
			ch = password()
			wantStatus(t, "send a code", send(ch.Challenge), 202)
			r = second(ch.Challenge, lastSMS(t, a, number))
			wantStatus(t, "sign in", r, 200)
			token := decodeStrict[loginAnswer](t, r).Token
			clock.Advance(6 * time.Minute)
			wantError(t, "remove after six minutes", a.call(t, "DELETE", orgPath(o.Slug, "/me/sms"), token, nil), 403, "reauth_required")
			wantStatus(t, "a code for re-authentication", a.call(t, "POST", orgPath(o.Slug, "/me/reauth/sms"), token, nil), 202)
			code = lastSMS(t, a, number)
			wantStatus(t, "a code never delivered", a.call(t, "POST", orgPath(o.Slug, "/me/reauth/sms"), token, nil), 202)
			clock.Advance(kluis.SMSCodeTTL + time.Second)
			if n := len(a.env.SMS(t)); n != 0 {
				t.Errorf("%d text messages delivered after their code lapsed, want none", n)
			}
			wantInvalid(t, "reauth with a lapsed code", a.call(t, "POST", orgPath(o.Slug, "/me/reauth"), token, map[string]string{"password": mem.Password, "method": "sms", "code": code}), "code")
			wantStatus(t, "another code", a.call(t, "POST", orgPath(o.Slug, "/me/reauth/sms"), token, nil), 202)
			r = a.call(t, "POST", orgPath(o.Slug, "/me/reauth"), token, map[string]string{"password": mem.Password, "method": "sms", "code": lastSMS(t, a, number)})
			wantStatus(t, "reauth with the code", r, 200)
			fresh := decodeStrict[loginAnswer](t, r).Token
			wantStatus(t, "remove", a.call(t, "DELETE", orgPath(o.Slug, "/me/sms"), fresh, nil), 204)
			wantError(t, "remove again", a.call(t, "DELETE", orgPath(o.Slug, "/me/sms"), fresh, nil), 404, "not_found")
			a.login(t, o.Slug, mem.Email, mem.Password) // one step again

			events := a.auditLog(t, o.Slug, a.login(t, o.Slug, o.Manager.Email, o.Manager.Password).Token)
			got := countActions(events)
			for action, want := range map[string]int{
				"mfa.sms_sent/success": 12, "mfa.sms_sent/failure": 3, "mfa.sms_enrolled/success": 1, "mfa.sms_enrolled/failure": 1,
				"mfa.sms_removed/success": 1, "mfa.sms_removed/failure": 1,
			} {
				if got[action] != want {
					t.Errorf("%s recorded %d times, want %d", action, got[action], want)
				}
			}
			var all strings.Builder
			for _, e := range events {
				all.WriteString(string(e.Details))
			}
			mustNotContain(t, "the audit log", all.String(), number, "612345678", code, enrol)
			mustNotContain(t, "the server log", a.logs.String(), number, "612345678", code, enrol, recovery[0])
		})
	}
}

// TestSMSEnrolmentFollowsThePolicy (R17): with two-step sign-in off, no
// number can be verified.
func TestSMSEnrolmentFollowsThePolicy(t *testing.T) {
	a := newTestAPI(t, kluistest.Engines[0])
	o := a.newOrg(t)
	p := defaultPolicy
	p.MFA = "off"
	wantStatus(t, "policy off", a.call(t, "PUT", orgPath(o.Slug, "/policy"), o.Manager.Token, p), 200)
	wantError(t, "verify a number", a.call(t, "POST", orgPath(o.Slug, "/me/sms"), o.Manager.Token, map[string]string{"phone": "+31612345678"}), 403, "forbidden")
	if n := len(a.env.SMS(t)); n != 0 {
		t.Errorf("%d text messages, want none", n)
	}
}

// The outbox the tests read is the development sender of kluis serve.
var _ sms.Sender = (*sms.Outbox)(nil)
