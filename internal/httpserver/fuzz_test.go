package httpserver_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
)

// The fuzz targets run on SQLite only: they are about the HTTP input path,
// and a database per engine would slow every seed run (R49: fuzzing).

// FuzzPatchMe sends random bodies to PATCH /me: never a server error; a
// refused body leaves the user exactly as before; an accepted one leaves a
// valid user whose id, address, role and status no body can touch.
func FuzzPatchMe(f *testing.F) {
	for _, s := range []string{
		`{"name":"Mia de Vries"}`,
		`{"phone":"+31 (20) 123-4567","maintenance_emails":false}`,
		`{"maintenance_emails":true}`,
		`{}`, `null`, `[]`, `"x"`, `0`, ``, ` `,
		`{"name":"\u0000"}`, `{"name":"a\u0007b"}`, `{"name":"\ud800"}`, "{\"name\":\"\xff\"}",
		`{"name":"<script>alert(1)</script>"}`, `{"name":"Robert'); DROP TABLE users;--"}`,
		`{"name":1e400}`, `{"name":null}`, `{"phone":"+"}`, `{"phone":"++31201234567"}`, `{"maintenance_emails":"false"}`,
		`{"name":"a","name":"b"}`, `{"NAME":"Upper"}`, `{"name":"   "}`,
		`{"name":"` + strings.Repeat("é", 201) + `"}`,
		`{"role":"manager"}`, `{"email":"other@example.test"}`, `{"id":"01a20817-15aa-716f-a623-33034bcdada4"}`, `{"status":"active","disabled":false}`,
		`{"name":"Mia"} {}`, `{"name":"Mia"}x`, strings.Repeat("[", 10001), `{"name":` + strings.Repeat(`{"a":`, 50),
	} {
		f.Add([]byte(s))
	}
	a := newTestAPI(f, kluistest.Engines[0])
	o := a.newOrg(f)
	me := func(t *testing.T) (userObject, []byte) {
		r := a.call(t, "GET", orgPath(o.Slug, "/me"), o.Manager.Token, nil)
		if r.status != 200 {
			t.Fatalf("GET /me: got %v", r)
		}
		return decodeStrict[userObject](t, r), r.body
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		before, beforeRaw := me(t)
		r := a.do(t, request{method: "PATCH", path: orgPath(o.Slug, "/me"), bearer: o.Manager.Token, body: body})
		after, afterRaw := me(t)
		switch r.status {
		case 200:
			if err := (kluis.UserInput{Name: &after.Name, Phone: &after.Phone}).Validate(); err != nil {
				t.Errorf("accepted %q left an invalid user %+v: %v", body, after, err)
			}
			if after.ID != before.ID || after.Email != before.Email || after.Role != before.Role || after.Status != before.Status {
				t.Errorf("accepted %q changed what PATCH /me must not: %+v, was %+v", body, after, before)
			}
		case 400, 413:
			if !bytes.Equal(afterRaw, beforeRaw) {
				t.Errorf("refused %q changed the user: %s, was %s", body, afterRaw, beforeRaw)
			}
		default:
			t.Errorf("PATCH /me %q: got %v, want 200, 400 or 413", body, r)
		}
	})
}

// FuzzLoginBody sends random bodies to the login route: never a server
// error; only the right credentials open a session.
func FuzzLoginBody(f *testing.F) {
	a := newTestAPI(f, kluistest.Engines[0])
	o := a.newOrg(f)
	m := o.Manager
	for _, s := range []string{
		`{"email":"` + m.Email + `","password":"` + m.Password + `"}`,
		`{"email":"` + strings.ToUpper(m.Email) + `","password":"` + m.Password + `"}`,
		`{"email":"` + m.Email + `","password":"wrong"}`,
		`{"email":"` + m.Email + `"}`,
		`{"email":"nobody@example.test","password":"x"}`,
		`{}`, `null`, `[]`, ``, `{"email":["a"]}`, `{"email":1,"password":true}`,
		`{"email":"a\u0000b@example.test","password":"x"}`, "{\"email\":\"\xff\",\"password\":\"x\"}",
		`{"email":"' OR '1'='1' --","password":"' OR '1'='1' --"}`,
		`{"email":"` + strings.Repeat("a", 5000) + `","password":"x"}`,
		`{"email":"` + m.Email + `","password":"` + m.Password + `"} {}`,
		`{"email":"` + m.Email + `","password":"` + m.Password + `","totp":"123456"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := a.do(t, request{method: "POST", path: orgPath(o.Slug, "/login"), body: body})
		switch r.status {
		case 200:
			la := decodeStrict[loginAnswer](t, r)
			if la.Token == "" || la.User == nil || la.User.ID != m.ID {
				t.Errorf("login %q answered %v, want the manager's session", body, r)
			}
			if !bytes.Contains(body, []byte(m.Password[5:])) {
				t.Errorf("login %q succeeded without the password", body)
			}
		case 400, 401, 413:
		default:
			t.Errorf("login %q: got %v, want 200, 400, 401 or 413", body, r)
		}
	})
}
