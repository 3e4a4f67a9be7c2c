package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"time"
)

// Label separates the hashes of audit events from every other use of SHA-256
// in kluis. It names version 1 of the event encoding: any change to
// [Event.Encode] needs a new label, so that old chains keep verifying under the
// old rules.
const Label = "kluis/audit/v1"

// CheckpointLabel separates checkpoint signatures from every other use of the
// signing key. It names version 1 of the checkpoint encoding.
const CheckpointLabel = "kluis/checkpoint/v1"

// PlatformChain is the chain id of the platform chain. The chain of an
// organisation is "org:" followed by the organisation's UUID.
const PlatformChain = "platform"

// Hash is the SHA-256 hash of an event, as chained and checkpointed.
type Hash [32]byte

// String returns h as 64 lower-case hexadecimal digits, the form [ParseHash]
// accepts.
func (h Hash) String() string {
	return hex.EncodeToString(h[:])
}

// ErrMalformedHash is returned by [ParseHash] for anything other than
// 64 lower-case hexadecimal digits.
var ErrMalformedHash = errors.New("audit: malformed hash")

// ParseHash parses the form [Hash.String] returns: exactly 64 lower-case
// hexadecimal digits. Any other input gets [ErrMalformedHash]; upper case is
// refused so that a hash has one spelling.
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return Hash{}, ErrMalformedHash
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return Hash{}, ErrMalformedHash
		}
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return Hash{}, ErrMalformedHash
	}
	return h, nil
}

// Event is one audit record of a chain. The storage layer fills every field
// from its row; [Event.Seal] fills PrevHash and Hash when the event is
// appended.
type Event struct {
	// Chain is the chain id: PlatformChain or "org:" + organisation UUID.
	Chain string
	// Seq is the event's place in its chain: 1-based and contiguous.
	Seq int64
	// ID is the event's UUID.
	ID string
	// At is when the event happened. Only microseconds count: the encoding
	// uses At.UnixMicro(), which is also the precision the database keeps.
	At time.Time
	// Actor is who acted: "user:ID", "operator:ID", "cli" or "anonymous".
	Actor string
	// Action is what was done, as "area.verb", for example "auth.login".
	Action string
	// Target is what it was done to, such as "user:ID" or "org:ID", or "".
	Target string
	// Outcome is "success", "denied" or "failure".
	Outcome string
	// Details are opaque bytes: JSON, with personal values as ciphertext.
	Details []byte
	// Client is the encrypted client address, or empty.
	Client []byte
	// PrevHash is the Hash of the previous event of the chain; all zero for
	// the first event.
	PrevHash Hash
	// Hash is SHA-256(Label ‖ PrevHash ‖ Encode()), see ComputeHash.
	Hash Hash
}

// Encode returns the canonical encoding of e that is hashed: the Label, then
// Chain, Seq, ID, At (as UnixMicro), Actor, Action, Target, Outcome, Details and
// Client, in that order. Every item is a 4-byte big-endian length followed by
// its bytes; integers are 8-byte big-endian two's complement (so their length
// is always 8). PrevHash and Hash are not part of the encoding.
//
// Encode panics if a field is 4 GiB or longer, which no stored row can be.
func (e *Event) Encode() []byte {
	n := 4 * 11
	n += len(Label) + len(e.Chain) + 8 + len(e.ID) + 8 + len(e.Actor) + len(e.Action)
	n += len(e.Target) + len(e.Outcome) + len(e.Details) + len(e.Client)
	return e.appendEncoding(make([]byte, 0, n))
}

func (e *Event) appendEncoding(b []byte) []byte {
	b = appendField(b, Label)
	b = appendField(b, e.Chain)
	b = appendInt(b, e.Seq)
	b = appendField(b, e.ID)
	b = appendInt(b, e.At.UnixMicro())
	b = appendField(b, e.Actor)
	b = appendField(b, e.Action)
	b = appendField(b, e.Target)
	b = appendField(b, e.Outcome)
	b = appendField(b, e.Details)
	b = appendField(b, e.Client)
	return b
}

// ComputeHash returns SHA-256(Label ‖ PrevHash ‖ Encode()) for e. It does not
// look at e.Hash.
func (e *Event) ComputeHash() Hash {
	// Small events are encoded on the stack; the benchmark keeps this honest.
	var buf [512]byte
	b := append(buf[:0], Label...)
	b = append(b, e.PrevHash[:]...)
	b = e.appendEncoding(b)
	return sha256.Sum256(b)
}

// Seal links e to the event before it: it sets PrevHash to prev (the previous
// event's Hash, or the zero Hash for the first event of a chain) and Hash to
// ComputeHash(). The storage layer calls it with the hash from the chain-head
// row, in the transaction that inserts e and moves the head.
func (e *Event) Seal(prev Hash) {
	e.PrevHash = prev
	e.Hash = e.ComputeHash()
}

// appendField appends v with its 4-byte big-endian length.
func appendField[T string | []byte](b []byte, v T) []byte {
	if uint64(len(v)) > math.MaxUint32 {
		panic("audit: field of 4 GiB or more cannot be encoded")
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// appendInt appends v as an 8-byte field.
func appendInt(b []byte, v int64) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(v))
}
