// Package keywork is the key area over the data (R28): rotating an
// organisation's keys, re-encrypting what the retired versions sealed, in
// small resumable steps, and showing what still uses them. It implements
// kluis.KeyService; the key store itself is internal/keys.
package keywork

import (
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Service is the key area over the data.
type Service struct {
	core *sqlstore.Core
	orgs kluis.OrgService
}

// New returns the key area over core; orgs resolves slugs.
func New(core *sqlstore.Core, orgs kluis.OrgService) *Service {
	return &Service{core: core, orgs: orgs}
}

var _ kluis.KeyService = (*Service)(nil)
