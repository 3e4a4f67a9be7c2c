package httpserver_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/kluistest"
)

// TestManagerStopsEveryLogin (R19): a manager stops every login of the
// organisation at once: every other session ends, nobody signs in (the same
// answer whether or not the account exists), members cannot flip the switch,
// and each step is recorded; resuming lets people in again.
func TestManagerStopsEveryLogin(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			other := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			mgrElsewhere := a.login(t, o.Slug, o.Manager.Email, o.Manager.Password).Token

			wantError(t, "a member stops the logins", a.call(t, "PUT", orgPath(o.Slug, "/logins"), mem.Token, map[string]bool{"enabled": false}), 403, "forbidden")
			wantInvalid(t, "no enabled field", a.call(t, "PUT", orgPath(o.Slug, "/logins"), o.Manager.Token, map[string]any{}), "enabled")
			r := a.call(t, "PUT", orgPath(o.Slug, "/logins"), o.Manager.Token, map[string]bool{"enabled": false})
			wantStatus(t, "stop the logins", r, 200)
			if !strings.Contains(string(r.body), `"sessions_ended":2`) {
				t.Errorf("stop answer %s, want 2 sessions ended (the member's and the manager's other one)", r.body)
			}
			wantError(t, "the member's session", a.call(t, "GET", orgPath(o.Slug, "/me"), mem.Token, nil), 401, "unauthenticated")
			wantError(t, "the manager's other session", a.call(t, "GET", orgPath(o.Slug, "/me"), mgrElsewhere, nil), 401, "unauthenticated")
			a.me(t, o.Slug, o.Manager.Token)
			a.me(t, other.Slug, other.Manager.Token) // another organisation is untouched

			var bodies []string
			for _, creds := range [][2]string{{mem.Email, mem.Password}, {o.Manager.Email, o.Manager.Password}, {uniqueEmail("nobody"), "Whatever 123 x"}} {
				r := a.call(t, "POST", orgPath(o.Slug, "/login"), "", map[string]string{"email": creds[0], "password": creds[1]})
				wantError(t, "login while stopped", r, 403, "logins_disabled")
				bodies = append(bodies, string(r.body))
			}
			if bodies[0] != bodies[1] || bodies[1] != bodies[2] {
				t.Errorf("answers while stopped differ: %q", bodies)
			}
			if r := a.call(t, "GET", orgPath(o.Slug, "/logins"), o.Manager.Token, nil); !strings.Contains(string(r.body), `"enabled":false`) {
				t.Errorf("GET /logins while stopped: %s", r.body)
			}
			a.login(t, other.Slug, other.Manager.Email, other.Manager.Password)

			wantStatus(t, "resume", a.call(t, "PUT", orgPath(o.Slug, "/logins"), o.Manager.Token, map[string]bool{"enabled": true}), 200)
			a.login(t, o.Slug, mem.Email, mem.Password)

			got := countActions(a.auditLog(t, o.Slug, o.Manager.Token))
			for action, want := range map[string]int{"org.logins_stop/success": 1, "org.logins_resume/success": 1, "org.logins_stop/denied": 1, "auth.login_failed/failure": 3} {
				if got[action] != want {
					t.Errorf("%s recorded %d times, want %d", action, got[action], want)
				}
			}
		})
	}
}

// TestLoginsSwitchOnThePolicyPage: the switch stops and resumes; the
// sign-in page says why nobody gets in.
func TestLoginsSwitchOnThePolicyPage(t *testing.T) {
	a := newTestAPI(t, kluistest.Engines[0])
	o := a.newOrg(t)
	mem := a.addUser(t, o, "member")
	b := signInPage(t, a, o.Slug, o.Manager)
	if p := b.get(t, "/o/"+o.Slug+"/policy"); !strings.Contains(p.body, `id="logins"`) || !strings.Contains(p.body, `name="enabled" value="false"`) {
		t.Fatalf("the policy page has no switch to stop the logins")
	}
	if p := signInPage(t, a, o.Slug, mem).get(t, "/o/"+o.Slug+"/policy"); strings.Contains(p.body, `id="logins"`) {
		t.Error("a member sees the logins switch")
	}
	wantPage(t, "stop", b.post(t, "/o/"+o.Slug+"/logins", url.Values{"enabled": {"false"}}), 303, "/o/"+o.Slug+"/policy")
	p := newBrowser(a).post(t, "/o/"+o.Slug+"/login", url.Values{"email": {mem.Email}, "password": {mem.Password}})
	wantPage(t, "sign in while stopped", p, 403, "")
	if !strings.Contains(p.body, "Signing in to this organisation is stopped") || !strings.Contains(p.body, `value="`+mem.Email+`"`) {
		t.Errorf("the sign-in page does not say logins are stopped:\n%s", excerpt(p.body))
	}
	wantPage(t, "resume", b.post(t, "/o/"+o.Slug+"/logins", url.Values{"enabled": {"true"}}), 303, "/o/"+o.Slug+"/policy")
	signInPage(t, a, o.Slug, mem)
}
