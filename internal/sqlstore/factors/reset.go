package factors

import (
	"context"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/accounts"
)

// Someone else's second factors: managers see which methods their people
// enrolled and reset them for someone who lost theirs (R17); the command
// line does it for a manager when no manager can, and for operators.

// FindFactorMethods returns, per user of the organisation who enrolled one,
// the methods of their second factors ("sms", "totp", "webauthn"): never a
// secret nor a key. Managers only; it is part of reading the people (the
// caller records that read). Errors: forbidden.
func (s *Service) FindFactorMethods(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (map[kluis.UserID][]string, error) {
	if !kluis.CanReadUsers(actor, org) {
		return nil, s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "user.factors", "")
	}
	out := map[kluis.UserID][]string{}
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		rows, err := t.Query(ctx, `SELECT subject, kind FROM factors WHERE org_id = ? AND kind IN ('totp', 'sms') AND confirmed_at IS NOT NULL
			UNION SELECT subject, 'webauthn' FROM passkeys WHERE org_id = ? ORDER BY 2`, org, org)
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
// (app, number, passkeys, recovery codes), ends all their sessions and API
// tokens and tells them by mail: for someone who lost their factors. A
// manager with a fresh authentication may do it for anyone of the
// organisation but themselves (their own are removed on My account).
// Recorded as mfa.reset. Errors: forbidden, reauth_required, not_found (no
// such person, or nothing to reset), conflict.
func (s *Service) ResetFactors(ctx context.Context, scope kluis.Scope, actor kluis.Actor, subject string) error {
	if scope.Realm != kluis.RealmOrg {
		return kluis.ErrForbidden // operators' factors are reset at the command line
	}
	org := scope.Org
	target := sqlstore.UserTarget(kluis.UserID(subject))
	if !kluis.CanResetFactors(actor, org) {
		return s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "mfa.reset", target)
	}
	if !kluis.ValidID(subject) {
		return kluis.ErrNotFound
	}
	if !kluis.FreshlyAuthenticated(actor, s.core.Now()) {
		return accounts.ReauthRequired(ctx, s.core, scope, actor, "mfa.reset")
	}
	if subject == string(actor.UserID) {
		return kluis.Errorf(kluis.EConflict, "remove your own second factors on My account")
	}
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		return s.Reset(ctx, t, scope, actor, subject, nil)
	})
}

// ResetManagerFactorsByCLI is the operator's recovery of a manager who lost
// every second factor while no other manager can reset them: at the command
// line only, for a manager found by e-mail address. As ResetFactors, it is
// recorded in the organisation's own chain (actor "cli", the operator) and
// mailed to the manager; nothing about the person comes back. Errors:
// forbidden, not_found, conflict (not a manager: their managers reset it).
func (s *Service) ResetManagerFactorsByCLI(ctx context.Context, org kluis.OrgID, actor kluis.Actor, email string) error {
	if !actor.CLI {
		return s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "mfa.reset", "")
	}
	lookup := kluis.NormalizeEmail(email)
	if kluis.ValidateEmail(lookup) != nil {
		return kluis.ErrNotFound
	}
	idx, err := s.core.EmailIndex(ctx, org, lookup)
	if err != nil {
		return err
	}
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
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
			AND (EXISTS (SELECT 1 FROM factors f WHERE f.org_id = u.org_id AND f.subject = u.id AND f.confirmed_at IS NOT NULL)
			  OR EXISTS (SELECT 1 FROM passkeys p WHERE p.org_id = u.org_id AND p.subject = u.id))`,
			org, id, kluis.RoleManager, kluis.StatusActive).Scan(&others); err != nil {
			return err
		}
		if others > 0 {
			return kluis.Errorf(kluis.EConflict, "another manager of the organisation can reset these second factors")
		}
		return s.Reset(ctx, t, kluis.OrgScope(org), actor, string(id), map[string]any{"by": "operator"})
	})
}

// Reset removes every second factor of the account, with its recovery
// codes, lock, ceremonies, challenges and queued codes, ends its sessions
// and API tokens (an account that may be in someone else's hands), mails
// its owner a notice and records mfa.reset (operator.factors_reset for an
// operator), in the transaction. An account with nothing to reset is
// not_found for a user; an operator's reset goes on (it also clears a
// half-made set-up and the lock). Errors: not_found.
func (s *Service) Reset(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, actor kluis.Actor, subject string, details map[string]any) error {
	a, err := accounts.Find(ctx, t, s.core, scope, subject)
	if err != nil {
		return err
	}
	methods, err := Methods(ctx, t, scope, subject)
	if err != nil {
		return err
	}
	if len(methods) == 0 && scope.Realm == kluis.RealmOrg {
		return kluis.Errorf(kluis.ENotFound, "this person has no second factor")
	}
	var removed int64
	for i, q := range []string{
		`DELETE FROM factors WHERE org_id = ? AND subject = ?`,
		`DELETE FROM passkeys WHERE org_id = ? AND subject = ?`,
		`DELETE FROM recovery_codes WHERE org_id = ? AND subject = ?`,
		`DELETE FROM factor_guards WHERE org_id = ? AND subject = ?`,
		`DELETE FROM passkey_ceremonies WHERE org_id = ? AND subject = ?`,
		`DELETE FROM challenges WHERE org_id = ? AND subject = ?`,
	} {
		res, err := t.Exec(ctx, q, scope.Org, subject)
		if err != nil {
			return err
		}
		if i == 0 {
			removed, _ = res.RowsAffected()
		}
	}
	if err := forgetSMS(ctx, t, scope, subject); err != nil {
		return err
	}
	ended, err := accounts.EndSessions(ctx, t, scope, subject, "")
	if err != nil {
		return err
	}
	if _, err := accounts.RevokeTokens(ctx, t, scope, subject); err != nil {
		return err
	}
	link := "/login"
	if scope.Realm == kluis.RealmOperator {
		link = "/operator/login"
	}
	if err := accounts.Notify(ctx, t, s.core, a, mail.FactorsReset, link); err != nil {
		return err
	}
	if details == nil {
		details = map[string]any{}
	}
	details["sessions_ended"] = ended
	action := "mfa.reset"
	if scope.Realm == kluis.RealmOperator {
		action = "operator.factors_reset"
		details["factor_removed"] = removed > 0 || len(methods) > 0
	} else {
		details["methods"] = methods
	}
	return t.Append(ctx, accounts.Chain(scope), actor, action, accounts.Target(scope, subject), "success", details)
}
