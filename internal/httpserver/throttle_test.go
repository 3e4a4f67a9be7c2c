package httpserver_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/kluistest"
)

// newProxiedAPI is newTestAPI behind a trusted proxy on loopback, so each
// request can come from the client address its X-Forwarded-For names.
func newProxiedAPI(tb testing.TB, engine string) *testAPI {
	tb.Helper()
	m := httpserver.NewMetrics()
	env := kluistest.NewEnv(tb, engine, kluistest.EnvOptions{KeyObserver: m, Observer: m})
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	srv := httptest.NewServer(httpserver.NewServer(httpserver.Config{
		Services: env.Services(), Ready: env.Ready, Logger: logger, Metrics: m,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
	}))
	tb.Cleanup(srv.Close)
	return &testAPI{env: env, srv: srv, logs: logs, metrics: m, requestIDs: map[string]bool{}}
}

// attempt is one sign-in from a client address, with the browser's cookies.
func (a *testAPI) attempt(tb testing.TB, slug, from, email, password string, cookies ...*http.Cookie) response {
	tb.Helper()
	return a.do(tb, request{method: "POST", path: orgPath(slug, "/login"), cookies: cookies,
		header: map[string]string{"X-Forwarded-For": from}, body: map[string]string{"email": email, "password": password}})
}

