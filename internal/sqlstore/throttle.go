package sqlstore

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mail"
)

// Throttle holds the numbers of the brute-force protection (DESIGN §6, R18,
// R26, R43, R46). Zero fields take the defaults of DefaultThrottle.
type Throttle struct {
	// AddressFailures failures from one client address within
	// AddressWindow block it for AddressBlock, doubling for each further
	// block up to AddressBlockMax.
	AddressFailures int
	AddressWindow   time.Duration
	AddressBlock    time.Duration
	AddressBlockMax time.Duration
	// LockBase is the first lock of an identifier after the policy's
	// lockout_threshold failures in a row; each further lock doubles, up to
	// LockMax.
	LockBase time.Duration
	LockMax  time.Duration
	// DeviceLifetime is how long a device cookie is honoured.
	DeviceLifetime time.Duration
	// An organisation-wide alarm goes off when AlarmFailures failed sign-ins
	// within AlarmWindow spread over at least AlarmIdentifiers identifiers,
	// with fewer than one success per ten failures; at most once per
	// AlarmEvery.
	AlarmWindow      time.Duration
	AlarmFailures    int
	AlarmIdentifiers int
	AlarmEvery       time.Duration
	// Forget drops counters untouched for so long (blocks and locks still
	// running are kept).
	Forget time.Duration
}

// DefaultThrottle are the numbers of DESIGN §6.
var DefaultThrottle = Throttle{
	AddressFailures: 20, AddressWindow: 5 * time.Minute, AddressBlock: 15 * time.Minute, AddressBlockMax: 24 * time.Hour,
	LockBase: time.Minute, LockMax: time.Hour,
	DeviceLifetime: 180 * 24 * time.Hour,
	AlarmWindow:    10 * time.Minute, AlarmFailures: 50, AlarmIdentifiers: 10, AlarmEvery: time.Hour,
	Forget: 24 * time.Hour,
}

func (c Throttle) withDefaults() Throttle {
	d := DefaultThrottle
	pick := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	pickN := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	pickN(&c.AddressFailures, d.AddressFailures)
	pick(&c.AddressWindow, d.AddressWindow)
	pick(&c.AddressBlock, d.AddressBlock)
	pick(&c.AddressBlockMax, d.AddressBlockMax)
	pick(&c.LockBase, d.LockBase)
	pick(&c.LockMax, d.LockMax)
	pick(&c.DeviceLifetime, d.DeviceLifetime)
	pick(&c.AlarmWindow, d.AlarmWindow)
	pickN(&c.AlarmFailures, d.AlarmFailures)
	pickN(&c.AlarmIdentifiers, d.AlarmIdentifiers)
	pick(&c.AlarmEvery, d.AlarmEvery)
	pick(&c.Forget, d.Forget)
	return c
}

// operatorScope is the scope of the operators' identifiers in
// login_failures; organisations use their id.
const operatorScope = "operator"

// tooMany is the answer to a throttled request: the same for every account,
// existing or not, with the time to wait.
func tooMany(now, until time.Time) error {
	return kluis.TooManyRequests(until.Sub(now))
}

// throttleKey is the instance's secret for the keyed hashes of client
// addresses and operator identifiers and for the device cookies' MACs. It is
// made once, by the first process that needs it (first writer wins, also
// across nodes), and kept in settings: it pseudonymises, it protects nothing
// a reader of the database could not see otherwise (docs/SECURITY.md).
type throttleKey struct {
	mu  sync.Mutex
	key []byte
}

func (s *Store) throttleSecret(ctx context.Context) ([]byte, error) {
	s.tkey.mu.Lock()
	defer s.tkey.mu.Unlock()
	if s.tkey.key != nil {
		return s.tkey.key, nil
	}
	// Read first: only the very first use writes (EnsureKeys, at start),
	// never a use inside a write transaction.
	v, err := s.db.Setting(ctx, "throttle_key")
	if err == nil && v == "" {
		fresh := make([]byte, 32)
		rand.Read(fresh)
		v, err = s.db.SettingOnce(ctx, "throttle_key", hex.EncodeToString(fresh))
	}
	if err != nil {
		return nil, err
	}
	k, err := hex.DecodeString(v)
	if err != nil || len(k) != 32 {
		return nil, errors.New("settings: throttle_key is damaged")
	}
	s.tkey.key = k
	return k, nil
}

