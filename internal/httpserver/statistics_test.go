package httpserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/kluistest"
)

// newDiagnosticsAPI is newTestAPI with the anonymous statistics' counter
// (flushed by the test) and an environment, as kluis serve wires them.
func newDiagnosticsAPI(tb testing.TB, engine string, environment kluis.Environment) (*testAPI, *httpserver.UsageCounter) {
	tb.Helper()
	m := httpserver.NewMetrics()
	env := kluistest.NewEnv(tb, engine, kluistest.EnvOptions{KeyObserver: m, Observer: m})
	logs := &lockedBuffer{}
	usage := httpserver.NewUsageCounter(env.Usage, env.Clock.Now)
	srv := httptest.NewServer(httpserver.NewServer(httpserver.Config{
		Services: env.Services(), Ready: env.Ready, Logger: slog.New(slog.NewJSONHandler(logs, nil)), Metrics: m,
		Usage: usage, Environment: environment,
	}))
	tb.Cleanup(srv.Close)
	return &testAPI{env: env, srv: srv, logs: logs, metrics: m, requestIDs: map[string]bool{}}, usage
}

type statisticsAnswer struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Minimum int    `json:"minimum"`
	Counts  []struct {
		Day     string `json:"day"`
		Feature string `json:"feature"`
		Count   int    `json:"count"`
	} `json:"counts"`
}

