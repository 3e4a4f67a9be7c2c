package sqlstore

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sms"
)

// Codes by SMS as a second factor (R17). A person verifies a number first
// (a code sent to it, typed back), which becomes a user_factors row of kind
// "sms" with the number sealed under their key. A login's second step, or a
// re-authentication, can then ask for a code. Every code is six digits,
// valid SMSCodeTTL, single-use, bound to what asked for it, and kept only as
// an HMAC. Text messages are queued in the transaction that makes the code
// and delivered after commit by the SMS worker.
//
// SMS costs money and can be abused to flood someone's phone, so sending is
// limited: SMSCodesPerChallenge per login challenge (and per session for a
// re-authentication) and SMSCodesPerHour per person, whatever the purpose.
// Wrong codes count towards the factor lock shared by every method.

// Limits of codes by SMS.
const (
	SMSCodeTTL           = 5 * time.Minute
	SMSCodesPerChallenge = 3
	SMSCodesPerHour      = 5
	// smsWrongPerCode is how many wrong answers use up an enrolment code.
	smsWrongPerCode = 5
)

// Tables and columns of the SMS queue named in its ciphertexts' associated data.
const tabSMS = "sms_queue"

const kindSMS = "sms"

func smsField(org kluis.OrgID, id string) keys.FieldRef {
	return keys.FieldRef{Org: string(org), Table: tabSMS, Column: colEnvelope, Row: id}
}

// smsEnvelope is a queued text message as sealed in sms_queue.envelope.
type smsEnvelope struct {
	To   string `json:"to"`
	Text string `json:"text"`
}

// smsFactor is a person's "sms" user_factors row with its number opened.
type smsFactor struct {
	id        string
	number    string
	confirmed bool
	sessionID string
	createdAt time.Time
}

func (f smsFactor) pendingFor(actor kluis.Actor, now time.Time) bool {
	return !f.confirmed && f.sessionID != "" && f.sessionID == string(actor.SessionID) && now.Before(f.createdAt.Add(PendingTOTPTTL))
}

func (t *Tx) findSMS(ctx context.Context, org kluis.OrgID, user kluis.UserID) (smsFactor, error) {
	var f smsFactor
	var sealed []byte
	var confirmed sql.NullInt64
	var session sql.NullString
	var created int64
	err := t.QueryRow(ctx, `SELECT id, secret, confirmed_at, session_id, created_at FROM user_factors
		WHERE org_id = ? AND user_id = ? AND kind = 'sms'`+t.db.ForUpdate(), org, user).
		Scan(&f.id, &sealed, &confirmed, &session, &created)
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
	f.number, f.confirmed, f.sessionID, f.createdAt = string(p), confirmed.Valid, session.String, FromMicros(created)
	return f, nil
}

// smsCodeHash is what the store keeps of a code: an HMAC under the
// organisation's index key, bound to the code's row, so that a copy of the
// database alone cannot try the million codes.
func (s *Store) smsCodeHash(ctx context.Context, org kluis.OrgID, id, code string) ([]byte, error) {
	return s.keys.BlindIndex(ctx, string(org), "sms-code/v1\x00"+id+"\x00"+code)
}

// smsHost is the site's host for the origin-bound line of a message, or ""
// when the public URL's host is an address.
func (s *Store) smsHost() string {
	u, err := url.Parse(s.publicURL)
	if err != nil || u.Hostname() == "" || net.ParseIP(u.Hostname()) != nil {
		return ""
	}
	return u.Hostname()
}

// smsLimited is a refused sending: when it may be tried again.
type smsLimited struct{ until time.Time }

