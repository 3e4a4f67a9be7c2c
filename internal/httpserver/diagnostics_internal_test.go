package httpserver

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
)

// TestPanicBecomesACrashReportWithoutTheEmailOrTokenItQuoted (R38): a
// handler panics with an e-mail address, a token and a client address in
// its message, on a request whose query string holds another address. The
// client still gets the neutral 500; the stored report holds none of them
// in plain text (a scan of every column of the table, and of every byte
// kluis stored, in plain, hex and base64 forms), and the scrubbed
// report an admin opens has them replaced, with the route's pattern and
// the request id kept. The log names the report, not the panic's values
// beyond what it logged before.
func TestPanicBecomesACrashReportWithoutTheEmailOrTokenItQuoted(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		const (
			email   = "jan.de.vries@example.org"
			token   = "Zm9vYmFyMTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A"
			address = "198.51.100.23"
			asked   = "piet@example.net"
		)
		var logs bytes.Buffer
		s := &server{log: slog.New(slog.NewJSONHandler(&logs, nil)), mux: http.NewServeMux(), maxBody: 1 << 20, crashes: env.Crashes}
		inner := http.NewServeMux()
		inner.HandleFunc("GET /o/{org}/projects/{id}", func(http.ResponseWriter, *http.Request) {
			panic("cannot serve " + email + " with token=" + token + " from " + address + " (Bearer " + token + ")")
		})
		h := s.begin(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, pattern := inner.Handler(r)
			state(r).route = pattern
			inner.ServeHTTP(w, r)
		}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/o/acme/projects/0190a0a0-0000-7000-8000-000000000042?email="+asked, nil))
		if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), email) {
			t.Fatalf("answer: got %d %s, want the neutral 500", rec.Code, rec.Body.String())
		}
		for _, row := range env.Query(t, `SELECT id, at, route, request_id, report FROM crash_reports`) {
			for _, col := range row {
				for _, secret := range []string{email, token, address, asked, "jan.de.vries", "acme", "0190a0a0-0000-7000-8000-000000000042"} {
					if bytes.Contains(col, []byte(secret)) {
						t.Errorf("the stored crash report holds %q in plain text", secret)
					}
				}
			}
		}
		// The whole data folder (the database with its WAL, the key
		// store) and, on PostgreSQL, a dump: no form of them anywhere.
		if found := kluistest.FindMarkers(env.StoredBytes(t), email, token, address, asked); len(found) > 0 {
			t.Errorf("what kluis stored holds the panic's values: %v", found)
		}
		admin := kluis.Actor{Realm: kluis.RealmOperator, OperatorID: "0190a0a0-0000-7000-8000-0000000000e1", OperatorRole: kluis.OperatorAdmin}
		list, err := env.Crashes.CrashReports(context.Background(), admin)
		if err != nil || len(list) != 1 {
			t.Fatalf("reports: got %d, %v; want 1", len(list), err)
		}
		c, err := env.Crashes.CrashReport(context.Background(), admin, list[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if c.Route != "GET /o/{org}/projects/{id}" || c.RequestID != rec.Header().Get("X-Request-Id") {
			t.Errorf("route %q and request id %q, want the pattern and %q", c.Route, c.RequestID, rec.Header().Get("X-Request-Id"))
		}
		text := c.Message + "\n" + c.Stack
		for _, secret := range []string{email, token, address, asked} {
			if strings.Contains(text, secret) {
				t.Errorf("the scrubbed report still holds %q:\n%s", secret, c.Message)
			}
		}
		for _, want := range []string{"cannot serve [email]", "token=[redacted]", "from [address]", "Bearer [token]", "goroutine"} {
			if !strings.Contains(text, want) {
				t.Errorf("the scrubbed report lacks %q:\n%s", want, c.Message)
			}
		}
		if !strings.Contains(logs.String(), list[0].ID) {
			t.Errorf("the log does not name crash report %s: %s", list[0].ID, logs.String())
		}
	})
}

// TestScrubCrashRemovesPersonalValuesAndKeepsTheStack (R38): what the
// scrubbing removes, and that a Go stack stays readable.
func TestScrubCrashRemovesPersonalValuesAndKeepsTheStack(t *testing.T) {
	for _, tc := range []struct{ in, gone, kept string }{
		{"user jan@example.org failed", "jan@example.org", "user [email] failed"},
		{"GET /o/acme/reset?token=abc&email=x@y.nl", "abc", "/o/acme/reset?[query]"},
		{`password: "hunter2 horse"`, "hunter2", `password: [redacted]`},
		{"peer 2001:db8::8a2e:370:7334 closed", "8a2e:370:7334", "peer [address] closed"},
		{"peer 203.0.113.9:443", "203.0.113.9", "peer [address]:443"},
		{"phone +31 6 12345678 refused", "12345678", "phone [number] refused"},
		{"token kluis_pat_AbCdEf123456 revoked", "AbCdEf123456", "token [token] revoked"},
		{"session Zm9vYmFyMTIzNDU2Nzg5MGFi", "Zm9vYmFyMTIzNDU2Nzg5MGFi", "session [token]"},
		{"user 0190a0a0-0000-7000-8000-000000000042", "0190a0a0-0000-7000-8000-000000000042", "user [id]"},
		{"at 03:22:05 in github.com/kluis/kluis/internal/httpserver.handleFinishPasskeyRegistration(0xc000123456)\n\t/src/kluis/internal/httpserver/api_passkeys.go:120 +0x1a5", "", "at 03:22:05 in github.com/kluis/kluis/internal/httpserver.handleFinishPasskeyRegistration(0xc000123456)\n\t/src/kluis/internal/httpserver/api_passkeys.go:120 +0x1a5"},
	} {
		got := kluis.ScrubCrash(tc.in)
		if tc.gone != "" && strings.Contains(got, tc.gone) {
			t.Errorf("ScrubCrash(%q) = %q: still holds %q", tc.in, got, tc.gone)
		}
		if !strings.Contains(got, tc.kept) {
			t.Errorf("ScrubCrash(%q) = %q, want it to hold %q", tc.in, got, tc.kept)
		}
	}
}

