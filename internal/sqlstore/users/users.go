package users

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/accounts"
	"github.com/kluis/kluis/internal/sqlstore/licences"
)

// NewUserID returns the id of a user about to be created, after making the
// user's key: the key store is written before, not inside, the data
// transaction, which then only seals with a cached key. A key whose user is
// never created (the transaction failed) seals nothing and is destroyed.
func (s *Service) NewUserID(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (kluis.UserID, error) {
	id := kluis.UserID(kluis.NewID(s.core.Now()))
	err := s.core.Keys().EnsureUserKey(ctx, string(org), string(id), actor.AuditName())
	s.core.DrainAfterKeyChange(ctx)
	if err != nil {
		return "", fmt.Errorf("make user key: %w", err)
	}
	return id, nil
}

// dropUnusedKey destroys the key made by newUserID when the user was not
// created after all. An error of the transaction does not prove that: a
// commit can succeed and still report an error, so the row is looked up
// first, and a key whose user exists (or may exist) is kept. The destruction
// is actor's change.
func (s *Service) dropUnusedKey(ctx context.Context, org kluis.OrgID, id kluis.UserID, actor kluis.Actor, err error) {
	if err == nil || id == "" {
		return
	}
	ctx = context.WithoutCancel(ctx)
	var n int
	if err := s.core.DB().ReadRow(ctx, `SELECT COUNT(*) FROM users WHERE id = ?`, id).Scan(&n); err != nil || n > 0 {
		return
	}
	if err := s.core.Keys().DestroyUserKey(ctx, string(org), string(id), actor.AuditName()); err != nil {
		s.core.Log().Warn("an unused user key was not destroyed (it seals nothing)", "err", err.Error())
	}
	s.core.DrainAfterKeyChange(ctx)
}

var errEmailTaken error = &kluis.Error{Code: kluis.EConflict, Message: "a user with this e-mail address exists in the organisation"}

func (s *Service) emailTaken(ctx context.Context, org kluis.OrgID, idx []byte) (bool, error) {
	var n int
	err := s.core.DB().ReadRow(ctx, `SELECT COUNT(*) FROM users WHERE org_id = ? AND email_index = ?`, org, idx).Scan(&n)
	return n > 0, err
}

func (s *Service) InsertInvited(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, id kluis.UserID, email, name string, role kluis.Role) (kluis.User, error) {
	u := kluis.User{
		ID: id, OrgID: org, Email: email, Name: name, Role: role,
		// Maintenance mail is opt-in (R40, issue 15): off until the person
		// chooses it; the choices of people invited before stay as they are.
		Status: kluis.StatusInvited, MaintenanceEmails: false, CreatedAt: t.Now(),
	}
	idx, err := s.core.EmailIndex(ctx, org, kluis.NormalizeEmail(email))
	if err != nil {
		return u, err
	}
	var sealed [3][]byte
	for i, f := range [][2]string{{sqlstore.ColEmail, email}, {sqlstore.ColName, name}, {sqlstore.ColPhone, ""}} {
		if sealed[i], err = s.core.SealUser(ctx, org, id, f[0], f[1]); err != nil {
			return u, err
		}
	}
	_, err = t.Exec(ctx, `INSERT INTO users (id, org_id, email_index, email, name, phone, maintenance_emails, role, status, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, org, idx, sealed[0], sealed[1], sealed[2], u.MaintenanceEmails, u.Role, u.Status, sqlstore.Micros(t.Now()), sqlstore.Micros(t.Now()))
	if sqlstore.IsUniqueViolation(err) {
		return u, errEmailTaken
	}
	return u, err
}

// invite replaces any invitation of the user by a new one, queues its mail
// and returns the link {public-url}/o/{org}/invite#TOKEN. The token lives
// only in the link's fragment and as a hash in the database.
// Invite replaces any invitation of the user by a new one, queues its mail
// and returns the link.
func (s *Service) Invite(ctx context.Context, t *sqlstore.Tx, org kluis.Org, user kluis.UserID, email string) (string, error) {
	if err := s.dropInvitation(ctx, t, org.ID, user); err != nil {
		return "", err
	}
	token, hash := sqlstore.NewToken()
	if _, err := t.Exec(ctx, `INSERT INTO invitations (id, org_id, user_id, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		kluis.NewID(t.Now()), org.ID, user, hash, sqlstore.Micros(t.Now()), sqlstore.Micros(t.Now().Add(kluis.InvitationTTL))); err != nil {
		return "", fmt.Errorf("create invitation: %w", err)
	}
	link := s.core.PublicURL() + "/o/" + org.Slug + "/invite#" + token
	if err := t.QueueMail(ctx, org.ID, user, org.Language, email, mail.Invitation, mail.Data{OrgName: org.Name, Link: link}); err != nil {
		return "", err
	}
	return link, nil
}

// dropInvitation deletes a user's invitation and its undelivered mail, which
// carries the link: no working token outlives its invitation anywhere.
func (s *Service) dropInvitation(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, user kluis.UserID) error {
	if _, err := t.Exec(ctx, `DELETE FROM invitations WHERE org_id = ? AND user_id = ?`, org, user); err != nil {
		return err
	}
	_, err := t.Exec(ctx, `DELETE FROM mail_queue WHERE org_id = ? AND user_id = ? AND kind = ?`, org, user, string(mail.Invitation))
	return err
}

// InviteUser creates a user of the organisation and mails them an invitation
// (R2). Managers only. Errors: invalid_input, conflict (e-mail taken), forbidden.
func (s *Service) InviteUser(ctx context.Context, org kluis.OrgID, actor kluis.Actor, in kluis.UserInput) (kluis.User, error) {
	if !kluis.CanManageUsers(actor, org) {
		return kluis.User{}, s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "user.invite", "")
	}
	if in.Email == nil {
		in.Email = new(string)
	}
	if in.Role == nil {
		r := kluis.RoleMember
		in.Role = &r
	}
	in = in.Normalize()
	emptyName := in.Name == nil || *in.Name == ""
	if emptyName {
		in.Name = nil // the name is optional here: the invitee gives it when accepting
	}
	if err := in.Validate(); err != nil {
		return kluis.User{}, err
	}
	// A taken address is refused before a key is made for nobody (the
	// unique index decides in the transaction, should two race).
	if idx, err := s.core.EmailIndex(ctx, org, kluis.NormalizeEmail(*in.Email)); err != nil {
		return kluis.User{}, err
	} else if taken, err := s.emailTaken(ctx, org, idx); err != nil || taken {
		return kluis.User{}, cmp.Or(err, errEmailTaken)
	}
	id, err := s.NewUserID(ctx, org, actor)
	if err != nil {
		return kluis.User{}, err
	}
	var u kluis.User
	defer func() { s.dropUnusedKey(ctx, org, id, actor, err) }()
	err = s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if !kluis.CanManageUsers(actor, org) {
			return sqlstore.Deny(sqlstore.OrgChain(org), actor, "user.invite", "", kluis.ErrForbidden)
		}
		o, err := t.FindOrg(ctx, org)
		if err != nil {
			return err
		}
		if err := licences.CheckUser(ctx, t, org); err != nil {
			return err
		}
		name := ""
		if !emptyName {
			name = *in.Name
		}
		if *in.Role == kluis.RoleManager {
			if err := checkManagerCap(ctx, t, org, ""); err != nil {
				return err
			}
		}
		if u, err = s.InsertInvited(ctx, t, org, id, *in.Email, name, *in.Role); err != nil {
			return err
		}
		if _, err := s.Invite(ctx, t, o, u.ID, u.Email); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "user.invite", "user:"+string(u.ID), "success",
			map[string]any{"role": string(u.Role), "email": sqlstore.SealedDetail{Key: sqlstore.UserKey(org, u.ID), Value: u.Email}})
	})
	return u, err
}

