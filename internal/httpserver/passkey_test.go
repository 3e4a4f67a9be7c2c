package httpserver_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/kluistest"
)

// The test server's public URL is http://kluis.test: its relying-party id
// is kluis.test and its only origin http://kluis.test.
const (
	testOrigin = "http://kluis.test"
	testRPID   = "kluis.test"
)

type passkeyObject struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// addPasskey registers a new passkey of a software authenticator for the
// holder of token (a fresh session) and returns it and the recovery codes.
func addPasskey(t *testing.T, a *testAPI, slug, token, name string) (*kluistest.Authenticator, passkeyObject, []string) {
	t.Helper()
	return addPasskeyAt(t, a, orgPath(slug, ""), token, name)
}

// addPasskeyAt is addPasskey in the realm whose API is at base
// (/api/v1/orgs/SLUG, /api/v1/operator).
func addPasskeyAt(t *testing.T, a *testAPI, base, token, name string) (*kluistest.Authenticator, passkeyObject, []string) {
	t.Helper()
	auth := kluistest.NewAuthenticator(t, testOrigin, testRPID)
	r := a.call(t, "POST", base+"/me/passkeys/options", token, nil)
	wantStatus(t, "registration options", r, 200)
	r = a.call(t, "POST", base+"/me/passkeys", token, map[string]any{"name": name, "credential": json.RawMessage(auth.Create(t, r.body))})
	wantStatus(t, "register the passkey", r, 201)
	got := decodeStrict[struct {
		Passkey       passkeyObject `json:"passkey"`
		RecoveryCodes []string      `json:"recovery_codes"`
	}](t, r)
	return auth, got.Passkey, got.RecoveryCodes
}

