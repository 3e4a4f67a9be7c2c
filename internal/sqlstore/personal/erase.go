package personal

import (
	"context"
	"errors"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// EraseMe deletes the signed-in person's own account (see
// kluis.PersonalDataService): in one transaction with its user.erase
// event, the users row goes, and with it their sessions, API tokens,
// second factors, inbox, pending e-mail change, grants and group
// memberships; their key is destroyed right after the commit (retried
// until it is, sqlstore.Shred). The organisation's projects stay, their
// versions and files keep the person's former id as author. Refused, and
// recorded as a denied user.erase: the last active manager
// (kluis.ErrLastManager) and the only owner of a project that is not in the
// trash (kluis.ErrLastOwner). Errors: unauthenticated, reauth_required,
// conflict.
func (s *Service) EraseMe(ctx context.Context, org kluis.OrgID, actor kluis.Actor) error {
	if !actor.IsOrgUser(org) {
		return kluis.ErrUnauthenticated
	}
	chain := sqlstore.OrgChain(org)
	target := sqlstore.UserTarget(actor.UserID)
	if !kluis.FreshlyAuthenticated(actor, s.core.Now()) {
		if err := s.core.RecordRefusal(ctx, chain, actor, "user.erase", target, "failure", map[string]any{"reason": "reauth_required"}); err != nil {
			return err
		}
		return kluis.ErrReauthRequired
	}
	var shred string
	err := s.core.Write(ctx, chain, func(t *sqlstore.Tx) error {
		u, err := t.FindUser(ctx, org, actor.UserID)
		if err != nil {
			return kluis.ErrUnauthenticated
		}
		n, err := OwnedAlone(ctx, t, org, u.ID)
		if err != nil {
			return err
		}
		if n > 0 {
			return sqlstore.Deny(chain, actor, "user.erase", target, kluis.ErrLastOwner)
		}
		shred, err = s.users.Remove(ctx, t, org, u)
		if errors.Is(err, kluis.ErrLastManager) {
			return sqlstore.Deny(chain, actor, "user.erase", target, kluis.ErrLastManager)
		}
		if err != nil {
			return err
		}
		return t.Append(ctx, chain, actor, "user.erase", target, "success", nil)
	})
	if err == nil {
		s.core.ShredNow(ctx, actor, shred)
	}
	return err
}

// OwnedAlone counts the projects of org, not in the trash, of which user is
// an owner (by a direct grant or through a group) and nobody else is.
func OwnedAlone(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, user kluis.UserID) (int, error) {
	var n int
	err := t.QueryRow(ctx, `WITH owners AS (
			SELECT g.project_id, g.user_id FROM project_grants g
				WHERE g.org_id = ? AND g.relation = 'owner' AND g.user_id IS NOT NULL
			UNION
			SELECT g.project_id, m.user_id FROM project_grants g JOIN group_members m ON m.group_id = g.group_id
				WHERE g.org_id = ? AND g.relation = 'owner'
		)
		SELECT COUNT(*) FROM projects p WHERE p.org_id = ? AND p.deleted_at IS NULL
			AND EXISTS (SELECT 1 FROM owners o WHERE o.project_id = p.id AND o.user_id = ?)
			AND NOT EXISTS (SELECT 1 FROM owners o WHERE o.project_id = p.id AND o.user_id <> ?)`,
		org, org, org, user, user).Scan(&n)
	return n, err
}
