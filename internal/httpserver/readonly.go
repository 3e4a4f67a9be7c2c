package httpserver

import (
	"net/http"
	"strings"

	"github.com/kluis/kluis"
)

// An organisation whose licence has ended is read-only during the grace
// period before the retention job erases it (R36): every request that may
// change something answers 409 licence_limit naming ends_at, except those
// that let its people in and out and let managers take everything with
// them — signing in and out, re-authentication (the export needs it),
// password reset and change, unlocking, marking a notice read, the
// organisation's export. The operator's licence route is not an
// organisation route (orgOrOperator): renewing the licence lifts it.

// readOnlyExempt are the route patterns (their endings, after
// "/api/v1/orgs/{org}" or "/o/{org}", with a method first where only that
// method is exempt) of the writes a read-only organisation still takes, on
// the API and the pages. Patterns, not paths: a file whose path ends in
// "/export" is not the export.
var readOnlyExempt = []string{
	"/login", "/login/mfa", "/login/mfa/webauthn/options", "/login/mfa/sms", "/logout",
	"/me/reauth", "/me/reauth/webauthn/options", "/me/reauth/sms", "/account/reauth", "/account/reauth/sms",
	"/me/password", "/account/password", "/password-reset", "/password-reset/confirm", "/forgot", "/reset", "/unlock",
	"/export", "/inbox/{id}/read",
	// The data-subject rights outlive the licence (R34): a person takes
	// their data, deletes their account, restricts processing and files a
	// request; managers take a person's data and answer requests.
	"/me/export", "/account/export", "/users/{id}/export", "DELETE /me", "/account/delete",
	"/me/restriction", "/account/restriction", "/account/restriction/lift",
	"/privacy-requests", "/privacy-requests/{id}", "/privacy/requests", "/privacy/register/{id}",
}

// mayChange reports whether r may change state and its route is not
// exempt.
func mayChange(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	_, pattern, _ := strings.Cut(r.Pattern, " ")
	pattern = strings.TrimPrefix(strings.TrimPrefix(pattern, "/api/v1/orgs/{org}"), "/o/{org}")
	for _, end := range readOnlyExempt {
		if pattern == end || r.Method+" "+pattern == end {
			return false
		}
	}
	return true
}

// checkReadOnly refuses a change to the request's organisation while its
// licence has ended.
func (s *server) checkReadOnly(r *http.Request) error {
	st := state(r)
	if !mayChange(r) || st.org.ID == "" {
		return nil
	}
	// Without a credential of the organisation the route answers 401 by
	// itself; of the anonymous writes only accepting an invitation
	// changes the organisation.
	if !st.actor.IsOrgUser(st.org.ID) && !st.actor.IsSupport(st.org.ID) &&
		!strings.HasSuffix(r.Pattern, "/invitations/accept") && !strings.HasSuffix(r.Pattern, "/{org}/invite") {
		return nil
	}
	ro, err := s.retention.ReadOnly(r.Context(), st.org.ID)
	if err != nil {
		return err
	}
	if ro {
		return kluis.LicenceReadOnly()
	}
	return nil
}

// readOnly guards an organisation's API route.
func (s *server) readOnly(next handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := s.checkReadOnly(r); err != nil {
			return err
		}
		return next(w, r)
	}
}

// readOnlyPage guards an organisation's page.
func (s *server) readOnlyPage(fn pageFunc) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		if err := s.checkReadOnly(r); err != nil {
			return err
		}
		return fn(w, r, p)
	}
}
