package httpserver_test

import (
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
)

type licenceAnswerJSON struct {
	MaxUsers               *int       `json:"max_users"`
	MaxProjects            *int       `json:"max_projects"`
	MaxActiveProjects      *int       `json:"max_active_projects"`
	MaxStorageBytes        *int64     `json:"max_storage_bytes"`
	EndsAt                 *time.Time `json:"ends_at"`
	ActivityTimeoutMinutes int        `json:"activity_timeout_minutes"`
	Usage                  struct {
		Users          int   `json:"users"`
		Projects       int   `json:"projects"`
		ActiveProjects int   `json:"active_projects"`
		StorageBytes   int64 `json:"storage_bytes"`
	} `json:"usage"`
}

type activityAnswerJSON struct {
	Activity struct {
		ID        string    `json:"id"`
		Project   string    `json:"project"`
		StartedAt time.Time `json:"started_at"`
	} `json:"activity"`
}

type periodsJSON struct {
	Periods []struct {
		Project string     `json:"project"`
		User    string     `json:"user"`
		From    time.Time  `json:"from"`
		To      *time.Time `json:"to"`
	} `json:"periods"`
}

type anonPeriodsJSON struct {
	Periods []struct {
		Project string     `json:"project"`
		From    time.Time  `json:"from"`
		To      *time.Time `json:"to"`
	} `json:"periods"`
}