func (s *Store) mac(ctx context.Context, parts ...string) ([]byte, error) {
	k, err := s.throttleSecret(ctx)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, k)
	for _, p := range parts {
		fmt.Fprintf(m, "%d:%s", len(p), p)
	}
	return m.Sum(nil), nil
}

// addressKey is the keyed hash a client address is counted under (an IPv6
// address by its /64, the block one subscriber usually gets) and its short
// public reference for the operator's commands. No row holds an address.
func (s *Store) addressKey(ctx context.Context, addr netip.Addr) ([]byte, string, error) {
	k, err := s.mac(ctx, "address", clientBlock(addr))
	if err != nil {
		return nil, "", err
	}
	return k, hex.EncodeToString(k[:6]), nil
}

// clientBlock is the block of addresses one client is counted by: an IPv4
// address, or an IPv6 address's /64 (what one subscriber usually gets).
func clientBlock(addr netip.Addr) string {
	addr = addr.Unmap()
	if addr.Is6() {
		return netip.PrefixFrom(addr, 64).Masked().String()
	}
	return addr.String()
}

// AddressRef is the operator's reference of a client address, as shown by
// `kluis throttle list` (for lifting the block of an address someone names).
func (s *Store) AddressRef(ctx context.Context, addr netip.Addr) (string, error) {
	_, ref, err := s.addressKey(ctx, addr.Unmap())
	return ref, err
}

// operatorIdent is the identifier an operator sign-in is counted under.
func (s *Store) operatorIdent(ctx context.Context, normalized string) ([]byte, error) {
	return s.mac(ctx, "operator", normalized)
}

// gateAddress refuses a request from a blocked client address before any
// work is done (DESIGN §6). Requests without an address (the command line)
// are not throttled here.
func (s *Store) gateAddress(ctx context.Context) error {
	return s.gateAddressBlock(ctx, false)
}

// gateAddressBlock is gateAddress; with permanentOnly (a trusted device),
// only a block the operator made permanent refuses.
func (s *Store) gateAddressBlock(ctx context.Context, permanentOnly bool) error {
	addr := clientFrom(ctx)
	if !addr.IsValid() {
		return nil
	}
	key, _, err := s.addressKey(ctx, addr)
	if err != nil {
		return err
	}
	var until sql.NullInt64
	var permanent bool
	err = s.db.ReadRow(ctx, `SELECT blocked_until, permanent FROM address_failures WHERE addr_key = ?`, key).Scan(&until, &permanent)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	now := s.Now()
	switch {
	case permanent:
		s.countThrottle("address_blocked")
		return tooMany(now, now.Add(24*time.Hour))
	case !permanentOnly && until.Valid && now.Before(FromMicros(until.Int64)):
		s.countThrottle("address_blocked")
		return tooMany(now, FromMicros(until.Int64))
	}
	return nil
}

// gateSecondStep applies the address block to the second step of a sign-in:
// a challenge whose password step came with a valid device entry is exempt,
// as that step was (only a permanent block holds), so an attacker sharing
// the owner's address cannot stop the owner at the second step.
func (s *Store) gateSecondStep(ctx context.Context, org kluis.OrgID, challenge string) error {
	return s.gateChallenge(ctx, `SELECT trusted FROM login_challenges WHERE org_id = ? AND token_hash = ?`, org, challenge)
}

// gateOperatorSecondStep is gateSecondStep for an operator's challenge.
func (s *Store) gateOperatorSecondStep(ctx context.Context, challenge string) error {
	return s.gateChallenge(ctx, `SELECT trusted FROM operator_challenges WHERE token_hash = ?`, "", challenge)
}

func (s *Store) gateChallenge(ctx context.Context, query string, org kluis.OrgID, challenge string) error {
	trusted := false
	if ValidTokenShape(challenge) {
		args := []any{TokenHash(challenge)}
		if org != "" {
			args = append([]any{org}, args...)
		}
		err := s.db.ReadRow(ctx, query, args...).Scan(&trusted)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	}
	return s.gateAddressBlock(ctx, trusted)
}

// signInGate is what the throttle decided before a password is checked.
type signInGate struct {
	device    []byte    // a trusted device's failure identifier, or nil
	locked    time.Time // the identifier's lock in force (unknown browsers only)
	threshold int       // failures in a row that lock
}

// errLockedMeanwhile ends a sign-in transaction that found the identifier
// locked by attempts that raced it.
var errLockedMeanwhile = errors.New("identifier locked meanwhile")