// TestEveryRouteIsACountableFeature (R37): the statistics count a route's
// pattern; every pattern of the table passes the store's check for
// identifiers, so no route goes uncounted by accident.
func TestEveryRouteIsACountableFeature(t *testing.T) {
	for _, rt := range Routes() {
		if f := rt.Method + " " + rt.Pattern; !kluis.ValidUsageFeature(f) {
			t.Errorf("route %s is not a valid usage feature", f)
		}
	}
	if !kluis.ValidUsageFeature("unmatched") {
		t.Error("unmatched is not a valid usage feature")
	}
}

// externalReference finds a reference to another host in a page or a
// static file: an absolute or scheme-relative URL in src, href, action,
// url(), @import, fetch or an import.
var externalReference = regexp.MustCompile(`(?i)(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import\s+["']?(?:https?:)?//|(?:fetch|import|sendBeacon|XMLHttpRequest|WebSocket|EventSource)\s*\(\s*["'](?:https?:|wss?:)?//`)

// analyticsName finds the names of well-known analytics and error trackers.
var analyticsName = regexp.MustCompile(`(?i)\b(?:google-analytics|googletagmanager|gtag|plausible|matomo|segment\.io|hotjar|sentry|mixpanel|amplitude)\b`)

// TestPagesLoadNothingFromAnotherHost (R37: no third-party analytics,
// ever): no template or static file refers to another host, and the pages'
// Content-Security-Policy names no host at all — every source is 'self'
// or 'none' — so a script from elsewhere could not even run.
func TestPagesLoadNothingFromAnotherHost(t *testing.T) {
	n := 0
	for _, root := range []fs.FS{templateFS, staticFS} {
		fs.WalkDir(root, ".", func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(root, path)
			if err != nil {
				t.Fatal(err)
			}
			n++
			if m := externalReference.Find(b); m != nil {
				t.Errorf("%s refers to another host: %q", path, m)
			}
			if m := analyticsName.Find(b); m != nil {
				t.Errorf("%s mentions %s", path, m)
			}
			return nil
		})
	}
	if n < 20 {
		t.Fatalf("scanned %d files; the walk is broken", n)
	}
	for _, csp := range []string{pageHeaders["Content-Security-Policy"], "default-src 'none'; frame-ancestors 'none'"} {
		for _, directive := range strings.Split(csp, ";") {
			fields := strings.Fields(directive)
			for _, src := range fields[1:] {
				if src != "'self'" && src != "'none'" {
					t.Errorf("the Content-Security-Policy directive %q allows %s", strings.TrimSpace(directive), src)
				}
			}
		}
	}
}

// TestUsageCounterCountsOnlyTheClosedSetOfFeatures (R37): the counter
// counts the route table's patterns, "unmatched" and dotted names; a path
// that was asked for (with a slug or an id), an address, a health check or
// a static file is not counted at all.
func TestUsageCounterCountsOnlyTheClosedSetOfFeatures(t *testing.T) {
	day := time.Date(2026, 12, 8, 23, 59, 0, 0, time.FixedZone("CET", 3600)) // 22:59 UTC
	u := NewUsageCounter(nil, func() time.Time { return day })
	for _, f := range []string{
		"GET /o/{org}/login", "GET /o/{org}/login", "signin.totp", "unmatched",
		"GET /o/acme/login", "GET /o/{org}/users/0190a0a0-0000-7000-8000-000000000001", "GET /o/{org}/nothing",
		"jan@example.org", "198.51.100.7", "GET /healthz", "GET /readyz", "GET /static/{file}", "",
	} {
		u.count(f)
	}
	want := map[usageKey]int{
		{"2026-12-08", "GET /o/{org}/login"}: 2, {"2026-12-08", "signin.totp"}: 1, {"2026-12-08", "unmatched"}: 1,
	}
	if len(u.counts) != len(want) {
		t.Errorf("counted %v, want %v", u.counts, want)
	}
	for k, n := range want {
		if u.counts[k] != n {
			t.Errorf("%v: counted %d, want %d", k, u.counts[k], n)
		}
	}
}