func cookieOf(r response, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// outcome is what an attacker can see of an answer.
func outcome(r response) string {
	return fmt.Sprintf("%d retry=%q %s", r.status, r.header.Get("Retry-After"), r.body)
}

// run sends n wrong passwords from one address, cycling through emails,
// and returns the outcomes in order.
func (a *testAPI) run(tb testing.TB, slug, from string, n int, emails ...string) []string {
	tb.Helper()
	out := make([]string, n)
	for i := range n {
		r := a.attempt(tb, slug, from, emails[i%len(emails)], "Wrong password 1 x")
		if r.status == 429 && r.header.Get("Retry-After") == "" {
			tb.Fatalf("attempt %d: 429 without Retry-After", i)
		}
		out[i] = outcome(r)
	}
	return out
}

func countStatus(outcomes []string, prefix string) int {
	n := 0
	for _, o := range outcomes {
		if strings.HasPrefix(o, prefix) {
			n++
		}
	}
	return n
}

// TestBruteForceIsSlowedWithoutLockingTheOwnerOut (R18, R26, R43, DESIGN §6):
// 1,000 wrong passwords from one address against one account, against an
// identifier nobody has, and against 100 accounts. The lock starts at the
// policy's threshold and the address block at 20 failures, with Retry-After;
// the attacker sees the same for the existing and the unknown account; the
// owner, whose browser holds a device cookie, still signs in — from the
// attacked address too — while an unknown browser cannot; the owner's mailed
// link and a manager lift the lock; everything is in the audit log and the
// metrics.
func TestBruteForceIsSlowedWithoutLockingTheOwnerOut(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newProxiedAPI(t, engine)
			o := a.newOrg(t)
			owner := a.addUser(t, o, "member")
			const attacker, attacker2, attacker3 = "203.0.113.7", "203.0.113.8", "2001:db8:1:2::77"

			// The owner's own browser signed in before: it holds a device cookie.
			r := a.attempt(t, o.Slug, "198.51.100.20", owner.Email, owner.Password)
			wantStatus(t, "owner's first sign-in", r, 200)
			device := cookieOf(r, "__Host-kluis_device")
			if device == nil || !device.HttpOnly || !device.Secure || device.SameSite != http.SameSiteStrictMode {
				t.Fatalf("sign-in set device cookie %+v, want HttpOnly, Secure, SameSite=Strict", device)
			}
			if strings.Contains(device.Value, owner.Email) || strings.Contains(device.Value, owner.ID) {
				t.Fatalf("device cookie %q names the account", device.Value)
			}

			// One account, 1,000 wrong passwords from one address.
			known := a.run(t, o.Slug, attacker, 1000, owner.Email)
			// The same against an identifier nobody has, from another address.
			unknown := a.run(t, o.Slug, attacker2, 1000, uniqueEmail("nobody"))
			for i := range known {
				if known[i] != unknown[i] {
					t.Fatalf("attempt %d: existing account answered %s, unknown %s", i, known[i], unknown[i])
				}
			}
			// Threshold 5: four plain failures, the fifth locks (1 minute);
			// the address is blocked at its 20th failure (15 minutes).
			for i, want := range map[int]string{0: "401", 3: "401", 4: `429 retry="60"`, 18: `429 retry="60"`, 19: `429 retry="900"`, 999: `429 retry="900"`} {
				if !strings.HasPrefix(known[i], want) {
					t.Errorf("attempt %d answered %s, want %s…", i+1, known[i], want)
				}
			}
			if n := countStatus(known, "401"); n != 4 {
				t.Errorf("%d guesses were checked, want 4 (the lock threshold - 1)", n)
			}

			// 100 accounts, 1,000 attempts from an IPv6 address.
			var emails, ids []string
			for range 99 {
				acc := a.addUser(t, o, "member")
				emails, ids = append(emails, acc.Email), append(ids, acc.ID)
			}
			emails = append(emails, owner.Email)
			spread := a.run(t, o.Slug, attacker3, 1000, emails...)
			if n := countStatus(spread, "401"); n != 19 {
				t.Errorf("%d guesses against 100 accounts were checked, want 19 before the address block", n)
			}
			// Another address in the same /64 is the same subscriber.
			if r := a.attempt(t, o.Slug, "2001:db8:1:2::78", emails[5], "Wrong password 1 x"); r.status != 429 {
				t.Errorf("a neighbour in the blocked /64 answered %v, want 429", r)
			}

			// The owner signs in with the device cookie while the attack runs,
			// from the attacked address too.
			r = a.attempt(t, o.Slug, attacker, owner.Email, owner.Password, device)
			wantStatus(t, "owner with the device cookie from the attacked address", r, 200)
			if next := cookieOf(r, "__Host-kluis_device"); next == nil || next.Value == device.Value {
				t.Errorf("a sign-in did not renew the device cookie")
			} else {
				device = next
			}
			// An unknown browser is locked out, whether the password is right
			// or not, from a fresh address as from the attacked one.
			for _, from := range []string{"198.51.100.30", attacker} {
				if r := a.attempt(t, o.Slug, from, owner.Email, owner.Password); r.status != 429 || r.header.Get("Retry-After") == "" {
					t.Errorf("right password from an unknown browser at %s answered %v, want 429 with Retry-After", from, r)
				}
			}
			// A device cookie is for its own account only.
			if r := a.attempt(t, o.Slug, "198.51.100.31", emails[0], "Wrong password 1 x", device); r.status != 401 && r.status != 429 {
				t.Errorf("another account with the owner's cookie answered %v", r)
			}

			// The owner was mailed a link that lifts the lock, once.
			var link string
			a.mail(t)
			for _, m := range a.mails {
				if strings.Contains(m, "/unlock#") {
					if link != "" {
						t.Errorf("more than one unlock mail for one lock")
					}
					link = kluistest.Link(t, m)
					mustNotContain(t, "unlock mail", m, owner.Name, attacker)
				}
			}
			if link == "" {
				t.Fatal("no unlock link was mailed to the owner")
			}
			token := kluistest.Token(link)
			wantStatus(t, "unlock by link", a.do(t, request{method: "POST", path: orgPath(o.Slug, "/unlock"), body: map[string]string{"token": token},
				header: map[string]string{"X-Forwarded-For": "198.51.100.40"}}), 204)
			wantError(t, "the link a second time", a.do(t, request{method: "POST", path: orgPath(o.Slug, "/unlock"), body: map[string]string{"token": token},
				header: map[string]string{"X-Forwarded-For": "198.51.100.40"}}), 404, "not_found")
			wantStatus(t, "an unknown browser after the unlock", a.attempt(t, o.Slug, "198.51.100.41", owner.Email, owner.Password), 200)

			// A manager lifts a lock; a member may not.
			victim := emails[1]
			a.run(t, o.Slug, "198.51.100.50", 5, victim)
			if r := a.attempt(t, o.Slug, "198.51.100.51", victim, "Wrong password 1 x"); r.status != 429 {
				t.Fatalf("locked account answered %v, want 429", r)
			}
			victimID := ids[1]
			wantError(t, "a member unlocks", a.call(t, "POST", orgPath(o.Slug, "/users/"+victimID+"/unlock"), owner.Token, nil), 403, "forbidden")
			wantStatus(t, "a manager unlocks", a.call(t, "POST", orgPath(o.Slug, "/users/"+victimID+"/unlock"), o.Manager.Token, nil), 204)
			if r := a.attempt(t, o.Slug, "198.51.100.52", victim, "Wrong password 1 x"); r.status != 401 {
				t.Errorf("after the manager's unlock a wrong password answered %v, want 401", r)
			}

			// Locks grow: 1, 2, 4 … minutes; the address block ends in time.
			a.run(t, o.Slug, "198.51.100.60", 5, emails[2])
			for _, want := range []string{"120", "240", "480"} {
				until := a.attempt(t, o.Slug, "198.51.100.61", emails[2], "x Wrong 1 password")
				retry := until.header.Get("Retry-After")
				a.env.Clock.Advance(time.Hour) // past the lock, not past a quiet day
				r := a.attempt(t, o.Slug, "198.51.100.62", emails[2], "x Wrong 1 password")
				if r.status != 429 || r.header.Get("Retry-After") != want {
					t.Errorf("failure after a lock (previous Retry-After %s) answered %s, want 429 retry %s", retry, outcome(r), want)
				}
			}
			if r := a.attempt(t, o.Slug, attacker, owner.Email, owner.Password); r.status != 200 {
				t.Errorf("the attacked address after its block ended answered %v, want 200 for the right password", r)
			}

			// Everything is recorded and counted: each failure until a block
			// (the requests a block refuses are counted in the metrics only,
			// so a flood cannot fill the log), each lock, block and unlock.
			o.Manager.Token = a.login(t, o.Slug, o.Manager.Email, o.Manager.Password).Token
			got := countActions(a.auditLog(t, o.Slug, o.Manager.Token))
			for action, least := range map[string]int{"auth.login_failed/failure": 60, "auth.locked/success": 6, "auth.address_blocked/success": 3,
				"auth.unlocked/success": 1, "auth.unlocked/failure": 1, "user.unlock/success": 1, "user.unlock/denied": 1} {
				if got[action] < least {
					t.Errorf("%s recorded %d times, want at least %d", action, got[action], least)
				}
			}
			metrics := a.metricsText(t)
			for _, want := range []string{`kluis_throttle_events_total{kind="lock"}`, `kluis_throttle_events_total{kind="address_block"}`, `kluis_throttle_events_total{kind="address_blocked"}`, `kluis_throttle_events_total{kind="locked"}`} {
				if !strings.Contains(metrics, want) {
					t.Errorf("metrics lack %s", want)
				}
			}
			mustNotContain(t, "request log", a.logs.String(), owner.Email, attacker, attacker2, device.Value)
		})
	}
}