// sendSMSCode makes a code for purpose bound to bound, keeps its HMAC and
// queues a message with it to number, unless a limit says no: then it
// returns the time to wait and sends nothing. perBound, when positive, is
// how many codes one binding may have had.
func (t *Tx) sendSMSCode(ctx context.Context, org kluis.OrgID, user kluis.UserID, purpose, bound, number string, perBound int, boundUntil time.Time) (*smsLimited, error) {
	hourAgo := t.Now().Add(-time.Hour)
	if _, err := t.Exec(ctx, `DELETE FROM sms_codes WHERE org_id = ? AND user_id = ? AND created_at <= ?`, org, user, Micros(hourAgo)); err != nil {
		return nil, err
	}
	var n int
	var oldest sql.NullInt64
	if err := t.QueryRow(ctx, `SELECT COUNT(*), MIN(created_at) FROM sms_codes WHERE org_id = ? AND user_id = ?`, org, user).Scan(&n, &oldest); err != nil {
		return nil, err
	}
	if n >= SMSCodesPerHour {
		return &smsLimited{until: FromMicros(oldest.Int64).Add(time.Hour)}, nil
	}
	if perBound > 0 {
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM sms_codes WHERE org_id = ? AND user_id = ? AND purpose = ? AND bound_to = ?`, org, user, purpose, bound).Scan(&n); err != nil {
			return nil, err
		}
		if n >= perBound {
			return &smsLimited{until: boundUntil}, nil
		}
	}
	code, id := sms.NewCode(), kluis.NewID(t.Now())
	h, err := t.s.smsCodeHash(ctx, org, id, code)
	if err != nil {
		return nil, err
	}
	expires := t.Now().Add(SMSCodeTTL)
	if _, err := t.Exec(ctx, `INSERT INTO sms_codes (id, org_id, user_id, purpose, bound_to, code_hash, created_at, expires_at, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)`,
		id, org, user, purpose, bound, h, Micros(t.Now()), Micros(expires)); err != nil {
		return nil, err
	}
	o, err := t.FindOrg(ctx, org)
	if err != nil {
		return nil, err
	}
	return nil, t.QueueSMS(ctx, org, user, number, sms.CodeText(o.Language, code, t.s.smsHost()), expires)
}

// queueSMS queues a text message in this transaction; the SMS worker
// delivers it after commit, until expires.
func (t *Tx) QueueSMS(ctx context.Context, org kluis.OrgID, user kluis.UserID, to, text string, expires time.Time) error {
	id := kluis.NewID(t.Now())
	b, err := json.Marshal(smsEnvelope{To: to, Text: text})
	if err != nil {
		return err
	}
	env, err := t.s.Seal(ctx, UserKey(org, user), smsField(org, id), b)
	if err != nil {
		return fmt.Errorf("seal SMS: %w", err)
	}
	if _, err := t.Exec(ctx, `INSERT INTO sms_queue (id, org_id, user_id, created_at, expires_at, next_attempt_at, lease_until, attempts, envelope)
		VALUES (?, ?, ?, ?, ?, ?, 0, 0, ?)`, id, org, user, Micros(t.Now()), Micros(expires), Micros(t.Now()), env); err != nil {
		return fmt.Errorf("queue SMS: %w", err)
	}
	t.texted = true
	return nil
}

// checkSMSCode checks a code sent for purpose bound to bound and, when
// right, uses up every code of that binding. Lapsed and used codes never
// match.
func (t *Tx) checkSMSCode(ctx context.Context, org kluis.OrgID, user kluis.UserID, purpose, bound, code string) (bool, error) {
	code = sms.NormalizeCode(code)
	rows, err := t.Query(ctx, `SELECT id, code_hash FROM sms_codes WHERE org_id = ? AND user_id = ? AND purpose = ? AND bound_to = ? AND used_at IS NULL AND expires_at > ?`+t.db.ForUpdate(),
		org, user, purpose, bound, Micros(t.Now()))
	if err != nil {
		return false, err
	}
	type row struct {
		id   string
		hash []byte
	}
	var found []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.hash); err != nil {
			rows.Close()
			return false, err
		}
		found = append(found, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, err
	}
	if len(code) != sms.CodeDigits {
		return false, nil
	}
	ok := false
	for _, r := range found {
		h, err := t.s.smsCodeHash(ctx, org, r.id, code)
		if err != nil {
			return false, err
		}
		if subtle.ConstantTimeCompare(h, r.hash) == 1 {
			ok = true
		}
	}
	if !ok {
		return false, nil
	}
	_, err = t.Exec(ctx, `UPDATE sms_codes SET used_at = ? WHERE org_id = ? AND user_id = ? AND purpose = ? AND bound_to = ? AND used_at IS NULL`,
		Micros(t.Now()), org, user, purpose, bound)
	return err == nil, err
}

// StartSMS begins verifying a phone number for codes by SMS: the number
// (any, not necessarily the profile's; E.164 after normalisation) is kept
// sealed, pending until ConfirmSMS, and a code is sent to it. It needs a
// fresh authentication; an enrolled number must be removed first. It
// returns the number masked, for the page that asks for the code. Errors:
// unauthenticated, reauth_required, invalid_input (phone), forbidden (the
// policy is off), conflict, too_many_requests.
func (s *Store) StartSMS(ctx context.Context, org kluis.OrgID, actor kluis.Actor, phone string) (string, error) {
	if !actor.IsOrgUser(org) {
		return "", kluis.ErrUnauthenticated
	}
	if !kluis.FreshlyAuthenticated(actor, s.Now()) {
		return "", s.reauthRequired(ctx, org, actor, "mfa.sms_start")
	}
	number, err := sms.ParseNumber(phone)
	if err != nil {
		return "", kluis.Invalid(map[string]string{"phone": err.Error()})
	}
	var limited *smsLimited
	err = s.Write(ctx, OrgChain(org), func(t *Tx) error {
		if err := t.mfaEnrolmentAllowed(ctx, org, actor, "mfa.sms_start"); err != nil {
			return err
		}
		f, err := t.findSMS(ctx, org, actor.UserID)
		switch {
		case err == nil && f.confirmed:
			return kluis.Errorf(kluis.EConflict, "a phone for codes by SMS is set up already; remove it first")
		case err != nil && !errors.Is(err, kluis.ErrNotFound):
			return err
		}
		if _, err := t.Exec(ctx, `DELETE FROM user_factors WHERE org_id = ? AND user_id = ? AND kind = 'sms'`, org, actor.UserID); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE sms_codes SET used_at = ? WHERE org_id = ? AND user_id = ? AND purpose = ? AND used_at IS NULL`,
			Micros(t.Now()), org, actor.UserID, ceremonyRegister); err != nil {
			return err
		}
		id := kluis.NewID(t.Now())
		sealed, err := t.s.Seal(ctx, UserKey(org, actor.UserID), factorField(org, id), []byte(number))
		if err != nil {
			return fmt.Errorf("seal SMS number: %w", err)
		}
		if _, err := t.Exec(ctx, `INSERT INTO user_factors (id, org_id, user_id, kind, secret, last_step, created_at, session_id, failures) VALUES (?, ?, ?, 'sms', ?, 0, ?, ?, 0)`,
			id, org, actor.UserID, sealed, Micros(t.Now()), string(actor.SessionID)); err != nil {
			return err
		}
		if limited, err = t.sendSMSCode(ctx, org, actor.UserID, ceremonyRegister, sessionBound(actor), number, 0, time.Time{}); err != nil || limited != nil {
			return err
		}
		return t.Append(ctx, OrgChain(org), actor, "mfa.sms_sent", UserTarget(actor.UserID), "success", map[string]any{"purpose": "enrol"})
	})
	if err != nil {
		return "", err
	}
	if limited != nil {
		return "", s.smsRefused(ctx, org, actor, actor.UserID, "enrol", limited)
	}
	return sms.Mask(number), nil
}

