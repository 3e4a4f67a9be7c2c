package factors

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sms"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Codes by SMS (R17), for organisation users: the number is verified first
// (a factors row of kind "sms" whose secret is the E.164 number, sealed), and
// every code is six digits, kept as an HMAC under the organisation's index
// key bound to its row, valid five minutes, single use, bound to what asked
// for it (the session of a set-up or re-authentication, the challenge of a
// second step). Operators are not offered SMS: their factors are an
// authenticator app and passkeys.

// smsWrongPerCode is how many wrong answers use up a set-up's code.
const smsWrongPerCode = 5

var errNoSMS = kluis.Errorf(kluis.EForbidden, "codes by SMS are not offered here")

// smsCodeHash is what the store keeps of a code.
func (s *Service) smsCodeHash(ctx context.Context, org kluis.OrgID, id, code string) ([]byte, error) {
	return s.core.Keys().BlindIndex(ctx, string(org), "sms-code/v1\x00"+id+"\x00"+code)
}

// smsLimited is a refused sending: when it may be tried again.
type smsLimited struct{ until time.Time }

// sendSMSCode makes a code for purpose bound to bound, keeps its HMAC and
// queues a message with it to number, unless a limit says no: then it
// returns the time to wait and sends nothing. perBound, when positive, is
// how many codes one binding may have had.
func (s *Service) sendSMSCode(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, user, purpose, bound, number string, perBound int, boundUntil time.Time) (*smsLimited, error) {
	hourAgo := t.Now().Add(-time.Hour)
	if _, err := t.Exec(ctx, `DELETE FROM sms_codes WHERE org_id = ? AND user_id = ? AND created_at <= ?`, org, user, sqlstore.Micros(hourAgo)); err != nil {
		return nil, err
	}
	var n int
	var oldest sql.NullInt64
	if err := t.QueryRow(ctx, `SELECT COUNT(*), MIN(created_at) FROM sms_codes WHERE org_id = ? AND user_id = ?`, org, user).Scan(&n, &oldest); err != nil {
		return nil, err
	}
	if n >= kluis.SMSCodesPerHour {
		return &smsLimited{until: sqlstore.FromMicros(oldest.Int64).Add(time.Hour)}, nil
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
	h, err := s.smsCodeHash(ctx, org, id, code)
	if err != nil {
		return nil, err
	}
	expires := t.Now().Add(kluis.SMSCodeTTL)
	if _, err := t.Exec(ctx, `INSERT INTO sms_codes (id, org_id, user_id, purpose, bound_to, code_hash, created_at, expires_at, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)`,
		id, org, user, purpose, bound, h, sqlstore.Micros(t.Now()), sqlstore.Micros(expires)); err != nil {
		return nil, err
	}
	o, err := t.FindOrg(ctx, org)
	if err != nil {
		return nil, err
	}
	return nil, t.QueueSMS(ctx, org, kluis.UserID(user), number, sms.CodeText(o.Language, code, s.smsHost()), expires)
}

// checkSMSCode checks a code sent for purpose bound to bound and, when
// right, uses up every code of that binding. Lapsed and used codes never
// match.
func (s *Service) checkSMSCode(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, user, purpose, bound, code string) (bool, error) {
	if scope.Realm != kluis.RealmOrg {
		return false, nil
	}
	org := scope.Org
	code = sms.NormalizeCode(code)
	rows, err := t.Query(ctx, `SELECT id, code_hash FROM sms_codes WHERE org_id = ? AND user_id = ? AND purpose = ? AND bound_to = ? AND used_at IS NULL AND expires_at > ?`+t.ForUpdate(),
		org, user, purpose, bound, sqlstore.Micros(t.Now()))
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
		h, err := s.smsCodeHash(ctx, org, r.id, code)
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
		sqlstore.Micros(t.Now()), org, user, purpose, bound)
	return err == nil, err
}

