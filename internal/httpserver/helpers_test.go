package httpserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/pquerna/otp/totp"
)

// The API tests run the real handler (httpserver.NewServer) on a real
// database of each engine, through a real HTTP connection. Nothing of our own
// is mocked. Every answer passes the contract's universal checks in do:
// request id, security headers, the one error shape, no internals in errors
// and no 5xx unless a test asks for one.

// lockedBuffer collects the server's log output; slog writes from the
// handler goroutines while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testAPI is a kluis HTTP server on a fresh database of one engine.
type testAPI struct {
	env     *kluistest.Env
	srv     *httptest.Server
	logs    *lockedBuffer
	metrics *httpserver.Metrics

	mu         sync.Mutex
	requestIDs map[string]bool
	requests   int
	mails      []string // every mail delivered so far, oldest first
}

func newTestAPI(tb testing.TB, engine string) *testAPI {
	tb.Helper()
	m := httpserver.NewMetrics()
	env := kluistest.NewEnv(tb, engine, kluistest.EnvOptions{KeyObserver: m, Observer: m})
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := httptest.NewServer(httpserver.NewServer(httpserver.Config{Services: env.Services(), Ready: env.Ready, Logger: logger, Metrics: m}))
	tb.Cleanup(srv.Close)
	return &testAPI{env: env, srv: srv, logs: logs, metrics: m, requestIDs: map[string]bool{}}
}

// request is one HTTP request of a test.
type request struct {
	method, path string
	bearer       string
	cookies      []*http.Cookie
	// body is nil (no body), a string or []byte (sent as it is) or any
	// other value (sent as JSON).
	body any
	// contentType defaults to application/json when there is a body; "-"
	// sends none.
	contentType string
	header      map[string]string
	// allow5xx lets a test provoke a server error on purpose.
	allow5xx bool
	// notAnError marks an answer of 400 or more that is not an error in
	// the contract's sense (a failed readiness check).
	notAnError bool
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string {
	b := r.body
	if len(b) > 300 {
		b = append(b[:300:300], "…"...)
	}
	return fmt.Sprintf("%d %s", r.status, b)
}

var requestIDPattern = regexp.MustCompile(`^[0-9a-f]{24}$`)

// do sends a request and checks what every answer must satisfy.
func (a *testAPI) do(tb testing.TB, rq request) response {
	tb.Helper()
	var rd io.Reader
	switch b := rq.body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			tb.Fatalf("marshal request body: %v", err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(rq.method, a.srv.URL+rq.path, rd)
	if err != nil {
		tb.Fatalf("new request %s %s: %v", rq.method, rq.path, err)
	}
	if rd != nil && rq.contentType != "-" {
		ct := rq.contentType
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	if rq.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+rq.bearer)
	}
	for _, c := range rq.cookies {
		req.AddCookie(c)
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	res, err := a.srv.Client().Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		tb.Fatalf("%s %s: read answer: %v", rq.method, rq.path, err)
	}
	r := response{status: res.StatusCode, header: res.Header, body: body}

	a.mu.Lock()
	a.requests++
	id := r.header.Get("X-Request-Id")
	dup := a.requestIDs[id]
	a.requestIDs[id] = true
	a.mu.Unlock()
	if !requestIDPattern.MatchString(id) {
		tb.Errorf("%s %s: X-Request-Id %q, want 24 hex digits", rq.method, rq.path, id)
	}
	if dup {
		tb.Errorf("%s %s: X-Request-Id %q was given before", rq.method, rq.path, id)
	}
	for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
		if got := r.header.Get(h); got != want {
			tb.Errorf("%s %s: %s %q, want %q", rq.method, rq.path, h, got, want)
		}
	}
	if r.status >= 500 && !rq.allow5xx {
		tb.Errorf("%s %s: got %v, want no server error", rq.method, rq.path, r)
	}
	if r.status >= 400 && !rq.notAnError {
		checkErrorShape(tb, rq.method+" "+rq.path, r)
	}
	return r
}

// call is do for the common case: a bearer token and a JSON body.
func (a *testAPI) call(tb testing.TB, method, path, bearer string, body any) response {
	tb.Helper()
	return a.do(tb, request{method: method, path: path, bearer: bearer, body: body})
}

