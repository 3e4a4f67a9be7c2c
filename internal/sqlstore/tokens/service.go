// Package tokens is the area of personal API tokens (R14): a person's
// scripts call the organisation's API with a token of their own. It
// implements kluis.TokenService, and authenticates tokens for the sign-in
// area.
package tokens

import (
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Service is the personal API tokens area.
type Service struct {
	core *sqlstore.Core
}

// New returns the personal API tokens area over core.
func New(core *sqlstore.Core) *Service { return &Service{core: core} }

var _ kluis.TokenService = (*Service)(nil)
