package throttle

import (
	"context"
	"errors"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Gate is what the throttle decided before a password is checked.
type Gate struct {
	// Device is a trusted device's failure identifier, or nil: the browser
	// holds a valid device entry for the identifier.
	Device []byte
	// Locked is the identifier's lock in force (unknown browsers only).
	Locked time.Time
	// Threshold is how many failures in a row lock.
	Threshold int
}

// ErrLockedMeanwhile ends a sign-in transaction that found the identifier
// locked by attempts that raced it.
var ErrLockedMeanwhile = errors.New("identifier locked meanwhile")

// GateSignIn applies the address block and the identifier lock to a
// password sign-in, unless the browser holds a valid device entry for the
// identifier (DESIGN §6). A blocked address is refused at once (a flood
// costs one read per request); a locked identifier is reported, for the
// caller to record. Errors: too_many_requests.
func (s *Service) GateSignIn(ctx context.Context, from kluis.Origin, scope kluis.Scope, ident []byte) (Gate, error) {
	g := Gate{Threshold: kluis.DefaultPolicy.LockoutThreshold}
	dev, err := s.trustedDevice(ctx, from, key(scope), ident)
	if err != nil {
		return g, err
	}
	if err := s.gateAddressBlock(ctx, from, dev != nil); err != nil {
		return g, err
	}
	g.Device = dev
	if scope.Realm == kluis.RealmOrg {
		p, err := s.core.Policy(ctx, scope.Org)
		if err != nil {
			return g, err
		}
		g.Threshold = p.LockoutThreshold
	}
	if dev == nil {
		g.Locked, err = s.identLockedUntil(ctx, key(scope), ident)
	}
	return g, err
}

// LockedMeanwhile reads, inside a sign-in's transaction, the lock of the
// way the sign-in came in — the device entry's when it came with one, else
// the identifier's — and returns its end when it is in force.
func (s *Service) LockedMeanwhile(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, ident []byte, g Gate) (time.Time, error) {
	counted := ident
	if g.Device != nil {
		counted = g.Device
	}
	l, err := s.readIdent(ctx, t, key(scope), counted, true)
	if err != nil || !t.Now().Before(l.until) {
		return time.Time{}, err
	}
	return l.until, nil
}

// AccountIdent is the identifier of an existing account (Ident of its
// address), read in the transaction.
func (s *Service) AccountIdent(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject, email string) ([]byte, error) {
	if scope.Realm == kluis.RealmOperator {
		return s.mac(ctx, "operator", email)
	}
	var idx []byte
	err := t.QueryRow(ctx, `SELECT email_index FROM users WHERE org_id = ? AND id = ?`, scope.Org, subject).Scan(&idx)
	return idx, err
}

// SignedIn settles the throttle after a completed sign-in to the
// identifier: the counter of the way it came in (the device entry's, or
// the identifier's for an unknown browser) starts over, the organisation's
// rate counts a success, and the browser gets a fresh device entry for the
// account in sess.
func (s *Service) SignedIn(ctx context.Context, t *sqlstore.Tx, from kluis.Origin, scope kluis.Scope, ident []byte, sess *kluis.Session) error {
	dev, err := s.trustedDevice(ctx, from, key(scope), ident)
	if err != nil {
		return err
	}
	counted := ident
	if dev != nil {
		counted = dev
	}
	if _, err := s.clearIdent(ctx, t, key(scope), counted); err != nil {
		return err
	}
	if scope.Realm == kluis.RealmOrg {
		if err := s.orgSignIns(ctx, t, from, scope.Org, true); err != nil {
			return err
		}
	}
	if sess.DeviceCookie, err = s.newDeviceCookie(ctx, from, key(scope), ident); err != nil {
		return err
	}
	sess.DeviceExpires = t.Now().Add(s.c.DeviceLifetime)
	return nil
}
