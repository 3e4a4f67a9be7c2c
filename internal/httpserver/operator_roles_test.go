package httpserver_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/kluistest"
)

// operatorRoleTable says which operator roles may use each route of the
// operator's realm, API and pages (R8, R46). Every route of those realms
// must have a row: TestOperatorRoleTable fails on one without.
var operatorRoleTable = map[string][]kluis.OperatorRole{
	// Their own account: every role.
	"POST /api/v1/operator/logout":                     allRoles,
	"GET /api/v1/operator/me":                          allRoles,
	"POST /api/v1/operator/me/reauth":                  allRoles,
	"POST /api/v1/operator/me/reauth/webauthn/options": allRoles,
	"POST /api/v1/operator/me/totp":                    allRoles,
	"POST /api/v1/operator/me/totp/confirm":            allRoles,
	"GET /api/v1/operator/me/passkeys":                 allRoles,
	"POST /api/v1/operator/me/passkeys/options":        allRoles,
	"POST /api/v1/operator/me/passkeys":                allRoles,
	"DELETE /api/v1/operator/me/passkeys/{id}":         allRoles,
	"GET /operator/account":                            allRoles,
	"GET /operator/account/reauth":                     allRoles,
	"POST /operator/account/reauth":                    allRoles,
	"POST /operator/account/totp":                      allRoles,
	"GET /operator/account/totp/qr.png":                allRoles,
	"POST /operator/account/totp/confirm":              allRoles,
	"POST /operator/account/passkeys/new":              allRoles,
	"POST /operator/account/passkeys":                  allRoles,
	"POST /operator/account/passkeys/{id}/remove":      allRoles,
	"POST /operator/logout":                            allRoles,
	// Which organisations exist, and whether logins are stopped: every role.
	"GET /api/v1/orgs":            allRoles,
	"GET /api/v1/operator/logins": allRoles,
	"GET /operator":               allRoles,
	// Stopping every login in an incident: admin and security.
	"PUT /api/v1/operator/logins": {kluis.OperatorAdmin, kluis.OperatorSecurity},
	"POST /operator/logins":       {kluis.OperatorAdmin, kluis.OperatorSecurity},
	// Organisations and operators: admin.
	"POST /api/v1/orgs":         {kluis.OperatorAdmin},
	"DELETE /api/v1/orgs/{org}": {kluis.OperatorAdmin},
	"POST /operator/orgs":       {kluis.OperatorAdmin},
	"GET /operator/operators":   {kluis.OperatorAdmin},
	// Licences (R13): admins set them; support sees them; activity without
	// people.
	"GET /operator/orgs/{org}":                 {kluis.OperatorAdmin, kluis.OperatorSupport},
	"POST /operator/orgs/{org}/licence":        {kluis.OperatorAdmin},
	"GET /api/v1/operator/orgs/{org}/activity": {kluis.OperatorAdmin, kluis.OperatorSupport},
	// Erasing one person on the organisation's request (R5): admin.
	"POST /api/v1/operator/orgs/{org}/erasures": {kluis.OperatorAdmin},
	"GET /operator/orgs/{org}/erase":            {kluis.OperatorAdmin},
	"POST /operator/orgs/{org}/erase":           {kluis.OperatorAdmin},
	// Maintenance announcements (issue 15, R3 R40): admin.
	"POST /api/v1/operator/announcements": {kluis.OperatorAdmin},
	"GET /operator/announcements":         {kluis.OperatorAdmin},
	"POST /operator/announcements":        {kluis.OperatorAdmin},
	// Backups (R30 R32): every role sees the record; what the backups hold
	// for an organisation (R31): admin.
	"GET /operator/backups":            allRoles,
	"GET /operator/orgs/{org}/backups": {kluis.OperatorAdmin},
	// Anonymous statistics and crash reports (R37, R38): admin.
	"GET /api/v1/operator/statistics":         {kluis.OperatorAdmin},
	"GET /api/v1/operator/crash-reports":      {kluis.OperatorAdmin},
	"GET /api/v1/operator/crash-reports/{id}": {kluis.OperatorAdmin},
	"GET /operator/statistics":                {kluis.OperatorAdmin},
	"GET /operator/crash-reports":             {kluis.OperatorAdmin},
	"GET /operator/crash-reports/{id}":        {kluis.OperatorAdmin},
	// Support access: support asks and works through grants (R22).
	"POST /api/v1/operator/orgs/{org}/support-requests": {kluis.OperatorSupport},
	"GET /api/v1/operator/orgs/{org}/support-grants":    {kluis.OperatorSupport},
	"POST /api/v1/operator/orgs/{org}/support-session":  {kluis.OperatorSupport},
	"GET /operator/orgs/{org}/support":                  {kluis.OperatorSupport},
	"POST /operator/orgs/{org}/support/requests":        {kluis.OperatorSupport},
	"POST /operator/orgs/{org}/support/session":         {kluis.OperatorSupport},
}

