package httpserver_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
)

// TestEndedLicenceMakesTheOrganisationReadOnly (R36): from the moment its
// licence ends, an organisation's writes answer 409 licence_limit naming
// ends_at — a new project, a changed name, an invitation, a file — while
// reading, signing in, re-authenticating and the manager's export of
// everything still work; the operator renews the licence and the same
// write succeeds. Another organisation is not touched.
func TestEndedLicenceMakesTheOrganisationReadOnly(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o, other := a.newOrg(t), a.newOrg(t)
			_, admin := a.operatorOf(t, kluis.OperatorAdmin)
			member := a.addUser(t, o, "member")
			lic := orgPath(o.Slug, "/licence")
			ends := a.env.Clock.Now().Add(time.Minute)
			wantStatus(t, "set the end", a.call(t, "PUT", lic, admin.Token, map[string]any{"ends_at": ends}), 200)
			wantStatus(t, "before the end", a.call(t, "PATCH", orgPath(o.Slug, "/me"), member.Token, map[string]any{"name": "Before"}), 200)
			r := a.call(t, "POST", orgPath(o.Slug, "/projects"), o.Manager.Token, map[string]any{"name": "Before"})
			wantStatus(t, "a project before the end", r, 201)
			project := orgPath(o.Slug, "/projects/"+decodeStrict[projectAnswer](t, r).Project.ID)

			a.env.Clock.Advance(time.Minute)
			for _, c := range []struct{ name, method, path string }{
				{"a project", "POST", "/projects"},
				{"a name", "PATCH", "/me"},
				{"a policy", "PUT", "/policy"},
			} {
				e := wantError(t, c.name, a.call(t, c.method, orgPath(o.Slug, c.path), o.Manager.Token, map[string]any{"name": "After"}), 409, "licence_limit")
				if e.Error.Fields["ends_at"] == "" {
					t.Fatalf("%s: fields %v, want ends_at", c.name, e.Error.Fields)
				}
			}
			// A file whose path ends like an exempt route is still a write.
			for _, name := range []string{"notes/export", "inbox/x/read", "login"} {
				put := a.do(t, request{method: "PUT", path: project + "/files/" + name, bearer: o.Manager.Token, body: "x", contentType: "application/octet-stream"})
				wantError(t, "a file "+name, put, 409, "licence_limit")
			}
			wantStatus(t, "reading", a.call(t, "GET", orgPath(o.Slug, "/me"), member.Token, nil), 200)
			login := a.login(t, o.Slug, member.Email, member.Password)
			if login.Token == "" {
				t.Fatal("signing in during the grace period failed")
			}
			r = a.call(t, "POST", orgPath(o.Slug, "/me/reauth"), o.Manager.Token, map[string]string{"password": o.Manager.Password})
			wantStatus(t, "re-authenticate", r, 200)
			o.Manager.Token = decodeStrict[loginAnswer](t, r).Token
			wantStatus(t, "the export of everything", a.call(t, "GET", orgPath(o.Slug, "/export"), o.Manager.Token, nil), 200)
			// The data-subject rights outlive the licence (R34): a request
			// filed and answered, processing restricted and lifted; the
			// profile itself stays frozen.
			r = a.call(t, "POST", orgPath(o.Slug, "/privacy-requests"), member.Token, map[string]any{"type": "erasure"})
			wantStatus(t, "filing a request", r, 201)
			var filed struct{ Request struct{ ID string } }
			if err := json.Unmarshal(r.body, &filed); err != nil {
				t.Fatal(err)
			}
			wantStatus(t, "answering it", a.call(t, "PATCH", orgPath(o.Slug, "/privacy-requests/"+filed.Request.ID), o.Manager.Token, map[string]any{"status": "in_progress"}), 200)
			wantStatus(t, "restricting", a.call(t, "POST", orgPath(o.Slug, "/me/restriction"), member.Token, nil), 204)
			wantStatus(t, "lifting", a.call(t, "DELETE", orgPath(o.Slug, "/me/restriction"), member.Token, nil), 204)
			wantError(t, "a name, still", a.call(t, "PATCH", orgPath(o.Slug, "/me"), member.Token, map[string]any{"name": "After"}), 409, "licence_limit")
			wantStatus(t, "another organisation", a.call(t, "POST", orgPath(other.Slug, "/projects"), other.Manager.Token, map[string]any{"name": "Fine"}), 201)

			wantStatus(t, "renewal", a.call(t, "PUT", lic, admin.Token, map[string]any{"ends_at": a.env.Clock.Now().Add(365 * 24 * time.Hour)}), 200)
			wantStatus(t, "after renewal", a.call(t, "POST", orgPath(o.Slug, "/projects"), o.Manager.Token, map[string]any{"name": "Renewed"}), 201)
		})
	}
}

// TestPolicyPageSetsRetention (R25, R35): the policy page shows the
// retention fields with their defaults; a manager saves new values, and a
// period out of bounds is refused naming the field, nothing saved. Once
// the licence ended the page's save answers the read-only refusal.
func TestPolicyPageSetsRetention(t *testing.T) {
	a := newTestAPI(t, kluistest.Engines[0])
	o := a.newOrg(t)
	b := signInPage(t, a, o.Slug, o.Manager)
	page := b.get(t, "/o/"+o.Slug+"/policy")
	for _, want := range []string{`name="inactive_user_days"`, `value="730"`, `name="audit_retention_days"`} {
		if !strings.Contains(page.body, want) {
			t.Fatalf("the policy page lacks %s", want)
		}
	}
	form := url.Values{"password_min_length": {"8"}, "session_idle_minutes": {"30"}, "session_max_hours": {"12"}, "mfa": {"optional"},
		"lockout_threshold": {"5"}, "inactive_user_days": {"365"}, "audit_retention_days": {"400"}}
	wantPage(t, "save", b.post(t, "/o/"+o.Slug+"/policy", form), 303, "/o/"+o.Slug+"/policy")
	got := decodeStrict[policyObject](t, a.call(t, "GET", orgPath(o.Slug, "/policy"), o.Manager.Token, nil))
	if got.InactiveUserDays != 365 || got.AuditRetentionDays != 400 {
		t.Fatalf("saved %+v, want 365 and 400", got)
	}
	form.Set("inactive_user_days", "10")
	p := b.post(t, "/o/"+o.Slug+"/policy", form)
	wantPage(t, "a period too short", p, 400, "")
	if !strings.Contains(p.body, `id="inactive_user_days-error"`) {
		t.Fatalf("the refusal does not name the field")
	}
	form.Set("inactive_user_days", "")
	wantPage(t, "an empty period", b.post(t, "/o/"+o.Slug+"/policy", form), 400, "")
	if got := decodeStrict[policyObject](t, a.call(t, "GET", orgPath(o.Slug, "/policy"), o.Manager.Token, nil)); got.InactiveUserDays != 365 {
		t.Fatalf("a refused form changed the period to %d", got.InactiveUserDays)
	}

	_, admin := a.operatorOf(t, kluis.OperatorAdmin)
	wantStatus(t, "end the licence", a.call(t, "PUT", orgPath(o.Slug, "/licence"), admin.Token, map[string]any{"ends_at": a.env.Clock.Now()}), 200)
	form.Set("inactive_user_days", "400")
	wantPage(t, "save while read-only", b.post(t, "/o/"+o.Slug+"/policy", form), 409, "")
}
