package httpserver_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
)

type noticesJSON struct {
	Notices []struct {
		ID    string    `json:"id"`
		Kind  string    `json:"kind"`
		At    time.Time `json:"at"`
		Read  bool      `json:"read"`
		Title string    `json:"title"`
		Body  string    `json:"body"`
	} `json:"notices"`
}

type adminsJSON struct {
	Managers    int            `json:"managers"`
	MaxManagers *int           `json:"max_managers"`
	Operators   map[string]int `json:"operators"`
}

// R5 through the operator's API and page: an operator admin erases one
// person on request (204, the person's session ends); support may not
// (403); an unknown address is 404; the last manager 409 conflict. The
// managers' inbox holds the notice, another person's notice id is 404.
func TestOperatorErasesOnRequestAndManagersAreTold(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			second := a.addUser(t, o, "manager")
			mem := a.addUser(t, o, "member")
			_, admin := a.operator(t)
			_, support := a.operatorOf(t, kluis.OperatorSupport)
			path := "/api/v1/operator/orgs/" + o.Slug + "/erasures"
			body := map[string]string{"email": mem.Email, "reason": "written request of the organisation"}

			wantError(t, "support erasing", a.call(t, "POST", path, support.Token, body), 403, kluis.EForbidden)
			wantError(t, "a manager erasing", a.call(t, "POST", path, o.Manager.Token, body), 401, kluis.EUnauthenticated)
			wantError(t, "an unknown address", a.call(t, "POST", path, admin.Token, map[string]string{"email": "nobody@example.test", "reason": "x"}), 404, kluis.ENotFound)
			wantInvalid(t, "no reason", a.call(t, "POST", path, admin.Token, map[string]string{"email": mem.Email, "reason": ""}), "reason")
			r := a.call(t, "POST", path, admin.Token, body)
			wantStatus(t, "erasure", r, 204)
			mustNotContain(t, "the erasure's answer", string(r.body), mem.Email)
			wantError(t, "the erased person's session", a.call(t, "GET", orgPath(o.Slug, "/me"), mem.Token, nil), 401, kluis.EUnauthenticated)

			r = a.call(t, "GET", orgPath(o.Slug, "/inbox"), second.Token, nil)
			wantStatus(t, "inbox", r, 200)
			box := decodeStrict[noticesJSON](t, r)
			if len(box.Notices) == 0 || box.Notices[0].Kind != kluis.NoticeErasedOnRequest || box.Notices[0].Read {
				t.Fatalf("the second manager's inbox: %s", r)
			}
			mustNotContain(t, "the notice", string(r.body), mem.Email, mem.Name, "written request")
			id := box.Notices[0].ID
			wantError(t, "another's notice", a.call(t, "POST", orgPath(o.Slug, "/inbox/"+id+"/read"), o.Manager.Token, nil), 404, kluis.ENotFound)
			wantStatus(t, "read", a.call(t, "POST", orgPath(o.Slug, "/inbox/"+id+"/read"), second.Token, nil), 204)
			box = decodeStrict[noticesJSON](t, a.call(t, "GET", orgPath(o.Slug, "/inbox"), second.Token, nil))
			if !box.Notices[0].Read {
				t.Errorf("the notice after reading: %+v", box.Notices[0])
			}

			// The operator's page, as a browser posts it: the last manager
			// left after erasing the second is refused with 409.
			op := newBrowser(a)
			wantPage(t, "operator sign-in", op.post(t, "/operator/login", url.Values{"email": {admin.Email}, "password": {admin.Password}}), 303, "/operator/login/mfa")
			a.env.Clock.Advance(30 * time.Second)
			wantPage(t, "operator second step", op.post(t, "/operator/login/mfa", url.Values{"method": {"totp"}, "code": {totpCode(t, admin.TOTPSecret, a.env.Clock.Now())}}), 303, "/operator")
			p := op.get(t, "/operator/orgs/"+o.Slug+"/erase")
			wantPage(t, "erase form", p, 200, "")
			if !strings.Contains(p.body, `id="erase"`) {
				t.Fatalf("no erase form: %s", excerpt(p.body))
			}
			wantPage(t, "erase the second manager", op.post(t, "/operator/orgs/"+o.Slug+"/erase", url.Values{"email": {second.Email}, "reason": {"asked by phone, confirmed in writing"}}), 303, "/operator")
			p = op.post(t, "/operator/orgs/"+o.Slug+"/erase", url.Values{"email": {o.Manager.Email}, "reason": {"asked"}})
			wantPage(t, "erase the last manager", p, 409, "")
			wantStatus(t, "the last manager after the refusal", a.call(t, "GET", orgPath(o.Slug, "/me"), o.Manager.Token, nil), 200)
			wantError(t, "the last manager by API", a.call(t, "POST", path, admin.Token, map[string]string{"email": o.Manager.Email, "reason": "asked"}), 409, kluis.EConflict)

			mgr := signInPage(t, a, o.Slug, o.Manager)
			p = mgr.get(t, "/o/"+o.Slug+"/inbox")
			wantPage(t, "inbox page", p, 200, "")
			if !strings.Contains(p.body, "/o/"+o.Slug+"/inbox") || !strings.Contains(p.body, "unread") {
				t.Errorf("the inbox page lacks its navigation count or its notices: %s", excerpt(p.body))
			}
			mustNotContain(t, "the inbox page", p.body, mem.Email, second.Email, "asked by phone")
			for _, e := range a.auditLog(t, o.Slug, o.Manager.Token) {
				if e.Action == "user.delete" && e.Actor != "operator:"+admin.ID {
					t.Errorf("an erasure attributed to %q, want operator:%s", e.Actor, admin.ID)
				}
			}
		})
	}
}