// ResendInvitation mails a new invitation link to an invited user; the old
// link stops working. Managers only. Errors: not_found, conflict (the user is
// not invited), forbidden.
func (s *Service) ResendInvitation(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) error {
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if !kluis.CanManageUsers(actor, org) {
			return sqlstore.Deny(sqlstore.OrgChain(org), actor, "user.invitation_resend", sqlstore.UserTarget(id), kluis.ErrForbidden)
		}
		u, err := t.FindUser(ctx, org, id)
		if err != nil {
			return err
		}
		if u.Status != kluis.StatusInvited {
			return kluis.Errorf(kluis.EConflict, "the user has already accepted the invitation or is disabled")
		}
		if u.Restricted() { // R34: no mail about them, no new link
			return kluis.ErrProcessingRestricted
		}
		o, err := t.FindOrg(ctx, org)
		if err != nil {
			return err
		}
		if _, err := s.Invite(ctx, t, o, u.ID, u.Email); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "user.invitation_resend", "user:"+string(u.ID), "success", nil)
	})
}

// RevokeInvitation makes an invited user's link stop working; the user stays
// listed as invited until re-invited or deleted. Managers only. Errors:
// not_found (no such user or no open invitation), forbidden.
func (s *Service) RevokeInvitation(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) error {
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if !kluis.CanManageUsers(actor, org) {
			return sqlstore.Deny(sqlstore.OrgChain(org), actor, "user.invitation_revoke", sqlstore.UserTarget(id), kluis.ErrForbidden)
		}
		if u, err := t.FindUser(ctx, org, id); err != nil {
			return err
		} else if u.Restricted() { // R34: their status does not change
			return kluis.ErrProcessingRestricted
		}
		var n int
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM invitations WHERE org_id = ? AND user_id = ?`, org, id).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return kluis.ErrNotFound
		}
		if err := s.dropInvitation(ctx, t, org, id); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "user.invitation_revoke", sqlstore.UserTarget(id), "success", nil)
	})
}

// AcceptInvitation turns an invitation into an active account with the name
// and password the invitee chose. An unknown, used or expired token gets one
// and the same not_found. Errors: invalid_input, not_found.
func (s *Service) AcceptInvitation(ctx context.Context, org kluis.OrgID, from kluis.Origin, token, name, pw string) (kluis.User, error) {
	name = kluis.NormalizeName(name)
	pw = kluis.NormalizePassword(pw)
	if err := s.throttle.GateAddress(ctx, from); err != nil {
		return kluis.User{}, err
	}
	if !sqlstore.ValidTokenShape(token) {
		token = "" // cannot match: recorded as a failed attempt below, after the same work
	}
	policy, err := s.core.Policy(ctx, org)
	if err != nil {
		return kluis.User{}, err
	}
	f := map[string]string{}
	if err := kluis.ValidateName(name); err != nil {
		f["name"] = err.Error()
	}
	if err := policy.CheckPassword(pw); err != nil {
		f["password"] = err.Error()
	}
	if len(f) > 0 {
		return kluis.User{}, kluis.Invalid(f)
	}
	// Hash before the transaction: the write lock is not held for ~30 ms.
	hash, err := s.hasher.Hash(ctx, pw)
	if err != nil {
		return kluis.User{}, err
	}
	u, err := s.acceptInvitation(ctx, org, from, token, name, hash)
	if kluis.ErrorCode(err) == kluis.ENotFound {
		// A failed attempt is an authentication event too (R24), and
		// counts against the client address (DESIGN §6).
		return kluis.User{}, s.throttle.AnonymousFailure(ctx, from, sqlstore.OrgChain(org), "user.invitation_accept", "", nil, err)
	}
	return u, err
}

func (s *Service) acceptInvitation(ctx context.Context, org kluis.OrgID, from kluis.Origin, token, name, hash string) (kluis.User, error) {
	var u kluis.User
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		var userID kluis.UserID
		var expires int64
		err := t.QueryRow(ctx, `SELECT user_id, expires_at FROM invitations WHERE org_id = ? AND token_hash = ?`, org, sqlstore.TokenHash(token)).Scan(&userID, &expires)
		if errors.Is(err, sql.ErrNoRows) || err == nil && !t.Now().Before(sqlstore.FromMicros(expires)) {
			return kluis.ErrNotFound
		}
		if err != nil {
			return err
		}
		if u, err = t.FindUser(ctx, org, userID); err != nil {
			return err
		}
		if u.Status != kluis.StatusInvited {
			return kluis.ErrNotFound
		}
		if u.Restricted() { // R34: their data does not change until lifted
			return kluis.ErrProcessingRestricted
		}
		if err := s.dropInvitation(ctx, t, org, userID); err != nil {
			return err
		}
		sealedName, err := s.core.SealUser(ctx, org, userID, sqlstore.ColName, name)
		if err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE users SET name = ?, password_hash = ?, status = ?, updated_at = ? WHERE org_id = ? AND id = ?`,
			sealedName, hash, kluis.StatusActive, sqlstore.Micros(t.Now()), org, userID); err != nil {
			return err
		}
		u.Name, u.Status = name, kluis.StatusActive
		actor := kluis.Actor{Realm: kluis.RealmOrg, OrgID: org, UserID: u.ID, Role: u.Role, From: from}
		if err := t.Append(ctx, sqlstore.OrgChain(org), actor, "user.invitation_accept", "user:"+string(u.ID), "success",
			map[string]any{"role": string(u.Role)}); err != nil {
			return err
		}
		if u.Role == kluis.RoleManager { // the role's power starts now (R8)
			return notifyNewManager(ctx, t, s.core, org, u, actor)
		}
		return nil
	})
	return u, err
}

