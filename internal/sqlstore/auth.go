package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mail"
)

// lastSeenGranularity is how stale a session's last-seen time may get before
// a request writes it again. It keeps authenticated reads free of writes;
// the idle timeout is enforced to within this margin.
const lastSeenGranularity = time.Minute

// Session is a newly opened session: its secret token, shown once, and its
// absolute end. The idle timeout may end it earlier.
type Session struct {
	ID        kluis.SessionID
	Token     string
	ExpiresAt time.Time
	// MFAEnrolmentRequired says the session is limited to enrolling a
	// second factor: the policy requires one and the person has none (R17).
	MFAEnrolmentRequired bool
	// DeviceCookie, when set, is the browser's new device cookie after a
	// completed sign-in (DESIGN §6), valid until DeviceExpires.
	DeviceCookie  string
	DeviceExpires time.Time
}

// Login checks an organisation user's e-mail and password and opens a
// session (R14). A wrong password, an unknown address, a disabled or invited
// account all get kluis.ErrUnauthenticated after the same amount of hashing
// work (DESIGN §5), and each failure is recorded. Weaker stored hashes are
// upgraded. While the organisation's logins are stopped (R19) every attempt
// gets logins_disabled. With a second factor enrolled, the password opens no
// session: the error is an *MFAChallenge for LoginMFA. Errors:
// unauthenticated, logins_disabled, *MFAChallenge.
func (s *Store) Login(ctx context.Context, org kluis.OrgID, email, pw string) (Session, kluis.User, error) {
	// Stopped logins (R19) are refused for everyone alike, before any
	// account is looked at: the answer tells nothing about the account.
	// They count against the client address like any failure, so a flood
	// during an incident is blocked too.
	if stopped, err := s.loginsStopped(ctx, org); err != nil || stopped {
		if err == nil {
			if err = s.gateAddress(ctx); err == nil {
				s.countLogin(kluis.RealmOrg, "failure")
				err = s.anonymousFailure(ctx, OrgChain(org), "auth.login_failed", "", map[string]any{"reason": "logins_disabled"}, kluis.ErrLoginsDisabled)
			}
		}
		return Session{}, kluis.User{}, err
	}
	lookup := kluis.NormalizeEmail(email)
	pw = kluis.NormalizePassword(pw)
	// The identifier is counted whether or not an account has it (DESIGN
	// §6); anything typed has one, so a lock never tells what exists.
	ident, err := s.EmailIndex(ctx, org, lookup)
	if errors.Is(err, kluis.ErrNotFound) {
		// The organisation's keys are destroyed: it was deleted.
		s.hasher.VerifyDummy(ctx, pw)
		return Session{}, kluis.User{}, kluis.ErrUnauthenticated
	}
	if err != nil {
		return Session{}, kluis.User{}, err
	}
	g, err := s.gateSignIn(ctx, string(org), ident)
	if err != nil {
		return Session{}, kluis.User{}, err
	}
	fail := signInFailure{scope: string(org), chain: OrgChain(org), org: org, action: "auth.login_failed",
		ident: ident, device: g.device, threshold: g.threshold}
	if !g.locked.IsZero() {
		s.countLogin(kluis.RealmOrg, "failure")
		s.countThrottle("locked")
		fail.reason, fail.alreadyLocked = "locked", g.locked
		return Session{}, kluis.User{}, s.signInFailed(ctx, fail)
	}
	var u kluis.User
	var hash sql.NullString
	err = kluis.ErrNotFound
	// An address that cannot be valid is an unknown account: it never
	// reaches the database, and it is answered like any other failure.
	if kluis.ValidateEmail(lookup) == nil {
		u, err = s.ScanUser(ctx, s.db.ReadRow(ctx, `SELECT `+userColumns+`, password_hash FROM users WHERE org_id = ? AND email_index = ?`, org, ident), &hash)
	}
	if err != nil && !errors.Is(err, kluis.ErrNotFound) {
		return Session{}, u, err
	}
	found := err == nil
	ok, rehash := false, false
	if found && hash.Valid && u.Status == kluis.StatusActive {
		if ok, rehash, err = s.hasher.Verify(ctx, pw, hash.String); err != nil {
			return Session{}, u, err
		}
	} else {
		s.hasher.VerifyDummy(ctx, pw)
	}
	if !ok {
		fail.reason = "unknown"
		if found {
			fail.target, fail.reason = UserTarget(u.ID), "password"
			if u.Status != kluis.StatusActive {
				fail.reason = string(u.Status)
			} else {
				fail.user = u.ID
			}
		}
		s.countLogin(kluis.RealmOrg, "failure")
		return Session{}, kluis.User{}, s.signInFailed(ctx, fail)
	}
	newHash := ""
	if rehash {
		if newHash, err = s.hasher.Hash(ctx, pw); err != nil {
			return Session{}, u, err
		}
	}
	var sess Session
	var challenge *MFAChallenge
	var lockedMeanwhile time.Time
	err = s.Write(ctx, OrgChain(org), func(t *Tx) error {
		// The account may have changed since the read above: another
		// status, or another password (a reset meanwhile wins).
		var status kluis.UserStatus
		var now sql.NullString
		if err := t.QueryRow(ctx, `SELECT status, password_hash FROM users WHERE org_id = ? AND id = ?`, org, u.ID).Scan(&status, &now); err != nil || status != kluis.StatusActive || now.String != hash.String {
			return kluis.ErrUnauthenticated
		}
		// Logins may have been stopped since the check above (R19).
		if stopped, err := t.loginsStopped(ctx, org); err != nil {
			return err
		} else if stopped {
			return kluis.ErrLoginsDisabled
		}
		// Guesses racing each other may have locked the identifier (or
		// the device entry they came with) since the gate: then a right
		// password is answered like a wrong one would be now, so parallel
		// guessing gains nothing.
		if until, err := t.lockedMeanwhile(ctx, string(org), ident, g.device); err != nil {
			return err
		} else if !until.IsZero() {
			lockedMeanwhile = until
			return errLockedMeanwhile
		}
		if newHash != "" {
			if _, err := t.Exec(ctx, `UPDATE users SET password_hash = ? WHERE org_id = ? AND id = ?`, newHash, org, u.ID); err != nil {
				return err
			}
		}
		// With a second factor the password opens no session, only a
		// challenge for the second step (R17).
		methods, err := t.factorMethods(ctx, org, u.ID)
		if err != nil {
			return err
		}
		if len(methods) > 0 {
			if challenge, err = t.openChallenge(ctx, org, u.ID, methods); err != nil {
				return err
			}
			if g.device != nil {
				if _, err := t.Exec(ctx, `UPDATE login_challenges SET trusted = TRUE WHERE org_id = ? AND token_hash = ?`, org, TokenHash(challenge.Token)); err != nil {
					return err
				}
			}
			return t.Append(ctx, OrgChain(org), kluis.Actor{}, "auth.login_password", UserTarget(u.ID), "success", nil)
		}
		if sess, err = t.startSession(ctx, org, &u, "password"); err != nil {
			return err
		}
		return nil
	})
	if errors.Is(err, errLockedMeanwhile) {
		s.countLogin(kluis.RealmOrg, "failure")
		fail.target, fail.user, fail.reason, fail.alreadyLocked = UserTarget(u.ID), u.ID, "locked", lockedMeanwhile
		return Session{}, kluis.User{}, s.signInFailed(ctx, fail)
	}
	if code := kluis.ErrorCode(err); code == kluis.EUnauthenticated || code == kluis.ELoginsDisabled {
		s.countLogin(kluis.RealmOrg, "failure")
		if rerr := s.RecordRefusal(ctx, OrgChain(org), kluis.Actor{}, "auth.login_failed", UserTarget(u.ID), "failure", map[string]any{"reason": "changed"}); rerr != nil {
			return Session{}, kluis.User{}, rerr
		}
	}
	if err != nil {
		return Session{}, kluis.User{}, err
	}
	if challenge != nil {
		return Session{}, kluis.User{}, challenge
	}
	s.countLogin(kluis.RealmOrg, "success")
	return sess, u, nil
}

