package orgs

import (
	"context"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/accounts"
)

// LoginsStopped reports whether the organisation's logins are stopped
// (R19). Any signed-in user of the organisation, an operator or the command
// line may ask. Errors: forbidden.
func (s *Service) LoginsStopped(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (bool, error) {
	if !actor.IsOrgUser(org) && !actor.IsSupport(org) && !actor.IsOperator() {
		return false, kluis.ErrForbidden
	}
	return s.core.LoginsStopped(ctx, org)
}

// SetLogins stops or resumes every login of the organisation (R19). While
// the instance-wide switch is off (SetInstanceLogins), resuming one
// organisation lets nobody in yet. Stopping
// ends every session of the organisation but the caller's own, at once;
// while stopped, Login answers logins_disabled. Both are recorded in the
// organisation's chain (org.logins_stop, org.logins_resume), whoever acts.
// Managers, operator admins and the command line. It returns the number of
// sessions ended. A manager needs a fresh authentication to stop them.
// Errors: forbidden, reauth_required.
func (s *Service) SetLogins(ctx context.Context, org kluis.OrgID, actor kluis.Actor, enabled bool) (int, error) {
	action := "org.logins_stop"
	if enabled {
		action = "org.logins_resume"
	}
	if !kluis.CanStopLogins(actor, org) {
		return 0, s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, action, "")
	}
	// A manager's stop ends every other manager's session too: it needs a
	// fresh authentication, so a stale or stolen session cannot do it.
	if !enabled && actor.IsOrgUser(org) && !kluis.FreshlyAuthenticated(actor, s.core.Now()) {
		return 0, accounts.ReauthRequired(ctx, s.core, kluis.OrgScope(org), actor, action)
	}
	var ended int64
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if !kluis.CanStopLogins(actor, org) {
			return sqlstore.Deny(sqlstore.OrgChain(org), actor, action, "", kluis.ErrForbidden)
		}
		if _, err := t.FindOrg(ctx, org); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE orgs SET logins_disabled = ? WHERE id = ?`, !enabled, org); err != nil {
			return err
		}
		if !enabled {
			var err error
			if ended, err = accounts.EndOrgSessions(ctx, t, org, actor.SessionID); err != nil {
				return err
			}
			// Personal API tokens die with the sessions (R19): a
			// token made before an incident cannot outlast the stop.
			if _, err := accounts.RevokeOrgTokens(ctx, t, org); err != nil {
				return err
			}
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, action, "org:"+string(org), "success", map[string]any{"sessions_ended": ended})
	})
	return int(ended), err
}

// InstanceLoginsStopped reports whether every login of the instance is
// stopped (R19), and since when. Operators and the command line. Errors:
// forbidden.
func (s *Service) InstanceLoginsStopped(ctx context.Context, actor kluis.Actor) (bool, time.Time, error) {
	if !kluis.CanListOrgs(actor) {
		return false, time.Time{}, kluis.ErrForbidden
	}
	v, err := s.core.DB().Setting(ctx, sqlstore.InstanceLoginsKey)
	if err != nil || v == "" {
		return false, time.Time{}, err
	}
	since, _ := time.Parse(time.RFC3339Nano, v)
	return true, since, nil
}

// SetInstanceLogins stops or resumes the logins of every organisation of
// the instance at once (R19), also of organisations created while stopped;
// each organisation's own switch stays as it was and applies again after a
// resume. Stopping ends every session and personal API token of every
// organisation in the same transaction; operators' sessions stay, so the
// operator can resume. Recorded in the platform chain (instance.logins_stop,
// instance.logins_resume). Operator admins and security staff, and the
// command line; an operator
// needs a fresh authentication to stop. It returns the number of sessions
// ended. Errors: forbidden, reauth_required.
func (s *Service) SetInstanceLogins(ctx context.Context, actor kluis.Actor, enabled bool) (int, error) {
	action := "instance.logins_stop"
	if enabled {
		action = "instance.logins_resume"
	}
	if !kluis.CanStopInstanceLogins(actor) {
		return 0, s.core.Refuse(ctx, audit.PlatformChain, actor, action, "")
	}
	if !enabled && !actor.CLI && !kluis.FreshlyAuthenticated(actor, s.core.Now()) {
		return 0, accounts.ReauthRequired(ctx, s.core, kluis.OperatorScope, actor, action)
	}
	var ended, tokens int64
	err := s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		ended, tokens = 0, 0
		if enabled {
			if _, err := t.Exec(ctx, `DELETE FROM settings WHERE key = ?`, sqlstore.InstanceLoginsKey); err != nil {
				return err
			}
		} else {
			if _, err := t.Exec(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`,
				sqlstore.InstanceLoginsKey, t.Now().Format(time.RFC3339Nano)); err != nil {
				return err
			}
			// Every organisation's sessions; the operators' stay, so
			// that the operator can resume.
			res, err := t.Exec(ctx, `DELETE FROM sessions WHERE org_id <> ''`)
			if err != nil {
				return err
			}
			ended, _ = res.RowsAffected()
			if res, err = t.Exec(ctx, `DELETE FROM api_tokens`); err != nil {
				return err
			}
			tokens, _ = res.RowsAffected()
		}
		return t.Append(ctx, audit.PlatformChain, actor, action, "instance", "success",
			map[string]any{"sessions_ended": ended, "tokens_revoked": tokens})
	})
	return int(ended), err
}