// R8: managers see the counts of administrators; the policy's max_managers
// is refused beyond the cap with 409 naming it; null removes the cap.
func TestAdministratorsAndManagerCap(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			a.operatorOf(t, kluis.OperatorSecurity)
			r := a.call(t, "GET", orgPath(o.Slug, "/administrators"), o.Manager.Token, nil)
			wantStatus(t, "administrators", r, 200)
			got := decodeStrict[adminsJSON](t, r)
			if got.Managers != 1 || got.MaxManagers != nil || got.Operators["security"] != 1 || got.Operators["admin"] != 0 || got.Operators["support"] != 0 {
				t.Errorf("administrators: %s", r)
			}
			wantError(t, "a member", a.call(t, "GET", orgPath(o.Slug, "/administrators"), mem.Token, nil), 403, kluis.EForbidden)

			pol := map[string]any{"password_min_length": 8, "password_require_digit": false, "password_require_upper": false,
				"session_idle_minutes": 30, "session_max_hours": 12, "max_managers": 101}
			wantInvalid(t, "cap 101", a.call(t, "PUT", orgPath(o.Slug, "/policy"), o.Manager.Token, pol), "max_managers")
			pol["max_managers"] = 1
			wantStatus(t, "cap 1", a.call(t, "PUT", orgPath(o.Slug, "/policy"), o.Manager.Token, pol), 200)
			delete(pol, "max_managers") // left out: kept
			r = a.call(t, "PUT", orgPath(o.Slug, "/policy"), o.Manager.Token, pol)
			if !strings.Contains(string(r.body), `"max_managers":1`) {
				t.Errorf("a PUT without max_managers: %s, want the cap kept", r)
			}
			e := wantError(t, "a second manager", a.call(t, "PATCH", orgPath(o.Slug, "/users/"+mem.ID), o.Manager.Token, map[string]string{"role": "manager"}), 409, kluis.EConflict)
			if e.Error.Fields["max_managers"] == "" {
				t.Errorf("the refusal names no max_managers: %+v", e)
			}
			e = wantError(t, "inviting a manager", a.call(t, "POST", orgPath(o.Slug, "/users"), o.Manager.Token, map[string]string{"email": uniqueEmail("x"), "name": "X", "role": "manager"}), 409, kluis.EConflict)
			pol["max_managers"] = nil
			r = a.call(t, "PUT", orgPath(o.Slug, "/policy"), o.Manager.Token, pol)
			if !strings.Contains(string(r.body), `"max_managers":null`) {
				t.Errorf("removing the cap: %s", r)
			}
			wantStatus(t, "a second manager without a cap", a.call(t, "PATCH", orgPath(o.Slug, "/users/"+mem.ID), o.Manager.Token, map[string]string{"role": "manager"}), 200)
		})
	}
}