// startSession opens a session for u after a complete sign-in (method
// "password" or a second factor), records the sign-in, and updates the
// last-login time.
func (t *Tx) startSession(ctx context.Context, org kluis.OrgID, u *kluis.User, method string) (Session, error) {
	policy, err := t.s.policy(ctx, t.tx, org)
	if err != nil {
		return Session{}, err
	}
	sess, err := t.openSession(ctx, `sessions`, org, string(u.ID), policy.MaxLifetime())
	if err != nil {
		return Session{}, err
	}
	if _, err := t.Exec(ctx, `UPDATE users SET last_login_at = ? WHERE org_id = ? AND id = ?`, Micros(t.Now()), org, u.ID); err != nil {
		return Session{}, err
	}
	u.LastLoginAt = t.Now()
	// Only a sign-in without a second factor reaches here with "password".
	sess.MFAEnrolmentRequired = method == "password" && policy.MFA == kluis.MFARequired
	if err := t.signedIn(ctx, org, u.ID, &sess); err != nil {
		return Session{}, err
	}
	actor := kluis.Actor{Realm: kluis.RealmOrg, OrgID: org, UserID: u.ID, Role: u.Role, SessionID: sess.ID}
	details := map[string]any{"session": string(sess.ID)}
	if method != "password" {
		details["method"] = method
	}
	return sess, t.Append(ctx, OrgChain(org), actor, "auth.login", "user:"+string(u.ID), "success", details)
}