// statusOfCode is the contract's error table.
var statusOfCode = map[string]int{
	"invalid_input":          400,
	"unauthenticated":        401,
	"forbidden":              403,
	"not_found":              404,
	"method_not_allowed":     405,
	"conflict":               409,
	"precondition_failed":    412,
	"too_large":              413,
	"too_many_requests":      429,
	"internal":               500,
	"logins_disabled":        403,
	"reauth_required":        403,
	"mfa_enrolment_required": 403,
	"licence_limit":          409,
	"processing_restricted":  409,
}

// neverInErrors are traces of internals that must never reach a client.
var neverInErrors = []string{
	"sqlite", "sqlstate", "pq:", "pgx", "pgconn", "postgres", "goroutine", "panic", "runtime error",
	".go:", "/tmp/", "/work/", "json: ", "select ", "insert into", "delete from", "update users", "drop table",
	"syntax error at", "constraint",
}

type apiError struct {
	Error struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Fields  map[string]string `json:"fields"`
	} `json:"error"`
}

// checkErrorShape checks that an error answer is exactly the contract's
// {"error":{"code","message"[,"fields"]}}, that its code belongs to its
// status, and that it names no internals.
func checkErrorShape(tb testing.TB, what string, r response) apiError {
	tb.Helper()
	var e apiError
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Errorf("%s: error Content-Type %q, want application/json", what, ct)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &top); err != nil || len(top) != 1 || top["error"] == nil {
		tb.Errorf("%s: error body %s, want exactly {\"error\":{…}}", what, r.body)
		return e
	}
	var inner map[string]json.RawMessage
	if err := json.Unmarshal(top["error"], &inner); err != nil {
		tb.Errorf("%s: error body %s: %v", what, r.body, err)
		return e
	}
	for k := range inner {
		if k != "code" && k != "message" && k != "fields" {
			tb.Errorf("%s: error body has key %q, want only code, message, fields", what, k)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		tb.Errorf("%s: error body %s: %v", what, r.body, err)
	}
	if e.Error.Code == "" || e.Error.Message == "" {
		tb.Errorf("%s: error body %s, want a code and a message", what, r.body)
	}
	if want, ok := statusOfCode[e.Error.Code]; !ok || want != r.status {
		tb.Errorf("%s: status %d with code %q, want the contract's pairing (%d)", what, r.status, e.Error.Code, want)
	}
	if _, ok := inner["fields"]; ok && e.Error.Code != "invalid_input" && e.Error.Code != "licence_limit" && e.Error.Code != "conflict" {
		tb.Errorf("%s: fields on a %q error, want fields only for invalid_input, licence_limit (and a conflict naming a policy limit)", what, e.Error.Code)
	}
	low := strings.ToLower(string(r.body))
	for _, s := range neverInErrors {
		if strings.Contains(low, s) {
			tb.Errorf("%s: error body %s contains %q", what, r.body, s)
		}
	}
	if r.status == 401 && r.header.Get("WWW-Authenticate") == "" {
		tb.Errorf("%s: 401 without WWW-Authenticate", what)
	}
	return e
}

// wantError fails unless r is the error status and code given.
func wantError(tb testing.TB, what string, r response, status int, code string) apiError {
	tb.Helper()
	if r.status != status {
		tb.Errorf("%s: got %v, want %d %s", what, r, status, code)
		return apiError{}
	}
	e := checkErrorShape(tb, what, r)
	if e.Error.Code != code {
		tb.Errorf("%s: code %q, want %q", what, e.Error.Code, code)
	}
	return e
}

// wantInvalid fails unless r is invalid_input naming each given field.
func wantInvalid(tb testing.TB, what string, r response, fields ...string) apiError {
	tb.Helper()
	e := wantError(tb, what, r, 400, "invalid_input")
	for _, f := range fields {
		if e.Error.Fields[f] == "" {
			tb.Errorf("%s: fields %v, want a problem for %q", what, e.Error.Fields, f)
		}
	}
	return e
}

