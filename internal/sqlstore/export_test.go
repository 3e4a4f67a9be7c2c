package sqlstore

import (
	"context"

	"github.com/kluis/kluis"
)

// AppendThenFail appends an event in a write transaction and then fails it,
// to prove a rolled-back change leaves no audit event.
func (s *Core) AppendThenFail(ctx context.Context, org kluis.OrgID, failure error) error {
	return s.Write(ctx, OrgChain(org), func(t *Tx) error {
		if err := t.Append(ctx, OrgChain(org), kluis.CLIActor, "test.rolled_back", "", "success", nil); err != nil {
			return err
		}
		return failure
	})
}