func (s *Store) countLogin(realm kluis.Realm, outcome string) {
	if s.observe != nil {
		s.observe.Login(realm, outcome)
	}
}

// openSession stores a new session of the given table (sessions or
// operator_sessions) and returns its token.
func (t *Tx) openSession(ctx context.Context, table string, org kluis.OrgID, subject string, lifetime time.Duration) (Session, error) {
	token, hash := NewToken()
	sess := Session{ID: kluis.SessionID(kluis.NewID(t.Now())), Token: token, ExpiresAt: t.Now().Add(lifetime)}
	var err error
	if table == "sessions" {
		var device []byte
		if device, err = t.sealSessionDevice(ctx, org, kluis.UserID(subject), sess.ID); err != nil {
			return Session{}, err
		}
		_, err = t.Exec(ctx, `INSERT INTO sessions (id, org_id, user_id, token_hash, created_at, last_seen_at, expires_at, device, auth_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			sess.ID, org, subject, hash, Micros(t.Now()), Micros(t.Now()), Micros(sess.ExpiresAt), device, Micros(t.Now()))
	} else {
		_, err = t.Exec(ctx, `INSERT INTO operator_sessions (id, operator_id, token_hash, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
			sess.ID, subject, hash, Micros(t.Now()), Micros(t.Now()), Micros(sess.ExpiresAt))
	}
	return sess, err
}

// sessionAlive applies the idle timeout and the absolute lifetime (R21).
// The policy's current lifetime applies to sessions opened under an older,
// longer one.
func sessionAlive(now, created, lastSeen, expires time.Time, idle, maxLife time.Duration) bool {
	return now.Before(expires) && now.Before(created.Add(maxLife)) && now.Before(lastSeen.Add(idle))
}

// Authenticate resolves an organisation session token into its actor and
// user (R14). See AuthenticateOrg. Errors: unauthenticated.
func (s *Store) Authenticate(ctx context.Context, token string) (kluis.Actor, kluis.User, error) {
	a, u, _, err := s.AuthenticateOrg(ctx, token)
	return a, u, err
}

// AuthenticateOrg resolves an organisation session token into its actor,
// user and organisation with one query (R14). Expired sessions are deleted.
// Reads of a live session write nothing unless its last-seen time is over a
// minute old. Errors: unauthenticated.
func (s *Store) AuthenticateOrg(ctx context.Context, token string) (kluis.Actor, kluis.User, kluis.Org, error) {
	var o kluis.Org
	if !ValidTokenShape(token) {
		return kluis.Actor{}, kluis.User{}, o, kluis.ErrUnauthenticated
	}
	var sid kluis.SessionID
	var created, lastSeen, expires, authAt, orgCreated int64
	var idleMin, maxHours, enrolmentOnly int
	// enrolmentOnly: the policy asks for a second factor and the person has
	// none yet (R17); such a session may only enrol one (mfapolicy.go).
	row := s.db.ReadRow(ctx, `SELECT u.id, u.org_id, u.email, u.name, u.phone, u.maintenance_emails, u.role, u.status,
		u.created_at, u.last_login_at, s.id, s.created_at, s.last_seen_at, s.expires_at, COALESCE(s.auth_at, s.created_at), o.session_idle_minutes, o.session_max_hours,
		o.slug, o.name, o.language, o.created_at, `+enrolmentOnlySQL+`
		FROM sessions s JOIN users u ON u.id = s.user_id AND u.org_id = s.org_id JOIN orgs o ON o.id = s.org_id
		WHERE s.token_hash = ?`, TokenHash(token))
	u, err := s.ScanUser(ctx, row, &sid, &created, &lastSeen, &expires, &authAt, &idleMin, &maxHours, &o.Slug, &o.Name, &o.Language, &orgCreated, &enrolmentOnly)
	if errors.Is(err, kluis.ErrNotFound) {
		return kluis.Actor{}, kluis.User{}, o, kluis.ErrUnauthenticated
	}
	if err != nil {
		return kluis.Actor{}, kluis.User{}, o, err
	}
	o.ID, o.CreatedAt = u.OrgID, FromMicros(orgCreated)
	now := s.Now()
	idle, maxLife := time.Duration(idleMin)*time.Minute, time.Duration(maxHours)*time.Hour
	if u.Status != kluis.StatusActive || !sessionAlive(now, FromMicros(created), FromMicros(lastSeen), FromMicros(expires), idle, maxLife) {
		if _, err := s.db.WriteExec(ctx, `DELETE FROM sessions WHERE id = ?`, sid); err != nil {
			return kluis.Actor{}, kluis.User{}, o, err
		}
		return kluis.Actor{}, kluis.User{}, o, kluis.ErrUnauthenticated
	}
	if now.Sub(FromMicros(lastSeen)) >= min(lastSeenGranularity, idle/2) {
		if _, err := s.db.WriteExec(ctx, `UPDATE sessions SET last_seen_at = ? WHERE id = ?`, Micros(now), sid); err != nil {
			return kluis.Actor{}, kluis.User{}, o, err
		}
	}
	return kluis.Actor{Realm: kluis.RealmOrg, OrgID: u.OrgID, UserID: u.ID, Role: u.Role, SessionID: sid, AuthenticatedAt: FromMicros(authAt),
		MFAEnrolmentOnly: enrolmentOnly == 1}, u, o, nil
}

// Logout ends the actor's session. Errors: unauthenticated.
func (s *Store) Logout(ctx context.Context, org kluis.OrgID, actor kluis.Actor) error {
	return s.Write(ctx, OrgChain(org), func(t *Tx) error {
		if !actor.IsOrgUser(org) {
			return kluis.ErrUnauthenticated
		}
		if _, err := t.Exec(ctx, `DELETE FROM sessions WHERE org_id = ? AND id = ?`, org, actor.SessionID); err != nil {
			return err
		}
		return t.Append(ctx, OrgChain(org), actor, "auth.logout", "user:"+string(actor.UserID), "success",
			map[string]any{"session": string(actor.SessionID)})
	})
}

// dropCredentialsInFlight ends what a credential change must not leave
// working: open reset links (and their mail), login challenges, and a
// pending second-factor set-up.
func (t *Tx) dropCredentialsInFlight(ctx context.Context, org kluis.OrgID, user kluis.UserID) error {
	if err := t.dropResets(ctx, org, user); err != nil {
		return err
	}
	if _, err := t.Exec(ctx, `DELETE FROM login_challenges WHERE org_id = ? AND user_id = ?`, org, user); err != nil {
		return err
	}
	_, err := t.Exec(ctx, `DELETE FROM user_factors WHERE org_id = ? AND user_id = ? AND confirmed_at IS NULL`, org, user)
	return err
}

// ChangePassword replaces the signed-in user's password after checking the
// current one against the policy (R16). Every other session of the user ends,
// and the user gets a notice by mail. Errors: invalid_input, unauthenticated.
func (s *Store) ChangePassword(ctx context.Context, org kluis.OrgID, actor kluis.Actor, current, next string) error {
	if !actor.IsOrgUser(org) {
		return kluis.ErrUnauthenticated
	}
	if !kluis.FreshlyAuthenticated(actor, s.Now()) {
		return s.reauthRequired(ctx, org, actor, "user.password_change")
	}
	current, next = kluis.NormalizePassword(current), kluis.NormalizePassword(next)
	policy, err := s.policy(ctx, s.db.reader, org)
	if err != nil {
		return err
	}
	if err := policy.CheckPassword(next); err != nil {
		return kluis.Invalid(map[string]string{"new_password": err.Error()})
	}
	var hash sql.NullString
	if err := s.db.ReadRow(ctx, `SELECT password_hash FROM users WHERE org_id = ? AND id = ?`, org, actor.UserID).Scan(&hash); err != nil {
		return kluis.ErrUnauthenticated
	}
	ok, _, err := s.hasher.Verify(ctx, current, hash.String)
	if err != nil || !ok {
		if rerr := s.RecordRefusal(ctx, OrgChain(org), actor, "user.password_change", "user:"+string(actor.UserID), "failure", nil); rerr != nil {
			return rerr
		}
		return kluis.Invalid(map[string]string{"current_password": "is not correct"})
	}
	newHash, err := s.hasher.Hash(ctx, next)
	if err != nil {
		return err
	}
	return s.Write(ctx, OrgChain(org), func(t *Tx) error {
		// The caller's session must still be there, and the password the
		// one just checked: a reset or a sign-out meanwhile wins.
		var alive int
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM sessions WHERE org_id = ? AND id = ?`, org, string(actor.SessionID)).Scan(&alive); err != nil {
			return err
		}
		if alive != 1 {
			return kluis.ErrUnauthenticated
		}
		res, err := t.Exec(ctx, `UPDATE users SET password_hash = ?, updated_at = ? WHERE org_id = ? AND id = ? AND password_hash = ?`, newHash, Micros(t.Now()), org, actor.UserID, hash.String)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return kluis.ErrUnauthenticated
		}
		if err := t.dropCredentialsInFlight(ctx, org, actor.UserID); err != nil {
			return err
		}
		ended, err := t.endOtherSessions(ctx, org, actor)
		if err != nil {
			return err
		}
		// Personal API tokens go with the old password: a person changing
		// it because it leaked must not leave a token behind.
		if _, err := t.revokeAPITokens(ctx, org, actor.UserID); err != nil {
			return err
		}
		o, err := t.FindOrg(ctx, org)
		if err != nil {
			return err
		}
		var sealed []byte
		if err := t.QueryRow(ctx, `SELECT email FROM users WHERE org_id = ? AND id = ?`, org, actor.UserID).Scan(&sealed); err != nil {
			return err
		}
		email, err := t.s.Open(ctx, UserField(org, actor.UserID, colEmail), sealed)
		if err != nil {
			return err
		}
		if err := t.QueueMail(ctx, org, actor.UserID, o.Language, string(email), mail.PasswordChanged, mail.Data{OrgName: o.Name}); err != nil {
			return err
		}
		return t.Append(ctx, OrgChain(org), actor, "user.password_change", "user:"+string(actor.UserID), "success",
			map[string]any{"sessions_ended": ended})
	})
}
