// Package users is the area of an organisation's people (R2, R3, R4, R5,
// R8): managers invite, read, change, disable and delete them; an invited
// person joins; a person keeps their own profile and e-mail address and
// sees their sign-ins. It implements kluis.UserService and
// kluis.AccountService over the shared core.
package users

import (
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/password"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/throttle"
)

// Service is the people area.
type Service struct {
	core     *sqlstore.Core
	hasher   *password.Hasher
	throttle *throttle.Service // accepting an invitation is an unauthenticated route
}

// New returns the people area over core.
func New(core *sqlstore.Core, hasher *password.Hasher, throttle *throttle.Service) *Service {
	return &Service{core: core, hasher: hasher, throttle: throttle}
}

var (
	_ kluis.UserService    = (*Service)(nil)
	_ kluis.AccountService = (*Service)(nil)
)
