package httpserver_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/kluistest"
)

// The web interface's server side, tested over real HTTP on both engines.
// The browser tests (cmd/kluis, Chromium) click through the same pages; these
// tests pin what a browser test cannot see cheaply: every header on every
// page, refusals, redirects and what must never be in a page (docs/UI.md).

// browser is a minimal browser for page tests: it keeps cookies by name
// (also Secure ones, as Chromium does on localhost), sends Sec-Fetch-Site
// and Origin as a browser does, and never follows redirects.
type browser struct {
	a       *testAPI
	cookies map[string]*http.Cookie
	lang    string
}

func newBrowser(a *testAPI) *browser { return &browser{a: a, cookies: map[string]*http.Cookie{}} }

type page struct {
	status int
	header http.Header
	body   string
}

func (p page) location() string { return p.header.Get("Location") }

// send makes a request from a page of site (the same origin unless told),
// and checks the headers every page must carry.
func (b *browser) send(tb testing.TB, method, path string, form url.Values, site string) page {
	tb.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.a.srv.URL+path, body)
	if err != nil {
		tb.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if site == "" {
		site = "same-origin"
	}
	req.Header.Set("Sec-Fetch-Site", site)
	if method == "POST" {
		origin := b.a.srv.URL
		if site == "cross-site" {
			origin = "http://attacker.example"
		}
		req.Header.Set("Origin", origin)
	}
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	if b.lang != "" {
		req.Header.Set("Accept-Language", b.lang)
	}
	for _, c := range b.cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	client := *b.a.srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	for _, c := range res.Cookies() {
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	p := page{status: res.StatusCode, header: res.Header, body: string(raw)}
	checkPageHeaders(tb, method+" "+path, p)
	return p
}

func (b *browser) get(tb testing.TB, path string) page {
	tb.Helper()
	return b.send(tb, "GET", path, nil, "")
}
func (b *browser) post(tb testing.TB, path string, form url.Values) page {
	tb.Helper()
	return b.send(tb, "POST", path, form, "")
}

// wantPage fails unless the answer has the status (a redirect: and goes to).
func wantPage(tb testing.TB, what string, p page, status int, to string) {
	tb.Helper()
	if p.status != status || (to != "" && p.location() != to) {
		tb.Fatalf("%s: got %d to %q, want %d to %q\n%s", what, p.status, p.location(), status, to, excerpt(p.body))
	}
}

func excerpt(s string) string {
	if i := strings.Index(s, "<main"); i >= 0 {
		s = s[i:]
	}
	if len(s) > 1500 {
		s = s[:1500] + "…"
	}
	return s
}

var cspWant = map[string]string{
	"default-src": "'self'", "script-src": "'self'", "style-src": "'self'", "object-src": "'none'",
	"base-uri": "'none'", "form-action": "'self'", "frame-ancestors": "'none'",
}

// checkPageHeaders checks the headers of docs/UI.md on a page (HTML) answer.
func checkPageHeaders(tb testing.TB, what string, p page) {
	tb.Helper()
	if p.status == http.StatusSeeOther || p.status == http.StatusNotModified {
		return
	}
	ct := p.header.Get("Content-Type")
	if !strings.HasPrefix(ct, "text/html") {
		if strings.HasPrefix(what, "GET /static/") {
			return
		}
		tb.Errorf("%s: Content-Type %q, want text/html", what, ct)
	}
	csp := map[string]string{}
	for _, d := range strings.Split(p.header.Get("Content-Security-Policy"), ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		csp[name] = value
	}
	for d, want := range cspWant {
		if csp[d] != want {
			tb.Errorf("%s: CSP %s %q, want %q", what, d, csp[d], want)
		}
	}
	if strings.Contains(p.header.Get("Content-Security-Policy"), "unsafe") {
		tb.Errorf("%s: CSP allows something unsafe: %s", what, p.header.Get("Content-Security-Policy"))
	}
	for h, want := range map[string]string{
		"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
		"Cross-Origin-Opener-Policy": "same-origin", "X-Frame-Options": "DENY",
	} {
		if got := p.header.Get(h); got != want {
			tb.Errorf("%s: %s %q, want %q", what, h, got, want)
		}
	}
	for _, feature := range []string{"camera=()", "microphone=()", "geolocation=()", "payment=()", "usb=()"} {
		if !strings.Contains(p.header.Get("Permissions-Policy"), feature) {
			tb.Errorf("%s: Permissions-Policy %q does not deny %s", what, p.header.Get("Permissions-Policy"), feature)
		}
	}
	// No inline script or style: the CSP would block it, so it would be a bug.
	for _, bad := range []string{"<script>", "style=\"", " onclick=", " onload=", "javascript:"} {
		if strings.Contains(p.body, bad) {
			tb.Errorf("%s: page contains %q", what, bad)
		}
	}
}

// signInPage signs in through the login form and returns the browser.
func signInPage(tb testing.TB, a *testAPI, slug string, acc account) *browser {
	tb.Helper()
	b := newBrowser(a)
	p := b.post(tb, "/o/"+slug+"/login", url.Values{"email": {acc.Email}, "password": {acc.Password}})
	wantPage(tb, "sign in", p, http.StatusSeeOther, "/o/"+slug+"/account")
	if b.cookies["__Host-kluis_session"] == nil {
		tb.Fatalf("sign-in set no session cookie")
	}
	return b
}

// TestPagesAnswerEveryPersonWithHeadersAndRightPages walks every page route
// as the person it is for (R14, docs/UI.md): each answers HTML with the
// security headers; a page needing a session without one goes to sign-in;
// members get the store's refusal on manager pages.
func TestPagesAnswerEveryPersonWithHeadersAndRightPages(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			_, opAcc := a.operator(t)

			mgr := signInPage(t, a, o.Slug, o.Manager)
			member := signInPage(t, a, o.Slug, mem)
			op := newBrowser(a)
			wantPage(t, "operator sign-in", op.post(t, "/operator/login", url.Values{"email": {opAcc.Email}, "password": {opAcc.Password}}), 303, "/operator/login/mfa")
			a.env.Clock.Advance(30 * time.Second) // the enrolment used the current code
			wantPage(t, "operator second step", op.post(t, "/operator/login/mfa", url.Values{"method": {"totp"}, "code": {totpCode(t, opAcc.TOTPSecret, a.env.Clock.Now())}}), 303, "/operator")
			nobody := newBrowser(a)
			other := a.newOrg(t)
			otherMgr := signInPage(t, a, other.Slug, other.Manager)

			var pages int
			for _, rt := range httpserver.Routes() {
				if rt.Method != "GET" || !strings.HasPrefix(rt.Realm, "page") || strings.Contains(rt.Pattern, "{file}") {
					continue
				}
				pages++
				path := strings.NewReplacer("{org}", o.Slug, "{id}", mem.ID, "{n}", "1", "{$}", "").Replace(rt.Pattern)
				switch rt.Realm {
				case "page":
					wantPage(t, path, nobody.get(t, path), 200, "")
				case "page-operator":
					if path == "/operator/login" {
						wantPage(t, path, nobody.get(t, path), 200, "")
						wantPage(t, path+" signed in", op.get(t, path), 303, "/operator")
						continue
					}
					if path == "/operator/login/mfa" { // without a challenge from the password step
						wantPage(t, path, nobody.get(t, path), 303, "/operator/login")
						continue
					}
					if path == "/operator/account/totp/qr.png" { // nothing pending
						wantPage(t, path, op.get(t, path), 404, "")
						continue
					}
					wantPage(t, path+" without a session", nobody.get(t, path), 303, "/operator/login")
					wantPage(t, path+" as a manager of an organisation", mgr.get(t, path), 303, "/operator/login")
					if strings.HasPrefix(path, "/operator/crash-reports/") { // no such report (R38)
						wantPage(t, path+" as admin", op.get(t, path), 404, "")
						continue
					}
					if strings.HasSuffix(path, "/support") { // support's own page; the role table walks it
						wantPage(t, path+" as admin", op.get(t, path), 403, "")
						continue
					}
					wantPage(t, path, op.get(t, path), 200, "")
				case "page-org":
					public := map[string]bool{"/login": true, "/signed-out": true, "/invite": true, "/forgot": true, "/reset": true, "/unlock": true, "/": true, "/confirm-email": true}
					rest := strings.TrimPrefix(path, "/o/"+o.Slug)
					if rest == "/login/mfa" { // without a challenge from the password step
						wantPage(t, path, nobody.get(t, path), 303, "/o/"+o.Slug+"/login")
						continue
					}
					if rest == "/account/totp/qr.png" { // nothing pending
						wantPage(t, path, mgr.get(t, path), 404, "")
						continue
					}
					if public[rest] {
						if rest == "/" {
							wantPage(t, path, nobody.get(t, path), 303, "/o/"+o.Slug+"/login")
							wantPage(t, path, mem.pageOf(member).get(t, path), 303, "/o/"+o.Slug+"/account")
							continue
						}
						wantPage(t, path, nobody.get(t, path), 200, "")
						continue
					}
					wantPage(t, path+" without a session", nobody.get(t, path), 303, "/o/"+o.Slug+"/login")
					wantPage(t, path+" with an operator session", op.get(t, path), 303, "/o/"+o.Slug+"/login")
					wantPage(t, path+" with another organisation's manager session", otherMgr.get(t, path), 303, "/o/"+o.Slug+"/login")
					if strings.HasPrefix(rest, "/projects/") { // {id} names no project
						wantPage(t, path+" as manager", mgr.get(t, path), 404, "")
						wantPage(t, path+" as member", member.get(t, path), 404, "")
						continue
					}
					wantPage(t, path+" as manager", mgr.get(t, path), 200, "")
					managerOnly := !strings.HasPrefix(rest, "/account") && rest != "/policy" && rest != "/projects" && rest != "/trash" && rest != "/inbox" && rest != "/backups" &&
						rest != "/privacy" && rest != "/privacy/requests" // issue 15: every person's; the register is managers'
					if managerOnly {
						p := member.get(t, path)
						wantPage(t, path+" as member", p, 403, "")
						mustNotContain(t, path+" as member", p.body, o.Manager.Email, htmlEscape(o.Manager.Name), `<table`)
					} else {
						wantPage(t, path+" as member", member.get(t, path), 200, "")
					}
				}
			}
			if pages < 12 {
				t.Fatalf("walked %d page routes, want all of docs/UI.md", pages)
			}
			wantPage(t, "an unknown page", nobody.get(t, "/o/"+o.Slug+"/nothing-here"), 404, "")
			wantPage(t, "an unknown organisation", nobody.get(t, "/o/no-such-org/login"), 404, "")
			st := nobody.get(t, "/static/kluis.css")
			if st.status != 200 || !strings.HasPrefix(st.header.Get("Content-Type"), "text/css") || st.header.Get("ETag") == "" {
				t.Errorf("style sheet: %d %q etag %q", st.status, st.header.Get("Content-Type"), st.header.Get("ETag"))
			}
		})
	}
}

