package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/mfa"
)

// Passkeys and security keys (WebAuthn, R17): a person registers several,
// each with a name, and uses one as the second step of a sign-in or of a
// re-authentication. Each ceremony's state is kept here, single-use, for
// mfa.CeremonyTTL, and bound to what started it: the session (registration,
// re-authentication) or the login challenge (second step).

const tabPasskeys = "passkeys"

// Ceremony purposes.
const (
	ceremonyRegister = "register"
	ceremonyLogin    = "login"
	ceremonyReauth   = "reauth"
)

// MaxPasskeyName is how long a passkey's name may be, in characters.
const MaxPasskeyName = 60

// Passkey is a registered passkey as its owner sees it: never its key.
type Passkey struct {
	ID         string
	Name       string
	CreatedAt  time.Time
	LastUsedAt time.Time // zero when never used
}

func passkeyNameField(org kluis.OrgID, id string) keys.FieldRef {
	return keys.FieldRef{Org: string(org), Table: tabPasskeys, Column: "name", Row: id}
}

var errNoPasskeys = kluis.Errorf(kluis.EForbidden, "passkeys need a public URL whose host is a name, not an IP address")

// relyingParty is the WebAuthn relying party of the public URL. It is a
// pure function of the configuration, cheap to make.
func (s *Store) relyingParty() (*mfa.RelyingParty, error) {
	rp, err := mfa.NewRelyingParty(s.publicURL)
	if err != nil {
		return nil, errNoPasskeys
	}
	return rp, nil
}

// storedPasskey is a passkeys row with its record.
type storedPasskey struct {
	id     string
	record []byte
}

// passkeyUser returns the person as the relying party sees them, with the
// records of their passkeys. The handle is the user id: opaque, and no
// address.
func (t *Tx) passkeyUser(ctx context.Context, org kluis.OrgID, user kluis.UserID) (mfa.PasskeyUser, []storedPasskey, error) {
	u, err := t.FindUser(ctx, org, user)
	if err != nil {
		return mfa.PasskeyUser{}, nil, err
	}
	rows, err := t.Query(ctx, `SELECT id, record FROM passkeys WHERE org_id = ? AND user_id = ? ORDER BY id`, org, user)
	if err != nil {
		return mfa.PasskeyUser{}, nil, err
	}
	defer rows.Close()
	var stored []storedPasskey
	pu := mfa.PasskeyUser{Handle: []byte(u.ID), Name: u.Email, DisplayName: u.Name}
	if pu.DisplayName == "" {
		pu.DisplayName = u.Email
	}
	for rows.Next() {
		var p storedPasskey
		if err := rows.Scan(&p.id, &p.record); err != nil {
			return mfa.PasskeyUser{}, nil, err
		}
		stored = append(stored, p)
		pu.Records = append(pu.Records, p.record)
	}
	return pu, stored, rows.Err()
}

