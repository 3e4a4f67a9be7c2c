package httpserver_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/kluistest"
)

type sessionsAnswer struct {
	Sessions []struct {
		ID         string `json:"id"`
		CreatedAt  string `json:"created_at"`
		LastSeenAt string `json:"last_seen_at"`
		ExpiresAt  string `json:"expires_at"`
		Client     string `json:"client"`
		Device     string `json:"device"`
		Current    bool   `json:"current"`
	} `json:"sessions"`
}

// TestSessionsListedAndEnded (R4, R14): a person sees their live sessions
// with the address and a coarse device name, and ends one or every other;
// another person's session is not found; each ending is recorded.
func TestSessionsListedAndEnded(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			loginAs := func(ua string) string {
				t.Helper()
				r := a.do(t, request{method: "POST", path: orgPath(o.Slug, "/login"), body: map[string]string{"email": mem.Email, "password": mem.Password},
					header: map[string]string{"User-Agent": ua}})
				wantStatus(t, "login from "+ua, r, 200)
				return decodeStrict[loginAnswer](t, r).Token
			}
			const firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0 unique-build-7781"
			second := loginAs(firefox)
			third := loginAs("curl/8.5.0")

			r := a.call(t, "GET", orgPath(o.Slug, "/me/sessions"), mem.Token, nil)
			wantStatus(t, "list sessions", r, 200)
			list := decodeStrict[sessionsAnswer](t, r).Sessions
			if len(list) != 3 {
				t.Fatalf("%d sessions listed, want 3: %s", len(list), r.body)
			}
			devices, current := map[string]bool{}, 0
			for _, s := range list {
				devices[s.Device] = true
				if s.Current {
					current++
				}
				if s.Client != "127.0.0.1" {
					t.Errorf("session %s from %q, want 127.0.0.1", s.ID, s.Client)
				}
			}
			if !devices["Firefox on Linux"] || !devices["curl"] || current != 1 {
				t.Errorf("devices %v and %d current sessions, want Firefox on Linux, curl and one current", devices, current)
			}
			mustNotContain(t, "the session list", string(r.body), "unique-build-7781", second, third)

			// Another person's session id is not found.
			mgrList := decodeStrict[sessionsAnswer](t, a.call(t, "GET", orgPath(o.Slug, "/me/sessions"), o.Manager.Token, nil)).Sessions
			wantError(t, "end the manager's session", a.call(t, "DELETE", orgPath(o.Slug, "/me/sessions/"+mgrList[0].ID), mem.Token, nil), 404, "not_found")
			wantError(t, "end a session that is no id", a.call(t, "DELETE", orgPath(o.Slug, "/me/sessions/x'1"), mem.Token, nil), 404, "not_found")
			a.me(t, o.Slug, o.Manager.Token)

			var firefoxID string
			for _, s := range list {
				if s.Device == "Firefox on Linux" {
					firefoxID = s.ID
				}
			}
			wantStatus(t, "end the Firefox session", a.call(t, "DELETE", orgPath(o.Slug, "/me/sessions/"+firefoxID), mem.Token, nil), 204)
			wantError(t, "the ended session", a.call(t, "GET", orgPath(o.Slug, "/me"), second, nil), 401, "unauthenticated")
			a.me(t, o.Slug, third)
			wantStatus(t, "end every other session", a.call(t, "DELETE", orgPath(o.Slug, "/me/sessions"), mem.Token, nil), 204)
			wantError(t, "another ended session", a.call(t, "GET", orgPath(o.Slug, "/me"), third, nil), 401, "unauthenticated")
			a.me(t, o.Slug, mem.Token)
			if n := len(decodeStrict[sessionsAnswer](t, a.call(t, "GET", orgPath(o.Slug, "/me/sessions"), mem.Token, nil)).Sessions); n != 1 {
				t.Errorf("%d sessions after ending the others, want 1", n)
			}
			if got := countActions(a.auditLog(t, o.Slug, o.Manager.Token))["auth.session_end/success"]; got != 2 {
				t.Errorf("auth.session_end recorded %d times, want 2", got)
			}
		})
	}
}

// TestSessionsOnMyAccount: the page lists the sessions, marks this browser,
// and ends the others.
func TestSessionsOnMyAccount(t *testing.T) {
	a := newTestAPI(t, kluistest.Engines[0])
	o := a.newOrg(t)
	b := signInPage(t, a, o.Slug, o.Manager)
	p := b.get(t, "/o/"+o.Slug+"/account")
	if !strings.Contains(p.body, `id="sessions"`) || !strings.Contains(p.body, "this browser") || !strings.Contains(p.body, `id="end-others"`) {
		t.Fatalf("my account does not list the sessions:\n%s", excerpt(p.body))
	}
	wantPage(t, "end the others", b.post(t, "/o/"+o.Slug+"/account/sessions/end-others", url.Values{}), 303, "/o/"+o.Slug+"/account")
	wantError(t, "the API session after ending the others", a.call(t, "GET", orgPath(o.Slug, "/me"), o.Manager.Token, nil), 401, "unauthenticated")
	if p := b.get(t, "/o/"+o.Slug+"/account"); strings.Contains(p.body, `id="end-others"`) || !strings.Contains(p.body, "Every other session has ended.") {
		t.Errorf("after ending the others, the page still offers it or says nothing")
	}
}

func TestDeviceNames(t *testing.T) {
	for ua, want := range map[string]string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0 Safari/537.36 Edg/141.0":                   "Edge on Windows",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1": "Safari on iOS",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15":                      "Safari on macOS",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0 Safari/537.36":                               "Chrome on Linux",
		"Mozilla/5.0 (Linux; Android 15) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0 Mobile Safari/537.36":                                "Chrome on Android",
		"curl/8.5.0": "curl",
		"":           "",
		"<script>":   "",
	} {
		if got := httpserver.DeviceName(ua); got != want {
			t.Errorf("deviceName(%.50q) = %q, want %q", ua, got, want)
		}
	}
}