// pageOf is a helper so a table can name a person's browser.
func (acc account) pageOf(b *browser) *browser { return b }

// TestPagesOverHTTPSSendHSTSAndSecureCookies: HSTS and Secure cookies when
// the person's connection is TLS — served over TLS, configured as https (a
// TLS proxy in front), or forwarded as https by a trusted proxy — and not on
// plain HTTP (localhost development), nor when an untrusted client claims
// https.
func TestPagesOverHTTPSSendHSTSAndSecureCookies(t *testing.T) {
	env := kluistest.NewEnv(t, kluistest.Engines[0])
	lang := func(t *testing.T, client *http.Client, base string, header map[string]string) (hsts, cookie string) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+"/lang", strings.NewReader("lang=nl&back=/"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		c := *client
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		get, _ := http.NewRequest("GET", base+"/", nil)
		for k, v := range header {
			get.Header.Set(k, v)
		}
		page, err := c.Do(get)
		if err != nil {
			t.Fatal(err)
		}
		page.Body.Close()
		return page.Header.Get("Strict-Transport-Security"), res.Header.Get("Set-Cookie")
	}
	for _, tc := range []struct {
		name   string
		tls    bool
		config httpserver.Config
		header map[string]string
		secure bool
	}{
		{name: "TLS here", tls: true, secure: true},
		{name: "public URL is https", config: httpserver.Config{HTTPS: true}, secure: true},
		{name: "a trusted proxy forwards https", config: httpserver.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, header: map[string]string{"X-Forwarded-Proto": "https"}, secure: true},
		{name: "an untrusted client claims https", header: map[string]string{"X-Forwarded-Proto": "https"}},
		{name: "plain HTTP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.config.Services = env.Services()
			h := httpserver.NewServer(tc.config)
			srv := httptest.NewUnstartedServer(h)
			if tc.tls {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			hsts, cookie := lang(t, srv.Client(), srv.URL, tc.header)
			if got := strings.Contains(hsts, "max-age="); got != tc.secure {
				t.Errorf("HSTS %q, want it: %v", hsts, tc.secure)
			}
			if got := strings.Contains(cookie, "Secure"); got != tc.secure {
				t.Errorf("language cookie %q, want Secure: %v", cookie, tc.secure)
			}
		})
	}
}

