package httpserver_test

import (
	"bytes"
	"encoding/json"
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

type tokenObject struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Scope      string     `json:"scope"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

type tokenCreatedAnswer struct {
	Token  tokenObject `json:"token"`
	Secret string      `json:"secret"`
}

type tokensAnswer struct {
	Tokens []tokenObject `json:"tokens"`
}

// createToken makes a personal API token with a (fresh) session.
func (a *testAPI) createToken(tb testing.TB, slug, session, name, scope string, life time.Duration) tokenCreatedAnswer {
	tb.Helper()
	r := a.call(tb, "POST", orgPath(slug, "/me/tokens"), session, map[string]any{"name": name, "scope": scope, "expires_at": a.env.Clock.Now().Add(life)})
	wantStatus(tb, "create a "+scope+" token", r, 201)
	return decodeStrict[tokenCreatedAnswer](tb, r)
}

// TestPersonalAPITokens (R14, R6, R8): a person makes named, scoped,
// expiring tokens with a fresh session; the secret is shown once, has a
// recognisable prefix and is stored only as a hash; a token works as a
// bearer token on the organisation's API (never as a cookie), a read token
// only reads, no token changes credentials or makes tokens; tokens are
// listed without secrets, revoked, and each step is recorded.
func TestPersonalAPITokens(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")

			read := a.createToken(t, o.Slug, mem.Token, "backup <script>", "read", 30*24*time.Hour)
			if !strings.HasPrefix(read.Secret, "kluis_pat_") || len(read.Secret) != len("kluis_pat_")+43 {
				t.Errorf("secret %q, want kluis_pat_ and 43 characters", read.Secret)
			}
			if read.Token.Name != "backup <script>" || read.Token.Scope != "read" || read.Token.LastUsedAt != nil {
				t.Errorf("new token %+v", read.Token)
			}
			a.env.Clock.Advance(time.Second)
			full := a.createToken(t, o.Slug, mem.Token, "deploy", "full", 24*time.Hour)

			// The secret is a bearer credential of the member; never a cookie.
			if got := a.me(t, o.Slug, read.Secret); got.Email != mem.Email {
				t.Errorf("GET /me with the token: %+v, want the member", got)
			}
			wantError(t, "the token as a session cookie", a.do(t, request{method: "GET", path: orgPath(o.Slug, "/me"), cookies: []*http.Cookie{sessionCookie(read.Secret)}}), 401, "unauthenticated")
			wantError(t, "the token in the operator realm", a.call(t, "GET", "/api/v1/orgs", full.Secret, nil), 401, "unauthenticated")
			other := a.newOrg(t)
			wantError(t, "the token at another organisation", a.call(t, "GET", orgPath(other.Slug, "/me"), full.Secret, nil), 404, "not_found")
			wantError(t, "a read token writing at another organisation", a.call(t, "PATCH", orgPath(other.Slug, "/me"), read.Secret, map[string]any{"name": "x"}), 404, "not_found")

			// Read scope: reads only (R8).
			wantError(t, "PATCH /me with a read token", a.call(t, "PATCH", orgPath(o.Slug, "/me"), read.Secret, map[string]any{"name": "Mallory"}), 403, "forbidden")
			wantError(t, "logout with a read token", a.call(t, "POST", orgPath(o.Slug, "/logout"), read.Secret, nil), 403, "forbidden")
			// Full scope: what the person may do, but no credential, factor,
			// token or address change, no reauth, no ending sessions.
			wantStatus(t, "PATCH /me with a full token", a.call(t, "PATCH", orgPath(o.Slug, "/me"), full.Secret, map[string]any{"name": "Script Name"}), 200)
			for _, rq := range []struct{ method, path string }{
				{"POST", "/me/tokens"}, {"POST", "/me/password"}, {"POST", "/me/reauth"}, {"POST", "/me/totp"},
				{"DELETE", "/me/totp"}, {"POST", "/me/email"}, {"POST", "/me/email/confirm"}, {"DELETE", "/me/sessions"},
			} {
				for _, tok := range []string{read.Secret, full.Secret} {
					wantError(t, rq.method+" "+rq.path+" with a token", a.call(t, rq.method, orgPath(o.Slug, rq.path), tok, map[string]any{}), 403, "forbidden")
				}
			}
			a.me(t, o.Slug, mem.Token) // the member's session survived

			// Listed without secrets, newest first; last use is kept.
			r := a.call(t, "GET", orgPath(o.Slug, "/me/tokens"), read.Secret, nil)
			wantStatus(t, "list tokens with a token", r, 200)
			list := decodeStrict[tokensAnswer](t, r).Tokens
			if len(list) != 2 || list[0].ID != full.Token.ID || list[1].ID != read.Token.ID || list[1].LastUsedAt == nil {
				t.Errorf("tokens listed: %+v", list)
			}
			mustNotContain(t, "the token list", string(r.body), read.Secret, full.Secret, strings.TrimPrefix(read.Secret, "kluis_pat_"))
			if got := decodeStrict[tokensAnswer](t, a.call(t, "GET", orgPath(o.Slug, "/me/tokens"), o.Manager.Token, nil)).Tokens; len(got) != 0 {
				t.Errorf("the manager sees %d tokens, want none of the member's", len(got))
			}

			// Creation needs a fresh session and valid input.
			now := a.env.Clock.Now()
			for _, c := range []struct {
				body  map[string]any
				field string
			}{
				{map[string]any{"name": "", "scope": "read", "expires_at": now.Add(time.Hour)}, "name"},
				{map[string]any{"name": "x", "scope": "admin", "expires_at": now.Add(time.Hour)}, "scope"},
				{map[string]any{"name": "x", "scope": "read", "expires_at": now.Add(-time.Minute)}, "expires_at"},
				{map[string]any{"name": "x", "scope": "read", "expires_at": now.Add(366 * 24 * time.Hour)}, "expires_at"},
				{map[string]any{"name": "x", "scope": "read"}, "expires_at"},
			} {
				wantInvalid(t, "token with a bad "+c.field, a.call(t, "POST", orgPath(o.Slug, "/me/tokens"), mem.Token, c.body), c.field)
			}
			a.env.Clock.Advance(6 * time.Minute)
			r = a.call(t, "POST", orgPath(o.Slug, "/me/tokens"), mem.Token, map[string]any{"name": "late", "scope": "read", "expires_at": a.env.Clock.Now().Add(time.Hour)})
			wantError(t, "a token from a session signed in 6 minutes ago", r, 403, "reauth_required")

			// Revoked: it stops at once; someone else's or an unknown id is not found.
			wantError(t, "the manager revokes the member's token", a.call(t, "DELETE", orgPath(o.Slug, "/me/tokens/"+read.Token.ID), o.Manager.Token, nil), 404, "not_found")
			wantError(t, "an unknown token id", a.call(t, "DELETE", orgPath(o.Slug, "/me/tokens/not-an-id"), mem.Token, nil), 404, "not_found")
			wantStatus(t, "revoke", a.call(t, "DELETE", orgPath(o.Slug, "/me/tokens/"+read.Token.ID), mem.Token, nil), 204)
			wantError(t, "a revoked token", a.call(t, "GET", orgPath(o.Slug, "/me"), read.Secret, nil), 401, "unauthenticated")

			// Expired: unauthenticated (the full token lived a day).
			a.env.Clock.Advance(24 * time.Hour)
			wantError(t, "an expired token", a.call(t, "GET", orgPath(o.Slug, "/me"), full.Secret, nil), 401, "unauthenticated")

			counts := countActions(a.auditLog(t, o.Slug, a.login(t, o.Slug, o.Manager.Email, o.Manager.Password).Token))
			for action, want := range map[string]int{"token.create/success": 2, "token.revoke/success": 1, "token.use/success": 2, "token.scope/denied": 10} {
				if counts[action] != want {
					t.Errorf("%s recorded %d times, want %d", action, counts[action], want)
				}
			}
			mustNotContain(t, "the log", a.logs.String(), read.Secret, full.Secret)
			rows := a.env.Query(t, "SELECT token_hash, name FROM api_tokens")
			for _, row := range rows {
				for _, col := range row {
					mustNotContain(t, "a stored token", string(col), "deploy", "kluis_pat_")
				}
			}
		})
	}
}

// TestAPITokenFirstUseFromNewAddress (R24): a token's first use from an
// address it was not used from before is recorded, with the address sealed
// in the event only; the store keeps no address in clear.
func TestAPITokenFirstUseFromNewAddress(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			tok := a.createToken(t, o.Slug, o.Manager.Token, "ci", "read", time.Hour)
			// A second door to the same store behind a trusted proxy, so
			// that requests can come from other addresses.
			proxied := httptest.NewServer(httpserver.NewServer(httpserver.Config{
				Services: a.env.Services(), Logger: slog.New(slog.DiscardHandler), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
			}))
			t.Cleanup(proxied.Close)
			from := func(addr string) {
				t.Helper()
				req, _ := http.NewRequest("GET", proxied.URL+orgPath(o.Slug, "/me"), nil)
				req.Header.Set("Authorization", "Bearer "+tok.Secret)
				req.Header.Set("X-Forwarded-For", addr)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				if res.StatusCode != 200 {
					t.Fatalf("GET /me from %s: %d", addr, res.StatusCode)
				}
			}
			uses := func() []auditEvent {
				r := a.call(t, "GET", orgPath(o.Slug, "/audit/export?action=token.use"), o.Manager.Token, nil)
				wantStatus(t, "export the log", r, 200)
				var out []auditEvent
				dec := json.NewDecoder(bytes.NewReader(r.body))
				for dec.More() {
					var e auditEvent
					if err := dec.Decode(&e); err != nil {
						t.Fatal(err)
					}
					out = append(out, e)
				}
				return out
			}
			for _, addr := range []string{"203.0.113.7", "203.0.113.7", "198.51.100.23", "203.0.113.7", "198.51.100.23"} {
				from(addr)
			}
			got := uses()
			if len(got) != 2 || got[0].Client != "203.0.113.7" || got[1].Client != "198.51.100.23" {
				t.Errorf("token.use events %+v, want one per new address, with the address", got)
			}
			for _, table := range []string{"SELECT * FROM api_tokens", "SELECT * FROM api_token_clients"} {
				for _, row := range a.env.Query(t, table) {
					for _, col := range row {
						mustNotContain(t, table, string(col), "203.0.113.7", "198.51.100.23")
					}
				}
			}
		})
	}
}

// TestAPITokensDie (R5, R19, R20): tokens stop working when their person is
// disabled or deleted, when the organisation's logins are stopped, and after
// a password reset.
func TestAPITokensDie(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			get := func(what, secret string, status int) {
				t.Helper()
				r := a.call(t, "GET", orgPath(o.Slug, "/me"), secret, nil)
				if status == 200 {
					wantStatus(t, what, r, 200)
					return
				}
				wantError(t, what, r, status, "unauthenticated")
			}

			disabled := a.addUser(t, o, "member")
			tokD := a.createToken(t, o.Slug, disabled.Token, "d", "full", time.Hour)
			wantStatus(t, "disable", a.call(t, "PATCH", orgPath(o.Slug, "/users/"+disabled.ID), o.Manager.Token, map[string]any{"disabled": true}), 200)
			wantStatus(t, "enable", a.call(t, "PATCH", orgPath(o.Slug, "/users/"+disabled.ID), o.Manager.Token, map[string]any{"disabled": false}), 200)
			get("a token of a disabled (and enabled again) person", tokD.Secret, 401)

			deleted := a.addUser(t, o, "member")
			tokX := a.createToken(t, o.Slug, deleted.Token, "x", "full", time.Hour)
			wantStatus(t, "delete", a.call(t, "DELETE", orgPath(o.Slug, "/users/"+deleted.ID), o.Manager.Token, nil), 204)
			get("a token of a deleted person", tokX.Secret, 401)

			reset := a.addUser(t, o, "member")
			tokR := a.createToken(t, o.Slug, reset.Token, "r", "read", time.Hour)
			wantStatus(t, "ask for a reset", a.call(t, "POST", orgPath(o.Slug, "/password-reset"), "", map[string]string{"email": reset.Email}), 202)
			wantStatus(t, "reset", a.call(t, "POST", orgPath(o.Slug, "/password-reset/confirm"), "", map[string]string{"token": a.env.LastToken(t), "new_password": uniquePassword()}), 204)
			get("a token after a password reset", tokR.Secret, 401)

			mem := a.addUser(t, o, "member")
			tokM := a.createToken(t, o.Slug, mem.Token, "m", "read", time.Hour)
			tokMgr := a.createToken(t, o.Slug, o.Manager.Token, "mgr", "full", time.Hour)
			get("a live token", tokM.Secret, 200)
			wantStatus(t, "stop logins", a.call(t, "PUT", orgPath(o.Slug, "/logins"), o.Manager.Token, map[string]any{"enabled": false}), 200)
			get("a member's token while logins are stopped", tokM.Secret, 401)
			get("the manager's own token while logins are stopped", tokMgr.Secret, 401)
			wantStatus(t, "resume logins", a.call(t, "PUT", orgPath(o.Slug, "/logins"), o.Manager.Token, map[string]any{"enabled": true}), 200)
			get("a token after logins resumed", tokM.Secret, 401)
			if n := len(a.env.Query(t, "SELECT id FROM api_tokens")); n != 0 {
				t.Errorf("%d tokens stored after all this, want 0", n)
			}
		})
	}
}
