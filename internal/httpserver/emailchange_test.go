package httpserver_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
)

// mailTo returns the one message of msgs addressed to addr.
func mailTo(tb testing.TB, msgs []string, addr string) string {
	tb.Helper()
	var found []string
	for _, m := range msgs {
		if strings.Contains(m, "To: <"+addr+">") {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		tb.Fatalf("%d mails to %s among %d, want 1", len(found), addr, len(msgs))
	}
	return found[0]
}

// TestEmailChangeNeedsConfirmation (R3, R14, R45): a person with a fresh
// session asks for a new address; a single-use link goes to it, a notice
// with the new address masked (and no link) to the old one; nothing changes
// until the link is used in the person's own session. Then the address and
// the sign-in change together, other sessions and open reset links end, the
// old address is told, and each step is recorded.
func TestEmailChangeNeedsConfirmation(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			other := a.login(t, o.Slug, mem.Email, mem.Password).Token
			newEmail := uniqueEmail("new")
			ask := func(token, email string) response {
				t.Helper()
				return a.call(t, "POST", orgPath(o.Slug, "/me/email"), token, map[string]string{"email": email})
			}
			confirm := func(token, link string) response {
				t.Helper()
				return a.call(t, "POST", orgPath(o.Slug, "/me/email/confirm"), token, map[string]string{"token": link})
			}

			wantInvalid(t, "not an address", ask(mem.Token, "not an address"), "email")
			wantInvalid(t, "the current address", ask(mem.Token, strings.ToUpper(mem.Email)), "email")
			r := ask(mem.Token, newEmail)
			wantStatus(t, "ask for a new address", r, 202)
			if strings.TrimSpace(string(r.body)) != "{}" {
				t.Errorf("answer %s, want {}", r.body)
			}
			msgs := a.mail(t)
			if len(msgs) != 2 {
				t.Fatalf("%d mails, want the link and the notice", len(msgs))
			}
			linkMail, notice := mailTo(t, msgs, newEmail), mailTo(t, msgs, mem.Email)
			link := kluistest.Link(t, linkMail)
			if !strings.Contains(link, "/o/"+o.Slug+"/confirm-email#") {
				t.Errorf("link %q, want the confirm page with the token in the fragment", link)
			}
			token := kluistest.Token(link)
			if !strings.Contains(notice, kluis.MaskEmail(newEmail)) {
				t.Errorf("notice to the old address:\n%s\nwant the new address masked", notice)
			}
			mustNotContain(t, "the notice to the old address", notice, newEmail, token, "http")
			mustNotContain(t, "the mails", strings.Join(msgs, "\n"), mem.Name, mem.Password)

			// Nothing changed yet.
			if got := a.me(t, o.Slug, mem.Token).Email; got != mem.Email {
				t.Errorf("address before confirmation %q, want %q", got, mem.Email)
			}
			wantError(t, "sign in with the new address before confirmation", a.call(t, "POST", orgPath(o.Slug, "/login"), "", map[string]string{"email": newEmail, "password": mem.Password}), 401, "unauthenticated")

			// The link is no credential on its own.
			wantError(t, "confirm without a session", confirm("", token), 401, "unauthenticated")
			wantError(t, "confirm in the manager's session", confirm(o.Manager.Token, token), 404, "not_found")
			wantError(t, "confirm with a made-up token", confirm(mem.Token, strings.Repeat("A", 43)), 404, "not_found")

			// A reset link mailed to the old address meanwhile dies with the change.
			wantStatus(t, "ask for a reset", a.call(t, "POST", orgPath(o.Slug, "/password-reset"), "", map[string]string{"email": mem.Email}), 202)
			resetToken := kluistest.Token(kluistest.Link(t, a.mail(t)[0]))

			wantStatus(t, "confirm", confirm(mem.Token, token), 204)
			if got := a.me(t, o.Slug, mem.Token).Email; got != newEmail {
				t.Errorf("address after confirmation %q, want %q", got, newEmail)
			}
			wantError(t, "the member's other session", a.call(t, "GET", orgPath(o.Slug, "/me"), other, nil), 401, "unauthenticated")
			wantError(t, "sign in with the old address", a.call(t, "POST", orgPath(o.Slug, "/login"), "", map[string]string{"email": mem.Email, "password": mem.Password}), 401, "unauthenticated")
			a.login(t, o.Slug, strings.ToUpper(newEmail), mem.Password)
			wantError(t, "the link a second time", confirm(mem.Token, token), 404, "not_found")
			wantError(t, "the reset link sent before the change", a.call(t, "POST", orgPath(o.Slug, "/password-reset/confirm"), "", map[string]string{"token": resetToken, "new_password": uniquePassword()}), 404, "not_found")
			done := a.mail(t)
			changed := mailTo(t, done, mem.Email)
			if !strings.Contains(changed, kluis.MaskEmail(newEmail)) {
				t.Errorf("notice of the change:\n%s\nwant the new address masked", changed)
			}
			mustNotContain(t, "the notice of the change", changed, newEmail, "http")

			counts := countActions(a.auditLog(t, o.Slug, o.Manager.Token))
			for action, want := range map[string]int{"user.email_change_requested/success": 1, "user.email_changed/success": 1, "user.email_changed/failure": 3} {
				if counts[action] != want {
					t.Errorf("%s recorded %d times, want %d", action, counts[action], want)
				}
			}
			mustNotContain(t, "the log", a.logs.String(), newEmail, token)
		})
	}
}

