package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/mfa"
)

// Second factors (R17): TOTP and recovery codes. The password step of a
// login with a factor enrolled yields an MFAChallenge; LoginMFA completes it.

// ChallengeTTL is how long the password step of a two-step login is good for.
const ChallengeTTL = 5 * time.Minute

// maxChallengeAttempts is how many wrong codes end a challenge: the person
// starts again with the password.
const maxChallengeAttempts = 5

// factorLockAfter is how many wrong second-factor codes in a row, over any
// number of challenges, lock the person's second factor: for a minute, then
// twice as long after each further wrong code, up to factorLockMax. So
// someone who has the password cannot try codes at the speed of sign-ins.
const (
	factorLockAfter = 5
	factorLockMax   = time.Hour
)

// PendingTOTPTTL is how long a started set-up waits for its first code.
const PendingTOTPTTL = 15 * time.Minute

// MFAChallenge is the answer of Login for an account with a second factor:
// no session yet, a single-use token for LoginMFA, and the methods enrolled.
type MFAChallenge struct {
	Token     string
	Methods   []string // "totp", "sms", "webauthn", "recovery"
	ExpiresAt time.Time
}

func (c *MFAChallenge) Error() string { return "a second factor is required" }

const tabFactors = "user_factors"

func factorField(org kluis.OrgID, id string) keys.FieldRef {
	return keys.FieldRef{Org: string(org), Table: tabFactors, Column: "secret", Row: id}
}

// factorMethods lists the confirmed methods of a user: "totp", "sms" (codes
// to a verified number), "webauthn" (a passkey or security key), and then
// "recovery" when codes are left.
func (t *Tx) factorMethods(ctx context.Context, org kluis.OrgID, user kluis.UserID) ([]string, error) {
	var totp, texts, passkeys int
	if err := t.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM user_factors WHERE org_id = ? AND user_id = ? AND kind = 'totp' AND confirmed_at IS NOT NULL),
		(SELECT COUNT(*) FROM user_factors WHERE org_id = ? AND user_id = ? AND kind = 'sms' AND confirmed_at IS NOT NULL),
		(SELECT COUNT(*) FROM passkeys WHERE org_id = ? AND user_id = ?)`, org, user, org, user, org, user).Scan(&totp, &texts, &passkeys); err != nil {
		return nil, err
	}
	var methods []string
	if totp > 0 {
		methods = append(methods, "totp")
	}
	if texts > 0 {
		methods = append(methods, kindSMS)
	}
	if passkeys > 0 {
		methods = append(methods, "webauthn")
	}
	if len(methods) == 0 {
		return nil, nil
	}
	var n int
	if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM recovery_codes WHERE org_id = ? AND user_id = ? AND used_at IS NULL`, org, user).Scan(&n); err != nil {
		return nil, err
	}
	if n > 0 {
		methods = append(methods, "recovery")
	}
	return methods, nil
}

func (t *Tx) openChallenge(ctx context.Context, org kluis.OrgID, user kluis.UserID, methods []string) (*MFAChallenge, error) {
	// One open challenge per person: a new password step ends the others.
	if _, err := t.Exec(ctx, `DELETE FROM login_challenges WHERE org_id = ? AND user_id = ?`, org, user); err != nil {
		return nil, err
	}
	token, hash := NewToken()
	c := &MFAChallenge{Token: token, Methods: methods, ExpiresAt: t.Now().Add(ChallengeTTL)}
	if _, err := t.Exec(ctx, `INSERT INTO login_challenges (id, org_id, user_id, token_hash, created_at, expires_at, attempts) VALUES (?, ?, ?, ?, ?, ?, 0)`,
		kluis.NewID(t.Now()), org, user, hash, Micros(t.Now()), Micros(c.ExpiresAt)); err != nil {
		return nil, err
	}
	return c, nil
}

