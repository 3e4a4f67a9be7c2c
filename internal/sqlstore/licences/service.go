// Package licences is the area of an organisation's licence and its
// projects' activity (R13). The operator sets the licence; the limits are
// kept at the boundary, each in the transaction that would exceed it: the
// people area calls CheckUser when inviting, the projects area CheckProject
// when creating a project and CheckStorage in an upload's commit, and
// StartProject checks the active projects itself. Decisions about time
// (the end date, an activity period's timeout) use the store's clock.
//
// It implements kluis.LicenceService.
package licences

import (
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Service is the licences area.
type Service struct {
	core *sqlstore.Core
}

// New returns the licences area over core.
func New(core *sqlstore.Core) *Service { return &Service{core: core} }

var _ kluis.LicenceService = (*Service)(nil)
