package factors

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mfa"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/accounts"
)

// lockAfter is how many wrong second-factor answers in a row, over any
// number of challenges and re-authentications, lock the person's second
// factor: for a minute, then twice as long after each further wrong
// answer, up to lockMax. So someone who has the password cannot try codes
// at the speed of sign-ins.
const (
	lockAfter = 5
	lockMax   = time.Hour
)

// Check checks an answer of the method and uses it up: a "totp", "sms" or
// "recovery" code, or a "webauthn" assertion for the ceremony of purpose
// ("login" or "reauth") bound to bound (ChallengeBound, SessionBound).
// Wrong answers count against the account, across challenges, methods and
// re-authentications: after lockAfter of them nothing is accepted for a
// while, which is recorded; a right answer resets the count. from is the
// request's origin, for the record of a lock.
func (s *Service) Check(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, from kluis.Origin, subject, purpose, bound, method, code string) (bool, error) {
	methods, err := Methods(ctx, t, scope, subject)
	if err != nil || len(methods) == 0 {
		return false, err
	}
	var failures int64
	var locked sql.NullInt64
	err = t.QueryRow(ctx, `SELECT failures, locked_until FROM factor_guards WHERE org_id = ? AND subject = ?`+t.ForUpdate(), scope.Org, subject).Scan(&failures, &locked)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, err
	}
	if locked.Valid && t.Now().Before(sqlstore.FromMicros(locked.Int64)) {
		return false, nil
	}
	ok := false
	switch method {
	case string(kluis.FactorTOTP):
		if ok, err = s.checkTOTP(ctx, t, scope, subject, code); err != nil {
			return false, err
		}
	case kluis.MethodRecovery:
		if ok, err = s.useRecoveryCode(ctx, t, scope, subject, code); err != nil {
			return false, err
		}
	case string(kluis.FactorPasskey):
		if ok, err = s.checkPasskey(ctx, t, scope, from, subject, purpose, bound, code); err != nil {
			return false, err
		}
	case string(kluis.FactorSMS):
		if slices.Contains(methods, string(kluis.FactorSMS)) {
			if ok, err = s.checkSMSCode(ctx, t, scope, subject, purpose, bound, code); err != nil {
				return false, err
			}
		}
	}
	if ok {
		_, err = t.Exec(ctx, `DELETE FROM factor_guards WHERE org_id = ? AND subject = ?`, scope.Org, subject)
		return err == nil, err
	}
	failures++
	var lockedUntil any
	if failures >= lockAfter {
		lock := min(time.Minute<<min(failures-lockAfter, 6), lockMax)
		lockedUntil = sqlstore.Micros(t.Now().Add(lock))
		if err := t.Append(ctx, accounts.Chain(scope), kluis.Actor{From: from}, accounts.Action(scope, "mfa.locked"), accounts.Target(scope, subject), "success",
			map[string]any{"failures": failures, "minutes": int(lock / time.Minute)}); err != nil {
			return false, err
		}
	}
	user, operator := accounts.Owner(scope, subject)
	_, err = t.Exec(ctx, `INSERT INTO factor_guards (org_id, subject, user_id, operator_id, failures, locked_until) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (org_id, subject) DO UPDATE SET failures = excluded.failures, locked_until = excluded.locked_until`,
		scope.Org, subject, user, operator, failures, lockedUntil)
	return false, err
}

// checkTOTP checks a code of the account's confirmed app and uses its time
// step up.
func (s *Service) checkTOTP(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject, code string) (bool, error) {
	f, err := s.findFactor(ctx, t, scope, subject, kluis.FactorTOTP)
	if errors.Is(err, kluis.ErrNotFound) || err == nil && !f.confirmed {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	step, good := mfa.VerifyTOTP(f.secret, code, t.Now(), f.lastStep)
	if !good {
		return false, nil
	}
	_, err = t.Exec(ctx, `UPDATE factors SET last_step = ? WHERE id = ?`, step, f.id)
	return err == nil, err
}