// gateSignIn applies the address block and the identifier lock to a
// password sign-in, unless the browser holds a valid device entry for the
// identifier (DESIGN §6). A blocked address is refused at once; a locked
// identifier is reported, for the caller to record.
func (s *Store) gateSignIn(ctx context.Context, scope string, ident []byte) (signInGate, error) {
	g := signInGate{threshold: kluis.DefaultPolicy.LockoutThreshold}
	dev, err := s.trustedDevice(ctx, scope, ident)
	if err != nil {
		return g, err
	}
	// A blocked address is refused before anything else is read: a flood
	// costs one read per request.
	if err := s.gateAddressBlock(ctx, dev != nil); err != nil {
		return g, err
	}
	g.device = dev
	if scope != operatorScope {
		p, err := s.policy(ctx, s.db.reader, kluis.OrgID(scope))
		if err != nil {
			return g, err
		}
		g.threshold = p.LockoutThreshold
	}
	if dev == nil {
		g.locked, err = s.identLockedUntil(ctx, scope, ident)
	}
	return g, err
}

// lockedMeanwhile reads, inside a sign-in's transaction, the lock of the
// way the sign-in came in — the device entry's when it came with one, else
// the identifier's — and returns its end when it is in force.
func (t *Tx) lockedMeanwhile(ctx context.Context, scope string, ident, device []byte) (time.Time, error) {
	counted := ident
	if device != nil {
		counted = device
	}
	l, err := t.readIdent(ctx, scope, counted, true)
	if err != nil || !t.Now().Before(l.until) {
		return time.Time{}, err
	}
	return l.until, nil
}

// signedIn settles the throttle after a completed sign-in: the counter of
// the way it came in (the device entry's, or the identifier's for an
// unknown browser) starts over, the organisation's rate counts a success,
// and the browser gets a fresh device entry for the account.
func (t *Tx) signedIn(ctx context.Context, org kluis.OrgID, user kluis.UserID, sess *Session) error {
	var idx []byte
	if err := t.QueryRow(ctx, `SELECT email_index FROM users WHERE org_id = ? AND id = ?`, org, user).Scan(&idx); err != nil {
		return err
	}
	return t.signedInAs(ctx, string(org), idx, sess)
}

func (t *Tx) signedInAs(ctx context.Context, scope string, ident []byte, sess *Session) error {
	dev, err := t.s.trustedDevice(ctx, scope, ident)
	if err != nil {
		return err
	}
	counted := ident
	if dev != nil {
		counted = dev
	}
	if _, err := t.clearIdent(ctx, scope, counted); err != nil {
		return err
	}
	if scope != operatorScope {
		if err := t.orgSignIns(ctx, kluis.OrgID(scope), true); err != nil {
			return err
		}
	}
	if sess.DeviceCookie, err = t.s.newDeviceCookie(ctx, scope, ident); err != nil {
		return err
	}
	sess.DeviceExpires = t.Now().Add(t.s.throttle.DeviceLifetime)
	return nil
}

