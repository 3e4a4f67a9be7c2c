package sqlstore

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/mfa"
)

// Second factors of operator accounts (issue 5 item 8; R17, R22): the
// operator realm mirrors the users'. An operator signs in with the password
// and then a code from an authenticator app (or a recovery code); the
// password step opens no session but a single-use challenge that lives
// ChallengeTTL. Operators must enrol: an operator without a factor who signs
// in gets a session limited to setting one up (kluis.Actor.MFAEnrolmentOnly,
// enforced by the HTTP layer in one place). Wrong codes lock the factor as
// they do a user's (factorLockAfter, doubling up to factorLockMax).
//
// The TOTP secret and the key of the recovery codes' keyed hashes are sealed
// under the platform key, bound to their table, column and row. Platform
// keys are not rotated yet, so nothing here needs re-encryption.

const tabOperatorFactors = "operator_factors"

func operatorFactorField(id, column string) keys.FieldRef {
	return keys.FieldRef{Table: tabOperatorFactors, Column: column, Row: id}
}

// operatorTOTPIssuer labels the app's entry: short, so the QR code fits.
const operatorTOTPIssuer = "kluis operator"

// operatorFactor is an operator's TOTP row with its secrets opened.
type operatorFactor struct {
	id          string
	secret      string
	recoveryKey []byte
	lastStep    int64
	confirmed   bool
	sessionID   string    // of a pending set-up: the session that started it
	createdAt   time.Time // of a pending set-up
}

// pendingFor reports whether f is a set-up that actor's session started and
// that has not lapsed.
func (f operatorFactor) pendingFor(actor kluis.Actor, now time.Time) bool {
	return !f.confirmed && f.sessionID != "" && f.sessionID == string(actor.SessionID) && now.Before(f.createdAt.Add(PendingTOTPTTL))
}

// isOperatorSession reports whether a is a signed-in operator (a session,
// not the command line).
func isOperatorSession(a kluis.Actor) bool {
	return a.Realm == kluis.RealmOperator && a.OperatorID != "" && a.SessionID != ""
}

func operatorTarget(id kluis.OperatorID) string { return "operator:" + string(id) }

func (t *Tx) findOperatorFactor(ctx context.Context, op kluis.OperatorID) (operatorFactor, error) {
	var f operatorFactor
	var secret, rkey []byte
	var confirmed sql.NullInt64
	var session sql.NullString
	var created int64
	err := t.QueryRow(ctx, `SELECT id, secret, recovery_key, last_step, confirmed_at, session_id, created_at FROM operator_factors
		WHERE operator_id = ?`+t.db.ForUpdate(), op).Scan(&f.id, &secret, &rkey, &f.lastStep, &confirmed, &session, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return f, kluis.ErrNotFound
	}
	if err != nil {
		return f, err
	}
	p, err := t.s.Open(ctx, operatorFactorField(f.id, "secret"), secret)
	if err != nil {
		return f, err
	}
	if f.recoveryKey, err = t.s.Open(ctx, operatorFactorField(f.id, "recovery_key"), rkey); err != nil {
		return f, err
	}
	f.secret, f.confirmed, f.sessionID, f.createdAt = string(p), confirmed.Valid, session.String, FromMicros(created)
	return f, nil
}