// startSMS keeps the number pending, sealed, and sends it a code. It
// returns the number masked.
func (s *Service) startSMS(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, actor kluis.Actor, phone string) (kluis.FactorEnrolment, *smsLimited, error) {
	if scope.Realm != kluis.RealmOrg {
		return kluis.FactorEnrolment{}, nil, errNoSMS
	}
	number, err := sms.ParseNumber(phone)
	if err != nil {
		return kluis.FactorEnrolment{}, nil, kluis.Invalid(map[string]string{"phone": err.Error()})
	}
	user := string(actor.UserID)
	if _, err := t.Exec(ctx, `UPDATE sms_codes SET used_at = ? WHERE org_id = ? AND user_id = ? AND purpose = ? AND used_at IS NULL`,
		sqlstore.Micros(t.Now()), scope.Org, user, purposeRegister); err != nil {
		return kluis.FactorEnrolment{}, nil, err
	}
	if err := s.pendFactor(ctx, t, scope, actor, kluis.FactorSMS, number); err != nil {
		return kluis.FactorEnrolment{}, nil, err
	}
	limited, err := s.sendSMSCode(ctx, t, scope.Org, user, purposeRegister, SessionBound(actor), number, 0, time.Time{})
	return kluis.FactorEnrolment{Number: sms.Mask(number)}, limited, err
}

// confirmSMS checks the set-up's code; wrong answers use the code up after
// smsWrongPerCode.
func (s *Service) confirmSMS(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, actor kluis.Actor, code string) (bool, error) {
	bound := SessionBound(actor)
	ok, err := s.checkSMSCode(ctx, t, scope, string(actor.UserID), purposeRegister, bound, code)
	if err != nil || ok {
		return ok, err
	}
	_, err = t.Exec(ctx, `UPDATE sms_codes SET attempts = attempts + 1, used_at = CASE WHEN attempts + 1 >= ? THEN ? ELSE used_at END
		WHERE org_id = ? AND user_id = ? AND purpose = ? AND bound_to = ? AND used_at IS NULL`,
		smsWrongPerCode, sqlstore.Micros(t.Now()), scope.Org, string(actor.UserID), purposeRegister, bound)
	return false, err
}

// forgetSMS makes the codes on their way useless and drops the messages
// still queued; the rows that count towards the hourly limit stay.
func forgetSMS(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, user string) error {
	if scope.Realm != kluis.RealmOrg {
		return nil
	}
	if _, err := t.Exec(ctx, `UPDATE sms_codes SET used_at = ? WHERE org_id = ? AND user_id = ? AND used_at IS NULL`, sqlstore.Micros(t.Now()), scope.Org, user); err != nil {
		return err
	}
	_, err := t.Exec(ctx, `DELETE FROM sms_queue WHERE org_id = ? AND user_id = ?`, scope.Org, user)
	return err
}

// SendCode sends a code for the second step of a login (purpose "login",
// bound to the challenge, at most kluis.SMSCodesPerChallenge until the
// challenge lapses) or for a re-authentication ("reauth", bound to the
// session) to the account's verified number. It reports false when the
// account has no verified number, and the time to wait when a limit refused
// it; it records what it sent.
func (s *Service) SendCode(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, actor kluis.Actor, subject, purpose, bound string, until time.Time) (sent bool, wait time.Time, err error) {
	if scope.Realm != kluis.RealmOrg {
		return false, time.Time{}, nil
	}
	f, err := s.findFactor(ctx, t, scope, subject, kluis.FactorSMS)
	if err != nil || !f.confirmed {
		if kluis.ErrorCode(err) == kluis.ENotFound {
			err = nil
		}
		return false, time.Time{}, err
	}
	limited, err := s.sendSMSCode(ctx, t, scope.Org, subject, purpose, bound, f.secret, kluis.SMSCodesPerChallenge, until)
	if err != nil {
		return false, time.Time{}, err
	}
	if limited != nil {
		return true, limited.until, nil
	}
	return true, time.Time{}, t.Append(ctx, sqlstore.OrgChain(scope.Org), actor, "mfa.sms_sent", sqlstore.UserTarget(kluis.UserID(subject)), "success",
		map[string]any{"purpose": purpose})
}

// SMSRefused records a code that a limit kept from being sent and answers
// too_many_requests.
func (s *Service) SMSRefused(ctx context.Context, scope kluis.Scope, actor kluis.Actor, subject, purpose string, until time.Time) error {
	s.core.Observe().Throttled("sms_limited")
	if err := s.core.RecordRefusal(ctx, sqlstore.OrgChain(scope.Org), actor, "mfa.sms_sent", sqlstore.UserTarget(kluis.UserID(subject)), "failure",
		map[string]any{"purpose": purpose, "reason": "rate_limited"}); err != nil {
		return err
	}
	return kluis.TooManyRequests(until.Sub(s.core.Now()))
}
