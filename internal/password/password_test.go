package password_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/password"
)

// cheap keeps tests fast where the cost does not matter.
var cheap = password.Params{Memory: 1024, Time: 1, Threads: 1}

func newHasher(tb testing.TB, p password.Params) *password.Hasher {
	tb.Helper()
	h, err := password.NewHasher(p, 0)
	if err != nil {
		tb.Fatalf("NewHasher(%+v): got error %v, want nil", p, err)
	}
	return h
}

// phcPattern is the stored form promised by R15: algorithm, version,
// parameters, a 16-byte salt and a 32-byte key.
var phcPattern = regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashIsSaltedPHCString(t *testing.T) { // R15
	h := newHasher(t, password.DefaultParams)
	ctx := context.Background()
	first, err := h.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatalf("Hash: got error %v, want nil", err)
	}
	second, err := h.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatalf("Hash: got error %v, want nil", err)
	}
	if !phcPattern.MatchString(first) {
		t.Errorf("Hash: got %q, want a match for %s", first, phcPattern)
	}
	if first == second {
		t.Errorf("Hash twice: got the same string %q twice, want different salts", first)
	}
	if strings.Contains(first, "correct horse") {
		t.Errorf("Hash: got %q, want no trace of the password", first)
	}
}

func TestVerify(t *testing.T) { // R15
	h := newHasher(t, cheap)
	ctx := context.Background()
	tests := []struct {
		name   string
		stored string // password hashed
		given  string // password verified
		wantOK bool
	}{
		{"same password matches", "correct horse", "correct horse", true},
		{"non-ASCII password matches", "Één wachtwoord ☃", "Één wachtwoord ☃", true},
		{"empty password matches itself", "", "", true},
		{"wrong password is refused", "correct horse", "correct horsf", false},
		{"prefix is refused", "correct horse", "correct", false},
		{"case matters", "Correct", "correct", false},
		{"other normalisation form is refused", "\u00c9", "E\u0301", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			encoded, err := h.Hash(ctx, tt.stored)
			if err != nil {
				t.Fatalf("Hash: got error %v, want nil", err)
			}
			ok, rehash, err := h.Verify(ctx, tt.given, encoded)
			if err != nil {
				t.Fatalf("Verify: got error %v, want nil", err)
			}
			if ok != tt.wantOK {
				t.Errorf("Verify ok: got %v, want %v", ok, tt.wantOK)
			}
			if rehash {
				t.Errorf("Verify needsRehash: got true, want false")
			}
		})
	}
}

func TestVerifyNeedsRehash(t *testing.T) { // R15: old hashes are upgraded on login
	ctx := context.Background()
	strong := newHasher(t, password.Params{Memory: 2048, Time: 2, Threads: 2})
	tests := []struct {
		name       string
		params     password.Params
		wantRehash bool
	}{
		{"same params", password.Params{Memory: 2048, Time: 2, Threads: 2}, false},
		{"stronger params", password.Params{Memory: 4096, Time: 3, Threads: 4}, false},
		{"less memory", password.Params{Memory: 1024, Time: 2, Threads: 2}, true},
		{"fewer passes", password.Params{Memory: 2048, Time: 1, Threads: 2}, true},
		{"fewer threads", password.Params{Memory: 2048, Time: 2, Threads: 1}, true},
		{"more memory but fewer passes", password.Params{Memory: 8192, Time: 1, Threads: 2}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			encoded, err := newHasher(t, tt.params).Hash(ctx, "secret")
			if err != nil {
				t.Fatalf("Hash: got error %v, want nil", err)
			}
			ok, rehash, err := strong.Verify(ctx, "secret", encoded)
			if err != nil || !ok {
				t.Fatalf("Verify: got ok=%v err=%v, want ok=true err=nil", ok, err)
			}
			if rehash != tt.wantRehash {
				t.Errorf("needsRehash: got %v, want %v", rehash, tt.wantRehash)
			}
			ok, rehash, err = strong.Verify(ctx, "wrong", encoded)
			if err != nil || ok || rehash {
				t.Errorf("Verify wrong password: got ok=%v needsRehash=%v err=%v, want false, false, nil", ok, rehash, err)
			}
		})
	}
}

