package kluis

import (
	"context"
	"net/netip"
	"time"
)

// Scope is where someone signs in: the users of one organisation
// (RealmOrg with its id), or the operator's staff (RealmOperator). Sign-in,
// sessions and second factors are one implementation for both, told apart
// by the scope.
type Scope struct {
	Realm Realm
	Org   OrgID // RealmOrg only
}

// OrgScope is the scope of the users of organisation org.
func OrgScope(org OrgID) Scope { return Scope{Realm: RealmOrg, Org: org} }

// OperatorScope is the scope of the operator's staff.
var OperatorScope = Scope{Realm: RealmOperator}

// Valid reports whether s names a realm (and, for RealmOrg, an
// organisation).
func (s Scope) Valid() bool {
	switch s.Realm {
	case RealmOrg:
		return s.Org != ""
	case RealmOperator:
		return s.Org == ""
	}
	return false
}

// Signed reports whether a is a signed-in person of the scope: a user of
// its organisation, or operator staff with a session. The command line is
// not (it has no session).
func (s Scope) Signed(a Actor) bool {
	switch s.Realm {
	case RealmOrg:
		return a.IsOrgUser(s.Org)
	case RealmOperator:
		return a.Realm == RealmOperator && a.OperatorID != "" && a.SessionID != ""
	}
	return false
}

// InSession reports whether a is a signed-in person of the scope acting
// through a session, not through a personal API token: changing one's
// password, factors or sessions, and re-authenticating, need one. (The
// routes refuse tokens there too; this holds for every other caller.)
func (s Scope) InSession(a Actor) bool { return s.Signed(a) && a.SessionID != "" }

// Subject returns the id of the signed-in person a of the scope: the user
// id, or the operator id.
func (s Scope) Subject(a Actor) string {
	if s.Realm == RealmOperator {
		return string(a.OperatorID)
	}
	return string(a.UserID)
}

// Origin is what kluis knows of where a request comes from. It travels
// visibly with every call that records or throttles (in the Actor, or as a
// parameter of the calls made before anyone is signed in): the audit chain
// records the client address sealed (R24, R28), and the brute-force
// protection counts failures per address and trusts a browser's device
// cookie (R18, DESIGN §6).
type Origin struct {
	// Client is the client's address (trusted proxies resolved); zero for
	// the command line and background work.
	Client netip.Addr
	// Device is a coarse device name from a fixed vocabulary ("Firefox on
	// Linux"), never the raw User-Agent; "" when unknown.
	Device string
	// DeviceCookie is the browser's device cookie, as sent; "" when none.
	DeviceCookie string
}

// Session is a newly opened session: its secret token, shown once, and its
// absolute end. The idle timeout may end it earlier.
type Session struct {
	ID        SessionID
	Token     string
	ExpiresAt time.Time
	// MFAEnrolmentRequired says the session is limited to enrolling a
	// second factor: the realm or the policy requires one and the person
	// has none (R17).
	MFAEnrolmentRequired bool
	// DeviceCookie, when set, is the browser's new device cookie after a
	// completed sign-in (DESIGN §6), valid until DeviceExpires.
	DeviceCookie  string
	DeviceExpires time.Time
	// User is the person signed in, for RealmOrg sign-ins (login and second
	// step); zero otherwise.
	User User
}

// ResetTTL is how long a password-reset link works (R20).
const ResetTTL = 30 * time.Minute

// ChallengeTTL is how long the password step of a two-step login is good
// for.
const ChallengeTTL = 5 * time.Minute

// Challenge is the answer of a password step for an account with a second
// factor: no session yet, a single-use token for the second step, and the
// methods enrolled. It is returned as the error of Login.
type Challenge struct {
	Token     string
	Methods   []string // "totp", "sms", "webauthn", "recovery"
	ExpiresAt time.Time
}

func (c *Challenge) Error() string { return "a second factor is required" }

// Identity is what a credential stands for: the actor, and for RealmOrg
// its organisation and the person.
type Identity struct {
	Actor Actor
	Org   Org // RealmOrg only
	// User opens the signed-in person's record (RealmOrg only; nil
	// otherwise). It decrypts on its first call and remembers the answer,
	// so a request that does not show the person pays nothing for it and
	// one that does pays once.
	User func(context.Context) (User, error)
}

// SessionInfo is one of a person's sessions as My account shows it.
type SessionInfo struct {
	ID         SessionID
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
	Client     string // "" when not recorded
	Device     string // "" when not recorded
	Current    bool   // the session of the request
}