// TestSignInPageAndMyAccount signs in through the form (R14): a failure
// keeps the address and says the same for every cause; My account shows
// what is held about the person and their sign-ins (R4); sign-out ends the
// session.
func TestSignInPageAndMyAccount(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			b := newBrowser(a)
			for _, tc := range []struct{ email, password string }{
				{mem.Email, "wrong " + mem.Password},
				{"nobody-" + mem.Email, mem.Password},
				{"not an address", "Pw not-an-address 123"},
			} {
				p := b.post(t, "/o/"+o.Slug+"/login", url.Values{"email": {tc.email}, "password": {tc.password}})
				wantPage(t, "failed sign-in", p, 401, "")
				if !strings.Contains(p.body, "The e-mail address or the password is not correct.") {
					t.Errorf("failed sign-in page lacks the one failure message:\n%s", excerpt(p.body))
				}
				if !strings.Contains(p.body, `value="`+htmlEscape(tc.email)+`"`) {
					t.Errorf("failed sign-in lost the address typed")
				}
				mustNotContain(t, "failed sign-in page", p.body, tc.password)
			}
			b = signInPage(t, a, o.Slug, mem)
			acc := b.get(t, "/o/"+o.Slug+"/account")
			wantPage(t, "my account", acc, 200, "")
			for _, want := range []string{mem.Email, htmlEscape(mem.Name), mem.ID, `id="signins"`, "127.0.0.1", "signed in", "wrong password",
				`autocomplete="current-password"`, `autocomplete="new-password"`, `name="maintenance_emails"`} {
				if !strings.Contains(acc.body, want) {
					t.Errorf("my account lacks %q", want)
				}
			}
			if n := strings.Count(acc.body, `class="tag bad"`); n != 1 {
				t.Errorf("my account shows %d failed attempts, want the 1 on this account", n)
			}
			out := b.post(t, "/o/"+o.Slug+"/logout", url.Values{})
			wantPage(t, "sign out", out, 303, "/o/"+o.Slug+"/login")
			if b.cookies["__Host-kluis_session"] != nil {
				t.Error("sign-out left the session cookie")
			}
			r := a.call(t, "GET", orgPath(o.Slug, "/me"), mem.Token, nil)
			wantStatus(t, "API session of the same person after a page sign-out elsewhere", r, 200)
		})
	}
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

