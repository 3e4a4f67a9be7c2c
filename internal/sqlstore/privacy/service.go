// Package privacy is the register of data-subject requests and the
// organisation's privacy settings (issue 15, R34). It implements
// kluis.PrivacyRequestService over the shared core, and the scheduled
// reminders to managers before a request's due date (R45: an inbox notice
// and a mail that only says one waits).
//
// What it protects against: a person reading or changing another's
// requests (every query is bound to the organisation and, for a person who
// is not a manager, to the caller), a copy of the database revealing what
// a manager wrote about someone's request (the outcome is sealed under the
// organisation key), and a register that silently forgets a request
// (no foreign key to the person: the record outlives their erasure, with
// only the pseudonymous id; every change is in the organisation's chain).
package privacy

import (
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Service is the privacy requests area.
type Service struct {
	core *sqlstore.Core
}

// New returns the privacy requests area over core.
func New(core *sqlstore.Core) *Service { return &Service{core: core} }

var _ kluis.PrivacyRequestService = (*Service)(nil)
