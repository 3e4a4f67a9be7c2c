package httpserver

import "net/http"

// Route is one entry of the HTTP surface.
type Route struct {
	Method  string
	Pattern string
	// Realm says who may call it: "public", "org-public" (anyone, within an
	// existing organisation), "org" (a signed-in user of that organisation)
	// or "operator". Tests walk this table.
	Realm   string
	Handler http.Handler
}

// routes is the whole HTTP surface of kluis (shared/CONTRACT.md). The
// wrappers org, orgUser and operator resolve the tenant and the actor before
// any handler runs; rights are checked in the store method each handler calls.
func (s *server) routes() []Route {
	st := s.store
	return []Route{
		{"GET", "/healthz", "public", handleHealth()},
		{"GET", "/readyz", "public", handleReady(st)},

		// Operator realm.
		{"POST", "/api/v1/operator/login", "public", handleOperatorLogin(st)},
		{"POST", "/api/v1/operator/logout", "operator", s.operator(handleOperatorLogout(st))},
		{"GET", "/api/v1/orgs", "operator", s.operator(handleListOrgs(st))},
		{"POST", "/api/v1/orgs", "operator", s.operator(handleCreateOrg(st))},
		{"DELETE", "/api/v1/orgs/{org}", "operator", s.operator(handleDeleteOrg(st))},

		// Organisation realm, before sign-in.
		{"POST", "/api/v1/orgs/{org}/login", "org-public", s.org(handleLogin(st))},
		{"POST", "/api/v1/orgs/{org}/invitations/accept", "org-public", s.org(handleAcceptInvitation(st))},

		// Organisation realm, signed in.
		{"POST", "/api/v1/orgs/{org}/logout", "org", s.orgUser(handleLogout(st))},
		{"GET", "/api/v1/orgs/{org}/me", "org", s.orgUser(handleGetMe())},
		{"PATCH", "/api/v1/orgs/{org}/me", "org", s.orgUser(handleUpdateMe(st))},
		{"POST", "/api/v1/orgs/{org}/me/password", "org", s.orgUser(handleChangePassword(st))},
		{"GET", "/api/v1/orgs/{org}/users", "org", s.orgUser(handleListUsers(st))},
		{"POST", "/api/v1/orgs/{org}/users", "org", s.orgUser(handleInviteUser(st))},
		{"GET", "/api/v1/orgs/{org}/users/{id}", "org", s.orgUser(handleGetUser(st))},
		{"PATCH", "/api/v1/orgs/{org}/users/{id}", "org", s.orgUser(handleUpdateUser(st))},
		{"DELETE", "/api/v1/orgs/{org}/users/{id}", "org", s.orgUser(handleDeleteUser(st))},
		{"POST", "/api/v1/orgs/{org}/users/{id}/invitation", "org", s.orgUser(handleResendInvitation(st))},
		{"DELETE", "/api/v1/orgs/{org}/users/{id}/invitation", "org", s.orgUser(handleRevokeInvitation(st))},
		{"GET", "/api/v1/orgs/{org}/policy", "org", s.orgUser(handleGetPolicy(st))},
		{"PUT", "/api/v1/orgs/{org}/policy", "org", s.orgUser(handleUpdatePolicy(st))},
		{"GET", "/api/v1/orgs/{org}/audit", "org", s.orgUser(handleListAudit(st))},
		{"GET", "/api/v1/orgs/{org}/audit/export", "org", s.orgUser(handleExportAudit(st))},
		{"GET", "/api/v1/orgs/{org}/audit/verify", "org", s.orgUser(handleVerifyAudit(st))},
	}
}

// Routes returns the route table without handlers, for tests and docs.
func Routes() []Route {
	s := &server{}
	rs := s.routes()
	for i := range rs {
		rs[i].Handler = nil
	}
	return rs
}
