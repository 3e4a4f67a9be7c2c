package httpserver_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/kluistest"
)

// scenarioSecrets is what a scenario used that must never appear in a log
// line or (for secrets) a mail.
type scenarioSecrets struct {
	tokens    []string // session tokens: never in a log or a mail
	links     []string // invitation tokens: only in their own mail
	passwords []string
	personal  []string // addresses, names, phone, slug, ids: never in a log
	queries   []string
}

// TestUserLifecycleIsServedAndRecorded walks an organisation's life through
// the API: created by the operator, its manager invited, a member invited,
// denied, read, changed, disabled, enabled and deleted, invitations re-sent
// and revoked, the policy tightened, a password changed, a logout; then the
// log shows each of these exactly once, exports them and verifies
// (R1–R5, R14, R16, R23–R25). The request log and the mails of that whole
// scenario hold no personal data or secrets (R45).
func TestUserLifecycleIsServedAndRecorded(t *testing.T) {
	t.Parallel()
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			sec := runLifecycle(t, a)

			t.Run("request log has one line per request and no personal data or secrets (R45)", func(t *testing.T) {
				checkRequestLog(t, a, sec)
			})
			t.Run("mails are notices without secrets (R45)", func(t *testing.T) {
				a.mail(t)
				if len(a.mails) < 4 {
					t.Fatalf("got %d mails, want at least 4 (invitations, a re-send, a password notice)", len(a.mails))
				}
				for i, m := range a.mails {
					what := fmt.Sprintf("mail %d", i)
					mustNotContain(t, what, m, sec.tokens...)
					mustNotContain(t, what, m, sec.passwords...)
					mustNotContain(t, what, m, "+31201234567", "+31 (20) 123-4567")
					if strings.Contains(m, "/invite#") {
						own := kluistest.Token(kluistest.Link(t, m)) // exactly one link
						for _, l := range sec.links {
							if l != own && strings.Contains(m, l) {
								t.Errorf("%s carries another invitation's token", what)
							}
						}
					} else if strings.Contains(m, "#") && strings.Contains(m, "http") {
						t.Errorf("%s carries a link with a fragment but is no invitation:\n%s", what, m)
					}
				}
			})
		})
	}
}