// saveCeremony keeps a ceremony's state, replacing one of the same purpose
// bound to the same thing; lapsed ones of the person go.
func (t *Tx) saveCeremony(ctx context.Context, org kluis.OrgID, user kluis.UserID, purpose, bound string, data []byte) error {
	if _, err := t.Exec(ctx, `DELETE FROM passkey_ceremonies WHERE (purpose = ? AND bound_to = ?) OR (org_id = ? AND user_id = ? AND expires_at <= ?)`,
		purpose, bound, org, user, Micros(t.Now())); err != nil {
		return err
	}
	_, err := t.Exec(ctx, `INSERT INTO passkey_ceremonies (id, org_id, user_id, purpose, bound_to, data, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		kluis.NewID(t.Now()), org, user, purpose, bound, data, Micros(t.Now().Add(mfa.CeremonyTTL)))
	return err
}

// takeCeremony uses up the ceremony of purpose bound to bound: it is gone
// whatever the answer. Errors: not_found (none, or lapsed).
func (t *Tx) takeCeremony(ctx context.Context, org kluis.OrgID, user kluis.UserID, purpose, bound string) ([]byte, error) {
	var id string
	var data []byte
	var expires int64
	err := t.QueryRow(ctx, `SELECT id, data, expires_at FROM passkey_ceremonies WHERE org_id = ? AND user_id = ? AND purpose = ? AND bound_to = ?`+t.db.ForUpdate(),
		org, user, purpose, bound).Scan(&id, &data, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, kluis.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if _, err := t.Exec(ctx, `DELETE FROM passkey_ceremonies WHERE id = ?`, id); err != nil {
		return nil, err
	}
	if !t.Now().Before(FromMicros(expires)) {
		return nil, kluis.ErrNotFound
	}
	return data, nil
}

func sessionBound(actor kluis.Actor) string { return "session:" + string(actor.SessionID) }

func challengeBound(challengeID string) string { return "challenge:" + challengeID }

// mfaEnrolmentAllowed refuses a new second factor while the organisation's
// policy is off (R17); enrolled ones still count.
func (t *Tx) mfaEnrolmentAllowed(ctx context.Context, org kluis.OrgID, actor kluis.Actor, action string) error {
	policy, err := t.s.policy(ctx, t.tx, org)
	if err != nil {
		return err
	}
	if policy.MFA == kluis.MFAOff {
		return Deny(OrgChain(org), actor, action, UserTarget(actor.UserID),
			kluis.Errorf(kluis.EForbidden, "this organisation does not use two-step sign-in"))
	}
	return nil
}

// BeginPasskeyRegistration starts registering a passkey for the signed-in
// user and returns the options for navigator.credentials.create as JSON
// ({"publicKey":…}). It needs a fresh authentication. Errors:
// unauthenticated, reauth_required, forbidden (the policy is off, or the
// public URL cannot carry passkeys), conflict (too many passkeys).
func (s *Store) BeginPasskeyRegistration(ctx context.Context, org kluis.OrgID, actor kluis.Actor) ([]byte, error) {
	if !actor.IsOrgUser(org) {
		return nil, kluis.ErrUnauthenticated
	}
	if !kluis.FreshlyAuthenticated(actor, s.Now()) {
		return nil, s.reauthRequired(ctx, org, actor, "mfa.passkey_add")
	}
	rp, err := s.relyingParty()
	if err != nil {
		return nil, err
	}
	var options []byte
	err = s.Write(ctx, OrgChain(org), func(t *Tx) error {
		if err := t.mfaEnrolmentAllowed(ctx, org, actor, "mfa.passkey_add"); err != nil {
			return err
		}
		pu, _, err := t.passkeyUser(ctx, org, actor.UserID)
		if err != nil {
			return err
		}
		if len(pu.Records) >= mfa.MaxPasskeys {
			return kluis.Errorf(kluis.EConflict, "you have as many passkeys as allowed; remove one first")
		}
		var ceremony []byte
		if options, ceremony, err = rp.BeginRegistration(pu); err != nil {
			return err
		}
		return t.saveCeremony(ctx, org, actor.UserID, ceremonyRegister, sessionBound(actor), ceremony)
	})
	return options, err
}

// FinishPasskeyRegistration checks the browser's answer to the registration
// this session started (within mfa.CeremonyTTL) and keeps the new passkey
// under name. With it the person's first second factor, it also makes ten
// recovery codes and returns them (shown once); the person's other sessions
// end. A failed answer is recorded. Errors: unauthenticated, not_found
// (nothing started here), invalid_input (name, credential), forbidden.
func (s *Store) FinishPasskeyRegistration(ctx context.Context, org kluis.OrgID, actor kluis.Actor, name string, response []byte) (Passkey, []string, error) {
	if !actor.IsOrgUser(org) {
		return Passkey{}, nil, kluis.ErrUnauthenticated
	}
	name = strings.TrimSpace(name)
	switch n := utf8.RuneCountInString(name); {
	case n == 0:
		return Passkey{}, nil, kluis.Invalid(map[string]string{"name": "is required"})
	case n > MaxPasskeyName || !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return Passkey{}, nil, kluis.Invalid(map[string]string{"name": fmt.Sprintf("must be at most %d characters of text", MaxPasskeyName)})
	}
	rp, err := s.relyingParty()
	if err != nil {
		return Passkey{}, nil, err
	}
	var p Passkey
	var codes []string
	failed := false
	err = s.Write(ctx, OrgChain(org), func(t *Tx) error {
		ceremony, err := t.takeCeremony(ctx, org, actor.UserID, ceremonyRegister, sessionBound(actor))
		if err != nil {
			return err
		}
		if err := t.mfaEnrolmentAllowed(ctx, org, actor, "mfa.passkey_add"); err != nil {
			return err
		}
		pu, _, err := t.passkeyUser(ctx, org, actor.UserID)
		if err != nil {
			return err
		}
		c, err := rp.FinishRegistration(pu, ceremony, response)
		if errors.Is(err, mfa.ErrPasskey) {
			failed = true
			return nil // the ceremony is used up
		}
		if err != nil {
			return err
		}
		before, err := t.factorMethods(ctx, org, actor.UserID)
		if err != nil {
			return err
		}
		p = Passkey{ID: kluis.NewID(t.Now()), Name: name, CreatedAt: t.Now()}
		sealed, err := t.s.Seal(ctx, UserKey(org, actor.UserID), passkeyNameField(org, p.ID), []byte(name))
		if err != nil {
			return fmt.Errorf("seal passkey name: %w", err)
		}
		h := sha256.Sum256(c.ID)
		_, err = t.Exec(ctx, `INSERT INTO passkeys (id, org_id, user_id, credential_hash, name, record, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			p.ID, org, actor.UserID, h[:], sealed, c.Record, Micros(t.Now()))
		if err != nil {
			if IsUniqueViolation(err) {
				return kluis.Errorf(kluis.EConflict, "this passkey is registered already")
			}
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
		return t.Append(ctx, OrgChain(org), actor, "mfa.passkey_add", UserTarget(actor.UserID), "success",
			map[string]any{"passkey": p.ID, "sessions_ended": ended})
	})
	if err != nil {
		return Passkey{}, nil, err
	}
	if failed {
		if err := s.RecordRefusal(ctx, OrgChain(org), actor, "mfa.passkey_add", UserTarget(actor.UserID), "failure", nil); err != nil {
			return Passkey{}, nil, err
		}
		return Passkey{}, nil, kluis.Invalid(map[string]string{"credential": "could not be verified; try again"})
	}
	return p, codes, nil
}

