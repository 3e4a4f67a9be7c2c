package httpserver_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
)

// TestOperatorPasskeyRoutesNeedAnOperatorSession (R17, R22): the operator
// realm has the users' passkey routes; without an operator session — none,
// or an organisation's — they answer 401 (pages: to the operator's
// sign-in), and the options of a second step need a live challenge.
func TestOperatorPasskeyRoutesNeedAnOperatorSession(t *testing.T) {
	a := newTestAPI(t, kluistest.Engines[0])
	o := a.newOrg(t)
	for _, rq := range []struct{ method, path string }{
		{"GET", "/api/v1/operator/me/passkeys"},
		{"POST", "/api/v1/operator/me/passkeys/options"},
		{"POST", "/api/v1/operator/me/passkeys"},
		{"DELETE", "/api/v1/operator/me/passkeys/" + strings.Repeat("0", 26)},
		{"POST", "/api/v1/operator/me/reauth/webauthn/options"},
	} {
		for who, token := range map[string]string{"no one": "", "an organisation's manager": o.Manager.Token} {
			var body any
			if rq.method == "POST" {
				body = map[string]any{}
			}
			wantError(t, rq.method+" "+rq.path+" by "+who, a.call(t, rq.method, rq.path, token, body), 401, "unauthenticated")
		}
	}
	wantError(t, "second-step options without a challenge", a.call(t, "POST", "/api/v1/operator/login/mfa/webauthn/options", "",
		map[string]string{"challenge": strings.Repeat("a", 43)}), 401, "unauthenticated")

	nobody := newBrowser(a)
	manager := signInPage(t, a, o.Slug, o.Manager)
	for _, path := range []string{"/operator/account/passkeys/new", "/operator/account/passkeys", "/operator/account/passkeys/" + strings.Repeat("0", 26) + "/remove"} {
		wantPage(t, path+" without a session", nobody.post(t, path, url.Values{}), 303, "/operator/login")
		wantPage(t, path+" as an organisation's manager", manager.post(t, path, url.Values{}), 303, "/operator/login")
	}
}

// operatorPasskey registers a passkey for the operator's fresh session,
// or skips the test while the store offers operators none.
func operatorPasskey(t *testing.T, a *testAPI, token, name string) (*kluistest.Authenticator, passkeyObject, []string) {
	t.Helper()
	r := a.call(t, "POST", "/api/v1/operator/me/passkeys/options", token, nil)
	if r.status == 403 && strings.Contains(string(r.body), `"forbidden"`) {
		t.Skip("the store offers operators no passkeys yet (kluistest's temporary legacy adapter answers forbidden); " +
			"this test runs once internal/sqlstore implements kluis.FactorService for the operator scope")
	}
	return addPasskeyAt(t, a, "/api/v1/operator", token, name)
}

