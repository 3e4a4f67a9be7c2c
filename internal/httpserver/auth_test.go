package httpserver_test

import (
	"bytes"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/kluistest"
)

// TestLoginFailuresLookAlike gives every failed login the same answer:
// unknown address, wrong password, disabled account and an invitation not
// yet accepted get 401 with byte-identical bodies and the same headers but
// for the request id and date, set no cookie, and are each recorded as
// auth.login_failed (R14, R18, DESIGN §5: nothing reveals which accounts exist).
func TestLoginFailuresLookAlike(t *testing.T) {
	t.Parallel()
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			active := a.addUser(t, o, "member")
			disabled := a.addUser(t, o, "member")
			wantStatus(t, "disable", a.call(t, "PATCH", orgPath(o.Slug, "/users/"+disabled.ID), o.Manager.Token, map[string]any{"disabled": true}), 200)
			invited := a.invite(t, o, "member")
			before := len(a.auditLog(t, o.Slug, o.Manager.Token))

			cases := []struct {
				name            string
				email, password string
			}{
				{"unknown address", uniqueEmail("nobody"), active.Password},
				{"wrong password", active.Email, "not " + active.Password},
				{"disabled account with its right password", disabled.Email, disabled.Password},
				{"invitation not accepted", invited.Email, invited.Password},
			}
			var first response
			for i, c := range cases {
				r := a.call(t, "POST", orgPath(o.Slug, "/login"), "", map[string]string{"email": c.email, "password": c.password})
				wantError(t, c.name, r, 401, "unauthenticated")
				if sc := r.header.Values("Set-Cookie"); len(sc) != 0 {
					t.Errorf("%s: Set-Cookie %v, want none", c.name, sc)
				}
				mustNotContain(t, c.name+" answer", string(r.body), c.email, c.password)
				if i == 0 {
					first = r
					continue
				}
				if !bytes.Equal(r.body, first.body) {
					t.Errorf("%s: body %q, want the same bytes as for %s: %q", c.name, r.body, cases[0].name, first.body)
				}
				if got, want := comparableHeader(r.header), comparableHeader(first.header); !reflect.DeepEqual(got, want) {
					t.Errorf("%s: headers %v, want those of %s: %v", c.name, got, cases[0].name, want)
				}
			}

			events := a.auditLog(t, o.Slug, o.Manager.Token)[before:]
			if len(events) != len(cases) {
				t.Fatalf("the failures added %d events %v, want %d", len(events), seqs(events), len(cases))
			}
			for i, e := range events {
				if e.Action != "auth.login_failed" || e.Outcome != "failure" || e.Actor != "anonymous" {
					t.Errorf("event for %s: %s/%s by %s, want auth.login_failed/failure by anonymous", cases[i].name, e.Action, e.Outcome, e.Actor)
				}
				mustNotContain(t, "login_failed event", string(e.Details)+e.Target, cases[i].email, cases[i].password)
			}

			t.Run("operator realm", func(t *testing.T) {
				_, op := a.operator(t)
				unknown := a.call(t, "POST", "/api/v1/operator/login", "", map[string]string{"email": uniqueEmail("nobody"), "password": op.Password})
				wrong := a.call(t, "POST", "/api/v1/operator/login", "", map[string]string{"email": op.Email, "password": "not " + op.Password})
				wantError(t, "operator unknown address", unknown, 401, "unauthenticated")
				wantError(t, "operator wrong password", wrong, 401, "unauthenticated")
				if !bytes.Equal(unknown.body, wrong.body) || !reflect.DeepEqual(comparableHeader(unknown.header), comparableHeader(wrong.header)) {
					t.Errorf("operator failures differ: %v %v / %v %v", unknown.header, unknown.body, wrong.header, wrong.body)
				}
				if !bytes.Equal(unknown.body, first.body) {
					t.Errorf("operator failure body %q, want the organisation realm's %q", unknown.body, first.body)
				}
				// An organisation user's credentials are unknown to the operator realm.
				r := a.call(t, "POST", "/api/v1/operator/login", "", map[string]string{"email": active.Email, "password": active.Password})
				wantError(t, "organisation user at the operator login", r, 401, "unauthenticated")
			})
		})
	}
}

// comparableHeader drops the headers that differ by nature between two
// answers: the request id and the date.
func comparableHeader(h http.Header) http.Header {
	c := h.Clone()
	c.Del("X-Request-Id")
	c.Del("Date")
	return c
}

