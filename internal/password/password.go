// Package password hashes and verifies account passwords with argon2id
// (requirement R15: passwords are stored as salted one-way hashes).
//
// Hashes are stored as PHC strings:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>
//
// with the salt (16 bytes from crypto/rand) and the key (32 bytes) in
// unpadded standard base64. Any argon2id implementation that reads PHC
// strings, such as the reference libargon2, can verify them.
//
// Callers normalise passwords (Unicode NFKC) before calling; this package
// hashes the bytes of the string exactly as given.
//
// # Threat model
//
// The hashes are assumed to leak one day (a stolen backup or database).
// argon2id with a per-password random salt makes every guess cost memory and
// time, and no two accounts can be attacked with one computation.
//
// An online attacker may measure how long a login takes. Keys are compared
// in constant time, and [Hasher.VerifyDummy] spends the time of a real
// verification when an account does not exist, is disabled or is locked, so
// the answer time does not reveal which accounts exist.
//
// Every hash computation allocates Params.Memory KiB. A flood of login
// requests could exhaust the server's memory, so a [Hasher] bounds the number
// of computations that run at once; further callers wait, honouring their
// context. Stored hashes are parsed strictly, and hashes that ask for more
// than 4 GiB of memory or more than 100 passes are refused rather than
// computed.
//
// Out of scope: password policy (length, breached-password lists), rate
// limiting of login attempts and the storage of hashes; those belong to the
// callers.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Lengths of what Hash produces.
const (
	saltLen = 16
	keyLen  = 32
)

// Limits on what Parse and Params.Validate accept.
const (
	minMemory  = 1024            // KiB, for new hashes (Validate)
	maxMemory  = 4 * 1024 * 1024 // KiB, 4 GiB
	maxTime    = 100
	minSaltLen = 8
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 64
)

// ErrMalformed is wrapped by the errors of Parse and Verify when an encoded
// hash is not an argon2id PHC string this package accepts.
var ErrMalformed = errors.New("password: malformed hash")

// Params are the argon2id cost parameters.
type Params struct {
	Memory  uint32 // memory in KiB
	Time    uint32 // number of passes over the memory
	Threads uint8  // degree of parallelism
}

// DefaultParams are the parameters for new hashes: 19 MiB of memory, two
// passes and one thread, the OWASP Password Storage Cheat Sheet's argon2id
// recommendation.
var DefaultParams = Params{Memory: 19456, Time: 2, Threads: 1}

// Validate reports whether p is fit for hashing new passwords: at least
// 1024 KiB of memory and at most 4 GiB, at least eight KiB per thread,
// between 1 and 100 passes and at least one thread.
func (p Params) Validate() error {
	switch {
	case p.Threads < 1:
		return errors.New("password: threads must be at least 1")
	case p.Time < 1:
		return errors.New("password: time must be at least 1")
	case p.Time > maxTime:
		return fmt.Errorf("password: time must be at most %d", maxTime)
	case p.Memory < minMemory:
		return fmt.Errorf("password: memory must be at least %d KiB", minMemory)
	case p.Memory > maxMemory:
		return fmt.Errorf("password: memory must be at most %d KiB (4 GiB)", maxMemory)
	case p.Memory < 8*uint32(p.Threads):
		return errors.New("password: memory must be at least 8 KiB per thread")
	}
	return nil
}

// Hasher hashes and verifies passwords with fixed parameters. It is safe for
// concurrent use; at most a fixed number of hash computations run at once.
type Hasher struct {
	params Params
	sem    chan struct{}
	dummy  string // hash of a random password, for VerifyDummy
}

// NewHasher returns a Hasher for new hashes with parameters p, of which at
// most maxConcurrent computations run at the same time (the number of CPUs
// when maxConcurrent ≤ 0: argon2id is bound by CPU and memory bandwidth, so
// more at once than there are cores only adds memory and cache misses). It refuses invalid parameters and computes
// one hash before returning, the dummy that VerifyDummy checks against.
func NewHasher(p Params, maxConcurrent int) (*Hasher, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.NumCPU()
	}
	h := &Hasher{params: p, sem: make(chan struct{}, maxConcurrent)}
	secret := make([]byte, 32)
	rand.Read(secret)
	dummy, err := h.Hash(context.Background(), string(secret))
	if err != nil {
		return nil, err
	}
	h.dummy = dummy
	return h, nil
}

// Params returns the parameters h uses for new hashes.
func (h *Hasher) Params() Params {
	return h.params
}

// Hash returns the PHC string of password under a fresh random salt. It
// waits for a free computation slot and returns the context's error if ctx
// ends first; once started, a computation runs to its end.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, saltLen)
	rand.Read(salt)
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, h.params.Time, h.params.Memory, h.params.Threads, keyLen)
	h.release()
	return encode(h.params, salt, key), nil
}

