// Package signin is the one sign-in for both realms (R14, R17, R18, R19,
// R20, R21): the password step, the second step, re-authentication,
// sessions, password change and reset, for an organisation's users and for
// the operator's staff alike. What differs between the realms (where the
// account lives, its chain and policy, its notices) is decided by package
// accounts from the kluis.Scope; the second factors are package factors and
// the brute-force protection package throttle. It implements
// kluis.SignInService, kluis.SessionService and kluis.RecoveryService.
//
// Every step taken before sign-in answers one and the same unauthenticated
// for every failure, after the same hashing work (DESIGN §5), records it,
// and counts it against the identifier and the client address (DESIGN §6).
package signin

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/password"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/accounts"
	"github.com/kluis/kluis/internal/sqlstore/factors"
	"github.com/kluis/kluis/internal/sqlstore/throttle"
	"github.com/kluis/kluis/internal/sqlstore/tokens"
)

// Service is the sign-in area.
type Service struct {
	core     *sqlstore.Core
	hasher   *password.Hasher
	throttle *throttle.Service
	factors  *factors.Service
	tokens   *tokens.Service
}

// New returns the sign-in area over core.
func New(core *sqlstore.Core, hasher *password.Hasher, throttle *throttle.Service, factors *factors.Service, tokens *tokens.Service) *Service {
	return &Service{core: core, hasher: hasher, throttle: throttle, factors: factors, tokens: tokens}
}

var (
	_ kluis.SignInService   = (*Service)(nil)
	_ kluis.SessionService  = (*Service)(nil)
	_ kluis.RecoveryService = (*Service)(nil)
)

// maxChallengeAttempts is how many wrong answers end a challenge: the
// person starts again with the password.
const maxChallengeAttempts = 5

func (s *Service) countLogin(scope kluis.Scope, outcome string) {
	s.core.Observe().Login(scope.Realm, outcome)
}

