package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/kluis/kluis/internal/secretfile"
)

// Checkpoint is a signed statement that event Seq of Chain had hash Hash at
// time At. Checkpoints are stored in the database and in the [Witness], so
// that deleting the newest events is detected even when their database
// checkpoints are deleted with them.
type Checkpoint struct {
	// Chain is the chain id.
	Chain string
	// Seq is the sequence number of the event the checkpoint covers.
	Seq int64
	// Hash is that event's Hash.
	Hash Hash
	// At is when the checkpoint was taken; only microseconds are signed.
	At time.Time
	// Signature is the Ed25519 signature set by Signer.Sign.
	Signature []byte
}

// signedBytes returns what a checkpoint signature covers:
// CheckpointLabel ‖ uint32 length ‖ Chain ‖ Seq ‖ Hash ‖ At.UnixMicro(), with
// integers as 8-byte big-endian. Only the chain id varies in length, so only
// it needs a length prefix.
func (c *Checkpoint) signedBytes() []byte {
	return signedStatement(CheckpointLabel, c.Chain, c.Seq, c.Hash, c.At)
}

// signedStatement is label ‖ uint32 length ‖ chain ‖ seq ‖ hash ‖
// at.UnixMicro(): what a checkpoint and a prune record sign, each under its
// own label.
func signedStatement(label, chain string, seq int64, h Hash, at time.Time) []byte {
	b := make([]byte, 0, len(label)+4+len(chain)+8+len(h)+8)
	b = append(b, label...)
	b = appendField(b, chain)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	b = append(b, h[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(at.UnixMicro()))
	return b
}

// Signer signs checkpoints with an Ed25519 key. Build one with
// [GenerateSigner] or [LoadOrCreateSigner]; the zero Signer is not usable.
type Signer struct {
	key ed25519.PrivateKey
}

// GenerateSigner returns a Signer with a fresh random key from crypto/rand.
// It is meant for tests and for [LoadOrCreateSigner]; a key that is not saved
// cannot verify anything after the process ends.
func GenerateSigner() (*Signer, error) {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, fmt.Errorf("audit: generating signing key: %w", err)
	}
	return &Signer{key: key}, nil
}

// signingKeyPEMType is the PEM block type of a signing key file; the block
// holds the 32-byte Ed25519 seed (RFC 8032's private key).
const signingKeyPEMType = "KLUIS AUDIT SIGNING KEY"

// ErrInsecureKeyFile is returned (wrapped, with the path and mode) by
// [LoadOrCreateSigner] when the key file is accessible by its group or by
// others. kluis refuses to use such a key rather than silently fixing the mode:
// the key may already have been read.
var ErrInsecureKeyFile = secretfile.ErrInsecure

// LoadOrCreateSigner reads the signing key at path, or creates it if there is
// no file there.
//
// The file holds one PEM block of type "KLUIS AUDIT SIGNING KEY" whose bytes
// are the 32-byte Ed25519 seed. A missing file is created with mode 0600, and
// its directory with mode 0700 if that is missing too. An existing file that
// its group or others may access is refused with [ErrInsecureKeyFile]; a file
// that does not hold exactly one such key is an error.
//
// Several processes may call LoadOrCreateSigner on one path at once: the
// first to create the file wins and all use its key (package secretfile).
func LoadOrCreateSigner(path string) (*Signer, error) {
	s, err := loadSigner(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	candidate, err := GenerateSigner()
	if err != nil {
		return nil, err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: signingKeyPEMType, Bytes: candidate.key.Seed()})
	if err := secretfile.Create(path, data); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("audit: creating signing key: %w", err)
	}
	return loadSigner(path)
}

// loadSigner reads the key file at path. A missing file gets an error wrapping
// fs.ErrNotExist.
func loadSigner(path string) (*Signer, error) {
	data, err := secretfile.Read(path)
	if errors.Is(err, ErrInsecureKeyFile) {
		return nil, fmt.Errorf("audit: signing key: %w; make it 0600 (chmod 600) if no one else can have read it, else replace the key", err)
	}
	if err != nil {
		return nil, fmt.Errorf("audit: reading signing key: %w", err)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != signingKeyPEMType || len(block.Headers) != 0 ||
		len(block.Bytes) != ed25519.SeedSize || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("audit: %s does not hold one %q PEM block of %d bytes", path, signingKeyPEMType, ed25519.SeedSize)
	}
	return &Signer{key: ed25519.NewKeyFromSeed(block.Bytes)}, nil
}

// Sign sets c.Signature to the signature of c's chain, sequence number, hash
// and time (in microseconds) under CheckpointLabel.
func (s *Signer) Sign(c *Checkpoint) {
	c.Signature = ed25519.Sign(s.key, c.signedBytes())
}

// PublicKey returns the key that verifies s's signatures, for
// [VerifyCheckpoint], [NewVerifier] and [VerifyChain].
func (s *Signer) PublicKey() ed25519.PublicKey {
	return s.key.Public().(ed25519.PublicKey)
}

// VerifyCheckpoint reports whether c.Signature is pub's signature of c. It
// returns false, never panics, for a public key of the wrong size.
func VerifyCheckpoint(pub ed25519.PublicKey, c Checkpoint) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	return ed25519.Verify(pub, c.signedBytes(), c.Signature)
}

// CheckpointDue reports whether the scheduler should take a checkpoint of a
// chain whose head is at headSeq, when its last checkpoint covered
// lastCheckpointSeq and was taken at lastCheckpointAt (zero when the chain has
// none): only if the head moved past the last checkpoint, and either at least
// every events were added since or at least interval passed. A non-positive
// every or interval turns that trigger off.
func CheckpointDue(lastCheckpointSeq int64, lastCheckpointAt time.Time, headSeq int64, now time.Time, every int64, interval time.Duration) bool {
	if headSeq <= lastCheckpointSeq {
		return false
	}
	if every > 0 && headSeq-lastCheckpointSeq >= every {
		return true
	}
	return interval > 0 && now.Sub(lastCheckpointAt) >= interval
}
