package httpserver_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/openapi"
)

// exchange is one request and answer that went through a contractCheck.
type exchange struct {
	what             string // "METHOD /path"
	status           int
	requestProblem   error // the request does not match the document
	answerProblem    error // the answer does not match the document
	checkedByTheTest bool
}

// contractCheck sits between a test's client and the real server and
// checks every request and every answer against the document with
// kin-openapi's openapi3filter, which validates a 3.1 document's schemas
// by JSON Schema 2020-12. The handlers' real answers are what is checked,
// so a schema cannot drift from what a handler sends.
type contractCheck struct {
	next   http.RoundTripper
	router routers.Router

	mu        sync.Mutex
	exchanges []*exchange
}

// checkContract puts a contractCheck on the test server's client, which
// every request of a.do goes through.
func checkContract(t *testing.T, a *testAPI) *contractCheck {
	t.Helper()
	doc := loadOpenAPI(t)
	// The document's one server is "/", the instance that serves it;
	// kin-openapi's router would match that against the request's host,
	// and the test server listens on a random port. Without servers, it
	// routes by path alone.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	client := a.srv.Client()
	c := &contractCheck{next: client.Transport, router: router}
	client.Transport = c
	return c
}

// CloseIdleConnections lets the test server close its client's connections.
func (c *contractCheck) CloseIdleConnections() {
	if t, ok := c.next.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

func (c *contractCheck) RoundTrip(req *http.Request) (*http.Response, error) {
	ex := &exchange{what: req.Method + " " + req.URL.RequestURI()}
	ctx := context.Background()
	route, params, err := c.router.FindRoute(req)
	var in *openapi3filter.RequestValidationInput
	if err != nil {
		ex.requestProblem, ex.answerProblem = err, err
	} else {
		in = &openapi3filter.RequestValidationInput{
			Request: requestCopy(req), PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: credentialOfScheme, MultiError: true},
		}
		ex.requestProblem = openapi3filter.ValidateRequest(ctx, in)
	}
	res, err := c.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	ex.status = res.StatusCode
	if in != nil {
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in, Status: res.StatusCode, Header: res.Header,
			Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
		}
		out.SetBodyBytes(body)
		ex.answerProblem = openapi3filter.ValidateResponse(ctx, out)
	}
	c.mu.Lock()
	c.exchanges = append(c.exchanges, ex)
	c.mu.Unlock()
	return res, nil
}

// requestCopy is the request with a body of its own for the validator.
func requestCopy(req *http.Request) *http.Request {
	cp := req.Clone(req.Context())
	cp.Body = http.NoBody
	if req.GetBody != nil {
		if b, err := req.GetBody(); err == nil {
			cp.Body = b
		}
	}
	return cp
}

// credentialOfScheme checks that a request carries the credential of a
// security scheme the operation names: a session token or a personal API
// token (kluis_pat_…) as the bearer, or the named cookie.
func credentialOfScheme(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	r := in.RequestValidationInput.Request
	bearer, isBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	pat := strings.HasPrefix(bearer, "kluis_pat_")
	switch s := in.SecurityScheme; {
	case s.Type == "http" && in.SecuritySchemeName == "apiToken":
		if isBearer && pat {
			return nil
		}
	case s.Type == "http":
		if isBearer && !pat {
			return nil
		}
	case s.Type == "apiKey" && s.In == "cookie":
		if _, err := r.Cookie(s.Name); err == nil {
			return nil
		}
	}
	return fmt.Errorf("no %s credential", in.SecuritySchemeName)
}

// last is the newest exchange, taken as checked by the test.
func (c *contractCheck) last(t *testing.T) *exchange {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.exchanges) == 0 {
		t.Fatal("no exchange went through the contract check")
	}
	ex := c.exchanges[len(c.exchanges)-1]
	ex.checkedByTheTest = true
	return ex
}

