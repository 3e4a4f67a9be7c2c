package httpserver

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/kluis/kluis"
)

// Cookie names. The __Host- prefix pins a cookie to this host and path "/";
// browsers accept Secure cookies on http://localhost.
const (
	sessionCookie  = "__Host-kluis_session"
	operatorCookie = "__Host-kluis_operator"
	// challengeCookie carries a password step's challenge to the second
	// step of an organisation's sign-in page: HttpOnly, Secure,
	// SameSite=Strict, five minutes; never in a URL.
	challengeCookie = "__Host-kluis_challenge"
	// operatorChallengeCookie is challengeCookie for operator staff.
	operatorChallengeCookie = "__Host-kluis_operator_challenge"
	// deviceCookie holds a browser's device entries (DESIGN §6): proof that
	// it signed in to an account before, which exempts it from that
	// account's lock and from the address block.
	deviceCookie = "__Host-kluis_device"
)

// realm is what differs between the two doors of sign-in — the people of an
// organisation, and the operator's staff — for the handlers they share:
// sign-in, the second step, re-authentication, second factors and signing
// out are one maker each, and the realm wrappers (org, operator, orgPage,
// operatorPage) put the request's realm in its state. The services are
// called with Scope; the rest is paths, cookies and texts. Templates read
// the exported fields.
type realm struct {
	Scope kluis.Scope
	// Base is where the realm's pages live: "/o/acme" or "/operator".
	Base string
	// Account is the signed-in person's account page.
	Account string
	// Start is where a signed-in person starts: My account, or the
	// operator's organisations.
	Start string
	// sessionCookie and challengeCookie are the realm's cookies: a
	// browser may hold a session of each realm.
	sessionCookie, challengeCookie string
	// methods are the second-step methods the realm offers: operators have
	// no codes by SMS.
	methods []string
	// loginTitle and enrolNotice are text keys: the sign-in page's title,
	// and the notice of a page that sends an enrolling person to set up a
	// second factor.
	loginTitle, enrolNotice string
}

// orgRealm is the realm of organisation org's people.
func orgRealm(org kluis.Org) realm {
	base := "/o/" + org.Slug
	return realm{
		Scope: kluis.OrgScope(org.ID), Base: base, Account: base + "/account", Start: base + "/account",
		sessionCookie: sessionCookie, challengeCookie: challengeCookie,
		methods:    []string{"totp", "sms", "webauthn", kluis.MethodRecovery},
		loginTitle: "login.title", enrolNotice: "mfa_enrolment_required",
	}
}

// operatorRealm is the realm of the operator's staff.
var operatorRealm = realm{
	Scope: kluis.OperatorScope, Base: "/operator", Account: "/operator/account", Start: "/operator",
	sessionCookie: operatorCookie, challengeCookie: operatorChallengeCookie,
	methods:    []string{"totp", "webauthn", kluis.MethodRecovery},
	loginTitle: "operator_login.title", enrolNotice: "operator_mfa_required",
}

// InOrg reports whether the realm is an organisation's.
func (rm realm) InOrg() bool { return rm.Scope.Realm == kluis.RealmOrg }

// method checks the method of a second factor an API client names: one the
// realm offers; none means the authenticator app.
func (rm realm) method(m string) (string, error) {
	switch {
	case m == "":
		return "totp", nil
	case slices.Contains(rm.methods, m):
		return m, nil
	}
	return "", kluis.Invalid(map[string]string{"method": "must be one of " + strings.Join(rm.methods, ", ")})
}

// formMethod is the method a page's form posted: one the realm offers,
// else the authenticator app.
func (rm realm) formMethod(m string) string {
	if slices.Contains(rm.methods, m) {
		return m
	}
	return "totp"
}

// setSession gives a browser its new session in the realm's cookie
// (Secure, HttpOnly, SameSite=Lax, host-only), and the device cookie of a
// completed sign-in (DESIGN §6): HttpOnly, host-only, sent only to this
// site, kept for the device lifetime.
func (rm realm) setSession(w http.ResponseWriter, sess kluis.Session) {
	http.SetCookie(w, &http.Cookie{
		Name: rm.sessionCookie, Value: sess.Token, Path: "/", Expires: sess.ExpiresAt,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
	if sess.DeviceCookie != "" {
		http.SetCookie(w, &http.Cookie{
			Name: deviceCookie, Value: sess.DeviceCookie, Path: "/", Expires: sess.DeviceExpires,
			Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		})
	}
}

// setChallenge hands a password step's challenge to the second step's page.
func (rm realm) setChallenge(w http.ResponseWriter, c *kluis.Challenge) {
	http.SetCookie(w, &http.Cookie{Name: rm.challengeCookie, Value: c.Token, Path: "/", Expires: c.ExpiresAt,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

func clearCookie(name string) *http.Cookie {
	return &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}
}

// loginAnswer is the answer of a new session: the token for API clients
// (the browser gets the cookie), with the user when a person of an
// organisation completes a sign-in.
type loginAnswer struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	User      *userJSON `json:"user,omitempty"`
	// MFAEnrolmentRequired: the session may only enrol a second factor
	// (the realm or the policy requires one, R17).
	MFAEnrolmentRequired bool `json:"mfa_enrolment_required,omitempty"`
}

// answerSession answers a new session in the request's realm; withUser
// adds the person of an organisation (a completed sign-in, not a
// re-authentication).
func answerSession(w http.ResponseWriter, r *http.Request, sess kluis.Session, withUser bool) {
	rm := state(r).realm
	rm.setSession(w, sess)
	a := loginAnswer{Token: sess.Token, ExpiresAt: sess.ExpiresAt, MFAEnrolmentRequired: sess.MFAEnrolmentRequired}
	if withUser && rm.InOrg() {
		uj := toUserJSON(sess.User)
		a.User = &uj
	}
	writeJSON(w, http.StatusOK, a)
}