// TestOperatorPasskeyIsASecondFactor (R17, R22): operator staff enrol a
// passkey as users do — as their first factor, which ends the session's
// limit to enrolment and makes recovery codes, or beside an app; the
// password step then offers "webauthn"; an assertion for the challenge's
// ceremony completes the sign-in once; a passkey re-authenticates; the
// pages offer it on the second step and list it on the account page; it
// can be removed while another factor remains.
func TestOperatorPasskeyIsASecondFactor(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			clock := a.env.Clock
			acc := newOperator(t, a)
			la := decodeStrict[loginAnswer](t, a.call(t, "POST", "/api/v1/operator/login", "", map[string]string{"email": acc.Email, "password": acc.Password}))
			if !la.MFAEnrolmentRequired {
				t.Fatalf("an operator without a factor got a full session")
			}
			wantError(t, "organisations before the passkey", a.call(t, "GET", "/api/v1/orgs", la.Token, nil), 403, "mfa_enrolment_required")
			auth, pk, recovery := operatorPasskey(t, a, la.Token, "Laptop")
			if pk.Name != "Laptop" || len(recovery) != 10 {
				t.Fatalf("registered %+v with %d recovery codes, want Laptop with 10", pk, len(recovery))
			}
			wantStatus(t, "organisations after the passkey", a.call(t, "GET", "/api/v1/orgs", la.Token, nil), 200)

			password := func() mfaAnswer {
				t.Helper()
				r := a.call(t, "POST", "/api/v1/operator/login", "", map[string]string{"email": acc.Email, "password": acc.Password})
				wantStatus(t, "password step", r, 200)
				m := decodeStrict[mfaAnswer](t, r)
				if !m.MFARequired || strings.Join(m.Methods, ",") != "webauthn,recovery" {
					t.Fatalf("password step answer %s, want webauthn and recovery", r.body)
				}
				return m
			}
			options := func(challenge string) []byte {
				t.Helper()
				r := a.call(t, "POST", "/api/v1/operator/login/mfa/webauthn/options", "", map[string]string{"challenge": challenge})
				wantStatus(t, "assertion options", r, 200)
				return r.body
			}
			finish := func(challenge string, assertion []byte) response {
				t.Helper()
				return a.call(t, "POST", "/api/v1/operator/login/mfa", "", map[string]any{"challenge": challenge, "method": "webauthn", "assertion": json.RawMessage(assertion)})
			}
			ch := password()
			assertion := auth.Get(t, options(ch.Challenge))
			r := finish(ch.Challenge, assertion)
			wantStatus(t, "second step with the passkey", r, 200)
			full := decodeStrict[loginAnswer](t, r)
			if full.Token == "" || full.User != nil || full.MFAEnrolmentRequired {
				t.Fatalf("second step answer %s, want a full operator session", r.body)
			}
			ch = password()
			options(ch.Challenge)
			wantError(t, "the same assertion with a new challenge", finish(ch.Challenge, assertion), 401, "unauthenticated")

			// A passkey re-authenticates.
			clock.Advance(6 * time.Minute)
			wantError(t, "register after six minutes", a.call(t, "POST", "/api/v1/operator/me/passkeys/options", full.Token, nil), 403, "reauth_required")
			r = a.call(t, "POST", "/api/v1/operator/me/reauth/webauthn/options", full.Token, nil)
			wantStatus(t, "reauth options", r, 200)
			r = a.call(t, "POST", "/api/v1/operator/me/reauth", full.Token, map[string]any{"password": acc.Password, "method": "webauthn", "assertion": json.RawMessage(auth.Get(t, r.body))})
			wantStatus(t, "reauth with the passkey", r, 200)
			fresh := decodeStrict[loginAnswer](t, r).Token

			// An app beside it; then the passkey can go.
			r = a.call(t, "POST", "/api/v1/operator/me/totp", fresh, nil)
			wantStatus(t, "start TOTP", r, 200)
			secret := decodeStrict[struct {
				Secret     string `json:"secret"`
				OTPAuthURL string `json:"otpauth_url"`
			}](t, r).Secret
			wantStatus(t, "confirm TOTP", a.call(t, "POST", "/api/v1/operator/me/totp/confirm", fresh, map[string]string{"code": kluistest.OATHToolCode(t, secret, clock.Now())}), 200)
			r = a.call(t, "GET", "/api/v1/operator/me/passkeys", fresh, nil)
			wantStatus(t, "list", r, 200)
			list := decodeStrict[struct {
				Passkeys []passkeyObject `json:"passkeys"`
			}](t, r).Passkeys
			if len(list) != 1 || list[0].Name != "Laptop" || list[0].LastUsedAt == nil {
				t.Errorf("passkeys listed %s", r.body)
			}

			// The pages: the second step offers the passkey, the account
			// page lists it.
			b := newBrowser(a)
			wantPage(t, "password", b.post(t, "/operator/login", url.Values{"email": {acc.Email}, "password": {acc.Password}}), 303, "/operator/login/mfa")
			p := b.get(t, "/operator/login/mfa")
			wantPage(t, "second step page", p, 200, "")
			if !strings.Contains(p.body, `id="mfa-passkey"`) || !strings.Contains(p.body, `data-webauthn="get"`) || strings.Contains(p.body, `id="mfa-sms-send"`) {
				t.Errorf("the operator's second step does not offer the passkey (and no SMS):\n%s", excerpt(p.body))
			}
			clock.Advance(30 * time.Second)
			wantPage(t, "the code", b.post(t, "/operator/login/mfa", url.Values{"method": {"totp"}, "code": {kluistest.OATHToolCode(t, secret, clock.Now())}}), 303, "/operator")
			p = b.get(t, "/operator/account")
			if !strings.Contains(p.body, `id="passkeys"`) || !strings.Contains(p.body, "Laptop") || !strings.Contains(p.body, `id="passkey-new"`) {
				t.Errorf("the operator's account page does not list the passkey:\n%s", excerpt(p.body))
			}
			p = b.get(t, "/operator/account/reauth")
			if !strings.Contains(p.body, `id="reauth-passkey"`) {
				t.Errorf("the operator's re-authentication does not offer the passkey:\n%s", excerpt(p.body))
			}

			wantStatus(t, "remove the passkey", a.call(t, "DELETE", "/api/v1/operator/me/passkeys/"+pk.ID, fresh, nil), 204)
			if m := decodeStrict[mfaAnswer](t, a.call(t, "POST", "/api/v1/operator/login", "", map[string]string{"email": acc.Email, "password": acc.Password})); strings.Contains(strings.Join(m.Methods, ","), "webauthn") {
				t.Errorf("after the removal the password step still offers %v", m.Methods)
			}
			got := platformActions(t, a)
			if got["operator.login_failed/failure"] < 1 {
				t.Errorf("the replayed assertion was not recorded: %v", got)
			}
			mustNotContain(t, "the server log", a.logs.String(), recovery[0], ch.Challenge, "Laptop")
		})
	}
}

