package httpserver_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/kluistest"
)

type projectObject struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	CreatedAt string   `json:"created_at"`
	Rights    []string `json:"rights"`
	DeletedAt string   `json:"deleted_at,omitempty"`
	PurgeAt   string   `json:"purge_at,omitempty"`
}

type projectAnswer struct {
	Project projectObject `json:"project"`
}

type projectsAnswer struct {
	Projects []projectObject `json:"projects"`
	Next     string          `json:"next,omitempty"`
}

type groupObject struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	CreatedAt string   `json:"created_at"`
	Members   []string `json:"members"`
}

type groupAnswer struct {
	Group groupObject `json:"group"`
}

type grantsAnswer struct {
	Grants []struct {
		Subject  string `json:"subject"`
		Relation string `json:"relation"`
	} `json:"grants"`
}

// rightsCast is an organisation with someone in every relation to its
// projects, and a manager of another organisation.
type rightsCast struct {
	org                           orgFixture
	owner, editor, viewer, runner account
	grouped, stranger, outsider   account // grouped: in a group that edits; outsider: another organisation's manager
	group                         string
}

// accounts in the order of the table's columns.
func (c rightsCast) who() []struct {
	name string
	acc  account
} {
	return []struct {
		name string
		acc  account
	}{
		{"owner", c.owner}, {"editor", c.editor}, {"viewer", c.viewer}, {"runner", c.runner},
		{"group editor", c.grouped}, {"member without grant", c.stranger}, {"manager", c.org.Manager},
		{"other organisation", c.outsider}, {"anonymous", account{}},
	}
}

func newRightsCast(tb testing.TB, a *testAPI, access string) rightsCast {
	tb.Helper()
	c := rightsCast{org: a.newOrg(tb)}
	pol := defaultPolicy
	pol.ProjectAccess = access
	wantStatus(tb, "policy", a.call(tb, "PUT", orgPath(c.org.Slug, "/policy"), c.org.Manager.Token, pol), 200)
	c.owner = a.addUser(tb, c.org, "member")
	c.editor = a.addUser(tb, c.org, "member")
	c.viewer = a.addUser(tb, c.org, "member")
	c.runner = a.addUser(tb, c.org, "member")
	c.grouped = a.addUser(tb, c.org, "member")
	c.stranger = a.addUser(tb, c.org, "member")
	c.outsider = a.newOrg(tb).Manager
	r := a.call(tb, "POST", orgPath(c.org.Slug, "/groups"), c.org.Manager.Token, map[string]string{"name": "Editors"})
	wantStatus(tb, "create group", r, 201)
	c.group = decodeStrict[groupAnswer](tb, r).Group.ID
	wantStatus(tb, "join group", a.call(tb, "PUT", orgPath(c.org.Slug, "/groups/"+c.group+"/members/"+c.grouped.ID), c.org.Manager.Token, nil), 204)
	return c
}

// newProject makes a project owned by the cast's owner with every other
// relation granted; it returns the project's path.
func (c rightsCast) newProject(tb testing.TB, a *testAPI) string {
	tb.Helper()
	r := a.call(tb, "POST", orgPath(c.org.Slug, "/projects"), c.owner.Token, map[string]string{"name": "Client file " + kluistest.Name("p")})
	wantStatus(tb, "create project", r, 201)
	p := orgPath(c.org.Slug, "/projects/"+decodeStrict[projectAnswer](tb, r).Project.ID)
	for subject, rel := range map[string]string{
		"user:" + c.editor.ID: "editor", "user:" + c.viewer.ID: "viewer", "user:" + c.runner.ID: "runner", "group:" + c.group: "editor",
	} {
		wantStatus(tb, "grant "+rel, a.call(tb, "PUT", p+"/grants/"+subject, c.owner.Token, map[string]string{"relation": rel}), 204)
	}
	wantStatus(tb, "a file", a.do(tb, request{method: "PUT", path: p + "/files/docs/a.txt", bearer: c.owner.Token, body: []byte("a"), contentType: "text/plain"}), 201)
	wantStatus(tb, "version 1", a.call(tb, "POST", p+"/versions", c.owner.Token, map[string]string{"message": "one"}), 201)
	return p
}

