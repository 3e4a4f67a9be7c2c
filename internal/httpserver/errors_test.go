package httpserver_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/kluistest"
)

// TestErrorsFollowTheContractTable provokes each error of the contract's
// table and checks its status, code and shape; unknown routes are JSON 404s,
// a wrong method a 405 with Allow; every answer has a request id and the
// security headers (checked by do on every request of every test). An
// unexpected failure is a neutral 500 whose cause is only logged, with the
// request id.
func TestErrorsFollowTheContractTable(t *testing.T) {
	t.Parallel()
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			_, op := a.operator(t)
			o := a.newOrg(t)
			mgr := o.Manager.Token
			mem := a.addUser(t, o, "member")
			nobody := kluis.NewID(time.Now())

			cases := []struct {
				name   string
				rq     request
				status int
				code   string
				allow  []string // methods the Allow header must list
			}{
				{name: "unknown path", rq: request{method: "GET", path: "/nope"}, status: 404, code: "not_found"},
				{name: "API root", rq: request{method: "GET", path: "/api/v1"}, status: 404, code: "not_found"},
				{name: "unknown API version", rq: request{method: "GET", path: "/api/v2/orgs"}, status: 404, code: "not_found"},
				{name: "unknown path in an organisation", rq: request{method: "GET", path: orgPath(o.Slug, "/nope"), bearer: mgr}, status: 404, code: "not_found"},
				{name: "path below a user", rq: request{method: "GET", path: orgPath(o.Slug, "/users/"+mem.ID+"/secrets"), bearer: mgr}, status: 404, code: "not_found"},
				{name: "user id that is no id", rq: request{method: "GET", path: orgPath(o.Slug, "/users/1%20OR%201=1"), bearer: mgr}, status: 404, code: "not_found"},
				{name: "user id of nobody", rq: request{method: "GET", path: orgPath(o.Slug, "/users/"+nobody), bearer: mgr}, status: 404, code: "not_found"},
				{name: "unknown organisation", rq: request{method: "GET", path: orgPath("no-such-org", "/me"), bearer: mgr}, status: 404, code: "not_found"},
				{name: "wrong method on /healthz", rq: request{method: "DELETE", path: "/healthz"}, status: 405, code: "method_not_allowed", allow: []string{"GET"}},
				{name: "wrong method on login", rq: request{method: "GET", path: orgPath(o.Slug, "/login")}, status: 405, code: "method_not_allowed", allow: []string{"POST"}},
				{name: "wrong method on /me", rq: request{method: "PUT", path: orgPath(o.Slug, "/me"), bearer: mgr}, status: 405, code: "method_not_allowed", allow: []string{"GET", "PATCH"}},
				{name: "wrong method on a user", rq: request{method: "POST", path: orgPath(o.Slug, "/users/"+mem.ID), bearer: mgr}, status: 405, code: "method_not_allowed", allow: []string{"GET", "PATCH", "DELETE"}},
				{name: "wrong method on the organisations", rq: request{method: "PATCH", path: "/api/v1/orgs", bearer: op.Token}, status: 405, code: "method_not_allowed", allow: []string{"GET", "POST"}},
				{name: "no credentials", rq: request{method: "GET", path: orgPath(o.Slug, "/me")}, status: 401, code: "unauthenticated"},
				{name: "garbage bearer", rq: request{method: "GET", path: orgPath(o.Slug, "/me"), bearer: "garbage"}, status: 401, code: "unauthenticated"},
				{name: "unknown well-formed token", rq: request{method: "GET", path: orgPath(o.Slug, "/me"), bearer: strings.Repeat("A", 43)}, status: 401, code: "unauthenticated"},
				{name: "basic authentication", rq: request{method: "GET", path: orgPath(o.Slug, "/me"), header: map[string]string{"Authorization": "Basic bWlhOnB3"}}, status: 401, code: "unauthenticated"},
				{name: "empty session cookie", rq: request{method: "GET", path: orgPath(o.Slug, "/me"), cookies: []*http.Cookie{sessionCookie("")}}, status: 401, code: "unauthenticated"},
				{name: "operator route without credentials", rq: request{method: "GET", path: "/api/v1/orgs"}, status: 401, code: "unauthenticated"},
				{name: "member on a manager route", rq: request{method: "GET", path: orgPath(o.Slug, "/audit"), bearer: mem.Token}, status: 403, code: "forbidden"},
				{name: "member changes a policy", rq: request{method: "PUT", path: orgPath(o.Slug, "/policy"), bearer: mem.Token, body: defaultPolicy}, status: 403, code: "forbidden"},
				{name: "malformed JSON", rq: request{method: "PATCH", path: orgPath(o.Slug, "/me"), bearer: mgr, body: "{"}, status: 400, code: "invalid_input"},
				{name: "body over 1 MiB", rq: request{method: "PATCH", path: orgPath(o.Slug, "/me"), bearer: mgr, body: `{"name":"` + strings.Repeat("a", 1<<20) + `"}`}, status: 413, code: "too_large"},
				{name: "slug taken", rq: request{method: "POST", path: "/api/v1/orgs", bearer: op.Token, body: map[string]any{"slug": o.Slug, "name": "Again", "manager": map[string]string{"email": uniqueEmail("x")}}}, status: 409, code: "conflict"},
				{name: "address taken", rq: request{method: "POST", path: orgPath(o.Slug, "/users"), bearer: mgr, body: map[string]string{"email": mem.Email}}, status: 409, code: "conflict"},
				{name: "re-sending an accepted invitation", rq: request{method: "POST", path: orgPath(o.Slug, "/users/"+mem.ID+"/invitation"), bearer: mgr}, status: 409, code: "conflict"},
			}
			for _, c := range cases {
				r := a.do(t, c.rq)
				wantError(t, c.name, r, c.status, c.code)
				if c.allow != nil {
					allow := r.header.Get("Allow")
					for _, m := range c.allow {
						if !strings.Contains(allow, m) {
							t.Errorf("%s: Allow %q, want it to list %s", c.name, allow, m)
						}
					}
				}
			}

			for path, want := range map[string]string{"/healthz": `{"status":"ok"}`, "/readyz": `{"status":"ready"}`} {
				r := a.call(t, "GET", path, "", nil)
				if r.status != 200 || strings.TrimSpace(string(r.body)) != want {
					t.Errorf("GET %s: got %v, want 200 %s", path, r, want)
				}
			}

			t.Run("unexpected failure is a neutral 500, logged with the request id", func(t *testing.T) {
				if err := a.env.DB.Close(); err != nil {
					t.Fatal(err)
				}
				r := a.do(t, request{method: "GET", path: "/readyz", allow5xx: true, notAnError: true})
				if r.status != 503 {
					t.Errorf("GET /readyz with the database gone: got %v, want 503", r)
				}
				r = a.do(t, request{method: "GET", path: orgPath(o.Slug, "/me"), bearer: mgr, allow5xx: true})
				e := wantError(t, "GET /me with the database gone", r, 500, "internal")
				mustNotContain(t, "500 answer", strings.ToLower(e.Error.Message), "sql", "closed", "database")
				id := r.header.Get("X-Request-Id")
				var logged bool
				for _, line := range strings.Split(a.logs.String(), "\n") {
					var rec map[string]any
					if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "internal error" && rec["request_id"] == id {
						logged = rec["err"] != nil && rec["err"] != ""
					}
				}
				if !logged {
					t.Errorf("no internal error with the cause logged for request %s:\n%s", id, a.logs.String())
				}
			})
		})
	}
}

