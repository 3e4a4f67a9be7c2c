package kluis

import "time"

// Realm separates organisation users from operator staff: a credential of one
// realm is worthless in the other (R22).
type Realm string

// The realms.
const (
	RealmOrg      Realm = "org"
	RealmOperator Realm = "operator"
)

// Actor is who makes a request, as established by authentication. The zero
// Actor is anonymous.
type Actor struct {
	Realm      Realm
	OrgID      OrgID      // RealmOrg only
	UserID     UserID     // RealmOrg only
	Role       Role       // RealmOrg only
	OperatorID OperatorID // RealmOperator, and a support session
	// OperatorRole is the role of a signed-in operator (RealmOperator).
	OperatorRole OperatorRole
	// Support is set for a support session (R22): an operator acting in
	// organisation OrgID with exactly the rights of the customer's grant.
	// UserID is then empty: support is never a user of the organisation.
	Support   *SupportAccess
	SessionID SessionID
	// AuthenticatedAt is when the session's holder last proved who they are
	// (sign-in or re-authentication); zero outside a session.
	AuthenticatedAt time.Time
	// TokenID is set when a personal API token, not a session, made the
	// request; SessionID is then empty. ReadOnly is set for a token of
	// scope read.
	TokenID  TokenID
	ReadOnly bool
	// MFAEnrolmentOnly marks a session limited to enrolling a second
	// factor: the organisation requires one and the person has none yet
	// (R17). Every other request from it is refused with
	// EMFAEnrolmentRequired.
	MFAEnrolmentOnly bool
	// From is where the request came from: its client address is recorded,
	// sealed, with every audit event the actor causes (R24).
	From Origin
	// CLI marks the command line: a person with access to the server's data
	// folder and database, recorded as "cli" in the audit chain.
	CLI bool
	// System marks kluis's own background work.
	System bool
}

// CLIActor is the actor of the kluis command line.
var CLIActor = Actor{CLI: true}

// SystemActor is kluis's own background work (key re-encryption, retried key
// destruction): it has no rights of its own and appears as "system" in the
// audit log.
var SystemActor = Actor{System: true}

// AuditName is how the actor appears in audit events: "user:ID",
// "operator:ID", "cli" or "anonymous". Never a name or an address.
func (a Actor) AuditName() string {
	switch {
	case a.CLI:
		return "cli"
	case a.System:
		return "system"
	case a.Realm == RealmOrg && a.UserID != "":
		return "user:" + string(a.UserID)
	case a.Realm == RealmOrg && a.Support != nil:
		return "support:" + string(a.OperatorID)
	case a.Realm == RealmOperator && a.OperatorID != "":
		return "operator:" + string(a.OperatorID)
	}
	return "anonymous"
}

// IsOrgUser reports whether a is a signed-in user of organisation org.
func (a Actor) IsOrgUser(org OrgID) bool {
	return a.Realm == RealmOrg && a.OrgID == org && a.UserID != ""
}

// IsManager reports whether a is a signed-in manager of organisation org.
func (a Actor) IsManager(org OrgID) bool { return a.IsOrgUser(org) && a.Role == RoleManager }

// IsOperator reports whether a is a signed-in operator (of any role) or the
// command line.
func (a Actor) IsOperator() bool {
	return a.CLI || (a.Realm == RealmOperator && a.OperatorID != "")
}

// HasOperatorRole reports whether a is a signed-in operator of one of roles,
// or the command line: whoever runs kluis's commands has the server's data
// folder and its root key, and so every operator power already.
func (a Actor) HasOperatorRole(roles ...OperatorRole) bool {
	if a.CLI {
		return true
	}
	if a.Realm != RealmOperator || a.OperatorID == "" {
		return false
	}
	for _, r := range roles {
		if a.OperatorRole == r {
			return true
		}
	}
	return false
}

// IsSupport reports whether a is a support session in organisation org.
func (a Actor) IsSupport(org OrgID) bool {
	return a.Realm == RealmOrg && a.OrgID == org && a.Support != nil
}

// ManagerReads reports whether a may read what a manager of org reads: a
// manager, or support with an organisation grant (R22).
func (a Actor) ManagerReads(org OrgID) bool {
	return a.IsManager(org) || (a.IsSupport(org) && a.Support.Scope.Org())
}

// ManagerWrites reports whether a may change what a manager of org changes:
// a manager, or support with an organisation grant of right edit. Support
// never changes credentials, factors, keys, exports or grants: the rules of
// those ask IsManager.
func (a Actor) ManagerWrites(org OrgID) bool {
	return a.IsManager(org) || (a.IsSupport(org) && a.Support.Scope.Org() && a.Support.Right == SupportEdit)
}

// The rights of the foundation, one pure rule each (R2, R6, R8). The store
// calls them inside the transaction that acts, after loading by org id.

// CanReadUsers: managers list and read the users of their own
// organisation; so does support with an organisation grant (R22).
func CanReadUsers(a Actor, org OrgID) bool { return a.ManagerReads(org) }

// CanManageUsers: managers invite, change, disable and unlock the users of
// their own organisation; so does support with an organisation grant of
// right edit — except changing a role (CanChangeRoles) or deleting
// (CanDeleteUsers).
func CanManageUsers(a Actor, org OrgID) bool { return a.ManagerWrites(org) }