// newGroup makes a group the cast's grouped member is in, holding no grant.
func (c rightsCast) newGroup(tb testing.TB, a *testAPI) string {
	tb.Helper()
	r := a.call(tb, "POST", orgPath(c.org.Slug, "/groups"), c.org.Manager.Token, map[string]string{"name": "Temporary"})
	wantStatus(tb, "group", r, 201)
	id := decodeStrict[groupAnswer](tb, r).Group.ID
	wantStatus(tb, "member", a.call(tb, "PUT", orgPath(c.org.Slug, "/groups/"+id+"/members/"+c.grouped.ID), c.org.Manager.Token, nil), 204)
	return id
}

// TestProjectRightsTable is the rights engine's table (R2, R6, R7): every
// route of projects, files, versions, grants, groups and the trash, for
// each relation, a member without grant, the manager under both policies,
// another organisation's manager and no one; the exact status for each. A
// route of the table that the rows leave out fails the test.
func TestProjectRightsTable(t *testing.T) {
	// Columns: owner, editor, viewer, runner, group editor, member without
	// grant, manager, other organisation, anonymous.
	type row struct {
		route   string // the route table's method and pattern
		path    string // after the project's path ({p}), the group's ({g}) or the organisation's
		body    any
		trashed bool // the project is in the trash first
		want    [9]int
		// owners is the manager's status under the "owners" policy; the
		// other columns are the same under both.
		owners int
	}
	const (
		p = "/api/v1/orgs/{org}/projects/{id}"
		g = "/api/v1/orgs/{org}/groups/{id}"
	)
	view := [9]int{200, 200, 200, 200, 200, 404, 200, 404, 401}
	edit := func(ok int) [9]int { return [9]int{ok, ok, 403, 403, ok, 404, ok, 404, 401} }
	own := func(ok int) [9]int { return [9]int{ok, 403, 403, 403, 403, 404, ok, 404, 401} }
	hidden := [9]int{404, 404, 404, 404, 404, 404, 404, 404, 401}
	member := func(ok int) [9]int { return [9]int{ok, ok, ok, ok, ok, ok, ok, 404, 401} }
	manager := func(ok int) [9]int { return [9]int{403, 403, 403, 403, 403, 403, ok, 404, 401} }
	rename := map[string]string{"name": "Renamed"}
	file := []byte("new content")
	rows := []row{
		{"POST /api/v1/orgs/{org}/projects", "/projects", rename, false, member(201), 201},
		{"GET /api/v1/orgs/{org}/projects", "/projects", nil, false, member(200), 200},
		{"GET /api/v1/orgs/{org}/trash", "/trash", nil, false, member(200), 200},
		{"GET " + p, "{p}", nil, false, view, 404},
		{"PATCH " + p, "{p}", rename, false, own(200), 404},
		{"DELETE " + p, "{p}", nil, false, own(204), 404},
		{"POST " + p + "/undelete", "{p}/undelete", nil, true, own(200), 404},
		{"GET " + p + "/grants", "{p}/grants", nil, false, view, 404},
		{"PUT " + p + "/grants/{subject}", "{p}/grants/STRANGER", map[string]string{"relation": "viewer"}, false, own(204), 404},
		{"DELETE " + p + "/grants/{subject}", "{p}/grants/VIEWER", nil, false, own(204), 404},
		{"PUT " + p + "/files/{path...}", "{p}/files/docs/new.txt", file, false, edit(201), 404},
		{"GET " + p + "/files/{path...}", "{p}/files/docs/a.txt", nil, false, view, 404},
		{"DELETE " + p + "/files/{path...}", "{p}/files/docs/a.txt", nil, false, edit(204), 404},
		{"GET " + p + "/tree", "{p}/tree", nil, false, view, 404},
		{"POST " + p + "/versions", "{p}/versions", map[string]string{"message": "m"}, false, edit(201), 404},
		{"GET " + p + "/versions", "{p}/versions", nil, false, view, 404},
		{"GET " + p + "/versions/{n}/tree", "{p}/versions/1/tree", nil, false, view, 404},
		{"GET " + p + "/versions/{n}/files/{path...}", "{p}/versions/1/files/docs/a.txt", nil, false, view, 404},
		{"GET " + p + "/versions/{n}/diff", "{p}/versions/1/diff", nil, false, view, 404},
		{"GET " + p + "/versions/{n}/zip", "{p}/versions/1/zip", nil, false, view, 404},
		{"POST " + p + "/versions/{n}/restore", "{p}/versions/1/restore", nil, false, edit(201), 404},
		// Starting and stopping (R13): the start right, an owner's or a runner's.
		{"POST " + p + "/start", "{p}/start", nil, false, [9]int{201, 403, 403, 201, 403, 404, 201, 404, 401}, 404},
		{"POST " + p + "/stop", "{p}/stop", nil, false, [9]int{204, 403, 403, 204, 403, 404, 204, 404, 401}, 404},
		{"POST /api/v1/orgs/{org}/groups", "/groups", map[string]string{"name": "Team"}, false, manager(201), 201},
		{"GET /api/v1/orgs/{org}/groups", "/groups", nil, false, manager(200), 200},
		{"DELETE " + g, "{g}", nil, false, manager(204), 204},
		{"PUT " + g + "/members/{user}", "{g}/members/STRANGER_ID", nil, false, manager(204), 204},
		{"DELETE " + g + "/members/{user}", "{g}/members/GROUPED_ID", nil, false, manager(204), 204},
		// In the trash a project is not there, but for undeleting it.
		{"", "{p}", nil, true, hidden, 404},
		{"", "{p}", rename, true, hidden, 404},
		{"", "{p}/grants", nil, true, hidden, 404},
		{"", "{p}/files/docs/a.txt", nil, true, hidden, 404},
		{"", "{p}/versions", map[string]string{"message": "m"}, true, hidden, 404},
	}
	covered := map[string]bool{}
	for _, rw := range rows {
		covered[rw.route] = true
	}
	for _, rt := range httpserver.Routes() {
		key := rt.Method + " " + rt.Pattern
		if rt.Realm == "org" && (strings.Contains(rt.Pattern, "/projects") || strings.Contains(rt.Pattern, "/groups") || strings.HasSuffix(rt.Pattern, "/trash")) && !covered[key] {
			t.Errorf("the rights table has no row for %s", key)
		}
	}
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			for _, access := range []string{"managers", "owners"} {
				t.Run(access, func(t *testing.T) {
					c := newRightsCast(t, a, access)
					for _, rw := range rows {
						want := rw.want
						if access == "owners" {
							want[6] = rw.owners
						}
						method, _, _ := strings.Cut(rw.route, " ")
						if rw.route == "" {
							method = "GET"
							if rw.body != nil {
								method = "PATCH"
								if strings.HasSuffix(rw.path, "/versions") {
									method = "POST"
								}
							}
						}
						for i, w := range c.who() {
							path := rw.path
							switch {
							case strings.HasPrefix(path, "{p}"):
								pp := c.newProject(t, a)
								if rw.trashed {
									wantStatus(t, "to the trash", a.call(t, "DELETE", pp, c.owner.Token, nil), 204)
								}
								path = pp + strings.TrimPrefix(path, "{p}")
							case strings.HasPrefix(path, "{g}"):
								path = orgPath(c.org.Slug, "/groups/"+c.newGroup(t, a)) + strings.TrimPrefix(path, "{g}")
							default:
								path = orgPath(c.org.Slug, path)
							}
							path = strings.NewReplacer("STRANGER_ID", c.stranger.ID, "GROUPED_ID", c.grouped.ID,
								"STRANGER", "user:"+c.stranger.ID, "VIEWER", "user:"+c.viewer.ID).Replace(path)
							var r response
							if b, ok := rw.body.([]byte); ok {
								r = a.do(t, request{method: method, path: path, bearer: w.acc.Token, body: b, contentType: "application/octet-stream"})
							} else {
								r = a.call(t, method, path, w.acc.Token, rw.body)
							}
							if r.status != want[i] {
								t.Errorf("%s %s (trashed %v) as %s: got %v, want %d", method, rw.path, rw.trashed, w.name, r, want[i])
							}
						}
					}
				})
			}
		})
	}
}

