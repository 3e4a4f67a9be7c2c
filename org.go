package kluis

import (
	"context"
	"time"
)

// NewOrg is what the operator gives to create an organisation.
type NewOrg struct {
	Slug         string
	Name         string
	Language     string // "en" (default) or "nl": the language of its mails
	ManagerEmail string
	ManagerName  string // optional: the manager gives it when accepting
}

// OrgService is the operator's administration of organisations (R1, R5,
// R36) and the lookup every organisation route starts with.
type OrgService interface {
	// CreateOrg creates an organisation with the default policy and
	// invites its first manager; it returns the organisation and the
	// invitation link. Operators and the command line. Errors:
	// invalid_input, conflict, forbidden.
	CreateOrg(ctx context.Context, actor Actor, in NewOrg) (Org, string, error)
	// DeleteOrg deletes an organisation with its people and data and
	// destroys its keys. Errors: forbidden, not_found.
	DeleteOrg(ctx context.Context, actor Actor, slug string) error
	// FindOrgBySlug resolves a URL's organisation. Errors: not_found.
	FindOrgBySlug(ctx context.Context, slug string) (Org, error)
	// FindOrgs lists every organisation (no personal data). Operators and
	// the command line. Errors: forbidden.
	FindOrgs(ctx context.Context, actor Actor) ([]Org, error)
}

// PolicyService reads and sets an organisation's password, session and
// sign-in policy (R16, R17, R18, R21).
type PolicyService interface {
	// FindPolicy returns the policy; every user of the organisation may
	// read it. Errors: unauthenticated, forbidden.
	FindPolicy(ctx context.Context, org OrgID, actor Actor) (Policy, error)
	// UpdatePolicy sets the policy. Managers only. Errors: forbidden,
	// invalid_input.
	UpdatePolicy(ctx context.Context, org OrgID, actor Actor, p Policy) (Policy, error)
}

// LoginsService stops and resumes every login at once (R19): of one
// organisation (its managers, the operator), or of the whole instance (the
// operator). Stopping ends every other session.
type LoginsService interface {
	// LoginsStopped reports whether the organisation's logins are
	// stopped. Errors: forbidden.
	LoginsStopped(ctx context.Context, org OrgID, actor Actor) (bool, error)
	// SetLogins stops or resumes the organisation's logins and returns how
	// many sessions ended. Errors: forbidden, reauth_required.
	SetLogins(ctx context.Context, org OrgID, actor Actor, enabled bool) (int, error)
	// InstanceLoginsStopped reports whether every organisation's logins
	// are stopped, and since when. Errors: forbidden.
	InstanceLoginsStopped(ctx context.Context, actor Actor) (bool, time.Time, error)
	// SetInstanceLogins stops or resumes the logins of every organisation,
	// those created later included, and returns how many sessions ended.
	// Errors: forbidden, reauth_required.
	SetInstanceLogins(ctx context.Context, actor Actor, enabled bool) (int, error)
}