// TestPasskeyIsASecondFactor (R17): a person registers a passkey (fresh
// authentication needed, several allowed, each named); the password step
// then offers "webauthn"; an assertion for the challenge's own ceremony
// completes the sign-in, once; a replayed or cloned (sign count gone back)
// answer is refused and the clone recorded; a passkey re-authenticates too;
// removing the last one makes the sign-in one step again.
func TestPasskeyIsASecondFactor(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			clock := a.env.Clock
			other := a.login(t, o.Slug, mem.Email, mem.Password).Token

			r := a.call(t, "GET", orgPath(o.Slug, "/me/passkeys"), mem.Token, nil)
			wantStatus(t, "list before", r, 200)
			if string(r.body) != `{"passkeys":[]}`+"\n" && string(r.body) != `{"passkeys":[]}` {
				t.Errorf("passkeys before registration: %s", r.body)
			}
			auth, pk, recovery := addPasskey(t, a, o.Slug, mem.Token, "Laptop")
			if pk.Name != "Laptop" || len(recovery) != 10 {
				t.Fatalf("registered %+v with %d recovery codes, want Laptop with 10", pk, len(recovery))
			}
			wantError(t, "the same answer again", a.call(t, "POST", orgPath(o.Slug, "/me/passkeys"), mem.Token, map[string]any{"name": "Again", "credential": json.RawMessage(kluistest.NewAuthenticator(t, testOrigin, testRPID).Create(t, []byte(`{"publicKey":{"challenge":"AAAA","rp":{"id":"kluis.test"},"user":{"id":"AAAA"}}}`)))}), 404, "not_found")
			wantError(t, "another session after the registration", a.call(t, "GET", orgPath(o.Slug, "/me"), other, nil), 401, "unauthenticated")
			clock.Advance(time.Second)
			_, second, more := addPasskey(t, a, o.Slug, mem.Token, "Blue key")
			if len(more) != 0 {
				t.Errorf("a second passkey made %d new recovery codes, want none", len(more))
			}

			password := func() mfaAnswer {
				t.Helper()
				r := a.call(t, "POST", orgPath(o.Slug, "/login"), "", map[string]string{"email": mem.Email, "password": mem.Password})
				wantStatus(t, "password step", r, 200)
				m := decodeStrict[mfaAnswer](t, r)
				if !m.MFARequired || strings.Join(m.Methods, ",") != "webauthn,recovery" {
					t.Fatalf("password step answer %s", r.body)
				}
				return m
			}
			options := func(challenge string) []byte {
				t.Helper()
				r := a.call(t, "POST", orgPath(o.Slug, "/login/mfa/webauthn/options"), "", map[string]string{"challenge": challenge})
				wantStatus(t, "assertion options", r, 200)
				return r.body
			}
			finish := func(challenge string, assertion []byte) response {
				t.Helper()
				return a.call(t, "POST", orgPath(o.Slug, "/login/mfa"), "", map[string]any{"challenge": challenge, "method": "webauthn", "assertion": json.RawMessage(assertion)})
			}

			wantError(t, "options without a challenge", a.call(t, "POST", orgPath(o.Slug, "/login/mfa/webauthn/options"), "", map[string]string{"challenge": strings.Repeat("a", 43)}), 401, "unauthenticated")
			ch := password()
			assertion := auth.Get(t, options(ch.Challenge))
			r = finish(ch.Challenge, assertion)
			wantStatus(t, "second step with the passkey", r, 200)
			if la := decodeStrict[loginAnswer](t, r); la.Token == "" || la.User == nil {
				t.Fatalf("second step answer %s", r.body)
			}
			ch = password()
			options(ch.Challenge)
			wantError(t, "the same assertion with a new challenge", finish(ch.Challenge, assertion), 401, "unauthenticated")

			ch = password()
			wantError(t, "an assertion without options", finish(ch.Challenge, auth.Get(t, []byte(`{"publicKey":{"challenge":"AAAA","rpId":"kluis.test"}}`))), 401, "unauthenticated")

			// A cloned key: its sign count goes back.
			ch = password()
			auth.SignCount = 0
			wantError(t, "a sign count that went back", finish(ch.Challenge, auth.Get(t, options(ch.Challenge))), 401, "unauthenticated")
			auth.SignCount = 100
			ch = password()
			r = finish(ch.Challenge, auth.Get(t, options(ch.Challenge)))
			wantStatus(t, "the passkey with its count going up", r, 200)
			token := decodeStrict[loginAnswer](t, r).Token

			// A passkey re-authenticates.
			clock.Advance(6 * time.Minute)
			wantError(t, "remove after six minutes", a.call(t, "DELETE", orgPath(o.Slug, "/me/passkeys/"+pk.ID), token, nil), 403, "reauth_required")
			wantError(t, "register after six minutes", a.call(t, "POST", orgPath(o.Slug, "/me/passkeys/options"), token, nil), 403, "reauth_required")
			r = a.call(t, "POST", orgPath(o.Slug, "/me/reauth/webauthn/options"), token, nil)
			wantStatus(t, "reauth options", r, 200)
			r = a.call(t, "POST", orgPath(o.Slug, "/me/reauth"), token, map[string]any{"password": mem.Password, "method": "webauthn", "assertion": json.RawMessage(auth.Get(t, r.body))})
			wantStatus(t, "reauth with the passkey", r, 200)
			token = decodeStrict[loginAnswer](t, r).Token

			r = a.call(t, "GET", orgPath(o.Slug, "/me/passkeys"), token, nil)
			wantStatus(t, "list", r, 200)
			list := decodeStrict[struct {
				Passkeys []passkeyObject `json:"passkeys"`
			}](t, r).Passkeys
			if len(list) != 2 || list[0].Name != "Laptop" || list[0].LastUsedAt == nil || list[1].Name != "Blue key" || list[1].LastUsedAt != nil {
				t.Errorf("passkeys listed %s", r.body)
			}
			wantError(t, "remove another's id", a.call(t, "DELETE", orgPath(o.Slug, "/me/passkeys/"+strings.Repeat("0", 26)), token, nil), 404, "not_found")
			wantStatus(t, "remove one", a.call(t, "DELETE", orgPath(o.Slug, "/me/passkeys/"+pk.ID), token, nil), 204)
			password()
			wantStatus(t, "remove the other", a.call(t, "DELETE", orgPath(o.Slug, "/me/passkeys/"+second.ID), token, nil), 204)
			a.login(t, o.Slug, mem.Email, mem.Password) // one step again

			got := countActions(a.auditLog(t, o.Slug, a.login(t, o.Slug, o.Manager.Email, o.Manager.Password).Token))
			for action, want := range map[string]int{
				"mfa.passkey_add/success": 2, "mfa.passkey_remove/success": 2, "mfa.passkey_cloned/failure": 1,
				"auth.reauth/success": 1,
			} {
				if got[action] != want {
					t.Errorf("%s recorded %d times, want %d", action, got[action], want)
				}
			}
			mustNotContain(t, "the server log", a.logs.String(), recovery[0], ch.Challenge, "Laptop", "Blue key")
		})
	}
}

