package throttle

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// identLock is the state of one identifier's failures.
type identLock struct {
	failures, locks int
	until           time.Time
	mailedAt        time.Time
}

func (s *Service) readIdent(ctx context.Context, t *sqlstore.Tx, scope string, ident []byte, lock bool) (identLock, error) {
	var l identLock
	var until, mailed sql.NullInt64
	q := `SELECT failures, locks, locked_until, mailed_at FROM login_failures WHERE scope = ? AND ident = ?`
	if lock {
		q += t.ForUpdate()
	}
	err := t.QueryRow(ctx, q, scope, ident).Scan(&l.failures, &l.locks, &until, &mailed)
	if errors.Is(err, sql.ErrNoRows) {
		return l, nil
	}
	l.until, l.mailedAt = sqlstore.NullMicros(until), sqlstore.NullMicros(mailed)
	return l, err
}

// identLockedUntil tells until when an identifier is locked (zero: not).
func (s *Service) identLockedUntil(ctx context.Context, scope string, ident []byte) (time.Time, error) {
	var until sql.NullInt64
	err := s.core.DB().ReadRow(ctx, `SELECT locked_until FROM login_failures WHERE scope = ? AND ident = ?`, scope, ident).Scan(&until)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil || !s.core.Now().Before(sqlstore.NullMicros(until)) {
		return time.Time{}, err
	}
	return sqlstore.NullMicros(until), nil
}

// identFailed counts one failed sign-in of an identifier (an account's, or
// a device cookie's): threshold failures in a row lock it for LockBase, and
// every further failure after a lock locks it again for twice as long, up
// to LockMax. It returns the state after the failure and whether a new lock
// started.
func (s *Service) identFailed(ctx context.Context, t *sqlstore.Tx, scope string, ident []byte, threshold int) (identLock, bool, error) {
	if _, err := t.Exec(ctx, `INSERT INTO login_failures (scope, ident, failures, locks, updated_at) VALUES (?, ?, 0, 0, ?)
		ON CONFLICT (scope, ident) DO NOTHING`, scope, ident, sqlstore.Micros(t.Now())); err != nil {
		return identLock{}, false, err
	}
	l, err := s.readIdent(ctx, t, scope, ident, true)
	if err != nil {
		return l, false, err
	}
	l.failures++
	started := false
	if l.failures >= threshold && !t.Now().Before(l.until) {
		l.locks++
		l.until = t.Now().Add(min(s.c.LockBase<<min(l.locks-1, 16), s.c.LockMax))
		started = true
	}
	var until any
	if !l.until.IsZero() {
		until = sqlstore.Micros(l.until)
	}
	_, err = t.Exec(ctx, `UPDATE login_failures SET failures = ?, locks = ?, locked_until = ?, updated_at = ? WHERE scope = ? AND ident = ?`,
		l.failures, l.locks, until, sqlstore.Micros(t.Now()), scope, ident)
	return l, started, err
}

// clearIdent forgets an identifier's failures (a successful sign-in, an
// unlock).
func (s *Service) clearIdent(ctx context.Context, t *sqlstore.Tx, scope string, ident []byte) (bool, error) {
	res, err := t.Exec(ctx, `DELETE FROM login_failures WHERE scope = ? AND ident = ?`, scope, ident)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// ClearIdent forgets the failures of a sign-in identifier of scope (an
// operator's new password lifts their lock) and reports whether there were
// any.
func (s *Service) ClearIdent(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, ident []byte) (bool, error) {
	return s.clearIdent(ctx, t, key(scope), ident)
}
