package kluis

import (
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
