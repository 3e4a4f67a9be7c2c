package throttle

import (
	"context"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/accounts"
)

// count counts a throttling event in the metrics (refusals that write
// nothing; events of a transaction are counted by it after commit).
func (s *Service) count(kind string) { s.core.Observe().Throttled(kind) }

// AnonymousFailure records a failed request of an unauthenticated endpoint
// (a wrong token or code, a reset request) in chain and counts it against
// the client address, in one transaction. It returns answer, or
// too_many_requests once the address is blocked.
func (s *Service) AnonymousFailure(ctx context.Context, from kluis.Origin, chain, action, target string, details map[string]any, answer error) error {
	var until time.Time
	err := s.core.Write(ctx, "", func(t *sqlstore.Tx) error {
		if err := t.Append(ctx, chain, kluis.Actor{From: from}, action, target, "failure", details); err != nil {
			return err
		}
		var err error
		until, err = s.AddressFailed(ctx, t, from, chain)
		return err
	})
	if err != nil {
		return err
	}
	if !until.IsZero() {
		return TooMany(s.core.Now(), until)
	}
	return answer
}

// Failure is one failed password sign-in to record.
type Failure struct {
	Scope  kluis.Scope
	Target string // the account when it exists, else ""
	// User is set for an existing, active user of an organisation: a lock
	// that starts mails them an unlock link.
	User   kluis.UserID
	Reason string
	Ident  []byte // the identifier tried
	// Gate is what GateSignIn decided: a trusted device's entry is counted
	// instead of the identifier.
	Gate Gate
	// AlreadyLocked is set when the attempt was refused by a lock in force.
	AlreadyLocked time.Time
}

// SignInFailed records a failed sign-in and counts it, in one transaction:
// against the identifier (or the device entry that tried), the client
// address and the organisation's failure rate. A lock or block that starts
// is recorded, counted and, for a lock of an existing account, mailed to the
// owner with a link to lift it (at most once an hour). The answer is
// unauthenticated, or too_many_requests while the identifier, the device
// entry or (for unknown browsers) the address is locked — the same for
// existing and unknown accounts.
func (s *Service) SignInFailed(ctx context.Context, from kluis.Origin, f Failure) error {
	chain := accounts.Chain(f.Scope)
	var until time.Time
	err := s.core.Write(ctx, "", func(t *sqlstore.Tx) error {
		until = time.Time{}
		details := map[string]any{"reason": f.Reason}
		if f.Gate.Device != nil {
			details["device"] = true
		}
		if err := t.Append(ctx, chain, kluis.Actor{From: from}, accounts.Action(f.Scope, "auth.login_failed"), f.Target, "failure", details); err != nil {
			return err
		}
		blocked, err := s.AddressFailed(ctx, t, from, chain)
		if err != nil {
			return err
		}
		if f.Gate.Device == nil {
			until = blocked
		}
		if !f.AlreadyLocked.IsZero() {
			until = later(until, f.AlreadyLocked)
		} else if f.Ident != nil {
			counted := f.Ident
			if f.Gate.Device != nil {
				counted = f.Gate.Device
			}
			l, started, err := s.identFailed(ctx, t, key(f.Scope), counted, f.Gate.Threshold)
			if err != nil {
				return err
			}
			if started {
				if err := s.identLocked(ctx, t, from, f, l); err != nil {
					return err
				}
			}
			if t.Now().Before(l.until) {
				until = later(until, l.until)
			}
		}
		if f.Scope.Realm == kluis.RealmOrg {
			return s.orgSignIns(ctx, t, from, f.Scope.Org, false)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !until.IsZero() {
		return TooMany(s.core.Now(), until)
	}
	return kluis.ErrUnauthenticated
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// identLocked records a lock that started, and mails the owner of an
// existing account a link to lift it, at most once an hour.
func (s *Service) identLocked(ctx context.Context, t *sqlstore.Tx, from kluis.Origin, f Failure, l identLock) error {
	t.Count("lock")
	minutes := int(l.until.Sub(t.Now()) / time.Minute)
	details := map[string]any{"minutes": minutes, "lock": l.locks}
	if f.Gate.Device != nil {
		details["device"] = true
	}
	if err := t.Append(ctx, accounts.Chain(f.Scope), kluis.Actor{From: from}, accounts.Action(f.Scope, "auth.locked"), f.Target, "success", details); err != nil {
		return err
	}
	if f.User == "" || f.Gate.Device != nil || t.Now().Sub(l.mailedAt) < time.Hour {
		return nil
	}
	if _, err := t.Exec(ctx, `UPDATE login_failures SET mailed_at = ? WHERE scope = ? AND ident = ?`, sqlstore.Micros(t.Now()), key(f.Scope), f.Ident); err != nil {
		return err
	}
	return s.mailUnlockLink(ctx, t, f.Scope.Org, f.User)
}