// TestIdleSessionEndsWithSignedOutPage (R21): a page request after the
// policy's idle minutes clears the cookie and says "you were signed out";
// the pages of a signed-in person tell the script the idle time.
func TestIdleSessionEndsWithSignedOutPage(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			b := signInPage(t, a, o.Slug, o.Manager)
			acc := b.get(t, "/o/"+o.Slug+"/account")
			if !strings.Contains(acc.body, `data-idle-seconds="1800"`) || !strings.Contains(acc.body, `data-signed-out="/o/`+o.Slug+`/signed-out"`) {
				t.Errorf("account page does not tell the script the idle time")
			}
			a.env.Clock.Advance(31 * time.Minute)
			p := b.get(t, "/o/"+o.Slug+"/account")
			wantPage(t, "account after 31 idle minutes", p, 303, "/o/"+o.Slug+"/signed-out")
			if b.cookies["__Host-kluis_session"] != nil {
				t.Error("the ended session's cookie was not cleared")
			}
			so := b.get(t, p.location())
			wantPage(t, "signed-out page", so, 200, "")
			if !strings.Contains(so.body, "You were signed out") {
				t.Errorf("signed-out page:\n%s", excerpt(so.body))
			}
			wantPage(t, "account again", b.get(t, "/o/"+o.Slug+"/account"), 303, "/o/"+o.Slug+"/login")
		})
	}
}