// smsRefused records a code that a limit kept from being sent and answers
// too_many_requests.
func (s *Store) smsRefused(ctx context.Context, org kluis.OrgID, actor kluis.Actor, user kluis.UserID, purpose string, l *smsLimited) error {
	s.countThrottle("sms_limited")
	target := UserTarget(user)
	if err := s.RecordRefusal(ctx, OrgChain(org), actor, "mfa.sms_sent", target, "failure", map[string]any{"purpose": purpose, "reason": "rate_limited"}); err != nil {
		return err
	}
	return tooMany(s.Now(), l.until)
}

// PendingSMS returns, masked, the number that this session began verifying
// (within PendingTOTPTTL), for the page that asks for its code. Errors:
// unauthenticated, not_found.
func (s *Store) PendingSMS(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (string, error) {
	if !actor.IsOrgUser(org) {
		return "", kluis.ErrUnauthenticated
	}
	var masked string
	err := s.Read(ctx, func(t *Tx) error {
		f, err := t.findSMS(ctx, org, actor.UserID)
		if err != nil {
			return err
		}
		if !f.pendingFor(actor, t.Now()) {
			return kluis.ErrNotFound
		}
		masked = sms.Mask(f.number)
		return nil
	})
	return masked, err
}

// ConfirmSMS turns codes by SMS on with the code sent by StartSMS in this
// session. With the person's first second factor it makes ten recovery
// codes and returns them (shown once); the person's other sessions end. A
// wrong code is recorded; five use the code up. Errors: unauthenticated,
// not_found (nothing pending here), invalid_input (code), forbidden.
func (s *Store) ConfirmSMS(ctx context.Context, org kluis.OrgID, actor kluis.Actor, code string) ([]string, error) {
	if !actor.IsOrgUser(org) {
		return nil, kluis.ErrUnauthenticated
	}
	var codes []string
	wrong := false
	err := s.Write(ctx, OrgChain(org), func(t *Tx) error {
		f, err := t.findSMS(ctx, org, actor.UserID)
		if err != nil {
			return err
		}
		if !f.pendingFor(actor, t.Now()) {
			return kluis.ErrNotFound
		}
		if err := t.mfaEnrolmentAllowed(ctx, org, actor, "mfa.sms_enrolled"); err != nil {
			return err
		}
		bound := sessionBound(actor)
		ok, err := t.checkSMSCode(ctx, org, actor.UserID, ceremonyRegister, bound, code)
		if err != nil {
			return err
		}
		if !ok {
			wrong = true
			_, err := t.Exec(ctx, `UPDATE sms_codes SET attempts = attempts + 1, used_at = CASE WHEN attempts + 1 >= ? THEN ? ELSE used_at END
				WHERE org_id = ? AND user_id = ? AND purpose = ? AND bound_to = ? AND used_at IS NULL`,
				smsWrongPerCode, Micros(t.Now()), org, actor.UserID, ceremonyRegister, bound)
			return err
		}
		before, err := t.factorMethods(ctx, org, actor.UserID)
		if err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE user_factors SET confirmed_at = ?, session_id = NULL WHERE id = ?`, Micros(t.Now()), f.id); err != nil {
			return err
		}
		if len(before) == 0 {
			if codes, err = t.newRecoveryCodes(ctx, org, actor.UserID); err != nil {
				return err
			}
		}
		ended, err := t.endOtherSessions(ctx, org, actor)
		if err != nil {
			return err
		}
		return t.Append(ctx, OrgChain(org), actor, "mfa.sms_enrolled", UserTarget(actor.UserID), "success", map[string]any{"sessions_ended": ended})
	})
	if err != nil {
		return nil, err
	}
	if wrong {
		if err := s.RecordRefusal(ctx, OrgChain(org), actor, "mfa.sms_enrolled", UserTarget(actor.UserID), "failure", nil); err != nil {
			return nil, err
		}
		return nil, kluis.Invalid(map[string]string{"code": "is not correct"})
	}
	return codes, nil
}

// DisableSMS removes the signed-in user's number for codes by SMS (and,
// when no other factor is left, the recovery codes) and ends their other
// sessions. It needs a fresh authentication. Errors: unauthenticated,
// reauth_required, not_found.
func (s *Store) DisableSMS(ctx context.Context, org kluis.OrgID, actor kluis.Actor) error {
	if !actor.IsOrgUser(org) {
		return kluis.ErrUnauthenticated
	}
	if !kluis.FreshlyAuthenticated(actor, s.Now()) {
		return s.reauthRequired(ctx, org, actor, "mfa.sms_removed")
	}
	return s.Write(ctx, OrgChain(org), func(t *Tx) error {
		res, err := t.Exec(ctx, `DELETE FROM user_factors WHERE org_id = ? AND user_id = ? AND kind = 'sms'`, org, actor.UserID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return kluis.ErrNotFound
		}
		// Codes on their way are useless now; the rows that count towards
		// the hourly limit stay.
		if _, err := t.Exec(ctx, `UPDATE sms_codes SET used_at = ? WHERE org_id = ? AND user_id = ? AND used_at IS NULL`, Micros(t.Now()), org, actor.UserID); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `DELETE FROM sms_queue WHERE org_id = ? AND user_id = ?`, org, actor.UserID); err != nil {
			return err
		}
		if err := t.dropRecoveryWithoutFactor(ctx, org, actor.UserID); err != nil {
			return err
		}
		ended, err := t.endOtherSessions(ctx, org, actor)
		if err != nil {
			return err
		}
		return t.Append(ctx, OrgChain(org), actor, "mfa.sms_removed", UserTarget(actor.UserID), "success", map[string]any{"sessions_ended": ended})
	})
}

// SendLoginSMS sends a code for the second step of a login to the verified
// number of the challenge's person, bound to that challenge. Anyone may
// call it: a blocked address is refused (as for LoginMFA, not the challenge
// of a trusted browser), and every failure (no such
// challenge, lapsed, no number enrolled) gets the same unauthenticated and
// counts against the address. Errors: unauthenticated, too_many_requests
// (more than SMSCodesPerChallenge codes for the challenge, or
// SMSCodesPerHour for the person).
func (s *Store) SendLoginSMS(ctx context.Context, org kluis.OrgID, challenge string) error {
	if err := s.gateSecondStep(ctx, org, challenge); err != nil {
		return err
	}
	var user kluis.UserID
	var limited *smsLimited
	failure := !ValidTokenShape(challenge)
	if !failure {
		err := s.Write(ctx, OrgChain(org), func(t *Tx) error {
			var id string
			var expires int64
			err := t.QueryRow(ctx, `SELECT id, user_id, expires_at FROM login_challenges WHERE org_id = ? AND token_hash = ?`+t.db.ForUpdate(), org, TokenHash(challenge)).
				Scan(&id, &user, &expires)
			if errors.Is(err, sql.ErrNoRows) || err == nil && !t.Now().Before(FromMicros(expires)) {
				failure, user = true, ""
				return nil
			}
			if err != nil {
				return err
			}
			f, err := t.findSMS(ctx, org, user)
			if errors.Is(err, kluis.ErrNotFound) || err == nil && !f.confirmed {
				failure = true
				return nil
			}
			if err != nil {
				return err
			}
			if limited, err = t.sendSMSCode(ctx, org, user, ceremonyLogin, challengeBound(id), f.number, SMSCodesPerChallenge, FromMicros(expires)); err != nil || limited != nil {
				return err
			}
			return t.Append(ctx, OrgChain(org), kluis.Actor{}, "mfa.sms_sent", UserTarget(user), "success", map[string]any{"purpose": "login"})
		})
		if err != nil {
			return err
		}
	}
	if failure {
		target := ""
		if user != "" {
			target = UserTarget(user)
		}
		return s.anonymousFailure(ctx, OrgChain(org), "mfa.sms_sent", target, map[string]any{"purpose": "login", "reason": "challenge"}, kluis.ErrUnauthenticated)
	}
	if limited != nil {
		return s.smsRefused(ctx, org, kluis.Actor{}, user, "login", limited)
	}
	return nil
}

// SendReauthSMS sends a code for a re-authentication of the signed-in user
// to their verified number, bound to the session. Errors: unauthenticated,
// not_found (no number enrolled), too_many_requests.
func (s *Store) SendReauthSMS(ctx context.Context, org kluis.OrgID, actor kluis.Actor) error {
	if !actor.IsOrgUser(org) {
		return kluis.ErrUnauthenticated
	}
	var limited *smsLimited
	err := s.Write(ctx, OrgChain(org), func(t *Tx) error {
		f, err := t.findSMS(ctx, org, actor.UserID)
		if err != nil {
			return err
		}
		if !f.confirmed {
			return kluis.ErrNotFound
		}
		if limited, err = t.sendSMSCode(ctx, org, actor.UserID, ceremonyReauth, sessionBound(actor), f.number, SMSCodesPerChallenge, t.Now().Add(time.Hour)); err != nil || limited != nil {
			return err
		}
		return t.Append(ctx, OrgChain(org), actor, "mfa.sms_sent", UserTarget(actor.UserID), "success", map[string]any{"purpose": "reauth"})
	})
	if err != nil {
		return err
	}
	if limited != nil {
		return s.smsRefused(ctx, org, actor, actor.UserID, "reauth", limited)
	}
	return nil
}

// The store is the SMS worker's queue.
var _ sms.Queue = (*Store)(nil)

// ClaimDueSMS leases up to limit due text messages to the caller. Messages
// whose code lapsed are dropped first, and so are code rows older than the
// hour the limits look back.
func (s *Store) ClaimDueSMS(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]sms.Queued, error) {
	var out []sms.Queued
	err := s.Write(ctx, "", func(t *Tx) error {
		if _, err := t.Exec(ctx, `DELETE FROM sms_queue WHERE expires_at <= ?`, Micros(now)); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `DELETE FROM sms_codes WHERE created_at <= ?`, Micros(now.Add(-time.Hour))); err != nil {
			return err
		}
		skip := ""
		if s.db.Engine == Postgres {
			skip = " FOR UPDATE SKIP LOCKED"
		}
		rows, err := t.Query(ctx, `SELECT id, org_id, envelope, attempts FROM sms_queue
			WHERE next_attempt_at <= ? AND lease_until <= ? ORDER BY next_attempt_at LIMIT ?`+skip, Micros(now), Micros(now), limit)
		if err != nil {
			return err
		}
		type row struct {
			q   sms.Queued
			org kluis.OrgID
			env []byte
		}
		var claimed []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.q.ID, &r.org, &r.env, &r.q.Attempts); err != nil {
				rows.Close()
				return err
			}
			claimed = append(claimed, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range claimed {
			var e smsEnvelope
			b, err := s.Open(ctx, smsField(r.org, r.q.ID), r.env)
			if err == nil && json.Unmarshal(b, &e) != nil {
				err = fmt.Errorf("%w: queued SMS %s", errBadEnvelope, r.q.ID)
			}
			if err != nil && !errors.Is(err, keys.ErrKeyDestroyed) && !errors.Is(err, keys.ErrDecrypt) && !errors.Is(err, errBadEnvelope) {
				return err // the key store is unreachable, say: the message waits
			}
			if err != nil {
				s.log.Error("queued SMS cannot be decrypted; dropped", "sms", r.q.ID, "err", err.Error())
				if _, err := t.Exec(ctx, `DELETE FROM sms_queue WHERE id = ?`, r.q.ID); err != nil {
					return err
				}
				continue
			}
			r.q.To, r.q.Text = e.To, e.Text
			out = append(out, r.q)
		}
		for _, q := range out {
			if _, err := t.Exec(ctx, `UPDATE sms_queue SET lease_until = ? WHERE id = ?`, Micros(now.Add(lease)), q.ID); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// MarkSMSSent deletes a delivered message: its number and text leave the database.
func (s *Store) MarkSMSSent(ctx context.Context, id string) error {
	_, err := s.db.WriteExec(ctx, `DELETE FROM sms_queue WHERE id = ?`, id)
	return err
}

// MarkSMSFailed counts a failed attempt and schedules the next one.
func (s *Store) MarkSMSFailed(ctx context.Context, id string, next time.Time) error {
	_, err := s.db.WriteExec(ctx, `UPDATE sms_queue SET attempts = attempts + 1, next_attempt_at = ?, lease_until = 0 WHERE id = ?`, Micros(next), id)
	return err
}

// QueuedSMS counts the text messages waiting for delivery (metrics, tests).
func (s *Store) QueuedSMS(ctx context.Context) (int, error) {
	var n int
	err := s.db.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM sms_queue`).Scan(&n)
	return n, err
}

// SetSMSHook sets the SMS worker's wake-up, called after a transaction that
// queued a text message commits; nil for none. Call it before serving.
func (s *Store) SetSMSHook(smsQueued func()) { s.smsQueued = smsQueued }

// FindSMSNumber returns, masked, the signed-in user's verified number for
// codes by SMS, or "" when they have none. Errors: unauthenticated.
func (s *Store) FindSMSNumber(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (string, error) {
	if !actor.IsOrgUser(org) {
		return "", kluis.ErrUnauthenticated
	}
	var masked string
	err := s.Read(ctx, func(t *Tx) error {
		f, err := t.findSMS(ctx, org, actor.UserID)
		if errors.Is(err, kluis.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if f.confirmed {
			masked = sms.Mask(f.number)
		}
		return nil
	})
	return masked, err
}
