// Package operators is the area of the operator's staff accounts (R8, R22):
// a realm apart from every organisation, created and recovered from the
// command line, read by their owner. Signing in is the one sign-in of
// package signin; second factors the one core of package factors. It
// implements kluis.OperatorService.
package operators

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/password"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/accounts"
	"github.com/kluis/kluis/internal/sqlstore/factors"
	"github.com/kluis/kluis/internal/sqlstore/throttle"
)

// Service is the operator accounts area.
type Service struct {
	core     *sqlstore.Core
	hasher   *password.Hasher
	throttle *throttle.Service
	factors  *factors.Service
}

// New returns the operator accounts area over core.
func New(core *sqlstore.Core, hasher *password.Hasher, throttle *throttle.Service, factors *factors.Service) *Service {
	return &Service{core: core, hasher: hasher, throttle: throttle, factors: factors}
}

var _ kluis.OperatorService = (*Service)(nil)

func target(id string) string { return accounts.Target(kluis.OperatorScope, id) }

// CreateOperator creates an operator admin. The first one is created from
// the command line and bootstraps the instance; later ones by the CLI or an
// operator. Errors: invalid_input, conflict, forbidden.
func (s *Service) CreateOperator(ctx context.Context, actor kluis.Actor, email, name, pw string, role kluis.OperatorRole) (kluis.Operator, error) {
	if !kluis.CanManageOperatorAccounts(actor) {
		return kluis.Operator{}, s.core.Refuse(ctx, audit.PlatformChain, actor, "operator.create", "")
	}
	email, name, pw = kluis.NormalizeEmail(email), kluis.NormalizeName(name), kluis.NormalizePassword(pw)
	f := map[string]string{}
	if err := kluis.ValidateEmail(email); err != nil {
		f["email"] = err.Error()
	}
	if name != "" {
		if err := kluis.ValidateName(name); err != nil {
			f["name"] = err.Error()
		}
	}
	if err := kluis.OperatorPolicy.CheckPassword(pw); err != nil {
		f["password"] = err.Error()
	}
	if !role.Valid() {
		f["role"] = "must be one of admin, support, security"
	}
	if len(f) > 0 {
		return kluis.Operator{}, kluis.Invalid(f)
	}
	hash, err := s.hasher.Hash(ctx, pw)
	if err != nil {
		return kluis.Operator{}, err
	}
	var op kluis.Operator
	err = s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		if !kluis.CanManageOperatorAccounts(actor) {
			return sqlstore.Deny(audit.PlatformChain, actor, "operator.create", "", kluis.ErrForbidden)
		}
		op = kluis.Operator{ID: kluis.OperatorID(kluis.NewID(t.Now())), Email: email, Name: name, Role: role, CreatedAt: t.Now()}
		_, err := t.Exec(ctx, `INSERT INTO operators (id, email, name, password_hash, disabled, created_at, role) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			op.ID, op.Email, op.Name, hash, false, sqlstore.Micros(t.Now()), role)
		if sqlstore.IsUniqueViolation(err) {
			return kluis.Errorf(kluis.EConflict, "an operator with this e-mail address exists")
		}
		if err != nil {
			return fmt.Errorf("create operator: %w", err)
		}
		return t.Append(ctx, audit.PlatformChain, actor, "operator.create", target(string(op.ID)), "success", map[string]any{"role": string(role)})
	})
	return op, err
}

// FindOperatorAccount returns the signed-in operator's own account and
// second factors. Errors: unauthenticated.
func (s *Service) FindOperatorAccount(ctx context.Context, actor kluis.Actor) (kluis.OperatorAccount, error) {
	scope := kluis.OperatorScope
	if !scope.Signed(actor) {
		return kluis.OperatorAccount{}, kluis.ErrUnauthenticated
	}
	a, err := accounts.Lookup(ctx, s.core, scope, string(actor.OperatorID))
	if errors.Is(err, kluis.ErrNotFound) {
		return kluis.OperatorAccount{}, kluis.ErrUnauthenticated
	}
	if err != nil {
		return kluis.OperatorAccount{}, err
	}
	f, err := s.factors.FindFactors(ctx, scope, actor)
	return kluis.OperatorAccount{
		Operator:    kluis.Operator{ID: kluis.OperatorID(a.ID), Email: a.Email, Name: a.Name, Role: actor.OperatorRole, CreatedAt: a.CreatedAt},
		LastLoginAt: a.LastLoginAt, Factors: f,
	}, err
}

// The command line's recovery of operator accounts: a new password,
// disabling and enabling, and removing lost second factors. Each ends the
// operator's sessions and open challenges, is recorded in the platform
// chain, and a reset is mailed to the operator as it is to a user. Only
// the command line may (kluis.CanManageOperators).

// findByEmail returns the id of the operator with the address, in the
// transaction. Errors: not_found.
func findByEmail(ctx context.Context, t *sqlstore.Tx, email string) (string, error) {
	var id string
	err := t.QueryRow(ctx, `SELECT id FROM operators WHERE email = ?`+t.ForUpdate(), kluis.NormalizeEmail(email)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", kluis.ErrNotFound
	}
	return id, err
}

// endSessions ends every session and open sign-in challenge of an operator
// and returns how many sessions ended.
func endSessions(ctx context.Context, t *sqlstore.Tx, op string) (int64, error) {
	if _, err := t.Exec(ctx, `DELETE FROM challenges WHERE org_id = '' AND subject = ?`, op); err != nil {
		return 0, err
	}
	return accounts.EndSessions(ctx, t, kluis.OperatorScope, op, "")
}

// ResetOperatorPassword gives the operator with the address a new password
// (checked against kluis.OperatorPolicy), ends their sessions, lifts the
// lock of their sign-in identifier (R18) and mails them a notice. Recorded
// as operator.password_reset. The command line only. Errors: forbidden,
// invalid_input, not_found.
func (s *Service) ResetOperatorPassword(ctx context.Context, actor kluis.Actor, email, pw string) error {
	if !kluis.CanManageOperators(actor) {
		return s.core.Refuse(ctx, audit.PlatformChain, actor, "operator.password_reset", "")
	}
	pw = kluis.NormalizePassword(pw)
	if err := kluis.OperatorPolicy.CheckPassword(pw); err != nil {
		return kluis.Invalid(map[string]string{"password": err.Error()})
	}
	email = kluis.NormalizeEmail(email)
	ident, err := s.throttle.Ident(ctx, kluis.OperatorScope, email)
	if err != nil {
		return err
	}
	hash, err := s.hasher.Hash(ctx, pw)
	if err != nil {
		return err
	}
	return s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		id, err := findByEmail(ctx, t, email)
		if err != nil {
			return err
		}
		a, err := accounts.Find(ctx, t, s.core, kluis.OperatorScope, id)
		if err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE operators SET password_hash = ? WHERE id = ?`, hash, id); err != nil {
			return err
		}
		ended, err := endSessions(ctx, t, id)
		if err != nil {
			return err
		}
		unlocked, err := s.throttle.ClearIdent(ctx, t, kluis.OperatorScope, ident)
		if err != nil {
			return err
		}
		if err := accounts.Notify(ctx, t, s.core, a, mail.PasswordChanged, "/operator/login"); err != nil {
			return err
		}
		return t.Append(ctx, audit.PlatformChain, actor, "operator.password_reset", target(id), "success",
			map[string]any{"sessions_ended": ended, "lock_cleared": unlocked})
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
func (s *Service) SetOperatorDisabled(ctx context.Context, actor kluis.Actor, email string, disabled bool) (ended, enabledLeft int, err error) {
	action := "operator.enable"
	if disabled {
		action = "operator.disable"
	}
	if !kluis.CanManageOperators(actor) {
		return 0, 0, s.core.Refuse(ctx, audit.PlatformChain, actor, action, "")
	}
	err = s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		id, err := findByEmail(ctx, t, email)
		if err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE operators SET disabled = ? WHERE id = ?`, disabled, id); err != nil {
			return err
		}
		var n int64
		if disabled {
			if n, err = endSessions(ctx, t, id); err != nil {
				return err
			}
		}
		ended = int(n)
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM operators WHERE disabled = ?`, false).Scan(&enabledLeft); err != nil {
			return err
		}
		return t.Append(ctx, audit.PlatformChain, actor, action, target(id), "success", map[string]any{"sessions_ended": n})
	})
	return ended, enabledLeft, err
}

