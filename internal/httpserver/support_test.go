package httpserver_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/kluistest"
)

type supportGrantObject struct {
	ID         string     `json:"id"`
	Scope      string     `json:"scope"`
	Right      string     `json:"right"`
	Reason     string     `json:"reason"`
	Status     string     `json:"status"`
	GrantedBy  string     `json:"granted_by"`
	ApprovedBy string     `json:"approved_by"`
	Request    string     `json:"request"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	RevokedBy  string     `json:"revoked_by"`
	Uses       []struct {
		At       time.Time `json:"at"`
		Operator string    `json:"operator"`
		Method   string    `json:"method"`
		Route    string    `json:"route"`
		Object   string    `json:"object"`
	} `json:"uses"`
}

type supportList struct {
	Grants   []supportGrantObject `json:"grants"`
	Requests []struct {
		ID        string     `json:"id"`
		Operator  string     `json:"operator"`
		At        time.Time  `json:"at"`
		Scope     string     `json:"scope"`
		Right     string     `json:"right"`
		Reason    string     `json:"reason"`
		Status    string     `json:"status"`
		DecidedBy string     `json:"decided_by"`
		DecidedAt *time.Time `json:"decided_at"`
		Grant     string     `json:"grant"`
	} `json:"requests"`
}

// supportCast is an organisation with a manager, a second manager, a
// member who owns a project (with a file and a version) and a second
// project, and the operator's support and admin staff.
type supportCast struct {
	org              orgFixture
	manager2, member account
	project, other   string // project paths
	projectID        string
	support, admin   account
	supportID        string
}

func newSupportCast(tb testing.TB, a *testAPI, access string) supportCast {
	tb.Helper()
	c := supportCast{org: a.newOrg(tb)}
	pol := defaultPolicy
	pol.ProjectAccess = access
	wantStatus(tb, "policy", a.call(tb, "PUT", orgPath(c.org.Slug, "/policy"), c.org.Manager.Token, pol), 200)
	c.manager2 = a.addUser(tb, c.org, "manager")
	c.member = a.addUser(tb, c.org, "member")
	for i, p := range []*string{&c.project, &c.other} {
		r := a.call(tb, "POST", orgPath(c.org.Slug, "/projects"), c.member.Token, map[string]string{"name": "Dossier " + kluistest.Name("p")})
		wantStatus(tb, "create project", r, 201)
		id := decodeStrict[projectAnswer](tb, r).Project.ID
		*p = orgPath(c.org.Slug, "/projects/"+id)
		if i == 0 {
			c.projectID = id
		}
		wantStatus(tb, "a file", a.do(tb, request{method: "PUT", path: *p + "/files/docs/a.txt", bearer: c.member.Token, body: []byte("a"), contentType: "text/plain"}), 201)
		wantStatus(tb, "version 1", a.call(tb, "POST", *p+"/versions", c.member.Token, map[string]string{"message": "one"}), 201)
	}
	op, acc := a.operatorOf(tb, kluis.OperatorSupport)
	c.support, c.supportID = acc, string(op.ID)
	_, c.admin = a.operatorOf(tb, kluis.OperatorAdmin)
	return c
}

// fill puts the cast's values in a route's pattern.
func (c supportCast) fill(pattern string) string {
	id := c.member.ID
	if strings.Contains(pattern, "/projects/{id}") {
		id = c.projectID
	}
	return strings.NewReplacer("{org}", c.org.Slug, "{id}", id, "{path...}", "docs/a.txt", "{n}", "1",
		"{subject}", "user:"+c.manager2.ID, "{user}", c.member.ID).Replace(pattern)
}

func (c supportCast) grant(tb testing.TB, a *testAPI, token, scope, right string, d time.Duration) supportGrantObject {
	tb.Helper()
	r := a.call(tb, "POST", orgPath(c.org.Slug, "/support-grants"), token, map[string]any{
		"scope": scope, "right": right, "reason": "ticket 4711", "expires_at": a.env.Clock.Now().Add(d)})
	wantStatus(tb, "grant support "+scope+" "+right, r, 201)
	return decodeStrict[struct {
		Grant supportGrantObject `json:"grant"`
	}](tb, r).Grant
}

func (c supportCast) session(tb testing.TB, a *testAPI, grant string) string {
	tb.Helper()
	r := a.call(tb, "POST", "/api/v1/operator/orgs/"+c.org.Slug+"/support-session", c.support.Token, map[string]string{"grant": grant})
	wantStatus(tb, "open support session", r, 200)
	s := decodeStrict[struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}](tb, r)
	if !strings.HasPrefix(s.Token, kluis.SupportTokenPrefix) {
		tb.Fatalf("support session token %q lacks its prefix", s.Token)
	}
	return s.Token
}

// personOnly are the organisation's routes of a person (their account, the
// customer's own decisions about support and exports, the inbox and the
// backup overview): a support session is refused there even with an
// organisation grant.
func personOnly(pattern string) bool {
	return strings.Contains(pattern, "/me") || strings.Contains(pattern, "/support-") || strings.HasSuffix(pattern, "/audit/export") ||
		strings.Contains(pattern, "/inbox") || strings.HasSuffix(pattern, "/backups") ||
		strings.Contains(pattern, "/privacy-") // the register of data-subject requests (issue 15)
}

// TestSupportWithoutGrantFindsNothing: an operator's credential, of any
// role, is not found on every organisation route (R22), and so is a
// support session's token once its grant is revoked.
func TestSupportWithoutGrantFindsNothing(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			c := newSupportCast(t, a, "managers")
			g := c.grant(t, a, c.org.Manager.Token, "org", "view", 48*time.Hour)
			token := c.session(t, a, g.ID)
			wantStatus(t, "works", a.call(t, "GET", orgPath(c.org.Slug, "/users"), token, nil), 200)
			wantStatus(t, "revoke", a.call(t, "DELETE", orgPath(c.org.Slug, "/support-grants/"+g.ID), c.org.Manager.Token, nil), 204)
			n := 0
			for _, rt := range httpserver.Routes() {
				if rt.Realm != "org" && rt.Realm != "org-public" {
					continue
				}
				for who, cred := range map[string]string{"support's own session": c.support.Token, "admin's own session": c.admin.Token, "revoked support session": token} {
					if rt.Pattern == "/api/v1/orgs/{org}/licence" && cred != token {
						continue // the licence is the operator's too (TestLicenceAPI)
					}
					r := a.call(t, rt.Method, c.fill(rt.Pattern), cred, map[string]string{})
					wantError(t, rt.Method+" "+rt.Pattern+" with "+who, r, 404, "not_found")
					n++
				}
			}
			if n < 150 {
				t.Fatalf("walked %d requests, want the whole route table", n)
			}
		})
	}
}

// TestSupportOrgViewGrant: with an organisation grant of right view,
// support reads what a manager reads and changes nothing; never a person's
// routes; every request is recorded in the organisation's chain as
// support:ID and listed with the grant (R22, R23, R24).
func TestSupportOrgViewGrant(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			c := newSupportCast(t, a, "managers")
			// Support asks; a manager approves with an end.
			r := a.call(t, "POST", "/api/v1/operator/orgs/"+c.org.Slug+"/support-requests", c.support.Token,
				map[string]string{"scope": "org", "right": "view", "reason": "customer cannot invite"})
			wantStatus(t, "request", r, 201)
			req := decodeStrict[struct {
				Request struct {
					ID       string    `json:"id"`
					Operator string    `json:"operator"`
					Scope    string    `json:"scope"`
					Right    string    `json:"right"`
					Reason   string    `json:"reason"`
					At       time.Time `json:"at"`
					Status   string    `json:"status"`
				} `json:"request"`
			}](t, r).Request.ID
			wantError(t, "admin cannot ask", a.call(t, "POST", "/api/v1/operator/orgs/"+c.org.Slug+"/support-requests", c.admin.Token,
				map[string]string{"scope": "org", "right": "view", "reason": "x"}), 403, "forbidden")
			wantError(t, "member cannot approve", a.call(t, "POST", orgPath(c.org.Slug, "/support-requests/"+req+"/approve"), c.member.Token,
				map[string]any{"expires_at": a.env.Clock.Now().Add(time.Hour)}), 403, "forbidden")
			wantInvalid(t, "15 days", a.call(t, "POST", orgPath(c.org.Slug, "/support-requests/"+req+"/approve"), c.org.Manager.Token,
				map[string]any{"expires_at": a.env.Clock.Now().Add(15 * 24 * time.Hour)}), "expires_at")
			r = a.call(t, "POST", orgPath(c.org.Slug, "/support-requests/"+req+"/approve"), c.org.Manager.Token,
				map[string]any{"expires_at": a.env.Clock.Now().Add(3 * 24 * time.Hour)})
			wantStatus(t, "approve", r, 201)
			g := decodeStrict[struct {
				Grant supportGrantObject `json:"grant"`
			}](t, r).Grant
			if g.Status != "active" || g.Request != req || g.Right != "view" || g.Scope != "org" {
				t.Fatalf("grant from the request: %+v", g)
			}
			wantError(t, "decided twice", a.call(t, "POST", orgPath(c.org.Slug, "/support-requests/"+req+"/refuse"), c.org.Manager.Token, nil), 409, "conflict")
			token := c.session(t, a, g.ID)

			walked := 0
			for _, rt := range httpserver.Routes() {
				if rt.Realm != "org" {
					continue
				}
				path := c.fill(rt.Pattern)
				var body any = map[string]string{}
				if rt.Method == "PUT" && strings.Contains(rt.Pattern, "/files/") {
					body = []byte("x")
				}
				r := a.do(t, request{method: rt.Method, path: path, bearer: token, body: body, contentType: map[bool]string{true: "text/plain", false: ""}[rt.Method == "PUT" && strings.Contains(rt.Pattern, "/files/")]})
				what := rt.Method + " " + rt.Pattern
				switch {
				case rt.Method != "GET" || personOnly(rt.Pattern) || rt.Pattern == "/api/v1/orgs/{org}/export" || rt.Pattern == "/api/v1/orgs/{org}/users/{id}/export":
					wantError(t, what, r, 403, "forbidden")
				default:
					wantStatus(t, what, r, 200)
				}
				walked++
			}
			if walked < 60 {
				t.Fatalf("walked %d routes", walked)
			}
			// Nothing changed: the member's file is as it was.
			if r := a.call(t, "GET", c.project+"/files/docs/a.txt", c.member.Token, nil); string(r.body) != "a" {
				t.Fatalf("the file changed under a view grant: %q", r.body)
			}

			// The managers see every use in their log and on the grant.
			var uses int
			for _, e := range a.auditLog(t, c.org.Slug, c.org.Manager.Token) {
				if e.Actor == "support:"+c.supportID && e.Action == "support.access" {
					uses++
					var d map[string]any
					json.Unmarshal(e.Details, &d)
					if d["grant"] != g.ID || d["route"] == "" || e.Target == "" {
						t.Fatalf("support.access event without grant, route or object: %+v", e)
					}
				}
			}
			if uses != walked {
				t.Fatalf("%d support.access events, want one per request (%d)", uses, walked)
			}
			list := decodeStrict[supportList](t, a.call(t, "GET", orgPath(c.org.Slug, "/support-grants"), c.org.Manager.Token, nil))
			if len(list.Grants) != 1 || len(list.Grants[0].Uses) != walked || list.Grants[0].Reason != "customer cannot invite" {
				t.Fatalf("support page: %d grants, %d uses, reason %q; want 1, %d, the request's", len(list.Grants), len(list.Grants[0].Uses), list.Grants[0].Reason, walked)
			}
			if u := list.Grants[0].Uses[0]; u.Operator != "support:"+c.supportID || !strings.HasPrefix(u.Route, u.Method+" /api/v1/orgs/{org}/") {
				t.Fatalf("a use: %+v", u)
			}
		})
	}
}

// TestSupportProjectGrantAndEnd: a project's owner lets support edit that
// project only; revocation and expiry (moved clock) end the session at the
// next request; under the "owners" policy a manager cannot give support
// the content; four eyes hold a grant until a second manager approves.
func TestSupportProjectGrantAndEnd(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			c := newSupportCast(t, a, "owners")
			slug := c.org.Slug

			// Under "owners" a manager holds no right on the project: the
			// attempt to give support its content is refused.
			r := a.call(t, "POST", orgPath(slug, "/support-grants"), c.org.Manager.Token, map[string]any{
				"scope": "project:" + c.projectID, "right": "view", "reason": "r", "expires_at": a.env.Clock.Now().Add(time.Hour)})
			wantError(t, "manager grants project content under owners", r, 404, "not_found")
			// An organisation grant under "owners" shows no project either.
			og := c.grant(t, a, c.org.Manager.Token, "org", "edit", 2*time.Hour)
			ot := c.session(t, a, og.ID)
			if l := decodeStrict[projectsAnswer](t, a.call(t, "GET", orgPath(slug, "/projects"), ot, nil)); len(l.Projects) != 0 {
				t.Fatalf("support sees %d projects through an organisation grant under owners", len(l.Projects))
			}
			wantError(t, "project under owners", a.call(t, "GET", c.project, ot, nil), 404, "not_found")
			// edit changes what a manager changes, but never roles or people's deletion.
			wantStatus(t, "rename a member", a.call(t, "PATCH", orgPath(slug, "/users/"+c.member.ID), ot, map[string]string{"name": "Renamed By Support"}), 200)
			wantError(t, "make a manager", a.call(t, "PATCH", orgPath(slug, "/users/"+c.member.ID), ot, map[string]string{"role": "manager"}), 403, "forbidden")
			wantError(t, "delete a person", a.call(t, "DELETE", orgPath(slug, "/users/"+c.member.ID), ot, nil), 403, "forbidden")
			wantError(t, "policy", a.call(t, "PUT", orgPath(slug, "/policy"), ot, defaultPolicy), 403, "forbidden")

			// Limits of a grant: at most 14 days, a reason, a fresh authentication.
			wantInvalid(t, "15 days", a.call(t, "POST", orgPath(slug, "/support-grants"), c.member.Token, map[string]any{
				"scope": "project:" + c.projectID, "right": "edit", "reason": "r", "expires_at": a.env.Clock.Now().Add(15 * 24 * time.Hour)}), "expires_at")

			// The owner lets support edit the project.
			pg := c.grant(t, a, c.member.Token, "project:"+c.projectID, "edit", 48*time.Hour)
			pt := c.session(t, a, pg.ID)
			wantStatus(t, "read the project", a.call(t, "GET", c.project, pt, nil), 200)
			wantStatus(t, "change a file", a.do(t, request{method: "PUT", path: c.project + "/files/docs/b.txt", bearer: pt, body: []byte("b"), contentType: "text/plain"}), 201)
			wantError(t, "the other project", a.call(t, "GET", c.other, pt, nil), 404, "not_found")
			wantError(t, "grant on the project", a.call(t, "PUT", c.project+"/grants/user:"+c.manager2.ID, pt, map[string]string{"relation": "viewer"}), 403, "forbidden")
			wantError(t, "delete the project", a.call(t, "DELETE", c.project, pt, nil), 403, "forbidden")
			wantError(t, "people", a.call(t, "GET", orgPath(slug, "/users"), pt, nil), 403, "forbidden")
			if l := decodeStrict[projectsAnswer](t, a.call(t, "GET", orgPath(slug, "/projects"), pt, nil)); len(l.Projects) != 1 || l.Projects[0].ID != c.projectID {
				t.Fatalf("support's projects: %+v, want the granted one", l.Projects)
			}
			// The change is support's, in the organisation's chain.
			found := false
			for _, e := range a.auditLog(t, slug, c.org.Manager.Token) {
				found = found || (e.Action == "file.put" && e.Actor == "support:"+c.supportID)
			}
			if !found {
				t.Fatal("no file.put by support:ID in the organisation's chain")
			}
			// The granter revokes: the next request is not found.
			wantStatus(t, "granter revokes", a.call(t, "DELETE", orgPath(slug, "/support-grants/"+pg.ID), c.member.Token, nil), 204)
			wantError(t, "after revocation", a.call(t, "GET", c.project, pt, nil), 404, "not_found")

			// Four eyes: a grant waits for a second manager.
			pol := defaultPolicy
			pol.ProjectAccess, pol.SupportApprovals = "owners", 2
			pol.SessionIdleMinutes, pol.SessionMaxHours = 1440, 720 // so that only the grants' ends count below
			wantStatus(t, "four eyes", a.call(t, "PUT", orgPath(slug, "/policy"), c.org.Manager.Token, pol), 200)
			fg := c.grant(t, a, c.org.Manager.Token, "org", "view", 3*time.Hour)
			if fg.Status != "pending" {
				t.Fatalf("grant under four eyes is %q, want pending", fg.Status)
			}
			wantError(t, "session on a pending grant", a.call(t, "POST", "/api/v1/operator/orgs/"+slug+"/support-session", c.support.Token, map[string]string{"grant": fg.ID}), 404, "not_found")
			wantError(t, "granter approves own", a.call(t, "POST", orgPath(slug, "/support-grants/"+fg.ID+"/approve"), c.org.Manager.Token, nil), 409, "conflict")
			wantStatus(t, "second manager approves", a.call(t, "POST", orgPath(slug, "/support-grants/"+fg.ID+"/approve"), c.manager2.Token, nil), 200)
			ft := c.session(t, a, fg.ID)
			wantStatus(t, "after approval", a.call(t, "GET", orgPath(slug, "/users"), ft, nil), 200)

			// Expiry: past the grant's end, not found at once. The
			// organisation grant (ot) ends first, the four-eyed one after.
			a.env.Clock.Advance(2*time.Hour + time.Minute)
			wantError(t, "org grant after expiry", a.call(t, "GET", orgPath(slug, "/users"), ot, nil), 404, "not_found")
			wantStatus(t, "before expiry", a.call(t, "GET", orgPath(slug, "/users"), ft, nil), 200)
			a.env.Clock.Advance(time.Hour)
			wantError(t, "after expiry", a.call(t, "GET", orgPath(slug, "/users"), ft, nil), 404, "not_found")
		})
	}
}

// TestProjectOwnerLetsSupportInFromTheRightsPage: the rights page's form
// gives support access to that project alone (R22); a bad end is shown
// on the page and nothing is granted.
func TestProjectOwnerLetsSupportInFromTheRightsPage(t *testing.T) {
	a := newTestAPI(t, "sqlite")
	c := newSupportCast(t, a, "owners")
	owner := signInPage(t, a, c.org.Slug, c.member)
	rights := "/o/" + c.org.Slug + "/projects/" + c.projectID + "/rights"
	wantPage(t, "too long", owner.post(t, rights[:len(rights)-len("/rights")]+"/support", url.Values{"right": {"edit"}, "reason": {"ticket 9"}, "days": {"15"}}), 400, "")
	wantPage(t, "let support in", owner.post(t, rights[:len(rights)-len("/rights")]+"/support", url.Values{"right": {"edit"}, "reason": {"ticket 9"}, "days": {"2"}}), 303, rights)
	list := decodeStrict[supportList](t, a.call(t, "GET", orgPath(c.org.Slug, "/support-grants"), c.org.Manager.Token, nil))
	if len(list.Grants) != 1 || list.Grants[0].Scope != "project:"+c.projectID || list.Grants[0].Right != "edit" || list.Grants[0].GrantedBy != "user:"+c.member.ID {
		t.Fatalf("grants after the rights page's form: %+v", list.Grants)
	}
	// A member without the grant right on the project is refused.
	other := a.addUser(t, c.org, "member")
	wantPage(t, "not an owner", signInPage(t, a, c.org.Slug, other).post(t, rights[:len(rights)-len("/rights")]+"/support", url.Values{"right": {"view"}, "reason": {"x"}, "days": {"1"}}), 404, "")
}

// TestSupportWorkIsAttributedToSupport: a file and a version made through a
// support session name support:ID as their author (R11, R22), never
// nobody, and the project page says "support".
func TestSupportWorkIsAttributedToSupport(t *testing.T) {
	a := newTestAPI(t, "sqlite")
	c := newSupportCast(t, a, "managers")
	g := c.grant(t, a, c.member.Token, "project:"+c.projectID, "edit", time.Hour)
	token := c.session(t, a, g.ID)
	wantStatus(t, "support writes", a.do(t, request{method: "PUT", path: c.project + "/files/fix.txt", bearer: token, body: []byte("fixed"), contentType: "text/plain"}), 201)
	r := a.call(t, "POST", c.project+"/versions", token, map[string]string{"message": "fixed by support"})
	wantStatus(t, "support saves a version", r, 201)
	if !strings.Contains(string(r.body), `"author":"support:`+c.supportID+`"`) {
		t.Fatalf("version by support: %s, want author support:%s", r.body, c.supportID)
	}
	tree := a.call(t, "GET", c.project+"/tree", c.member.Token, nil)
	if !strings.Contains(string(tree.body), `"support:`+c.supportID+`"`) {
		t.Fatalf("tree after support's change: %s, want the file modified by support:%s", tree.body, c.supportID)
	}
	b := signInPage(t, a, c.org.Slug, c.member)
	if pg := b.get(t, "/o/"+c.org.Slug+"/projects/"+c.projectID+"/versions"); !strings.Contains(pg.body, "Support (with your consent)") {
		t.Fatalf("the history does not name support: %s", excerpt(pg.body))
	}
}