var (
	uuidShaped  = regexp.MustCompile(`(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	emailShaped = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+`)
	ipShaped    = regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b`)
	longNumber  = regexp.MustCompile(`\d{5,}`)
)

// TestStatisticsNeverHoldAnIdentifierOrASmallCount is a property test
// (R37), a seeded random loop: for each seed, organisations with people
// make a random mix of requests — their own pages and API routes, other
// people's by id, unknown ids, raw paths and query strings with e-mail
// addresses, forwarded client addresses — with flushes at random moments.
// Whatever the mix, the statistics an operator admin reads (the API and the
// page) hold no slug, organisation id, person id, name, e-mail address, IP
// address, token or id-shaped value, and no count below five; and the one
// route the fixtures never call is counted exactly (shown when it reached
// five, absent when not), so the property cannot pass by showing nothing.
func TestStatisticsNeverHoldAnIdentifierOrASmallCount(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			seeds := []uint64{1, 2, 3}
			if engine != kluistest.Engines[0] {
				seeds = seeds[:1]
			}
			for _, seed := range seeds {
				t.Run(fmt.Sprint(seed), func(t *testing.T) { statisticsProperty(t, engine, seed) })
			}
		})
	}
}

func statisticsProperty(t *testing.T, engine string, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 37))
	a, usage := newDiagnosticsAPI(t, engine, "")
	ctx := context.Background()
	var secrets []string
	type person struct {
		org account
		me  account
	}
	var orgs []orgFixture
	var people []person
	for range 1 + rng.IntN(2) {
		o := a.newOrg(t)
		orgs = append(orgs, o)
		secrets = append(secrets, o.Slug, o.ID, o.Name, o.Manager.ID, o.Manager.Email, o.Manager.Name, o.Manager.Token)
		people = append(people, person{org: account{ID: o.ID, Name: o.Slug}, me: o.Manager})
		for range rng.IntN(3) {
			u := a.addUser(t, o, "member")
			secrets = append(secrets, u.ID, u.Email, u.Name, u.Token)
			people = append(people, person{org: account{ID: o.ID, Name: o.Slug}, me: u})
		}
	}
	_, admin := a.operator(t)
	secrets = append(secrets, admin.ID, admin.Email, admin.Name, admin.Token)
	sessions := 0 // GET …/me/sessions: no fixture calls it
	n := 40 + rng.IntN(60)
	for range n {
		p := people[rng.IntN(len(people))]
		slug := p.org.Name
		randomID := fmt.Sprintf("0190%04x-%04x-7000-8000-%012x", rng.IntN(1<<16), rng.IntN(1<<16), rng.Uint64()&(1<<48-1))
		address := fmt.Sprintf("%d.%d.%d.%d", 1+rng.IntN(223), rng.IntN(256), rng.IntN(256), 1+rng.IntN(254))
		secrets = append(secrets, randomID, address)
		header := map[string]string{"X-Forwarded-For": address}
		switch rng.IntN(7) {
		case 0:
			a.do(t, request{method: "GET", path: orgPath(slug, "/me/sessions"), bearer: p.me.Token, header: header})
			sessions++
		case 1:
			a.do(t, request{method: "GET", path: orgPath(slug, "/users/"+people[rng.IntN(len(people))].me.ID), bearer: p.me.Token, header: header})
		case 2:
			a.do(t, request{method: "GET", path: orgPath(slug, "/projects/"+randomID), bearer: p.me.Token, header: header})
		case 3:
			a.do(t, request{method: "GET", path: "/o/" + slug + "/login?email=" + p.me.Email, header: header})
		case 4:
			a.do(t, request{method: "GET", path: "/nowhere/" + p.me.Email + "/" + randomID + "?ip=" + address, header: header})
		case 5:
			a.do(t, request{method: "GET", path: orgPath(slug, "/me"), bearer: p.me.Token, header: header})
		case 6:
			a.do(t, request{method: "GET", path: "/api/v1/operator/statistics?from=" + p.me.Email, bearer: admin.Token, header: header})
		}
		if rng.IntN(15) == 0 {
			if err := usage.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := usage.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r := a.call(t, "GET", "/api/v1/operator/statistics", admin.Token, nil)
	wantStatus(t, "statistics", r, 200)
	var got statisticsAnswer
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Minimum != kluis.UsageSuppressBelow || len(got.Counts) == 0 {
		t.Fatalf("statistics: %s, want counts with minimum 5", r.body)
	}
	var sessionsShown int
	for _, c := range got.Counts {
		if c.Count < kluis.UsageSuppressBelow {
			t.Errorf("a count below five is shown: %+v", c)
		}
		if c.Feature == "GET /api/v1/orgs/{org}/me/sessions" {
			sessionsShown = c.Count
		}
	}
	want := sessions
	if sessions < kluis.UsageSuppressBelow {
		want = 0
	}
	if sessionsShown != want {
		t.Errorf("GET …/me/sessions: shown %d, want %d (sent %d)", sessionsShown, want, sessions)
	}
	pg := operatorPage(a, admin).get(t, "/operator/statistics")
	if pg.status != 200 || !strings.Contains(pg.body, "GET /api/v1/orgs/{org}/me") {
		t.Fatalf("statistics page: %d %s", pg.status, excerpt(pg.body))
	}
	table := pg.body[strings.Index(pg.body, `<main`):]
	for what, text := range map[string]string{"the API's answer": string(r.body), "the page": table} {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("%s holds the identifier %q", what, s)
			}
		}
		for _, re := range []*regexp.Regexp{uuidShaped, emailShaped, ipShaped, longNumber} {
			if m := re.FindString(text); m != "" {
				t.Errorf("%s holds an identifier-shaped value %q", what, m)
			}
		}
		for _, m := range regexp.MustCompile(`<td[^>]*>(\d+)</td>`).FindAllStringSubmatch(text, -1) {
			if len(m[1]) < 2 && m[1][0] < '5' {
				t.Errorf("%s shows the count %s", what, m[1])
			}
		}
	}
}

// TestEnvironmentLabelsEveryPageAndAnswerOutsideProduction (R48): on a
// test instance every page — an organisation's and the operator's, signed
// in or not, in both languages — shows the banner, and every API answer
// carries Kluis-Environment: test; a production instance shows and sends
// neither.
func TestEnvironmentLabelsEveryPageAndAnswerOutsideProduction(t *testing.T) {
	engine := kluistest.Engines[0]
	for _, tc := range []struct {
		env    kluis.Environment
		banner bool
	}{{kluis.Test, true}, {kluis.Acceptance, true}, {kluis.Production, false}, {"", false}} {
		t.Run(string(tc.env)+"-", func(t *testing.T) {
			a, _ := newDiagnosticsAPI(t, engine, tc.env)
			o := a.newOrg(t)
			_, admin := a.operator(t)
			b := newBrowser(a)
			b.cookies["__Host-kluis_session"] = sessionCookie(o.Manager.Token)
			pages := map[string]page{
				"an organisation's sign-in page": newBrowser(a).get(t, "/o/"+o.Slug+"/login"),
				"the operator's sign-in page":    newBrowser(a).get(t, "/operator/login"),
				"a signed-in page":               b.get(t, "/o/"+o.Slug+"/account"),
				"an operator's page":             operatorPage(a, admin).get(t, "/operator"),
				"the home page":                  newBrowser(a).get(t, "/"),
			}
			nl := newBrowser(a)
			nl.lang = "nl"
			pages["a Dutch page"] = nl.get(t, "/o/"+o.Slug+"/login")
			for what, p := range pages {
				has := strings.Contains(p.body, `id="environment-banner"`)
				if has != tc.banner {
					t.Errorf("%s (%d): banner %v, want %v", what, p.status, has, tc.banner)
				}
				if tc.banner && !strings.Contains(p.body, `data-environment="`+string(tc.env)+`"`) {
					t.Errorf("%s: the banner does not name %s", what, tc.env)
				}
				if got := p.header.Get(httpserver.EnvironmentHeader); tc.banner && got != string(tc.env) || !tc.banner && got != "" {
					t.Errorf("%s: %s %q", what, httpserver.EnvironmentHeader, got)
				}
			}
			if tc.banner {
				if !strings.Contains(pages["a Dutch page"].body, "Dit is niet de productie") || !strings.Contains(pages["the operator's sign-in page"].body, "This is not production") {
					t.Errorf("the banner is not in the page's language")
				}
			}
			for _, r := range []response{
				a.call(t, "GET", orgPath(o.Slug, "/me"), o.Manager.Token, nil),
				a.call(t, "GET", orgPath(o.Slug, "/me"), "", nil),
				a.call(t, "GET", "/api/v1/operator/statistics", admin.Token, nil),
				a.do(t, request{method: "GET", path: "/healthz"}),
			} {
				if got := r.header.Get(httpserver.EnvironmentHeader); tc.banner && got != string(tc.env) || !tc.banner && got != "" {
					t.Errorf("API answer %d: %s %q", r.status, httpserver.EnvironmentHeader, got)
				}
			}
		})
	}
}

// TestCrashReportsAndStatisticsReachOperatorAdminsOnly (R37, R38): an
// operator admin lists and opens crash reports and reads the statistics,
// through the API (answers as the OpenAPI document says) and the pages,
// whose navigation offers them; opening a report is audited (crash.read);
// support staff are refused and offered neither.
func TestCrashReportsAndStatisticsReachOperatorAdminsOnly(t *testing.T) {
	a, usage := newDiagnosticsAPI(t, kluistest.Engines[0], "")
	c := checkContract(t, a)
	_, admin := a.operator(t)
	_, support := a.operatorOf(t, kluis.OperatorSupport)
	ctx := context.Background()
	id, err := a.env.Crashes.RecordCrash(ctx, kluis.CrashInput{Route: "GET /o/{org}/account", RequestID: "00112233445566778899aabb", Panic: "no profile for mia@example.org", Stack: []byte("goroutine 9 [running]:")})
	if err != nil {
		t.Fatal(err)
	}
	for range 6 {
		a.call(t, "GET", "/api/v1/operator/me", admin.Token, nil)
	}
	if err := usage.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	list := c.valid(t, a, request{method: "GET", path: "/api/v1/operator/crash-reports", bearer: admin.Token}, 200)
	if !strings.Contains(string(list.body), id) || strings.Contains(string(list.body), "no profile") {
		t.Errorf("the list: %s, want the report without its message", list.body)
	}
	one := c.valid(t, a, request{method: "GET", path: "/api/v1/operator/crash-reports/" + id, bearer: admin.Token}, 200)
	if !strings.Contains(string(one.body), "no profile for [email]") || strings.Contains(string(one.body), "mia@example.org") {
		t.Errorf("the report: %s, want the scrubbed message", one.body)
	}
	c.valid(t, a, request{method: "GET", path: "/api/v1/operator/crash-reports/0190a0a0-0000-7000-8000-0000000000aa", bearer: admin.Token}, 404)
	stats := c.valid(t, a, request{method: "GET", path: "/api/v1/operator/statistics", bearer: admin.Token}, 200)
	if !strings.Contains(string(stats.body), `"feature":"GET /api/v1/operator/me"`) {
		t.Errorf("statistics: %s, want GET /api/v1/operator/me counted", stats.body)
	}
	c.refused(t, a, request{method: "GET", path: "/api/v1/operator/statistics?from=yesterday", bearer: admin.Token}, 400, "invalid_input")
	for _, path := range []string{"/api/v1/operator/crash-reports", "/api/v1/operator/crash-reports/" + id, "/api/v1/operator/statistics"} {
		c.valid(t, a, request{method: "GET", path: path, bearer: support.Token}, 403)
	}

	ap := operatorPage(a, admin)
	home := ap.get(t, "/operator")
	mustContain(t, "the admin's navigation", home.body, `href="/operator/statistics"`, `href="/operator/crash-reports"`)
	pl := ap.get(t, "/operator/crash-reports")
	mustContain(t, "the crash reports page", pl.body, `href="/operator/crash-reports/`+id+`"`, "GET /o/{org}/account")
	p1 := ap.get(t, "/operator/crash-reports/"+id)
	mustContain(t, "a crash report's page", p1.body, "no profile for [email]", "goroutine 9")
	mustNotContain(t, "a crash report's page", p1.body, "mia@example.org")
	sp := operatorPage(a, support)
	mustNotContain(t, "support's navigation", sp.get(t, "/operator").body, `href="/operator/statistics"`, `href="/operator/crash-reports"`)
	if p := sp.get(t, "/operator/crash-reports/"+id); p.status != 403 || strings.Contains(p.body, "no profile") {
		t.Errorf("support opens a crash report's page: %d", p.status)
	}
	var reads int
	for _, r := range a.env.Query(t, `SELECT actor FROM audit_events WHERE action = 'crash.read' AND outcome = 'success'`) {
		if string(r[0]) == "operator:"+admin.ID {
			reads++
		}
	}
	if reads != 2 {
		t.Errorf("%d crash.read events by the admin, want 2 (the API and the page)", reads)
	}
}

// TestSecondStepMethodsAreCountedAsNamedFeatures (R37): besides its route,
// a completed second sign-in step counts as the named feature
// "signin.METHOD", so the statistics tell the factors apart — still without
// anyone in them; a failed step counts only its route.
func TestSecondStepMethodsAreCountedAsNamedFeatures(t *testing.T) {
	a, usage := newDiagnosticsAPI(t, kluistest.Engines[0], "")
	_, admin := a.operator(t)
	for range kluis.UsageSuppressBelow {
		a.env.Clock.Advance(31 * time.Second) // a new code each time
		r := a.call(t, "POST", "/api/v1/operator/login", "", map[string]string{"email": admin.Email, "password": admin.Password})
		wantStatus(t, "operator password step", r, 200)
		var step struct {
			Challenge string `json:"challenge"`
		}
		if err := json.Unmarshal(r.body, &step); err != nil || step.Challenge == "" {
			t.Fatalf("password step: %s, want a challenge", r.body)
		}
		wantStatus(t, "a wrong code", a.call(t, "POST", "/api/v1/operator/login/mfa", "", map[string]string{"challenge": step.Challenge, "method": "totp", "code": "000000"}), 401)
		wantStatus(t, "operator second step", a.call(t, "POST", "/api/v1/operator/login/mfa", "", map[string]string{"challenge": step.Challenge, "method": "totp", "code": totpCode(t, admin.TOTPSecret, a.env.Clock.Now())}), 200)
	}
	if err := usage.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := a.call(t, "GET", "/api/v1/operator/statistics", admin.Token, nil)
	var got statisticsAnswer
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, c := range got.Counts {
		counts[c.Feature] += c.Count
	}
	if counts["signin.totp"] != kluis.UsageSuppressBelow || counts["POST /api/v1/operator/login/mfa"] != 2*kluis.UsageSuppressBelow {
		t.Errorf("counts %v, want signin.totp %d (the successes) and the route %d (every try)", counts, kluis.UsageSuppressBelow, 2*kluis.UsageSuppressBelow)
	}
}