// Login checks an e-mail address and password in scope and opens a session
// (R14). A wrong password, an unknown address, a disabled or invited
// account all get unauthenticated after the same hashing work, each failure
// recorded and counted (a lock or block answers too_many_requests, the same
// for every account). Weaker stored hashes are upgraded. While the
// organisation's logins are stopped (R19) every attempt gets
// logins_disabled. With a second factor enrolled, the password opens no
// session: the error is a *kluis.Challenge for LoginSecondStep. Without
// one, where the policy (or, for operators, the realm) requires one, the
// session is limited to enrolment. Errors: unauthenticated,
// logins_disabled, too_many_requests, *kluis.Challenge.
func (s *Service) Login(ctx context.Context, scope kluis.Scope, from kluis.Origin, email, pw string) (kluis.Session, error) {
	if !scope.Valid() {
		return kluis.Session{}, kluis.ErrNotFound
	}
	chain := accounts.Chain(scope)
	// Stopped logins (R19) are refused for everyone alike, before any
	// account is looked at: the answer tells nothing about the account.
	// They count against the client address like any failure, so a flood
	// during an incident is blocked too.
	if scope.Realm == kluis.RealmOrg {
		if stopped, err := s.core.LoginsStopped(ctx, scope.Org); err != nil || stopped {
			if err == nil {
				if err = s.throttle.GateAddress(ctx, from); err == nil {
					s.countLogin(scope, "failure")
					err = s.throttle.AnonymousFailure(ctx, from, chain, "auth.login_failed", "", map[string]any{"reason": "logins_disabled"}, kluis.ErrLoginsDisabled)
				}
			}
			return kluis.Session{}, err
		}
	}
	lookup, pw := kluis.NormalizeEmail(email), kluis.NormalizePassword(pw)
	// The identifier is counted whether or not an account has it (DESIGN
	// §6); anything typed has one, so a lock never tells what exists.
	ident, err := s.throttle.Ident(ctx, scope, lookup)
	if errors.Is(err, kluis.ErrNotFound) {
		// The organisation's keys are destroyed: it was deleted.
		s.hasher.VerifyDummy(ctx, pw)
		return kluis.Session{}, kluis.ErrUnauthenticated
	}
	if err != nil {
		return kluis.Session{}, err
	}
	g, err := s.throttle.GateSignIn(ctx, from, scope, ident)
	if err != nil {
		return kluis.Session{}, err
	}
	fail := throttle.Failure{Scope: scope, Ident: ident, Gate: g, Reason: "unknown"}
	if !g.Locked.IsZero() {
		s.countLogin(scope, "failure")
		s.core.Observe().Throttled("locked")
		fail.Reason, fail.AlreadyLocked = "locked", g.Locked
		return kluis.Session{}, s.throttle.SignInFailed(ctx, from, fail)
	}
	var a accounts.Account
	err = kluis.ErrNotFound
	// An address that cannot be valid is an unknown account: it never
	// reaches the database, and it is answered like any other failure.
	if kluis.ValidateEmail(lookup) == nil {
		a, err = accounts.FindByEmail(ctx, s.core, scope, lookup, ident)
	}
	if err != nil && !errors.Is(err, kluis.ErrNotFound) {
		return kluis.Session{}, err
	}
	found := err == nil
	ok, rehash := false, false
	if found && a.Active() {
		if ok, rehash, err = s.hasher.Verify(ctx, pw, a.Hash); err != nil {
			return kluis.Session{}, err
		}
	} else {
		s.hasher.VerifyDummy(ctx, pw)
	}
	if !ok {
		if found {
			fail.Target, fail.Reason = accounts.Target(scope, a.ID), "password"
			if a.Status != kluis.StatusActive {
				fail.Reason = string(a.Status)
			} else if scope.Realm == kluis.RealmOrg {
				fail.User = kluis.UserID(a.ID)
			}
		}
		s.countLogin(scope, "failure")
		return kluis.Session{}, s.throttle.SignInFailed(ctx, from, fail)
	}
	newHash := ""
	if rehash {
		if newHash, err = s.hasher.Hash(ctx, pw); err != nil {
			return kluis.Session{}, err
		}
	}
	var sess kluis.Session
	var challenge *kluis.Challenge
	var lockedMeanwhile time.Time
	err = s.core.Write(ctx, chain, func(t *sqlstore.Tx) error {
		sess, challenge = kluis.Session{}, nil
		// The account may have changed since the read above: another
		// status, or another password (a reset meanwhile wins).
		cur, err := accounts.Find(ctx, t, s.core, scope, a.ID)
		if err != nil || !cur.Active() || cur.Hash != a.Hash {
			return kluis.ErrUnauthenticated
		}
		// Logins may have been stopped since the check above (R19).
		if stopped, err := accounts.LoginsStopped(ctx, t, scope); err != nil {
			return err
		} else if stopped {
			return kluis.ErrLoginsDisabled
		}
		// Guesses racing each other may have locked the identifier (or
		// the device entry they came with) since the gate: then a right
		// password is answered like a wrong one would be now, so parallel
		// guessing gains nothing.
		if until, err := s.throttle.LockedMeanwhile(ctx, t, scope, ident, g); err != nil {
			return err
		} else if !until.IsZero() {
			lockedMeanwhile = until
			return throttle.ErrLockedMeanwhile
		}
		if newHash != "" {
			if _, err := accounts.SetPassword(ctx, t, scope, a.ID, newHash, a.Hash); err != nil {
				return err
			}
		}
		// With a second factor the password opens no session, only a
		// challenge for the second step (R17).
		methods, err := factors.Methods(ctx, t, scope, a.ID)
		if err != nil {
			return err
		}
		if len(methods) > 0 {
			if challenge, err = s.openChallenge(ctx, t, scope, a.ID, methods, g.Device != nil); err != nil {
				return err
			}
			return t.Append(ctx, chain, kluis.Actor{From: from}, accounts.Action(scope, "auth.login_password"), accounts.Target(scope, a.ID), "success", nil)
		}
		sess, err = s.startSession(ctx, t, scope, from, cur, ident, "password")
		return err
	})
	if errors.Is(err, throttle.ErrLockedMeanwhile) {
		s.countLogin(scope, "failure")
		fail.Target, fail.Reason, fail.AlreadyLocked = accounts.Target(scope, a.ID), "locked", lockedMeanwhile
		if scope.Realm == kluis.RealmOrg {
			fail.User = kluis.UserID(a.ID)
		}
		return kluis.Session{}, s.throttle.SignInFailed(ctx, from, fail)
	}
	if code := kluis.ErrorCode(err); code == kluis.EUnauthenticated || code == kluis.ELoginsDisabled {
		s.countLogin(scope, "failure")
		if rerr := s.core.RecordRefusal(ctx, chain, kluis.Actor{From: from}, accounts.Action(scope, "auth.login_failed"), accounts.Target(scope, a.ID), "failure",
			map[string]any{"reason": "changed"}); rerr != nil {
			return kluis.Session{}, rerr
		}
	}
	if err != nil {
		return kluis.Session{}, err
	}
	if challenge != nil {
		return kluis.Session{}, challenge
	}
	s.countLogin(scope, "success")
	return sess, nil
}