// setMFAPolicy sets the organisation's mfa policy through the API, in the
// manager's session of the fixture.
func setMFAPolicy(t *testing.T, a *testAPI, o orgFixture, mfa string) {
	t.Helper()
	wantStatus(t, "set the mfa policy to "+mfa, a.call(t, "PUT", orgPath(o.Slug, "/policy"), o.Manager.Token, map[string]any{
		"password_min_length": 8, "password_require_digit": false, "password_require_upper": false,
		"session_idle_minutes": 30, "session_max_hours": 12, "mfa": mfa, "lockout_threshold": 5,
	}), 200)
}

// TestMFAPolicyRequiredLimitsSessionsToEnrolment (R17): with the policy
// "required", a person without a second factor signs in to a session that
// may only enrol one: the login says so, every other route answers 403
// mfa_enrolment_required; after enrolling (an app or a passkey) the session
// is a full one. With "off" no factor can be added, and factors enrolled
// before still count.
func TestMFAPolicyRequiredLimitsSessionsToEnrolment(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			keyed := a.addUser(t, o, "member")
			addPasskey(t, a, o.Slug, o.Manager.Token, "Manager's key") // managers enrol before they require it
			setMFAPolicy(t, a, o, "required")

			r := a.call(t, "POST", orgPath(o.Slug, "/login"), "", map[string]string{"email": mem.Email, "password": mem.Password})
			wantStatus(t, "sign in without a factor", r, 200)
			var la struct {
				Token                string `json:"token"`
				MFAEnrolmentRequired bool   `json:"mfa_enrolment_required"`
			}
			if err := json.Unmarshal(r.body, &la); err != nil || !la.MFAEnrolmentRequired || la.Token == "" {
				t.Fatalf("login answer %s, want a token and mfa_enrolment_required", r.body)
			}
			for _, rq := range []struct{ method, path string }{
				{"GET", "/me/sessions"}, {"PATCH", "/me"}, {"GET", "/users"}, {"GET", "/policy"}, {"GET", "/audit"},
				{"DELETE", "/me/totp"}, {"GET", "/me/tokens"},
			} {
				wantError(t, rq.method+" "+rq.path+" from an enrolment session", a.call(t, rq.method, orgPath(o.Slug, rq.path), la.Token, map[string]any{}), 403, "mfa_enrolment_required")
			}
			wantStatus(t, "read me", a.call(t, "GET", orgPath(o.Slug, "/me"), la.Token, nil), 200)
			r = a.call(t, "POST", orgPath(o.Slug, "/me/totp"), la.Token, nil)
			wantStatus(t, "start TOTP", r, 200)
			secret := decodeStrict[struct {
				Secret     string `json:"secret"`
				OTPAuthURL string `json:"otpauth_url"`
			}](t, r).Secret
			wantStatus(t, "confirm TOTP", a.call(t, "POST", orgPath(o.Slug, "/me/totp/confirm"), la.Token, map[string]string{"code": kluistest.OATHToolCode(t, secret, a.env.Clock.Now())}), 200)
			wantStatus(t, "the same session after enrolment", a.call(t, "GET", orgPath(o.Slug, "/me/sessions"), la.Token, nil), 200)

			// A passkey is enrolment too.
			r = a.call(t, "POST", orgPath(o.Slug, "/login"), "", map[string]string{"email": keyed.Email, "password": keyed.Password})
			if err := json.Unmarshal(r.body, &la); err != nil || !la.MFAEnrolmentRequired {
				t.Fatalf("login answer %s", r.body)
			}
			wantError(t, "users before the passkey", a.call(t, "GET", orgPath(o.Slug, "/me/sessions"), la.Token, nil), 403, "mfa_enrolment_required")
			_, _, codes := addPasskey(t, a, o.Slug, la.Token, "Phone")
			if len(codes) != 10 {
				t.Errorf("%d recovery codes, want 10", len(codes))
			}
			wantStatus(t, "sessions after the passkey", a.call(t, "GET", orgPath(o.Slug, "/me/sessions"), la.Token, nil), 200)

			// Off: nothing new is enrolled; what is enrolled still counts.
			setMFAPolicy(t, a, o, "off")
			other := a.addUser(t, o, "member")
			wantError(t, "start TOTP with the policy off", a.call(t, "POST", orgPath(o.Slug, "/me/totp"), other.Token, nil), 403, "forbidden")
			wantError(t, "a passkey with the policy off", a.call(t, "POST", orgPath(o.Slug, "/me/passkeys/options"), other.Token, nil), 403, "forbidden")
			r = a.call(t, "POST", orgPath(o.Slug, "/login"), "", map[string]string{"email": mem.Email, "password": mem.Password})
			if m := decodeStrict[mfaAnswer](t, r); !m.MFARequired {
				t.Errorf("with the policy off, an enrolled factor is not asked: %s", r.body)
			}
		})
	}
}

