package httpserver_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/kluistest"
)

// inputCase is one request body sent to a route, and what must come back.
type inputCase struct {
	name   string
	body   any // raw JSON as a string, or a value to marshal
	status int
	field  string // for 400: the field the error must name ("" when the body as a whole is wrong)
	// stored, for accepted cases, is the name that must be stored and
	// answered verbatim, as plain JSON text.
	stored string
}

// inputTarget is a route that takes a JSON body.
type inputTarget struct {
	name, method, path, bearer string
	// change is a body that changes state when accepted: sent with a wrong
	// Content-Type it must change nothing, sent right it must work.
	change any
	// stringField is a string field of the body, used for invalid UTF-8
	// and for hiding the secret in generic cases.
	stringField string
	typeBody    string // a body with a field of the wrong type…
	typeField   string // …which the error names
	cases       []inputCase
	// readBack returns the name stored by an accepted request.
	readBack func(t *testing.T, r response) string
	// failedLogin: a refused credential is answered 401 and recorded once
	// as auth.login_failed; nothing else changes.
	failedLogin bool
	// failedAccept: an unknown invitation token is answered 404 and recorded
	// once as a failed user.invitation_accept; nothing else changes.
	failedAccept bool
}

// TestBadInputIsRefusedAndChangesNothing sends hostile and malformed bodies
// to every kind of JSON route: each gets a clear invalid_input (or
// too_large, not_found, conflict, unauthenticated where the contract says
// so) in the contract's shape, naming the field where there is one, never
// echoing the input or internals; and afterwards the user, the policy, the
// organisations and the audit chain are exactly as before. Script and SQL
// text in names is stored and answered as plain text (R49: bad input gets a
// clear error and loses nothing).
func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	t.Parallel()
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			_, op := a.operator(t)
			o := a.newOrg(t)
			m := o.Manager
			pending := a.invite(t, o, "member")
			pendingTok := a.inviteToken(t)
			secret := "s3cr3t-" + kluistest.Name("x")
			big := secret + strings.Repeat("x", 10<<10)
			script := "<script>alert('kluis')</script>"
			sqlish := "Robert'); DROP TABLE users;--"

			policy := func(change map[string]any) map[string]any {
				p := map[string]any{"password_min_length": 8, "password_require_digit": false, "password_require_upper": false, "session_idle_minutes": 30, "session_max_hours": 12}
				for k, v := range change {
					p[k] = v
				}
				return p
			}
			valid := func(change map[string]any) map[string]any { // an acceptance with the real token
				b := map[string]any{"token": pendingTok, "name": pending.Name, "password": pending.Password}
				for k, v := range change {
					b[k] = v
				}
				return b
			}
			newOrgBody := func(change map[string]any) map[string]any {
				b := map[string]any{"slug": kluistest.Name("new"), "name": "New Org", "manager": map[string]any{"email": uniqueEmail("new")}}
				for k, v := range change {
					b[k] = v
				}
				return b
			}
			manager := func(email any) map[string]any { return map[string]any{"email": email} }

			targets := []inputTarget{
				{
					name: "PATCH /me", method: "PATCH", path: orgPath(o.Slug, "/me"), bearer: m.Token,
					change: map[string]any{"name": "Changed Name"}, stringField: "name",
					typeBody: `{"name":12}`, typeField: "name",
					cases: []inputCase{
						{name: "10 KB name", body: map[string]any{"name": big}, status: 400, field: "name"},
						{name: "control character in the name", body: map[string]any{"name": "Mia\a" + secret}, status: 400, field: "name"},
						{name: "line break in the name", body: map[string]any{"name": "Mia\n" + secret}, status: 400, field: "name"},
						{name: "NUL in the name", body: map[string]any{"name": "Mia\x00" + secret}, status: 400, field: "name"},
						{name: "name of spaces", body: map[string]any{"name": "   "}, status: 400, field: "name"},
						{name: "empty name", body: map[string]any{"name": ""}, status: 400, field: "name"},
						{name: "name as an object", body: `{"name":{"first":"Mia"}}`, status: 400, field: "name"},
						{name: "phone with letters", body: map[string]any{"phone": "call " + secret}, status: 400, field: "phone"},
						{name: "NUL in the phone", body: map[string]any{"phone": "+3120\x001234567"}, status: 400, field: "phone"},
						{name: "10 KB phone", body: map[string]any{"phone": strings.Repeat("1", 10<<10)}, status: 400, field: "phone"},
						{name: "maintenance_emails as a string", body: `{"maintenance_emails":"yes"}`, status: 400, field: "maintenance_emails"},
						{name: "script in the name is plain text", body: map[string]any{"name": script}, status: 200, stored: script},
						{name: "SQL in the name is plain text", body: map[string]any{"name": sqlish}, status: 200, stored: sqlish},
					},
					readBack: func(t *testing.T, r response) string { return a.me(t, o.Slug, m.Token).Name },
				},
				{
					name: "POST /users", method: "POST", path: orgPath(o.Slug, "/users"), bearer: m.Token,
					change: map[string]any{"email": uniqueEmail("changed")}, stringField: "email",
					typeBody: `{"email":["x@example.test"]}`, typeField: "email",
					cases: []inputCase{
						{name: "10 KB address", body: map[string]any{"email": big + "@example.test"}, status: 400, field: "email"},
						{name: "NUL in the address", body: map[string]any{"email": "a\x00" + secret + "@example.test"}, status: 400, field: "email"},
						{name: "address with a display name", body: map[string]any{"email": "Mia <" + secret + "@example.test>"}, status: 400, field: "email"},
						{name: "SQL as the address", body: map[string]any{"email": "' OR '1'='1"}, status: 400, field: "email"},
						{name: "no address", body: map[string]any{"name": "Mia"}, status: 400, field: "email"},
						{name: "10 KB name", body: map[string]any{"email": uniqueEmail("n"), "name": big}, status: 400, field: "name"},
						{name: "control character in the name", body: map[string]any{"email": uniqueEmail("n"), "name": "a\x1bb"}, status: 400, field: "name"},
						{name: "unknown role", body: map[string]any{"email": uniqueEmail("n"), "role": "admin"}, status: 400, field: "role"},
						{name: "role as a number", body: `{"email":"n@example.test","role":1}`, status: 400, field: "role"},
						{name: "address taken", body: map[string]any{"email": strings.ToUpper(m.Email)}, status: 409},
						{name: "script in the name is plain text", body: map[string]any{"email": uniqueEmail("s"), "name": script}, status: 201, stored: script},
						{name: "SQL in the name is plain text", body: map[string]any{"email": uniqueEmail("q"), "name": sqlish}, status: 201, stored: sqlish},
					},
					readBack: func(t *testing.T, r response) string {
						id := decodeStrict[userAnswer](t, r).User.ID
						return decodeStrict[userObject](t, a.call(t, "GET", orgPath(o.Slug, "/users/"+id), m.Token, nil)).Name
					},
				},
				{
					name: "PUT /policy", method: "PUT", path: orgPath(o.Slug, "/policy"), bearer: m.Token,
					change: policy(map[string]any{"password_min_length": 12}), stringField: "password_min_length",
					typeBody: `{"password_min_length":"twelve"}`, typeField: "password_min_length",
					cases: []inputCase{
						{name: "minimum below the floor", body: policy(map[string]any{"password_min_length": 7}), status: 400, field: "password_min_length"},
						{name: "minimum above 128", body: policy(map[string]any{"password_min_length": 129}), status: 400, field: "password_min_length"},
						{name: "negative minimum", body: policy(map[string]any{"password_min_length": -1}), status: 400, field: "password_min_length"},
						{name: "fractional minimum", body: policy(map[string]any{"password_min_length": 12.5}), status: 400, field: "password_min_length"},
						{name: "minimum beyond any integer", body: `{"password_min_length":1e400}`, status: 400, field: "password_min_length"},
						{name: "minimum beyond int64", body: `{"password_min_length":99999999999999999999}`, status: 400, field: "password_min_length"},
						{name: "idle minutes zero", body: policy(map[string]any{"session_idle_minutes": 0}), status: 400, field: "session_idle_minutes"},
						{name: "idle minutes over a day", body: policy(map[string]any{"session_idle_minutes": 1441}), status: 400, field: "session_idle_minutes"},
						{name: "max hours zero", body: policy(map[string]any{"session_max_hours": 0}), status: 400, field: "session_max_hours"},
						{name: "max hours over 30 days", body: policy(map[string]any{"session_max_hours": 721}), status: 400, field: "session_max_hours"},
						{name: "boolean as a string", body: policy(map[string]any{"password_require_digit": "true"}), status: 400, field: "password_require_digit"},
						{name: "boolean null", body: policy(map[string]any{"password_require_upper": nil}), status: 400, field: "password_require_upper"},
						{name: "empty object names every field", body: `{}`, status: 400, field: "session_max_hours"},
					},
				},
				{
					name: "POST login", method: "POST", path: orgPath(o.Slug, "/login"),
					change: map[string]any{"email": m.Email, "password": m.Password}, stringField: "email",
					typeBody: `{"email":1,"password":"x"}`, typeField: "email", failedLogin: true,
					cases: []inputCase{
						{name: "10 KB address", body: map[string]any{"email": big, "password": secret}, status: 401},
						{name: "NUL in the address", body: map[string]any{"email": "a\x00b@example.test", "password": secret}, status: 401},
						{name: "SQL as the address", body: map[string]any{"email": "' OR '1'='1' --", "password": secret}, status: 401},
						{name: "SQL as the password", body: map[string]any{"email": m.Email, "password": "' OR '1'='1' --" + secret}, status: 401},
						{name: "script as the address", body: map[string]any{"email": script, "password": secret}, status: 401},
						{name: "10 KB password", body: map[string]any{"email": m.Email, "password": big}, status: 401},
						{name: "NUL in the password", body: map[string]any{"email": m.Email, "password": m.Password + "\x00"}, status: 401},
						{name: "no credentials", body: `{}`, status: 401},
						{name: "password as a number", body: `{"email":"x@example.test","password":123456789}`, status: 400, field: "password"},
					},
				},
				{
					// Its failures go to the platform chain, which no organisation sees.
					name: "POST operator/login", method: "POST", path: "/api/v1/operator/login",
					change: map[string]any{"email": op.Email, "password": op.Password}, stringField: "email",
					typeBody: `{"email":true}`, typeField: "email",
					cases: []inputCase{
						{name: "10 KB address", body: map[string]any{"email": big, "password": secret}, status: 401},
						{name: "NUL in the address", body: map[string]any{"email": "a\x00b@example.test", "password": secret}, status: 401},
						{name: "SQL as the address", body: map[string]any{"email": "' OR '1'='1' --", "password": secret}, status: 401},
						{name: "NUL in the password", body: map[string]any{"email": op.Email, "password": op.Password + "\x00"}, status: 401},
					},
				},
				{
					name: "POST invitations/accept", method: "POST", path: orgPath(o.Slug, "/invitations/accept"), failedAccept: true,
					change: valid(nil), stringField: "name",
					typeBody: `{"token":1}`, typeField: "token",
					cases: []inputCase{
						{name: "10 KB name", body: valid(map[string]any{"name": big}), status: 400, field: "name"},
						{name: "NUL in the name", body: valid(map[string]any{"name": "Noor\x00"}), status: 400, field: "name"},
						{name: "control character in the name", body: valid(map[string]any{"name": "No\u0085or"}), status: 400, field: "name"},
						{name: "password too short", body: valid(map[string]any{"password": "Short1"}), status: 400, field: "password"},
						{name: "password too long", body: valid(map[string]any{"password": strings.Repeat("p", 300)}), status: 400, field: "password"},
						{name: "password of spaces", body: valid(map[string]any{"password": strings.Repeat(" ", 12)}), status: 400, field: "password"},
						{name: "SQL as the token", body: valid(map[string]any{"token": "' OR '1'='1"}), status: 404},
						{name: "NUL in the token", body: valid(map[string]any{"token": pendingTok[:42] + "\x00"}), status: 404},
						{name: "10 KB token", body: valid(map[string]any{"token": big}), status: 404},
						{name: "unknown token", body: valid(map[string]any{"token": strings.Repeat("A", 43)}), status: 404},
						{name: "script as the name with an unknown token", body: valid(map[string]any{"token": strings.Repeat("B", 43), "name": script}), status: 404},
					},
				},
				{
					name: "POST /orgs", method: "POST", path: "/api/v1/orgs", bearer: op.Token,
					change: newOrgBody(nil), stringField: "name",
					typeBody: `{"slug":{}}`, typeField: "slug",
					cases: []inputCase{
						{name: "slug with a space", body: newOrgBody(map[string]any{"slug": "bad slug"}), status: 400, field: "slug"},
						{name: "SQL as the slug", body: newOrgBody(map[string]any{"slug": "x'); DROP TABLE orgs;--"}), status: 400, field: "slug"},
						{name: "NUL in the slug", body: newOrgBody(map[string]any{"slug": "ab\x00cd"}), status: 400, field: "slug"},
						{name: "slug of 41 characters", body: newOrgBody(map[string]any{"slug": strings.Repeat("a", 41)}), status: 400, field: "slug"},
						{name: "10 KB name", body: newOrgBody(map[string]any{"name": big}), status: 400, field: "name"},
						{name: "NUL in the name", body: newOrgBody(map[string]any{"name": "Org\x00" + secret}), status: 400, field: "name"},
						{name: "NUL in the manager's address", body: newOrgBody(map[string]any{"manager": manager("a\x00b@example.test")}), status: 400, field: "manager.email"},
						{name: "manager's address as a number", body: newOrgBody(map[string]any{"manager": manager(5)}), status: 400, field: "manager.email"},
						{name: "unknown field in the manager", body: newOrgBody(map[string]any{"manager": map[string]any{"email": uniqueEmail("u"), "phone": secret}}), status: 400, field: "phone"},
						{name: "no manager", body: map[string]any{"slug": kluistest.Name("nm"), "name": "No Manager"}, status: 400, field: "manager.email"},
						{name: "unknown language", body: newOrgBody(map[string]any{"language": "de"}), status: 400, field: "language"},
						{name: "slug taken", body: newOrgBody(map[string]any{"slug": o.Slug}), status: 409},
						{name: "script in the name is plain text", body: newOrgBody(map[string]any{"name": script}), status: 201, stored: script},
					},
					readBack: func(t *testing.T, r response) string {
						id := decodeStrict[orgAnswer](t, r).Org.ID
						for _, org := range decodeStrict[orgsAnswer](t, a.call(t, "GET", "/api/v1/orgs", op.Token, nil)).Orgs {
							if org.ID == id {
								return org.Name
							}
						}
						t.Fatalf("the new organisation %s is not listed", id)
						return ""
					},
				},
			}

			// snapshot is everything a refused request could have changed.
			type snapshot struct {
				me, policy, orgs string
				log              []auditEvent
			}
			snap := func(t *testing.T) snapshot {
				t.Helper()
				return snapshot{
					me:     string(a.call(t, "GET", orgPath(o.Slug, "/me"), m.Token, nil).body),
					policy: string(a.call(t, "GET", orgPath(o.Slug, "/policy"), m.Token, nil).body),
					orgs:   string(a.call(t, "GET", "/api/v1/orgs", op.Token, nil).body),
					log:    a.auditLog(t, o.Slug, m.Token),
				}
			}
			unchanged := func(t *testing.T, what string, before snapshot, failedLogin bool) {
				t.Helper()
				after := snap(t)
				if after.me != before.me {
					t.Errorf("%s changed the user:\n got %s\nwant %s", what, after.me, before.me)
				}
				if after.policy != before.policy {
					t.Errorf("%s changed the policy:\n got %s\nwant %s", what, after.policy, before.policy)
				}
				if after.orgs != before.orgs {
					t.Errorf("%s changed the organisations:\n got %s\nwant %s", what, after.orgs, before.orgs)
				}
				want := len(before.log)
				if failedLogin {
					want++
				}
				if len(after.log) != want || !reflect.DeepEqual(after.log[:len(before.log)], before.log) {
					t.Errorf("%s changed the audit chain: %v, want %v (+%d failed login)", what, seqs(after.log), seqs(before.log), want-len(before.log))
				} else if failedLogin {
					if e := after.log[want-1]; (e.Action != "auth.login_failed" && e.Action != "user.invitation_accept") || e.Outcome != "failure" {
						t.Errorf("%s recorded %s/%s, want a failed authentication (auth.login_failed or user.invitation_accept)", what, e.Action, e.Outcome)
					}
				}
			}
			send := func(t *testing.T, tg inputTarget, body any, contentType string) response {
				t.Helper()
				return a.do(t, request{method: tg.method, path: tg.path, bearer: tg.bearer, body: body, contentType: contentType})
			}
			checkRefusal := func(t *testing.T, what string, r response, status int, field string) {
				t.Helper()
				code := map[int]string{400: "invalid_input", 401: "unauthenticated", 404: "not_found", 409: "conflict", 413: "too_large"}[status]
				e := wantError(t, what, r, status, code)
				if field != "" && e.Error.Fields[field] == "" {
					t.Errorf("%s: fields %v, want a problem for %q", what, e.Error.Fields, field)
				}
				mustNotContain(t, what+" answer", string(r.body), secret, "<script", "DROP TABLE", "\x00")
				if len(r.body) > 1000 {
					t.Errorf("%s: error body of %d bytes echoes the input", what, len(r.body))
				}
			}

			for _, tg := range targets {
				t.Run(tg.name, func(t *testing.T) {
					sf := tg.stringField
					generic := []inputCase{
						{name: "malformed JSON", body: `{"` + sf + `": "` + secret, status: 400},
						{name: "key without value", body: `{"` + sf + `"}`, status: 400},
						{name: "trailing object", body: `{} {"` + sf + `":"` + secret + `"}`, status: 400},
						{name: "trailing garbage", body: `{}` + secret, status: 400},
						{name: "unknown field", body: `{"surprise":"` + secret + `"}`, status: 400, field: "surprise"},
						{name: "wrong type", body: tg.typeBody, status: 400, field: tg.typeField},
						{name: "array instead of object", body: `[{"` + sf + `":"` + secret + `"}]`, status: 400},
						{name: "null instead of object", body: `null`, status: 400},
						{name: "string instead of object", body: `"` + secret + `"`, status: 400},
						{name: "number instead of object", body: `12345`, status: 400},
						{name: "empty body", body: ``, status: 400},
						{name: "only whitespace", body: " \r\n\t ", status: 400},
						{name: "invalid UTF-8", body: "{\"" + sf + "\":\"\xff\xfe" + secret + "\"}", status: 400},
						{name: "invalid UTF-8 in a key", body: "{\"\xc3\x28\":\"" + secret + "\"}", status: 400},
						{name: "nested too deep", body: `{"` + sf + `":` + strings.Repeat("[", 20000), status: 400},
						{name: "over 1 MiB", body: `{"` + sf + `":"` + secret + strings.Repeat("a", 1<<20) + `"}`, status: 413},
						{name: "over 1 MiB of whitespace", body: strings.Repeat(" ", 1<<20+1) + `{}`, status: 413},
					}
					before := snap(t)
					for _, c := range append(generic, tg.cases...) {
						what := tg.name + ": " + c.name
						r := send(t, tg, c.body, "")
						if c.stored != "" {
							if r.status != c.status {
								t.Errorf("%s: got %v, want %d", what, r, c.status)
								continue
							}
							if bytes.Contains(r.body, []byte("<")) {
								t.Errorf("%s: answer %s holds a raw '<'; want it escaped by the JSON encoding", what, r.body)
							}
							if got := tg.readBack(t, r); got != c.stored {
								t.Errorf("%s: stored %q, want %q verbatim", what, got, c.stored)
							}
							before = snap(t)
							continue
						}
						checkRefusal(t, what, r, c.status, c.field)
						unchanged(t, what, before, tg.failedLogin && r.status == 401 || tg.failedAccept && r.status == 404)
						before = snap(t)
					}

					// A body that would change something, with a Content-Type
					// that is not JSON in UTF-8, or none: refused, nothing
					// changed.
					for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/json", "application/xml", "application/json; charset", "application/jsonx",
						"-", "application/json; charset=latin1", "application/json; charset=utf-16"} {
						what := tg.name + ": Content-Type " + ct
						r := send(t, tg, tg.change, ct)
						checkRefusal(t, what, r, 400, "")
						unchanged(t, what, before, false)
					}
					// The same body as JSON works: the refusals above were real.
					r := send(t, tg, tg.change, "application/json; charset=utf-8")
					if r.status != 200 && r.status != 201 {
						t.Errorf("%s: the changing body as JSON got %v, want success", tg.name, r)
					}
				})
			}

			t.Run("accepted invitation stores a script name as text", func(t *testing.T) {
				// The pending invitation was accepted by the JSON request above.
				r := a.call(t, "POST", orgPath(o.Slug, "/users"), m.Token, map[string]any{"email": uniqueEmail("scr")})
				wantStatus(t, "invite", r, 201)
				tok := a.inviteToken(t)
				u := a.accept(t, o.Slug, tok, script, uniquePassword())
				if u.Name != script {
					t.Errorf("accepted with name %q, want %q verbatim", u.Name, script)
				}
			})

			t.Run("GET /audit query parameters", func(t *testing.T) {
				before := snap(t)
				for _, c := range []struct {
					query  string
					fields []string
				}{
					{"limit=0", []string{"limit"}},
					{"limit=5000", []string{"limit"}},
					{"limit=1001", []string{"limit"}},
					{"limit=abc", []string{"limit"}},
					{"limit=1.5", []string{"limit"}},
					{"after=-1", []string{"after"}},
					{"after=x", []string{"after"}},
					{"after=99999999999999999999", []string{"after"}},
					{"since=notatime", []string{"since"}},
					{"since=2024-01-01", []string{"since"}},
					{"until=yesterday", []string{"until"}},
					{"action=" + strings.Repeat("a", 101), []string{"action"}},
					{"action=%00", []string{"action"}},
					{"action=user.%FF", []string{"action"}},
					{"actor=user%0A1", []string{"actor"}},
					{"actor=%FF%FE", []string{"actor"}},
					{"limit=0&after=-1&since=x", []string{"limit", "after", "since"}},
				} {
					for _, route := range []string{"/audit", "/audit/export"} {
						what := "GET " + route + "?" + c.query
						r := a.call(t, "GET", orgPath(o.Slug, route+"?"+c.query), m.Token, nil)
						wantInvalid(t, what, r, c.fields...)
					}
				}
				unchanged(t, "refused audit queries", before, false)
				// Sound values work.
				for _, q := range []string{"limit=1000", "limit=1&after=0", "since=2024-01-01T00:00:00Z&until=2999-01-01T00:00:00.5%2B02:00", "action=user.&actor=cli"} {
					wantStatus(t, "GET /audit?"+q, a.call(t, "GET", orgPath(o.Slug, "/audit?"+q), m.Token, nil), 200)
				}
			})

			// The log holds no input, and no refused request left an
			// internal error in it.
			mustNotContain(t, "the log", a.logs.String(), secret, m.Password, op.Password, pending.Password, "DROP TABLE", "<script")
			if strings.Contains(a.logs.String(), `"level":"ERROR"`) {
				t.Errorf("bad input caused server errors:\n%s", errorLines(a.logs.String()))
			}
		})
	}
}

// errorLines returns the log lines at level ERROR.
func errorLines(logs string) string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		var rec struct{ Level string }
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Level == "ERROR" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