// TestCrossOriginWritesAreRefused refuses state-changing requests that a
// browser makes on behalf of another site, even with a valid session cookie:
// 403 forbidden and nothing changes. Safe methods and same-origin requests
// pass (CSRF, R14).
func TestCrossOriginWritesAreRefused(t *testing.T) {
	t.Parallel()
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			m := o.Manager
			cookie := []*http.Cookie{sessionCookie(m.Token)}
			me := a.me(t, o.Slug, m.Token)
			log := a.auditLog(t, o.Slug, m.Token)

			origins := []struct {
				name   string
				header map[string]string
			}{
				{"cross-site form post", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}},
				{"foreign Origin only", map[string]string{"Origin": "https://evil.example"}},
				{"same-site sibling", map[string]string{"Origin": "https://evil.kluis.test", "Sec-Fetch-Site": "same-site"}},
			}
			writes := []struct {
				method, path string
				body         any
				contentType  string
			}{
				{"PATCH", "/me", map[string]any{"name": "Pwned"}, ""},
				{"POST", "/users", map[string]any{"email": "mallory@evil.example", "role": "manager"}, ""},
				{"PUT", "/policy", policyObject{8, false, false, 1440, 720, "optional", 5, "managers", 30, 1, nil, 730, 730}, ""},
				{"POST", "/me/password", map[string]any{"current_password": m.Password, "new_password": "mallory password 1"}, ""},
				{"POST", "/logout", nil, ""},
				{"DELETE", "/users/" + m.ID, nil, ""},
				{"POST", "/me/password", "current_password=x&new_password=y", "application/x-www-form-urlencoded"},
			}
			for _, or := range origins {
				for _, w := range writes {
					r := a.do(t, request{method: w.method, path: orgPath(o.Slug, w.path), cookies: cookie, body: w.body, contentType: w.contentType, header: or.header})
					wantError(t, or.name+" "+w.method+" "+w.path, r, 403, "forbidden")
				}
			}
			if got := a.me(t, o.Slug, m.Token); !reflect.DeepEqual(got, me) {
				t.Errorf("after refused cross-origin writes the user is %+v, want %+v", got, me)
			}
			if got := a.auditLog(t, o.Slug, m.Token); !reflect.DeepEqual(got, log) {
				t.Errorf("refused cross-origin writes changed the log: %v, want %v", seqs(got), seqs(log))
			}
			a.login(t, o.Slug, m.Email, m.Password) // the password is unchanged

			// A request another site started does not use the session
			// cookie at all, not even for a read (a link would otherwise make
			// a manager's browser record reads); a same-origin write passes.
			r := a.do(t, request{method: "GET", path: orgPath(o.Slug, "/me"), cookies: cookie, header: map[string]string{"Sec-Fetch-Site": "cross-site"}})
			wantStatus(t, "cross-site GET", r, 401)
			r = a.do(t, request{method: "PATCH", path: orgPath(o.Slug, "/me"), cookies: cookie, body: map[string]any{"name": "Mia Same-Origin"},
				header: map[string]string{"Origin": a.srv.URL, "Sec-Fetch-Site": "same-origin"}})
			wantStatus(t, "same-origin PATCH", r, 200)
		})
	}
}

// TestSessionsEnd ends sessions by themselves: after the policy's idle
// minutes without use, at the policy's maximum hours however regularly used,
// and at once for existing sessions when a manager lowers either (R21).
func TestSessionsEnd(t *testing.T) {
	t.Parallel()
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			clock := a.env.Clock
			alive := func(t *testing.T, slug, token string, want bool, when string) {
				t.Helper()
				r := a.call(t, "GET", orgPath(slug, "/me"), token, nil)
				switch {
				case want && r.status != 200:
					t.Fatalf("%s: got %v, want the session alive", when, r)
				case !want:
					wantError(t, when, r, 401, "unauthenticated")
				}
			}

			t.Run("idle past the policy's minutes", func(t *testing.T) {
				o := a.newOrg(t)
				clock.Advance(29 * time.Minute)
				alive(t, o.Slug, o.Manager.Token, true, "after 29 idle minutes")
				clock.Advance(29 * time.Minute)
				alive(t, o.Slug, o.Manager.Token, true, "29 minutes after the last use")
				clock.Advance(31 * time.Minute)
				alive(t, o.Slug, o.Manager.Token, false, "31 minutes after the last use")
				alive(t, o.Slug, o.Manager.Token, false, "once ended, for good")
				a.login(t, o.Slug, o.Manager.Email, o.Manager.Password)
			})

			t.Run("used regularly, still ends at the policy's hours", func(t *testing.T) {
				o := a.newOrg(t)
				la := a.login(t, o.Slug, o.Manager.Email, o.Manager.Password)
				if want := clock.Now().Add(12 * time.Hour); la.ExpiresAt.Sub(want).Abs() > time.Second {
					t.Errorf("expires_at %v, want %v", la.ExpiresAt, want)
				}
				for used := 20 * time.Minute; used < 12*time.Hour; used += 20 * time.Minute {
					clock.Advance(20 * time.Minute)
					alive(t, o.Slug, la.Token, true, "used every 20 minutes, after "+used.String())
				}
				clock.Advance(20 * time.Minute)
				alive(t, o.Slug, la.Token, false, "at 12 hours")
			})

			t.Run("lowering the policy cuts existing sessions", func(t *testing.T) {
				o := a.newOrg(t)
				mem := a.addUser(t, o, "member")
				for range 3 {
					clock.Advance(20 * time.Minute)
					alive(t, o.Slug, mem.Token, true, "member's session, used")
				}
				clock.Advance(5 * time.Minute) // 65 minutes old, used 5 minutes ago
				mgr := a.login(t, o.Slug, o.Manager.Email, o.Manager.Password).Token
				wantStatus(t, "lower max hours", a.call(t, "PUT", orgPath(o.Slug, "/policy"), mgr, policyObject{8, false, false, 30, 1, "optional", 5, "managers", 30, 1, nil, 730, 730}), 200)
				alive(t, o.Slug, mem.Token, false, "65-minute-old session under a 1-hour maximum")
				alive(t, o.Slug, mgr, true, "the manager's fresh session")
				la := a.login(t, o.Slug, mem.Email, mem.Password)
				if want := clock.Now().Add(time.Hour); la.ExpiresAt.Sub(want).Abs() > time.Second {
					t.Errorf("expires_at under the 1-hour policy %v, want %v", la.ExpiresAt, want)
				}

				wantStatus(t, "lower idle minutes", a.call(t, "PUT", orgPath(o.Slug, "/policy"), mgr, policyObject{8, false, false, 5, 1, "optional", 5, "managers", 30, 1, nil, 730, 730}), 200)
				clock.Advance(6 * time.Minute)
				alive(t, o.Slug, la.Token, false, "6 idle minutes under a 5-minute policy")
				alive(t, o.Slug, mgr, false, "the manager's session, 6 idle minutes under a 5-minute policy")
			})
		})
	}
}
