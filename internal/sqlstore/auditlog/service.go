// Package auditlog is the audit area (R23, R25): managers search, filter,
// export and verify their organisation's chain; the command line verifies
// every chain; checkpoints are signed and witnessed outside the database;
// key life-cycle events reach the chains. It implements kluis.AuditService
// over the shared core, which appends the events (DESIGN §3).
package auditlog

import (
	"sync"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Service is the audit area.
type Service struct {
	core    *sqlstore.Core
	signer  *audit.Signer
	witness audit.WitnessLog

	cpMu   sync.Mutex
	lastCP map[string]audit.Checkpoint // last witnessed checkpoint per chain
}

// New returns the audit area over core, signing checkpoints with signer and
// writing them to witness, the copy outside the database.
func New(core *sqlstore.Core, signer *audit.Signer, witness audit.WitnessLog) *Service {
	return &Service{core: core, signer: signer, witness: witness}
}

var _ kluis.AuditService = (*Service)(nil)