// openChallenge opens the single-use challenge of a password step for the
// second step; a new password step ends the account's other challenges.
// trusted marks a password step that came with a valid device entry: the
// second step is then exempt from the address block too (DESIGN §6).
func (s *Service) openChallenge(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject string, methods []string, trusted bool) (*kluis.Challenge, error) {
	if _, err := t.Exec(ctx, `DELETE FROM challenges WHERE org_id = ? AND subject = ?`, scope.Org, subject); err != nil {
		return nil, err
	}
	token, hash := sqlstore.NewToken()
	c := &kluis.Challenge{Token: token, Methods: methods, ExpiresAt: t.Now().Add(kluis.ChallengeTTL)}
	user, operator := accounts.Owner(scope, subject)
	_, err := t.Exec(ctx, `INSERT INTO challenges (id, org_id, subject, user_id, operator_id, token_hash, created_at, expires_at, attempts, trusted)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)`, kluis.NewID(t.Now()), scope.Org, subject, user, operator, hash, sqlstore.Micros(t.Now()), sqlstore.Micros(c.ExpiresAt), trusted)
	return c, err
}

// startSession opens a session after a complete sign-in (method "password"
// when no second factor is enrolled, else the factor's), settles the
// throttle for the identifier, records the sign-in and the last-login time.
// A sign-in with the password alone where a second factor is required gets
// a session limited to enrolment.
func (s *Service) startSession(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, from kluis.Origin, a accounts.Account, ident []byte, method string) (kluis.Session, error) {
	policy, err := accounts.Policy(ctx, t, scope)
	if err != nil {
		return kluis.Session{}, err
	}
	sess, err := accounts.OpenSession(ctx, t, s.core, scope, a.ID, from, policy.MaxLifetime())
	if err != nil {
		return kluis.Session{}, err
	}
	if err := accounts.SignedIn(ctx, t, scope, a.ID); err != nil {
		return kluis.Session{}, err
	}
	// Only a sign-in without a second factor reaches here with "password".
	sess.MFAEnrolmentRequired = method == "password" && policy.MFA == kluis.MFARequired
	if err := s.throttle.SignedIn(ctx, t, from, scope, ident, &sess); err != nil {
		return kluis.Session{}, err
	}
	if scope.Realm == kluis.RealmOrg {
		sess.User = a.User
		sess.User.LastLoginAt = t.Now()
	}
	details := map[string]any{"session": string(sess.ID)}
	if method != "password" {
		details["method"] = method
	}
	return sess, t.Append(ctx, accounts.Chain(scope), a.Actor(sess.ID, from), accounts.Action(scope, "auth.login"), accounts.Target(scope, a.ID), "success", details)
}

