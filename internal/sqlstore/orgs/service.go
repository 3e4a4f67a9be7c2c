// Package orgs is the organisations area (R1, R5, R19, R36): the
// operator's creating and deleting of organisations, each organisation's
// policy, and the switches that stop every login of an organisation or of
// the instance. It implements kluis.OrgService, kluis.PolicyService and
// kluis.LoginsService over the shared core.
package orgs

import (
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/projects"
	"github.com/kluis/kluis/internal/sqlstore/users"
)

// Service is the organisations area.
type Service struct {
	core     *sqlstore.Core
	users    *users.Service    // the first manager's invitation
	projects *projects.Service // a deleted organisation's content
}

// New returns the organisations area over core.
func New(core *sqlstore.Core, users *users.Service, projects *projects.Service) *Service {
	return &Service{core: core, users: users, projects: projects}
}

var (
	_ kluis.OrgService    = (*Service)(nil)
	_ kluis.PolicyService = (*Service)(nil)
	_ kluis.LoginsService = (*Service)(nil)
)