// TestCoachAndClients is the scenario of R7 under the "owners" policy: a
// coach owns one project per client and shares it with that client alone;
// other coaches, other clients and the manager see nothing of it, and the
// manager cannot grant themselves in, directly or through a group.
func TestCoachAndClients(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mgr := o.Manager.Token
			pol := defaultPolicy
			pol.ProjectAccess = "owners"
			wantStatus(t, "owners policy", a.call(t, "PUT", orgPath(o.Slug, "/policy"), mgr, pol), 200)
			coach, otherCoach := a.addUser(t, o, "member"), a.addUser(t, o, "member")
			client, otherClient := a.addUser(t, o, "member"), a.addUser(t, o, "member")

			r := a.call(t, "POST", orgPath(o.Slug, "/projects"), coach.Token, map[string]string{"name": "Dossier " + client.Name})
			wantStatus(t, "coach creates the client's file", r, 201)
			p := orgPath(o.Slug, "/projects/"+decodeStrict[projectAnswer](t, r).Project.ID)
			wantStatus(t, "coach shares it with the client", a.call(t, "PUT", p+"/grants/user:"+client.ID, coach.Token, map[string]string{"relation": "editor"}), 204)

			// The client sees it, with the rights of an editor.
			got := decodeStrict[projectAnswer](t, a.call(t, "GET", p, client.Token, nil)).Project
			if !slices.Equal(got.Rights, []string{"view", "edit"}) {
				t.Errorf("client's rights %v, want [view edit]", got.Rights)
			}
			// Nobody else sees anything of it: not found, and not listed.
			for _, who := range []account{otherCoach, otherClient, o.Manager} {
				wantError(t, "GET the file", a.call(t, "GET", p, who.Token, nil), 404, "not_found")
				wantError(t, "its grants", a.call(t, "GET", p+"/grants", who.Token, nil), 404, "not_found")
				list := decodeStrict[projectsAnswer](t, a.call(t, "GET", orgPath(o.Slug, "/projects"), who.Token, nil))
				if len(list.Projects) != 0 {
					t.Errorf("someone outside the file lists %v, want nothing", list.Projects)
				}
				trash := a.call(t, "GET", orgPath(o.Slug, "/trash"), who.Token, nil)
				mustNotContain(t, "trash", string(trash.body), client.Name)
			}
			// The manager cannot grant themselves in, directly…
			wantError(t, "manager grants themselves", a.call(t, "PUT", p+"/grants/user:"+o.Manager.ID, mgr, map[string]string{"relation": "viewer"}), 404, "not_found")
			// …nor by joining a group that holds a grant.
			r = a.call(t, "POST", orgPath(o.Slug, "/groups"), mgr, map[string]string{"name": "Coaching"})
			wantStatus(t, "group", r, 201)
			g := decodeStrict[groupAnswer](t, r).Group.ID
			wantStatus(t, "the coach is in it", a.call(t, "PUT", orgPath(o.Slug, "/groups/"+g+"/members/"+otherCoach.ID), mgr, nil), 204)
			wantStatus(t, "coach grants the group", a.call(t, "PUT", p+"/grants/group:"+g, coach.Token, map[string]string{"relation": "viewer"}), 204)
			wantError(t, "manager joins the group", a.call(t, "PUT", orgPath(o.Slug, "/groups/"+g+"/members/"+o.Manager.ID), mgr, nil), 403, "forbidden")
			wantError(t, "still nothing for the manager", a.call(t, "GET", p, mgr, nil), 404, "not_found")
			// A group without grants the manager may join.
			r = a.call(t, "POST", orgPath(o.Slug, "/groups"), mgr, map[string]string{"name": "Managers"})
			g2 := decodeStrict[groupAnswer](t, r).Group.ID
			wantStatus(t, "manager joins a group without grants", a.call(t, "PUT", orgPath(o.Slug, "/groups/"+g2+"/members/"+o.Manager.ID), mgr, nil), 204)

			// The coach may not remove themselves as the last owner.
			wantError(t, "last owner", a.call(t, "DELETE", p+"/grants/user:"+coach.ID, coach.Token, nil), 409, "conflict")
			wantError(t, "last owner downgraded", a.call(t, "PUT", p+"/grants/user:"+coach.ID, coach.Token, map[string]string{"relation": "editor"}), 409, "conflict")

			// Every denial is on record.
			log := a.auditLog(t, o.Slug, mgr)
			if n := countActions(log)["access.denied/denied"]; n < 8 {
				t.Errorf("%d access.denied events, want at least 8", n)
			}
			mustNotContain(t, "audit log", fmt.Sprint(log), client.Name)
		})
	}
}

