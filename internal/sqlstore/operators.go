package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
)

// OperatorPolicy is the password and session policy of operator accounts:
// staff accounts get a longer minimum than the organisations' default.
var OperatorPolicy = kluis.Policy{PasswordMinLength: 12, SessionIdleMinutes: 30, SessionMaxHours: 12}

// CreateOperator creates an operator admin. The first one is created from the
// command line and bootstraps the instance; later ones by the CLI or an
// operator. Errors: invalid_input, conflict, forbidden.
func (s *Store) CreateOperator(ctx context.Context, actor kluis.Actor, email, name, pw string) (kluis.Operator, error) {
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
	if err := OperatorPolicy.CheckPassword(pw); err != nil {
		f["password"] = err.Error()
	}
	if len(f) > 0 {
		return kluis.Operator{}, kluis.Invalid(f)
	}
	hash, err := s.hasher.Hash(ctx, pw)
	if err != nil {
		return kluis.Operator{}, err
	}
	var op kluis.Operator
	err = s.Write(ctx, audit.PlatformChain, func(t *Tx) error {
		if !actor.IsOperator() {
			return Deny(audit.PlatformChain, actor, "operator.create", "", kluis.ErrForbidden)
		}
		op = kluis.Operator{ID: kluis.OperatorID(kluis.NewID(t.Now())), Email: email, Name: name, CreatedAt: t.Now()}
		_, err := t.Exec(ctx, `INSERT INTO operators (id, email, name, password_hash, disabled, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			op.ID, op.Email, op.Name, hash, false, Micros(t.Now()))
		if IsUniqueViolation(err) {
			return kluis.Errorf(kluis.EConflict, "an operator with this e-mail address exists")
		}
		if err != nil {
			return fmt.Errorf("create operator: %w", err)
		}
		return t.Append(ctx, audit.PlatformChain, actor, "operator.create", "operator:"+string(op.ID), "success", nil)
	})
	return op, err
}

// OperatorLogin checks an operator's e-mail and password (R22: a realm
// apart from every organisation). With a second factor enrolled the password
// opens no session: the error is an *MFAChallenge for OperatorLoginMFA.
// Without one, the session is limited to enrolling one
// (Session.MFAEnrolmentRequired): operators must have a second factor
// (R17). A disabled operator is answered like a wrong password. Failures are
// recorded in the platform chain and throttled (R18). Errors:
// unauthenticated, too_many_requests, *MFAChallenge.
func (s *Store) OperatorLogin(ctx context.Context, email, pw string) (Session, error) {
	email, pw = kluis.NormalizeEmail(email), kluis.NormalizePassword(pw)
	ident, err := s.operatorIdent(ctx, email)
	if err != nil {
		return Session{}, err
	}
	g, err := s.gateSignIn(ctx, operatorScope, ident)
	if err != nil {
		return Session{}, err
	}
	fail := signInFailure{scope: operatorScope, chain: audit.PlatformChain, action: "operator.login_failed",
		ident: ident, device: g.device, threshold: g.threshold, reason: "password"}
	if !g.locked.IsZero() {
		s.countLogin(kluis.RealmOperator, "failure")
		s.countThrottle("locked")
		fail.reason, fail.alreadyLocked = "locked", g.locked
		return Session{}, s.signInFailed(ctx, fail)
	}
	var id kluis.OperatorID
	var hash string
	var disabled bool
	err = sql.ErrNoRows
	if kluis.ValidateEmail(email) == nil {
		err = s.db.ReadRow(ctx, `SELECT id, password_hash, disabled FROM operators WHERE email = ?`, email).Scan(&id, &hash, &disabled)
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Session{}, err
	}
	found := err == nil
	ok, rehash := false, false
	if found && !disabled {
		if ok, rehash, err = s.hasher.Verify(ctx, pw, hash); err != nil {
			return Session{}, err
		}
	} else {
		s.hasher.VerifyDummy(ctx, pw)
	}
	if !ok {
		if found {
			fail.target = "operator:" + string(id)
		}
		s.countLogin(kluis.RealmOperator, "failure")
		return Session{}, s.signInFailed(ctx, fail)
	}
	newHash := ""
	if rehash {
		if newHash, err = s.hasher.Hash(ctx, pw); err != nil {
			return Session{}, err
		}
	}
	var sess Session
	var challenge *MFAChallenge
	var lockedMeanwhile time.Time
	err = s.Write(ctx, audit.PlatformChain, func(t *Tx) error {
		sess, challenge = Session{}, nil
		if until, err := t.lockedMeanwhile(ctx, operatorScope, ident, g.device); err != nil {
			return err
		} else if !until.IsZero() {
			lockedMeanwhile = until
			return errLockedMeanwhile
		}
		// The account may have changed since the read above: disabled, or
		// another password (a reset from the command line wins).
		var now string
		var off bool
		if err := t.QueryRow(ctx, `SELECT password_hash, disabled FROM operators WHERE id = ?`, id).Scan(&now, &off); err != nil || off || now != hash {
			return kluis.ErrUnauthenticated
		}
		if newHash != "" {
			if _, err := t.Exec(ctx, `UPDATE operators SET password_hash = ? WHERE id = ?`, newHash, id); err != nil {
				return err
			}
		}
		// With a second factor the password opens no session, only a
		// challenge for the second step (R17).
		methods, err := t.operatorFactorMethods(ctx, id)
		if err != nil {
			return err
		}
		if len(methods) > 0 {
			if challenge, err = t.openOperatorChallenge(ctx, id, methods); err != nil {
				return err
			}
			if g.device != nil { // the second step is exempt from the address block too
				if _, err := t.Exec(ctx, `UPDATE operator_challenges SET trusted = TRUE WHERE token_hash = ?`, TokenHash(challenge.Token)); err != nil {
					return err
				}
			}
			return t.Append(ctx, audit.PlatformChain, kluis.Actor{}, "operator.login_password", operatorTarget(id), "success", nil)
		}
		sess, err = t.startOperatorSession(ctx, id, ident, "password")
		return err
	})
	if errors.Is(err, errLockedMeanwhile) {
		s.countLogin(kluis.RealmOperator, "failure")
		fail.target, fail.reason, fail.alreadyLocked = "operator:"+string(id), "locked", lockedMeanwhile
		return Session{}, s.signInFailed(ctx, fail)
	}
	if kluis.ErrorCode(err) == kluis.EUnauthenticated {
		s.countLogin(kluis.RealmOperator, "failure")
		if rerr := s.RecordRefusal(ctx, audit.PlatformChain, kluis.Actor{}, "operator.login_failed", operatorTarget(id), "failure", map[string]any{"reason": "changed"}); rerr != nil {
			return Session{}, rerr
		}
	}
	if err != nil {
		return Session{}, err
	}
	if challenge != nil {
		return Session{}, challenge
	}
	s.countLogin(kluis.RealmOperator, "success")
	return sess, nil
}

// AuthenticateOperator resolves an operator session token. An organisation
// user's token is not found here. Errors: unauthenticated.
func (s *Store) AuthenticateOperator(ctx context.Context, token string) (kluis.Actor, error) {
	if !ValidTokenShape(token) {
		return kluis.Actor{}, kluis.ErrUnauthenticated
	}
	var sid kluis.SessionID
	var id kluis.OperatorID
	var created, lastSeen, expires int64
	var disabled bool
	var enrolled int
	// enrolled: a confirmed second factor. Without one the session may
	// only enrol one (R17); the HTTP layer enforces it in one place.
	err := s.db.ReadRow(ctx, `SELECT s.id, s.operator_id, s.created_at, s.last_seen_at, s.expires_at, o.disabled,
		(SELECT COUNT(*) FROM operator_factors f WHERE f.operator_id = s.operator_id AND f.confirmed_at IS NOT NULL)
		FROM operator_sessions s JOIN operators o ON o.id = s.operator_id WHERE s.token_hash = ?`, TokenHash(token)).
		Scan(&sid, &id, &created, &lastSeen, &expires, &disabled, &enrolled)
	if errors.Is(err, sql.ErrNoRows) {
		return kluis.Actor{}, kluis.ErrUnauthenticated
	}
	if err != nil {
		return kluis.Actor{}, err
	}
	now := s.Now()
	if disabled || !sessionAlive(now, FromMicros(created), FromMicros(lastSeen), FromMicros(expires), OperatorPolicy.IdleTimeout(), OperatorPolicy.MaxLifetime()) {
		if _, err := s.db.WriteExec(ctx, `DELETE FROM operator_sessions WHERE id = ?`, sid); err != nil {
			return kluis.Actor{}, err
		}
		return kluis.Actor{}, kluis.ErrUnauthenticated
	}
	if now.Sub(FromMicros(lastSeen)) >= lastSeenGranularity {
		if _, err := s.db.WriteExec(ctx, `UPDATE operator_sessions SET last_seen_at = ? WHERE id = ?`, Micros(now), sid); err != nil {
			return kluis.Actor{}, err
		}
	}
	// Every operator session opens at a sign-in or a re-authentication, so
	// its start is when its holder last proved who they are.
	return kluis.Actor{Realm: kluis.RealmOperator, OperatorID: id, SessionID: sid, AuthenticatedAt: FromMicros(created),
		MFAEnrolmentOnly: enrolled == 0}, nil
}

// OperatorLogout ends the operator's session. Errors: unauthenticated.
func (s *Store) OperatorLogout(ctx context.Context, actor kluis.Actor) error {
	return s.Write(ctx, audit.PlatformChain, func(t *Tx) error {
		if actor.Realm != kluis.RealmOperator {
			return kluis.ErrUnauthenticated
		}
		if _, err := t.Exec(ctx, `DELETE FROM operator_sessions WHERE id = ?`, actor.SessionID); err != nil {
			return err
		}
		return t.Append(ctx, audit.PlatformChain, actor, "operator.logout", "operator:"+string(actor.OperatorID), "success", nil)
	})
}