func runLifecycle(t *testing.T, a *testAPI) scenarioSecrets {
	var sec scenarioSecrets

	// The operator signs in (the operator realm, R22).
	op, opAcc := a.operator(t)
	sec.tokens = append(sec.tokens, opAcc.Token)
	sec.passwords = append(sec.passwords, opAcc.Password)
	sec.personal = append(sec.personal, opAcc.Email, opAcc.Name)

	// R1: the operator creates an organisation; its manager is invited by mail.
	slug, orgName := kluistest.Name("acme"), uniqueName("Acme")
	mgr := account{Name: uniqueName("Mila"), Email: uniqueEmail("mila"), Password: uniquePassword()}
	r := a.call(t, "POST", "/api/v1/orgs", opAcc.Token, map[string]any{
		"slug": slug, "name": orgName, "manager": map[string]string{"email": mgr.Email, "name": mgr.Name},
	})
	wantStatus(t, "create org", r, 201)
	org := decodeStrict[orgAnswer](t, r).Org
	if org.Slug != slug || org.Name != orgName || !kluis.ValidID(org.ID) {
		t.Fatalf("created org %+v, want slug %q, name %q and an id", org, slug, orgName)
	}
	sec.personal = append(sec.personal, slug, orgName, org.ID, mgr.Email, mgr.Name)
	sec.passwords = append(sec.passwords, mgr.Password)

	// R2: the manager accepts the mailed invitation; the link works once.
	inviteTok := a.inviteToken(t)
	sec.links = append(sec.links, inviteTok)
	u := a.accept(t, slug, inviteTok, mgr.Name, mgr.Password)
	if u.Role != "manager" || u.Status != "active" || u.Email != mgr.Email || u.Name != mgr.Name || u.LastLoginAt != nil {
		t.Fatalf("accepted manager %+v, want an active manager %s who never signed in", u, mgr.Email)
	}
	mgr.ID = u.ID
	r = a.call(t, "POST", orgPath(slug, "/invitations/accept"), "", map[string]string{"token": inviteTok, "name": "Again", "password": uniquePassword()})
	wantError(t, "accepting a used invitation", r, 404, "not_found")

	// R14: the manager signs in; the answer has the /me user object and the
	// browser gets a __Host- cookie that scripts cannot read.
	r = a.call(t, "POST", orgPath(slug, "/login"), "", map[string]string{"email": strings.ToUpper(mgr.Email), "password": mgr.Password})
	wantStatus(t, "login with the address in capitals", r, 200)
	la := decodeStrict[loginAnswer](t, r)
	mgr.Token = la.Token
	sec.tokens = append(sec.tokens, mgr.Token)
	if la.User == nil || la.User.ID != mgr.ID || la.User.LastLoginAt == nil {
		t.Fatalf("login answer %v, want the manager with a last login", r)
	}
	if d := la.ExpiresAt.Sub(a.env.Clock.Now()); d < 11*time.Hour || d > 12*time.Hour+time.Second {
		t.Errorf("session expires in %v, want the default 12 hours", d)
	}
	checkSessionCookie(t, r, mgr.Token)

	// R4: the user sees all data held about them.
	if me := a.me(t, slug, mgr.Token); !reflect.DeepEqual(me, *la.User) {
		t.Errorf("GET /me %+v, want the login's user %+v", me, *la.User)
	}

	// R3: name, phone (normalised) and the maintenance-mail opt-out.
	mgr.Name = uniqueName("Mila B.")
	sec.personal = append(sec.personal, mgr.Name, "+31201234567", "+31 (20) 123-4567")
	r = a.call(t, "PATCH", orgPath(slug, "/me"), mgr.Token, map[string]any{"name": mgr.Name, "phone": "+31 (20) 123-4567", "maintenance_emails": false})
	wantStatus(t, "PATCH /me", r, 200)
	patched := decodeStrict[userObject](t, r)
	if patched.Name != mgr.Name || patched.Phone != "+31201234567" || patched.MaintenanceEmails {
		t.Errorf("PATCH /me gave %+v, want name %q, phone +31201234567, no maintenance mail", patched, mgr.Name)
	}
	if me := a.me(t, slug, mgr.Token); !reflect.DeepEqual(me, patched) {
		t.Errorf("GET /me after PATCH %+v, want %+v", me, patched)
	}

	// R2: the manager invites a member, who accepts and signs in.
	mem := a.invite(t, orgFixture{Slug: slug, Manager: mgr}, "member")
	sec.personal = append(sec.personal, mem.Email, mem.Name)
	sec.passwords = append(sec.passwords, mem.Password)
	memTok := a.inviteToken(t)
	sec.links = append(sec.links, memTok)
	a.accept(t, slug, memTok, mem.Name, mem.Password)
	mem.Token = a.login(t, slug, mem.Email, mem.Password).Token
	sec.tokens = append(sec.tokens, mem.Token)

	// R6, R8: a member may not list users: 403, recorded as denied (R23).
	r = a.call(t, "GET", orgPath(slug, "/users"), mem.Token, nil)
	wantError(t, "member lists users", r, 403, "forbidden")
	// R16: members read the policy too.
	r = a.call(t, "GET", orgPath(slug, "/policy"), mem.Token, nil)
	wantStatus(t, "member reads policy", r, 200)
	if p := decodeStrict[policyObject](t, r); p != defaultPolicy {
		t.Errorf("policy %+v, want the defaults %+v", p, defaultPolicy)
	}

	// R2: the manager lists users and opens the member (recorded, R24).
	r = a.call(t, "GET", orgPath(slug, "/users"), mgr.Token, nil)
	wantStatus(t, "manager lists users", r, 200)
	if us := decodeStrict[usersAnswer](t, r).Users; len(us) != 2 || us[0].ID == us[1].ID ||
		(us[0].ID != mgr.ID && us[0].ID != mem.ID) || (us[1].ID != mgr.ID && us[1].ID != mem.ID) {
		t.Errorf("users %+v, want the manager and the member", us)
	}
	r = a.call(t, "GET", orgPath(slug, "/users/"+mem.ID), mgr.Token, nil)
	wantStatus(t, "manager opens member", r, 200)
	if got := decodeStrict[userObject](t, r); got.Email != mem.Email || got.Status != "active" {
		t.Errorf("member %+v, want active %s", got, mem.Email)
	}

	// R2: role change.
	r = a.call(t, "PATCH", orgPath(slug, "/users/"+mem.ID), mgr.Token, map[string]any{"role": "manager"})
	wantStatus(t, "promote member", r, 200)
	if got := decodeStrict[userObject](t, r); got.Role != "manager" {
		t.Errorf("after promotion role %q, want manager", got.Role)
	}
	// R14: a new role starts with a new sign-in.
	wantError(t, "the member's session after the role change", a.call(t, "GET", orgPath(slug, "/me"), mem.Token, nil), 401, "unauthenticated")
	mem.Token = a.login(t, slug, mem.Email, mem.Password).Token

	// R14, R19: disabling ends the member's session at once; they cannot sign in.
	r = a.call(t, "PATCH", orgPath(slug, "/users/"+mem.ID), mgr.Token, map[string]any{"disabled": true})
	wantStatus(t, "disable", r, 200)
	if got := decodeStrict[userObject](t, r); got.Status != "disabled" {
		t.Errorf("after disabling status %q, want disabled", got.Status)
	}
	wantError(t, "disabled member's session", a.call(t, "GET", orgPath(slug, "/me"), mem.Token, nil), 401, "unauthenticated")
	r = a.call(t, "POST", orgPath(slug, "/login"), "", map[string]string{"email": mem.Email, "password": mem.Password})
	wantError(t, "disabled member signs in", r, 401, "unauthenticated")

	// Re-enabled: a new login works, the old session stays dead.
	r = a.call(t, "PATCH", orgPath(slug, "/users/"+mem.ID), mgr.Token, map[string]any{"disabled": false})
	wantStatus(t, "enable", r, 200)
	if got := decodeStrict[userObject](t, r); got.Status != "active" {
		t.Errorf("after enabling status %q, want active", got.Status)
	}
	wantError(t, "old session after re-enabling", a.call(t, "GET", orgPath(slug, "/me"), mem.Token, nil), 401, "unauthenticated")
	mem.Token = a.login(t, slug, mem.Email, mem.Password).Token
	sec.tokens = append(sec.tokens, mem.Token)

	// R5: the manager deletes the member; their session dies with them.
	r = a.call(t, "DELETE", orgPath(slug, "/users/"+mem.ID), mgr.Token, nil)
	wantStatus(t, "delete member", r, 204)
	if len(r.body) != 0 {
		t.Errorf("204 with body %q", r.body)
	}
	wantError(t, "deleted member's session", a.call(t, "GET", orgPath(slug, "/me"), mem.Token, nil), 401, "unauthenticated")
	wantError(t, "opening the deleted member", a.call(t, "GET", orgPath(slug, "/users/"+mem.ID), mgr.Token, nil), 404, "not_found")

	// Invitations: a re-sent link replaces the old one; a revoked link is dead.
	r = a.call(t, "POST", orgPath(slug, "/users"), mgr.Token, map[string]string{"email": uniqueEmail("gust")})
	wantStatus(t, "invite without name or role", r, 201)
	guest := decodeStrict[userAnswer](t, r).User
	if guest.Role != "member" || guest.Status != "invited" || guest.Name != "" {
		t.Errorf("invited %+v, want an invited member without a name", guest)
	}
	sec.personal = append(sec.personal, guest.Email)
	link1 := a.inviteToken(t)
	wantStatus(t, "re-send invitation", a.call(t, "POST", orgPath(slug, "/users/"+guest.ID+"/invitation"), mgr.Token, nil), 204)
	link2 := a.inviteToken(t)
	sec.links = append(sec.links, link1, link2)
	if link1 == link2 {
		t.Fatal("the re-sent invitation has the old token")
	}
	accept := func(tok string) response {
		return a.call(t, "POST", orgPath(slug, "/invitations/accept"), "", map[string]string{"token": tok, "name": "Gust", "password": uniquePassword()})
	}
	wantError(t, "accepting the replaced link", accept(link1), 404, "not_found")
	wantStatus(t, "revoke invitation", a.call(t, "DELETE", orgPath(slug, "/users/"+guest.ID+"/invitation"), mgr.Token, nil), 204)
	wantError(t, "accepting the revoked link", accept(link2), 404, "not_found")
	wantError(t, "revoking again", a.call(t, "DELETE", orgPath(slug, "/users/"+guest.ID+"/invitation"), mgr.Token, nil), 404, "not_found")

	// R16: the manager raises the minimum length and requires a digit.
	// The policy change happens a minute later: since/until filters split there.
	a.env.Clock.Advance(time.Minute)
	cut := a.env.Clock.Now().UTC().Truncate(time.Microsecond)
	strict := policyObject{14, true, false, 30, 12, "optional", 5, "managers", 30, 1, nil, 730, 730}
	r = a.call(t, "PUT", orgPath(slug, "/policy"), mgr.Token, strict)
	wantStatus(t, "PUT /policy", r, 200)
	if p := decodeStrict[policyObject](t, r); p != strict {
		t.Errorf("PUT /policy answered %+v, want %+v", p, strict)
	}
	if p := decodeStrict[policyObject](t, a.call(t, "GET", orgPath(slug, "/policy"), mgr.Token, nil)); p != strict {
		t.Errorf("GET /policy %+v, want %+v", p, strict)
	}

	// R16: a new password must satisfy the new policy; the current one must be right.
	other := a.login(t, slug, mgr.Email, mgr.Password).Token
	sec.tokens = append(sec.tokens, other)
	newPw := "Longer pass 12345 " + kluistest.Name("x")
	sec.passwords = append(sec.passwords, newPw, "Short1 pass", "No digits in this one")
	for _, c := range []struct {
		name      string
		current   string
		next      string
		wantField string
	}{
		{"shorter than the raised minimum", mgr.Password, "Short1 pass", "new_password"},
		{"without the required digit", mgr.Password, "No digits in this one", "new_password"},
		{"wrong current password", "not " + mgr.Password, newPw, "current_password"},
	} {
		r = a.call(t, "POST", orgPath(slug, "/me/password"), mgr.Token, map[string]string{"current_password": c.current, "new_password": c.next})
		wantInvalid(t, "password change "+c.name, r, c.wantField)
		mustNotContain(t, "refused password change", string(r.body), c.current, c.next)
	}
	r = a.call(t, "POST", orgPath(slug, "/me/password"), mgr.Token, map[string]string{"current_password": mgr.Password, "new_password": newPw})
	wantStatus(t, "password change", r, 204)
	wantError(t, "the user's other session after a password change", a.call(t, "GET", orgPath(slug, "/me"), other, nil), 401, "unauthenticated")
	a.me(t, slug, mgr.Token) // the session that changed it goes on
	wantError(t, "login with the old password", a.call(t, "POST", orgPath(slug, "/login"), "", map[string]string{"email": mgr.Email, "password": mgr.Password}), 401, "unauthenticated")
	reader := a.login(t, slug, mgr.Email, newPw).Token
	sec.tokens = append(sec.tokens, reader)

	// Logout ends the session and clears the cookie.
	r = a.call(t, "POST", orgPath(slug, "/logout"), mgr.Token, nil)
	wantStatus(t, "logout", r, 204)
	if cs := (&http.Response{Header: r.header}).Cookies(); len(cs) != 1 || cs[0].Name != "__Host-kluis_session" || cs[0].MaxAge >= 0 {
		t.Errorf("logout cookies %v, want the session cookie cleared", cs)
	}
	wantError(t, "session after logout", a.call(t, "GET", orgPath(slug, "/me"), mgr.Token, nil), 401, "unauthenticated")

	// R23, R25: the log shows each action exactly once, in an unbroken sequence.
	events := a.auditLog(t, slug, reader)
	want := map[string]int{
		"user.invite/success":            3,
		"user.invitation_accept/success": 2,
		"user.invitation_accept/failure": 3, // a re-sent, a revoked and a used link
		"auth.login/success":             6, // one after the role change ended the session
		"auth.login_failed/failure":      2,
		"user.update/success":            2, // PATCH /me and the role change
		"user.list/denied":               1,
		"user.list/success":              1,
		"user.read/success":              1,
		"user.disable/success":           1,
		"user.enable/success":            1,
		"user.delete/success":            1,
		"user.invitation_resend/success": 1,
		"user.invitation_revoke/success": 1,
		"policy.update/success":          1,
		"user.password_change/failure":   1,
		"user.password_change/success":   1,
		"auth.logout/success":            1,
		"key.created/success":            3, // the users' keys (R28)
		"key.destroyed/success":          1, // the deleted user's key: crypto-shredding
	}
	if got := countActions(events); !reflect.DeepEqual(got, want) {
		t.Errorf("audit actions\n got %v\nwant %v", got, want)
	}
	hashes := map[string]bool{}
	for i, e := range events {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d, want %d: the sequence has a gap", i, e.Seq, i+1)
		}
		if len(e.Hash) != 64 || hashes[e.Hash] {
			t.Errorf("event %d hash %q, want 64 hex digits, unique", e.Seq, e.Hash)
		}
		hashes[e.Hash] = true
	}
	for _, e := range events {
		switch {
		case e.Action == "user.list" && e.Outcome == "denied" && e.Actor != "user:"+mem.ID:
			t.Errorf("denial recorded for actor %q, want user:%s", e.Actor, mem.ID)
		case e.Action == "user.read" && e.Target != "user:"+mem.ID:
			t.Errorf("user.read target %q, want user:%s", e.Target, mem.ID)
		case e.Seq == 1 && e.Actor != "operator:"+string(op.ID):
			t.Errorf("first event's actor %q, want operator:%s", e.Actor, op.ID)
		}
	}
	logJSON, _ := json.Marshal(events)
	mustNotContain(t, "audit log", string(logJSON), mgr.Email, mgr.Name, mem.Email, mem.Name, guest.Email, "+31201234567", orgName)
	mustNotContain(t, "audit log", string(logJSON), sec.passwords...)
	mustNotContain(t, "audit log", string(logJSON), sec.tokens...)

	// R25: filters and paging.
	query := func(q string) []auditEvent {
		sec.queries = append(sec.queries, q)
		r := a.call(t, "GET", orgPath(slug, "/audit?"+q), reader, nil)
		wantStatus(t, "GET /audit?"+q, r, 200)
		return decodeStrict[auditPage](t, r).Events
	}
	sameEvents := func(what string, got, want []auditEvent) {
		t.Helper()
		if len(got) == 0 && len(want) == 0 {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %d events %v, want %d %v", what, len(got), seqs(got), len(want), seqs(want))
		}
	}
	filter := func(keep func(auditEvent) bool) []auditEvent {
		var out []auditEvent
		for _, e := range events {
			if keep(e) {
				out = append(out, e)
			}
		}
		return out
	}
	invites := query("action=user.invite")
	sameEvents("action=user.invite", invites, filter(func(e auditEvent) bool { return e.Action == "user.invite" }))
	if len(invites) != 3 {
		t.Errorf("action=user.invite: %d events, want 3", len(invites))
	}
	sameEvents("action=auth.", query("action=auth."), filter(func(e auditEvent) bool { return strings.HasPrefix(e.Action, "auth.") }))
	sameEvents("actor=user:manager", query("actor=user:"+mgr.ID), filter(func(e auditEvent) bool { return e.Actor == "user:"+mgr.ID }))
	sameEvents("actor=anonymous", query("actor=anonymous"), filter(func(e auditEvent) bool { return e.Actor == "anonymous" }))
	since, until := query("since="+url.QueryEscape(cut.Format(time.RFC3339Nano))), query("until="+url.QueryEscape(cut.Format(time.RFC3339Nano)))
	sameEvents("since", since, filter(func(e auditEvent) bool { return !e.At.Before(cut) }))
	sameEvents("until", until, filter(func(e auditEvent) bool { return e.At.Before(cut) }))
	if len(since) == 0 || len(until) == 0 || len(since)+len(until) != len(events) {
		t.Errorf("since %d + until %d events, want both non-empty and %d together", len(since), len(until), len(events))
	}
	sameEvents("after=10", query("after=10"), events[10:])
	sameEvents("action and actor together", query("action=user.update&actor=user:"+mgr.ID),
		filter(func(e auditEvent) bool { return e.Action == "user.update" && e.Actor == "user:"+mgr.ID }))

	var paged []auditEvent
	after, pages := int64(0), 0
	for {
		q := fmt.Sprintf("limit=4&after=%d", after)
		sec.queries = append(sec.queries, q)
		r := a.call(t, "GET", orgPath(slug, "/audit?"+q), reader, nil)
		wantStatus(t, "page", r, 200)
		p := decodeStrict[auditPage](t, r)
		pages++
		if len(p.Events) > 4 {
			t.Fatalf("page of %d events, want at most 4", len(p.Events))
		}
		paged = append(paged, p.Events...)
		if p.Next == nil {
			break
		}
		if *p.Next != p.Events[len(p.Events)-1].Seq {
			t.Fatalf("next %d, want the page's last seq %d", *p.Next, p.Events[len(p.Events)-1].Seq)
		}
		after = *p.Next
		if pages > 100 {
			t.Fatal("paging does not end")
		}
	}
	sameEvents("paging with limit=4", paged, events)
	if wantPages := (len(events) + 3) / 4; pages != wantPages {
		t.Errorf("%d pages, want %d", pages, wantPages)
	}

	// R25: the export has every event as one JSON line, and is recorded.
	r = a.call(t, "GET", orgPath(slug, "/audit/export"), reader, nil)
	wantStatus(t, "export", r, 200)
	if ct := r.header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("export Content-Type %q, want application/x-ndjson", ct)
	}
	var exported []auditEvent
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e auditEvent
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		exported = append(exported, e)
	}
	// The export is recorded before its first line is sent, so it is its own last line.
	if n := len(exported); n == 0 || exported[n-1].Action != "audit.export" || exported[n-1].Actor != "user:"+mgr.ID {
		t.Fatalf("the export does not end with its own audit.export event: %+v", exported)
	}
	// R29: the list hides sealed personal values and the client address;
	// the export, itself recorded, shows them, or [erased] for the deleted.
	revealed, erased := 0, 0
	for i, e := range exported[:len(exported)-1] {
		// A user's own addresses are sealed under their key: erased with them.
		want := "127.0.0.1"
		if e.Actor == "user:"+mem.ID {
			want = "[erased]"
		}
		if e.Client != want && e.Actor != "cli" && e.Actor != "system" && !strings.HasPrefix(e.Action, "key.") {
			t.Errorf("export event %d (%s by %s): client %q, want %s", e.Seq, e.Action, e.Actor, e.Client, want)
		}
		if e.Action == "user.invite" {
			var listed, shown struct{ Email string }
			json.Unmarshal(events[i].Details, &listed)
			json.Unmarshal(e.Details, &shown)
			switch {
			case listed.Email != "[hidden]":
				t.Errorf("the list shows an invited address as %q, want [hidden]", listed.Email)
			case shown.Email == "[erased]":
				erased++
			case strings.Contains(shown.Email, "@"):
				revealed++
			default:
				t.Errorf("the export shows an invited address as %q", shown.Email)
			}
		}
		exported[i].Details, exported[i].Client = events[i].Details, ""
	}
	if revealed != 2 || erased != 1 {
		t.Errorf("export: %d invited addresses shown, %d erased; want 2 and 1 (the deleted user's)", revealed, erased)
	}
	sameEvents("export", exported[:len(exported)-1], events)
	tail := query(fmt.Sprintf("after=%d", len(events)))
	if len(tail) != 1 || tail[0].Action != "audit.export" || tail[0].Actor != "user:"+mgr.ID {
		t.Errorf("after the export the log ends with %+v, want one audit.export by the manager", tail)
	}

	// R25: the chain verifies.
	r = a.call(t, "GET", orgPath(slug, "/audit/verify"), reader, nil)
	wantStatus(t, "verify", r, 200)
	v := decodeStrict[verifyAnswer](t, r)
	if !v.OK || v.Checked != int64(len(events)+1) || v.FirstBrokenSeq != nil || !bytes.Contains(r.body, []byte(`"first_broken_seq":null`)) {
		t.Errorf("verify %s, want {ok:true, checked:%d, first_broken_seq:null}", r.body, len(events)+1)
	}
	return sec
}