func wantStatus(tb testing.TB, what string, r response, status int) {
	tb.Helper()
	if r.status != status {
		tb.Fatalf("%s: got %v, want %d", what, r, status)
	}
}

// decodeStrict decodes an answer into T, refusing fields T does not know:
// an answer that grows a field (a hash, a secret) fails here first.
func decodeStrict[T any](tb testing.TB, r response) T {
	tb.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		tb.Fatalf("decode answer %v: %v", r, err)
	}
	if dec.More() {
		tb.Fatalf("answer %v: more than one JSON value", r)
	}
	return v
}

// The answer bodies of the contract.

type userObject struct {
	ID                string     `json:"id"`
	Name              string     `json:"name"`
	Email             string     `json:"email"`
	Phone             string     `json:"phone"`
	MaintenanceEmails bool       `json:"maintenance_emails"`
	Role              string     `json:"role"`
	Status            string     `json:"status"`
	CreatedAt         time.Time  `json:"created_at"`
	LastLoginAt       *time.Time `json:"last_login_at"`
	RestrictedAt      *time.Time `json:"restricted_at"`
	// Factors: the methods of a person's second factors, in a manager's
	// reads only (R17).
	Factors []string `json:"factors,omitempty"`
}

type loginAnswer struct {
	Token                string      `json:"token"`
	ExpiresAt            time.Time   `json:"expires_at"`
	User                 *userObject `json:"user"`
	MFAEnrolmentRequired bool        `json:"mfa_enrolment_required"`
}

type userAnswer struct {
	User userObject `json:"user"`
}

type usersAnswer struct {
	Users []userObject `json:"users"`
}

type orgObject struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
}

type orgAnswer struct {
	Org orgObject `json:"org"`
}

type orgsAnswer struct {
	Orgs []orgObject `json:"orgs"`
}

type policyObject struct {
	PasswordMinLength    int    `json:"password_min_length"`
	PasswordRequireDigit bool   `json:"password_require_digit"`
	PasswordRequireUpper bool   `json:"password_require_upper"`
	SessionIdleMinutes   int    `json:"session_idle_minutes"`
	SessionMaxHours      int    `json:"session_max_hours"`
	MFA                  string `json:"mfa"`
	LockoutThreshold     int    `json:"lockout_threshold"`
	ProjectAccess        string `json:"project_access"`
	TrashDays            int    `json:"trash_days"`
	SupportApprovals     int    `json:"support_approvals"`
	MaxManagers          *int   `json:"max_managers"`
	InactiveUserDays     int    `json:"inactive_user_days"`   // retention (R35)
	AuditRetentionDays   int    `json:"audit_retention_days"` // retention (R25)
}

var defaultPolicy = policyObject{8, false, false, 30, 12, "optional", 5, "managers", 30, 1, nil, 730, 730}

type auditEvent struct {
	Seq     int64           `json:"seq"`
	At      time.Time       `json:"at"`
	Actor   string          `json:"actor"`
	Action  string          `json:"action"`
	Target  string          `json:"target"`
	Outcome string          `json:"outcome"`
	Details json.RawMessage `json:"details"`
	Client  string          `json:"client,omitempty"`
	Hash    string          `json:"hash"`
}

type auditPage struct {
	Events []auditEvent `json:"events"`
	Next   *int64       `json:"next"`
}

type verifyAnswer struct {
	OK             bool   `json:"ok"`
	Checked        int64  `json:"checked"`
	FirstBrokenSeq *int64 `json:"first_broken_seq"`
	Problem        string `json:"problem,omitempty"`
}

// Fixtures.

// account is a person in a test with everything the test knows of them.
type account struct {
	ID, Name, Email, Password, Token string
	TOTPSecret                       string // an operator's authenticator app
}

type orgFixture struct {
	ID, Slug, Name string
	Manager        account
}

func orgPath(slug, rest string) string { return "/api/v1/orgs/" + slug + rest }

// uniqueEmail and friends make distinctive values, so a test that looks for
// them in logs or answers cannot be fooled by a coincidence.
func uniqueEmail(who string) string { return kluistest.Name(who) + "@example.test" }
func uniqueName(who string) string  { return who + " " + kluistest.Name("van") }
func uniquePassword() string        { return "Pw 1 " + kluistest.Name("horse-battery") }

