package sqlstore

import (
	"context"

	"github.com/kluis/kluis"
)

// LoginsStopped reports whether the organisation's logins are stopped
// (R19). Any signed-in user of the organisation, an operator or the command
// line may ask. Errors: forbidden.
func (s *Store) LoginsStopped(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (bool, error) {
	if !actor.IsOrgUser(org) && !actor.IsOperator() {
		return false, kluis.ErrForbidden
	}
	return s.loginsStopped(ctx, org)
}

const loginsStoppedQuery = `SELECT logins_disabled FROM orgs WHERE id = ?`

func (s *Store) loginsStopped(ctx context.Context, org kluis.OrgID) (bool, error) {
	var stopped bool
	err := s.db.readRow(ctx, loginsStoppedQuery, org).Scan(&stopped)
	return stopped, err
}

// loginsStopped is the check again inside a transaction that is about to
// open a session: logins may have been stopped since the first look.
func (t *Tx) loginsStopped(ctx context.Context, org kluis.OrgID) (bool, error) {
	var stopped bool
	err := t.queryRow(ctx, loginsStoppedQuery, org).Scan(&stopped)
	return stopped, err
}

// SetLogins stops or resumes every login of the organisation (R19). Stopping
// ends every session of the organisation but the caller's own, at once;
// while stopped, Login answers logins_disabled. Both are recorded in the
// organisation's chain (org.logins_stop, org.logins_resume), whoever acts.
// Managers, operator admins and the command line. It returns the number of
// sessions ended. A manager needs a fresh authentication to stop them.
// Errors: forbidden, reauth_required.
func (s *Store) SetLogins(ctx context.Context, org kluis.OrgID, actor kluis.Actor, enabled bool) (int, error) {
	action := "org.logins_stop"
	if enabled {
		action = "org.logins_resume"
	}
	if !kluis.CanStopLogins(actor, org) {
		return 0, s.refuse(ctx, orgChain(org), actor, action, "")
	}
	// A manager's stop ends every other manager's session too: it needs a
	// fresh authentication, so a stale or stolen session cannot do it.
	if !enabled && actor.IsOrgUser(org) && !kluis.FreshlyAuthenticated(actor, s.now()) {
		return 0, s.reauthRequired(ctx, org, actor, action)
	}
	var ended int64
	err := s.write(ctx, orgChain(org), func(t *Tx) error {
		if !kluis.CanStopLogins(actor, org) {
			return deny(orgChain(org), actor, action, "", kluis.ErrForbidden)
		}
		if _, err := t.findOrg(ctx, org); err != nil {
			return err
		}
		if _, err := t.exec(ctx, `UPDATE orgs SET logins_disabled = ? WHERE id = ?`, !enabled, org); err != nil {
			return err
		}
		if !enabled {
			res, err := t.exec(ctx, `DELETE FROM sessions WHERE org_id = ? AND id <> ?`, org, string(actor.SessionID))
			if err != nil {
				return err
			}
			ended, _ = res.RowsAffected()
			// Personal API tokens die with the sessions (R19): a
			// token made before an incident cannot outlast the stop.
			if _, err := t.revokeOrgAPITokens(ctx, org); err != nil {
				return err
			}
		}
		return t.appendEvent(ctx, orgChain(org), actor, action, "org:"+string(org), "success", map[string]any{"sessions_ended": ended})
	})
	return int(ended), err
}
