package factors

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/mfa"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/accounts"
)

// Passkeys and security keys (WebAuthn, R17), for both realms. A person may
// register several, each with a name they chose, sealed under their key
// (an operator's under the platform key). The credential record (id,
// public key, sign count, flags) holds no secret. A ceremony under way is
// kept single-use for five minutes, bound to what started it.

const tabPasskeys = "passkeys"

func passkeyNameField(scope kluis.Scope, id string) keys.FieldRef {
	return keys.FieldRef{Org: string(scope.Org), Table: tabPasskeys, Column: "name", Row: id}
}

// storedPasskey is a passkeys row with its record.
type storedPasskey struct {
	id     string
	record []byte
}

// passkeyUser returns the account as the relying party sees it, with the
// records of its passkeys. The handle is the account's id: opaque, and no
// address.
func (s *Service) passkeyUser(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject string) (mfa.PasskeyUser, []storedPasskey, error) {
	a, err := accounts.Find(ctx, t, s.core, scope, subject)
	if err != nil {
		return mfa.PasskeyUser{}, nil, err
	}
	rows, err := t.Query(ctx, `SELECT id, record FROM passkeys WHERE org_id = ? AND subject = ? ORDER BY id`, scope.Org, subject)
	if err != nil {
		return mfa.PasskeyUser{}, nil, err
	}
	defer rows.Close()
	var stored []storedPasskey
	pu := mfa.PasskeyUser{Handle: []byte(a.ID), Name: a.Email, DisplayName: a.Name}
	if pu.DisplayName == "" {
		pu.DisplayName = a.Email
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
// bound to the same thing; lapsed ones of the account go.
func saveCeremony(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject, purpose, bound string, data []byte) error {
	if _, err := t.Exec(ctx, `DELETE FROM passkey_ceremonies WHERE (purpose = ? AND bound_to = ?) OR (org_id = ? AND subject = ? AND expires_at <= ?)`,
		purpose, bound, scope.Org, subject, sqlstore.Micros(t.Now())); err != nil {
		return err
	}
	user, operator := accounts.Owner(scope, subject)
	_, err := t.Exec(ctx, `INSERT INTO passkey_ceremonies (id, org_id, subject, user_id, operator_id, purpose, bound_to, data, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		kluis.NewID(t.Now()), scope.Org, subject, user, operator, purpose, bound, data, sqlstore.Micros(t.Now().Add(mfa.CeremonyTTL)))
	return err
}

// takeCeremony uses up the ceremony of purpose bound to bound: it is gone
// whatever the answer. Errors: not_found (none, or lapsed).
func takeCeremony(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject, purpose, bound string) ([]byte, error) {
	var id string
	var data []byte
	var expires int64
	err := t.QueryRow(ctx, `SELECT id, data, expires_at FROM passkey_ceremonies WHERE org_id = ? AND subject = ? AND purpose = ? AND bound_to = ?`+t.ForUpdate(),
		scope.Org, subject, purpose, bound).Scan(&id, &data, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, kluis.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if _, err := t.Exec(ctx, `DELETE FROM passkey_ceremonies WHERE id = ?`, id); err != nil {
		return nil, err
	}
	if !t.Now().Before(sqlstore.FromMicros(expires)) {
		return nil, kluis.ErrNotFound
	}
	return data, nil
}

// beginRegistration starts registering a passkey: the options for
// navigator.credentials.create as JSON ({"publicKey":…}), the ceremony
// bound to the session.
func (s *Service) beginRegistration(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, actor kluis.Actor) (kluis.FactorEnrolment, error) {
	rp, err := s.relyingParty()
	if err != nil {
		return kluis.FactorEnrolment{}, err
	}
	subject := scope.Subject(actor)
	pu, _, err := s.passkeyUser(ctx, t, scope, subject)
	if err != nil {
		return kluis.FactorEnrolment{}, err
	}
	if len(pu.Records) >= mfa.MaxPasskeys {
		return kluis.FactorEnrolment{}, kluis.Errorf(kluis.EConflict, "you have as many passkeys as allowed; remove one first")
	}
	options, ceremony, err := rp.BeginRegistration(pu)
	if err != nil {
		return kluis.FactorEnrolment{}, err
	}
	return kluis.FactorEnrolment{Options: options}, saveCeremony(ctx, t, scope, subject, purposeRegister, SessionBound(actor), ceremony)
}

// checkPasskeyName checks the name its owner gives a passkey.
func checkPasskeyName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch n := utf8.RuneCountInString(name); {
	case n == 0:
		return "", kluis.Invalid(map[string]string{"name": "is required"})
	case n > kluis.MaxPasskeyName || !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", kluis.Invalid(map[string]string{"name": fmt.Sprintf("must be at most %d characters of text", kluis.MaxPasskeyName)})
	}
	return name, nil
}

// finishRegistration checks the browser's answer to the registration this
// session started and keeps the passkey. ok is false when the answer could
// not be verified (the ceremony is used up all the same).
func (s *Service) finishRegistration(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, actor kluis.Actor, name string, response []byte) (p kluis.Passkey, ok bool, err error) {
	rp, err := s.relyingParty()
	if err != nil {
		return p, false, err
	}
	subject := scope.Subject(actor)
	ceremony, err := takeCeremony(ctx, t, scope, subject, purposeRegister, SessionBound(actor))
	if err != nil {
		return p, false, err
	}
	pu, _, err := s.passkeyUser(ctx, t, scope, subject)
	if err != nil {
		return p, false, err
	}
	c, err := rp.FinishRegistration(pu, ceremony, response)
	if errors.Is(err, mfa.ErrPasskey) {
		return p, false, nil
	}
	if err != nil {
		return p, false, err
	}
	p = kluis.Passkey{ID: kluis.NewID(t.Now()), Name: name, CreatedAt: t.Now()}
	sealed, err := s.core.Seal(ctx, accounts.SecretKey(scope, subject), passkeyNameField(scope, p.ID), []byte(name))
	if err != nil {
		return p, false, fmt.Errorf("seal passkey name: %w", err)
	}
	h := sha256.Sum256(c.ID)
	user, operator := accounts.Owner(scope, subject)
	_, err = t.Exec(ctx, `INSERT INTO passkeys (id, org_id, subject, user_id, operator_id, credential_hash, name, record, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, scope.Org, subject, user, operator, h[:], sealed, c.Record, sqlstore.Micros(t.Now()))
	if sqlstore.IsUniqueViolation(err) {
		return p, false, kluis.Errorf(kluis.EConflict, "this passkey is registered already")
	}
	return p, err == nil, err
}

// findPasskeys lists the account's passkeys, oldest first.
func (s *Service) findPasskeys(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject string) ([]kluis.Passkey, error) {
	rows, err := t.Query(ctx, `SELECT id, name, created_at, last_used_at FROM passkeys WHERE org_id = ? AND subject = ? ORDER BY created_at, id`, scope.Org, subject)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type row struct {
		p      kluis.Passkey
		sealed []byte
	}
	var found []row
	for rows.Next() {
		var r row
		var created int64
		var used sql.NullInt64
		if err := rows.Scan(&r.p.ID, &r.sealed, &created, &used); err != nil {
			return nil, err
		}
		r.p.CreatedAt, r.p.LastUsedAt = sqlstore.FromMicros(created), sqlstore.NullMicros(used)
		found = append(found, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	var out []kluis.Passkey
	for _, r := range found {
		name, err := s.core.Open(ctx, passkeyNameField(scope, r.p.ID), r.sealed)
		if err != nil {
			return nil, err
		}
		r.p.Name = string(name)
		out = append(out, r.p)
	}
	return out, nil
}

// BeginAssertion starts a passkey assertion of the account for purpose
// bound to bound: the options for navigator.credentials.get as JSON. It
// reports false when the account has no passkey. Errors: forbidden (the
// public URL cannot carry passkeys).
func (s *Service) BeginAssertion(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject, purpose, bound string) ([]byte, bool, error) {
	rp, err := s.relyingParty()
	if err != nil {
		return nil, false, err
	}
	pu, _, err := s.passkeyUser(ctx, t, scope, subject)
	if err != nil {
		return nil, false, err
	}
	if len(pu.Records) == 0 {
		return nil, false, nil
	}
	options, ceremony, err := rp.BeginLogin(pu)
	if err != nil {
		return nil, false, err
	}
	return options, true, saveCeremony(ctx, t, scope, subject, purpose, bound, ceremony)
}

// checkPasskey checks an assertion against the ceremony of purpose bound to
// bound and uses the ceremony up. A sign count that went back is refused
// and recorded as mfa.passkey_cloned.
func (s *Service) checkPasskey(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, from kluis.Origin, subject, purpose, bound, assertion string) (bool, error) {
	rp, err := s.relyingParty()
	if err != nil {
		return false, nil
	}
	ceremony, err := takeCeremony(ctx, t, scope, subject, purpose, bound)
	if errors.Is(err, kluis.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	pu, stored, err := s.passkeyUser(ctx, t, scope, subject)
	if err != nil {
		return false, err
	}
	c, err := rp.FinishLogin(pu, ceremony, []byte(assertion))
	switch {
	case errors.Is(err, mfa.ErrPasskey):
		return false, nil
	case errors.Is(err, mfa.ErrSignCountRegressed):
		return false, t.Append(ctx, accounts.Chain(scope), kluis.Actor{From: from}, accounts.Action(scope, "mfa.passkey_cloned"), accounts.Target(scope, subject), "failure",
			map[string]any{"passkey": passkeyIDOf(stored, c.ID)})
	case err != nil:
		return false, err
	}
	id := passkeyIDOf(stored, c.ID)
	if id == "" {
		return false, nil
	}
	_, err = t.Exec(ctx, `UPDATE passkeys SET record = ?, last_used_at = ? WHERE org_id = ? AND id = ?`, c.Record, sqlstore.Micros(t.Now()), scope.Org, id)
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