// mail delivers queued mail and keeps every message for later checks.
func (a *testAPI) mail(tb testing.TB) []string {
	tb.Helper()
	msgs := a.env.Mail(tb)
	a.mu.Lock()
	a.mails = append(a.mails, msgs...)
	a.mu.Unlock()
	return msgs
}

// inviteToken returns the token of the newest invitation link mailed.
func (a *testAPI) inviteToken(tb testing.TB) string {
	tb.Helper()
	msgs := a.mail(tb)
	for i := len(msgs) - 1; i >= 0; i-- {
		if strings.Contains(msgs[i], "/invite#") {
			return kluistest.Token(kluistest.Link(tb, msgs[i]))
		}
	}
	tb.Fatalf("no invitation was mailed (%d new messages)", len(msgs))
	return ""
}

// operator creates an operator admin and signs them in.
func (a *testAPI) operator(tb testing.TB) (kluis.Operator, account) {
	tb.Helper()
	return a.operatorOf(tb, kluis.OperatorAdmin)
}

// operatorOf creates an operator of role, signs them in and enrols an
// authenticator app.
func (a *testAPI) operatorOf(tb testing.TB, role kluis.OperatorRole) (kluis.Operator, account) {
	tb.Helper()
	acc := account{Name: uniqueName("Olga"), Email: uniqueEmail("olga"), Password: uniquePassword()}
	op, err := a.env.Services().Operators.CreateOperator(context.Background(), kluis.CLIActor, acc.Email, acc.Name, acc.Password, role)
	if err != nil {
		tb.Fatalf("create operator: %v", err)
	}
	acc.ID = string(op.ID)
	r := a.call(tb, "POST", "/api/v1/operator/login", "", map[string]string{"email": acc.Email, "password": acc.Password})
	wantStatus(tb, "operator login", r, 200)
	la := decodeStrict[loginAnswer](tb, r)
	if la.Token == "" || la.User != nil {
		tb.Fatalf("operator login answer %v, want a token and no user", r)
	}
	if !la.MFAEnrolmentRequired {
		tb.Fatalf("operator login answer %v, want mfa_enrolment_required for an operator without a second factor", r)
	}
	acc.Token = la.Token
	acc.TOTPSecret = a.enrolOperator(tb, acc.Token)
	return op, acc
}

// enrolOperator sets up an authenticator app for the operator's (fresh)
// session, which is then no longer limited to enrolment, and returns the
// secret. Operators must have a second factor (issue 5 item 8).
func (a *testAPI) enrolOperator(tb testing.TB, token string) string {
	tb.Helper()
	r := a.call(tb, "POST", "/api/v1/operator/me/totp", token, nil)
	wantStatus(tb, "operator TOTP start", r, 200)
	secret := decodeStrict[struct {
		Secret     string `json:"secret"`
		OTPAuthURL string `json:"otpauth_url"`
	}](tb, r).Secret
	code := totpCode(tb, secret, a.env.Clock.Now())
	wantStatus(tb, "operator TOTP confirm", a.call(tb, "POST", "/api/v1/operator/me/totp/confirm", token, map[string]string{"code": code}), 200)
	return secret
}

// totpCode is the authenticator app's code of secret at now, for fixtures
// (the tests of two-step sign-in itself ask oathtool).
func totpCode(tb testing.TB, secret string, now time.Time) string {
	tb.Helper()
	code, err := totp.GenerateCode(secret, now)
	if err != nil {
		tb.Fatal(err)
	}
	return code
}

// newOrg creates an organisation from the command line; its manager accepts
// the mailed invitation and signs in.
func (a *testAPI) newOrg(tb testing.TB) orgFixture {
	tb.Helper()
	o := orgFixture{Slug: kluistest.Name("org"), Name: uniqueName("Org")}
	o.Manager = account{Name: uniqueName("Mia"), Email: uniqueEmail("mia"), Password: uniquePassword()}
	org, _, err := a.env.Services().Orgs.CreateOrg(context.Background(), kluis.CLIActor, kluis.NewOrg{
		Slug: o.Slug, Name: o.Name, ManagerEmail: o.Manager.Email,
	})
	if err != nil {
		tb.Fatalf("create org: %v", err)
	}
	o.ID = string(org.ID)
	u := a.accept(tb, o.Slug, a.inviteToken(tb), o.Manager.Name, o.Manager.Password)
	o.Manager.ID = u.ID
	o.Manager.Token = a.login(tb, o.Slug, o.Manager.Email, o.Manager.Password).Token
	return o
}