func seqs(events []auditEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = fmt.Sprintf("%d:%s", e.Seq, e.Action)
	}
	return out
}

// checkSessionCookie checks the browser cookie of a new session: the
// __Host- prefix pins it to this host; scripts cannot read it.
func checkSessionCookie(t *testing.T, r response, token string) {
	t.Helper()
	cs := (&http.Response{Header: r.header}).Cookies()
	if len(cs) != 2 || cs[1].Name != "__Host-kluis_device" {
		t.Fatalf("login set %d cookies, want the session's and the device cookie (DESIGN §6)", len(cs))
	}
	c := cs[0]
	if c.Name != "__Host-kluis_session" || c.Value != token || !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" || c.SameSite != http.SameSiteLaxMode {
		t.Errorf("session cookie %+v, want __Host-kluis_session with the token, Secure, HttpOnly, Path=/, no Domain, SameSite=Lax", c)
	}
}

// checkRequestLog checks the server's log of a whole scenario: one "request"
// line per request with its id, method, route pattern, status and duration,
// and no token, password, address, name, phone, path or query anywhere.
func checkRequestLog(t *testing.T, a *testAPI, sec scenarioSecrets) {
	logs := a.logs.String()
	patterns := map[string]bool{"unmatched": true}
	for _, rt := range httpserver.Routes() {
		patterns[rt.Method+" "+rt.Pattern] = true
	}
	seen := map[string]bool{}
	lines := 0
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if rec["msg"] != "request" {
			if rec["level"] == "ERROR" {
				t.Errorf("unexpected error log line in a sound scenario: %s", line)
			}
			continue
		}
		lines++
		id, _ := rec["request_id"].(string)
		route, _ := rec["route"].(string)
		method, _ := rec["method"].(string)
		_, statusOK := rec["status"].(float64)
		_, durOK := rec["duration_ms"].(float64)
		if !requestIDPattern.MatchString(id) || method == "" || !statusOK || !durOK {
			t.Errorf("request log line %s, want request_id, method, route, status and duration_ms", line)
		}
		if !patterns[route] {
			t.Errorf("request log route %q is not a route pattern", route)
		}
		if !a.requestIDs[id] {
			t.Errorf("request log line with request_id %q that no answer carried", id)
		}
		seen[id] = true
	}
	if lines != a.requests || len(seen) != a.requests {
		t.Errorf("%d request log lines with %d distinct ids for %d requests, want one each", lines, len(seen), a.requests)
	}
	mustNotContain(t, "the log", logs, sec.tokens...)
	mustNotContain(t, "the log", logs, sec.links...)
	mustNotContain(t, "the log", logs, sec.passwords...)
	mustNotContain(t, "the log", logs, sec.personal...)
	mustNotContain(t, "the log", logs, sec.queries...)
	mustNotContain(t, "the log", logs, "@example.test", "?", "/api/v1/orgs/acme")
}

