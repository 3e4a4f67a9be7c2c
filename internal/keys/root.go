package keys

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"

	aeadsubtle "github.com/tink-crypto/tink-go/v2/aead/subtle"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/kluis/kluis/internal/secretfile"
)

// RootSize is the size in bytes of a root key.
const RootSize = 32

// Labels that separate the uses of the root key. Each is versioned: a change
// of construction gets a new label, never a silent reuse of an old one.
const (
	// rootFingerprintLabel prefixes the root key in its fingerprint hash.
	rootFingerprintLabel = "kluis/root-fingerprint/v1"
	// rootWrapLabel is the HKDF info of the key-wrapping key derived from
	// the root key; the root key itself never keys an AEAD.
	rootWrapLabel = "kluis/root-wrap/v1"
)

// rootPEMType is the PEM block type of a root key file, and rootPEMVersion
// the value of its Version header: the block holds the 32 key bytes.
const (
	rootPEMType    = "KLUIS ROOT KEY"
	rootPEMVersion = "1"
)

// rootFileComment precedes the PEM block in a root key file; pem.Decode
// skips it.
const rootFileComment = `# kluis root key. Every organisation key is wrapped by it: without this file
# the encrypted data cannot be read by anyone, kluis included. Keep it secret,
# readable by kluis alone (mode 0600), and keep a copy in a safe place
# (kluis keys export-root).
`

// Root is the root of the key hierarchy: 32 random bytes kept in a file
// outside every database. It wraps the organisation, index and platform keys
// in the key [Store]. Build one with [GenerateRoot], [LoadRoot],
// [LoadOrCreateRoot] or [ParseRoot]; the zero Root is not usable.
type Root struct {
	key         [RootSize]byte
	wrap        tink.AEAD
	fingerprint string
}

// ErrInsecureKeyFile is returned (wrapped, with the path and mode) by
// [LoadRoot] and [LoadOrCreateRoot] when the root key file is accessible by
// its group or by others. kluis refuses such a key rather than silently
// fixing the mode: the key may already have been read.
var ErrInsecureKeyFile = secretfile.ErrInsecure

// GenerateRoot returns a new root key from crypto/rand. A root key that is not
// saved (see [SaveRoot]) makes everything wrapped by it unreadable once the
// process ends.
func GenerateRoot() (*Root, error) {
	var k [RootSize]byte
	if _, err := rand.Read(k[:]); err != nil {
		return nil, fmt.Errorf("keys: generating root key: %w", err)
	}
	return newRoot(k)
}

func newRoot(k [RootSize]byte) (*Root, error) {
	wk, err := hkdf.Key(sha256.New, k[:], nil, rootWrapLabel, 32)
	if err != nil {
		return nil, fmt.Errorf("keys: deriving root wrapping key: %w", err)
	}
	wrap, err := aeadsubtle.NewAESGCM(wk)
	if err != nil {
		return nil, fmt.Errorf("keys: root wrapping key: %w", err)
	}
	sum := sha256.Sum256(append([]byte(rootFingerprintLabel), k[:]...))
	return &Root{key: k, wrap: wrap, fingerprint: hex.EncodeToString(sum[:])}, nil
}

// Fingerprint returns a hexadecimal SHA-256 hash of the root key under the
// label "kluis/root-fingerprint/v1". It identifies the key (the key store
// records it) without revealing it, and may be shown and logged.
func (r *Root) Fingerprint() string { return r.fingerprint }

// sameFingerprint reports in constant time whether fp is r's fingerprint.
func (r *Root) sameFingerprint(fp string) bool {
	return subtle.ConstantTimeCompare([]byte(r.fingerprint), []byte(fp)) == 1
}

// MarshalPEM returns the root key file's contents: a comment and one PEM
// block "KLUIS ROOT KEY" with the header "Version: 1" and the 32 key bytes.
// It is the secret itself: use it only to hand the key to an encrypting
// writer (kluis keys export-root) or to write it where [LoadRoot] reads it.
func (r *Root) MarshalPEM() []byte {
	var b bytes.Buffer
	b.WriteString(rootFileComment)
	// pem.Encode writes to a bytes.Buffer and cannot fail.
	_ = pem.Encode(&b, &pem.Block{Type: rootPEMType, Headers: map[string]string{"Version": rootPEMVersion}, Bytes: r.key[:]})
	return b.Bytes()
}

// ParseRoot reads a root key from the contents written by [Root.MarshalPEM]
// (a restored backup, say). Anything but exactly one version 1 block of
// 32 bytes is an error.
func ParseRoot(data []byte) (*Root, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != rootPEMType || len(block.Bytes) != RootSize ||
		len(block.Headers) != 1 || block.Headers["Version"] != rootPEMVersion ||
		len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("keys: not a root key: want one %q PEM block, Version %s, of %d bytes", rootPEMType, rootPEMVersion, RootSize)
	}
	var k [RootSize]byte
	copy(k[:], block.Bytes)
	return newRoot(k)
}

// LoadRoot reads the root key file at path. It never creates one: a missing
// file is an error wrapping fs.ErrNotExist, a file its group or others may
// access is refused with [ErrInsecureKeyFile], and a file that does not hold
// one root key is an error.
func LoadRoot(path string) (*Root, error) {
	data, err := secretfile.Read(path)
	if errors.Is(err, ErrInsecureKeyFile) {
		return nil, fmt.Errorf("keys: root key: %w; make it 0600 (chmod 600) if no one else can have read it, else rotate the root key", err)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: reading root key: %w", err)
	}
	r, err := ParseRoot(data)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return r, nil
}

// LoadOrCreateRoot reads the root key file at path, or creates it with a new
// key from crypto/rand if there is no file there. A new file gets mode 0600,
// and its directory mode 0700 if it is missing too. Errors are those of
// [LoadRoot].
//
// Several processes may call LoadOrCreateRoot on one path at once: each
// writes a candidate key to a temporary file of its own (created with
// O_EXCL) and hard-links it to path, which never replaces an existing file;
// all of them then use whatever key path holds, so they end with one key. The
// file system must support hard links.
func LoadOrCreateRoot(path string) (*Root, error) {
	r, err := LoadRoot(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return r, err
	}
	candidate, err := GenerateRoot()
	if err != nil {
		return nil, err
	}
	if err := writeRootFile(path, candidate); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return LoadRoot(path)
}

// SaveRoot writes r to a new file at path (mode 0600, directory 0700 if
// missing). It never replaces a file: if path exists it returns an error
// wrapping fs.ErrExist. Rotation writes the new root key next to the old one
// with it, then rotates the key store, then renames.
func SaveRoot(path string, r *Root) error {
	return writeRootFile(path, r)
}

func writeRootFile(path string, r *Root) error {
	if err := secretfile.Create(path, r.MarshalPEM()); err != nil {
		return fmt.Errorf("keys: creating root key: %w", err)
	}
	return nil
}