// TestManagerSeesFactorsAndResetsThem (R17): a manager reads which methods
// each person enrolled (never a secret), and resets a person's factors with
// a fresh authentication: recorded, mailed, every session of the person
// ended, and their next sign-in is one step. Members cannot; a manager's
// own factors are theirs to remove on My account.
func TestManagerSeesFactorsAndResetsThem(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			plain := a.addUser(t, o, "member")
			addPasskey(t, a, o.Slug, mem.Token, "Phone")

			type managed struct {
				ID      string   `json:"id"`
				Factors []string `json:"factors"`
			}
			r := a.call(t, "GET", orgPath(o.Slug, "/users/"+mem.ID), o.Manager.Token, nil)
			wantStatus(t, "read the member", r, 200)
			var one managed
			if err := json.Unmarshal(r.body, &one); err != nil || strings.Join(one.Factors, ",") != "webauthn" {
				t.Errorf("the member as read: %s, want factors [webauthn]", r.body)
			}
			r = a.call(t, "GET", orgPath(o.Slug, "/users"), o.Manager.Token, nil)
			wantStatus(t, "list", r, 200)
			var list struct {
				Users []managed `json:"users"`
			}
			if err := json.Unmarshal(r.body, &list); err != nil {
				t.Fatal(err)
			}
			for _, u := range list.Users {
				want := ""
				if u.ID == mem.ID {
					want = "webauthn"
				}
				if u.Factors == nil || strings.Join(u.Factors, ",") != want {
					t.Errorf("user %s listed with factors %v, want [%s]", u.ID, u.Factors, want)
				}
			}
			mustNotContain(t, "the list", string(r.body), "Phone", "publicKey", "record")

			wantError(t, "a member resets another", a.call(t, "DELETE", orgPath(o.Slug, "/users/"+mem.ID+"/factors"), plain.Token, nil), 403, "forbidden")
			wantError(t, "a manager resets their own", a.call(t, "DELETE", orgPath(o.Slug, "/users/"+o.Manager.ID+"/factors"), o.Manager.Token, nil), 409, "conflict")
			wantError(t, "nothing to reset", a.call(t, "DELETE", orgPath(o.Slug, "/users/"+plain.ID+"/factors"), o.Manager.Token, nil), 404, "not_found")
			a.env.Clock.Advance(6 * time.Minute)
			wantError(t, "a stale manager", a.call(t, "DELETE", orgPath(o.Slug, "/users/"+mem.ID+"/factors"), o.Manager.Token, nil), 403, "reauth_required")
			r = a.call(t, "POST", orgPath(o.Slug, "/me/reauth"), o.Manager.Token, map[string]string{"password": o.Manager.Password})
			wantStatus(t, "manager reauth", r, 200)
			fresh := decodeStrict[loginAnswer](t, r).Token
			before := len(a.mail(t))
			wantStatus(t, "reset", a.call(t, "DELETE", orgPath(o.Slug, "/users/"+mem.ID+"/factors"), fresh, nil), 204)
			wantError(t, "the member's session after the reset", a.call(t, "GET", orgPath(o.Slug, "/me"), mem.Token, nil), 401, "unauthenticated")
			if mails := a.mail(t); len(mails) != before+1 || !strings.Contains(mails[len(mails)-1], mem.Email) || !strings.Contains(mails[len(mails)-1], "reset") {
				t.Errorf("after the reset, %d new mails: %q", len(mails)-before, mails[before:])
			}
			a.login(t, o.Slug, mem.Email, mem.Password) // one step again
			got := countActions(a.auditLog(t, o.Slug, fresh))
			if got["mfa.reset/success"] != 1 || got["mfa.reset/denied"] != 1 {
				t.Errorf("mfa.reset recorded %v", got)
			}
		})
	}
}
