package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mail"
)

// ResetTTL is how long a password reset link works (R20).
const ResetTTL = 30 * time.Minute

// resetAnswerFloor is the least time RequestPasswordReset takes. Mailing an
// existing account costs more work (a link, a sealed mail) than recording an
// unknown address; both finish at the same floor, far above either (about
// 0.5 ms on SQLite and 2 ms on PostgreSQL, docs/PERFORMANCE.md), so the time
// of the answer does not tell whether the account exists.
const resetAnswerFloor = 100 * time.Millisecond

// RequestPasswordReset mails a single-use link to choose a new password to
// the active account with this address, replacing any earlier link (R20).
// It answers the same, after the same time (resetAnswerFloor), whether or
// not such an account exists: the mail is queued in the transaction, never
// sent in the request, and either way one event is recorded (auth.password_reset_request,
// a success naming the account or a failure naming nobody). No password ever
// travels by mail. Errors: only those of the database.
func (s *Store) RequestPasswordReset(ctx context.Context, org kluis.OrgID, email string) error {
	defer waitUntil(ctx, time.Now().Add(resetAnswerFloor))
	// Every request counts against the client address (DESIGN §6): the
	// answer is always the same, so the window is what stops mail bombing.
	if err := s.gateAddress(ctx); err != nil {
		return err
	}
	lookup := kluis.NormalizeEmail(email)
	var su sealedUser
	var err error = kluis.ErrNotFound
	if kluis.ValidateEmail(lookup) == nil {
		var idx []byte
		if idx, err = s.EmailIndex(ctx, org, lookup); err == nil {
			su, err = scanSealedUser(s.db.ReadRow(ctx, `SELECT `+userColumns+` FROM users WHERE org_id = ? AND email_index = ?`, org, idx))
			if errors.Is(err, sql.ErrNoRows) {
				err = kluis.ErrNotFound
			}
		}
	}
	if err != nil && !errors.Is(err, kluis.ErrNotFound) {
		return err
	}
	if err != nil || su.Status != kluis.StatusActive {
		// Nobody to mail: recorded all the same; the floor evens out the
		// time (measured in internal/loadtest, BenchmarkPasswordResetTiming).
		reason := "unknown"
		if err == nil {
			reason = string(su.Status)
		}
		return s.anonymousFailure(ctx, OrgChain(org), "auth.password_reset_request", "", map[string]any{"reason": reason}, nil)
	}
	var blocked time.Time
	err = s.Write(ctx, OrgChain(org), func(t *Tx) error {
		var err error
		if blocked, err = t.addressFailed(ctx, OrgChain(org)); err != nil {
			return err
		}
		u, err := t.FindUser(ctx, org, su.ID)
		if err != nil {
			return err
		}
		if u.Status != kluis.StatusActive {
			return t.Append(ctx, OrgChain(org), kluis.Actor{}, "auth.password_reset_request", "", "failure", map[string]any{"reason": string(u.Status)})
		}
		// One reset mail per account per resetMailEvery, however many
		// addresses ask: the address window alone would let someone with
		// many addresses flood the owner's mailbox.
		var last sql.NullInt64
		if err := t.QueryRow(ctx, `SELECT MAX(created_at) FROM password_resets WHERE org_id = ? AND user_id = ?`, org, u.ID).Scan(&last); err != nil {
			return err
		}
		if last.Valid && t.Now().Sub(FromMicros(last.Int64)) < resetMailEvery {
			return t.Append(ctx, OrgChain(org), kluis.Actor{}, "auth.password_reset_request", UserTarget(u.ID), "failure", map[string]any{"reason": "recent"})
		}
		o, err := t.FindOrg(ctx, org)
		if err != nil {
			return err
		}
		if err := t.dropResets(ctx, org, u.ID); err != nil {
			return err
		}
		token, hash := NewToken()
		if _, err := t.Exec(ctx, `INSERT INTO password_resets (id, org_id, user_id, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
			kluis.NewID(t.Now()), org, u.ID, hash, Micros(t.Now()), Micros(t.Now().Add(ResetTTL))); err != nil {
			return err
		}
		link := t.s.publicURL + "/o/" + o.Slug + "/reset#" + token
		if err := t.QueueMail(ctx, org, u.ID, o.Language, u.Email, mail.PasswordReset, mail.Data{OrgName: o.Name, Link: link}); err != nil {
			return err
		}
		return t.Append(ctx, OrgChain(org), kluis.Actor{}, "auth.password_reset_request", UserTarget(u.ID), "success", nil)
	})
	if err == nil && !blocked.IsZero() {
		return tooMany(s.Now(), blocked)
	}
	return err
}

// resetMailEvery is the least time between two reset mails to one account.
const resetMailEvery = 2 * time.Minute

// waitUntil sleeps until t, or until ctx ends.
func waitUntil(ctx context.Context, t time.Time) {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}

// dropResets deletes a user's reset links and their undelivered mail, which
// carries the link: no working token outlives its link anywhere.
func (t *Tx) dropResets(ctx context.Context, org kluis.OrgID, user kluis.UserID) error {
	if _, err := t.Exec(ctx, `DELETE FROM password_resets WHERE org_id = ? AND user_id = ?`, org, user); err != nil {
		return err
	}
	_, err := t.Exec(ctx, `DELETE FROM mail_queue WHERE org_id = ? AND user_id = ? AND kind = ?`, org, user, string(mail.PasswordReset))
	return err
}

// ResetPassword sets a new password with a reset link's token (R20): the
// link works once and for ResetTTL, every session of the account ends, and
// the account holder is told by mail. It does not sign anyone in, so an
// enrolled second factor is still asked at the next sign-in. An unknown,
// used or expired token gets one and the same not_found, recorded as a
// failed auth.password_reset. Errors: invalid_input (new_password),
// not_found.
func (s *Store) ResetPassword(ctx context.Context, org kluis.OrgID, token, pw string) error {
	pw = kluis.NormalizePassword(pw)
	if err := s.gateAddress(ctx); err != nil {
		return err
	}
	if !ValidTokenShape(token) {
		token = "" // cannot match: recorded as a failed attempt below
	}
	policy, err := s.policy(ctx, s.db.reader, org)
	if err != nil {
		return err
	}
	if err := policy.CheckPassword(pw); err != nil {
		return kluis.Invalid(map[string]string{"new_password": err.Error()})
	}
	// Hash before the transaction: the write lock is not held for ~30 ms.
	hash, err := s.hasher.Hash(ctx, pw)
	if err != nil {
		return err
	}
	err = s.Write(ctx, OrgChain(org), func(t *Tx) error {
		var userID kluis.UserID
		var expires int64
		err := t.QueryRow(ctx, `SELECT user_id, expires_at FROM password_resets WHERE org_id = ? AND token_hash = ?`, org, TokenHash(token)).Scan(&userID, &expires)
		if errors.Is(err, sql.ErrNoRows) || err == nil && !t.Now().Before(FromMicros(expires)) {
			return kluis.ErrNotFound
		}
		if err != nil {
			return err
		}
		u, err := t.FindUser(ctx, org, userID)
		if err != nil {
			return err
		}
		if u.Status != kluis.StatusActive {
			return kluis.ErrNotFound
		}
		if err := t.dropCredentialsInFlight(ctx, org, u.ID); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE users SET password_hash = ?, updated_at = ? WHERE org_id = ? AND id = ?`, hash, Micros(t.Now()), org, u.ID); err != nil {
			return err
		}
		// Control of the mailbox lifts a sign-in lock, as the unlock link
		// would (R18).
		if err := t.clearUserLock(ctx, org, u.ID); err != nil {
			return err
		}
		res, err := t.Exec(ctx, `DELETE FROM sessions WHERE org_id = ? AND user_id = ?`, org, u.ID)
		if err != nil {
			return err
		}
		ended, _ := res.RowsAffected()
		// A reset is how a person takes their account back: tokens made
		// by whoever had it end with the sessions.
		if _, err := t.revokeAPITokens(ctx, org, u.ID); err != nil {
			return err
		}
		o, err := t.FindOrg(ctx, org)
		if err != nil {
			return err
		}
		if err := t.QueueMail(ctx, org, u.ID, o.Language, u.Email, mail.PasswordChanged, mail.Data{OrgName: o.Name, Link: t.s.publicURL + "/o/" + o.Slug + "/login"}); err != nil {
			return err
		}
		actor := kluis.Actor{Realm: kluis.RealmOrg, OrgID: org, UserID: u.ID, Role: u.Role}
		return t.Append(ctx, OrgChain(org), actor, "auth.password_reset", UserTarget(u.ID), "success", map[string]any{"sessions_ended": ended})
	})
	if kluis.ErrorCode(err) == kluis.ENotFound {
		return s.anonymousFailure(ctx, OrgChain(org), "auth.password_reset", "", nil, err)
	}
	return err
}