// operatorFactorMethods lists an operator's confirmed methods: "totp", then
// "recovery" when codes are left.
func (t *Tx) operatorFactorMethods(ctx context.Context, op kluis.OperatorID) ([]string, error) {
	var totp, codes int
	if err := t.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM operator_factors WHERE operator_id = ? AND confirmed_at IS NOT NULL),
		(SELECT COUNT(*) FROM operator_recovery_codes WHERE operator_id = ? AND used_at IS NULL)`, op, op).Scan(&totp, &codes); err != nil {
		return nil, err
	}
	if totp == 0 {
		return nil, nil
	}
	methods := []string{"totp"}
	if codes > 0 {
		methods = append(methods, "recovery")
	}
	return methods, nil
}

// operatorRecoveryHash is what the store keeps of an operator's recovery
// code: an HMAC under the operator's own key, which is sealed under the
// platform key, bound to the operator.
func operatorRecoveryHash(key []byte, op kluis.OperatorID, code string) []byte {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "kluis/operator-recovery-code/v1\x00%s\x00%s", op, mfa.NormalizeRecoveryCode(code))
	return m.Sum(nil)
}

func (t *Tx) openOperatorChallenge(ctx context.Context, op kluis.OperatorID, methods []string) (*MFAChallenge, error) {
	// One open challenge per operator: a new password step ends the others.
	if _, err := t.Exec(ctx, `DELETE FROM operator_challenges WHERE operator_id = ?`, op); err != nil {
		return nil, err
	}
	token, hash := NewToken()
	c := &MFAChallenge{Token: token, Methods: methods, ExpiresAt: t.Now().Add(ChallengeTTL)}
	if _, err := t.Exec(ctx, `INSERT INTO operator_challenges (id, operator_id, token_hash, created_at, expires_at, attempts) VALUES (?, ?, ?, ?, ?, 0)`,
		kluis.NewID(t.Now()), op, hash, Micros(t.Now()), Micros(c.ExpiresAt)); err != nil {
		return nil, err
	}
	return c, nil
}

// startOperatorSession opens an operator session after a complete sign-in
// (method "password" when no factor is enrolled, else the factor's),
// settles the throttle for the identifier, records the sign-in and updates
// the last-login time. A sign-in with the password alone gets a session
// limited to enrolment.
func (t *Tx) startOperatorSession(ctx context.Context, op kluis.OperatorID, ident []byte, method string) (Session, error) {
	sess, err := t.openSession(ctx, "operator_sessions", "", string(op), OperatorPolicy.MaxLifetime())
	if err != nil {
		return Session{}, err
	}
	if err := t.signedInAs(ctx, operatorScope, ident, &sess); err != nil {
		return Session{}, err
	}
	if _, err := t.Exec(ctx, `UPDATE operators SET last_login_at = ? WHERE id = ?`, Micros(t.Now()), op); err != nil {
		return Session{}, err
	}
	sess.MFAEnrolmentRequired = method == "password"
	details := map[string]any{"session": string(sess.ID)}
	if method != "password" {
		details["method"] = method
	}
	actor := kluis.Actor{Realm: kluis.RealmOperator, OperatorID: op, SessionID: sess.ID}
	return sess, t.Append(ctx, audit.PlatformChain, actor, "operator.login", operatorTarget(op), "success", details)
}

// checkOperatorFactor checks a "totp" or "recovery" code of the operator and
// uses it up. Wrong codes count against the operator across challenges and
// re-authentications: after factorLockAfter of them nothing is accepted for
// a while (a minute, doubling up to factorLockMax), which is recorded; a
// right code resets the count.
func (t *Tx) checkOperatorFactor(ctx context.Context, op kluis.OperatorID, method, code string) (bool, error) {
	var failures int64
	var locked sql.NullInt64
	if err := t.QueryRow(ctx, `SELECT factor_failures, factor_locked_until FROM operators WHERE id = ?`+t.db.ForUpdate(), op).Scan(&failures, &locked); err != nil {
		return false, err
	}
	if locked.Valid && t.Now().Before(FromMicros(locked.Int64)) {
		return false, nil
	}
	f, err := t.findOperatorFactor(ctx, op)
	if errors.Is(err, kluis.ErrNotFound) || err == nil && !f.confirmed {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	ok := false
	switch method {
	case "totp":
		if step, good := mfa.VerifyTOTP(f.secret, code, t.Now(), f.lastStep); good {
			if _, err := t.Exec(ctx, `UPDATE operator_factors SET last_step = ? WHERE id = ?`, step, f.id); err != nil {
				return false, err
			}
			ok = true
		}
	case "recovery":
		res, err := t.Exec(ctx, `UPDATE operator_recovery_codes SET used_at = ? WHERE operator_id = ? AND code_hash = ? AND used_at IS NULL`,
			Micros(t.Now()), op, operatorRecoveryHash(f.recoveryKey, op, code))
		if err != nil {
			return false, err
		}
		n, _ := res.RowsAffected()
		ok = n == 1
	}
	if ok {
		_, err := t.Exec(ctx, `UPDATE operators SET factor_failures = 0, factor_locked_until = NULL WHERE id = ?`, op)
		return err == nil, err
	}
	failures++
	var lockedUntil any
	if failures >= factorLockAfter {
		lock := min(time.Minute<<min(failures-factorLockAfter, 6), factorLockMax)
		lockedUntil = Micros(t.Now().Add(lock))
		if err := t.Append(ctx, audit.PlatformChain, kluis.Actor{}, "operator.mfa_locked", operatorTarget(op), "success",
			map[string]any{"failures": failures, "minutes": int(lock / time.Minute)}); err != nil {
			return false, err
		}
	}
	_, err = t.Exec(ctx, `UPDATE operators SET factor_failures = ?, factor_locked_until = ? WHERE id = ?`, failures, lockedUntil, op)
	return false, err
}

// OperatorLoginMFA completes an operator's two-step sign-in with a "totp" or
// "recovery" code. The challenge is single-use and lives ChallengeTTL; five
// wrong codes end it, and wrong codes lock the factor. A blocked client
// address is refused first; every failure gets the same unauthenticated, is
// recorded in the platform chain and counts against the address (R18).
// Errors: unauthenticated, too_many_requests.
func (s *Store) OperatorLoginMFA(ctx context.Context, challenge, method, code string) (Session, error) {
	if err := s.gateOperatorSecondStep(ctx, challenge); err != nil {
		return Session{}, err
	}
	if !ValidTokenShape(challenge) {
		challenge = ""
	}
	var sess Session
	var failed kluis.OperatorID
	failure := false
	err := s.Write(ctx, audit.PlatformChain, func(t *Tx) error {
		sess, failed, failure = Session{}, "", false
		var id string
		var op kluis.OperatorID
		var expires, attempts int64
		err := t.QueryRow(ctx, `SELECT id, operator_id, expires_at, attempts FROM operator_challenges WHERE token_hash = ?`+t.db.ForUpdate(), TokenHash(challenge)).
			Scan(&id, &op, &expires, &attempts)
		if errors.Is(err, sql.ErrNoRows) || err == nil && !t.Now().Before(FromMicros(expires)) {
			failure = true
			return nil
		}
		if err != nil {
			return err
		}
		var email string
		var disabled bool
		if err := t.QueryRow(ctx, `SELECT email, disabled FROM operators WHERE id = ?`, op).Scan(&email, &disabled); err != nil {
			return err
		}
		ok := false
		if !disabled {
			if ok, err = t.checkOperatorFactor(ctx, op, method, code); err != nil {
				return err
			}
		}
		if !ok {
			failure, failed = true, op
			if attempts+1 >= maxChallengeAttempts || disabled {
				_, err = t.Exec(ctx, `DELETE FROM operator_challenges WHERE id = ?`, id)
			} else {
				_, err = t.Exec(ctx, `UPDATE operator_challenges SET attempts = attempts + 1 WHERE id = ?`, id)
			}
			return err
		}
		if _, err := t.Exec(ctx, `DELETE FROM operator_challenges WHERE id = ?`, id); err != nil {
			return err
		}
		ident, err := t.s.operatorIdent(ctx, email)
		if err != nil {
			return err
		}
		sess, err = t.startOperatorSession(ctx, op, ident, method)
		return err
	})
	if err != nil {
		return Session{}, err
	}
	if failure {
		s.countLogin(kluis.RealmOperator, "failure")
		target := ""
		if failed != "" {
			target = operatorTarget(failed)
		}
		return Session{}, s.anonymousFailure(ctx, audit.PlatformChain, "operator.login_failed", target, map[string]any{"reason": "second_factor"}, kluis.ErrUnauthenticated)
	}
	s.countLogin(kluis.RealmOperator, "success")
	return sess, nil
}

// FindOperatorChallengeMethods returns the methods a live operator challenge
// may be completed with, for the second step's page. Errors:
// unauthenticated (unknown or expired).
func (s *Store) FindOperatorChallengeMethods(ctx context.Context, challenge string) ([]string, error) {
	if !ValidTokenShape(challenge) {
		return nil, kluis.ErrUnauthenticated
	}
	var methods []string
	err := s.Read(ctx, func(t *Tx) error {
		var op kluis.OperatorID
		var expires int64
		err := t.QueryRow(ctx, `SELECT operator_id, expires_at FROM operator_challenges WHERE token_hash = ?`, TokenHash(challenge)).Scan(&op, &expires)
		if errors.Is(err, sql.ErrNoRows) || err == nil && !t.Now().Before(FromMicros(expires)) {
			return kluis.ErrUnauthenticated
		}
		if err != nil {
			return err
		}
		methods, err = t.operatorFactorMethods(ctx, op)
		return err
	})
	return methods, err
}

// OperatorAccount is what an operator sees of their own account.
type OperatorAccount struct {
	kluis.Operator
	LastLoginAt  time.Time // zero when never signed in
	Methods      []string  // confirmed second-factor methods: "totp", "recovery"
	RecoveryLeft int
}

// FindOperatorAccount returns the signed-in operator's own account and
// second factors. Errors: unauthenticated.
func (s *Store) FindOperatorAccount(ctx context.Context, actor kluis.Actor) (OperatorAccount, error) {
	if !isOperatorSession(actor) {
		return OperatorAccount{}, kluis.ErrUnauthenticated
	}
	var a OperatorAccount
	err := s.Read(ctx, func(t *Tx) error {
		var created int64
		var last sql.NullInt64
		err := t.QueryRow(ctx, `SELECT id, email, name, created_at, last_login_at FROM operators WHERE id = ?`, actor.OperatorID).
			Scan(&a.ID, &a.Email, &a.Name, &created, &last)
		if errors.Is(err, sql.ErrNoRows) {
			return kluis.ErrUnauthenticated
		}
		if err != nil {
			return err
		}
		a.CreatedAt, a.LastLoginAt = FromMicros(created), NullMicros(last)
		if a.Methods, err = t.operatorFactorMethods(ctx, actor.OperatorID); err != nil {
			return err
		}
		return t.QueryRow(ctx, `SELECT COUNT(*) FROM operator_recovery_codes WHERE operator_id = ? AND used_at IS NULL`, actor.OperatorID).Scan(&a.RecoveryLeft)
	})
	return a, err
}

func (s *Store) operatorReauthRequired(ctx context.Context, actor kluis.Actor, action string) error {
	if err := s.RecordRefusal(ctx, audit.PlatformChain, actor, action, operatorTarget(actor.OperatorID), "failure", map[string]any{"reason": "reauth_required"}); err != nil {
		return err
	}
	return kluis.ErrReauthRequired
}

// StartOperatorTOTP makes a new TOTP secret for the signed-in operator,
// pending until ConfirmOperatorTOTP, and returns it with its otpauth:// URL.
// It needs a fresh authentication. An enrolled app is replaced only through
// the command line (kluis operator reset-factors): operators must keep a
// factor. Errors: unauthenticated, reauth_required, conflict.
func (s *Store) StartOperatorTOTP(ctx context.Context, actor kluis.Actor) (secret, url string, err error) {
	if !isOperatorSession(actor) {
		return "", "", kluis.ErrUnauthenticated
	}
	if !kluis.FreshlyAuthenticated(actor, s.Now()) {
		return "", "", s.operatorReauthRequired(ctx, actor, "operator.totp_start")
	}
	err = s.Write(ctx, audit.PlatformChain, func(t *Tx) error {
		var email string
		if err := t.QueryRow(ctx, `SELECT email FROM operators WHERE id = ?`, actor.OperatorID).Scan(&email); err != nil {
			return kluis.ErrUnauthenticated
		}
		var confirmed sql.NullInt64
		err := t.QueryRow(ctx, `SELECT confirmed_at FROM operator_factors WHERE operator_id = ?`, actor.OperatorID).Scan(&confirmed)
		switch {
		case err == nil && confirmed.Valid:
			return kluis.Errorf(kluis.EConflict, "an authenticator app is set up already")
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if secret, url, err = mfa.NewTOTP(operatorTOTPIssuer, email); err != nil {
			return err
		}
		id := kluis.NewID(t.Now())
		sealed, err := t.s.Seal(ctx, keys.PlatformKey(), operatorFactorField(id, "secret"), []byte(secret))
		if err != nil {
			return fmt.Errorf("seal TOTP secret: %w", err)
		}
		rkey := make([]byte, 32)
		rand.Read(rkey)
		sealedKey, err := t.s.Seal(ctx, keys.PlatformKey(), operatorFactorField(id, "recovery_key"), rkey)
		if err != nil {
			return fmt.Errorf("seal recovery key: %w", err)
		}
		if _, err := t.Exec(ctx, `DELETE FROM operator_factors WHERE operator_id = ?`, actor.OperatorID); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `INSERT INTO operator_factors (id, operator_id, secret, recovery_key, last_step, created_at, session_id) VALUES (?, ?, ?, ?, 0, ?, ?)`,
			id, actor.OperatorID, sealed, sealedKey, Micros(t.Now()), string(actor.SessionID)); err != nil {
			return err
		}
		return t.Append(ctx, audit.PlatformChain, actor, "operator.totp_start", operatorTarget(actor.OperatorID), "success", nil)
	})
	return secret, url, err
}

// PendingOperatorTOTPURL returns the otpauth:// URL of the pending secret
// this session started, for the set-up page's QR code. Errors:
// unauthenticated, not_found (nothing pending here).
func (s *Store) PendingOperatorTOTPURL(ctx context.Context, actor kluis.Actor) (string, error) {
	if !isOperatorSession(actor) {
		return "", kluis.ErrUnauthenticated
	}
	var url string
	err := s.Read(ctx, func(t *Tx) error {
		f, err := t.findOperatorFactor(ctx, actor.OperatorID)
		if err != nil {
			return err
		}
		if !f.pendingFor(actor, t.Now()) {
			return kluis.ErrNotFound
		}
		var email string
		if err := t.QueryRow(ctx, `SELECT email FROM operators WHERE id = ?`, actor.OperatorID).Scan(&email); err != nil {
			return err
		}
		url = mfa.URL(operatorTOTPIssuer, email, f.secret)
		return nil
	})
	return url, err
}

// ConfirmOperatorTOTP turns on the pending secret this session started with
// a first code (whose time step is then used up), makes ten recovery codes
// and returns them (shown once), and ends the operator's other sessions.
// The session itself is no longer limited to enrolment. A wrong code is
// recorded. Errors: unauthenticated, not_found (nothing pending here),
// invalid_input (code).
func (s *Store) ConfirmOperatorTOTP(ctx context.Context, actor kluis.Actor, code string) ([]string, error) {
	if !isOperatorSession(actor) {
		return nil, kluis.ErrUnauthenticated
	}
	var codes []string
	wrong := false
	err := s.Write(ctx, audit.PlatformChain, func(t *Tx) error {
		codes, wrong = nil, false
		f, err := t.findOperatorFactor(ctx, actor.OperatorID)
		if err != nil {
			return err
		}
		if !f.pendingFor(actor, t.Now()) {
			return kluis.ErrNotFound
		}
		step, ok := mfa.VerifyTOTP(f.secret, code, t.Now(), f.lastStep)
		if !ok {
			wrong = true
			return kluis.Invalid(map[string]string{"code": "is not correct"})
		}
		if _, err := t.Exec(ctx, `UPDATE operator_factors SET confirmed_at = ?, last_step = ?, session_id = NULL WHERE id = ?`, Micros(t.Now()), step, f.id); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `DELETE FROM operator_recovery_codes WHERE operator_id = ?`, actor.OperatorID); err != nil {
			return err
		}
		codes = mfa.NewRecoveryCodes(mfa.RecoveryCodes)
		for _, c := range codes {
			if _, err := t.Exec(ctx, `INSERT INTO operator_recovery_codes (id, operator_id, code_hash, created_at) VALUES (?, ?, ?, ?)`,
				kluis.NewID(t.Now()), actor.OperatorID, operatorRecoveryHash(f.recoveryKey, actor.OperatorID, c), Micros(t.Now())); err != nil {
				return err
			}
		}
		res, err := t.Exec(ctx, `DELETE FROM operator_sessions WHERE operator_id = ? AND id <> ?`, actor.OperatorID, string(actor.SessionID))
		if err != nil {
			return err
		}
		ended, _ := res.RowsAffected()
		return t.Append(ctx, audit.PlatformChain, actor, "operator.totp_enable", operatorTarget(actor.OperatorID), "success", map[string]any{"sessions_ended": ended})
	})
	if wrong {
		if rerr := s.RecordRefusal(ctx, audit.PlatformChain, actor, "operator.totp_enable", operatorTarget(actor.OperatorID), "failure", nil); rerr != nil {
			return nil, rerr
		}
	}
	return codes, err
}

// OperatorReauth proves again who the signed-in operator is — the password,
// and a code once a factor is enrolled — and replaces the session with a new
// one (a new id; the old token stops working) that counts as freshly
// authenticated for kluis.FreshAuthWindow. Wrong codes count towards the
// factor's lock. Errors: unauthenticated, invalid_input (password, code: one
// answer for either).
func (s *Store) OperatorReauth(ctx context.Context, actor kluis.Actor, pw, method, code string) (Session, error) {
	if !isOperatorSession(actor) {
		return Session{}, kluis.ErrUnauthenticated
	}
	var hash string
	if err := s.db.ReadRow(ctx, `SELECT password_hash FROM operators WHERE id = ?`, actor.OperatorID).Scan(&hash); err != nil {
		return Session{}, kluis.ErrUnauthenticated
	}
	ok, _, err := s.hasher.Verify(ctx, kluis.NormalizePassword(pw), hash)
	if err != nil {
		return Session{}, err
	}
	var sess Session
	var problem map[string]string
	err = s.Write(ctx, audit.PlatformChain, func(t *Tx) error {
		sess, problem = Session{}, nil
		methods, err := t.operatorFactorMethods(ctx, actor.OperatorID)
		if err != nil {
			return err
		}
		wrong := map[string]string{"password": "is not correct"}
		if len(methods) > 0 {
			wrong = map[string]string{"password": "or the code is not correct", "code": "or the password is not correct"}
		}
		var now string
		var disabled bool
		if err := t.QueryRow(ctx, `SELECT password_hash, disabled FROM operators WHERE id = ?`, actor.OperatorID).Scan(&now, &disabled); err != nil || now != hash || disabled {
			return kluis.ErrUnauthenticated
		}
		good := ok
		if len(methods) > 0 && good {
			if method == "" {
				method = "totp"
			}
			if good, err = t.checkOperatorFactor(ctx, actor.OperatorID, method, code); err != nil {
				return err
			}
		}
		if !good {
			problem = wrong
			return nil
		}
		// The session being replaced must still be there: one ended
		// meanwhile (a password reset, a disable) is not renewed.
		res, err := t.Exec(ctx, `DELETE FROM operator_sessions WHERE operator_id = ? AND id = ?`, actor.OperatorID, string(actor.SessionID))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return kluis.ErrUnauthenticated
		}
		if sess, err = t.openSession(ctx, "operator_sessions", "", string(actor.OperatorID), OperatorPolicy.MaxLifetime()); err != nil {
			return err
		}
		sess.MFAEnrolmentRequired = len(methods) == 0
		next := actor
		next.SessionID = sess.ID
		return t.Append(ctx, audit.PlatformChain, next, "operator.reauth", operatorTarget(actor.OperatorID), "success", map[string]any{"session": string(sess.ID)})
	})
	if err != nil {
		return Session{}, err
	}
	if problem != nil {
		if err := s.RecordRefusal(ctx, audit.PlatformChain, actor, "operator.reauth", operatorTarget(actor.OperatorID), "failure", nil); err != nil {
			return Session{}, err
		}
		return Session{}, kluis.Invalid(problem)
	}
	return sess, nil
}
