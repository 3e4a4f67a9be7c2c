package httpserver

import (
	"github.com/kluis/kluis"
)

// enrolmentRoutes are the routes a session limited to enrolment may use:
// the organisation requires a second factor and the person has none yet
// (R17, kluis.Actor.MFAEnrolmentOnly). Every other signed-in route answers
// mfa_enrolment_required (a page: My account, where the set-up is). This
// list is the one place the limit is decided; orgUser and orgPage apply it,
// and operator and operatorPage for operators, who must always enrol.
var enrolmentRoutes = map[string]bool{
	"GET /api/v1/orgs/{org}/me":                          true,
	"POST /api/v1/orgs/{org}/logout":                     true,
	"POST /api/v1/orgs/{org}/me/reauth":                  true,
	"POST /api/v1/orgs/{org}/me/reauth/webauthn/options": true,
	"POST /api/v1/orgs/{org}/me/totp":                    true,
	"POST /api/v1/orgs/{org}/me/totp/confirm":            true,
	"GET /api/v1/orgs/{org}/me/passkeys":                 true,
	"POST /api/v1/orgs/{org}/me/passkeys/options":        true,
	"POST /api/v1/orgs/{org}/me/passkeys":                true,
	"POST /api/v1/orgs/{org}/me/sms":                     true,
	"POST /api/v1/orgs/{org}/me/sms/confirm":             true,
	"POST /api/v1/orgs/{org}/me/reauth/sms":              true,
	"GET /o/{org}/account":                               true,
	"POST /o/{org}/logout":                               true,
	"GET /o/{org}/account/reauth":                        true,
	"POST /o/{org}/account/reauth":                       true,
	"POST /o/{org}/account/totp":                         true,
	"GET /o/{org}/account/totp/qr.png":                   true,
	"POST /o/{org}/account/totp/confirm":                 true,
	"POST /o/{org}/account/passkeys/new":                 true,
	"POST /o/{org}/account/passkeys":                     true,
	"POST /o/{org}/account/sms":                          true,
	"POST /o/{org}/account/sms/confirm":                  true,
	"POST /o/{org}/account/reauth/sms":                   true,
	// Operators must have a second factor (issue 5 item 8): until they
	// enrol, their session reaches these only.
	"GET /api/v1/operator/me":               true,
	"POST /api/v1/operator/logout":          true,
	"POST /api/v1/operator/me/reauth":       true,
	"POST /api/v1/operator/me/totp":         true,
	"POST /api/v1/operator/me/totp/confirm": true,
	"GET /operator/account":                 true,
	"POST /operator/logout":                 true,
	"GET /operator/account/reauth":          true,
	"POST /operator/account/reauth":         true,
	"POST /operator/account/totp":           true,
	"GET /operator/account/totp/qr.png":     true,
	"POST /operator/account/totp/confirm":   true,
}

// checkEnrolment refuses a request of a session limited to enrolment on
// any route but those of enrolmentRoutes.
func checkEnrolment(st *reqState) error {
	if st.actor.MFAEnrolmentOnly && !enrolmentRoutes[st.route] {
		if st.actor.Realm == kluis.RealmOperator {
			return kluis.ErrOperatorMFAEnrolmentRequired
		}
		return kluis.ErrMFAEnrolmentRequired
	}
	return nil
}