// addressFailed counts one failure of the request's client address in its
// sliding window (the current window plus the previous one, weighted by how
// much of it still overlaps) and blocks the address when the window
// overflows; the block is recorded in chain. It reports the end of a block
// in force.
func (t *Tx) addressFailed(ctx context.Context, chain string) (time.Time, error) {
	addr := clientFrom(ctx)
	if !addr.IsValid() {
		return time.Time{}, nil
	}
	c := t.s.throttle
	key, ref, err := t.s.addressKey(ctx, addr)
	if err != nil {
		return time.Time{}, err
	}
	if _, err := t.Exec(ctx, `INSERT INTO address_failures (addr_key, ref, window_start, window_count, prev_count, blocks, updated_at)
		VALUES (?, ?, ?, 0, 0, 0, ?) ON CONFLICT (addr_key) DO NOTHING`, key, ref, Micros(t.Now()), Micros(t.Now())); err != nil {
		return time.Time{}, err
	}
	var start, updated int64
	var count, prev, blocks int
	var until sql.NullInt64
	var permanent bool
	if err := t.QueryRow(ctx, `SELECT window_start, window_count, prev_count, blocks, blocked_until, permanent, updated_at
		FROM address_failures WHERE addr_key = ?`+t.db.ForUpdate(), key).Scan(&start, &count, &prev, &blocks, &until, &permanent, &updated); err != nil {
		return time.Time{}, err
	}
	// Repeat offenders: the doubling starts over after a quiet day.
	if t.Now().Sub(FromMicros(updated)) > c.Forget {
		blocks = 0
	}
	w := c.AddressWindow
	switch elapsed := t.Now().Sub(FromMicros(start)); {
	case elapsed >= 2*w:
		start, count, prev = Micros(t.Now()), 0, 0
	case elapsed >= w:
		start, count, prev = Micros(FromMicros(start).Add(w)), 0, count
	}
	count++
	overlap := 1 - float64(t.Now().Sub(FromMicros(start)))/float64(w)
	estimate := float64(count) + float64(prev)*max(overlap, 0)
	blockedUntil := NullMicros(until)
	if permanent {
		blockedUntil = t.Now().Add(24 * time.Hour)
	}
	if !permanent && !t.Now().Before(blockedUntil) && estimate >= float64(c.AddressFailures) {
		blocks++
		d := min(c.AddressBlock<<min(blocks-1, 16), c.AddressBlockMax)
		blockedUntil = t.Now().Add(d)
		until = sql.NullInt64{Int64: Micros(blockedUntil), Valid: true}
		// A new block starts a new window: the block itself is the penalty.
		start, count, prev = Micros(blockedUntil), 0, 0
		if err := t.Append(ctx, chain, kluis.Actor{}, "auth.address_blocked", "address:"+ref, "success",
			map[string]any{"minutes": int(d / time.Minute), "block": blocks}); err != nil {
			return time.Time{}, err
		}
		t.throttled = append(t.throttled, "address_block")
	}
	if _, err := t.Exec(ctx, `UPDATE address_failures SET window_start = ?, window_count = ?, prev_count = ?, blocks = ?, blocked_until = ?, updated_at = ?
		WHERE addr_key = ?`, start, count, prev, blocks, until, Micros(t.Now()), key); err != nil {
		return time.Time{}, err
	}
	if t.Now().Before(blockedUntil) {
		return blockedUntil, nil
	}
	return time.Time{}, nil
}

// identLock is the state of one identifier's failures.
type identLock struct {
	failures, locks int
	until           time.Time
	mailedAt        time.Time
}

func (t *Tx) readIdent(ctx context.Context, scope string, ident []byte, lock bool) (identLock, error) {
	var l identLock
	var until, mailed sql.NullInt64
	q := `SELECT failures, locks, locked_until, mailed_at FROM login_failures WHERE scope = ? AND ident = ?`
	if lock {
		q += t.db.ForUpdate()
	}
	err := t.QueryRow(ctx, q, scope, ident).Scan(&l.failures, &l.locks, &until, &mailed)
	if errors.Is(err, sql.ErrNoRows) {
		return l, nil
	}
	l.until, l.mailedAt = NullMicros(until), NullMicros(mailed)
	return l, err
}

// identLockedUntil tells until when an identifier is locked (zero: not).
func (s *Store) identLockedUntil(ctx context.Context, scope string, ident []byte) (time.Time, error) {
	var until sql.NullInt64
	err := s.db.ReadRow(ctx, `SELECT locked_until FROM login_failures WHERE scope = ? AND ident = ?`, scope, ident).Scan(&until)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil || !s.Now().Before(NullMicros(until)) {
		return time.Time{}, err
	}
	return NullMicros(until), nil
}

// identFailed counts one failed sign-in of an identifier (an account's, or
// a device cookie's): threshold failures in a row lock it for LockBase, and
// every further failure after a lock locks it again for twice as long, up
// to LockMax. It returns the state after the failure and whether a new lock
// started.
func (t *Tx) identFailed(ctx context.Context, scope string, ident []byte, threshold int) (identLock, bool, error) {
	if _, err := t.Exec(ctx, `INSERT INTO login_failures (scope, ident, failures, locks, updated_at) VALUES (?, ?, 0, 0, ?)
		ON CONFLICT (scope, ident) DO NOTHING`, scope, ident, Micros(t.Now())); err != nil {
		return identLock{}, false, err
	}
	l, err := t.readIdent(ctx, scope, ident, true)
	if err != nil {
		return l, false, err
	}
	l.failures++
	started := false
	if l.failures >= threshold && !t.Now().Before(l.until) {
		l.locks++
		l.until = t.Now().Add(min(t.s.throttle.LockBase<<min(l.locks-1, 16), t.s.throttle.LockMax))
		started = true
	}
	var until any
	if !l.until.IsZero() {
		until = Micros(l.until)
	}
	_, err = t.Exec(ctx, `UPDATE login_failures SET failures = ?, locks = ?, locked_until = ?, updated_at = ? WHERE scope = ? AND ident = ?`,
		l.failures, l.locks, until, Micros(t.Now()), scope, ident)
	return l, started, err
}

