package sqlstore

import (
	"context"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mail"
)

// Managers see which second factors people enrolled, and reset them for
// someone who lost theirs (R17); the command line does it for a manager
// when no manager can.

// FindFactorMethods returns, per user of the organisation who enrolled one,
// the methods of their second factors ("sms", "totp", "webauthn"): never a secret
// nor a key. Managers only; it is part of reading the people (the caller
// records that read). Errors: forbidden.
func (s *Store) FindFactorMethods(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (map[kluis.UserID][]string, error) {
	if !kluis.CanManageUsers(actor, org) {
		return nil, s.Refuse(ctx, OrgChain(org), actor, "user.factors", "")
	}
	out := map[kluis.UserID][]string{}
	err := s.Read(ctx, func(t *Tx) error {
		rows, err := t.Query(ctx, `SELECT user_id, kind FROM user_factors WHERE org_id = ? AND kind IN ('totp', 'sms') AND confirmed_at IS NOT NULL
			UNION SELECT user_id, 'webauthn' FROM passkeys WHERE org_id = ? ORDER BY 2`, org, org)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var u kluis.UserID
			var m string
			if err := rows.Scan(&u, &m); err != nil {
				return err
			}
			out[u] = append(out[u], m)
		}
		return rows.Err()
	})
	return out, err
}

// ResetFactors removes every second factor of a person of the organisation
// (app, passkeys, recovery codes), ends all their sessions and tells them by
// mail: for someone who lost their factors. A manager with a fresh
// authentication may do it for anyone of the organisation (their own are
// removed on My account). Recorded as mfa.reset. Errors: forbidden,
// reauth_required, not_found (no such person, or nothing to reset).
func (s *Store) ResetFactors(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) error {
	if !kluis.CanManageUsers(actor, org) {
		return s.Refuse(ctx, OrgChain(org), actor, "mfa.reset", UserTarget(id))
	}
	if !kluis.ValidID(string(id)) {
		return kluis.ErrNotFound
	}
	if !kluis.FreshlyAuthenticated(actor, s.Now()) {
		return s.reauthRequired(ctx, org, actor, "mfa.reset")
	}
	if id == actor.UserID {
		return kluis.Errorf(kluis.EConflict, "remove your own second factors on My account")
	}
	return s.Write(ctx, OrgChain(org), func(t *Tx) error {
		return t.resetFactors(ctx, org, actor, id, nil)
	})
}

// ResetManagerFactorsByCLI is the operator's recovery of a manager who lost
// every second factor while no other manager can reset them: at the command
// line only, for a manager found by e-mail address. As ResetFactors, it is
// recorded in the organisation's own chain (actor "cli", the operator) and
// mailed to the manager; nothing about the person comes back. Errors:
// forbidden, not_found, conflict (not a manager: their managers reset it).
func (s *Store) ResetManagerFactorsByCLI(ctx context.Context, org kluis.OrgID, actor kluis.Actor, email string) error {
	if !actor.CLI {
		return s.Refuse(ctx, OrgChain(org), actor, "mfa.reset", "")
	}
	lookup := kluis.NormalizeEmail(email)
	if kluis.ValidateEmail(lookup) != nil {
		return kluis.ErrNotFound
	}
	idx, err := s.EmailIndex(ctx, org, lookup)
	if err != nil {
		return err
	}
	return s.Write(ctx, OrgChain(org), func(t *Tx) error {
		var id kluis.UserID
		var role kluis.Role
		if err := t.QueryRow(ctx, `SELECT id, role FROM users WHERE org_id = ? AND email_index = ?`, org, idx).Scan(&id, &role); err != nil {
			return kluis.ErrNotFound
		}
		if role != kluis.RoleManager {
			return kluis.Errorf(kluis.EConflict, "this person is not a manager: a manager of the organisation resets their second factors")
		}
		// Another active manager who can still sign in with a factor resets
		// it: the operator's way is for the organisation left without one,
		// so a caller who talked the support desk round gains nothing there.
		var others int
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM users u WHERE u.org_id = ? AND u.id <> ? AND u.role = ? AND u.status = ?
			AND (EXISTS (SELECT 1 FROM user_factors f WHERE f.org_id = u.org_id AND f.user_id = u.id AND f.confirmed_at IS NOT NULL)
			  OR EXISTS (SELECT 1 FROM passkeys p WHERE p.org_id = u.org_id AND p.user_id = u.id))`,
			org, id, kluis.RoleManager, kluis.StatusActive).Scan(&others); err != nil {
			return err
		}
		if others > 0 {
			return kluis.Errorf(kluis.EConflict, "another manager of the organisation can reset these second factors")
		}
		return t.resetFactors(ctx, org, actor, id, map[string]any{"by": "operator"})
	})
}

func (t *Tx) resetFactors(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID, details map[string]any) error {
	u, err := t.FindUser(ctx, org, id)
	if err != nil {
		return err
	}
	methods, err := t.factorMethods(ctx, org, id)
	if err != nil {
		return err
	}
	if len(methods) == 0 {
		return kluis.Errorf(kluis.ENotFound, "this person has no second factor")
	}
	for _, q := range []string{
		`DELETE FROM user_factors WHERE org_id = ? AND user_id = ?`,
		`DELETE FROM passkeys WHERE org_id = ? AND user_id = ?`,
		`DELETE FROM recovery_codes WHERE org_id = ? AND user_id = ?`,
		`DELETE FROM factor_guards WHERE org_id = ? AND user_id = ?`,
		`DELETE FROM passkey_ceremonies WHERE org_id = ? AND user_id = ?`,
		`DELETE FROM login_challenges WHERE org_id = ? AND user_id = ?`,
		`DELETE FROM sms_queue WHERE org_id = ? AND user_id = ?`,
	} {
		if _, err := t.Exec(ctx, q, org, id); err != nil {
			return err
		}
	}
	res, err := t.Exec(ctx, `DELETE FROM sessions WHERE org_id = ? AND user_id = ?`, org, id)
	if err != nil {
		return err
	}
	ended, _ := res.RowsAffected()
	// A reset is for an account that may be in someone else's hands: its
	// personal API tokens go too.
	if _, err := t.revokeAPITokens(ctx, org, id); err != nil {
		return err
	}
	o, err := t.FindOrg(ctx, org)
	if err != nil {
		return err
	}
	if err := t.QueueMail(ctx, org, id, o.Language, u.Email, mail.FactorsReset,
		mail.Data{OrgName: o.Name, Link: t.s.publicURL + "/o/" + o.Slug + "/login"}); err != nil {
		return err
	}
	if details == nil {
		details = map[string]any{}
	}
	details["methods"], details["sessions_ended"] = methods, ended
	return t.Append(ctx, OrgChain(org), actor, "mfa.reset", UserTarget(id), "success", details)
}