func TestVerifyDefaultHasherAsksToRehashWeakHash(t *testing.T) { // R15
	ctx := context.Background()
	encoded, err := newHasher(t, cheap).Hash(ctx, "secret")
	if err != nil {
		t.Fatalf("Hash: got error %v, want nil", err)
	}
	ok, rehash, err := newHasher(t, password.DefaultParams).Verify(ctx, "secret", encoded)
	if !ok || !rehash || err != nil {
		t.Errorf("Verify: got ok=%v needsRehash=%v err=%v, want true, true, nil", ok, rehash, err)
	}
}

func TestVerifyShortSaltOrKeyNeedsRehash(t *testing.T) { // R15
	// Made by libargon2 through Perl's Crypt::Argon2:
	// argon2id_pass("password", "saltsalt", 2, "1M", 1, 16), an 8-byte salt
	// and a 16-byte key.
	const encoded = "$argon2id$v=19$m=1024,t=2,p=1$c2FsdHNhbHQ$NpaXj1GdjYouwudcuI21DQ"
	h := newHasher(t, password.Params{Memory: 1024, Time: 2, Threads: 1})
	ok, rehash, err := h.Verify(context.Background(), "password", encoded)
	if err != nil {
		t.Fatalf("Verify: got error %v, want nil", err)
	}
	if !ok || !rehash {
		t.Errorf("Verify: got ok=%v needsRehash=%v, want true, true", ok, rehash)
	}
}

func TestVerifyMalformed(t *testing.T) {
	h := newHasher(t, cheap)
	ok, rehash, err := h.Verify(context.Background(), "x", "$2y$10$abcdefghijklmnopqrstuv")
	if !errors.Is(err, password.ErrMalformed) {
		t.Errorf("Verify bcrypt string: got error %v, want one wrapping ErrMalformed", err)
	}
	if ok || rehash {
		t.Errorf("Verify bcrypt string: got ok=%v needsRehash=%v, want false, false", ok, rehash)
	}
}

func TestVerifyDummyMatchesNothing(t *testing.T) { // DESIGN §5
	h := newHasher(t, cheap)
	// It must simply return, whatever the password.
	h.VerifyDummy(context.Background(), "")
	h.VerifyDummy(context.Background(), "anything")
}

func TestParamsValidate(t *testing.T) {
	tests := []struct {
		name    string
		params  password.Params
		wantErr bool
	}{
		{"default", password.DefaultParams, false},
		{"smallest accepted", password.Params{Memory: 1024, Time: 1, Threads: 1}, false},
		{"largest accepted", password.Params{Memory: 4 << 20, Time: 100, Threads: 255}, false},
		{"zero value", password.Params{}, true},
		{"memory below 1 MiB", password.Params{Memory: 1023, Time: 1, Threads: 1}, true},
		{"memory above 4 GiB", password.Params{Memory: 4<<20 + 1, Time: 1, Threads: 1}, true},
		{"no passes", password.Params{Memory: 19456, Time: 0, Threads: 1}, true},
		{"too many passes", password.Params{Memory: 19456, Time: 101, Threads: 1}, true},
		{"no threads", password.Params{Memory: 19456, Time: 2, Threads: 0}, true},
		{"less than 8 KiB per thread", password.Params{Memory: 1024, Time: 1, Threads: 200}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.params.Validate()
			if (err != nil) != tt.wantErr {
				t.Errorf("Validate(%+v): got error %v, want error: %v", tt.params, err, tt.wantErr)
			}
			if tt.wantErr {
				if _, err := password.NewHasher(tt.params, 1); err == nil {
					t.Errorf("NewHasher(%+v): got nil error, want one", tt.params)
				}
			}
		})
	}
}

func TestHasherParams(t *testing.T) {
	h := newHasher(t, cheap)
	if got := h.Params(); got != cheap {
		t.Errorf("Params: got %+v, want %+v", got, cheap)
	}
}

const validPHC = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"

