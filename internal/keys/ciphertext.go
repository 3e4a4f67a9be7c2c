package keys

import (
	"encoding/binary"
	"fmt"
)

// FieldLabel begins the associated data of every field ciphertext:
//
//	FieldLabel ‖ len ‖ table ‖ len ‖ column ‖ len ‖ row id ‖ len ‖ key id ‖ key version
//
// where each len is a 4-byte big-endian length of what follows it, the key
// id is its 16 bytes and the key version a 4-byte big-endian integer.
const FieldLabel = "kluis/field/v1"

// BlindIndexLabel prefixes the value in a blind index:
// HMAC-SHA-256(organisation index key, BlindIndexLabel ‖ value).
const BlindIndexLabel = "kluis/blind-index/v1"

// wrapLabel begins the associated data under which a key is wrapped by its
// parent, binding the wrapped bytes to their own row (see wrapAAD).
const wrapLabel = "kluis/key-wrap/v1"

// Ciphertext format version 1, binary:
//
//	"v1:" ‖ key id (16 bytes) ‖ key version (4 bytes, big-endian) ‖ nonce (12 bytes) ‖ AES-256-GCM ciphertext ‖ tag (16 bytes)
//
// The prefix is ASCII so that a dump shows which format a column holds; the
// rest is binary. Columns that need text store it base64-encoded.
const (
	ciphertextPrefix  = "v1:"
	nonceSize         = 12
	tagSize           = 16
	headerSize        = len(ciphertextPrefix) + len(KeyID{}) + 4
	minCiphertextSize = headerSize + nonceSize + tagSize
)

// Overhead is how many bytes a ciphertext is longer than its plaintext.
const Overhead = minCiphertextSize

// Errors of ParseCiphertext, made once: parsing never allocates.
var (
	errNotV1      = fmt.Errorf("%w: not a version 1 ciphertext", ErrDecrypt)
	errBadVersion = fmt.Errorf("%w: bad key version", ErrDecrypt)
)

// ParseCiphertext returns the key version a ciphertext was sealed with,
// without decrypting it: re-encryption after a rotation uses it to find what
// still uses an old version. Anything that is not a well-formed version 1
// ciphertext gets an error wrapping [ErrDecrypt]. It does not allocate, and a
// ciphertext it accepts may still fail to open.
func ParseCiphertext(ciphertext []byte) (KeyVersion, error) {
	var kv KeyVersion
	if len(ciphertext) < minCiphertextSize || string(ciphertext[:len(ciphertextPrefix)]) != ciphertextPrefix {
		return kv, errNotV1
	}
	b := ciphertext[len(ciphertextPrefix):]
	copy(kv.ID[:], b)
	v := binary.BigEndian.Uint32(b[len(kv.ID):])
	if v == 0 || v > maxVersion {
		return kv, errBadVersion
	}
	kv.Version = int(v)
	return kv, nil
}

// maxVersion keeps versions within an int on every platform.
const maxVersion = 1<<31 - 1

func appendHeader(b []byte, kv KeyVersion) []byte {
	b = append(b, ciphertextPrefix...)
	b = append(b, kv.ID[:]...)
	return binary.BigEndian.AppendUint32(b, uint32(kv.Version))
}

func appendLP(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// fieldAAD returns the associated data of a field sealed under kv (see
// FieldLabel).
func fieldAAD(f FieldRef, kv KeyVersion) []byte {
	b := make([]byte, 0, len(FieldLabel)+4*4+len(f.Table)+len(f.Column)+len(f.Row)+len(kv.ID)+4)
	b = append(b, FieldLabel...)
	b = appendLP(b, f.Table)
	b = appendLP(b, f.Column)
	b = appendLP(b, f.Row)
	b = binary.BigEndian.AppendUint32(b, uint32(len(kv.ID)))
	b = append(b, kv.ID[:]...)
	return binary.BigEndian.AppendUint32(b, uint32(kv.Version))
}

// rootParent is the parent id recorded for keys wrapped by the root key; the
// parent version is then the root generation.
const rootParent = "root"

// wrapAAD returns the associated data under which key version kv of ref is
// wrapped by its parent: wrapLabel ‖ key id ‖ version ‖ kind ‖ organisation
// ‖ owner ‖ parent id ‖ parent version. Wrapped bytes copied to another row,
// or left in place while the row's ownership is rewritten, do not unwrap.
func wrapAAD(ref KeyRef, kv KeyVersion, parent string, parentVersion int) []byte {
	b := make([]byte, 0, 128)
	b = append(b, wrapLabel...)
	b = appendLP(b, kv.ID.String())
	b = binary.BigEndian.AppendUint32(b, uint32(kv.Version))
	b = appendLP(b, string(ref.Kind))
	b = appendLP(b, ref.Org)
	b = appendLP(b, ref.Owner)
	b = appendLP(b, parent)
	return binary.BigEndian.AppendUint32(b, uint32(parentVersion))
}