// liveChallenge is a challenge row found by its token.
type liveChallenge struct {
	id, subject       string
	expires, attempts int64
}

// findChallenge finds the live challenge of the token in scope (locking it
// on PostgreSQL when lock is set). Errors: unauthenticated (none, or
// lapsed).
func findChallenge(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, token string, lock bool) (liveChallenge, error) {
	var c liveChallenge
	if !sqlstore.ValidTokenShape(token) {
		return c, kluis.ErrUnauthenticated
	}
	q := `SELECT id, subject, expires_at, attempts FROM challenges WHERE org_id = ? AND token_hash = ?`
	if lock {
		q += t.ForUpdate()
	}
	err := t.QueryRow(ctx, q, scope.Org, sqlstore.TokenHash(token)).Scan(&c.id, &c.subject, &c.expires, &c.attempts)
	if errors.Is(err, sql.ErrNoRows) || err == nil && !t.Now().Before(sqlstore.FromMicros(c.expires)) {
		return c, kluis.ErrUnauthenticated
	}
	return c, err
}

// LoginSecondStep completes a two-step login with an answer of a method
// the account enrolled: "totp", "sms" or "recovery" with a code, or
// "webauthn" with an assertion. The challenge is single-use and lives
// kluis.ChallengeTTL; five wrong answers end it, and wrong answers lock
// the factor. A blocked address is refused first, unless the password step
// came from a trusted browser. Every failure gets the same unauthenticated,
// is recorded and counts against the address. Errors: unauthenticated,
// logins_disabled, too_many_requests.
func (s *Service) LoginSecondStep(ctx context.Context, scope kluis.Scope, from kluis.Origin, challenge, method, code string) (kluis.Session, error) {
	if !scope.Valid() {
		return kluis.Session{}, kluis.ErrNotFound
	}
	if err := s.throttle.GateSecondStep(ctx, from, scope, challenge); err != nil {
		return kluis.Session{}, err
	}
	chain := accounts.Chain(scope)
	var sess kluis.Session
	var failed string
	var stoppedErr error
	failure := false
	err := s.core.Write(ctx, chain, func(t *sqlstore.Tx) error {
		sess, failed, stoppedErr, failure = kluis.Session{}, "", nil, false
		c, err := findChallenge(ctx, t, scope, challenge, true)
		if kluis.ErrorCode(err) == kluis.EUnauthenticated {
			failure = true
			return nil
		}
		if err != nil {
			return err
		}
		a, err := accounts.Find(ctx, t, s.core, scope, c.subject)
		if err != nil {
			return err
		}
		if stopped, err := accounts.LoginsStopped(ctx, t, scope); err != nil {
			return err
		} else if stopped {
			stoppedErr = kluis.ErrLoginsDisabled
			return nil
		}
		ok := false
		if a.Active() {
			if ok, err = s.factors.Check(ctx, t, scope, from, a.ID, "login", factors.ChallengeBound(c.id), method, code); err != nil {
				return err
			}
		}
		if !ok {
			failure, failed = true, a.ID
			if c.attempts+1 >= maxChallengeAttempts || !a.Active() {
				_, err = t.Exec(ctx, `DELETE FROM challenges WHERE id = ?`, c.id)
			} else {
				_, err = t.Exec(ctx, `UPDATE challenges SET attempts = attempts + 1 WHERE id = ?`, c.id)
			}
			return err
		}
		if _, err := t.Exec(ctx, `DELETE FROM challenges WHERE id = ?`, c.id); err != nil {
			return err
		}
		ident, err := s.throttle.AccountIdent(ctx, t, scope, a.ID, a.Email)
		if err != nil {
			return err
		}
		sess, err = s.startSession(ctx, t, scope, from, a, ident, method)
		return err
	})
	if err != nil {
		return kluis.Session{}, err
	}
	if stoppedErr != nil {
		s.countLogin(scope, "failure")
		if err := s.core.RecordRefusal(ctx, chain, kluis.Actor{From: from}, "auth.login_failed", "", "failure", map[string]any{"reason": "logins_disabled"}); err != nil {
			return kluis.Session{}, err
		}
		return kluis.Session{}, stoppedErr
	}
	if failure {
		s.countLogin(scope, "failure")
		return kluis.Session{}, s.throttle.AnonymousFailure(ctx, from, chain, accounts.Action(scope, "auth.login_failed"), accounts.Target(scope, failed),
			map[string]any{"reason": "second_factor"}, kluis.ErrUnauthenticated)
	}
	s.countLogin(scope, "success")
	return sess, nil
}

