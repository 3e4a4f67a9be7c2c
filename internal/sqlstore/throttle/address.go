package throttle

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/netip"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// addressKey is the keyed hash a client address is counted under (an IPv6
// address by its /64, the block one subscriber usually gets) and its short
// public reference for the operator's commands. No row holds an address.
func (s *Service) addressKey(ctx context.Context, addr netip.Addr) ([]byte, string, error) {
	k, err := s.mac(ctx, "address", ClientBlock(addr))
	if err != nil {
		return nil, "", err
	}
	return k, hex.EncodeToString(k[:6]), nil
}

// ClientBlock is the block of addresses one client is counted by: an IPv4
// address, or an IPv6 address's /64 (what one subscriber usually gets).
func ClientBlock(addr netip.Addr) string {
	addr = addr.Unmap()
	if addr.Is6() {
		return netip.PrefixFrom(addr, 64).Masked().String()
	}
	return addr.String()
}

// AddressRef is the operator's reference of a client address, as shown by
// `kluis throttle list` (for lifting the block of an address someone names).
func (s *Service) AddressRef(ctx context.Context, addr netip.Addr) (string, error) {
	_, ref, err := s.addressKey(ctx, addr.Unmap())
	return ref, err
}

// GateAddress refuses a request from a blocked client address before any
// work is done (DESIGN §6). Requests without an address (the command line)
// are not throttled here. Errors: too_many_requests.
func (s *Service) GateAddress(ctx context.Context, from kluis.Origin) error {
	return s.gateAddressBlock(ctx, from, false)
}

// gateAddressBlock is GateAddress; with permanentOnly (a trusted device),
// only a block the operator made permanent refuses.
func (s *Service) gateAddressBlock(ctx context.Context, from kluis.Origin, permanentOnly bool) error {
	addr := from.Client
	if !addr.IsValid() {
		return nil
	}
	key, _, err := s.addressKey(ctx, addr)
	if err != nil {
		return err
	}
	var until sql.NullInt64
	var permanent bool
	err = s.core.DB().ReadRow(ctx, `SELECT blocked_until, permanent FROM address_failures WHERE addr_key = ?`, key).Scan(&until, &permanent)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	now := s.core.Now()
	switch {
	case permanent:
		s.count("address_blocked")
		return TooMany(now, now.Add(24*time.Hour))
	case !permanentOnly && until.Valid && now.Before(sqlstore.FromMicros(until.Int64)):
		s.count("address_blocked")
		return TooMany(now, sqlstore.FromMicros(until.Int64))
	}
	return nil
}

// GateSecondStep applies the address block to the second step of a
// sign-in: a challenge whose password step came with a valid device entry
// is exempt, as that step was (only a permanent block holds), so an
// attacker sharing the owner's address cannot stop the owner at the second
// step. Errors: too_many_requests.
func (s *Service) GateSecondStep(ctx context.Context, from kluis.Origin, scope kluis.Scope, challenge string) error {
	trusted := false
	if sqlstore.ValidTokenShape(challenge) {
		err := s.core.DB().ReadRow(ctx, `SELECT trusted FROM challenges WHERE org_id = ? AND token_hash = ?`, scope.Org, sqlstore.TokenHash(challenge)).Scan(&trusted)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	}
	return s.gateAddressBlock(ctx, from, trusted)
}

// AddressFailed counts one failure of the request's client address in its
// sliding window (the current window plus the previous one, weighted by how
// much of it still overlaps) and blocks the address when the window
// overflows; the block is recorded in chain. It reports the end of a block
// in force.
func (s *Service) AddressFailed(ctx context.Context, t *sqlstore.Tx, from kluis.Origin, chain string) (time.Time, error) {
	addr := from.Client
	if !addr.IsValid() {
		return time.Time{}, nil
	}
	c := s.c
	key, ref, err := s.addressKey(ctx, addr)
	if err != nil {
		return time.Time{}, err
	}
	if _, err := t.Exec(ctx, `INSERT INTO address_failures (addr_key, ref, window_start, window_count, prev_count, blocks, updated_at)
		VALUES (?, ?, ?, 0, 0, 0, ?) ON CONFLICT (addr_key) DO NOTHING`, key, ref, sqlstore.Micros(t.Now()), sqlstore.Micros(t.Now())); err != nil {
		return time.Time{}, err
	}
	var start, updated int64
	var count, prev, blocks int
	var until sql.NullInt64
	var permanent bool
	if err := t.QueryRow(ctx, `SELECT window_start, window_count, prev_count, blocks, blocked_until, permanent, updated_at
		FROM address_failures WHERE addr_key = ?`+t.ForUpdate(), key).Scan(&start, &count, &prev, &blocks, &until, &permanent, &updated); err != nil {
		return time.Time{}, err
	}
	// Repeat offenders: the doubling starts over after a quiet day.
	if t.Now().Sub(sqlstore.FromMicros(updated)) > c.Forget {
		blocks = 0
	}
	w := c.AddressWindow
	switch elapsed := t.Now().Sub(sqlstore.FromMicros(start)); {
	case elapsed >= 2*w:
		start, count, prev = sqlstore.Micros(t.Now()), 0, 0
	case elapsed >= w:
		start, count, prev = sqlstore.Micros(sqlstore.FromMicros(start).Add(w)), 0, count
	}
	count++
	overlap := 1 - float64(t.Now().Sub(sqlstore.FromMicros(start)))/float64(w)
	estimate := float64(count) + float64(prev)*max(overlap, 0)
	blockedUntil := sqlstore.NullMicros(until)
	if permanent {
		blockedUntil = t.Now().Add(24 * time.Hour)
	}
	if !permanent && !t.Now().Before(blockedUntil) && estimate >= float64(c.AddressFailures) {
		blocks++
		d := min(c.AddressBlock<<min(blocks-1, 16), c.AddressBlockMax)
		blockedUntil = t.Now().Add(d)
		until = sql.NullInt64{Int64: sqlstore.Micros(blockedUntil), Valid: true}
		// A new block starts a new window: the block itself is the penalty.
		start, count, prev = sqlstore.Micros(blockedUntil), 0, 0
		if err := t.Append(ctx, chain, kluis.Actor{From: from}, "auth.address_blocked", "address:"+ref, "success",
			map[string]any{"minutes": int(d / time.Minute), "block": blocks}); err != nil {
			return time.Time{}, err
		}
		t.Count("address_block")
	}
	if _, err := t.Exec(ctx, `UPDATE address_failures SET window_start = ?, window_count = ?, prev_count = ?, blocks = ?, blocked_until = ?, updated_at = ?
		WHERE addr_key = ?`, start, count, prev, blocks, until, sqlstore.Micros(t.Now()), key); err != nil {
		return time.Time{}, err
	}
	if t.Now().Before(blockedUntil) {
		return blockedUntil, nil
	}
	return time.Time{}, nil
}