// TestMetricsCountByRoutePattern checks that the metrics count requests by
// route pattern (never a raw path: no ids, slugs or addresses in labels),
// failed and successful logins per realm, and every audit append.
func TestMetricsCountByRoutePattern(t *testing.T) {
	t.Parallel()
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			_, op := a.operator(t)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			wantStatus(t, "open member", a.call(t, "GET", orgPath(o.Slug, "/users/"+mem.ID), o.Manager.Token, nil), 200)
			for range 3 {
				wantError(t, "failed login", a.call(t, "POST", orgPath(o.Slug, "/login"), "", map[string]string{"email": mem.Email, "password": "wrong password"}), 401, "unauthenticated")
			}
			wantError(t, "unknown path", a.call(t, "GET", "/nope/"+mem.ID+"/"+mem.Email, "", nil), 404, "not_found")
			wantError(t, "unknown user", a.call(t, "GET", orgPath(o.Slug, "/users/"+kluis.NewID(time.Now())), o.Manager.Token, nil), 404, "not_found")
			orgEvents := len(a.auditLog(t, o.Slug, o.Manager.Token))
			// Once the key cache has expired, a request unwraps the keys it
			// needs again: counted per organisation (R28).
			a.env.Clock.Advance(a.env.KeyStore.CacheTTL())
			wantStatus(t, "me after the key cache expired", a.call(t, "GET", orgPath(o.Slug, "/me"), o.Manager.Token, nil), 200)

			rec := httptest.NewRecorder()
			a.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			text := rec.Body.String()
			samples := parseMetrics(t, text)

			for _, c := range []struct {
				sample string
				want   float64
			}{
				{`kluis_http_requests_total{method="GET",route="GET /api/v1/orgs/{org}/users/{id}",status="200"}`, 1},
				{`kluis_http_requests_total{method="GET",route="GET /api/v1/orgs/{org}/users/{id}",status="404"}`, 1},
				{`kluis_http_requests_total{method="POST",route="POST /api/v1/orgs/{org}/login",status="401"}`, 3},
				{`kluis_http_requests_total{method="POST",route="POST /api/v1/orgs/{org}/login",status="200"}`, 2},
				{`kluis_http_requests_total{method="GET",route="unmatched",status="404"}`, 1},
				{`kluis_logins_total{outcome="failure",realm="org"}`, 3},
				{`kluis_logins_total{outcome="success",realm="org"}`, 2},
				{`kluis_logins_total{outcome="success",realm="operator"}`, 1},
				{`kluis_audit_appends_total{chain="org"}`, float64(orgEvents)},
				{`kluis_audit_appends_total{chain="platform"}`, 8}, // key.created of the platform key at start (counted: the observer is given at construction), operator.create, operator.login, operator.totp_start, operator.totp_enable, org.create, key.created of the org and index keys
			} {
				if got, ok := samples[c.sample]; !ok || got != c.want {
					t.Errorf("%s = %v (present: %v), want %v", c.sample, got, ok, c.want)
				}
			}
			unwraps := 0.0
			for name, v := range samples {
				if strings.HasPrefix(name, `kluis_key_unwraps_total{`) && strings.Contains(name, `kind="user"`) {
					if !strings.Contains(name, `org="`+o.ID+`"`) {
						t.Errorf("unwrap metric not labelled with the organisation's id: %s", name)
					}
					unwraps += v
				}
			}
			if unwraps < 1 {
				t.Errorf("no user key unwrap counted after the cache expired:\n%s", text)
			}
			if _, ok := samples[`kluis_http_request_duration_seconds_count{route="GET /api/v1/orgs/{org}/users/{id}"}`]; !ok {
				t.Error("no latency histogram for the user route")
			}

			patterns := map[string]bool{"unmatched": true}
			for _, rt := range httpserver.Routes() {
				patterns[rt.Method+" "+rt.Pattern] = true
			}
			for s := range samples {
				if m := routeLabel.FindStringSubmatch(s); m != nil && !patterns[m[1]] {
					t.Errorf("metric %s has a route label that is not a pattern", s)
				}
			}
			// The organisation's id labels the key unwrap counter (R28: unwraps
			// per organisation), and nothing else.
			var other []string
			for _, l := range strings.Split(text, "\n") {
				if !strings.HasPrefix(l, "kluis_key_unwraps_total{") {
					other = append(other, l)
				}
			}
			mustNotContain(t, "metrics", strings.Join(other, "\n"), o.ID)
			mustNotContain(t, "metrics", text, mem.ID, o.Slug, mem.Email, o.Manager.Email, mem.Token, o.Manager.Token, op.Token, "@")
		})
	}
}

var (
	routeLabel  = regexp.MustCompile(`route="([^"]*)"`)
	metricLine  = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	metricLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// parseMetrics reads the Prometheus text format into samples keyed by the
// name and the labels sorted by name: name{a="1",b="2"}.
func parseMetrics(t *testing.T, text string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := metricLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("metrics line %q does not parse", line)
		}
		key := m[1]
		if m[2] != "" {
			var labels []string
			for _, l := range metricLabel.FindAllStringSubmatch(m[2], -1) {
				labels = append(labels, l[1]+`="`+l[2]+`"`)
			}
			sort.Strings(labels)
			key += "{" + strings.Join(labels, ",") + "}"
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[key] = v
	}
	return out
}
