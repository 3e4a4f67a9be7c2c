package sqlstore

import (
	"context"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
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

// loginsStoppedQuery is the one check of R19: the organisation's own switch,
// or the instance-wide one (the settings row instanceLoginsKey), which
// holds for every organisation, also one created after the stop.
const loginsStoppedQuery = `SELECT o.logins_disabled OR EXISTS (SELECT 1 FROM settings WHERE key = '` + instanceLoginsKey + `')
	FROM orgs o WHERE o.id = ?`

// instanceLoginsKey is the settings row that stops every login of the
// instance while it exists; its value is when the stop began.
const instanceLoginsKey = "logins_stopped"

func (s *Store) loginsStopped(ctx context.Context, org kluis.OrgID) (bool, error) {
	var stopped bool
	err := s.db.ReadRow(ctx, loginsStoppedQuery, org).Scan(&stopped)
	return stopped, err
}

// loginsStopped is the check again inside a transaction that is about to
// open a session: logins may have been stopped since the first look.
func (t *Tx) loginsStopped(ctx context.Context, org kluis.OrgID) (bool, error) {
	var stopped bool
	err := t.QueryRow(ctx, loginsStoppedQuery, org).Scan(&stopped)
	return stopped, err
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
func (s *Store) SetLogins(ctx context.Context, org kluis.OrgID, actor kluis.Actor, enabled bool) (int, error) {
	action := "org.logins_stop"
	if enabled {
		action = "org.logins_resume"
	}
	if !kluis.CanStopLogins(actor, org) {
		return 0, s.Refuse(ctx, OrgChain(org), actor, action, "")
	}
	// A manager's stop ends every other manager's session too: it needs a
	// fresh authentication, so a stale or stolen session cannot do it.
	if !enabled && actor.IsOrgUser(org) && !kluis.FreshlyAuthenticated(actor, s.Now()) {
		return 0, s.reauthRequired(ctx, org, actor, action)
	}
	var ended int64
	err := s.Write(ctx, OrgChain(org), func(t *Tx) error {
		if !kluis.CanStopLogins(actor, org) {
			return Deny(OrgChain(org), actor, action, "", kluis.ErrForbidden)
		}
		if _, err := t.FindOrg(ctx, org); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE orgs SET logins_disabled = ? WHERE id = ?`, !enabled, org); err != nil {
			return err
		}
		if !enabled {
			res, err := t.Exec(ctx, `DELETE FROM sessions WHERE org_id = ? AND id <> ?`, org, string(actor.SessionID))
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
		return t.Append(ctx, OrgChain(org), actor, action, "org:"+string(org), "success", map[string]any{"sessions_ended": ended})
	})
	return int(ended), err
}

// InstanceLoginsStopped reports whether every login of the instance is
// stopped (R19), and since when. Operators and the command line. Errors:
// forbidden.
func (s *Store) InstanceLoginsStopped(ctx context.Context, actor kluis.Actor) (bool, time.Time, error) {
	if !kluis.CanManageOrgs(actor) {
		return false, time.Time{}, kluis.ErrForbidden
	}
	v, err := s.db.Setting(ctx, instanceLoginsKey)
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
// instance.logins_resume). Operator admins and the command line; an operator
// needs a fresh authentication to stop. It returns the number of sessions
// ended. Errors: forbidden, reauth_required.
func (s *Store) SetInstanceLogins(ctx context.Context, actor kluis.Actor, enabled bool) (int, error) {
	action := "instance.logins_stop"
	if enabled {
		action = "instance.logins_resume"
	}
	if !kluis.CanManageOrgs(actor) {
		return 0, s.Refuse(ctx, audit.PlatformChain, actor, action, "")
	}
	if !enabled && !actor.CLI && !kluis.FreshlyAuthenticated(actor, s.Now()) {
		return 0, s.operatorReauthRequired(ctx, actor, action)
	}
	var ended, tokens int64
	err := s.Write(ctx, audit.PlatformChain, func(t *Tx) error {
		ended, tokens = 0, 0
		if enabled {
			if _, err := t.Exec(ctx, `DELETE FROM settings WHERE key = ?`, instanceLoginsKey); err != nil {
				return err
			}
		} else {
			if _, err := t.Exec(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`,
				instanceLoginsKey, t.Now().Format(time.RFC3339Nano)); err != nil {
				return err
			}
			res, err := t.Exec(ctx, `DELETE FROM sessions`)
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