// FindFactors lists the signed-in user's confirmed second-factor methods
// and how many unused recovery codes are left. Errors: unauthenticated.
func (s *Store) FindFactors(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (methods []string, recoveryLeft int, err error) {
	if !actor.IsOrgUser(org) {
		return nil, 0, kluis.ErrUnauthenticated
	}
	err = s.Read(ctx, func(t *Tx) error {
		if methods, err = t.factorMethods(ctx, org, actor.UserID); err != nil {
			return err
		}
		return t.QueryRow(ctx, `SELECT COUNT(*) FROM recovery_codes WHERE org_id = ? AND user_id = ? AND used_at IS NULL`, org, actor.UserID).Scan(&recoveryLeft)
	})
	return methods, recoveryLeft, err
}

// StartTOTP makes a new TOTP secret for the signed-in user, pending until
// ConfirmTOTP, and returns it with its otpauth:// URL. It needs a fresh
// authentication; an enrolled TOTP must be removed first. Errors:
// unauthenticated, reauth_required, conflict.
func (s *Store) StartTOTP(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (secret, url string, err error) {
	if !actor.IsOrgUser(org) {
		return "", "", kluis.ErrUnauthenticated
	}
	if !kluis.FreshlyAuthenticated(actor, s.Now()) {
		return "", "", s.reauthRequired(ctx, org, actor, "mfa.totp_start")
	}
	err = s.Write(ctx, OrgChain(org), func(t *Tx) error {
		if err := t.mfaEnrolmentAllowed(ctx, org, actor, "mfa.totp_start"); err != nil {
			return err
		}
		var confirmed sql.NullInt64
		err := t.QueryRow(ctx, `SELECT confirmed_at FROM user_factors WHERE org_id = ? AND user_id = ? AND kind = 'totp'`, org, actor.UserID).Scan(&confirmed)
		switch {
		case err == nil && confirmed.Valid:
			return kluis.Errorf(kluis.EConflict, "an authenticator app is set up already; remove it first")
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return err
		}
		u, err := t.FindUser(ctx, org, actor.UserID)
		if err != nil {
			return err
		}
		o, err := t.FindOrg(ctx, org)
		if err != nil {
			return err
		}
		if secret, url, err = mfa.NewTOTP(totpIssuer(o), u.Email); err != nil {
			return err
		}
		id := kluis.NewID(t.Now())
		sealed, err := t.s.Seal(ctx, UserKey(org, actor.UserID), factorField(org, id), []byte(secret))
		if err != nil {
			return fmt.Errorf("seal TOTP secret: %w", err)
		}
		if _, err := t.Exec(ctx, `DELETE FROM user_factors WHERE org_id = ? AND user_id = ? AND kind = 'totp'`, org, actor.UserID); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `INSERT INTO user_factors (id, org_id, user_id, kind, secret, last_step, created_at, session_id, failures) VALUES (?, ?, ?, 'totp', ?, 0, ?, ?, 0)`,
			id, org, actor.UserID, sealed, Micros(t.Now()), string(actor.SessionID)); err != nil {
			return err
		}
		return t.Append(ctx, OrgChain(org), actor, "mfa.totp_start", UserTarget(actor.UserID), "success", nil)
	})
	return secret, url, err
}

// totpFactor is a user's TOTP row with its secret opened.
type totpFactor struct {
	id          string
	secret      string
	lastStep    int64
	confirmed   bool
	sessionID   string    // of a pending set-up: the session that started it
	createdAt   time.Time // of a pending set-up
	failures    int64
	lockedUntil time.Time
}

// pendingFor reports whether f is a set-up that actor's session started and
// that has not lapsed.
func (f totpFactor) pendingFor(actor kluis.Actor, now time.Time) bool {
	return !f.confirmed && f.sessionID != "" && f.sessionID == string(actor.SessionID) && now.Before(f.createdAt.Add(PendingTOTPTTL))
}

// totpIssuer labels the app's entry: short, so that the QR code always fits.
func totpIssuer(o kluis.Org) string { return "kluis " + o.Slug }

func (s *Store) reauthRequired(ctx context.Context, org kluis.OrgID, actor kluis.Actor, action string) error {
	if err := s.RecordRefusal(ctx, OrgChain(org), actor, action, UserTarget(actor.UserID), "failure", map[string]any{"reason": "reauth_required"}); err != nil {
		return err
	}
	return kluis.ErrReauthRequired
}

func (t *Tx) findTOTP(ctx context.Context, org kluis.OrgID, user kluis.UserID) (totpFactor, error) {
	var f totpFactor
	var sealed []byte
	var confirmed, locked sql.NullInt64
	var session sql.NullString
	var created int64
	err := t.QueryRow(ctx, `SELECT id, secret, last_step, confirmed_at, session_id, created_at, failures, locked_until FROM user_factors
		WHERE org_id = ? AND user_id = ? AND kind = 'totp'`+t.db.ForUpdate(), org, user).
		Scan(&f.id, &sealed, &f.lastStep, &confirmed, &session, &created, &f.failures, &locked)
	if errors.Is(err, sql.ErrNoRows) {
		return f, kluis.ErrNotFound
	}
	if err != nil {
		return f, err
	}
	p, err := t.s.Open(ctx, factorField(org, f.id), sealed)
	if err != nil {
		return f, err
	}
	f.secret, f.confirmed, f.sessionID, f.createdAt = string(p), confirmed.Valid, session.String, FromMicros(created)
	if locked.Valid {
		f.lockedUntil = FromMicros(locked.Int64)
	}
	return f, nil
}

// PendingTOTPURL returns the otpauth:// URL of the pending TOTP secret that
// this session started (within PendingTOTPTTL), for the QR code of the
// set-up page. Errors: unauthenticated, not_found (nothing pending here).
func (s *Store) PendingTOTPURL(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (string, error) {
	if !actor.IsOrgUser(org) {
		return "", kluis.ErrUnauthenticated
	}
	var url string
	err := s.Read(ctx, func(t *Tx) error {
		f, err := t.findTOTP(ctx, org, actor.UserID)
		if err != nil {
			return err
		}
		if !f.pendingFor(actor, t.Now()) {
			return kluis.ErrNotFound
		}
		u, err := t.FindUser(ctx, org, actor.UserID)
		if err != nil {
			return err
		}
		o, err := t.FindOrg(ctx, org)
		if err != nil {
			return err
		}
		url = mfa.URL(totpIssuer(o), u.Email, f.secret)
		return nil
	})
	return url, err
}

// ConfirmTOTP turns on the pending TOTP secret that this session started
// with a first code from the app (whose time step is then used up), makes
// ten new recovery codes and returns them (shown once), and ends the user's
// other sessions. A wrong code is recorded. Errors: unauthenticated,
// not_found (nothing pending here), invalid_input (code).
func (s *Store) ConfirmTOTP(ctx context.Context, org kluis.OrgID, actor kluis.Actor, code string) ([]string, error) {
	if !actor.IsOrgUser(org) {
		return nil, kluis.ErrUnauthenticated
	}
	var codes []string
	wrong := false
	err := s.Write(ctx, OrgChain(org), func(t *Tx) error {
		f, err := t.findTOTP(ctx, org, actor.UserID)
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
		if _, err := t.Exec(ctx, `UPDATE user_factors SET confirmed_at = ?, last_step = ?, session_id = NULL WHERE id = ?`, Micros(t.Now()), step, f.id); err != nil {
			return err
		}
		if codes, err = t.newRecoveryCodes(ctx, org, actor.UserID); err != nil {
			return err
		}
		ended, err := t.endOtherSessions(ctx, org, actor)
		if err != nil {
			return err
		}
		return t.Append(ctx, OrgChain(org), actor, "mfa.totp_enable", UserTarget(actor.UserID), "success", map[string]any{"sessions_ended": ended})
	})
	if wrong {
		if rerr := s.RecordRefusal(ctx, OrgChain(org), actor, "mfa.totp_enable", UserTarget(actor.UserID), "failure", nil); rerr != nil {
			return nil, rerr
		}
	}
	return codes, err
}

func (t *Tx) newRecoveryCodes(ctx context.Context, org kluis.OrgID, user kluis.UserID) ([]string, error) {
	if _, err := t.Exec(ctx, `DELETE FROM recovery_codes WHERE org_id = ? AND user_id = ?`, org, user); err != nil {
		return nil, err
	}
	codes := mfa.NewRecoveryCodes(mfa.RecoveryCodes)
	for _, c := range codes {
		h, err := t.s.recoveryHash(ctx, org, user, c)
		if err != nil {
			return nil, err
		}
		if _, err := t.Exec(ctx, `INSERT INTO recovery_codes (id, org_id, user_id, code_hash, created_at) VALUES (?, ?, ?, ?, ?)`,
			kluis.NewID(t.Now()), org, user, h, Micros(t.Now())); err != nil {
			return nil, err
		}
	}
	return codes, nil
}

// recoveryHash is what the store keeps of a recovery code: an HMAC under
// the organisation's index key (kept in the key store, apart from the data),
// bound to the person, so a copy of the database alone cannot be searched.
func (s *Store) recoveryHash(ctx context.Context, org kluis.OrgID, user kluis.UserID, code string) ([]byte, error) {
	return s.keys.BlindIndex(ctx, string(org), "recovery-code/v1\x00"+string(user)+"\x00"+mfa.NormalizeRecoveryCode(code))
}

// DisableTOTP removes the signed-in user's authenticator app (and, when no
// passkey is left, the recovery codes) and ends their other sessions. It needs a fresh authentication.
// Errors: unauthenticated, reauth_required, not_found.
func (s *Store) DisableTOTP(ctx context.Context, org kluis.OrgID, actor kluis.Actor) error {
	if !actor.IsOrgUser(org) {
		return kluis.ErrUnauthenticated
	}
	if !kluis.FreshlyAuthenticated(actor, s.Now()) {
		return s.reauthRequired(ctx, org, actor, "mfa.totp_disable")
	}
	return s.Write(ctx, OrgChain(org), func(t *Tx) error {
		res, err := t.Exec(ctx, `DELETE FROM user_factors WHERE org_id = ? AND user_id = ? AND kind = 'totp'`, org, actor.UserID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return kluis.ErrNotFound
		}
		if err := t.dropRecoveryWithoutFactor(ctx, org, actor.UserID); err != nil {
			return err
		}
		ended, err := t.endOtherSessions(ctx, org, actor)
		if err != nil {
			return err
		}
		return t.Append(ctx, OrgChain(org), actor, "mfa.totp_disable", UserTarget(actor.UserID), "success", map[string]any{"sessions_ended": ended})
	})
}

// LoginMFA completes a two-step login with a code of a method the user
// enrolled: "totp" (each code once) or "recovery" (each code once). The
// challenge is single-use and lives ChallengeTTL; five wrong codes end it.
// Every failure gets the same unauthenticated and is recorded. Errors:
// unauthenticated, logins_disabled.
func (s *Store) LoginMFA(ctx context.Context, org kluis.OrgID, challenge, method, code string) (Session, kluis.User, error) {
	if err := s.gateSecondStep(ctx, org, challenge); err != nil {
		return Session{}, kluis.User{}, err
	}
	if !ValidTokenShape(challenge) {
		challenge = ""
	}
	var sess Session
	var u kluis.User
	var failed kluis.UserID
	var stoppedErr error
	failure := false
	err := s.Write(ctx, OrgChain(org), func(t *Tx) error {
		var id string
		var expires, attempts int64
		err := t.QueryRow(ctx, `SELECT id, user_id, expires_at, attempts FROM login_challenges WHERE org_id = ? AND token_hash = ?`+t.db.ForUpdate(), org, TokenHash(challenge)).
			Scan(&id, &u.ID, &expires, &attempts)
		if errors.Is(err, sql.ErrNoRows) || err == nil && !t.Now().Before(FromMicros(expires)) {
			failure = true
			return nil
		}
		if err != nil {
			return err
		}
		if u, err = t.FindUser(ctx, org, u.ID); err != nil {
			return err
		}
		if stopped, err := t.loginsStopped(ctx, org); err != nil {
			return err
		} else if stopped {
			stoppedErr = kluis.ErrLoginsDisabled
			return nil
		}
		ok := false
		if u.Status == kluis.StatusActive {
			if ok, err = t.checkSecondFactor(ctx, org, u.ID, ceremonyLogin, challengeBound(id), method, code); err != nil {
				return err
			}
		}
		if !ok {
			failure, failed = true, u.ID
			if attempts+1 >= maxChallengeAttempts {
				_, err = t.Exec(ctx, `DELETE FROM login_challenges WHERE id = ?`, id)
			} else {
				_, err = t.Exec(ctx, `UPDATE login_challenges SET attempts = attempts + 1 WHERE id = ?`, id)
			}
			return err
		}
		if _, err := t.Exec(ctx, `DELETE FROM login_challenges WHERE id = ?`, id); err != nil {
			return err
		}
		sess, err = t.startSession(ctx, org, &u, method)
		return err
	})
	if err != nil {
		return Session{}, kluis.User{}, err
	}
	if stoppedErr != nil {
		s.countLogin(kluis.RealmOrg, "failure")
		if err := s.RecordRefusal(ctx, OrgChain(org), kluis.Actor{}, "auth.login_failed", "", "failure", map[string]any{"reason": "logins_disabled"}); err != nil {
			return Session{}, kluis.User{}, err
		}
		return Session{}, kluis.User{}, stoppedErr
	}
	if failure {
		s.countLogin(kluis.RealmOrg, "failure")
		target := ""
		if failed != "" {
			target = UserTarget(failed)
		}
		return Session{}, kluis.User{}, s.anonymousFailure(ctx, OrgChain(org), "auth.login_failed", target, map[string]any{"reason": "second_factor"}, kluis.ErrUnauthenticated)
	}
	s.countLogin(kluis.RealmOrg, "success")
	return sess, u, nil
}

// checkSecondFactor checks an answer of the method and uses it up: a
// "totp", "sms" or "recovery" code, or a "webauthn" assertion for the ceremony of
// purpose bound to bound. Wrong answers count against the person, across
// challenges, methods and re-authentications: after factorLockAfter of them
// nothing is accepted for a while (a minute, doubling up to factorLockMax);
// a right answer resets the count.
func (t *Tx) checkSecondFactor(ctx context.Context, org kluis.OrgID, user kluis.UserID, purpose, bound, method, code string) (bool, error) {
	methods, err := t.factorMethods(ctx, org, user)
	if err != nil || len(methods) == 0 {
		return false, err
	}
	var failures int64
	var locked sql.NullInt64
	err = t.QueryRow(ctx, `SELECT failures, locked_until FROM factor_guards WHERE org_id = ? AND user_id = ?`+t.db.ForUpdate(), org, user).Scan(&failures, &locked)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, err
	}
	if locked.Valid && t.Now().Before(FromMicros(locked.Int64)) {
		return false, nil
	}
	ok := false
	switch method {
	case "totp":
		f, err := t.findTOTP(ctx, org, user)
		if err != nil && !errors.Is(err, kluis.ErrNotFound) {
			return false, err
		}
		if err == nil && f.confirmed {
			step, good := mfa.VerifyTOTP(f.secret, code, t.Now(), f.lastStep)
			if good {
				if _, err := t.Exec(ctx, `UPDATE user_factors SET last_step = ? WHERE id = ?`, step, f.id); err != nil {
					return false, err
				}
				ok = true
			}
		}
	case "recovery":
		h, err := t.s.recoveryHash(ctx, org, user, code)
		if err != nil {
			return false, err
		}
		res, err := t.Exec(ctx, `UPDATE recovery_codes SET used_at = ? WHERE org_id = ? AND user_id = ? AND code_hash = ? AND used_at IS NULL`,
			Micros(t.Now()), org, user, h)
		if err != nil {
			return false, err
		}
		n, _ := res.RowsAffected()
		ok = n == 1
	case "webauthn":
		if ok, err = t.checkPasskey(ctx, org, user, purpose, bound, code); err != nil {
			return false, err
		}
	case kindSMS:
		if slices.Contains(methods, kindSMS) {
			if ok, err = t.checkSMSCode(ctx, org, user, purpose, bound, code); err != nil {
				return false, err
			}
		}
	}
	if ok {
		_, err = t.Exec(ctx, `DELETE FROM factor_guards WHERE org_id = ? AND user_id = ?`, org, user)
		return err == nil, err
	}
	failures++
	var lockedUntil any
	if failures >= factorLockAfter {
		lock := min(time.Minute<<min(failures-factorLockAfter, 6), factorLockMax)
		lockedUntil = Micros(t.Now().Add(lock))
		if err := t.Append(ctx, OrgChain(org), kluis.Actor{}, "mfa.locked", UserTarget(user), "success",
			map[string]any{"failures": failures, "minutes": int(lock / time.Minute)}); err != nil {
			return false, err
		}
	}
	_, err = t.Exec(ctx, `INSERT INTO factor_guards (user_id, org_id, failures, locked_until) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET failures = excluded.failures, locked_until = excluded.locked_until`, user, org, failures, lockedUntil)
	return false, err
}

// Reauth proves again who the signed-in user is — the password, and a code
// when a second factor is enrolled — and replaces the session with a new one
// (a new id; the old token stops working) that counts as freshly
// authenticated for kluis.FreshAuthWindow. Wrong codes count towards the
// factor's lock. Errors: unauthenticated, logins_disabled, invalid_input
// (password, code: one answer for either).
func (s *Store) Reauth(ctx context.Context, org kluis.OrgID, actor kluis.Actor, pw, method, code string) (Session, error) {
	if !actor.IsOrgUser(org) {
		return Session{}, kluis.ErrUnauthenticated
	}
	var hash sql.NullString
	if err := s.db.ReadRow(ctx, `SELECT password_hash FROM users WHERE org_id = ? AND id = ?`, org, actor.UserID).Scan(&hash); err != nil {
		return Session{}, kluis.ErrUnauthenticated
	}
	ok, _, err := s.hasher.Verify(ctx, kluis.NormalizePassword(pw), hash.String)
	if err != nil {
		return Session{}, err
	}
	var sess Session
	var problem map[string]string
	err = s.Write(ctx, OrgChain(org), func(t *Tx) error {
		methods, err := t.factorMethods(ctx, org, actor.UserID)
		if err != nil {
			return err
		}
		// One answer for a wrong password and a wrong code: it does not
		// tell which of the two was right.
		wrong := map[string]string{"password": "is not correct"}
		if len(methods) > 0 {
			wrong = map[string]string{"password": "or the code is not correct", "code": "or the password is not correct"}
		}
		var now sql.NullString
		if err := t.QueryRow(ctx, `SELECT password_hash FROM users WHERE org_id = ? AND id = ?`, org, actor.UserID).Scan(&now); err != nil {
			return kluis.ErrUnauthenticated
		}
		if now.String != hash.String { // changed since it was checked
			return kluis.ErrUnauthenticated
		}
		if len(methods) > 0 && ok {
			if method == "" {
				method = "totp"
			}
			if ok, err = t.checkSecondFactor(ctx, org, actor.UserID, ceremonyReauth, sessionBound(actor), method, code); err != nil {
				return err
			}
		}
		if !ok {
			problem = wrong
			return nil
		}
		if stopped, err := t.loginsStopped(ctx, org); err != nil {
			return err
		} else if stopped {
			return kluis.ErrLoginsDisabled
		}
		policy, err := t.s.policy(ctx, t.tx, org)
		if err != nil {
			return err
		}
		// The session being replaced must still be there: one ended
		// meanwhile (a password reset, a logins stop) is not renewed.
		res, err := t.Exec(ctx, `DELETE FROM sessions WHERE org_id = ? AND id = ?`, org, string(actor.SessionID))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return kluis.ErrUnauthenticated
		}
		if sess, err = t.openSession(ctx, `sessions`, org, string(actor.UserID), policy.MaxLifetime()); err != nil {
			return err
		}
		next := actor
		next.SessionID = sess.ID
		return t.Append(ctx, OrgChain(org), next, "auth.reauth", UserTarget(actor.UserID), "success", map[string]any{"session": string(sess.ID)})
	})
	if err != nil {
		return Session{}, err
	}
	if problem != nil {
		if err := s.RecordRefusal(ctx, OrgChain(org), actor, "auth.reauth", UserTarget(actor.UserID), "failure", nil); err != nil {
			return Session{}, err
		}
		return Session{}, kluis.Invalid(problem)
	}
	return sess, nil
}
