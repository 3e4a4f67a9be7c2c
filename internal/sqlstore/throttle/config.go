// Package throttle is the brute-force protection (DESIGN §6; R18, R26,
// R43, R46): failed sign-ins counted per identifier whether or not an
// account has it, a growing lock for unknown browsers, device cookies that
// keep the owner in, sliding windows per client address on every
// unauthenticated route, unlock links, the organisation-wide alarm, and the
// operator's address blocks and digest. All counters live in the database,
// so every node shares them.
//
// The files split it by concern: config.go (the numbers and the instance's
// keyed hashes), address.go (address windows and blocks), ident.go
// (identifier locks), device.go (device cookies), signin.go (the gate before
// a password and the settling after a sign-in), failures.go (recording a
// failure), unlock.go, alarm.go and admin.go (the operator's side).
package throttle

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Config holds the numbers of the brute-force protection. Zero fields take
// the defaults of DefaultConfig.
type Config struct {
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

// DefaultConfig are the numbers of DESIGN §6.
var DefaultConfig = Config{
	AddressFailures: 20, AddressWindow: 5 * time.Minute, AddressBlock: 15 * time.Minute, AddressBlockMax: 24 * time.Hour,
	LockBase: time.Minute, LockMax: time.Hour,
	DeviceLifetime: 180 * 24 * time.Hour,
	AlarmWindow:    10 * time.Minute, AlarmFailures: 50, AlarmIdentifiers: 10, AlarmEvery: time.Hour,
	Forget: 24 * time.Hour,
}

func (c Config) withDefaults() Config {
	d := DefaultConfig
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

// TooMany is the answer to a throttled request: the same for every account,
// existing or not, with the time to wait.
func TooMany(now, until time.Time) error {
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

func (s *Service) throttleSecret(ctx context.Context) ([]byte, error) {
	s.tkey.mu.Lock()
	defer s.tkey.mu.Unlock()
	if s.tkey.key != nil {
		return s.tkey.key, nil
	}
	// Read first: only the very first use writes (EnsureKeys, at start),
	// never a use inside a write transaction.
	v, err := s.core.DB().Setting(ctx, "throttle_key")
	if err == nil && v == "" {
		fresh := make([]byte, 32)
		rand.Read(fresh)
		v, err = s.core.DB().SettingOnce(ctx, "throttle_key", hex.EncodeToString(fresh))
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

func (s *Service) mac(ctx context.Context, parts ...string) ([]byte, error) {
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

// Ident is the identifier a sign-in to scope with the normalised e-mail
// address is counted under, whether or not an account has it: an
// organisation's blind index of the address (users are found by it), or a
// keyed hash for operators. Errors: not_found (the organisation's keys are
// destroyed: it was deleted).
func (s *Service) Ident(ctx context.Context, scope kluis.Scope, email string) ([]byte, error) {
	if scope.Realm == kluis.RealmOperator {
		return s.mac(ctx, "operator", email)
	}
	return s.core.EmailIndex(ctx, scope.Org, email)
}

// key is the scope's name in login_failures: the organisation's id, or
// "operator".
func key(scope kluis.Scope) string {
	if scope.Realm == kluis.RealmOperator {
		return operatorScope
	}
	return string(scope.Org)
}

// Service is the brute-force protection.
type Service struct {
	core *sqlstore.Core
	c    Config
	tkey throttleKey
	// securityEmail is the operator's security address: alarms and the
	// digest go there (R26); "" mails neither.
	securityEmail string
}

// New returns the brute-force protection with the numbers c (zero fields:
// DefaultConfig's), mailing alarms and the digest to securityEmail.
func New(core *sqlstore.Core, c Config, securityEmail string) *Service {
	return &Service{core: core, c: c.withDefaults(), securityEmail: securityEmail}
}

// EnsureSecret makes the instance's secret of the keyed hashes unless it
// exists. Call it once at start: first writer wins, also across nodes.
func (s *Service) EnsureSecret(ctx context.Context) error {
	_, err := s.throttleSecret(ctx)
	return err
}

var _ kluis.ThrottleService = (*Service)(nil)