// ChallengeMethods returns the methods a live challenge may be completed
// with, for the second step's page. Errors: unauthenticated (no such
// challenge, or lapsed).
func (s *Service) ChallengeMethods(ctx context.Context, scope kluis.Scope, challenge string) ([]string, error) {
	var methods []string
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		c, err := findChallenge(ctx, t, scope, challenge, false)
		if err != nil {
			return err
		}
		methods, err = factors.Methods(ctx, t, scope, c.subject)
		return err
	})
	return methods, err
}

// PrepareSecondStep readies the second step of a challenge: for
// "webauthn" the options for navigator.credentials.get (the ceremony bound
// to the challenge); for "sms" a code sent to the verified number (at most
// kluis.SMSCodesPerChallenge for the challenge). Anyone may call it: a
// blocked address is refused (unless the password step came from a trusted
// browser), and every failure (no such challenge, lapsed, nothing enrolled
// for the method) gets the same unauthenticated. Errors: unauthenticated,
// forbidden, too_many_requests, invalid_input (method).
func (s *Service) PrepareSecondStep(ctx context.Context, scope kluis.Scope, from kluis.Origin, challenge, method string) ([]byte, error) {
	if err := s.throttle.GateSecondStep(ctx, from, scope, challenge); err != nil {
		return nil, err
	}
	chain := accounts.Chain(scope)
	switch method {
	case string(kluis.FactorPasskey):
		var options []byte
		err := s.core.Write(ctx, "", func(t *sqlstore.Tx) error {
			c, err := findChallenge(ctx, t, scope, challenge, false)
			if err != nil {
				return err
			}
			var has bool
			if options, has, err = s.factors.BeginAssertion(ctx, t, scope, c.subject, "login", factors.ChallengeBound(c.id)); err != nil {
				return err
			}
			if !has {
				return kluis.ErrUnauthenticated
			}
			return nil
		})
		return options, err
	case string(kluis.FactorSMS):
		var subject string
		var wait time.Time
		failure := false
		err := s.core.Write(ctx, chain, func(t *sqlstore.Tx) error {
			subject, wait, failure = "", time.Time{}, false
			c, err := findChallenge(ctx, t, scope, challenge, true)
			if kluis.ErrorCode(err) == kluis.EUnauthenticated {
				failure = true
				return nil
			}
			if err != nil {
				return err
			}
			subject = c.subject
			sent, until, err := s.factors.SendCode(ctx, t, scope, kluis.Actor{From: from}, c.subject, "login", factors.ChallengeBound(c.id), sqlstore.FromMicros(c.expires))
			failure, wait = !sent, until
			return err
		})
		if err != nil {
			return nil, err
		}
		if failure {
			return nil, s.throttle.AnonymousFailure(ctx, from, chain, "mfa.sms_sent", accounts.Target(scope, subject),
				map[string]any{"purpose": "login", "reason": "challenge"}, kluis.ErrUnauthenticated)
		}
		if !wait.IsZero() {
			return nil, s.factors.SMSRefused(ctx, scope, kluis.Actor{From: from}, subject, "login", wait)
		}
		return nil, nil
	}
	return nil, kluis.Invalid(map[string]string{"method": "must be webauthn or sms"})
}