// TestEmailChangeToTakenAddress (R1, R14): asking for an address someone
// else of the organisation has is answered exactly like any other request;
// only the confirmation fails, with a message that names no one, and the
// request is gone. A stale session must re-authenticate first, and an
// expired link does not work.
func TestEmailChangeToTakenAddress(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			ask := func(email string) response {
				t.Helper()
				return a.call(t, "POST", orgPath(o.Slug, "/me/email"), mem.Token, map[string]string{"email": email})
			}
			free, taken := ask(uniqueEmail("free")), ask(o.Manager.Email)
			if free.String() != taken.String() || free.status != 202 {
				t.Errorf("a free address answers %v, a taken one %v; want the same 202", free, taken)
			}
			msgs := a.mail(t)
			token := kluistest.Token(kluistest.Link(t, mailTo(t, msgs, o.Manager.Email)))
			r := a.call(t, "POST", orgPath(o.Slug, "/me/email/confirm"), mem.Token, map[string]string{"token": token})
			e := wantError(t, "confirm an address the manager has", r, 409, "conflict")
			mustNotContain(t, "the conflict", e.Error.Message, o.Manager.Email, o.Manager.Name)
			if got := a.me(t, o.Slug, mem.Token).Email; got != mem.Email {
				t.Errorf("address %q after the conflict, want %q", got, mem.Email)
			}
			wantError(t, "the link again after the conflict", a.call(t, "POST", orgPath(o.Slug, "/me/email/confirm"), mem.Token, map[string]string{"token": token}), 404, "not_found")

			a.env.Clock.Advance(6 * time.Minute)
			wantError(t, "ask from a session signed in 6 minutes ago", ask(uniqueEmail("late")), 403, "reauth_required")

			fresh := a.login(t, o.Slug, mem.Email, mem.Password).Token
			slow := uniqueEmail("slow")
			wantStatus(t, "ask again", a.call(t, "POST", orgPath(o.Slug, "/me/email"), fresh, map[string]string{"email": slow}), 202)
			late := kluistest.Token(kluistest.Link(t, mailTo(t, a.mail(t), slow)))
			a.env.Clock.Advance(25 * time.Hour)
			fresh = a.login(t, o.Slug, mem.Email, mem.Password).Token
			wantError(t, "a link after 25 hours", a.call(t, "POST", orgPath(o.Slug, "/me/email/confirm"), fresh, map[string]string{"token": late}), 404, "not_found")
		})
	}
}