// Verify reports whether password matches the PHC string encoded, comparing
// keys in constant time. needsRehash is true when the password matches but
// encoded is weaker than what h produces (less memory, fewer passes, fewer
// threads, or a shorter salt or key): the caller should then store a new
// Hash of the password. The error wraps ErrMalformed when encoded cannot be
// parsed, or is the context's error when ctx ends while waiting for a
// computation slot.
func (h *Hasher) Verify(ctx context.Context, password, encoded string) (ok, needsRehash bool, err error) {
	p, salt, want, err := Parse(encoded)
	if err != nil {
		return false, false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	h.release()
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return false, false, nil
	}
	needsRehash = p.Memory < h.params.Memory || p.Time < h.params.Time || p.Threads < h.params.Threads ||
		len(salt) < saltLen || len(want) < keyLen
	return true, needsRehash, nil
}

// VerifyDummy verifies password against a hash that matches nothing,
// spending the time of a real Verify. Callers use it when the account does
// not exist, is disabled or is locked, so that timing does not reveal which
// accounts exist (DESIGN §5).
func (h *Hasher) VerifyDummy(ctx context.Context, password string) {
	h.Verify(ctx, password, h.dummy)
}

func (h *Hasher) acquire(ctx context.Context) error {
	// Checked first: select picks at random when both cases are ready.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("password: %w", err)
	}
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("password: %w", ctx.Err())
	}
}

func (h *Hasher) release() {
	<-h.sem
}

// b64 is the PHC base64 flavour: standard alphabet, no padding.
var b64 = base64.RawStdEncoding

func encode(p Params, salt, key []byte) string {
	var b strings.Builder
	b.WriteString("$argon2id$v=19$m=")
	b.WriteString(strconv.FormatUint(uint64(p.Memory), 10))
	b.WriteString(",t=")
	b.WriteString(strconv.FormatUint(uint64(p.Time), 10))
	b.WriteString(",p=")
	b.WriteString(strconv.FormatUint(uint64(p.Threads), 10))
	b.WriteByte('$')
	b.WriteString(b64.EncodeToString(salt))
	b.WriteByte('$')
	b.WriteString(b64.EncodeToString(key))
	return b.String()
}

// Parse reads an argon2id PHC string of the exact form
//
//	$argon2id$v=19$m=<KiB>,t=<passes>,p=<threads>$<salt>$<key>
//
// with decimal numbers without leading zeros and unpadded standard base64.
// It accepts what can be verified safely: 1 ≤ t ≤ 100, 1 ≤ p ≤ 255,
// 8·p KiB ≤ m ≤ 4 GiB, a salt of 8 to 64 bytes and a key of 16 to 64 bytes;
// unlike Params.Validate it accepts weak parameters, so that old hashes can
// still be verified and replaced. Anything else, including other algorithms,
// other versions and optional PHC fields, gives an error wrapping
// ErrMalformed. Whatever Parse accepts, encoding it again yields encoded.
func Parse(encoded string) (p Params, salt, key []byte, err error) {
	fail := func(reason string) (Params, []byte, []byte, error) {
		return Params{}, nil, nil, fmt.Errorf("%w: %s", ErrMalformed, reason)
	}
	fields := strings.Split(encoded, "$")
	if len(fields) != 6 || fields[0] != "" {
		return fail("not a PHC string of six fields")
	}
	if fields[1] != "argon2id" {
		return fail("algorithm is not argon2id")
	}
	if fields[2] != "v=19" {
		return fail("version is not 19")
	}
	params := strings.Split(fields[3], ",")
	if len(params) != 3 {
		return fail("parameters are not m, t, p")
	}
	m, ok := parseParam(params[0], "m=", maxMemory)
	if !ok {
		return fail("memory missing or out of range")
	}
	t, ok := parseParam(params[1], "t=", maxTime)
	if !ok || t < 1 {
		return fail("time missing or out of range")
	}
	threads, ok := parseParam(params[2], "p=", 255)
	if !ok || threads < 1 {
		return fail("parallelism missing or out of range")
	}
	if m < 8*threads {
		return fail("memory below 8 KiB per thread")
	}
	salt, ok = decodeB64(fields[4], minSaltLen, maxSaltLen)
	if !ok {
		return fail("salt is not canonical base64 of 8 to 64 bytes")
	}
	key, ok = decodeB64(fields[5], minKeyLen, maxKeyLen)
	if !ok {
		return fail("key is not canonical base64 of 16 to 64 bytes")
	}
	return Params{Memory: m, Time: t, Threads: uint8(threads)}, salt, key, nil
}

// parseParam reads "<prefix><decimal>" with no sign and no leading zeros.
func parseParam(s, prefix string, limit uint32) (uint32, bool) {
	digits, found := strings.CutPrefix(s, prefix)
	if !found || digits == "" || len(digits) > 10 || (digits[0] == '0' && len(digits) > 1) {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(digits, 10, 32)
	if err != nil || n > uint64(limit) {
		return 0, false
	}
	return uint32(n), true
}

// decodeB64 decodes unpadded standard base64 and accepts it only in its
// canonical form: the decoder would otherwise skip line breaks and ignore
// stray trailing bits.
func decodeB64(s string, minLen, maxLen int) ([]byte, bool) {
	if len(s) > b64.EncodedLen(maxLen) {
		return nil, false
	}
	b, err := b64.DecodeString(s)
	if err != nil || len(b) < minLen || len(b) > maxLen || b64.EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}
