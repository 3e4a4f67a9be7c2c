package users

import (
	"context"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/sqlstore"
)

var _ kluis.RestrictionService = (*Service)(nil)

// RestrictProcessing restricts processing of a person's data (R34, GDPR
// Art. 18): the person themselves or a manager of theirs. While it lasts
// every change to their data answers processing_restricted, no mail is
// queued to them (sqlstore.Tx.QueueMail) but the ones their own sign-in
// needs, and the organisation's export leaves their personal values out.
// Mail already queued to them and not yet sent is dropped with it.
// Restricting again changes nothing. Errors: forbidden, not_found.
func (s *Service) RestrictProcessing(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) error {
	return s.setRestriction(ctx, org, actor, id, true)
}

// LiftRestriction ends a restriction of processing: the person or a
// manager. Lifting an unrestricted person changes nothing. Errors:
// forbidden, not_found.
func (s *Service) LiftRestriction(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) error {
	return s.setRestriction(ctx, org, actor, id, false)
}

func (s *Service) setRestriction(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID, restrict bool) error {
	action := "user.lift_restriction"
	if restrict {
		action = "user.restrict"
	}
	chain := sqlstore.OrgChain(org)
	return s.core.Write(ctx, chain, func(t *sqlstore.Tx) error {
		if !actor.IsOrgUser(org) && !actor.IsSupport(org) {
			return kluis.ErrUnauthenticated
		}
		if !kluis.CanRestrict(actor, org, id) {
			return sqlstore.Deny(chain, actor, action, sqlstore.UserTarget(id), kluis.ErrForbidden)
		}
		u, err := t.FindUser(ctx, org, id)
		if err != nil {
			return err
		}
		if u.Restricted() == restrict {
			return nil
		}
		var at any // NULL lifts
		if restrict {
			at = sqlstore.Micros(t.Now())
		}
		if _, err := t.Exec(ctx, `UPDATE users SET restricted_at = ? WHERE org_id = ? AND id = ?`, at, org, id); err != nil {
			return err
		}
		if restrict {
			if err := dropQueuedMail(ctx, t, org, id); err != nil {
				return err
			}
			// An open e-mail change would change their contact data.
			if err := s.dropEmailChanges(ctx, t, org, id); err != nil {
				return err
			}
		}
		return t.Append(ctx, chain, actor, action, sqlstore.UserTarget(id), "success", nil)
	})
}

// dropQueuedMail deletes the mail waiting for delivery to a person who has
// just been restricted, but the ones their own sign-in needs.
func dropQueuedMail(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, id kluis.UserID) error {
	args := []any{org, id}
	marks := ""
	for _, k := range mail.SignInKinds {
		args = append(args, string(k))
		marks += ", ?"
	}
	_, err := t.Exec(ctx, `DELETE FROM mail_queue WHERE org_id = ? AND user_id = ? AND kind NOT IN (''`+marks+`)`, args...)
	return err
}