// valid sends a request the document allows and fails unless both it and
// the answer match the document.
func (c *contractCheck) valid(t *testing.T, a *testAPI, rq request, wantStatus int) response {
	t.Helper()
	r := a.do(t, rq)
	ex := c.last(t)
	if r.status != wantStatus {
		t.Errorf("%s: got %v, want %d", ex.what, r, wantStatus)
	}
	if ex.requestProblem != nil {
		t.Errorf("%s: the request does not match the document: %v", ex.what, ex.requestProblem)
	}
	if ex.answerProblem != nil {
		t.Errorf("%s: the answer %v does not match the document: %v", ex.what, r, ex.answerProblem)
	}
	return r
}

// refused sends a request the document does not allow (a wrong type, an
// unknown field, a missing or wrong credential): the document must say it
// is wrong too, and the server's error answer must match the document.
func (c *contractCheck) refused(t *testing.T, a *testAPI, rq request, wantStatus int, wantCode string) apiError {
	t.Helper()
	r := a.do(t, rq)
	ex := c.last(t)
	e := wantError(t, ex.what, r, wantStatus, wantCode)
	if ex.requestProblem == nil {
		t.Errorf("%s: the server refused the request (%v) but the document allows it", ex.what, r)
	}
	if ex.answerProblem != nil {
		t.Errorf("%s: the answer %v does not match the document: %v", ex.what, r, ex.answerProblem)
	}
	return e
}

// rest checks the exchanges the test did not look at itself (those of the
// fixtures): each request and answer must match the document.
func (c *contractCheck) rest(t *testing.T) int {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ex := range c.exchanges {
		if ex.checkedByTheTest {
			continue
		}
		if err := errors.Join(ex.requestProblem, ex.answerProblem); err != nil {
			t.Errorf("%s (a fixture's, %d): %v", ex.what, ex.status, err)
		}
	}
	return len(c.exchanges)
}