func TestParseValid(t *testing.T) {
	p, salt, key, err := password.Parse(validPHC)
	if err != nil {
		t.Fatalf("Parse: got error %v, want nil", err)
	}
	if p != password.DefaultParams {
		t.Errorf("params: got %+v, want %+v", p, password.DefaultParams)
	}
	if string(salt) != "somesaltsomesalt" {
		t.Errorf("salt: got %q, want %q", salt, "somesaltsomesalt")
	}
	if got, want := hex.EncodeToString(key), "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"; got != want {
		t.Errorf("key: got %s, want %s", got, want)
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	const (
		salt = "c29tZXNhbHRzb21lc2FsdA"
		key  = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
	)
	tests := []struct {
		name    string
		encoded string
	}{
		{"empty", ""},
		{"plain text", "hunter2"},
		{"bcrypt", "$2y$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", "$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + key},
		{"argon2d", "$argon2d$v=19$m=19456,t=2,p=1$" + salt + "$" + key},
		{"upper-case algorithm", "$ARGON2ID$v=19$m=19456,t=2,p=1$" + salt + "$" + key},
		{"version 16", "$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + key},
		{"version missing", "$argon2id$m=19456,t=2,p=1$" + salt + "$" + key},
		{"no leading dollar", "argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key},
		{"trailing dollar", validPHC + "$"},
		{"key missing", "$argon2id$v=19$m=19456,t=2,p=1$" + salt},
		{"empty key", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$"},
		{"empty salt", "$argon2id$v=19$m=19456,t=2,p=1$$" + key},
		{"params missing", "$argon2id$v=19$" + salt + "$" + key},
		{"params reordered", "$argon2id$v=19$t=2,m=19456,p=1$" + salt + "$" + key},
		{"param missing", "$argon2id$v=19$m=19456,t=2$" + salt + "$" + key},
		{"extra keyid param", "$argon2id$v=19$m=19456,t=2,p=1,keyid=abc$" + salt + "$" + key},
		{"spaces in params", "$argon2id$v=19$m=19456, t=2, p=1$" + salt + "$" + key},
		{"leading zero", "$argon2id$v=19$m=019456,t=2,p=1$" + salt + "$" + key},
		{"plus sign", "$argon2id$v=19$m=+19456,t=2,p=1$" + salt + "$" + key},
		{"negative", "$argon2id$v=19$m=-1,t=2,p=1$" + salt + "$" + key},
		{"hex number", "$argon2id$v=19$m=0x4c00,t=2,p=1$" + salt + "$" + key},
		{"memory above 4 GiB", "$argon2id$v=19$m=4194305,t=2,p=1$" + salt + "$" + key},
		{"memory overflows uint32", "$argon2id$v=19$m=99999999999999999999,t=2,p=1$" + salt + "$" + key},
		{"memory zero", "$argon2id$v=19$m=0,t=2,p=1$" + salt + "$" + key},
		{"memory below 8 KiB per thread", "$argon2id$v=19$m=15,t=2,p=2$" + salt + "$" + key},
		{"time zero", "$argon2id$v=19$m=19456,t=0,p=1$" + salt + "$" + key},
		{"time above 100", "$argon2id$v=19$m=19456,t=101,p=1$" + salt + "$" + key},
		{"threads zero", "$argon2id$v=19$m=19456,t=2,p=0$" + salt + "$" + key},
		{"threads above 255", "$argon2id$v=19$m=19456,t=2,p=256$" + salt + "$" + key},
		{"salt of 7 bytes", "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbA$" + key},
		{"salt of 65 bytes", "$argon2id$v=19$m=19456,t=2,p=1$" + strings.Repeat("A", 87) + "$" + key},
		{"key of 15 bytes", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$AAECAwQFBgcICQoLDA0O"},
		{"key of 65 bytes", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + strings.Repeat("A", 87)},
		{"padded salt", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "==$" + key},
		{"url alphabet", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + strings.ReplaceAll(key, "A", "-")},
		{"line break in key", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key[:10] + "\n" + key[10:]},
		{"non-canonical trailing bits", "$argon2id$v=19$m=19456,t=2,p=1$" + salt[:21] + "B$" + key},
		{"impossible base64 length", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "AAA$" + key},
		{"trailing newline", validPHC + "\n"},
		{"leading space", " " + validPHC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, salt, key, err := password.Parse(tt.encoded)
			if !errors.Is(err, password.ErrMalformed) {
				t.Errorf("Parse(%q): got error %v, want one wrapping ErrMalformed", tt.encoded, err)
			}
			if p != (password.Params{}) || salt != nil || key != nil {
				t.Errorf("Parse(%q): got %+v, %x, %x, want zero values", tt.encoded, p, salt, key)
			}
			if err != nil && strings.Contains(err.Error(), "c29tZXNhbHRzb21lc2FsdA") {
				t.Errorf("Parse error: got %q, want no part of the hash in it", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(validPHC)
	f.Add("$argon2id$v=19$m=1024,t=2,p=1$c2FsdHNhbHQ$NpaXj1GdjYouwudcuI21DQ")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA")
	f.Add("$argon2id$v=19$m=4194304,t=100,p=255$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, encoded string) {
		p, salt, key, err := password.Parse(encoded)
		if err != nil {
			if !errors.Is(err, password.ErrMalformed) {
				t.Fatalf("Parse: got error %v, want one wrapping ErrMalformed", err)
			}
			return
		}
		// Re-encoding through a Hasher is not possible without hashing, so
		// rebuild the string by hand from what Parse returned.
		again := "$argon2id$v=19$m=" + itoa(p.Memory) + ",t=" + itoa(p.Time) + ",p=" + itoa(uint32(p.Threads)) +
			"$" + b64(salt) + "$" + b64(key)
		if again != encoded {
			t.Fatalf("re-encoded: got %q, want %q", again, encoded)
		}
	})
}

func TestHashVerifiedByLibargon2Perl(t *testing.T) { // R15: the stored form is standard argon2id
	requirePerlArgon2(t)
	h := newHasher(t, password.DefaultParams)
	ctx := context.Background()
	tests := []struct {
		name     string
		stored   string
		given    string
		wantExit int
	}{
		{"ASCII password", "correct horse battery staple", "correct horse battery staple", 0},
		{"Dutch diacritics", "Één twee drie, café", "Één twee drie, café", 0},
		{"CJK and emoji", "パスワード🔑", "パスワード🔑", 0},
		{"wrong password", "correct horse battery staple", "correct horse battery stapl", 1},
		{"decomposed accent differs", "caf\u00e9", "cafe\u0301", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			encoded, err := h.Hash(ctx, tt.stored)
			if err != nil {
				t.Fatalf("Hash: got error %v, want nil", err)
			}
			cmd := exec.Command("perl", "-MCrypt::Argon2=argon2id_verify",
				"-e", "exit(argon2id_verify($ARGV[0], $ARGV[1]) ? 0 : 1)", encoded, tt.given)
			out, err := cmd.CombinedOutput()
			exit := cmd.ProcessState.ExitCode()
			if err != nil && exit != 1 {
				t.Fatalf("perl: got error %v (output %q), want exit 0 or 1", err, out)
			}
			if exit != tt.wantExit {
				t.Errorf("perl argon2id_verify exit: got %d, want %d", exit, tt.wantExit)
			}
		})
	}
}

func TestVerifyAcceptsLibargon2PerlHash(t *testing.T) { // R15: the other direction
	requirePerlArgon2(t)
	h := newHasher(t, password.DefaultParams)
	ctx := context.Background()
	for _, pw := range []string{"correct horse battery staple", "Één twee drie, café"} {
		t.Run(pw, func(t *testing.T) {
			salt := "000102030405060708090a0b0c0d0e0f"
			out, err := exec.Command("perl", "-MCrypt::Argon2=argon2id_pass",
				"-e", "print argon2id_pass($ARGV[0], pack('H*', $ARGV[1]), 2, '19M', 1, 32)", pw, salt).Output()
			if err != nil {
				t.Fatalf("perl argon2id_pass: got error %v, want nil", err)
			}
			encoded := string(out)
			if !phcPattern.MatchString(encoded) {
				t.Fatalf("perl hash: got %q, want a match for %s", encoded, phcPattern)
			}
			ok, rehash, err := h.Verify(ctx, pw, encoded)
			if !ok || rehash || err != nil {
				t.Errorf("Verify: got ok=%v needsRehash=%v err=%v, want true, false, nil", ok, rehash, err)
			}
			ok, _, err = h.Verify(ctx, pw+"x", encoded)
			if ok || err != nil {
				t.Errorf("Verify wrong password: got ok=%v err=%v, want false, nil", ok, err)
			}
		})
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func b64(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }

// requirePerlArgon2 skips the test when perl or Crypt::Argon2 (Debian:
// libcrypt-argon2-perl) is missing, except on CI, where it fails.
func requirePerlArgon2(t *testing.T) {
	t.Helper()
	err := exec.Command("perl", "-MCrypt::Argon2", "-e", "1").Run()
	if err == nil {
		return
	}
	msg := "perl with Crypt::Argon2 is needed for the libargon2 cross-check (Debian: apt-get install libcrypt-argon2-perl): " + err.Error()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func BenchmarkHash(b *testing.B) {
	h := newHasher(b, password.DefaultParams)
	ctx := context.Background()
	for b.Loop() {
		if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	h := newHasher(b, password.DefaultParams)
	ctx := context.Background()
	encoded, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, _, err := h.Verify(ctx, "correct horse battery staple", encoded); !ok || err != nil {
			b.Fatalf("Verify: got ok=%v err=%v, want true, nil", ok, err)
		}
	}
}
