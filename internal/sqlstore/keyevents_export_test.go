package sqlstore

import (
	"context"

	"github.com/kluis/kluis/internal/keys"
)

// AppendKeyEventsOnly runs the data transaction of DrainKeyEvents alone: the
// events are in their chains and noted as drained, and the key store is not
// told. That is what a process leaves that dies between the drain's data
// commit and its mark in the key store.
func (s *Core) AppendKeyEventsOnly(ctx context.Context, events []keys.Event) (int, error) {
	return s.appendKeyEvents(ctx, events)
}