// FindUsers lists the organisation's users, their e-mail addresses and phone
// numbers masked (R29): a list needs names, not contact details; opening one
// user (FindUserByID, recorded as user.read) shows them. The list is
// recorded too (R24). Managers only.
// Errors: forbidden.
func (s *Service) FindUsers(ctx context.Context, org kluis.OrgID, actor kluis.Actor) ([]kluis.User, error) {
	var users []kluis.User
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if !kluis.CanReadUsers(actor, org) {
			return sqlstore.Deny(sqlstore.OrgChain(org), actor, "user.list", "", kluis.ErrForbidden)
		}
		rows, err := t.Query(ctx, `SELECT `+sqlstore.UserColumns+` FROM users WHERE org_id = ? ORDER BY created_at, id`, org)
		if err != nil {
			return err
		}
		defer rows.Close()
		users = users[:0]
		var sealed []sqlstore.SealedUser
		for rows.Next() {
			su, err := sqlstore.ScanSealedUser(rows)
			if err != nil {
				return err
			}
			sealed = append(sealed, su)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		for _, su := range sealed {
			u, err := s.core.OpenUser(ctx, su)
			if err != nil {
				return err
			}
			users = append(users, u.Masked())
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "user.list", "", "success", map[string]any{"count": len(users)})
	})
	if err != nil {
		return nil, err // never part of a list
	}
	return users, nil
}