// clearIdent forgets an identifier's failures (a successful sign-in, an
// unlock).
func (t *Tx) clearIdent(ctx context.Context, scope string, ident []byte) (bool, error) {
	res, err := t.Exec(ctx, `DELETE FROM login_failures WHERE scope = ? AND ident = ?`, scope, ident)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// Device cookies (DESIGN §6, after OWASP's "device cookies"): a browser that
// completed a sign-in to an account holds an entry for it, a MAC over the
// scope, the account's identifier, a nonce and an expiry. A sign-in that
// carries a valid entry for the identifier it tries is exempt from that
// identifier's lock and from the address block; the entry's own failures
// are counted under its nonce, so a stolen cookie buys only a few guesses.

const (
	deviceCookieMax = 8 // entries kept in one browser, newest first
	deviceMACLen    = 16
)

// WithDeviceCookie returns a context carrying the request's device cookie.
func WithDeviceCookie(ctx context.Context, value string) context.Context {
	return context.WithValue(ctx, deviceCookieKey{}, value)
}

type deviceCookieKey struct{}

func deviceCookieFrom(ctx context.Context) string {
	v, _ := ctx.Value(deviceCookieKey{}).(string)
	return v
}

type deviceEntry struct {
	scope, nonce string
	expires      int64
	raw          string
}

func parseDeviceEntries(cookie string) []deviceEntry {
	var out []deviceEntry
	for _, raw := range strings.Split(cookie, "~") {
		parts := strings.Split(raw, ".")
		if len(parts) != 4 || len(out) >= deviceCookieMax {
			continue
		}
		exp, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, deviceEntry{scope: parts[0], nonce: parts[1], expires: exp, raw: raw})
	}
	return out
}

func (s *Store) deviceMAC(ctx context.Context, e deviceEntry, ident []byte) (string, error) {
	m, err := s.mac(ctx, "device", e.scope, e.nonce, strconv.FormatInt(e.expires, 10), hex.EncodeToString(ident))
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(m[:deviceMACLen]), nil
}

// trustedDevice returns the identifier the failures of the request's device
// entry for (scope, ident) are counted under, or nil when the request holds
// no valid entry for it, or the entry is itself locked.
func (s *Store) trustedDevice(ctx context.Context, scope string, ident []byte) ([]byte, error) {
	now := s.Now().Unix()
	for _, e := range parseDeviceEntries(deviceCookieFrom(ctx)) {
		if e.scope != scope || e.expires <= now {
			continue
		}
		want, err := s.deviceMAC(ctx, e, ident)
		if err != nil {
			return nil, err
		}
		mac := e.raw[strings.LastIndexByte(e.raw, '.')+1:]
		if !hmac.Equal([]byte(mac), []byte(want)) {
			continue
		}
		dev, err := s.mac(ctx, "device-failures", e.nonce)
		if err != nil {
			return nil, err
		}
		until, err := s.identLockedUntil(ctx, scope, dev)
		if err != nil || !until.IsZero() {
			return nil, err
		}
		return dev, nil
	}
	return nil, nil
}

// newDeviceCookie returns the device cookie to give a browser that just
// signed in to (scope, ident): a new entry first, then its other entries
// that are still valid for other accounts.
func (s *Store) newDeviceCookie(ctx context.Context, scope string, ident []byte) (string, error) {
	nonce := make([]byte, 12)
	rand.Read(nonce)
	e := deviceEntry{scope: scope, nonce: base64.RawURLEncoding.EncodeToString(nonce), expires: s.Now().Add(s.throttle.DeviceLifetime).Unix()}
	mac, err := s.deviceMAC(ctx, e, ident)
	if err != nil {
		return "", err
	}
	entries := []string{e.scope + "." + e.nonce + "." + strconv.FormatInt(e.expires, 10) + "." + mac}
	now := s.Now().Unix()
	for _, old := range parseDeviceEntries(deviceCookieFrom(ctx)) {
		if len(entries) >= deviceCookieMax {
			break
		}
		if old.expires <= now {
			continue
		}
		// An older entry for the same account is replaced by the new one.
		if old.scope == scope {
			if want, err := s.deviceMAC(ctx, old, ident); err != nil {
				return "", err
			} else if strings.HasSuffix(old.raw, "."+want) {
				continue
			}
		}
		entries = append(entries, old.raw)
	}
	return strings.Join(entries, "~"), nil
}

