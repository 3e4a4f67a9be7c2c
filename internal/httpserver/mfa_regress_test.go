package httpserver_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/kluistest"
)

// Regression tests for a security review of the account-security work.

// enrolTOTP sets up an authenticator app for acc (whose session is fresh)
// and returns its secret.
func enrolTOTP(t *testing.T, a *testAPI, slug string, acc account) string {
	t.Helper()
	r := a.call(t, "POST", orgPath(slug, "/me/totp"), acc.Token, nil)
	wantStatus(t, "start TOTP", r, 200)
	secret := decodeStrict[struct {
		Secret     string `json:"secret"`
		OTPAuthURL string `json:"otpauth_url"`
	}](t, r).Secret
	wantStatus(t, "confirm TOTP", a.call(t, "POST", orgPath(slug, "/me/totp/confirm"), acc.Token, map[string]string{"code": kluistest.OATHToolCode(t, secret, a.env.Clock.Now())}), 200)
	return secret
}

// TestWrongCodesLockTheSecondFactorAcrossChallenges: a new challenge does not
// buy new guesses; after five wrong codes in a row no code works for a
// minute, then twice as long after each further wrong one; the lock is
// recorded, and a right code afterwards resets it.
func TestWrongCodesLockTheSecondFactorAcrossChallenges(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			secret := enrolTOTP(t, a, o.Slug, mem)
			clock := a.env.Clock
			challenge := func() string {
				t.Helper()
				r := a.call(t, "POST", orgPath(o.Slug, "/login"), "", map[string]string{"email": mem.Email, "password": mem.Password})
				wantStatus(t, "password step", r, 200)
				return decodeStrict[mfaAnswer](t, r).Challenge
			}
			second := func(ch, code string) int {
				return a.call(t, "POST", orgPath(o.Slug, "/login/mfa"), "", map[string]string{"challenge": ch, "method": "totp", "code": code}).status
			}
			first := challenge()
			for i := 0; i < 3; i++ {
				second(first, "000000")
			}
			ch := challenge()
			if got := second(first, "000000"); got != 401 {
				t.Errorf("the first challenge after a new one: %d, want 401 (one open challenge per person)", got)
			}
			second(ch, "000000")
			second(ch, "000000") // the fifth and sixth wrong code: locked
			clock.Advance(30 * time.Second)
			if got := second(challenge(), kluistest.OATHToolCode(t, secret, clock.Now())); got != 401 {
				t.Errorf("a right code while locked: %d, want 401", got)
			}
			clock.Advance(3 * time.Minute)
			if got := second(challenge(), kluistest.OATHToolCode(t, secret, clock.Now())); got != 200 {
				t.Errorf("a right code after the lock: %d, want 200", got)
			}
			mgr := a.login(t, o.Slug, o.Manager.Email, o.Manager.Password).Token
			if got := countActions(a.auditLog(t, o.Slug, mgr))["mfa.locked/success"]; got < 1 {
				t.Errorf("the lock was recorded %d times, want at least once", got)
			}
		})
	}
}

// TestPendingSetUpBelongsToItsSession: another session of the same person —
// stale or not — cannot see the QR code of a set-up it did not start, nor
// confirm it; a set-up lapses after 15 minutes.
func TestPendingSetUpBelongsToItsSession(t *testing.T) {
	a := newTestAPI(t, kluistest.Engines[0])
	o := a.newOrg(t)
	mem := a.addUser(t, o, "member")
	other := signInPage(t, a, o.Slug, mem)
	r := a.call(t, "POST", orgPath(o.Slug, "/me/totp"), mem.Token, nil)
	wantStatus(t, "start", r, 200)
	secret := decodeStrict[struct {
		Secret     string `json:"secret"`
		OTPAuthURL string `json:"otpauth_url"`
	}](t, r).Secret
	wantPage(t, "the QR code from another session", other.get(t, "/o/"+o.Slug+"/account/totp/qr.png"), 404, "")
	p := other.post(t, "/o/"+o.Slug+"/account/totp/confirm", url.Values{"code": {"000000"}})
	mustNotContain(t, "a confirm page of another session", p.body, secret)
	wantError(t, "confirm from another session", a.call(t, "POST", orgPath(o.Slug, "/me/totp/confirm"), a.login(t, o.Slug, mem.Email, mem.Password).Token,
		map[string]string{"code": kluistest.OATHToolCode(t, secret, a.env.Clock.Now())}), 404, "not_found")
	a.env.Clock.Advance(16 * time.Minute)
	wantError(t, "confirm after 16 minutes", a.call(t, "POST", orgPath(o.Slug, "/me/totp/confirm"), mem.Token,
		map[string]string{"code": kluistest.OATHToolCode(t, secret, a.env.Clock.Now())}), 404, "not_found")
	mustNotContain(t, "the server log", a.logs.String(), secret)
}