// FindUserByID returns one user of the organisation; a manager opening
// someone's data is recorded as user.read (R24). Managers only.
// Errors: not_found, forbidden.
func (s *Service) FindUserByID(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) (kluis.User, error) {
	var u kluis.User
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if !kluis.CanReadUsers(actor, org) {
			return sqlstore.Deny(sqlstore.OrgChain(org), actor, "user.read", sqlstore.UserTarget(id), kluis.ErrForbidden)
		}
		var err error
		if u, err = t.FindUser(ctx, org, id); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "user.read", sqlstore.UserTarget(id), "success", nil)
	})
	return u, err
}

// countActiveManagers counts the organisation's active managers other than except.
func (s *Service) countActiveManagers(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, except kluis.UserID) (int, error) {
	var n int
	err := t.QueryRow(ctx, `SELECT COUNT(*) FROM users WHERE org_id = ? AND role = ? AND status = ? AND id <> ?`,
		org, kluis.RoleManager, kluis.StatusActive, except).Scan(&n)
	return n, err
}

// UpdateUser changes a user's name, role or disabled state. Disabling ends
// the user's sessions at once. The last active manager can be neither demoted
// nor disabled. Managers only. Errors: invalid_input, not_found, conflict,
// forbidden.
func (s *Service) UpdateUser(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID, in kluis.UserInput) (kluis.User, error) {
	if !kluis.CanManageUsers(actor, org) {
		return kluis.User{}, s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "user.update", sqlstore.UserTarget(id))
	}
	in = kluis.UserInput{Name: in.Name, Role: in.Role, Disabled: in.Disabled}.Normalize()
	if err := in.Validate(); err != nil {
		return kluis.User{}, err
	}
	var u kluis.User
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if !kluis.CanManageUsers(actor, org) || (in.Role != nil && !kluis.CanChangeRoles(actor, org)) {
			return sqlstore.Deny(sqlstore.OrgChain(org), actor, "user.update", sqlstore.UserTarget(id), kluis.ErrForbidden)
		}
		var err error
		if u, err = t.FindUser(ctx, org, id); err != nil {
			return err
		}
		if u.Restricted() { // R34: their data does not change
			return kluis.ErrProcessingRestricted
		}
		old := u
		wasActiveManager := u.Role == kluis.RoleManager && u.Status == kluis.StatusActive
		wasCounted := u.Role == kluis.RoleManager && u.Status != kluis.StatusDisabled
		var changed []string
		if in.Name != nil && *in.Name != u.Name {
			u.Name = *in.Name
			changed = append(changed, "name")
		}
		if in.Role != nil && *in.Role != u.Role {
			u.Role = *in.Role
			changed = append(changed, "role")
		}
		action := "user.update"
		if in.Disabled != nil {
			switch {
			case *in.Disabled && u.Status != kluis.StatusDisabled:
				u.Status = kluis.StatusDisabled
				action = "user.disable"
				changed = append(changed, "disabled")
			case !*in.Disabled && u.Status == kluis.StatusDisabled:
				var hasPassword bool
				if err := t.QueryRow(ctx, `SELECT password_hash IS NOT NULL FROM users WHERE org_id = ? AND id = ?`, org, id).Scan(&hasPassword); err != nil {
					return err
				}
				u.Status = kluis.StatusInvited
				if hasPassword {
					u.Status = kluis.StatusActive
				}
				action = "user.enable"
				changed = append(changed, "disabled")
			}
		}
		if len(changed) == 0 {
			// Nothing changed, but the answer shows the user's data: a read.
			return t.Append(ctx, sqlstore.OrgChain(org), actor, "user.read", sqlstore.UserTarget(u.ID), "success", nil)
		}
		if wasActiveManager && (u.Role != kluis.RoleManager || u.Status != kluis.StatusActive) {
			n, err := s.countActiveManagers(ctx, t, org, u.ID)
			if err != nil {
				return err
			}
			if n == 0 {
				return kluis.ErrLastManager
			}
		}
		// Few administrators (R8): one more manager is checked against the
		// policy's cap.
		if !wasCounted && u.Role == kluis.RoleManager && u.Status != kluis.StatusDisabled {
			if err := checkManagerCap(ctx, t, org, u.ID); err != nil {
				return err
			}
		}
		sealedName, err := s.core.SealUser(ctx, org, u.ID, sqlstore.ColName, u.Name)
		if err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE users SET name = ?, role = ?, status = ?, updated_at = ? WHERE org_id = ? AND id = ?`,
			sealedName, u.Role, u.Status, sqlstore.Micros(t.Now()), org, u.ID); err != nil {
			return err
		}
		// A new role starts with a new sign-in (R14): the person's sessions
		// end — but the caller's own, when a manager changes their own role.
		scope := kluis.OrgScope(org)
		if slices.Contains(changed, "role") && u.Status != kluis.StatusDisabled {
			if _, err := accounts.EndSessions(ctx, t, scope, string(u.ID), actor.SessionID); err != nil {
				return err
			}
		}
		if u.Status == kluis.StatusDisabled {
			if _, err := accounts.EndSessions(ctx, t, scope, string(u.ID), ""); err != nil {
				return err
			}
			if err := s.dropInvitation(ctx, t, org, u.ID); err != nil {
				return err
			}
			if err := accounts.DropInFlight(ctx, t, scope, string(u.ID)); err != nil {
				return err
			}
			// A disabled person's API tokens and e-mail change die too.
			if _, err := accounts.RevokeTokens(ctx, t, scope, string(u.ID)); err != nil {
				return err
			}
			if err := s.dropEmailChanges(ctx, t, org, u.ID); err != nil {
				return err
			}
		}
		details := rectification(org, old, u, changed)
		if slices.Contains(changed, "role") {
			details["role"] = string(u.Role)
		}
		if err := t.Append(ctx, sqlstore.OrgChain(org), actor, action, "user:"+string(u.ID), "success", details); err != nil {
			return err
		}
		if slices.Contains(changed, "role") && u.Role == kluis.RoleManager && u.Status == kluis.StatusActive {
			return notifyNewManager(ctx, t, s.core, org, u, actor)
		}
		return nil
	})
	return u, err
}

// DeleteUser deletes a user and everything of theirs: sessions, invitation,
// personal data (R5), and then destroys the user's key, so that no copy of
// the data (an old database file, a dump, a backup, the audit details) can
// be decrypted any more (crypto-shredding). The last active manager cannot be deleted. Managers only.
// Errors: not_found, conflict, forbidden.
func (s *Service) DeleteUser(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) error {
	var shred string
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if !kluis.CanDeleteUsers(actor, org) {
			return sqlstore.Deny(sqlstore.OrgChain(org), actor, "user.delete", sqlstore.UserTarget(id), kluis.ErrForbidden)
		}
		u, err := t.FindUser(ctx, org, id)
		if err != nil {
			return err
		}
		// A restricted person's data is kept as it is (R34, GDPR Art.
		// 18(1)(b): restriction is what a person asks instead of erasure);
		// only the person erases themselves.
		if u.Restricted() {
			return kluis.ErrProcessingRestricted
		}
		if shred, err = s.remove(ctx, t, org, u); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "user.delete", "user:"+string(u.ID), "success", nil)
	})
	if err == nil {
		s.core.ShredNow(ctx, actor, shred)
	}
	return err
}

// UpdateMe changes the signed-in user's own name, phone and maintenance-mail
// choice (R3, R4). Errors: invalid_input, unauthenticated.
func (s *Service) UpdateMe(ctx context.Context, org kluis.OrgID, actor kluis.Actor, in kluis.UserInput) (kluis.User, error) {
	in = kluis.UserInput{Name: in.Name, Phone: in.Phone, MaintenanceEmails: in.MaintenanceEmails}.Normalize()
	if err := in.Validate(); err != nil {
		return kluis.User{}, err
	}
	var u kluis.User
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if !actor.IsOrgUser(org) {
			return kluis.ErrUnauthenticated
		}
		var err error
		if u, err = t.FindUser(ctx, org, actor.UserID); err != nil {
			return err
		}
		if u.Restricted() { // R34: their data does not change
			return kluis.ErrProcessingRestricted
		}
		old := u
		var changed []string
		if in.Name != nil && *in.Name != u.Name {
			u.Name, changed = *in.Name, append(changed, "name")
		}
		if in.Phone != nil && *in.Phone != u.Phone {
			u.Phone, changed = *in.Phone, append(changed, "phone")
		}
		if in.MaintenanceEmails != nil && *in.MaintenanceEmails != u.MaintenanceEmails {
			u.MaintenanceEmails, changed = *in.MaintenanceEmails, append(changed, "maintenance_emails")
		}
		if len(changed) == 0 {
			return nil
		}
		sealedName, err := s.core.SealUser(ctx, org, u.ID, sqlstore.ColName, u.Name)
		if err != nil {
			return err
		}
		sealedPhone, err := s.core.SealUser(ctx, org, u.ID, sqlstore.ColPhone, u.Phone)
		if err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE users SET name = ?, phone = ?, maintenance_emails = ?, updated_at = ? WHERE org_id = ? AND id = ?`,
			sealedName, sealedPhone, u.MaintenanceEmails, sqlstore.Micros(t.Now()), org, u.ID); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "user.update", "user:"+string(u.ID), "success", rectification(org, old, u, changed))
	})
	return u, err
}