// TestOperatorRecoveryCodesOutliveTheirApp (R17): recovery codes made before
// an operator's codes had a key of their own are keyed by the recovery key
// kept on the operator's authenticator-app row. When that app goes while a
// passkey stays, the key moves first: the codes still sign the operator in.
func TestOperatorRecoveryCodesOutliveTheirApp(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			ctx := context.Background()
			acc := newOperator(t, a)
			token := decodeStrict[loginAnswer](t, a.call(t, "POST", "/api/v1/operator/login", "", map[string]string{"email": acc.Email, "password": acc.Password})).Token
			r := a.call(t, "POST", "/api/v1/operator/me/totp", token, nil)
			wantStatus(t, "start TOTP", r, 200)
			secret := decodeStrict[struct {
				Secret     string `json:"secret"`
				OTPAuthURL string `json:"otpauth_url"`
			}](t, r).Secret
			r = a.call(t, "POST", "/api/v1/operator/me/totp/confirm", token, map[string]string{"code": kluistest.OATHToolCode(t, secret, a.env.Clock.Now())})
			wantStatus(t, "confirm TOTP", r, 200)
			recovery := decodeStrict[struct {
				RecoveryCodes []string `json:"recovery_codes"`
			}](t, r).RecoveryCodes
			if len(recovery) != 10 {
				t.Fatalf("%d recovery codes, want 10", len(recovery))
			}
			operatorPasskey(t, a, token, "Laptop")

			// The codes' key where it was kept before operators had one.
			rows := a.env.Query(t, `SELECT recovery_key FROM operators WHERE id = '`+acc.ID+`'`)
			key, err := a.env.Core.Open(ctx, keys.FieldRef{Table: "operators", Column: "recovery_key", Row: acc.ID}, rows[0][0])
			if err != nil {
				t.Fatalf("open the recovery key: %v", err)
			}
			app := string(a.env.Query(t, `SELECT id FROM factors WHERE org_id = '' AND subject = '`+acc.ID+`' AND kind = 'totp'`)[0][0])
			legacy, err := a.env.Core.Seal(ctx, keys.PlatformKey(), keys.FieldRef{Table: "operator_factors", Column: "recovery_key", Row: app}, key)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.env.DB.WriteExec(ctx, `UPDATE factors SET recovery_key = ? WHERE id = ?`, legacy, app); err != nil {
				t.Fatal(err)
			}
			a.env.MustExec(t, `UPDATE operators SET recovery_key = NULL WHERE id = '`+acc.ID+`'`)

			// The app goes (no route offers this yet; the service does).
			id, err := a.env.SignIn.Authenticate(ctx, kluis.RealmOperator, kluis.Origin{}, token)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.env.Factors.RemoveFactor(ctx, kluis.OperatorScope, id.Actor, kluis.FactorTOTP, ""); err != nil {
				t.Fatalf("remove the app: %v", err)
			}

			r = a.call(t, "POST", "/api/v1/operator/login", "", map[string]string{"email": acc.Email, "password": acc.Password})
			wantStatus(t, "password step", r, 200)
			m := decodeStrict[mfaAnswer](t, r)
			if strings.Join(m.Methods, ",") != "webauthn,recovery" {
				t.Fatalf("methods after the app went: %v, want webauthn and recovery", m.Methods)
			}
			r = a.call(t, "POST", "/api/v1/operator/login/mfa", "", map[string]string{"challenge": m.Challenge, "method": "recovery", "code": recovery[0]})
			wantStatus(t, "second step with a recovery code", r, 200)
		})
	}
}