// TestPageFormsRefuseOtherOrigins: a form posted from another site is
// refused before any handler runs, with an HTML page, and nothing changes;
// the session cookie is not even used for a cross-site page request.
func TestPageFormsRefuseOtherOrigins(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			b := signInPage(t, a, o.Slug, o.Manager)
			before := a.me(t, o.Slug, o.Manager.Token)
			head := auditHead(a.auditLog(t, o.Slug, o.Manager.Token))
			for _, site := range []string{"cross-site", "same-site"} {
				p := b.send(t, "POST", "/o/"+o.Slug+"/account/profile", url.Values{"name": {"Hacked"}, "phone": {""}}, site)
				wantPage(t, site+" profile post", p, 403, "")
			}
			// An older browser without Sec-Fetch-Site: the Origin decides.
			req, _ := http.NewRequest("POST", a.srv.URL+"/o/"+o.Slug+"/users", strings.NewReader("email=x%40example.org&name=X&role=manager"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Accept", "text/html")
			req.Header.Set("Origin", "http://attacker.example")
			req.AddCookie(&http.Cookie{Name: "__Host-kluis_session", Value: b.cookies["__Host-kluis_session"].Value})
			res, err := a.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 403 {
				t.Errorf("invite posted with a foreign Origin: %d, want 403", res.StatusCode)
			}
			if after := a.me(t, o.Slug, o.Manager.Token); after.Name != before.Name {
				t.Errorf("name %q after refused posts, want %q", after.Name, before.Name)
			}
			if got := auditHead(a.auditLog(t, o.Slug, o.Manager.Token)); got != head {
				t.Errorf("audit head %s after refused posts, want %s (nothing recorded, nothing changed)", got, head)
			}
			// A link from another site or another origin of the same site
			// does not use the session: it cannot record reads in the
			// person's name or keep an idle session alive.
			mem := a.addUser(t, o, "member")
			head = auditHead(a.auditLog(t, o.Slug, o.Manager.Token))
			for _, site := range []string{"cross-site", "same-site"} {
				p := b.send(t, "GET", "/o/"+o.Slug+"/users/"+mem.ID, nil, site)
				wantPage(t, "a "+site+" link to a person's page", p, 303, "/o/"+o.Slug+"/login")
				r := a.do(t, request{method: "GET", path: orgPath(o.Slug, "/users/"+mem.ID), cookies: []*http.Cookie{sessionCookie(o.Manager.Token)}, header: map[string]string{"Sec-Fetch-Site": site}})
				wantError(t, "a "+site+" API read with the cookie", r, 401, "unauthenticated")
			}
			if got := auditHead(a.auditLog(t, o.Slug, o.Manager.Token)); got != head {
				t.Errorf("audit head %s after links from elsewhere, want %s (no read recorded)", got, head)
			}
		})
	}
}

// TestPagesShowWhatPeopleTypeAsText: a name with markup is escaped wherever
// a page shows it; nothing of it becomes an element.
func TestPagesShowWhatPeopleTypeAsText(t *testing.T) {
	a := newTestAPI(t, kluistest.Engines[0])
	o := a.newOrg(t)
	hostile := `<script>alert("x")</script><img src=x onerror=alert(1)>`
	r := a.call(t, "POST", orgPath(o.Slug, "/users"), o.Manager.Token, map[string]string{"email": uniqueEmail("eve"), "name": hostile, "role": "member"})
	wantStatus(t, "invite a hostile name", r, 201)
	id := decodeStrict[userAnswer](t, r).User.ID
	b := signInPage(t, a, o.Slug, o.Manager)
	for _, path := range []string{"/users", "/users/" + id, "/users/" + id + "/delete", "/audit?actor=user:" + id} {
		p := b.get(t, "/o/"+o.Slug+path)
		wantPage(t, path, p, 200, "")
		if strings.Contains(p.body, "<script>alert") || strings.Contains(p.body, "<img src=x") {
			t.Errorf("%s shows the name as markup", path)
		}
		if path != "/audit?actor=user:"+id && !strings.Contains(p.body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
			t.Errorf("%s does not show the name as text:\n%s", path, excerpt(p.body))
		}
	}
}