func (a *testAPI) metricsText(tb testing.TB) string {
	tb.Helper()
	rec := httptest.NewRecorder()
	a.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

// unauthenticatedBodies is a well-formed body for each route anyone may
// call: the route walk below needs one for every such route, so that a new
// route cannot skip the address block unnoticed.
var unauthenticatedBodies = map[string]any{
	"POST /api/v1/operator/login":                        map[string]string{"email": "op@example.test", "password": "Some password 1"},
	"POST /api/v1/operator/login/mfa":                    map[string]string{"challenge": strings.Repeat("A", 43), "method": "totp", "code": "123456"},
	"POST /api/v1/operator/login/mfa/webauthn/options":   map[string]string{"challenge": strings.Repeat("A", 43)},
	"POST /api/v1/orgs/{org}/login":                      map[string]string{"email": "x@example.test", "password": "Some password 1"},
	"POST /api/v1/orgs/{org}/login/mfa":                  map[string]string{"challenge": strings.Repeat("A", 43), "method": "totp", "code": "123456"},
	"POST /api/v1/orgs/{org}/login/mfa/webauthn/options": map[string]string{"challenge": strings.Repeat("A", 43)},
	"POST /api/v1/orgs/{org}/login/mfa/sms":              map[string]string{"challenge": strings.Repeat("A", 43)},
	"POST /api/v1/orgs/{org}/invitations/accept":         map[string]string{"token": strings.Repeat("A", 43), "name": "Some Body", "password": "Some password 1 long"},
	"POST /api/v1/orgs/{org}/password-reset":             map[string]string{"email": "x@example.test"},
	"POST /api/v1/orgs/{org}/password-reset/confirm":     map[string]string{"token": strings.Repeat("A", 43), "new_password": "Some password 1 long"},
	"POST /api/v1/orgs/{org}/unlock":                     map[string]string{"token": strings.Repeat("A", 43)},
	"POST /o/{org}/login":                                "email=x%40example.test&password=Some+password+1",
	"POST /o/{org}/login/mfa":                            "method=totp&code=123456",
	"POST /o/{org}/login/mfa/sms":                        "",
	"POST /o/{org}/forgot":                               "email=x%40example.test",
	"POST /o/{org}/reset":                                "token=" + strings.Repeat("A", 43) + "&new_password=Some+password+1+long",
	"POST /o/{org}/invite":                               "token=" + strings.Repeat("A", 43) + "&name=Some+Body&password=Some+password+1+long",
	"POST /o/{org}/unlock":                               "token=" + strings.Repeat("A", 43),
	"POST /operator/login":                               "email=op%40example.test&password=Some+password+1",
	"POST /operator/login/mfa":                           "method=totp&code=123456",
}

// TestEveryUnauthenticatedRouteHonoursTheAddressBlock (R18, R46, DESIGN §6):
// once an address is blocked, every route that anyone may call — the API's
// and the pages' — answers 429 with Retry-After from it, and the same routes
// still work from another address.
func TestEveryUnauthenticatedRouteHonoursTheAddressBlock(t *testing.T) {
	a := newProxiedAPI(t, kluistest.Engines[0])
	o := a.newOrg(t)
	const blocked = "203.0.113.99"
	a.run(t, o.Slug, blocked, 20, uniqueEmail("x"))
	tested := map[string]bool{}
	for _, rt := range httpserver.Routes() {
		key := rt.Method + " " + rt.Pattern
		anyone := rt.Realm == "public" || rt.Realm == "org-public"
		body, listed := unauthenticatedBodies[key]
		if rt.Method == "GET" || (!anyone && !listed) {
			continue
		}
		if !listed {
			t.Errorf("%s may be called by anyone: add a body to unauthenticatedBodies", key)
			continue
		}
		tested[key] = true
		rq := request{method: rt.Method, path: strings.ReplaceAll(rt.Pattern, "{org}", o.Slug), body: body,
			header: map[string]string{"X-Forwarded-For": blocked}}
		if s, ok := body.(string); ok {
			rq.body, rq.contentType = s, "application/x-www-form-urlencoded"
			if strings.HasSuffix(rt.Pattern, "/login/mfa") {
				rq.cookies = []*http.Cookie{{Name: "__Host-kluis_challenge", Value: strings.Repeat("A", 43)}}
			}
		}
		rq.notAnError = rt.Realm != "public" && rt.Realm != "org-public"
		r := a.do(t, rq)
		if r.status != 429 || r.header.Get("Retry-After") == "" {
			t.Errorf("%s from a blocked address answered %v, want 429 with Retry-After", key, r)
		}
	}
	for key := range unauthenticatedBodies {
		if !tested[key] {
			t.Errorf("unauthenticatedBodies lists %s, which is not a route anyone may call", key)
		}
	}
	// The block is the address's, not the organisation's.
	wantError(t, "a login from another address", a.attempt(t, o.Slug, "198.51.100.99", uniqueEmail("y"), "Some password 1"), 401, "unauthenticated")
}

// TestOperatorRealmAnswersOnlyAllowedAddresses (R46): with operator
// addresses configured, the operator's API and pages do not exist for
// anyone else, sign-in included; the organisations' routes are unaffected.
func TestOperatorRealmAnswersOnlyAllowedAddresses(t *testing.T) {
	env := kluistest.NewEnv(t, kluistest.Engines[0])
	srv := httptest.NewServer(httpserver.NewServer(httpserver.Config{
		Services:          env.Services(),
		TrustedProxies:    []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		OperatorAddresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	}))
	t.Cleanup(srv.Close)
	a := &testAPI{env: env, srv: srv, logs: &lockedBuffer{}, requestIDs: map[string]bool{}}
	o := a.newOrg(t)
	from := func(addr string) map[string]string { return map[string]string{"X-Forwarded-For": addr} }
	creds := map[string]string{"email": "op@example.test", "password": "Some password 1"}
	for _, rt := range httpserver.Routes() {
		if !strings.Contains(rt.Pattern, "operator") && rt.Realm != "operator" {
			continue
		}
		path := strings.ReplaceAll(rt.Pattern, "{org}", o.Slug)
		rq := request{method: rt.Method, path: path, header: from("203.0.113.5"), notAnError: strings.HasPrefix(path, "/operator")}
		if rt.Method != "GET" {
			rq.body = creds
		}
		if r := a.do(t, rq); r.status != 404 {
			t.Errorf("%s %s from an address not allowed answered %d, want 404", rt.Method, rt.Pattern, r.status)
		}
	}
	wantError(t, "operator sign-in from an allowed address", a.do(t, request{method: "POST", path: "/api/v1/operator/login", body: creds, header: from("10.1.2.3")}), 401, "unauthenticated")
	wantStatus(t, "an organisation's sign-in from anywhere", a.do(t, request{method: "POST", path: orgPath(o.Slug, "/login"),
		body: map[string]string{"email": o.Manager.Email, "password": o.Manager.Password}, header: from("203.0.113.5")}), 200)
}

// TestThrottleReviewRegressions pins what a security review found: an owner
// with a second factor and a device cookie is not stopped at the second
// step by a block of the shared address; stopping logins does not let an
// address write without limit; a password change and a factor reset take
// the person's API tokens; a token does nothing while the organisation
// requires a factor its owner lacks (R17, R18, DESIGN §6).
func TestThrottleReviewRegressions(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newProxiedAPI(t, engine)
			o := a.newOrg(t)
			owner := a.addUser(t, o, "member")
			secret := enrolTOTP(t, a, o.Slug, owner)
			const office = "203.0.113.20"

			// The owner's browser completes a sign-in once: a device cookie.
			r := a.attempt(t, o.Slug, "198.51.100.70", owner.Email, owner.Password)
			wantStatus(t, "password step", r, 200)
			a.env.Clock.Advance(31 * time.Second)
			r = a.do(t, request{method: "POST", path: orgPath(o.Slug, "/login/mfa"), header: map[string]string{"X-Forwarded-For": "198.51.100.70"},
				body: map[string]string{"challenge": decodeStrict[mfaAnswer](t, r).Challenge, "method": "totp", "code": kluistest.OATHToolCode(t, secret, a.env.Clock.Now())}})
			wantStatus(t, "second step", r, 200)
			device := cookieOf(r, "__Host-kluis_device")
			if device == nil {
				t.Fatal("no device cookie after a two-step sign-in")
			}
			// Someone in the owner's office blocks the office's address.
			a.run(t, o.Slug, office, 20, uniqueEmail("x"))
			r = a.attempt(t, o.Slug, office, owner.Email, owner.Password, device)
			wantStatus(t, "password step with the device cookie from the blocked office", r, 200)
			a.env.Clock.Advance(31 * time.Second)
			r = a.do(t, request{method: "POST", path: orgPath(o.Slug, "/login/mfa"), header: map[string]string{"X-Forwarded-For": office},
				body: map[string]string{"challenge": decodeStrict[mfaAnswer](t, r).Challenge, "method": "totp", "code": kluistest.OATHToolCode(t, secret, a.env.Clock.Now())}})
			wantStatus(t, "second step from the blocked office after a trusted password step", r, 200)
			ownerSession := decodeStrict[loginAnswer](t, r).Token
			// Without the cookie the second step is blocked like the first.
			if r := a.attempt(t, o.Slug, office, owner.Email, owner.Password); r.status != 429 {
				t.Errorf("password step from the blocked office without the cookie: %v", r)
			}

			// Tokens: a password change takes them.
			tok := a.createToken(t, o.Slug, ownerSession, "script", "read", 24*time.Hour)
			wantStatus(t, "the token works", a.call(t, "GET", orgPath(o.Slug, "/me"), tok.Secret, nil), 200)
			newPw := uniquePassword()
			wantStatus(t, "change the password", a.call(t, "POST", orgPath(o.Slug, "/me/password"), ownerSession, map[string]string{"current_password": owner.Password, "new_password": newPw}), 204)
			wantError(t, "the token after a password change", a.call(t, "GET", orgPath(o.Slug, "/me"), tok.Secret, nil), 401, "unauthenticated")

			// A member without a factor and a token; the policy then requires one.
			mem := a.addUser(t, o, "member")
			memTok := a.createToken(t, o.Slug, mem.Token, "script", "read", 24*time.Hour)
			pol := defaultPolicy
			pol.MFA = "required"
			wantStatus(t, "require a factor", a.call(t, "PUT", orgPath(o.Slug, "/policy"), o.Manager.Token, pol), 200)
			wantError(t, "a token of someone without a factor", a.call(t, "GET", orgPath(o.Slug, "/me"), memTok.Secret, nil), 403, "mfa_enrolment_required")
			other := a.newOrg(t)
			wantError(t, "that token at another organisation", a.call(t, "GET", orgPath(other.Slug, "/me"), memTok.Secret, nil), 404, "not_found")

			// Stopped logins: refusals count against the address.
			wantStatus(t, "stop logins", a.call(t, "PUT", orgPath(other.Slug, "/logins"), other.Manager.Token, map[string]bool{"enabled": false}), 200)
			flood := a.run(t, other.Slug, "203.0.113.21", 30, uniqueEmail("y"))
			if n := countStatus(flood, "429"); n != 11 {
				t.Errorf("%d of 30 sign-ins while logins are stopped were throttled, want 11 (from the 20th)", n)
			}
		})
	}
}