var allRoles = kluis.OperatorRoles

// operatorRoute reports whether a route belongs to the operator's realm
// once signed in: the table's subject.
func operatorRoute(rt httpserver.Route) bool {
	return rt.Realm == "operator" || (rt.Realm == "page-operator" && rt.Pattern != "/operator/login" && rt.Pattern != "/operator/login/mfa")
}

// TestOperatorRoleTable walks every route of the operator's realm as an
// operator of each role: a role the table does not list is refused with
// 403 (and recorded), a role it lists is not. Bodies are empty or harmless,
// so an allowed request may still fail its input (400) or find nothing
// (404); what it may not get is forbidden.
func TestOperatorRoleTable(t *testing.T) {
	var routes []httpserver.Route
	for _, rt := range httpserver.Routes() {
		if !operatorRoute(rt) {
			continue
		}
		key := rt.Method + " " + rt.Pattern
		if _, ok := operatorRoleTable[key]; !ok {
			t.Errorf("the operator role table has no row for %s", key)
		}
		routes = append(routes, rt)
	}
	for key := range operatorRoleTable {
		if !slices.ContainsFunc(routes, func(rt httpserver.Route) bool { return rt.Method+" "+rt.Pattern == key }) {
			t.Errorf("the operator role table has a row for %s, which is no route", key)
		}
	}
	// Signing out last.
	slices.SortStableFunc(routes, func(x, y httpserver.Route) int {
		return compareBool(strings.HasSuffix(x.Pattern, "/logout"), strings.HasSuffix(y.Pattern, "/logout"))
	})
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			for _, role := range kluis.OperatorRoles {
				t.Run(string(role), func(t *testing.T) {
					_, acc := a.operatorOf(t, role)
					b := newBrowser(a)
					b.cookies["__Host-kluis_operator"] = &http.Cookie{Name: "__Host-kluis_operator", Value: acc.Token}
					for _, rt := range routes {
						key := rt.Method + " " + rt.Pattern
						allowed := slices.Contains(operatorRoleTable[key], role)
						path := strings.NewReplacer("{org}", o.Slug, "{id}", "01a00000-0000-7000-8000-000000000000").Replace(rt.Pattern)
						var status int
						var body string
						if rt.Realm == "operator" {
							var in any = map[string]any{}
							if key == "PUT /api/v1/operator/logins" {
								in = map[string]bool{"enabled": true}
							}
							if key == "DELETE /api/v1/orgs/{org}" {
								path = "/api/v1/orgs/no-such-org"
							}
							r := a.call(t, rt.Method, path, acc.Token, in)
							status, body = r.status, string(r.body)
						} else {
							form := url.Values{}
							if key == "POST /operator/logins" {
								form.Set("enabled", "true")
							}
							var p page
							if rt.Method == "GET" {
								p = b.get(t, path)
							} else {
								p = b.post(t, path, form)
							}
							status, body = p.status, p.body
						}
						switch {
						case allowed && status == http.StatusForbidden:
							t.Errorf("%s as %s: forbidden, want allowed: %s", key, role, excerpt(body))
						case !allowed && status != http.StatusForbidden:
							t.Errorf("%s as %s: %d, want 403: %s", key, role, status, excerpt(body))
						}
					}
				})
			}
		})
	}
}

func compareBool(x, y bool) int {
	switch {
	case x == y:
		return 0
	case y:
		return -1
	}
	return 1
}
