package kluis

import (
	"context"
	"strings"
	"time"
)

// Support access by the customer's consent (R22): the operator's support
// staff see an organisation's data only through a grant its managers (for
// the organisation) or a project's owners (for that project) give, with a
// reason and an end at most MaxSupportGrant away, and only in a support
// session that acts as "support:OPERATOR_ID" with exactly the grant's
// rights. Every use lands in the organisation's own chain.

// MaxSupportGrant is the longest a support grant may run.
const MaxSupportGrant = 14 * 24 * time.Hour

// SupportRight is what a grant lets support do.
type SupportRight string

// The support rights.
const (
	// SupportView reads what the grant's scope shows a manager (or, for a
	// project, a viewer).
	SupportView SupportRight = "view"
	// SupportEdit also changes it, like a manager (or a project's editor).
	SupportEdit SupportRight = "edit"
)

// Valid reports whether r is view or edit.
func (r SupportRight) Valid() bool { return r == SupportView || r == SupportEdit }

// SupportScope is what a grant covers: the whole organisation ("org") or one
// project ("project:ID").
type SupportScope string

// SupportOrgScope is a grant over the whole organisation.
const SupportOrgScope SupportScope = "org"

// SupportProjectScope is a grant over one project.
func SupportProjectScope(p ProjectID) SupportScope { return SupportScope("project:" + string(p)) }

// Org reports whether s covers the organisation.
func (s SupportScope) Org() bool { return s == SupportOrgScope }

// Project returns the project s covers, if it is a project's scope.
func (s SupportScope) Project() (ProjectID, bool) {
	id, ok := strings.CutPrefix(string(s), "project:")
	return ProjectID(id), ok && ValidID(id)
}

// Valid reports whether s is "org" or a project's scope.
func (s SupportScope) Valid() bool {
	_, ok := s.Project()
	return s.Org() || ok
}

// SupportAccess is what a support session carries: the grant it runs on.
type SupportAccess struct {
	GrantID   SupportGrantID
	Scope     SupportScope
	Right     SupportRight
	ExpiresAt time.Time
	// OperatorName is the support member's name, for the banner of the
	// pages the session opens.
	OperatorName string
}

// AuthorOf is who a file or version records as its author when actor
// changes it: the person, or "support:OPERATOR_ID" for a support session
// (R11, R22), so history never shows support's work as nobody's.
func AuthorOf(a Actor) UserID {
	if a.Support != nil {
		return UserID(a.AuditName())
	}
	return a.UserID
}

// IsSupportAuthor reports whether an author is a support session's.
func IsSupportAuthor(id UserID) bool { return strings.HasPrefix(string(id), "support:") }

// SupportGrantID identifies a support grant.
type SupportGrantID string

// SupportProjectRights is what a support session may do to project of org
// whose managers hold managerRights under the organisation's policy: an
// organisation grant reads (view) or also changes (edit) what a manager
// may; a project grant is a viewer's or an editor's rights on that project
// alone. Support never grants, deletes or starts.
func SupportProjectRights(a Actor, org OrgID, project ProjectID, managerRights Rights) Rights {
	if !a.IsSupport(org) {
		return 0
	}
	var r Rights
	switch a.Support.Right {
	case SupportView:
		r = Rights(RightView)
	case SupportEdit:
		r = Rights(RightView | RightEdit)
	}
	if a.Support.Scope.Org() {
		return r & managerRights
	}
	if p, ok := a.Support.Scope.Project(); ok && p == project {
		return r
	}
	return 0
}

// SupportGrant is a grant of support access as the organisation's managers
// see it.
type SupportGrant struct {
	ID     SupportGrantID
	Scope  SupportScope
	Right  SupportRight
	Reason string
	// GrantedBy is the audit name of the person who granted it (or approved
	// the request it came from); ApprovedBy the second manager's, when the
	// policy asks for four eyes (empty while the grant waits for one).
	GrantedBy  string
	ApprovedBy string
	RequestID  SupportRequestID // empty unless it answers a request
	CreatedAt  time.Time
	ExpiresAt  time.Time
	RevokedAt  time.Time // zero unless revoked
	RevokedBy  string
	// Status is "pending" (waiting for a second manager), "active",
	// "expired" or "revoked".
	Status string
	// Uses are the requests support made with it, newest first.
	Uses []SupportUse
}

// The statuses of a support grant.
const (
	SupportPending = "pending"
	SupportActive  = "active"
	SupportExpired = "expired"
	SupportRevoked = "revoked"
)

// SupportUse is one request made through a support session, recorded
// before it runs.
type SupportUse struct {
	At       time.Time
	Operator OperatorID
	Method   string
	Route    string // the route's pattern, such as "GET /api/v1/orgs/{org}/users/{id}"
	Object   string // what it touched: "user:ID", "project:ID", "group:ID" or "org:ID"
}

// SupportGrantInput is what a manager or a project's owner grants.
type SupportGrantInput struct {
	Scope     SupportScope
	Right     SupportRight
	Reason    string
	ExpiresAt time.Time
}

// Normalize trims the reason.
func (in SupportGrantInput) Normalize() SupportGrantInput {
	in.Reason = strings.TrimSpace(in.Reason)
	return in
}