// FindPasskeys lists the signed-in user's passkeys, oldest first. Errors:
// unauthenticated.
func (s *Store) FindPasskeys(ctx context.Context, org kluis.OrgID, actor kluis.Actor) ([]Passkey, error) {
	if !actor.IsOrgUser(org) {
		return nil, kluis.ErrUnauthenticated
	}
	var out []Passkey
	err := s.Read(ctx, func(t *Tx) error {
		rows, err := t.Query(ctx, `SELECT id, name, created_at, last_used_at FROM passkeys WHERE org_id = ? AND user_id = ? ORDER BY created_at, id`, org, actor.UserID)
		if err != nil {
			return err
		}
		defer rows.Close()
		type row struct {
			p      Passkey
			sealed []byte
		}
		var found []row
		for rows.Next() {
			var r row
			var created int64
			var used sql.NullInt64
			if err := rows.Scan(&r.p.ID, &r.sealed, &created, &used); err != nil {
				return err
			}
			r.p.CreatedAt, r.p.LastUsedAt = FromMicros(created), NullMicros(used)
			found = append(found, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		for _, r := range found {
			name, err := t.s.Open(ctx, passkeyNameField(org, r.p.ID), r.sealed)
			if err != nil {
				return err
			}
			r.p.Name = string(name)
			out = append(out, r.p)
		}
		return nil
	})
	return out, err
}

// DeletePasskey removes one of the signed-in user's passkeys; with it their
// last second factor, the recovery codes go too. It needs a fresh
// authentication; the person's other sessions end. Errors:
// unauthenticated, reauth_required, not_found.
func (s *Store) DeletePasskey(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id string) error {
	if !actor.IsOrgUser(org) {
		return kluis.ErrUnauthenticated
	}
	if !kluis.ValidID(id) {
		return kluis.ErrNotFound
	}
	if !kluis.FreshlyAuthenticated(actor, s.Now()) {
		return s.reauthRequired(ctx, org, actor, "mfa.passkey_remove")
	}
	return s.Write(ctx, OrgChain(org), func(t *Tx) error {
		res, err := t.Exec(ctx, `DELETE FROM passkeys WHERE org_id = ? AND user_id = ? AND id = ?`, org, actor.UserID, id)
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
		return t.Append(ctx, OrgChain(org), actor, "mfa.passkey_remove", UserTarget(actor.UserID), "success",
			map[string]any{"passkey": id, "sessions_ended": ended})
	})
}

// dropRecoveryWithoutFactor removes the recovery codes and the wrong-answer
// count of a person who has no second factor left.
func (t *Tx) dropRecoveryWithoutFactor(ctx context.Context, org kluis.OrgID, user kluis.UserID) error {
	var n int
	if err := t.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM user_factors WHERE org_id = ? AND user_id = ? AND confirmed_at IS NOT NULL)
		+ (SELECT COUNT(*) FROM passkeys WHERE org_id = ? AND user_id = ?)`, org, user, org, user).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := t.Exec(ctx, `DELETE FROM recovery_codes WHERE org_id = ? AND user_id = ?`, org, user); err != nil {
		return err
	}
	_, err := t.Exec(ctx, `DELETE FROM factor_guards WHERE org_id = ? AND user_id = ?`, org, user)
	return err
}

// BeginPasskeyLogin starts the passkey assertion of a two-step login's
// second step: the options for navigator.credentials.get as JSON. The
// ceremony is bound to the challenge. Every failure (no such challenge,
// lapsed, no passkey) gets the same unauthenticated. Errors:
// unauthenticated, forbidden (the public URL cannot carry passkeys).
func (s *Store) BeginPasskeyLogin(ctx context.Context, org kluis.OrgID, challenge string) ([]byte, error) {
	// Anyone may call this: a blocked address is refused, unless the
	// password step came from a trusted browser (DESIGN §6).
	if err := s.gateSecondStep(ctx, org, challenge); err != nil {
		return nil, err
	}
	rp, err := s.relyingParty()
	if err != nil {
		return nil, err
	}
	if !ValidTokenShape(challenge) {
		return nil, kluis.ErrUnauthenticated
	}
	var options []byte
	err = s.Write(ctx, "", func(t *Tx) error {
		var id string
		var user kluis.UserID
		var expires int64
		err := t.QueryRow(ctx, `SELECT id, user_id, expires_at FROM login_challenges WHERE org_id = ? AND token_hash = ?`, org, TokenHash(challenge)).Scan(&id, &user, &expires)
		if errors.Is(err, sql.ErrNoRows) || err == nil && !t.Now().Before(FromMicros(expires)) {
			return kluis.ErrUnauthenticated
		}
		if err != nil {
			return err
		}
		pu, _, err := t.passkeyUser(ctx, org, user)
		if err != nil {
			return err
		}
		if len(pu.Records) == 0 {
			return kluis.ErrUnauthenticated
		}
		var ceremony []byte
		if options, ceremony, err = rp.BeginLogin(pu); err != nil {
			return err
		}
		return t.saveCeremony(ctx, org, user, ceremonyLogin, challengeBound(id), ceremony)
	})
	return options, err
}

// BeginPasskeyReauth starts the passkey assertion of a re-authentication
// of the signed-in user: the options for navigator.credentials.get as
// JSON, the ceremony bound to the session. Errors: unauthenticated,
// not_found (no passkey), forbidden.
func (s *Store) BeginPasskeyReauth(ctx context.Context, org kluis.OrgID, actor kluis.Actor) ([]byte, error) {
	if !actor.IsOrgUser(org) {
		return nil, kluis.ErrUnauthenticated
	}
	rp, err := s.relyingParty()
	if err != nil {
		return nil, err
	}
	var options []byte
	err = s.Write(ctx, "", func(t *Tx) error {
		pu, _, err := t.passkeyUser(ctx, org, actor.UserID)
		if err != nil {
			return err
		}
		if len(pu.Records) == 0 {
			return kluis.ErrNotFound
		}
		var ceremony []byte
		if options, ceremony, err = rp.BeginLogin(pu); err != nil {
			return err
		}
		return t.saveCeremony(ctx, org, actor.UserID, ceremonyReauth, sessionBound(actor), ceremony)
	})
	return options, err
}

// checkPasskey checks an assertion against the ceremony of purpose bound to
// bound and uses the ceremony up. A sign count that went back is refused
// and recorded as mfa.passkey_cloned.
func (t *Tx) checkPasskey(ctx context.Context, org kluis.OrgID, user kluis.UserID, purpose, bound, assertion string) (bool, error) {
	rp, err := t.s.relyingParty()
	if err != nil {
		return false, nil
	}
	ceremony, err := t.takeCeremony(ctx, org, user, purpose, bound)
	if errors.Is(err, kluis.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	pu, stored, err := t.passkeyUser(ctx, org, user)
	if err != nil {
		return false, err
	}
	c, err := rp.FinishLogin(pu, ceremony, []byte(assertion))
	switch {
	case errors.Is(err, mfa.ErrPasskey):
		return false, nil
	case errors.Is(err, mfa.ErrSignCountRegressed):
		return false, t.Append(ctx, OrgChain(org), kluis.Actor{}, "mfa.passkey_cloned", UserTarget(user), "failure",
			map[string]any{"passkey": passkeyIDOf(stored, c.ID)})
	case err != nil:
		return false, err
	}
	id := passkeyIDOf(stored, c.ID)
	if id == "" {
		return false, nil
	}
	_, err = t.Exec(ctx, `UPDATE passkeys SET record = ?, last_used_at = ? WHERE org_id = ? AND id = ?`, c.Record, Micros(t.Now()), org, id)
	return err == nil, err
}

// passkeyIDOf returns the id of the stored passkey with credential id cred.
func passkeyIDOf(stored []storedPasskey, cred []byte) string {
	for _, p := range stored {
		if id, err := mfa.CredentialID(p.record); err == nil && string(id) == string(cred) {
			return p.id
		}
	}
	return ""
}

// FindChallengeMethods returns the methods a login challenge may be
// completed with, for the second step's page. Errors: unauthenticated (no
// such challenge, or lapsed).
func (s *Store) FindChallengeMethods(ctx context.Context, org kluis.OrgID, challenge string) ([]string, error) {
	if !ValidTokenShape(challenge) {
		return nil, kluis.ErrUnauthenticated
	}
	var methods []string
	err := s.Read(ctx, func(t *Tx) error {
		var user kluis.UserID
		var expires int64
		err := t.QueryRow(ctx, `SELECT user_id, expires_at FROM login_challenges WHERE org_id = ? AND token_hash = ?`, org, TokenHash(challenge)).Scan(&user, &expires)
		if errors.Is(err, sql.ErrNoRows) || err == nil && !t.Now().Before(FromMicros(expires)) {
			return kluis.ErrUnauthenticated
		}
		if err != nil {
			return err
		}
		methods, err = t.factorMethods(ctx, org, user)
		return err
	})
	return methods, err
}
