package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mail"
)

// userTarget names a user as an audit target. An id that cannot be one of
// ours (it came from a URL) is not written into the chain.
func userTarget(id kluis.UserID) string {
	if !kluis.ValidID(string(id)) {
		return ""
	}
	return "user:" + string(id)
}

// InvitationTTL is how long an invitation link works.
const InvitationTTL = 72 * time.Hour

const userColumns = `id, org_id, email, name, phone, maintenance_emails, role, status, created_at, last_login_at`

// scanSealedUser reads the columns of userColumns, and extra, leaving the
// personal fields sealed.
func scanSealedUser(row interface{ Scan(...any) error }, extra ...any) (sealedUser, error) {
	var u sealedUser
	var created int64
	var lastLogin sql.NullInt64
	dest := append([]any{&u.ID, &u.OrgID, &u.email, &u.name, &u.phone, &u.MaintenanceEmails, &u.Role, &u.Status, &created, &lastLogin}, extra...)
	err := row.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return u, kluis.ErrNotFound
	}
	u.CreatedAt = fromMicros(created)
	u.LastLoginAt = nullMicros(lastLogin)
	return u, err
}

// findUser loads a user of org by id inside the transaction, locking the row
// on PostgreSQL. A user of another organisation is not found.
func (t *Tx) findUser(ctx context.Context, org kluis.OrgID, id kluis.UserID) (kluis.User, error) {
	if !kluis.ValidID(string(id)) {
		return kluis.User{}, kluis.ErrNotFound
	}
	return t.s.scanUser(ctx, t.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE org_id = ? AND id = ?`+t.db.forUpdate(), org, id))
}

func (t *Tx) findOrg(ctx context.Context, org kluis.OrgID) (kluis.Org, error) {
	return scanOrg(t.queryRow(ctx, `SELECT `+orgColumns+` FROM orgs WHERE id = ?`, org))
}

// newUserID returns the id of a user about to be created, after making the
// user's key as actor's change: the key store is written before, not inside,
// the data transaction, which then only seals with a cached key. A key whose
// user is never created (the transaction failed) seals nothing and is
// destroyed.
func (s *Store) newUserID(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (kluis.UserID, error) {
	id := kluis.UserID(kluis.NewID(s.now()))
	err := s.keys.EnsureUserKey(ctx, string(org), string(id), actor.AuditName())
	s.drainAfterKeyChange(ctx)
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
func (s *Store) dropUnusedKey(ctx context.Context, org kluis.OrgID, id kluis.UserID, actor kluis.Actor, err error) {
	if err == nil || id == "" {
		return
	}
	ctx = context.WithoutCancel(ctx)
	var n int
	if err := s.db.readRow(ctx, `SELECT COUNT(*) FROM users WHERE id = ?`, id).Scan(&n); err != nil || n > 0 {
		return
	}
	if err := s.keys.DestroyUserKey(ctx, string(org), string(id), actor.AuditName()); err != nil {
		s.log.Warn("an unused user key was not destroyed (it seals nothing)", "err", err.Error())
	}
	s.drainAfterKeyChange(ctx)
}

var errEmailTaken error = &kluis.Error{Code: kluis.EConflict, Message: "a user with this e-mail address exists in the organisation"}

func (s *Store) emailTaken(ctx context.Context, org kluis.OrgID, idx []byte) (bool, error) {
	var n int
	err := s.db.readRow(ctx, `SELECT COUNT(*) FROM users WHERE org_id = ? AND email_index = ?`, org, idx).Scan(&n)
	return n > 0, err
}

func (t *Tx) insertInvitedUser(ctx context.Context, org kluis.OrgID, id kluis.UserID, email, name string, role kluis.Role) (kluis.User, error) {
	u := kluis.User{
		ID: id, OrgID: org, Email: email, Name: name, Role: role,
		Status: kluis.StatusInvited, MaintenanceEmails: true, CreatedAt: t.now,
	}
	idx, err := t.s.emailIndex(ctx, org, kluis.NormalizeEmail(email))
	if err != nil {
		return u, err
	}
	var sealed [3][]byte
	for i, f := range [][2]string{{colEmail, email}, {colName, name}, {colPhone, ""}} {
		if sealed[i], err = t.s.sealUser(ctx, org, id, f[0], f[1]); err != nil {
			return u, err
		}
	}
	_, err = t.exec(ctx, `INSERT INTO users (id, org_id, email_index, email, name, phone, maintenance_emails, role, status, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, org, idx, sealed[0], sealed[1], sealed[2], u.MaintenanceEmails, u.Role, u.Status, micros(t.now), micros(t.now))
	if isUniqueViolation(err) {
		return u, errEmailTaken
	}
	return u, err
}

// invite replaces any invitation of the user by a new one, queues its mail
// and returns the link {public-url}/o/{org}/invite#TOKEN. The token lives
// only in the link's fragment and as a hash in the database.
func (t *Tx) invite(ctx context.Context, org kluis.Org, user kluis.UserID, email string) (string, error) {
	if err := t.dropInvitation(ctx, org.ID, user); err != nil {
		return "", err
	}
	token, hash := newToken()
	if _, err := t.exec(ctx, `INSERT INTO invitations (id, org_id, user_id, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		kluis.NewID(t.now), org.ID, user, hash, micros(t.now), micros(t.now.Add(InvitationTTL))); err != nil {
		return "", fmt.Errorf("create invitation: %w", err)
	}
	link := t.s.publicURL + "/o/" + org.Slug + "/invite#" + token
	if err := t.queueMail(ctx, org.ID, user, org.Language, email, mail.Invitation, mail.Data{OrgName: org.Name, Link: link}); err != nil {
		return "", err
	}
	return link, nil
}

// dropInvitation deletes a user's invitation and its undelivered mail, which
// carries the link: no working token outlives its invitation anywhere.
func (t *Tx) dropInvitation(ctx context.Context, org kluis.OrgID, user kluis.UserID) error {
	if _, err := t.exec(ctx, `DELETE FROM invitations WHERE org_id = ? AND user_id = ?`, org, user); err != nil {
		return err
	}
	_, err := t.exec(ctx, `DELETE FROM mail_queue WHERE org_id = ? AND user_id = ? AND kind = ?`, org, user, string(mail.Invitation))
	return err
}

// InviteUser creates a user of the organisation and mails them an invitation
// (R2). Managers only. Errors: invalid_input, conflict (e-mail taken), forbidden.
func (s *Store) InviteUser(ctx context.Context, org kluis.OrgID, actor kluis.Actor, in kluis.UserInput) (kluis.User, error) {
	if !kluis.CanManageUsers(actor, org) {
		return kluis.User{}, s.refuse(ctx, orgChain(org), actor, "user.invite", "")
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
	if idx, err := s.emailIndex(ctx, org, kluis.NormalizeEmail(*in.Email)); err != nil {
		return kluis.User{}, err
	} else if taken, err := s.emailTaken(ctx, org, idx); err != nil || taken {
		return kluis.User{}, cmp.Or(err, errEmailTaken)
	}
	id, err := s.newUserID(ctx, org, actor)
	if err != nil {
		return kluis.User{}, err
	}
	var u kluis.User
	defer func() { s.dropUnusedKey(ctx, org, id, actor, err) }()
	err = s.write(ctx, orgChain(org), func(t *Tx) error {
		if !kluis.CanManageUsers(actor, org) {
			return deny(orgChain(org), actor, "user.invite", "", kluis.ErrForbidden)
		}
		o, err := t.findOrg(ctx, org)
		if err != nil {
			return err
		}
		name := ""
		if !emptyName {
			name = *in.Name
		}
		if u, err = t.insertInvitedUser(ctx, org, id, *in.Email, name, *in.Role); err != nil {
			return err
		}
		if _, err := t.invite(ctx, o, u.ID, u.Email); err != nil {
			return err
		}
		return t.appendEvent(ctx, orgChain(org), actor, "user.invite", "user:"+string(u.ID), "success",
			map[string]any{"role": string(u.Role), "email": sealedDetail{userKey(org, u.ID), u.Email}})
	})
	return u, err
}

// ResendInvitation mails a new invitation link to an invited user; the old
// link stops working. Managers only. Errors: not_found, conflict (the user is
// not invited), forbidden.
func (s *Store) ResendInvitation(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) error {
	return s.write(ctx, orgChain(org), func(t *Tx) error {
		if !kluis.CanManageUsers(actor, org) {
			return deny(orgChain(org), actor, "user.invitation_resend", userTarget(id), kluis.ErrForbidden)
		}
		u, err := t.findUser(ctx, org, id)
		if err != nil {
			return err
		}
		if u.Status != kluis.StatusInvited {
			return kluis.Errorf(kluis.EConflict, "the user has already accepted the invitation or is disabled")
		}
		o, err := t.findOrg(ctx, org)
		if err != nil {
			return err
		}
		if _, err := t.invite(ctx, o, u.ID, u.Email); err != nil {
			return err
		}
		return t.appendEvent(ctx, orgChain(org), actor, "user.invitation_resend", "user:"+string(u.ID), "success", nil)
	})
}

// RevokeInvitation makes an invited user's link stop working; the user stays
// listed as invited until re-invited or deleted. Managers only. Errors:
// not_found (no such user or no open invitation), forbidden.
func (s *Store) RevokeInvitation(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) error {
	return s.write(ctx, orgChain(org), func(t *Tx) error {
		if !kluis.CanManageUsers(actor, org) {
			return deny(orgChain(org), actor, "user.invitation_revoke", userTarget(id), kluis.ErrForbidden)
		}
		if _, err := t.findUser(ctx, org, id); err != nil {
			return err
		}
		var n int
		if err := t.queryRow(ctx, `SELECT COUNT(*) FROM invitations WHERE org_id = ? AND user_id = ?`, org, id).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return kluis.ErrNotFound
		}
		if err := t.dropInvitation(ctx, org, id); err != nil {
			return err
		}
		return t.appendEvent(ctx, orgChain(org), actor, "user.invitation_revoke", userTarget(id), "success", nil)
	})
}

// AcceptInvitation turns an invitation into an active account with the name
// and password the invitee chose. An unknown, used or expired token gets one
// and the same not_found. Errors: invalid_input, not_found.
func (s *Store) AcceptInvitation(ctx context.Context, org kluis.OrgID, token, name, pw string) (kluis.User, error) {
	name = kluis.NormalizeName(name)
	pw = kluis.NormalizePassword(pw)
	if err := s.gateAddress(ctx); err != nil {
		return kluis.User{}, err
	}
	if !validTokenShape(token) {
		token = "" // cannot match: recorded as a failed attempt below, after the same work
	}
	policy, err := s.policy(ctx, s.db.reader, org)
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
	u, err := s.acceptInvitation(ctx, org, token, name, hash)
	if kluis.ErrorCode(err) == kluis.ENotFound {
		// A failed attempt is an authentication event too (R24), and
		// counts against the client address (DESIGN §6).
		return kluis.User{}, s.anonymousFailure(ctx, orgChain(org), "user.invitation_accept", "", nil, err)
	}
	return u, err
}

func (s *Store) acceptInvitation(ctx context.Context, org kluis.OrgID, token, name, hash string) (kluis.User, error) {
	var u kluis.User
	err := s.write(ctx, orgChain(org), func(t *Tx) error {
		var userID kluis.UserID
		var expires int64
		err := t.queryRow(ctx, `SELECT user_id, expires_at FROM invitations WHERE org_id = ? AND token_hash = ?`, org, tokenHash(token)).Scan(&userID, &expires)
		if errors.Is(err, sql.ErrNoRows) || err == nil && !t.now.Before(fromMicros(expires)) {
			return kluis.ErrNotFound
		}
		if err != nil {
			return err
		}
		if u, err = t.findUser(ctx, org, userID); err != nil {
			return err
		}
		if u.Status != kluis.StatusInvited {
			return kluis.ErrNotFound
		}
		if err := t.dropInvitation(ctx, org, userID); err != nil {
			return err
		}
		sealedName, err := t.s.sealUser(ctx, org, userID, colName, name)
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, `UPDATE users SET name = ?, password_hash = ?, status = ?, updated_at = ? WHERE org_id = ? AND id = ?`,
			sealedName, hash, kluis.StatusActive, micros(t.now), org, userID); err != nil {
			return err
		}
		u.Name, u.Status = name, kluis.StatusActive
		actor := kluis.Actor{Realm: kluis.RealmOrg, OrgID: org, UserID: u.ID, Role: u.Role}
		return t.appendEvent(ctx, orgChain(org), actor, "user.invitation_accept", "user:"+string(u.ID), "success", nil)
	})
	return u, err
}

// FindUsers lists the organisation's users, their e-mail addresses and phone
// numbers masked (R29): a list needs names, not contact details; opening one
// user (FindUserByID, recorded as user.read) shows them. The list is
// recorded too (R24). Managers only.
// Errors: forbidden.
func (s *Store) FindUsers(ctx context.Context, org kluis.OrgID, actor kluis.Actor) ([]kluis.User, error) {
	var users []kluis.User
	err := s.write(ctx, orgChain(org), func(t *Tx) error {
		if !kluis.CanManageUsers(actor, org) {
			return deny(orgChain(org), actor, "user.list", "", kluis.ErrForbidden)
		}
		rows, err := t.query(ctx, `SELECT `+userColumns+` FROM users WHERE org_id = ? ORDER BY created_at, id`, org)
		if err != nil {
			return err
		}
		defer rows.Close()
		users = users[:0]
		var sealed []sealedUser
		for rows.Next() {
			su, err := scanSealedUser(rows)
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
			u, err := t.s.openUser(ctx, su)
			if err != nil {
				return err
			}
			users = append(users, u.Masked())
		}
		return t.appendEvent(ctx, orgChain(org), actor, "user.list", "", "success", map[string]any{"count": len(users)})
	})
	if err != nil {
		return nil, err // never part of a list
	}
	return users, nil
}

// FindUserByID returns one user of the organisation; a manager opening
// someone's data is recorded as user.read (R24). Managers only.
// Errors: not_found, forbidden.
func (s *Store) FindUserByID(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) (kluis.User, error) {
	var u kluis.User
	err := s.write(ctx, orgChain(org), func(t *Tx) error {
		if !kluis.CanManageUsers(actor, org) {
			return deny(orgChain(org), actor, "user.read", userTarget(id), kluis.ErrForbidden)
		}
		var err error
		if u, err = t.findUser(ctx, org, id); err != nil {
			return err
		}
		return t.appendEvent(ctx, orgChain(org), actor, "user.read", userTarget(id), "success", nil)
	})
	return u, err
}

// countActiveManagers counts the organisation's active managers other than except.
func (t *Tx) countActiveManagers(ctx context.Context, org kluis.OrgID, except kluis.UserID) (int, error) {
	var n int
	err := t.queryRow(ctx, `SELECT COUNT(*) FROM users WHERE org_id = ? AND role = ? AND status = ? AND id <> ?`,
		org, kluis.RoleManager, kluis.StatusActive, except).Scan(&n)
	return n, err
}

// UpdateUser changes a user's name, role or disabled state. Disabling ends
// the user's sessions at once. The last active manager can be neither demoted
// nor disabled. Managers only. Errors: invalid_input, not_found, conflict,
// forbidden.
func (s *Store) UpdateUser(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID, in kluis.UserInput) (kluis.User, error) {
	if !kluis.CanManageUsers(actor, org) {
		return kluis.User{}, s.refuse(ctx, orgChain(org), actor, "user.update", userTarget(id))
	}
	in = kluis.UserInput{Name: in.Name, Role: in.Role, Disabled: in.Disabled}.Normalize()
	if err := in.Validate(); err != nil {
		return kluis.User{}, err
	}
	var u kluis.User
	err := s.write(ctx, orgChain(org), func(t *Tx) error {
		if !kluis.CanManageUsers(actor, org) {
			return deny(orgChain(org), actor, "user.update", userTarget(id), kluis.ErrForbidden)
		}
		var err error
		if u, err = t.findUser(ctx, org, id); err != nil {
			return err
		}
		wasActiveManager := u.Role == kluis.RoleManager && u.Status == kluis.StatusActive
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
				if err := t.queryRow(ctx, `SELECT password_hash IS NOT NULL FROM users WHERE org_id = ? AND id = ?`, org, id).Scan(&hasPassword); err != nil {
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
			return t.appendEvent(ctx, orgChain(org), actor, "user.read", userTarget(u.ID), "success", nil)
		}
		if wasActiveManager && (u.Role != kluis.RoleManager || u.Status != kluis.StatusActive) {
			n, err := t.countActiveManagers(ctx, org, u.ID)
			if err != nil {
				return err
			}
			if n == 0 {
				return kluis.ErrLastManager
			}
		}
		sealedName, err := t.s.sealUser(ctx, org, u.ID, colName, u.Name)
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, `UPDATE users SET name = ?, role = ?, status = ?, updated_at = ? WHERE org_id = ? AND id = ?`,
			sealedName, u.Role, u.Status, micros(t.now), org, u.ID); err != nil {
			return err
		}
		// A new role starts with a new sign-in (R14): the person's sessions
		// end — but the caller's own, when a manager changes their own role.
		if slices.Contains(changed, "role") && u.Status != kluis.StatusDisabled {
			if _, err := t.exec(ctx, `DELETE FROM sessions WHERE org_id = ? AND user_id = ? AND id <> ?`, org, u.ID, string(actor.SessionID)); err != nil {
				return err
			}
		}
		if u.Status == kluis.StatusDisabled {
			if _, err := t.exec(ctx, `DELETE FROM sessions WHERE org_id = ? AND user_id = ?`, org, u.ID); err != nil {
				return err
			}
			if err := t.dropInvitation(ctx, org, u.ID); err != nil {
				return err
			}
			if err := t.dropCredentialsInFlight(ctx, org, u.ID); err != nil {
				return err
			}
			// A disabled person's API tokens and e-mail change die too.
			if _, err := t.revokeAPITokens(ctx, org, u.ID); err != nil {
				return err
			}
			if err := t.dropEmailChanges(ctx, org, u.ID); err != nil {
				return err
			}
		}
		return t.appendEvent(ctx, orgChain(org), actor, action, "user:"+string(u.ID), "success", map[string]any{"fields": changed})
	})
	return u, err
}

// DeleteUser deletes a user and everything of theirs: sessions, invitation,
// personal data (R5), and then destroys the user's key, so that no copy of
// the data (an old database file, a dump, a backup, the audit details) can
// be decrypted any more (crypto-shredding). The last active manager cannot be deleted. Managers only.
// Errors: not_found, conflict, forbidden.
func (s *Store) DeleteUser(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) error {
	var shred string
	err := s.write(ctx, orgChain(org), func(t *Tx) error {
		if !kluis.CanManageUsers(actor, org) {
			return deny(orgChain(org), actor, "user.delete", userTarget(id), kluis.ErrForbidden)
		}
		u, err := t.findUser(ctx, org, id)
		if err != nil {
			return err
		}
		if u.Role == kluis.RoleManager && u.Status == kluis.StatusActive {
			n, err := t.countActiveManagers(ctx, org, u.ID)
			if err != nil {
				return err
			}
			if n == 0 {
				return kluis.ErrLastManager
			}
		}
		if _, err := t.exec(ctx, `DELETE FROM users WHERE org_id = ? AND id = ?`, org, u.ID); err != nil {
			return err
		}
		if shred, err = t.scheduleShred(ctx, org, u.ID); err != nil {
			return err
		}
		return t.appendEvent(ctx, orgChain(org), actor, "user.delete", "user:"+string(u.ID), "success", nil)
	})
	if err == nil {
		s.shredNow(ctx, actor, shred)
	}
	return err
}

// UpdateMe changes the signed-in user's own name, phone and maintenance-mail
// choice (R3, R4). Errors: invalid_input, unauthenticated.
func (s *Store) UpdateMe(ctx context.Context, org kluis.OrgID, actor kluis.Actor, in kluis.UserInput) (kluis.User, error) {
	in = kluis.UserInput{Name: in.Name, Phone: in.Phone, MaintenanceEmails: in.MaintenanceEmails}.Normalize()
	if err := in.Validate(); err != nil {
		return kluis.User{}, err
	}
	var u kluis.User
	err := s.write(ctx, orgChain(org), func(t *Tx) error {
		if !actor.IsOrgUser(org) {
			return kluis.ErrUnauthenticated
		}
		var err error
		if u, err = t.findUser(ctx, org, actor.UserID); err != nil {
			return err
		}
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
		sealedName, err := t.s.sealUser(ctx, org, u.ID, colName, u.Name)
		if err != nil {
			return err
		}
		sealedPhone, err := t.s.sealUser(ctx, org, u.ID, colPhone, u.Phone)
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, `UPDATE users SET name = ?, phone = ?, maintenance_emails = ?, updated_at = ? WHERE org_id = ? AND id = ?`,
			sealedName, sealedPhone, u.MaintenanceEmails, micros(t.now), org, u.ID); err != nil {
			return err
		}
		return t.appendEvent(ctx, orgChain(org), actor, "user.update", "user:"+string(u.ID), "success", map[string]any{"fields": changed})
	})
	return u, err
}
