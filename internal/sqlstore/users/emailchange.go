package users

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/accounts"
)

// Changing one's e-mail address (R3, R14, R45). The address is how a person
// signs in and where reset links go, so a change is a credential change:
// asked for with a fresh authentication, confirmed through a single-use
// link mailed to the new address, told to the old address (masked, with no
// link), and nothing changes until the confirmation.
//
// The confirmation needs the link and a session of the person who asked:
// the link alone is not enough. Someone who receives it by mistake (a
// mistyped address) could otherwise attach their mailbox to the account and
// take it over through a password reset; a session proves the person who
// asked is the one confirming.

const tabEmailChanges = "email_changes"

// errEmailUnavailable answers a confirmation whose address another person
// of the organisation has: the request is dropped. The message names no one.
var errEmailUnavailable error = &kluis.Error{Code: kluis.EConflict, Message: "this e-mail address cannot be used for your account; ask a manager"}

func emailChangeField(org kluis.OrgID, id string) keys.FieldRef {
	return keys.FieldRef{Org: string(org), Table: tabEmailChanges, Column: sqlstore.ColEmail, Row: id}
}

// RequestEmailChange mails a single-use link to confirm newEmail to that
// address and a notice, with the new address masked, to the current one
// (R45); any earlier request of the person is replaced. It needs a session
// with a fresh authentication. It answers the same whether or not someone
// else in the organisation has the address: that is found out, and the
// request dropped, only when the link is used. Recorded as
// user.email_change_requested. Errors: unauthenticated, forbidden (a
// token), reauth_required, invalid_input (email).
func (s *Service) RequestEmailChange(ctx context.Context, org kluis.OrgID, actor kluis.Actor, newEmail string) error {
	const action = "user.email_change_requested"
	if !actor.IsOrgUser(org) {
		return kluis.ErrUnauthenticated
	}
	if !kluis.CanChangeOwnCredentials(actor, org) {
		return s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, action, sqlstore.UserTarget(actor.UserID))
	}
	if !kluis.FreshlyAuthenticated(actor, s.core.Now()) {
		return accounts.ReauthRequired(ctx, s.core, kluis.OrgScope(org), actor, action)
	}
	newEmail = kluis.NormalizeEmail(newEmail)
	if err := kluis.ValidateEmail(newEmail); err != nil {
		return kluis.Invalid(map[string]string{"email": err.Error()})
	}
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		u, err := t.FindUser(ctx, org, actor.UserID)
		if err != nil {
			return err
		}
		if u.Status != kluis.StatusActive {
			return kluis.ErrUnauthenticated
		}
		if u.Restricted() { // R34: their contact data does not change
			return kluis.ErrProcessingRestricted
		}
		if kluis.NormalizeEmail(u.Email) == newEmail {
			return kluis.Invalid(map[string]string{"email": "is your address already"})
		}
		o, err := t.FindOrg(ctx, org)
		if err != nil {
			return err
		}
		if err := s.dropEmailChanges(ctx, t, org, u.ID); err != nil {
			return err
		}
		id := kluis.NewID(t.Now())
		sealed, err := s.core.Seal(ctx, sqlstore.UserKey(org, u.ID), emailChangeField(org, id), []byte(newEmail))
		if err != nil {
			return err
		}
		token, hash := sqlstore.NewToken()
		if _, err := t.Exec(ctx, `INSERT INTO email_changes (id, org_id, user_id, token_hash, new_email, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			id, org, u.ID, hash, sealed, sqlstore.Micros(t.Now()), sqlstore.Micros(t.Now().Add(kluis.EmailChangeTTL))); err != nil {
			return err
		}
		link := s.core.PublicURL() + "/o/" + o.Slug + "/confirm-email#" + token
		if err := t.QueueMail(ctx, org, u.ID, o.Language, newEmail, mail.EmailChangeConfirm, mail.Data{OrgName: o.Name, Link: link}); err != nil {
			return err
		}
		if err := t.QueueMail(ctx, org, u.ID, o.Language, u.Email, mail.EmailChangeRequested, mail.Data{OrgName: o.Name, Masked: kluis.MaskEmail(newEmail)}); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, action, sqlstore.UserTarget(u.ID), "success",
			map[string]any{"email": sqlstore.SealedDetail{Key: sqlstore.UserKey(org, u.ID), Value: newEmail}})
	})
}

// dropEmailChanges deletes a person's open e-mail change and the
// undelivered mail that carries its link.
func (s *Service) dropEmailChanges(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, user kluis.UserID) error {
	if _, err := t.Exec(ctx, `DELETE FROM email_changes WHERE org_id = ? AND user_id = ?`, org, user); err != nil {
		return err
	}
	_, err := t.Exec(ctx, `DELETE FROM mail_queue WHERE org_id = ? AND user_id = ? AND kind = ?`, org, user, string(mail.EmailChangeConfirm))
	return err
}

// PendingEmailChange returns the new address the signed-in person asked
// for and when its link expires, or "" when nothing is waiting (R4: the
// person sees what is held about them). Not recorded. Errors:
// unauthenticated.
func (s *Service) PendingEmailChange(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (string, time.Time, error) {
	if !actor.IsOrgUser(org) {
		return "", time.Time{}, kluis.ErrUnauthenticated
	}
	var id string
	var sealed []byte
	var expires int64
	err := s.core.DB().ReadRow(ctx, `SELECT id, new_email, expires_at FROM email_changes WHERE org_id = ? AND user_id = ? AND expires_at > ?`,
		org, actor.UserID, sqlstore.Micros(s.core.Now())).Scan(&id, &sealed, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, err
	}
	email, err := s.core.Open(ctx, emailChangeField(org, id), sealed)
	if err != nil {
		return "", time.Time{}, err
	}
	return string(email), sqlstore.FromMicros(expires), nil
}

// ConfirmEmailChange makes the address of an e-mail change link the
// signed-in person's address (R14): the link works once, for
// kluis.EmailChangeTTL, and only in a session of the person who asked — anyone
// else (another person, a token) gets not_found, as for an unknown, used or
// expired link. The address and its blind index change together; open
// reset links (mailed to the old address) and every other session of the
// person end, and the old address gets a notice with the new one masked.
// When another person of the organisation has the address by now, the
// request is dropped and the answer is conflict, naming no one. Recorded
// as user.email_changed (failures too). Errors: unauthenticated,
// not_found, conflict.
func (s *Service) ConfirmEmailChange(ctx context.Context, org kluis.OrgID, actor kluis.Actor, token string) error {
	const action = "user.email_changed"
	if !actor.IsOrgUser(org) {
		return kluis.ErrUnauthenticated
	}
	if !sqlstore.ValidTokenShape(token) || !kluis.CanChangeOwnCredentials(actor, org) {
		token = "" // cannot match: recorded as a failed attempt below
	}
	taken := false
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		var id string
		var user kluis.UserID
		// R34: a restricted person's address does not change (restricting
		// dropped any open change; this answers its link).
		if err := t.RefuseRestricted(ctx, org, actor.UserID); err != nil {
			return err
		}
		var sealed []byte
		var expires int64
		err := t.QueryRow(ctx, `SELECT id, user_id, new_email, expires_at FROM email_changes WHERE org_id = ? AND token_hash = ?`, org, sqlstore.TokenHash(token)).
			Scan(&id, &user, &sealed, &expires)
		if errors.Is(err, sql.ErrNoRows) || err == nil && (user != actor.UserID || !t.Now().Before(sqlstore.FromMicros(expires))) {
			return kluis.ErrNotFound
		}
		if err != nil {
			return err
		}
		// The session must still be there (a reset or a sign-out meanwhile
		// wins).
		var alive int
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM sessions WHERE org_id = ? AND id = ?`, org, string(actor.SessionID)).Scan(&alive); err != nil {
			return err
		}
		if alive != 1 {
			return kluis.ErrUnauthenticated
		}
		u, err := t.FindUser(ctx, org, actor.UserID)
		if err != nil {
			return err
		}
		p, err := s.core.Open(ctx, emailChangeField(org, id), sealed)
		if err != nil {
			return err
		}
		newEmail := string(p)
		if err := s.dropEmailChanges(ctx, t, org, u.ID); err != nil {
			return err
		}
		idx, err := s.core.EmailIndex(ctx, org, kluis.NormalizeEmail(newEmail))
		if err != nil {
			return err
		}
		var others int
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM users WHERE org_id = ? AND email_index = ? AND id <> ?`, org, idx, u.ID).Scan(&others); err != nil {
			return err
		}
		if others > 0 {
			// Dropped, and the drop commits: the link is used up.
			taken = true
			return t.Append(ctx, sqlstore.OrgChain(org), actor, action, sqlstore.UserTarget(u.ID), "failure", map[string]any{"reason": "taken"})
		}
		sealedEmail, err := s.core.SealUser(ctx, org, u.ID, sqlstore.ColEmail, newEmail)
		if err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE users SET email = ?, email_index = ?, updated_at = ? WHERE org_id = ? AND id = ?`,
			sealedEmail, idx, sqlstore.Micros(t.Now()), org, u.ID); err != nil {
			if sqlstore.IsUniqueViolation(err) {
				return errEmailUnavailable
			}
			return err
		}
		if err := accounts.DropResets(ctx, t, org, u.ID); err != nil {
			return err
		}
		ended, err := accounts.EndSessions(ctx, t, kluis.OrgScope(org), string(actor.UserID), actor.SessionID)
		if err != nil {
			return err
		}
		o, err := t.FindOrg(ctx, org)
		if err != nil {
			return err
		}
		if err := t.QueueMail(ctx, org, u.ID, o.Language, u.Email, mail.EmailChanged, mail.Data{OrgName: o.Name, Masked: kluis.MaskEmail(newEmail)}); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, action, sqlstore.UserTarget(u.ID), "success",
			map[string]any{"email": sqlstore.SealedDetail{Key: sqlstore.UserKey(org, u.ID), Value: newEmail},
				"email_old": sqlstore.SealedDetail{Key: sqlstore.UserKey(org, u.ID), Value: u.Email}, "sessions_ended": ended})
	})
	switch {
	case kluis.ErrorCode(err) == kluis.ENotFound:
		if rerr := s.core.RecordRefusal(ctx, sqlstore.OrgChain(org), actor, action, sqlstore.UserTarget(actor.UserID), "failure", nil); rerr != nil {
			return rerr
		}
	case err == nil && taken:
		return errEmailUnavailable
	}
	return err
}