// TestLicenceAPI (R13, R22): the licence's path serves the organisation's
// manager and the operator: an admin sets it, support reads it, security
// staff and members are refused, another organisation's manager gets 404.
// Exceeding a limit answers 409 licence_limit naming it; starting opens a
// period (201, then 200 for the same person), stopping ends it (204); the
// manager's activity log names the person, the operator's does not.
func TestLicenceAPI(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o, other := a.newOrg(t), a.newOrg(t)
			_, admin := a.operatorOf(t, kluis.OperatorAdmin)
			_, support := a.operatorOf(t, kluis.OperatorSupport)
			_, security := a.operatorOf(t, kluis.OperatorSecurity)
			member := a.addUser(t, o, "member")
			lic := orgPath(o.Slug, "/licence")

			got := decodeStrict[licenceAnswerJSON](t, a.call(t, "GET", lic, o.Manager.Token, nil))
			if got.MaxUsers != nil || got.ActivityTimeoutMinutes != 480 || got.Usage.Users != 2 {
				t.Fatalf("a fresh licence %+v; want no limits, 480 minutes and 2 users", got)
			}
			wantError(t, "manager sets", a.call(t, "PUT", lic, o.Manager.Token, map[string]any{"max_projects": 1}), 403, "forbidden")
			wantError(t, "support sets", a.call(t, "PUT", lic, support.Token, map[string]any{"max_projects": 1}), 403, "forbidden")
			wantError(t, "security reads", a.call(t, "GET", lic, security.Token, nil), 403, "forbidden")
			wantError(t, "member reads", a.call(t, "GET", lic, member.Token, nil), 403, "forbidden")
			wantError(t, "another organisation's manager", a.call(t, "GET", lic, other.Manager.Token, nil), 404, "not_found")
			wantError(t, "no one", a.call(t, "GET", lic, "", nil), 401, "unauthenticated")
			wantError(t, "an unknown organisation", a.call(t, "GET", orgPath("no-such-org", "/licence"), admin.Token, nil), 404, "not_found")
			wantInvalid(t, "a negative limit", a.call(t, "PUT", lic, admin.Token, map[string]any{"max_users": -1}), "max_users")

			r := a.call(t, "PUT", lic, admin.Token, map[string]any{"max_projects": 1, "max_active_projects": 1, "max_users": 2, "activity_timeout_minutes": 30})
			wantStatus(t, "admin sets", r, 200)
			if got := decodeStrict[licenceAnswerJSON](t, r); got.MaxProjects == nil || *got.MaxProjects != 1 || got.MaxStorageBytes != nil || got.ActivityTimeoutMinutes != 30 {
				t.Fatalf("set %+v", got)
			}
			if got := decodeStrict[licenceAnswerJSON](t, a.call(t, "GET", lic, support.Token, nil)); got.MaxUsers == nil || *got.MaxUsers != 2 {
				t.Fatalf("support reads %+v", got)
			}
			// The limits, at the boundary: 2 users exist, 1 project fits.
			e := wantError(t, "a third user", a.call(t, "POST", orgPath(o.Slug, "/users"), o.Manager.Token, map[string]string{"email": uniqueEmail("third"), "role": "member"}), 409, "licence_limit")
			if e.Error.Fields["max_users"] == "" {
				t.Fatalf("licence_limit fields %v, want max_users", e.Error.Fields)
			}
			r = a.call(t, "POST", orgPath(o.Slug, "/projects"), member.Token, map[string]string{"name": "One"})
			wantStatus(t, "the first project", r, 201)
			p := decodeStrict[projectAnswer](t, r).Project.ID
			e = wantError(t, "a second project", a.call(t, "POST", orgPath(o.Slug, "/projects"), o.Manager.Token, map[string]string{"name": "Two"}), 409, "licence_limit")
			if e.Error.Fields["max_projects"] == "" {
				t.Fatalf("licence_limit fields %v, want max_projects", e.Error.Fields)
			}

			// Start, start again, stop.
			pp := orgPath(o.Slug, "/projects/"+p)
			r = a.call(t, "POST", pp+"/start", member.Token, nil)
			wantStatus(t, "start", r, 201)
			started := decodeStrict[activityAnswerJSON](t, r).Activity
			if started.Project != p || started.ID == "" {
				t.Fatalf("started %+v", started)
			}
			r = a.call(t, "POST", pp+"/start", member.Token, nil)
			wantStatus(t, "start again", r, 200)
			if again := decodeStrict[activityAnswerJSON](t, r).Activity; again.ID != started.ID {
				t.Fatalf("start again answered %+v, want %+v", again, started)
			}
			if got := decodeStrict[licenceAnswerJSON](t, a.call(t, "GET", lic, o.Manager.Token, nil)); got.Usage.ActiveProjects != 1 || got.Usage.Projects != 1 {
				t.Fatalf("usage %+v", got.Usage)
			}
			wantStatus(t, "stop", a.call(t, "POST", pp+"/stop", member.Token, nil), 204)

			log := decodeStrict[periodsJSON](t, a.call(t, "GET", orgPath(o.Slug, "/activity"), o.Manager.Token, nil))
			if len(log.Periods) != 1 || log.Periods[0].User != member.ID || log.Periods[0].Project != p || log.Periods[0].To == nil {
				t.Fatalf("activity log %+v", log)
			}
			wantError(t, "member reads the log", a.call(t, "GET", orgPath(o.Slug, "/activity"), member.Token, nil), 403, "forbidden")
			wantInvalid(t, "a bad since", a.call(t, "GET", orgPath(o.Slug, "/activity?since=yesterday"), o.Manager.Token, nil), "since")
			opLog := "/api/v1/operator/orgs/" + o.Slug + "/activity"
			r = a.call(t, "GET", opLog, support.Token, nil)
			wantStatus(t, "operator log", r, 200)
			mustNotContain(t, "the operator's activity log", string(r.body), member.ID, member.Name, member.Email)
			if anon := decodeStrict[anonPeriodsJSON](t, r); len(anon.Periods) != 1 || anon.Periods[0].Project != p {
				t.Fatalf("operator log %+v", anon)
			}
			wantError(t, "security reads the log", a.call(t, "GET", opLog, security.Token, nil), 403, "forbidden")
			wantError(t, "a manager on the operator's log", a.call(t, "GET", opLog, o.Manager.Token, nil), 401, "unauthenticated")

			// The customer sees the operator's change in their own log.
			if n := countActions(a.auditLog(t, o.Slug, o.Manager.Token))["licence.update/success"]; n < 1 {
				t.Fatalf("no licence.update in the organisation's log")
			}
		})
	}
}