// ResetOperatorFactors removes the second factors (app, passkeys, recovery
// codes) of the operator with the address, who lost them, lifts their lock,
// ends their sessions and mails them a notice: the next sign-in gets a
// session limited to enrolling a new one. Recorded as
// operator.factors_reset. The command line only. Errors: forbidden,
// not_found.
func (s *Service) ResetOperatorFactors(ctx context.Context, actor kluis.Actor, email string) error {
	if !kluis.CanManageOperators(actor) {
		return s.core.Refuse(ctx, audit.PlatformChain, actor, "operator.factors_reset", "")
	}
	return s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		id, err := findByEmail(ctx, t, email)
		if err != nil {
			return err
		}
		return s.factors.Reset(ctx, t, kluis.OperatorScope, actor, id, nil)
	})
}

// FindOperators lists every operator with role, last sign-in and state,
// by name. Operator admins and the command line. Errors: forbidden.
func (s *Service) FindOperators(ctx context.Context, actor kluis.Actor) ([]kluis.OperatorInfo, error) {
	if !kluis.CanManageOperatorAccounts(actor) {
		return nil, s.core.Refuse(ctx, audit.PlatformChain, actor, "operator.list", "")
	}
	rows, err := s.core.DB().Query(ctx, `SELECT id, email, name, role, created_at, last_login_at, disabled FROM operators ORDER BY name, email`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kluis.OperatorInfo
	for rows.Next() {
		var o kluis.OperatorInfo
		var created int64
		var last sql.NullInt64
		if err := rows.Scan(&o.ID, &o.Email, &o.Name, &o.Role, &created, &last, &o.Disabled); err != nil {
			return nil, err
		}
		o.CreatedAt, o.LastLoginAt = sqlstore.FromMicros(created), sqlstore.NullMicros(last)
		out = append(out, o)
	}
	return out, rows.Err()
}
