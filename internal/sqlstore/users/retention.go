package users

import (
	"context"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// EraseInactive erases user id of org in t for inactivity (R35), by the
// same removal as a manager's delete and the erasure on request: sessions,
// tokens, factors and personal data go with the row, and the destruction
// of the person's key is scheduled (the returned id: run it with
// core.ShredNow after the commit). The last active manager is refused with
// kluis.ErrLastManager and nothing changes. The caller records the event.
func (s *Service) EraseInactive(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, id kluis.UserID) (shred string, err error) {
	u, err := t.FindUser(ctx, org, id)
	if err != nil {
		return "", err
	}
	return s.remove(ctx, t, org, u)
}