// TestManagersGrant is the scenario under the "managers" policy: the
// manager sees every project and grants anyone any right on it.
func TestManagersGrant(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mgr := o.Manager.Token
			alice, bob := a.addUser(t, o, "member"), a.addUser(t, o, "member")
			r := a.call(t, "POST", orgPath(o.Slug, "/projects"), alice.Token, map[string]string{"name": "Harbour model"})
			wantStatus(t, "create", r, 201)
			p := orgPath(o.Slug, "/projects/"+decodeStrict[projectAnswer](t, r).Project.ID)
			wantError(t, "bob before", a.call(t, "GET", p, bob.Token, nil), 404, "not_found")
			list := decodeStrict[projectsAnswer](t, a.call(t, "GET", orgPath(o.Slug, "/projects"), mgr, nil))
			if len(list.Projects) != 1 || !slices.Equal(list.Projects[0].Rights, []string{"view", "edit", "start", "grant", "delete"}) {
				t.Fatalf("manager lists %+v, want the one project with every right", list.Projects)
			}
			wantStatus(t, "manager grants bob", a.call(t, "PUT", p+"/grants/user:"+bob.ID, mgr, map[string]string{"relation": "runner"}), 204)
			got := decodeStrict[projectAnswer](t, a.call(t, "GET", p, bob.Token, nil)).Project
			if !slices.Equal(got.Rights, []string{"view", "start"}) {
				t.Errorf("bob's rights %v, want [view start]", got.Rights)
			}
			wantError(t, "bob cannot grant", a.call(t, "PUT", p+"/grants/user:"+bob.ID, bob.Token, map[string]string{"relation": "owner"}), 403, "forbidden")
			wantInvalid(t, "unknown relation", a.call(t, "PUT", p+"/grants/user:"+bob.ID, mgr, map[string]string{"relation": "god"}), "relation")
			wantInvalid(t, "malformed subject", a.call(t, "PUT", p+"/grants/bob", mgr, map[string]string{"relation": "viewer"}), "subject")
			wantInvalid(t, "subject of nobody", a.call(t, "PUT", p+"/grants/user:00000000-0000-7000-8000-000000000000", mgr, map[string]string{"relation": "viewer"}), "subject")
			// Paging: the manager's page of one, then the rest.
			for range 3 {
				wantStatus(t, "more", a.call(t, "POST", orgPath(o.Slug, "/projects"), alice.Token, map[string]string{"name": "More"}), 201)
			}
			page := decodeStrict[projectsAnswer](t, a.call(t, "GET", orgPath(o.Slug, "/projects?limit=3"), alice.Token, nil))
			if len(page.Projects) != 3 || page.Next == "" {
				t.Fatalf("first page %+v, want 3 and a cursor", page)
			}
			rest := decodeStrict[projectsAnswer](t, a.call(t, "GET", orgPath(o.Slug, "/projects?limit=3&after="+page.Next), alice.Token, nil))
			if len(rest.Projects) != 1 || rest.Next != "" {
				t.Fatalf("second page %+v, want the last one and no cursor", rest)
			}
			wantInvalid(t, "limit", a.call(t, "GET", orgPath(o.Slug, "/projects?limit=0"), alice.Token, nil), "limit")
		})
	}
}