// TestLastActiveManagerStays refuses to demote, disable or delete the only
// active manager of an organisation, also when they do it to themselves;
// invited or disabled managers do not count; with a second active manager
// it works (R8).
func TestLastActiveManagerStays(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		method string
		body   any
		want   int
	}{
		{"demote", "PATCH", map[string]any{"role": "member"}, 200},
		{"disable", "PATCH", map[string]any{"disabled": true}, 200},
		{"delete", "DELETE", nil, 204},
	}
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					o := a.newOrg(t)
					m := o.Manager
					self := orgPath(o.Slug, "/users/"+m.ID)
					refused := func(why string) {
						t.Helper()
						before := a.me(t, o.Slug, m.Token)
						wantError(t, c.name+" "+why, a.call(t, c.method, self, m.Token, c.body), 409, "conflict")
						if after := a.me(t, o.Slug, m.Token); !reflect.DeepEqual(after, before) || after.Role != "manager" || after.Status != "active" {
							t.Errorf("after a refused %s the manager is %+v, want unchanged %+v", c.name, after, before)
						}
					}
					refused("as the only manager")

					a.invite(t, o, "manager")
					refused("with only an invited second manager")

					m2 := a.addUser(t, o, "manager")
					wantStatus(t, "disable the second manager", a.call(t, "PATCH", orgPath(o.Slug, "/users/"+m2.ID), m.Token, map[string]any{"disabled": true}), 200)
					refused("with only a disabled second manager")

					wantStatus(t, "enable the second manager", a.call(t, "PATCH", orgPath(o.Slug, "/users/"+m2.ID), m.Token, map[string]any{"disabled": false}), 200)
					m2.Token = a.login(t, o.Slug, m2.Email, m2.Password).Token
					wantStatus(t, c.name+" with a second active manager", a.call(t, c.method, self, m.Token, c.body), c.want)

					// Now the second is the last one.
					wantError(t, c.name+" of the new last manager", a.call(t, c.method, orgPath(o.Slug, "/users/"+m2.ID), m2.Token, c.body), 409, "conflict")
				})
			}
		})
	}
}