// TestFormErrorsKeepWhatWasTyped: a validation error answers 400 with the
// values typed (never a password) and each problem next to its field, in
// the page's language.
func TestFormErrorsKeepWhatWasTyped(t *testing.T) {
	a := newTestAPI(t, kluistest.Engines[0])
	o := a.newOrg(t)
	b := signInPage(t, a, o.Slug, o.Manager)
	p := b.post(t, "/o/"+o.Slug+"/account/profile", url.Values{"name": {"Anna Typed-This"}, "phone": {"not a phone"}, "maintenance_emails": {"on"}})
	wantPage(t, "profile with a bad phone", p, 400, "")
	for _, want := range []string{`value="Anna Typed-This"`, `value="not a phone"`, `id="phone-error"`, `aria-invalid="true"`, `aria-describedby="phone-hint phone-error"`, "must be a phone number"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("profile error page lacks %s", want)
		}
	}
	if got := a.me(t, o.Slug, o.Manager.Token); got.Name == "Anna Typed-This" {
		t.Error("a refused profile changed the name")
	}

	b.lang = "nl"
	secret := "short"
	p = b.post(t, "/o/"+o.Slug+"/account/password", url.Values{"current_password": {o.Manager.Password}, "new_password": {secret}})
	wantPage(t, "too short a password", p, 400, "")
	if !strings.Contains(p.body, `id="new_password-error"`) || !strings.Contains(p.body, "moet minstens") {
		t.Errorf("password error not next to its field in Dutch:\n%s", excerpt(p.body))
	}
	mustNotContain(t, "password error page", p.body, o.Manager.Password, `value="short"`)

	p = b.post(t, "/o/"+o.Slug+"/users", url.Values{"email": {"bad address"}, "name": {"Bram Typed"}, "role": {"manager"}})
	wantPage(t, "invite with a bad address", p, 400, "")
	for _, want := range []string{`value="bad address"`, `value="Bram Typed"`, `<option value="manager" selected>`, `id="email-error"`, "is geen geldig e-mailadres"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("invite error page lacks %s", want)
		}
	}
}

// TestLanguageFromBrowserAndSwitch: Accept-Language chooses the language
// until the switch is used; the switch is remembered and returns only to
// pages of this site.
func TestLanguageFromBrowserAndSwitch(t *testing.T) {
	a := newTestAPI(t, kluistest.Engines[0])
	o := a.newOrg(t)
	b := newBrowser(a)
	b.lang = "nl-BE,nl;q=0.9,en;q=0.5"
	p := b.get(t, "/o/"+o.Slug+"/login")
	if !strings.Contains(p.body, `<html lang="nl">`) || !strings.Contains(p.body, "<h1>Aanmelden</h1>") {
		t.Fatalf("Dutch browser got:\n%s", p.body[:min(len(p.body), 600)])
	}
	sw := b.post(t, "/lang", url.Values{"lang": {"en"}, "back": {"/o/" + o.Slug + "/login"}})
	wantPage(t, "switch to English", sw, 303, "/o/"+o.Slug+"/login")
	if p := b.post(t, "/o/"+o.Slug+"/login", url.Values{"email": {"x"}}); !strings.Contains(p.body, `name="back" value="/o/`+o.Slug+`/login"`) {
		t.Errorf("a re-shown sign-in form does not switch back to the sign-in page")
	}
	p = b.get(t, "/o/"+o.Slug+"/login")
	if !strings.Contains(p.body, `<html lang="en">`) || !strings.Contains(p.body, "<h1>Sign in</h1>") {
		t.Errorf("after the switch, a Dutch browser got:\n%s", excerpt(p.body))
	}
	for _, back := range []string{"//attacker.example/x", "https://attacker.example/", "/\\attacker.example", "javascript:alert(1)", ""} {
		wantPage(t, "switch back to "+back, b.post(t, "/lang", url.Values{"lang": {"nl"}, "back": {back}}), 303, "/")
	}
}

var tokenInURL = regexp.MustCompile(`[?&#]token=`)