func (s *Store) countThrottle(kind string) {
	if s.observe != nil {
		s.observe.Throttled(kind)
	}
}

// anonymousFailure records a failed request of an unauthenticated endpoint
// (a wrong token or code, a reset request) in chain and counts it against
// the client address, in one transaction. It returns answer, or
// too_many_requests once the address is blocked.
func (s *Store) anonymousFailure(ctx context.Context, chain, action, target string, details map[string]any, answer error) error {
	var until time.Time
	err := s.Write(ctx, "", func(t *Tx) error {
		if err := t.Append(ctx, chain, kluis.Actor{}, action, target, "failure", details); err != nil {
			return err
		}
		var err error
		until, err = t.addressFailed(ctx, chain)
		return err
	})
	if err != nil {
		return err
	}
	if !until.IsZero() {
		return tooMany(s.Now(), until)
	}
	return answer
}

// signInFailure is one failed password sign-in to record.
type signInFailure struct {
	scope, chain  string
	org           kluis.OrgID // "" for the operator realm
	action        string      // auth.login_failed, operator.login_failed
	target        string      // the account when it exists, else ""
	user          kluis.UserID
	reason        string
	ident         []byte // the identifier tried
	device        []byte // set when a trusted device tried: counted instead of ident
	threshold     int
	alreadyLocked time.Time // set when the attempt was refused by a lock in force
}