// TestOpenAPIAnswersMatchTheDocument drives real routes on a real server
// (SQLite) and checks each request and answer against the document: sign-in,
// one's own account, people, tokens, policy, audit, the operator's routes,
// health and the document itself, and error answers (400 invalid_input with
// fields, 401, 403, 404).
func TestOpenAPIAnswersMatchTheDocument(t *testing.T) {
	a := newTestAPI(t, kluistest.Engines[0])
	c := checkContract(t, a)
	_, op := a.operator(t)
	o := a.newOrg(t)
	mgr := o.Manager
	me := orgPath(o.Slug, "/me")
	bearer := func(method, path, token string, body any) request {
		return request{method: method, path: path, bearer: token, body: body}
	}

	t.Run("sign-in", func(t *testing.T) {
		r := c.valid(t, a, bearer("POST", orgPath(o.Slug, "/login"), "", map[string]string{"email": mgr.Email, "password": mgr.Password}), 200)
		if la := decodeStrict[loginAnswer](t, r); la.User == nil || la.User.Email != mgr.Email {
			t.Errorf("login answer %v, want the manager's user object", r)
		}
		c.valid(t, a, bearer("POST", orgPath(o.Slug, "/login"), "", map[string]string{"email": mgr.Email, "password": "wrong password 1"}), 401)
		c.refused(t, a, bearer("POST", orgPath(o.Slug, "/login"), "", map[string]any{"email": mgr.Email, "password": 12}), 400, "invalid_input")
		c.valid(t, a, bearer("POST", orgPath(o.Slug, "/password-reset"), "", map[string]string{"email": uniqueEmail("nobody")}), 202)
		c.valid(t, a, bearer("POST", orgPath(o.Slug, "/invitations/accept"), "", map[string]string{"token": strings.Repeat("A", 43), "name": "N", "password": uniquePassword()}), 404)
	})

	t.Run("me", func(t *testing.T) {
		c.valid(t, a, bearer("GET", me, mgr.Token, nil), 200)
		r := c.valid(t, a, bearer("PATCH", me, mgr.Token, map[string]any{"name": "Mia Renamed", "maintenance_emails": true}), 200)
		if u := decodeStrict[userObject](t, r); u.Name != "Mia Renamed" || !u.MaintenanceEmails {
			t.Errorf("PATCH /me answered %v", r)
		}
		e := c.refused(t, a, bearer("PATCH", me, mgr.Token, map[string]any{"name": 5}), 400, "invalid_input")
		if e.Error.Fields["name"] == "" {
			t.Errorf("PATCH /me with a number for a name: fields %v, want a problem for name", e.Error.Fields)
		}
		e = c.refused(t, a, bearer("PATCH", me, mgr.Token, map[string]any{"nickname": "x"}), 400, "invalid_input")
		if e.Error.Fields["nickname"] == "" {
			t.Errorf("PATCH /me with an unknown field: fields %v, want a problem for nickname", e.Error.Fields)
		}
		c.refused(t, a, bearer("GET", me, "", nil), 401, "unauthenticated")
		c.valid(t, a, bearer("GET", me, "a-session-token-that-does-not-exist", nil), 401)
		c.valid(t, a, bearer("GET", me+"/sessions", mgr.Token, nil), 200)
		c.valid(t, a, bearer("GET", orgPath(o.Slug, "/policy"), mgr.Token, nil), 200)
	})

	t.Run("users", func(t *testing.T) {
		r := c.valid(t, a, bearer("POST", orgPath(o.Slug, "/users"), mgr.Token, map[string]string{"email": uniqueEmail("noor"), "name": uniqueName("Noor"), "role": "member"}), 201)
		id := decodeStrict[userAnswer](t, r).User.ID
		c.valid(t, a, bearer("GET", orgPath(o.Slug, "/users"), mgr.Token, nil), 200)
		c.valid(t, a, bearer("GET", orgPath(o.Slug, "/users/"+id), mgr.Token, nil), 200)
		c.valid(t, a, bearer("PATCH", orgPath(o.Slug, "/users/"+id), mgr.Token, map[string]any{"name": "Noor Renamed"}), 200)
		c.valid(t, a, bearer("GET", orgPath(o.Slug, "/users/no-such-user"), mgr.Token, nil), 404)
		c.refused(t, a, bearer("PATCH", orgPath(o.Slug, "/users/"+id), mgr.Token, map[string]any{"role": "emperor"}), 400, "invalid_input")
		other := a.newOrg(t)
		c.valid(t, a, bearer("GET", orgPath(other.Slug, "/users"), mgr.Token, nil), 404)
	})

	t.Run("tokens", func(t *testing.T) {
		r := c.valid(t, a, bearer("POST", me+"/tokens", mgr.Token, map[string]any{"name": "script", "scope": "full", "expires_at": a.env.Clock.Now().Add(30 * 24 * time.Hour)}), 201)
		created := decodeStrict[tokenCreatedAnswer](t, r)
		c.valid(t, a, bearer("GET", me+"/tokens", created.Secret, nil), 200)
		c.valid(t, a, bearer("GET", me, created.Secret, nil), 200)
		// A personal API token cannot start an authenticator app: the
		// document does not offer that route to tokens, and the server
		// refuses.
		c.refused(t, a, bearer("POST", me+"/totp", created.Secret, nil), 403, "forbidden")
		c.valid(t, a, bearer("DELETE", me+"/tokens/"+created.Token.ID, mgr.Token, nil), 204)
		c.valid(t, a, bearer("GET", me+"/tokens", mgr.Token, nil), 200)
	})

	t.Run("audit", func(t *testing.T) {
		c.valid(t, a, bearer("GET", orgPath(o.Slug, "/audit?limit=5"), mgr.Token, nil), 200)
		c.valid(t, a, bearer("GET", orgPath(o.Slug, "/audit/verify"), mgr.Token, nil), 200)
		c.valid(t, a, bearer("GET", orgPath(o.Slug, "/audit/export?limit=3"), mgr.Token, nil), 200)
		c.refused(t, a, bearer("GET", orgPath(o.Slug, "/audit?limit=0"), mgr.Token, nil), 400, "invalid_input")
	})

	t.Run("projects", func(t *testing.T) {
		r := c.valid(t, a, bearer("POST", orgPath(o.Slug, "/projects"), mgr.Token, map[string]string{"name": "Harbour"}), 201)
		p := orgPath(o.Slug, "/projects/"+decodeStrict[projectAnswer](t, r).Project.ID)
		c.valid(t, a, bearer("GET", orgPath(o.Slug, "/projects?limit=5"), mgr.Token, nil), 200)
		c.valid(t, a, bearer("GET", p, mgr.Token, nil), 200)
		c.valid(t, a, bearer("PATCH", p, mgr.Token, map[string]string{"name": "Harbour 2"}), 200)
		c.refused(t, a, bearer("PATCH", p, mgr.Token, map[string]string{"name": ""}), 400, "invalid_input")
		c.valid(t, a, request{method: "PUT", path: p + "/files/b.txt", bearer: mgr.Token, body: []byte("hello"), contentType: "text/plain"}, 201)
		c.valid(t, a, request{method: "PUT", path: p + "/files/b.txt", bearer: mgr.Token, body: []byte("x"), contentType: "text/plain", header: map[string]string{"If-None-Match": "*"}}, 412)
		c.valid(t, a, bearer("GET", p+"/files/b.txt", mgr.Token, nil), 200)
		c.valid(t, a, bearer("GET", p+"/tree", mgr.Token, nil), 200)
		c.valid(t, a, bearer("POST", p+"/versions", mgr.Token, map[string]string{"message": "one"}), 201)
		c.valid(t, a, bearer("GET", p+"/versions", mgr.Token, nil), 200)
		c.valid(t, a, bearer("GET", p+"/versions/1/tree", mgr.Token, nil), 200)
		c.valid(t, a, bearer("GET", p+"/versions/1/diff", mgr.Token, nil), 200)
		c.valid(t, a, bearer("POST", p+"/versions/1/restore", mgr.Token, nil), 201)
		c.valid(t, a, bearer("GET", p+"/grants", mgr.Token, nil), 200)
		r = c.valid(t, a, bearer("POST", orgPath(o.Slug, "/groups"), mgr.Token, map[string]string{"name": "Team"}), 201)
		g := decodeStrict[groupAnswer](t, r).Group.ID
		c.valid(t, a, bearer("GET", orgPath(o.Slug, "/groups"), mgr.Token, nil), 200)
		c.valid(t, a, bearer("PUT", p+"/grants/group:"+g, mgr.Token, map[string]string{"relation": "editor"}), 204)
		c.refused(t, a, bearer("PUT", p+"/grants/group:"+g, mgr.Token, map[string]string{"relation": "god"}), 400, "invalid_input")
		c.valid(t, a, bearer("DELETE", p, mgr.Token, nil), 204)
		c.valid(t, a, bearer("GET", orgPath(o.Slug, "/trash"), mgr.Token, nil), 200)
		c.valid(t, a, bearer("GET", p, mgr.Token, nil), 404)
		c.valid(t, a, bearer("POST", p+"/undelete", mgr.Token, nil), 200)
	})

	t.Run("operator", func(t *testing.T) {
		c.valid(t, a, bearer("GET", "/api/v1/operator/me", op.Token, nil), 200)
		c.valid(t, a, bearer("GET", "/api/v1/orgs", op.Token, nil), 200)
		c.valid(t, a, bearer("GET", "/api/v1/operator/logins", op.Token, nil), 200)
		c.valid(t, a, bearer("GET", "/api/v1/operator/me/passkeys", op.Token, nil), 200)
	})

	t.Run("health", func(t *testing.T) {
		c.valid(t, a, bearer("GET", "/healthz", "", nil), 200)
		c.valid(t, a, bearer("GET", "/readyz", "", nil), 200)
	})

	if n := c.rest(t); n < 35 {
		t.Errorf("only %d exchanges went through the contract check", n)
	}
}