// TestSensitiveChangesNeedAFreshSignIn: changing the password and stopping
// every login need a sign-in or re-authentication in the last 5 minutes;
// the refusals are recorded; a re-authentication does not renew a session
// that has ended, nor one while logins are stopped.
func TestSensitiveChangesNeedAFreshSignIn(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			a.env.Clock.Advance(6 * time.Minute)
			wantError(t, "a password change after 6 minutes", a.call(t, "POST", orgPath(o.Slug, "/me/password"), mem.Token,
				map[string]string{"current_password": mem.Password, "new_password": uniquePassword()}), 403, "reauth_required")
			wantError(t, "stopping logins after 6 minutes", a.call(t, "PUT", orgPath(o.Slug, "/logins"), o.Manager.Token, map[string]bool{"enabled": false}), 403, "reauth_required")
			stalePage := signInPage(t, a, o.Slug, mem)
			a.env.Clock.Advance(6 * time.Minute)
			wantPage(t, "a password change on a stale page", stalePage.post(t, "/o/"+o.Slug+"/account/password",
				url.Values{"current_password": {mem.Password}, "new_password": {uniquePassword()}}), 303, "/o/"+o.Slug+"/account/reauth")
			b := signInPage(t, a, o.Slug, o.Manager)
			wantPage(t, "a garbled switch", b.post(t, "/o/"+o.Slug+"/logins", url.Values{"enabled": {"maybe"}}), 400, "")

			r := a.call(t, "POST", orgPath(o.Slug, "/me/reauth"), mem.Token, map[string]string{"password": mem.Password})
			wantStatus(t, "reauth", r, 200)
			fresh := decodeStrict[loginAnswer](t, r).Token
			wantStatus(t, "a password change after reauth", a.call(t, "POST", orgPath(o.Slug, "/me/password"), fresh,
				map[string]string{"current_password": mem.Password, "new_password": uniquePassword()}), 204)

			mgr := a.login(t, o.Slug, o.Manager.Email, o.Manager.Password).Token
			stale := a.login(t, o.Slug, o.Manager.Email, o.Manager.Password).Token
			wantStatus(t, "stop logins", a.call(t, "PUT", orgPath(o.Slug, "/logins"), mgr, map[string]bool{"enabled": false}), 200)
			wantError(t, "reauth of an ended session", a.call(t, "POST", orgPath(o.Slug, "/me/reauth"), stale, map[string]string{"password": o.Manager.Password}), 401, "unauthenticated")
			wantStatus(t, "resume", a.call(t, "PUT", orgPath(o.Slug, "/logins"), mgr, map[string]bool{"enabled": true}), 200)

			got := countActions(a.auditLog(t, o.Slug, mgr))
			if got["user.password_change/failure"] != 2 || got["org.logins_stop/failure"] != 1 {
				t.Errorf("refused sensitive changes recorded: password %d, logins %d; want 2 and 1", got["user.password_change/failure"], got["org.logins_stop/failure"])
			}
		})
	}
}

// TestCredentialChangesEndWhatIsInFlight: a password change ends open reset
// links; a reset ends open login challenges.
func TestCredentialChangesEndWhatIsInFlight(t *testing.T) {
	a := newTestAPI(t, kluistest.Engines[0])
	o := a.newOrg(t)
	mem := a.addUser(t, o, "member")
	wantStatus(t, "ask a reset", a.call(t, "POST", orgPath(o.Slug, "/password-reset"), "", map[string]string{"email": mem.Email}), 202)
	token := kluistest.Token(kluistest.Link(t, a.mail(t)[0]))
	mem.Password = func() string {
		next := uniquePassword()
		wantStatus(t, "change the password", a.call(t, "POST", orgPath(o.Slug, "/me/password"), mem.Token, map[string]string{"current_password": mem.Password, "new_password": next}), 204)
		return next
	}()
	wantError(t, "the reset link after a change", a.call(t, "POST", orgPath(o.Slug, "/password-reset/confirm"), "", map[string]string{"token": token, "new_password": uniquePassword()}), 404, "not_found")

	secret := enrolTOTP(t, a, o.Slug, account{Token: a.login(t, o.Slug, mem.Email, mem.Password).Token})
	r := a.call(t, "POST", orgPath(o.Slug, "/login"), "", map[string]string{"email": mem.Email, "password": mem.Password})
	ch := decodeStrict[mfaAnswer](t, r).Challenge
	a.mail(t)
	wantStatus(t, "ask a reset", a.call(t, "POST", orgPath(o.Slug, "/password-reset"), "", map[string]string{"email": mem.Email}), 202)
	var reset string
	for _, m := range a.mail(t) {
		if strings.Contains(m, "/reset#") {
			reset = kluistest.Token(kluistest.Link(t, m))
		}
	}
	wantStatus(t, "reset", a.call(t, "POST", orgPath(o.Slug, "/password-reset/confirm"), "", map[string]string{"token": reset, "new_password": uniquePassword()}), 204)
	a.env.Clock.Advance(30 * time.Second)
	wantError(t, "the challenge of the old password, with a right code", a.call(t, "POST", orgPath(o.Slug, "/login/mfa"), "",
		map[string]string{"challenge": ch, "method": "totp", "code": kluistest.OATHToolCode(t, secret, a.env.Clock.Now())}), 401, "unauthenticated")
}