// TestInvitationPageKeepsTheTokenOutOfURLs: the page has no token in any
// link or form action; the form posts it in the body, and every answer of
// the flow redirects to URLs without it.
func TestInvitationPageKeepsTheTokenOutOfURLs(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			acc := a.invite(t, o, "member")
			token := a.inviteToken(t)
			b := newBrowser(a)
			p := b.get(t, "/o/"+o.Slug+"/invite")
			wantPage(t, "invitation page", p, 200, "")
			if !strings.Contains(p.body, `data-token-from-fragment`) || !strings.Contains(p.body, `autocomplete="new-password"`) {
				t.Errorf("invitation page lacks the token field or the new-password hint")
			}
			bad := b.post(t, "/o/"+o.Slug+"/invite", url.Values{"token": {token}, "name": {"Noor Typed"}, "password": {"x"}})
			wantPage(t, "a too short password", bad, 400, "")
			if !strings.Contains(bad.body, `value="Noor Typed"`) || !strings.Contains(bad.body, `id="password-error"`) {
				t.Errorf("invitation error page lost the name or the field error")
			}
			wrong := b.post(t, "/o/"+o.Slug+"/invite", url.Values{"token": {otherToken(token)}, "name": {"Noor"}, "password": {acc.Password}})
			wantPage(t, "a wrong token", wrong, 400, "")
			ok := b.post(t, "/o/"+o.Slug+"/invite", url.Values{"token": {token}, "name": {acc.Name}, "password": {acc.Password}})
			wantPage(t, "accept", ok, 303, "/o/"+o.Slug+"/login")
			for _, pg := range []page{p, bad, wrong, ok} {
				mustNotContain(t, "a location", pg.location(), token)
				if tokenInURL.MatchString(pg.body) {
					t.Errorf("a page puts a token in a URL")
				}
			}
			mustNotContain(t, "the wrong-token page", wrong.body, token[1:], otherToken(token))
			mustNotContain(t, "the server log", a.logs.String(), token, acc.Password)
			signInPage(t, a, o.Slug, acc)
		})
	}
}

// TestPageInputThatCannotBeAFilterOrANumber: hostile filter values answer
// 400 on both engines (never a database error), and a member probing the
// policy form with garbage is refused and recorded like any other probe.
func TestPageInputThatCannotBeAFilterOrANumber(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			b := signInPage(t, a, o.Slug, o.Manager)
			for _, q := range []string{"action=%FF", "actor=%00", "actor=user%3A%FF", "since=yesterday", "before=-1", "action=" + strings.Repeat("a", 101)} {
				wantPage(t, "audit?"+q, b.get(t, "/o/"+o.Slug+"/audit?"+q), 400, "")
			}
			member := signInPage(t, a, o.Slug, mem)
			p := member.post(t, "/o/"+o.Slug+"/policy", url.Values{"password_min_length": {"x"}, "session_idle_minutes": {"5"}, "session_max_hours": {"1"}})
			wantPage(t, "member posts a garbled policy", p, 403, "")
			denied := 0
			for _, e := range a.auditLog(t, o.Slug, o.Manager.Token) {
				if e.Action == "policy.update" && e.Outcome == "denied" {
					denied++
				}
			}
			if denied != 1 {
				t.Errorf("%d recorded policy refusals, want 1", denied)
			}
			p = b.post(t, "/o/"+o.Slug+"/policy", url.Values{"password_min_length": {"x"}, "session_idle_minutes": {"0"}, "session_max_hours": {"1"}})
			wantPage(t, "manager posts a garbled policy", p, 400, "")
			for _, want := range []string{`id="password_min_length-error"`, "must be a whole number", `id="session_idle_minutes-error"`, `value="x"`} {
				if !strings.Contains(p.body, want) {
					t.Errorf("garbled policy page lacks %s", want)
				}
			}
		})
	}
}

// TestTimesInThePersonsZone: the time zone the script reports decides how
// times are shown, whether written plain or encoded; an unknown zone is UTC.
func TestTimesInThePersonsZone(t *testing.T) {
	a := newTestAPI(t, kluistest.Engines[0])
	o := a.newOrg(t)
	b := signInPage(t, a, o.Slug, o.Manager)
	for _, tc := range []struct{ cookie, zone string }{
		{"Etc/GMT+5", "-05"}, {"Etc/GMT%2B5", "-05"}, {"Asia/Tokyo", "JST"}, {"Mars/Olympus", "UTC"}, {"../../etc/passwd", "UTC"},
	} {
		b.cookies["kluis_tz"] = &http.Cookie{Name: "kluis_tz", Value: tc.cookie}
		p := b.get(t, "/o/"+o.Slug+"/account")
		if !regexp.MustCompile(`\d\d:\d\d ` + regexp.QuoteMeta(tc.zone) + `</time>`).MatchString(p.body) {
			t.Errorf("time zone cookie %q: times not shown in %s:\n%s", tc.cookie, tc.zone, excerpt(p.body))
		}
	}
}

// otherToken is a token of the same shape that differs from token.
func otherToken(token string) string {
	first := "A"
	if token[0] == 'A' {
		first = "B"
	}
	return first + token[1:]
}
