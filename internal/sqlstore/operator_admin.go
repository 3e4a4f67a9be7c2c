package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
)

// The command line's recovery of operator accounts (issue 5 item 8): a new
// password, disabling and enabling, and removing lost second factors. Each
// ends the operator's sessions and open challenges and is recorded in the
// platform chain. Only the command line may (kluis.CanManageOperators).

// findOperatorByEmail returns the id of the operator with the address, in
// the transaction. Errors: not_found.
func (t *Tx) findOperatorByEmail(ctx context.Context, email string) (kluis.OperatorID, error) {
	var id kluis.OperatorID
	err := t.QueryRow(ctx, `SELECT id FROM operators WHERE email = ?`+t.db.ForUpdate(), kluis.NormalizeEmail(email)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", kluis.ErrNotFound
	}
	return id, err
}

// endOperatorSessions ends every session and open sign-in challenge of an
// operator and returns how many sessions ended.
func (t *Tx) endOperatorSessions(ctx context.Context, op kluis.OperatorID) (int64, error) {
	if _, err := t.Exec(ctx, `DELETE FROM operator_challenges WHERE operator_id = ?`, op); err != nil {
		return 0, err
	}
	res, err := t.Exec(ctx, `DELETE FROM operator_sessions WHERE operator_id = ?`, op)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// ResetOperatorPassword gives the operator with the address a new password
// (checked against OperatorPolicy), ends their sessions, and lifts the lock
// of their sign-in identifier (R18). Recorded as operator.password_reset.
// The command line only. Errors: forbidden, invalid_input, not_found.
func (s *Store) ResetOperatorPassword(ctx context.Context, actor kluis.Actor, email, pw string) error {
	if !kluis.CanManageOperators(actor) {
		return s.Refuse(ctx, audit.PlatformChain, actor, "operator.password_reset", "")
	}
	pw = kluis.NormalizePassword(pw)
	if err := OperatorPolicy.CheckPassword(pw); err != nil {
		return kluis.Invalid(map[string]string{"password": err.Error()})
	}
	email = kluis.NormalizeEmail(email)
	ident, err := s.operatorIdent(ctx, email)
	if err != nil {
		return err
	}
	hash, err := s.hasher.Hash(ctx, pw)
	if err != nil {
		return err
	}
	return s.Write(ctx, audit.PlatformChain, func(t *Tx) error {
		id, err := t.findOperatorByEmail(ctx, email)
		if err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE operators SET password_hash = ? WHERE id = ?`, hash, id); err != nil {
			return err
		}
		ended, err := t.endOperatorSessions(ctx, id)
		if err != nil {
			return err
		}
		res, err := t.Exec(ctx, `DELETE FROM login_failures WHERE scope = ? AND ident = ?`, operatorScope, ident)
		if err != nil {
			return err
		}
		unlocked, _ := res.RowsAffected()
		return t.Append(ctx, audit.PlatformChain, actor, "operator.password_reset", operatorTarget(id), "success",
			map[string]any{"sessions_ended": ended, "lock_cleared": unlocked > 0})
	})
}

// SetOperatorDisabled disables (or enables again) the operator with the
// address. A disabled operator cannot sign in (answered like a wrong
// password) and their sessions end at once. Disabling the last enabled
// operator is allowed: the command line keeps every operator power and
// enables them again, and disabling every operator account is a fair
// answer to an incident. Recorded as operator.disable / operator.enable.
// It returns the number of sessions ended and how many operators stay
// enabled. The command line only. Errors: forbidden, not_found.
func (s *Store) SetOperatorDisabled(ctx context.Context, actor kluis.Actor, email string, disabled bool) (ended, enabledLeft int, err error) {
	action := "operator.enable"
	if disabled {
		action = "operator.disable"
	}
	if !kluis.CanManageOperators(actor) {
		return 0, 0, s.Refuse(ctx, audit.PlatformChain, actor, action, "")
	}
	err = s.Write(ctx, audit.PlatformChain, func(t *Tx) error {
		id, err := t.findOperatorByEmail(ctx, email)
		if err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE operators SET disabled = ? WHERE id = ?`, disabled, id); err != nil {
			return err
		}
		var n int64
		if disabled {
			if n, err = t.endOperatorSessions(ctx, id); err != nil {
				return err
			}
		}
		ended = int(n)
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM operators WHERE disabled = ?`, false).Scan(&enabledLeft); err != nil {
			return err
		}
		return t.Append(ctx, audit.PlatformChain, actor, action, operatorTarget(id), "success", map[string]any{"sessions_ended": n})
	})
	return ended, enabledLeft, err
}

// ResetOperatorFactors removes the second factor (app and recovery codes)
// of the operator with the address, who lost it, lifts its lock and ends
// their sessions: the next sign-in gets a session limited to enrolling a
// new one. Recorded as operator.factors_reset. The command line only.
// Errors: forbidden, not_found.
func (s *Store) ResetOperatorFactors(ctx context.Context, actor kluis.Actor, email string) error {
	if !kluis.CanManageOperators(actor) {
		return s.Refuse(ctx, audit.PlatformChain, actor, "operator.factors_reset", "")
	}
	return s.Write(ctx, audit.PlatformChain, func(t *Tx) error {
		id, err := t.findOperatorByEmail(ctx, email)
		if err != nil {
			return err
		}
		res, err := t.Exec(ctx, `DELETE FROM operator_factors WHERE operator_id = ?`, id)
		if err != nil {
			return err
		}
		removed, _ := res.RowsAffected()
		if _, err := t.Exec(ctx, `DELETE FROM operator_recovery_codes WHERE operator_id = ?`, id); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE operators SET factor_failures = 0, factor_locked_until = NULL WHERE id = ?`, id); err != nil {
			return err
		}
		ended, err := t.endOperatorSessions(ctx, id)
		if err != nil {
			return err
		}
		return t.Append(ctx, audit.PlatformChain, actor, "operator.factors_reset", operatorTarget(id), "success",
			map[string]any{"sessions_ended": ended, "factor_removed": removed > 0})
	})
}