// invite has the organisation's manager invite someone; they have not
// accepted yet.
func (a *testAPI) invite(tb testing.TB, o orgFixture, role string) account {
	tb.Helper()
	acc := account{Name: uniqueName("Noor"), Email: uniqueEmail("noor"), Password: uniquePassword()}
	r := a.call(tb, "POST", orgPath(o.Slug, "/users"), o.Manager.Token, map[string]string{"email": acc.Email, "name": acc.Name, "role": role})
	wantStatus(tb, "invite", r, 201)
	acc.ID = decodeStrict[userAnswer](tb, r).User.ID
	return acc
}

// addUser invites someone, who accepts and signs in.
func (a *testAPI) addUser(tb testing.TB, o orgFixture, role string) account {
	tb.Helper()
	acc := a.invite(tb, o, role)
	a.accept(tb, o.Slug, a.inviteToken(tb), acc.Name, acc.Password)
	acc.Token = a.login(tb, o.Slug, acc.Email, acc.Password).Token
	return acc
}

func (a *testAPI) accept(tb testing.TB, slug, token, name, password string) userObject {
	tb.Helper()
	r := a.call(tb, "POST", orgPath(slug, "/invitations/accept"), "", map[string]string{"token": token, "name": name, "password": password})
	wantStatus(tb, "accept invitation", r, 200)
	return decodeStrict[userAnswer](tb, r).User
}

func (a *testAPI) login(tb testing.TB, slug, email, password string) loginAnswer {
	tb.Helper()
	r := a.call(tb, "POST", orgPath(slug, "/login"), "", map[string]string{"email": email, "password": password})
	wantStatus(tb, "login", r, 200)
	la := decodeStrict[loginAnswer](tb, r)
	if la.Token == "" || la.User == nil {
		tb.Fatalf("login answer %v, want a token and the user", r)
	}
	return la
}

func (a *testAPI) me(tb testing.TB, slug, token string) userObject {
	tb.Helper()
	r := a.call(tb, "GET", orgPath(slug, "/me"), token, nil)
	wantStatus(tb, "GET /me", r, 200)
	return decodeStrict[userObject](tb, r)
}

// auditLog reads the organisation's whole log (reading is not recorded).
func (a *testAPI) auditLog(tb testing.TB, slug, token string) []auditEvent {
	tb.Helper()
	var all []auditEvent
	after := int64(0)
	for {
		r := a.call(tb, "GET", orgPath(slug, fmt.Sprintf("/audit?limit=1000&after=%d", after)), token, nil)
		wantStatus(tb, "GET /audit", r, 200)
		p := decodeStrict[auditPage](tb, r)
		all = append(all, p.Events...)
		if p.Next == nil {
			return all
		}
		after = *p.Next
	}
}

// auditHead is the sequence number and hash of the newest event.
func auditHead(events []auditEvent) string {
	if len(events) == 0 {
		return "empty"
	}
	e := events[len(events)-1]
	return fmt.Sprintf("%d/%s", e.Seq, e.Hash)
}

// countActions counts events by "action/outcome".
func countActions(events []auditEvent) map[string]int {
	n := map[string]int{}
	for _, e := range events {
		n[e.Action+"/"+e.Outcome]++
	}
	return n
}

// mustNotContain fails for each needle found in the haystack.
func mustNotContain(tb testing.TB, what, haystack string, needles ...string) {
	tb.Helper()
	for _, n := range needles {
		if n != "" && strings.Contains(haystack, n) {
			tb.Errorf("%s contains %q; it must not", what, n)
		}
	}
}

// sessionCookie is the browser's form of a session token.
func sessionCookie(token string) *http.Cookie {
	return &http.Cookie{Name: "__Host-kluis_session", Value: token}
}