// Validate checks a grant against now: a valid scope and right, a reason,
// and an end after now and at most MaxSupportGrant away (a later end is
// refused, never shortened).
func (in SupportGrantInput) Validate(now time.Time) error {
	f := map[string]string{}
	if !in.Scope.Valid() {
		f["scope"] = `must be "org" or "project:ID"`
	}
	if !in.Right.Valid() {
		f["right"] = `must be "view" or "edit"`
	}
	if err := validLabel("reason", in.Reason, 500); err != nil {
		f["reason"] = "must be 1 to 500 characters"
	}
	switch {
	case in.ExpiresAt.IsZero():
		f["expires_at"] = "is required"
	case !in.ExpiresAt.After(now):
		f["expires_at"] = "must be in the future"
	case in.ExpiresAt.Sub(now) > MaxSupportGrant:
		f["expires_at"] = "must be at most 14 days away"
	}
	if len(f) > 0 {
		return Invalid(f)
	}
	return nil
}

// SupportRequestID identifies a request of support for access.
type SupportRequestID string

// SupportRequest is support's request for access, which managers (or a
// project's owners) approve or refuse.
type SupportRequest struct {
	ID       SupportRequestID
	Operator OperatorID
	Scope    SupportScope
	Right    SupportRight
	Reason   string
	At       time.Time
	// Status is "open", "approved" or "refused".
	Status    string
	DecidedBy string
	DecidedAt time.Time
	GrantID   SupportGrantID // the grant an approval made
}

// SupportSession is a support session as it is opened: the token, shown
// once, and when it ends at the latest.
type SupportSession struct {
	Token     string
	ExpiresAt time.Time
}

// SupportTokenPrefix starts every support session's token, so that it is
// told apart from a person's session without a lookup.
const SupportTokenPrefix = "kluis_sup_"

// IsSupportToken reports whether a credential claims to be a support
// session's token.
func IsSupportToken(credential string) bool { return strings.HasPrefix(credential, SupportTokenPrefix) }

// SupportService is support access by consent (R22).
type SupportService interface {
	// GrantSupport gives support access: a manager for the organisation, a
	// project's owner (or whoever holds the grant right on it) for that
	// project; never beyond the granter's own rights, after a fresh
	// authentication. Under the policy's four eyes the grant waits for a
	// second manager. Errors: forbidden, not_found, invalid_input,
	// reauth_required.
	GrantSupport(ctx context.Context, org OrgID, actor Actor, in SupportGrantInput) (SupportGrant, error)
	// ApproveSupportGrant is the second manager's approval of a pending
	// grant (four eyes). Errors: forbidden, not_found, conflict,
	// reauth_required.
	ApproveSupportGrant(ctx context.Context, org OrgID, actor Actor, id SupportGrantID) (SupportGrant, error)
	// SupportGrants lists the organisation's grants with every use, and
	// its requests, newest first. Managers only.
	SupportGrants(ctx context.Context, org OrgID, actor Actor) ([]SupportGrant, []SupportRequest, error)
	// RevokeSupportGrant ends a grant and its sessions at once: its granter
	// or any manager. Errors: forbidden, not_found.
	RevokeSupportGrant(ctx context.Context, org OrgID, actor Actor, id SupportGrantID) error
	// RequestSupport is support asking an organisation for access.
	// Operator support only. Errors: forbidden, not_found, invalid_input.
	RequestSupport(ctx context.Context, actor Actor, slug string, scope SupportScope, right SupportRight, reason string) (SupportRequest, error)
	// ApproveSupportRequest turns an open request into a grant ending at
	// expiresAt; RefuseSupportRequest refuses it. Whoever could grant the
	// same, after a fresh authentication. Errors: forbidden, not_found,
	// conflict, invalid_input, reauth_required.
	ApproveSupportRequest(ctx context.Context, org OrgID, actor Actor, id SupportRequestID, expiresAt time.Time) (SupportGrant, error)
	RefuseSupportRequest(ctx context.Context, org OrgID, actor Actor, id SupportRequestID) error
	// OperatorSupportGrants lists an organisation's grants and requests
	// as support sees them: scope, right, status and times, never the
	// customer's people. Operator support only.
	OperatorSupportGrants(ctx context.Context, actor Actor, slug string) ([]SupportGrant, []SupportRequest, error)
	// OpenSupportSession opens a session on an active grant. Operator
	// support only. Errors: forbidden, not_found.
	OpenSupportSession(ctx context.Context, actor Actor, slug string, grant SupportGrantID) (SupportSession, error)
	// AuthenticateSupport resolves a support session's token; a session
	// whose grant was revoked or ended, or that was idle past the
	// organisation's timeout, is gone. Errors: unauthenticated.
	AuthenticateSupport(ctx context.Context, from Origin, token string) (Identity, error)
	// RecordSupportUse records one request made through a support session
	// in the organisation's chain (support.access) and in the grant's uses.
	RecordSupportUse(ctx context.Context, actor Actor, use SupportUse) error
	// EndSupportSession ends the support session of actor (signing out of
	// it).
	EndSupportSession(ctx context.Context, actor Actor) error
	// SupportIn reports the support sessions active in the organisation
	// now, for the banner on its managers' pages. Managers only; others
	// get none.
	SupportIn(ctx context.Context, org OrgID, actor Actor) ([]SupportAccess, error)
}