// CanChangeRoles: managers only; support never hands out a manager's
// powers.
func CanChangeRoles(a Actor, org OrgID) bool { return a.IsManager(org) }

// CanDeleteUsers: managers only; an erasure destroys a person's key, which
// support never does.
func CanDeleteUsers(a Actor, org OrgID) bool { return a.IsManager(org) }

// CanResetFactors: managers only; support never touches credentials or
// second factors (R22).
func CanResetFactors(a Actor, org OrgID) bool { return a.IsManager(org) }

// CanReadPolicy: every user of the organisation may read its policy, so they
// know what a new password must look like; and support with an
// organisation grant.
func CanReadPolicy(a Actor, org OrgID) bool { return a.IsOrgUser(org) || a.ManagerReads(org) }

// CanUpdatePolicy: managers only. The policy decides who sees projects and
// how support is let in, so support never changes it.
func CanUpdatePolicy(a Actor, org OrgID) bool { return a.IsManager(org) }

// CanReadAudit: managers read, filter and verify their organisation's log
// (R25); so does support with an organisation grant.
func CanReadAudit(a Actor, org OrgID) bool { return a.ManagerReads(org) }

// CanExportAudit: managers only: exports never go to support (R22).
func CanExportAudit(a Actor, org OrgID) bool { return a.IsManager(org) }

// CanManageOrgs: operator admins and the command line create and delete
// organisations. They never read an organisation's users (R22).
func CanManageOrgs(a Actor) bool { return a.HasOperatorRole(OperatorAdmin) }

// CanListOrgs: every operator role sees which organisations exist (never
// their people): admins keep them, support asks them for access, security
// watches their sign-ins.
func CanListOrgs(a Actor) bool {
	return a.HasOperatorRole(OperatorAdmin, OperatorSupport, OperatorSecurity)
}

// CanReadLicence: the organisation's managers, and operator admins and
// support (R13).
func CanReadLicence(a Actor, org OrgID) bool {
	return a.ManagerReads(org) || a.HasOperatorRole(OperatorAdmin, OperatorSupport)
}

// CanReadActivity: who had which project active when is the
// organisation's managers' to read (R13); the operator reads it without the
// people (CanReadLicence).
func CanReadActivity(a Actor, org OrgID) bool { return a.ManagerReads(org) }

// CanManageLicences: operator admins set an organisation's licence (R13).
func CanManageLicences(a Actor) bool { return a.HasOperatorRole(OperatorAdmin) }

// CanEraseOnRequest: operator admins (and the command line) erase one person
// when the organisation asks (R5).
func CanEraseOnRequest(a Actor) bool { return a.HasOperatorRole(OperatorAdmin) }

// CanKeepSecurity: operator security staff (and admins) keep address blocks
// and alarms and read the platform's audit chain (R46).
func CanKeepSecurity(a Actor) bool { return a.HasOperatorRole(OperatorAdmin, OperatorSecurity) }

// CanSeeJobs: every operator role sees the scheduled work's runs and the
// open alerts (DESIGN §9): none of it holds personal data.
func CanSeeJobs(a Actor) bool {
	return a.HasOperatorRole(OperatorAdmin, OperatorSupport, OperatorSecurity)
}

// CanResolveAlerts: operator admins and security staff, who act on what an
// alert reports (a broken audit chain, a failed backup), resolve it.
func CanResolveAlerts(a Actor) bool { return a.HasOperatorRole(OperatorAdmin, OperatorSecurity) }

// CanAskSupport: operator support asks an organisation for access and
// opens support sessions on its grants (R22).
func CanAskSupport(a Actor) bool { return a.HasOperatorRole(OperatorSupport) }

// CanManageOperatorAccounts: operator admins and the command line create
// operator accounts and see every operator's role and last sign-in (R8).
func CanManageOperatorAccounts(a Actor) bool { return a.HasOperatorRole(OperatorAdmin) }

// CanManageOperators: only the command line resets an operator's password
// or second factors, or disables or enables an operator: a stolen operator
// session cannot take over, or lock out, the other operators.
func CanManageOperators(a Actor) bool { return a.CLI }

// CanStopInstanceLogins: operator admins and security staff stop and
// resume every login of the instance in an incident (R19, R46).
func CanStopInstanceLogins(a Actor) bool { return a.HasOperatorRole(OperatorAdmin, OperatorSecurity) }

// CanStopLogins: managers stop and resume their organisation's logins (R19);
// operator admins and the command line may too, for an organisation that
// asks or in an incident.
func CanStopLogins(a Actor, org OrgID) bool {
	return a.IsManager(org) || a.HasOperatorRole(OperatorAdmin, OperatorSecurity)
}

// FreshAuthWindow is how long after signing in (or re-authenticating) a
// person may do sensitive things without proving again who they are.
const FreshAuthWindow = 5 * time.Minute

// FreshlyAuthenticated reports whether a proved who they are within
// FreshAuthWindow before now (issue 5: password, factors, tokens).
// A personal API token is never a fresh authentication.
func FreshlyAuthenticated(a Actor, now time.Time) bool {
	return !a.ViaToken() && !a.AuthenticatedAt.IsZero() && now.Sub(a.AuthenticatedAt) < FreshAuthWindow
}
