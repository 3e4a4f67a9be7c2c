package signin

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/accounts"
	"github.com/kluis/kluis/internal/sqlstore/throttle"
)

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
func (s *Service) RequestPasswordReset(ctx context.Context, org kluis.OrgID, from kluis.Origin, email string) error {
	defer waitUntil(ctx, time.Now().Add(resetAnswerFloor))
	// Every request counts against the client address (DESIGN §6): the
	// answer is always the same, so the window is what stops mail bombing.
	if err := s.throttle.GateAddress(ctx, from); err != nil {
		return err
	}
	lookup := kluis.NormalizeEmail(email)
	var su sqlstore.SealedUser
	var err error = kluis.ErrNotFound
	if kluis.ValidateEmail(lookup) == nil {
		var idx []byte
		if idx, err = s.core.EmailIndex(ctx, org, lookup); err == nil {
			su, err = sqlstore.ScanSealedUser(s.core.DB().ReadRow(ctx, `SELECT `+sqlstore.UserColumns+` FROM users WHERE org_id = ? AND email_index = ?`, org, idx))
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
		return s.throttle.AnonymousFailure(ctx, from, sqlstore.OrgChain(org), "auth.password_reset_request", "", map[string]any{"reason": reason}, nil)
	}
	var blocked time.Time
	err = s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		var err error
		if blocked, err = s.throttle.AddressFailed(ctx, t, from, sqlstore.OrgChain(org)); err != nil {
			return err
		}
		u, err := t.FindUser(ctx, org, su.ID)
		if err != nil {
			return err
		}
		if u.Status != kluis.StatusActive {
			return t.Append(ctx, sqlstore.OrgChain(org), kluis.Actor{From: from}, "auth.password_reset_request", "", "failure", map[string]any{"reason": string(u.Status)})
		}
		// One reset mail per account per resetMailEvery, however many
		// addresses ask: the address window alone would let someone with
		// many addresses flood the owner's mailbox.
		var last sql.NullInt64
		if err := t.QueryRow(ctx, `SELECT MAX(created_at) FROM password_resets WHERE org_id = ? AND user_id = ?`, org, u.ID).Scan(&last); err != nil {
			return err
		}
		if last.Valid && t.Now().Sub(sqlstore.FromMicros(last.Int64)) < resetMailEvery {
			return t.Append(ctx, sqlstore.OrgChain(org), kluis.Actor{From: from}, "auth.password_reset_request", sqlstore.UserTarget(u.ID), "failure", map[string]any{"reason": "recent"})
		}
		o, err := t.FindOrg(ctx, org)
		if err != nil {
			return err
		}
		if err := accounts.DropResets(ctx, t, org, u.ID); err != nil {
			return err
		}
		token, hash := sqlstore.NewToken()
		if _, err := t.Exec(ctx, `INSERT INTO password_resets (id, org_id, user_id, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
			kluis.NewID(t.Now()), org, u.ID, hash, sqlstore.Micros(t.Now()), sqlstore.Micros(t.Now().Add(kluis.ResetTTL))); err != nil {
			return err
		}
		link := s.core.PublicURL() + "/o/" + o.Slug + "/reset#" + token
		if err := t.QueueMail(ctx, org, u.ID, o.Language, u.Email, mail.PasswordReset, mail.Data{OrgName: o.Name, Link: link}); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), kluis.Actor{From: from}, "auth.password_reset_request", sqlstore.UserTarget(u.ID), "success", nil)
	})
	if err == nil && !blocked.IsZero() {
		return throttle.TooMany(s.core.Now(), blocked)
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

// ResetPassword sets a new password with a reset link's token (R20): the
// link works once and for ResetTTL, every session of the account ends, and
// the account holder is told by mail. It does not sign anyone in, so an
// enrolled second factor is still asked at the next sign-in. An unknown,
// used or expired token gets one and the same not_found, recorded as a
// failed auth.password_reset. Errors: invalid_input (new_password),
// not_found.
func (s *Service) ResetPassword(ctx context.Context, org kluis.OrgID, from kluis.Origin, token, pw string) error {
	pw = kluis.NormalizePassword(pw)
	if err := s.throttle.GateAddress(ctx, from); err != nil {
		return err
	}
	if !sqlstore.ValidTokenShape(token) {
		token = "" // cannot match: recorded as a failed attempt below
	}
	policy, err := s.core.Policy(ctx, org)
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
	err = s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		var userID kluis.UserID
		var expires int64
		err := t.QueryRow(ctx, `SELECT user_id, expires_at FROM password_resets WHERE org_id = ? AND token_hash = ?`, org, sqlstore.TokenHash(token)).Scan(&userID, &expires)
		if errors.Is(err, sql.ErrNoRows) || err == nil && !t.Now().Before(sqlstore.FromMicros(expires)) {
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
		scope := kluis.OrgScope(org)
		if err := accounts.DropInFlight(ctx, t, scope, string(u.ID)); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE users SET password_hash = ?, updated_at = ? WHERE org_id = ? AND id = ?`, hash, sqlstore.Micros(t.Now()), org, u.ID); err != nil {
			return err
		}
		// Control of the mailbox lifts a sign-in lock, as the unlock link
		// would (R18).
		if err := s.throttle.ClearUserLock(ctx, t, org, u.ID); err != nil {
			return err
		}
		ended, err := accounts.EndSessions(ctx, t, scope, string(u.ID), "")
		if err != nil {
			return err
		}
		// A reset is how a person takes their account back: tokens made
		// by whoever had it end with the sessions.
		if _, err := accounts.RevokeTokens(ctx, t, scope, string(u.ID)); err != nil {
			return err
		}
		o, err := t.FindOrg(ctx, org)
		if err != nil {
			return err
		}
		if err := t.QueueMail(ctx, org, u.ID, o.Language, u.Email, mail.PasswordChanged, mail.Data{OrgName: o.Name, Link: s.core.PublicURL() + "/o/" + o.Slug + "/login"}); err != nil {
			return err
		}
		actor := kluis.Actor{Realm: kluis.RealmOrg, OrgID: org, UserID: u.ID, Role: u.Role, From: from}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "auth.password_reset", sqlstore.UserTarget(u.ID), "success", map[string]any{"sessions_ended": ended})
	})
	if kluis.ErrorCode(err) == kluis.ENotFound {
		return s.throttle.AnonymousFailure(ctx, from, sqlstore.OrgChain(org), "auth.password_reset", "", nil, err)
	}
	return err
}

// Unlock lifts the lock of the account an unlock link was mailed for (the
// link works once and for kluis.UnlockTTL). Errors: not_found,
// too_many_requests.
func (s *Service) Unlock(ctx context.Context, org kluis.OrgID, from kluis.Origin, token string) error {
	return s.throttle.Unlock(ctx, org, from, token)
}
