package throttle

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/sqlstore"
)

// mailUnlockLink sends the owner of a locked account a single-use link that
// lifts the lock; older links of the account stop working.
func (s *Service) mailUnlockLink(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, user kluis.UserID) error {
	u, err := t.FindUser(ctx, org, user)
	if err != nil || u.Status != kluis.StatusActive {
		return err
	}
	o, err := t.FindOrg(ctx, org)
	if err != nil {
		return err
	}
	if _, err := t.Exec(ctx, `DELETE FROM unlock_links WHERE org_id = ? AND user_id = ?`, org, user); err != nil {
		return err
	}
	token, hash := sqlstore.NewToken()
	if _, err := t.Exec(ctx, `INSERT INTO unlock_links (token_hash, org_id, user_id, expires_at) VALUES (?, ?, ?, ?)`,
		hash, org, user, sqlstore.Micros(t.Now().Add(kluis.UnlockTTL))); err != nil {
		return err
	}
	link := s.core.PublicURL() + "/o/" + o.Slug + "/unlock#" + token
	return t.QueueMail(ctx, org, user, o.Language, u.Email, mail.AccountLocked, mail.Data{OrgName: o.Name, Link: link})
}

// Unlock lifts the lock of the account an unlock link was mailed for (the
// link works once and for kluis.UnlockTTL). An unknown, used or expired token gets
// not_found and counts against the client address. Errors: not_found,
// too_many_requests.
func (s *Service) Unlock(ctx context.Context, org kluis.OrgID, from kluis.Origin, token string) error {
	if err := s.GateAddress(ctx, from); err != nil {
		return err
	}
	if !sqlstore.ValidTokenShape(token) {
		token = ""
	}
	found := false
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		var user kluis.UserID
		var expires int64
		err := t.QueryRow(ctx, `SELECT user_id, expires_at FROM unlock_links WHERE org_id = ? AND token_hash = ?`+t.ForUpdate(), org, sqlstore.TokenHash(token)).Scan(&user, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `DELETE FROM unlock_links WHERE org_id = ? AND user_id = ?`, org, user); err != nil {
			return err
		}
		if !t.Now().Before(sqlstore.FromMicros(expires)) {
			return nil
		}
		found = true
		return s.unlockUser(ctx, t, org, user, kluis.Actor{From: from}, "auth.unlocked")
	})
	if err != nil {
		return err
	}
	if !found {
		return s.AnonymousFailure(ctx, from, sqlstore.OrgChain(org), "auth.unlocked", "", map[string]any{"reason": "token"}, kluis.ErrNotFound)
	}
	return nil
}

// unlockUser forgets the failures of a user's identifier and records it.
func (s *Service) unlockUser(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, user kluis.UserID, actor kluis.Actor, action string) error {
	var until int64
	err := t.QueryRow(ctx, `SELECT COALESCE(f.locked_until, 0) FROM users u JOIN login_failures f ON f.scope = u.org_id AND f.ident = u.email_index
		WHERE u.org_id = ? AND u.id = ?`, org, user).Scan(&until)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if err := s.ClearUserLock(ctx, t, org, user); err != nil {
		return err
	}
	return t.Append(ctx, sqlstore.OrgChain(org), actor, action, sqlstore.UserTarget(user), "success", map[string]any{"was_locked": t.Now().Before(sqlstore.FromMicros(until))})
}

// ClearUserLock forgets the failures of a user's identifier and drops the
// user's unlock links.
func (s *Service) ClearUserLock(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, user kluis.UserID) error {
	if _, err := t.Exec(ctx, `DELETE FROM login_failures WHERE scope = ? AND ident = (SELECT email_index FROM users WHERE org_id = ? AND id = ?)`, org, org, user); err != nil {
		return err
	}
	_, err := t.Exec(ctx, `DELETE FROM unlock_links WHERE org_id = ? AND user_id = ?`, org, user)
	return err
}

// UnlockUser lets a manager lift the sign-in lock of a person of the
// organisation (R18). Errors: forbidden, not_found.
func (s *Service) UnlockUser(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) error {
	if !kluis.CanManageUsers(actor, org) {
		return s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "user.unlock", sqlstore.UserTarget(id))
	}
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if !kluis.CanManageUsers(actor, org) {
			return sqlstore.Deny(sqlstore.OrgChain(org), actor, "user.unlock", sqlstore.UserTarget(id), kluis.ErrForbidden)
		}
		if _, err := t.FindUser(ctx, org, id); err != nil {
			return err
		}
		return s.unlockUser(ctx, t, org, id, actor, "user.unlock")
	})
}

// UserLocked tells a manager whether a person is locked out of signing in
// from unknown browsers now, and until when.
func (s *Service) UserLocked(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) (time.Time, error) {
	if !kluis.CanReadUsers(actor, org) {
		return time.Time{}, s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "user.read", sqlstore.UserTarget(id))
	}
	var idx []byte
	err := s.core.DB().ReadRow(ctx, `SELECT email_index FROM users WHERE org_id = ? AND id = ?`, org, id).Scan(&idx)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, kluis.ErrNotFound
	}
	if err != nil {
		return time.Time{}, err
	}
	return s.identLockedUntil(ctx, string(org), idx)
}