// signInFailed records a failed sign-in and counts it, in one transaction:
// against the identifier (or the device entry that tried), the client
// address and the organisation's failure rate. A lock or block that starts
// is recorded, counted and, for a lock of an existing account, mailed to the
// owner with a link to lift it (at most once an hour). The answer is
// unauthenticated, or too_many_requests while the identifier, the device
// entry or (for unknown browsers) the address is locked — the same for
// existing and unknown accounts.
func (s *Store) signInFailed(ctx context.Context, f signInFailure) error {
	var until time.Time
	err := s.Write(ctx, "", func(t *Tx) error {
		until = time.Time{}
		details := map[string]any{"reason": f.reason}
		if f.device != nil {
			details["device"] = true
		}
		if err := t.Append(ctx, f.chain, kluis.Actor{}, f.action, f.target, "failure", details); err != nil {
			return err
		}
		blocked, err := t.addressFailed(ctx, f.chain)
		if err != nil {
			return err
		}
		if f.device == nil {
			until = blocked
		}
		if !f.alreadyLocked.IsZero() {
			until = later(until, f.alreadyLocked)
		} else if f.ident != nil {
			counted := f.ident
			if f.device != nil {
				counted = f.device
			}
			l, started, err := t.identFailed(ctx, f.scope, counted, f.threshold)
			if err != nil {
				return err
			}
			if started {
				if err := t.identLocked(ctx, f, l); err != nil {
					return err
				}
			}
			if t.Now().Before(l.until) {
				until = later(until, l.until)
			}
		}
		if f.org != "" {
			return t.orgSignIns(ctx, f.org, false)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !until.IsZero() {
		return tooMany(s.Now(), until)
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
func (t *Tx) identLocked(ctx context.Context, f signInFailure, l identLock) error {
	t.throttled = append(t.throttled, "lock")
	minutes := int(l.until.Sub(t.Now()) / time.Minute)
	details := map[string]any{"minutes": minutes, "lock": l.locks}
	if f.device != nil {
		details["device"] = true
	}
	action := "auth.locked"
	if f.org == "" {
		action = "operator.locked"
	}
	if err := t.Append(ctx, f.chain, kluis.Actor{}, action, f.target, "success", details); err != nil {
		return err
	}
	if f.user == "" || f.device != nil || t.Now().Sub(l.mailedAt) < time.Hour {
		return nil
	}
	if _, err := t.Exec(ctx, `UPDATE login_failures SET mailed_at = ? WHERE scope = ? AND ident = ?`, Micros(t.Now()), f.scope, f.ident); err != nil {
		return err
	}
	return t.mailUnlockLink(ctx, f.org, f.user)
}

// UnlockTTL is how long an unlock link works.
const UnlockTTL = time.Hour

// mailUnlockLink sends the owner of a locked account a single-use link that
// lifts the lock; older links of the account stop working.
func (t *Tx) mailUnlockLink(ctx context.Context, org kluis.OrgID, user kluis.UserID) error {
	u, err := t.FindUser(ctx, org, user)
	if err != nil || u.Status != kluis.StatusActive {
		return err
	}
	o, err := t.FindOrg(ctx, org)
	if err != nil {
		return err
	}
	if _, err := t.Exec(ctx, `DELETE FROM unlock_links WHERE org_id = ? AND user_id = ?`, org, user); err != nil {
		return err
	}
	token, hash := NewToken()
	if _, err := t.Exec(ctx, `INSERT INTO unlock_links (token_hash, org_id, user_id, expires_at) VALUES (?, ?, ?, ?)`,
		hash, org, user, Micros(t.Now().Add(UnlockTTL))); err != nil {
		return err
	}
	link := t.s.publicURL + "/o/" + o.Slug + "/unlock#" + token
	return t.QueueMail(ctx, org, user, o.Language, u.Email, mail.AccountLocked, mail.Data{OrgName: o.Name, Link: link})
}

// Unlock lifts the lock of the account an unlock link was mailed for (the
// link works once and for UnlockTTL). An unknown, used or expired token gets
// not_found and counts against the client address. Errors: not_found,
// too_many_requests.
func (s *Store) Unlock(ctx context.Context, org kluis.OrgID, token string) error {
	if err := s.gateAddress(ctx); err != nil {
		return err
	}
	if !ValidTokenShape(token) {
		token = ""
	}
	found := false
	err := s.Write(ctx, OrgChain(org), func(t *Tx) error {
		var user kluis.UserID
		var expires int64
		err := t.QueryRow(ctx, `SELECT user_id, expires_at FROM unlock_links WHERE org_id = ? AND token_hash = ?`+t.db.ForUpdate(), org, TokenHash(token)).Scan(&user, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `DELETE FROM unlock_links WHERE org_id = ? AND user_id = ?`, org, user); err != nil {
			return err
		}
		if !t.Now().Before(FromMicros(expires)) {
			return nil
		}
		found = true
		return t.unlockUser(ctx, org, user, kluis.Actor{}, "auth.unlocked")
	})
	if err != nil {
		return err
	}
	if !found {
		return s.anonymousFailure(ctx, OrgChain(org), "auth.unlocked", "", map[string]any{"reason": "token"}, kluis.ErrNotFound)
	}
	return nil
}

// unlockUser forgets the failures of a user's identifier and records it.
func (t *Tx) unlockUser(ctx context.Context, org kluis.OrgID, user kluis.UserID, actor kluis.Actor, action string) error {
	var until int64
	err := t.QueryRow(ctx, `SELECT COALESCE(f.locked_until, 0) FROM users u JOIN login_failures f ON f.scope = u.org_id AND f.ident = u.email_index
		WHERE u.org_id = ? AND u.id = ?`, org, user).Scan(&until)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if err := t.clearUserLock(ctx, org, user); err != nil {
		return err
	}
	return t.Append(ctx, OrgChain(org), actor, action, UserTarget(user), "success", map[string]any{"was_locked": t.Now().Before(FromMicros(until))})
}

// clearUserLock forgets the failures of a user's identifier and drops the
// user's unlock links.
func (t *Tx) clearUserLock(ctx context.Context, org kluis.OrgID, user kluis.UserID) error {
	if _, err := t.Exec(ctx, `DELETE FROM login_failures WHERE scope = ? AND ident = (SELECT email_index FROM users WHERE org_id = ? AND id = ?)`, org, org, user); err != nil {
		return err
	}
	_, err := t.Exec(ctx, `DELETE FROM unlock_links WHERE org_id = ? AND user_id = ?`, org, user)
	return err
}

// UnlockUser lets a manager lift the sign-in lock of a person of the
// organisation (R18). Errors: forbidden, not_found.
func (s *Store) UnlockUser(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) error {
	if !kluis.CanManageUsers(actor, org) {
		return s.Refuse(ctx, OrgChain(org), actor, "user.unlock", UserTarget(id))
	}
	return s.Write(ctx, OrgChain(org), func(t *Tx) error {
		if !kluis.CanManageUsers(actor, org) {
			return Deny(OrgChain(org), actor, "user.unlock", UserTarget(id), kluis.ErrForbidden)
		}
		if _, err := t.FindUser(ctx, org, id); err != nil {
			return err
		}
		return t.unlockUser(ctx, org, id, actor, "user.unlock")
	})
}

// UserLocked tells a manager whether a person is locked out of signing in
// from unknown browsers now, and until when.
func (s *Store) UserLocked(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) (time.Time, error) {
	if !kluis.CanManageUsers(actor, org) {
		return time.Time{}, s.Refuse(ctx, OrgChain(org), actor, "user.read", UserTarget(id))
	}
	var idx []byte
	err := s.db.ReadRow(ctx, `SELECT email_index FROM users WHERE org_id = ? AND id = ?`, org, id).Scan(&idx)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, kluis.ErrNotFound
	}
	if err != nil {
		return time.Time{}, err
	}
	return s.identLockedUntil(ctx, string(org), idx)
}

// orgSignIns counts a sign-in of the organisation, failed or not, in its
// failure-rate window, and raises the organisation-wide alarm when many
// identifiers fail and few sign-ins succeed: recorded in the organisation's
// chain and mailed to its managers and to the operator's security address
// (at most once per AlarmEvery). It never locks the organisation.
func (t *Tx) orgSignIns(ctx context.Context, org kluis.OrgID, success bool) error {
	c := t.s.throttle
	if _, err := t.Exec(ctx, `INSERT INTO org_failure_rates (org_id, window_start, failures, successes) VALUES (?, ?, 0, 0)
		ON CONFLICT (org_id) DO NOTHING`, org, Micros(t.Now())); err != nil {
		return err
	}
	var start int64
	var failures, successes int
	var alarm sql.NullInt64
	if err := t.QueryRow(ctx, `SELECT window_start, failures, successes, alarm_at FROM org_failure_rates WHERE org_id = ?`+t.db.ForUpdate(), org).
		Scan(&start, &failures, &successes, &alarm); err != nil {
		return err
	}
	if t.Now().Sub(FromMicros(start)) >= c.AlarmWindow {
		start, failures, successes = Micros(t.Now()), 0, 0
	}
	if success {
		successes++
	} else {
		failures++
	}
	if !success && failures >= c.AlarmFailures && successes*10 < failures && (!alarm.Valid || t.Now().Sub(FromMicros(alarm.Int64)) >= c.AlarmEvery) {
		var idents int
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM login_failures WHERE scope = ? AND updated_at >= ?`, org, start).Scan(&idents); err != nil {
			return err
		}
		if idents >= c.AlarmIdentifiers {
			alarm = sql.NullInt64{Int64: Micros(t.Now()), Valid: true}
			if err := t.raiseAlarm(ctx, org, failures, successes, idents); err != nil {
				return err
			}
		}
	}
	_, err := t.Exec(ctx, `UPDATE org_failure_rates SET window_start = ?, failures = ?, successes = ?, alarm_at = ? WHERE org_id = ?`,
		start, failures, successes, alarm, org)
	return err
}

func (t *Tx) raiseAlarm(ctx context.Context, org kluis.OrgID, failures, successes, idents int) error {
	t.throttled = append(t.throttled, "alarm")
	if err := t.Append(ctx, OrgChain(org), kluis.Actor{}, "security.alarm", "org:"+string(org), "success", map[string]any{
		"failures": failures, "successes": successes, "identifiers": idents, "minutes": int(t.s.throttle.AlarmWindow / time.Minute),
	}); err != nil {
		return err
	}
	o, err := t.FindOrg(ctx, org)
	if err != nil {
		return err
	}
	rows, err := t.Query(ctx, `SELECT `+userColumns+` FROM users WHERE org_id = ? AND role = ? AND status = ?`, org, kluis.RoleManager, kluis.StatusActive)
	if err != nil {
		return err
	}
	var managers []kluis.User
	for rows.Next() {
		u, err := t.s.ScanUser(ctx, rows)
		if err != nil {
			rows.Close()
			return err
		}
		managers = append(managers, u)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	link := t.s.publicURL + "/o/" + o.Slug + "/audit"
	for _, m := range managers {
		if err := t.QueueMail(ctx, org, m.ID, o.Language, m.Email, mail.SecurityAlarm, mail.Data{OrgName: o.Name, Link: link}); err != nil {
			return err
		}
	}
	if t.s.securityEmail != "" {
		return t.QueueMail(ctx, "", "", "en", t.s.securityEmail, mail.SecurityAlarm, mail.Data{OrgName: o.Name})
	}
	return nil
}