// rectification is the audit detail of a change to a person's data (R34:
// rectification is a logged process): which fields changed, and for each
// its old and new value. Personal values (name, phone) are sealed under the
// person's key, so the chain holds them as ciphertext and erasing the
// person makes them unreadable; role, status and the mail choice are not
// personal values and stand in the clear.
func rectification(org kluis.OrgID, old, now kluis.User, changed []string) map[string]any {
	details := map[string]any{"fields": changed}
	key := sqlstore.UserKey(org, now.ID)
	for _, f := range changed {
		switch f {
		case "name":
			details["name_old"] = sqlstore.SealedDetail{Key: key, Value: old.Name}
			details["name_new"] = sqlstore.SealedDetail{Key: key, Value: now.Name}
		case "phone":
			details["phone_old"] = sqlstore.SealedDetail{Key: key, Value: old.Phone}
			details["phone_new"] = sqlstore.SealedDetail{Key: key, Value: now.Phone}
		case "maintenance_emails":
			details["maintenance_emails_old"], details["maintenance_emails_new"] = old.MaintenanceEmails, now.MaintenanceEmails
		case "role":
			details["role_old"], details["role_new"] = string(old.Role), string(now.Role)
		case "disabled":
			details["status_old"], details["status_new"] = string(old.Status), string(now.Status)
		}
	}
	return details
}