// TestOpenAPIDocumentIsServed: GET /api/openapi.json answers the embedded
// document to anyone, as JSON, cacheable with an ETag that If-None-Match
// honours with 304.
func TestOpenAPIDocumentIsServed(t *testing.T) {
	a := newTestAPI(t, kluistest.Engines[0])
	get := func(header map[string]string) (*http.Response, []byte) {
		req, err := http.NewRequest("GET", a.srv.URL+"/api/openapi.json", nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := a.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, body
	}
	res, body := get(nil)
	if res.StatusCode != 200 || !bytes.Equal(body, openapi.JSON()) {
		t.Fatalf("GET /api/openapi.json: %d, %d bytes; want 200 and the embedded document (%d bytes)", res.StatusCode, len(body), len(openapi.JSON()))
	}
	etag := res.Header.Get("ETag")
	for h, want := range map[string]string{"Content-Type": "application/json", "Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"} {
		if got := res.Header.Get(h); got != want {
			t.Errorf("%s %q, want %q", h, got, want)
		}
	}
	if len(etag) < 10 || !strings.HasPrefix(etag, `"`) || res.Header.Get("X-Request-Id") == "" {
		t.Errorf("ETag %q, X-Request-Id %q; want a strong ETag and a request id", etag, res.Header.Get("X-Request-Id"))
	}
	if res, body := get(map[string]string{"If-None-Match": etag}); res.StatusCode != 304 || len(body) != 0 {
		t.Errorf("GET with If-None-Match: the ETag: %d with %d bytes, want 304 and no body", res.StatusCode, len(body))
	}
	if res, _ := get(map[string]string{"If-None-Match": `"stale"`}); res.StatusCode != 200 {
		t.Errorf("GET with a stale If-None-Match: %d, want 200", res.StatusCode)
	}
	doc, err := openapi3.NewLoader().LoadFromData(body)
	if err != nil || doc.OpenAPI != "3.1.0" {
		t.Errorf("the served document does not load as OpenAPI 3.1: %v", err)
	}
}

// TestOpenAPITokenSchemesMatchTheServer: the document's security says, per
// operation, whether a personal API token may call it. Every organisation
// route it closes to tokens refuses a full token with 403 forbidden before
// any handler runs, and every GET it opens to tokens does not.
func TestOpenAPITokenSchemesMatchTheServer(t *testing.T) {
	doc := loadOpenAPI(t)
	a := newTestAPI(t, kluistest.Engines[0])
	o := a.newOrg(t)
	pat := a.createToken(t, o.Slug, o.Manager.Token, "script", "full", time.Hour).Secret
	closed, open := 0, 0
	for _, rt := range httpserver.Routes() {
		if rt.Realm != "org" {
			continue
		}
		path, _ := openAPIPath(rt.Pattern)
		op := doc.Paths.Value(path).GetOperation(rt.Method)
		tokens := false
		for _, req := range *op.Security {
			_, ok := req["apiToken"]
			tokens = tokens || ok
		}
		url := strings.NewReplacer("{org}", o.Slug, "{id}", "no-such-id").Replace(rt.Pattern)
		key := rt.Method + " " + rt.Pattern
		switch {
		case !tokens:
			closed++
			r := a.do(t, request{method: rt.Method, path: url, bearer: pat, body: map[string]any{}})
			if e := wantError(t, key+" with a token", r, 403, "forbidden"); !strings.Contains(e.Error.Message, "API token") {
				t.Errorf("%s with a token: %v, want the refusal of a token", key, r)
			}
		case rt.Method == "GET":
			open++
			r := a.do(t, request{method: rt.Method, path: url, bearer: pat})
			if r.status == 403 || r.status == 401 {
				t.Errorf("%s with a full token: %v; the document lets tokens call it", key, r)
			}
		}
	}
	if closed < 15 || open < 5 {
		t.Fatalf("walked %d routes closed to tokens and %d GETs open to them; the walk is broken", closed, open)
	}
}
