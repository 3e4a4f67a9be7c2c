// Package factors is the second-factor core (R17, R18) for both realms:
// authenticator apps (TOTP), codes by SMS to a verified number, passkeys
// (WebAuthn) and recovery codes. Every kind goes through one life cycle —
// a set-up pending in the session that started it, confirmed by a first
// proof; each proof used once; a growing lock after wrong answers, across
// methods and challenges; removal by the owner (fresh authentication, other
// sessions end); reset by someone else — and one implementation serves an
// organisation's users and the operator's staff, told apart by the
// kluis.Scope (see package accounts for what differs).
//
// The files: lifecycle.go (the life cycle, kluis.FactorService), check.go
// (a proof at sign-in or re-authentication, and the lock), recovery.go,
// totp.go, sms.go and passkeys.go (the kinds), reset.go (someone else's).
package factors

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"net/url"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/mfa"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/accounts"
)

// Service is the second-factor core.
type Service struct {
	core *sqlstore.Core
}

// New returns the second-factor core over core.
func New(core *sqlstore.Core) *Service { return &Service{core: core} }

var _ kluis.FactorService = (*Service)(nil)

// Ceremony purposes: what a passkey ceremony or an SMS code is for.
const (
	purposeRegister = "register"
	purposeLogin    = "login"
	purposeReauth   = "reauth"
)

// SessionBound binds a ceremony or code to the actor's session (a set-up,
// a re-authentication).
func SessionBound(actor kluis.Actor) string { return "session:" + string(actor.SessionID) }

// ChallengeBound binds a ceremony or code to a login challenge (the second
// step).
func ChallengeBound(challengeID string) string { return "challenge:" + challengeID }

// Labels of the tables named in the associated data of factor secrets. They
// are part of the stored format: a user's secrets say user_factors, an
// operator's operator_factors, as when each realm had a table of its own.
const (
	labelUserFactors     = "user_factors"
	labelOperatorFactors = "operator_factors"
)

// secretField is where a factor row's sealed value lives, for the
// associated data.
func secretField(scope kluis.Scope, id, column string) keys.FieldRef {
	if scope.Realm == kluis.RealmOperator {
		return keys.FieldRef{Table: labelOperatorFactors, Column: column, Row: id}
	}
	return keys.FieldRef{Org: string(scope.Org), Table: labelUserFactors, Column: column, Row: id}
}

// Methods lists the confirmed methods of an account: "totp", "sms" (codes
// to a verified number), "webauthn" (a passkey or security key), and then
// "recovery" when codes are left.
func Methods(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject string) ([]string, error) {
	var totp, texts, passkeys int
	if err := t.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM factors WHERE org_id = ? AND subject = ? AND kind = 'totp' AND confirmed_at IS NOT NULL),
		(SELECT COUNT(*) FROM factors WHERE org_id = ? AND subject = ? AND kind = 'sms' AND confirmed_at IS NOT NULL),
		(SELECT COUNT(*) FROM passkeys WHERE org_id = ? AND subject = ?)`,
		scope.Org, subject, scope.Org, subject, scope.Org, subject).Scan(&totp, &texts, &passkeys); err != nil {
		return nil, err
	}
	var methods []string
	if totp > 0 {
		methods = append(methods, string(kluis.FactorTOTP))
	}
	if texts > 0 {
		methods = append(methods, string(kluis.FactorSMS))
	}
	if passkeys > 0 {
		methods = append(methods, string(kluis.FactorPasskey))
	}
	if len(methods) == 0 {
		return nil, nil
	}
	n, err := recoveryLeft(ctx, t, scope, subject)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		methods = append(methods, kluis.MethodRecovery)
	}
	return methods, nil
}

// factorRow is a factors row of a kind with its secret opened.
type factorRow struct {
	id        string
	secret    string
	lastStep  int64
	confirmed bool
	sessionID string    // of a pending set-up: the session that started it
	createdAt time.Time // of a pending set-up
}

// pendingFor reports whether f is a set-up that actor's session started and
// that has not lapsed.
func (f factorRow) pendingFor(actor kluis.Actor, now time.Time) bool {
	return !f.confirmed && f.sessionID != "" && f.sessionID == string(actor.SessionID) && now.Before(f.createdAt.Add(kluis.PendingFactorTTL))
}

// findFactor loads the account's factors row of the kind, locking it on
// PostgreSQL. Errors: not_found.
func (s *Service) findFactor(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject string, kind kluis.FactorKind) (factorRow, error) {
	var f factorRow
	var sealed []byte
	var confirmed sql.NullInt64
	var session sql.NullString
	var created int64
	err := t.QueryRow(ctx, `SELECT id, secret, last_step, confirmed_at, session_id, created_at FROM factors
		WHERE org_id = ? AND subject = ? AND kind = ?`+t.ForUpdate(), scope.Org, subject, string(kind)).
		Scan(&f.id, &sealed, &f.lastStep, &confirmed, &session, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return f, kluis.ErrNotFound
	}
	if err != nil {
		return f, err
	}
	p, err := s.core.Open(ctx, secretField(scope, f.id, "secret"), sealed)
	if err != nil {
		return f, err
	}
	f.secret, f.confirmed, f.sessionID, f.createdAt = string(p), confirmed.Valid, session.String, sqlstore.FromMicros(created)
	return f, nil
}

// pendFactor replaces the account's factor of the kind by a pending set-up
// with the secret, bound to the actor's session.
func (s *Service) pendFactor(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, actor kluis.Actor, kind kluis.FactorKind, secret string) error {
	subject := scope.Subject(actor)
	id := kluis.NewID(t.Now())
	sealed, err := s.core.Seal(ctx, accounts.SecretKey(scope, subject), secretField(scope, id, "secret"), []byte(secret))
	if err != nil {
		return err
	}
	if err := s.keepRecoveryKey(ctx, t, scope, subject); err != nil {
		return err
	}
	if _, err := t.Exec(ctx, `DELETE FROM factors WHERE org_id = ? AND subject = ? AND kind = ?`, scope.Org, subject, string(kind)); err != nil {
		return err
	}
	user, operator := accounts.Owner(scope, subject)
	_, err = t.Exec(ctx, `INSERT INTO factors (id, org_id, subject, user_id, operator_id, kind, secret, last_step, created_at, session_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`, id, scope.Org, subject, user, operator, string(kind), sealed, sqlstore.Micros(t.Now()), string(actor.SessionID))
	return err
}

// issuer labels an authenticator app's entry: short, so that the QR code
// always fits.
func issuer(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope) (string, error) {
	if scope.Realm == kluis.RealmOperator {
		return "kluis operator", nil
	}
	o, err := t.FindOrg(ctx, scope.Org)
	return "kluis " + o.Slug, err
}

var errNoPasskeys = kluis.Errorf(kluis.EForbidden, "passkeys need a public URL whose host is a name, not an IP address")

// relyingParty is the WebAuthn relying party of the public URL. It is a
// pure function of the configuration, cheap to make.
func (s *Service) relyingParty() (*mfa.RelyingParty, error) {
	rp, err := mfa.NewRelyingParty(s.core.PublicURL())
	if err != nil {
		return nil, errNoPasskeys
	}
	return rp, nil
}

// smsHost is the site's host for the origin-bound line of a text message,
// or "" when the public URL's host is an address.
func (s *Service) smsHost() string {
	u, err := url.Parse(s.core.PublicURL())
	if err != nil || u.Hostname() == "" || net.ParseIP(u.Hostname()) != nil {
		return ""
	}
	return u.Hostname()
}
