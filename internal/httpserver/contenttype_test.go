package httpserver_test

import (
	"reflect"
	"testing"

	"github.com/kluis/kluis/internal/kluistest"
)

// TestJSONBodiesSayTheyAreJSONInUTF8 (CONTRACT "JSON over HTTP(S),
// UTF-8"): a JSON body without a Content-Type, or with one that names
// another charset, is refused as invalid_input — the refusal a body that
// is not JSON gets — and changes nothing; application/json with charset
// UTF-8 (any case) and +json types work. A request without a body needs no
// Content-Type.
func TestJSONBodiesSayTheyAreJSONInUTF8(t *testing.T) {
	a := newTestAPI(t, kluistest.Engines[0])
	o := a.newOrg(t)
	m := o.Manager
	mem := a.addUser(t, o, "member")
	me := a.me(t, o.Slug, m.Token)
	log := a.auditLog(t, o.Slug, m.Token)

	for _, ct := range []string{"-", "application/json; charset=latin1", "application/json; charset=ISO-8859-1", "application/json; charset=utf-16", "application/json;charset=us-ascii"} {
		wantInvalid(t, "PATCH /me with Content-Type "+ct, a.do(t, request{method: "PATCH", path: orgPath(o.Slug, "/me"), bearer: m.Token, body: map[string]string{"name": "Changed"}, contentType: ct}))
		wantInvalid(t, "POST /login with Content-Type "+ct, a.do(t, request{method: "POST", path: orgPath(o.Slug, "/login"), body: map[string]string{"email": m.Email, "password": m.Password}, contentType: ct}))
		wantInvalid(t, "POST /api/v1/operator/login with Content-Type "+ct, a.do(t, request{method: "POST", path: "/api/v1/operator/login", body: map[string]string{"email": m.Email, "password": m.Password}, contentType: ct}))
	}
	if got := a.me(t, o.Slug, m.Token); !reflect.DeepEqual(got, me) {
		t.Errorf("after refused bodies the user is %+v, want %+v", got, me)
	}
	if got := a.auditLog(t, o.Slug, m.Token); !reflect.DeepEqual(got, log) {
		t.Errorf("refused bodies changed the log: %v, want %v", seqs(got), seqs(log))
	}

	for _, ct := range []string{"application/json; charset=UTF-8", "application/json; charset=utf-8", "application/merge-patch+json"} {
		r := a.do(t, request{method: "PATCH", path: orgPath(o.Slug, "/me"), bearer: m.Token, body: map[string]string{"name": "Mia " + kluistest.Name("x")}, contentType: ct})
		wantStatus(t, "PATCH /me with Content-Type "+ct, r, 200)
	}

	// No body, no Content-Type.
	wantStatus(t, "DELETE a user without a body", a.do(t, request{method: "DELETE", path: orgPath(o.Slug, "/users/"+mem.ID), bearer: m.Token}), 204)
	wantStatus(t, "POST /logout without a body", a.do(t, request{method: "POST", path: orgPath(o.Slug, "/logout"), bearer: m.Token}), 204)
}
