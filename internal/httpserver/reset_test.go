package httpserver_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/kluistest"
)

// TestPasswordResetByMail (R20): the same answer whether or not the address
// belongs to an active account; one mail, to the account holder only, with a
// link that works once, for 30 minutes; a reset ends every session and is
// notified; every step is recorded; no password travels by mail.
func TestPasswordResetByMail(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			invited := a.invite(t, o, "member")
			a.mail(t) // the invitation
			ask := func(email string) response {
				t.Helper()
				return a.call(t, "POST", orgPath(o.Slug, "/password-reset"), "", map[string]string{"email": email})
			}

			// Identical answers; only the active account gets a mail.
			var answers []string
			for _, email := range []string{mem.Email, uniqueEmail("nobody"), invited.Email, "not an address", strings.ToUpper(mem.Email)} {
				r := ask(email)
				wantStatus(t, "reset for "+email, r, 202)
				answers = append(answers, r.String()+" "+r.header.Get("Content-Type"))
			}
			for _, got := range answers[1:] {
				if got != answers[0] {
					t.Errorf("answer %q differs from %q", got, answers[0])
				}
			}
			msgs := a.mail(t)
			if len(msgs) != 1 {
				t.Fatalf("%d mails after five requests, want 1 (one reset mail per account per two minutes)", len(msgs))
			}
			if !strings.Contains(msgs[0], "To: <"+mem.Email+">") || !strings.Contains(msgs[0], "/o/"+o.Slug+"/reset#") {
				t.Fatalf("reset mail:\n%s", msgs[0])
			}
			mustNotContain(t, "the reset mail", msgs[0], mem.Password, mem.Name)
			token := kluistest.Token(kluistest.Link(t, msgs[0]))

			// A too weak password is refused and the link still works.
			r := a.call(t, "POST", orgPath(o.Slug, "/password-reset/confirm"), "", map[string]string{"token": token, "new_password": "password1"})
			wantInvalid(t, "a common password", r, "new_password")

			newPassword := uniquePassword()
			r = a.call(t, "POST", orgPath(o.Slug, "/password-reset/confirm"), "", map[string]string{"token": token, "new_password": newPassword})
			wantStatus(t, "reset", r, 204)
			wantError(t, "the member's session after the reset", a.call(t, "GET", orgPath(o.Slug, "/me"), mem.Token, nil), 401, "unauthenticated")
			wantError(t, "the old password", a.call(t, "POST", orgPath(o.Slug, "/login"), "", map[string]string{"email": mem.Email, "password": mem.Password}), 401, "unauthenticated")
			a.login(t, o.Slug, mem.Email, newPassword)
			notices := a.mail(t)
			if len(notices) != 1 || !strings.Contains(notices[0], "To: <"+mem.Email+">") {
				t.Errorf("after the reset %d mails, want the one notice to the member", len(notices))
			}
			for _, n := range notices {
				mustNotContain(t, "the notice", n, newPassword, token)
			}

			// Once only; a replaced link and an expired one do not work.
			r = a.call(t, "POST", orgPath(o.Slug, "/password-reset/confirm"), "", map[string]string{"token": token, "new_password": uniquePassword()})
			wantError(t, "the link a second time", r, 404, "not_found")
			ask(mem.Email)
			first := kluistest.Token(kluistest.Link(t, a.mail(t)[0]))
			ask(mem.Email) // within two minutes: no second mail
			if n := len(a.mail(t)); n != 0 {
				t.Errorf("a second request right after the first sent %d mails, want none", n)
			}
			a.env.Clock.Advance(3 * time.Minute)
			ask(mem.Email)
			second := kluistest.Token(kluistest.Link(t, a.mail(t)[0]))
			r = a.call(t, "POST", orgPath(o.Slug, "/password-reset/confirm"), "", map[string]string{"token": first, "new_password": uniquePassword()})
			wantError(t, "a replaced link", r, 404, "not_found")
			a.env.Clock.Advance(31 * time.Minute)
			r = a.call(t, "POST", orgPath(o.Slug, "/password-reset/confirm"), "", map[string]string{"token": second, "new_password": uniquePassword()})
			wantError(t, "a link after 31 minutes", r, 404, "not_found")
			r = a.call(t, "POST", orgPath(o.Slug, "/password-reset/confirm"), "", map[string]string{"token": "short", "new_password": uniquePassword()})
			wantError(t, "a malformed token", r, 404, "not_found")

			mgr := a.login(t, o.Slug, o.Manager.Email, o.Manager.Password).Token // idle for 31 minutes
			got := countActions(a.auditLog(t, o.Slug, mgr))
			for action, want := range map[string]int{
				// The address in capitals is the same account; requests within
				// two minutes of a mail send none (failure, reason "recent").
				"auth.password_reset_request/success": 3, "auth.password_reset_request/failure": 5,
				"auth.password_reset/success": 1, "auth.password_reset/failure": 4,
			} {
				if got[action] != want {
					t.Errorf("%s recorded %d times, want %d", action, got[action], want)
				}
			}
			mustNotContain(t, "the server log", a.logs.String(), token, first, second, mem.Email, newPassword)
		})
	}
}

// TestPasswordResetPages: the forgot-password form answers the same for any
// address; the reset page keeps the token out of every URL and shows a
// refused link as such (R20).
func TestPasswordResetPages(t *testing.T) {
	a := newTestAPI(t, kluistest.Engines[0])
	o := a.newOrg(t)
	b := newBrowser(a)
	var answers []string
	for _, email := range []string{o.Manager.Email, uniqueEmail("nobody")} {
		p := b.post(t, "/o/"+o.Slug+"/forgot", url.Values{"email": {email}})
		wantPage(t, "forgot for "+email, p, 303, "/o/"+o.Slug+"/forgot")
		answers = append(answers, p.header.Get("Set-Cookie")+" "+p.body)
		if !strings.Contains(b.get(t, "/o/"+o.Slug+"/forgot").body, "If an account with that address exists") {
			t.Errorf("the forgot page after asking does not say a link may be on its way")
		}
	}
	if answers[0] != answers[1] {
		t.Errorf("forgot answers differ: %q and %q", answers[0], answers[1])
	}
	token := kluistest.Token(kluistest.Link(t, a.mail(t)[0]))
	p := b.get(t, "/o/"+o.Slug+"/reset")
	if !strings.Contains(p.body, "data-token-from-fragment") || !strings.Contains(p.body, `autocomplete="new-password"`) {
		t.Errorf("the reset page lacks the token field or the new-password hint")
	}
	p = b.post(t, "/o/"+o.Slug+"/reset", url.Values{"token": {otherToken(token)}, "new_password": {uniquePassword()}})
	wantPage(t, "a wrong reset token", p, 400, "")
	mustNotContain(t, "the refused reset page", p.body, otherToken(token))
	p = b.post(t, "/o/"+o.Slug+"/reset", url.Values{"token": {token}, "new_password": {"iloveyou1"}})
	wantPage(t, "a common password", p, 400, "")
	if !strings.Contains(p.body, `id="new_password-error"`) || !strings.Contains(p.body, "most common") {
		t.Errorf("a common password is not refused next to its field:\n%s", excerpt(p.body))
	}
	p = b.post(t, "/o/"+o.Slug+"/reset", url.Values{"token": {token}, "new_password": {uniquePassword()}})
	wantPage(t, "reset", p, 303, "/o/"+o.Slug+"/login")
	if tokenInURL.MatchString(p.location()) || strings.Contains(p.location(), token) {
		t.Errorf("the reset redirects to %s", p.location())
	}
}
