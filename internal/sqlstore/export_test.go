package sqlstore

import (
	"context"

	"github.com/kluis/kluis"
)

// AppendThenFail appends an event in a write transaction and then fails it,
// to prove a rolled-back change leaves no audit event.
func (s *Store) AppendThenFail(ctx context.Context, org kluis.OrgID, failure error) error {
	return s.write(ctx, orgChain(org), func(t *Tx) error {
		if err := t.appendEvent(ctx, orgChain(org), kluis.CLIActor, "test.rolled_back", "", "success", nil); err != nil {
			return err
		}
		return failure
	})
}
