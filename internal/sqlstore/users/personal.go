package users

import (
	"context"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Remove deletes user u of org in the transaction and schedules the
// destruction of their key, refusing the last active manager
// (kluis.ErrLastManager): the removal a manager's delete and the
// operator's erasure on request use, for the personal-data area's erasure
// of one's own account. The caller records the event in the same
// transaction and calls Core.ShredNow with the returned id after the
// commit.
func (s *Service) Remove(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, u kluis.User) (shred string, err error) {
	return s.remove(ctx, t, org, u)
}