// SignIn is one attempt to sign in to a person's account, as they see it
// on My account.
type SignIn struct {
	At time.Time
	// OK is false for a failed attempt (a wrong password).
	OK bool
	// Client is the address of a successful sign-in, decrypted; failed
	// attempts show none: the address is the one who tried, maybe not the
	// person, and it is kept for the managers' log only.
	Client string
}

// MaxSignIns caps AccountService.FindSignIns.
const MaxSignIns = 50

// SignInService lets people in, in either realm (R14, R17, R18): the
// password step, the second step, proving again who one is, changing one's
// password, and signing out. Every failure of a step taken before sign-in
// gets one and the same unauthenticated answer, is recorded, and counts
// against the identifier and the client address; while a lock or block
// holds, the answer is too_many_requests with the time to wait.
type SignInService interface {
	// Login checks an e-mail address and password in scope and opens a
	// session; with a second factor enrolled it opens none and returns a
	// *Challenge as its error. Errors: unauthenticated, logins_disabled,
	// too_many_requests, *Challenge.
	Login(ctx context.Context, scope Scope, from Origin, email, password string) (Session, error)
	// LoginSecondStep completes a login with a second factor: method
	// "totp", "sms" or "recovery" with a code, or "webauthn" with an
	// assertion. Errors: unauthenticated, logins_disabled, too_many_requests.
	LoginSecondStep(ctx context.Context, scope Scope, from Origin, challenge, method, code string) (Session, error)
	// ChallengeMethods returns the methods a live challenge may be
	// completed with. Errors: unauthenticated.
	ChallengeMethods(ctx context.Context, scope Scope, challenge string) ([]string, error)
	// PrepareSecondStep readies a second step: for "webauthn" it returns
	// the options for navigator.credentials.get (JSON); for "sms" it sends
	// a code to the verified number and returns nothing. Errors:
	// unauthenticated, forbidden, too_many_requests.
	PrepareSecondStep(ctx context.Context, scope Scope, from Origin, challenge, method string) ([]byte, error)
	// Reauth proves again who the signed-in person is — the password, and
	// a second factor when one is enrolled — and replaces the session with
	// a fresh one. Errors: unauthenticated, logins_disabled, invalid_input.
	Reauth(ctx context.Context, scope Scope, actor Actor, password, method, code string) (Session, error)
	// PrepareReauth readies a re-authentication's second factor, as
	// PrepareSecondStep. Errors: unauthenticated, not_found,
	// too_many_requests.
	PrepareReauth(ctx context.Context, scope Scope, actor Actor, method string) ([]byte, error)
	// Logout ends the actor's session. Errors: unauthenticated.
	Logout(ctx context.Context, scope Scope, actor Actor) error
	// ChangePassword replaces the signed-in person's password (fresh
	// authentication needed); other sessions and API tokens end. Errors:
	// unauthenticated, reauth_required, invalid_input.
	ChangePassword(ctx context.Context, scope Scope, actor Actor, current, next string) error
}

// SessionService turns credentials into actors and lets people see and end
// their sessions (R14, R21).
type SessionService interface {
	// Authenticate resolves a credential of the realm — a session token,
	// or for RealmOrg a personal API token — into its identity. Expired
	// sessions are deleted. Errors: unauthenticated.
	Authenticate(ctx context.Context, realm Realm, from Origin, credential string) (Identity, error)
	// FindSessions returns the signed-in person's live sessions, newest
	// first. Errors: unauthenticated.
	FindSessions(ctx context.Context, scope Scope, actor Actor) ([]SessionInfo, error)
	// EndSession ends one of the person's sessions. Errors:
	// unauthenticated, reauth_required, not_found.
	EndSession(ctx context.Context, scope Scope, actor Actor, id SessionID) error
	// EndOtherSessions ends every session of the person but the caller's
	// and returns how many ended. Errors: unauthenticated.
	EndOtherSessions(ctx context.Context, scope Scope, actor Actor) (int, error)
}

// RecoveryService lets an organisation's people back in without a manager:
// a forgotten password (R20) and a sign-in lock (R18). Both answer the same
// whatever the address or token, so they reveal nothing about accounts.
type RecoveryService interface {
	// RequestPasswordReset mails a single-use reset link when the address
	// belongs to an active user, and answers the same in the same time
	// otherwise.
	RequestPasswordReset(ctx context.Context, org OrgID, from Origin, email string) error
	// ResetPassword sets a new password with a reset link's token; every
	// session ends. Errors: not_found, invalid_input, too_many_requests.
	ResetPassword(ctx context.Context, org OrgID, from Origin, token, password string) error
	// Unlock lifts the sign-in lock an unlock link was mailed for. Errors:
	// not_found, too_many_requests.
	Unlock(ctx context.Context, org OrgID, from Origin, token string) error
}
