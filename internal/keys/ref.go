package keys

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
)

// Kind is the place of a key in the hierarchy.
type Kind string

// The kinds of key. Organisation, index and platform keys are wrapped by the
// root key; user, project and address keys by their organisation's key.
const (
	// KindOrg is an organisation key (AES-256-GCM): organisation-level
	// personal data such as client addresses in audit rows. It rotates.
	KindOrg Kind = "org"
	// KindIndex is an organisation's index key (HMAC-SHA-256) for blind
	// indexes. It is made with the organisation key and does not rotate
	// with it, so blind indexes stay valid across rotations.
	KindIndex Kind = "index"
	// KindUser is a user key (AES-256-GCM): that user's personal fields.
	KindUser Kind = "user"
	// KindProject is a project key (AES-256-GCM): that project's content.
	KindProject Kind = "project"
	// KindAddress is a project's content-address key (HMAC-SHA-256): the
	// addresses of the project's content chunks and the blind index of its
	// paths. It is made with the project key and destroyed with it; it does
	// not rotate (an organisation key rotation re-wraps it), so addresses
	// stay valid across rotations.
	KindAddress Kind = "address"
	// KindPlatform is the one platform key (AES-256-GCM): operator-side
	// secrets such as crash reports and incident notes.
	KindPlatform Kind = "platform"
)

// State is the life-cycle state of one version of a key.
type State string

// The states of a key version. Retired versions still decrypt; destroyed
// ones have had their wrapped bytes erased and decrypt nothing, ever.
const (
	StateActive    State = "active"
	StateRetired   State = "retired"
	StateDestroyed State = "destroyed"
)

// KeyRef names a key by what it belongs to; the key store maps it to a
// [KeyID] and versions. Build one with [OrgKey], [UserKey], [ProjectKey] or
// [PlatformKey] (index and address keys are used through [Store.BlindIndex],
// [Store.ContentAddress] and [Store.PathIndex]). Ids are kluis's own (UUIDs); this package only compares them.
type KeyRef struct {
	Kind  Kind
	Org   string // the organisation id; "" for the platform key
	Owner string // the user or project id (KindAddress: the project's); the organisation id for KindOrg and KindIndex; "" for the platform key
}

// OrgKey names organisation org's key.
func OrgKey(org string) KeyRef { return KeyRef{Kind: KindOrg, Org: org, Owner: org} }

// UserKey names the key of user in organisation org.
func UserKey(org, user string) KeyRef { return KeyRef{Kind: KindUser, Org: org, Owner: user} }

// ProjectKey names the key of project in organisation org.
func ProjectKey(org, project string) KeyRef {
	return KeyRef{Kind: KindProject, Org: org, Owner: project}
}

// PlatformKey names the platform key.
func PlatformKey() KeyRef { return KeyRef{Kind: KindPlatform} }

// indexKey names organisation org's index key.
func indexKey(org string) KeyRef { return KeyRef{Kind: KindIndex, Org: org, Owner: org} }

// addressKey names the content-address key of project in organisation org.
func addressKey(org, project string) KeyRef {
	return KeyRef{Kind: KindAddress, Org: org, Owner: project}
}

// maxIDLen bounds the ids in a KeyRef and the names in a FieldRef.
const maxIDLen = 255

// String describes the key for messages, such as "user key U of organisation
// O". Ids are not secret.
func (r KeyRef) String() string {
	switch r.Kind {
	case KindPlatform:
		return "platform key"
	case KindOrg, KindIndex:
		return fmt.Sprintf("%s key of organisation %s", r.Kind, r.Org)
	}
	return fmt.Sprintf("%s key %s of organisation %s", r.Kind, r.Owner, r.Org)
}

var errBadRef = errors.New("keys: invalid key reference")

func (r KeyRef) validate() error {
	switch r.Kind {
	case KindPlatform:
		if r.Org != "" || r.Owner != "" {
			return fmt.Errorf("%w: the platform key has no organisation or owner", errBadRef)
		}
		return nil
	case KindOrg, KindIndex:
		if r.Owner != r.Org {
			return fmt.Errorf("%w: an organisation's own key is owned by the organisation", errBadRef)
		}
	case KindUser, KindProject, KindAddress:
	default:
		return fmt.Errorf("%w: unknown kind %q", errBadRef, r.Kind)
	}
	if r.Org == "" || r.Owner == "" || len(r.Org) > maxIDLen || len(r.Owner) > maxIDLen {
		return fmt.Errorf("%w: %s needs organisation and owner ids of 1 to %d bytes", errBadRef, r.Kind, maxIDLen)
	}
	return nil
}

// wrappedByRoot reports whether keys of the kind are wrapped by the root key
// (else by their organisation key).
func (k Kind) wrappedByRoot() bool { return k == KindOrg || k == KindIndex || k == KindPlatform }

// macs reports whether keys of the kind are HMAC keys (else AEAD keys).
func (k Kind) macs() bool { return k == KindIndex || k == KindAddress }

// KeyID identifies a key (all its versions) in the key store and in
// ciphertexts. It is random and says nothing about the owner.
type KeyID [16]byte

func newKeyID() (KeyID, error) {
	var id KeyID
	if _, err := rand.Read(id[:]); err != nil {
		return id, fmt.Errorf("keys: generating key id: %w", err)
	}
	return id, nil
}

// String returns the id in hexadecimal, as the key store keeps it.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

func parseKeyID(s string) (KeyID, error) {
	var id KeyID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("keys: bad key id %q", s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("keys: bad key id %q", s)
	}
	return id, nil
}

// KeyVersion names one version of a key: what a ciphertext was sealed with.
type KeyVersion struct {
	ID      KeyID
	Version int // from 1
}

// String returns the key id and version as "id/vN".
func (kv KeyVersion) String() string { return kv.ID.String() + "/v" + strconv.Itoa(kv.Version) }

// FieldRef says where a ciphertext lives: the organisation that owns the row
// ("" for platform rows), the table, the column and the row's id. Table,
// column and row are bound into the associated data of the ciphertext, and
// the organisation must own the key, so a ciphertext copied anywhere else
// fails to decrypt.
type FieldRef struct {
	Org    string
	Table  string
	Column string
	Row    string
}

func (f FieldRef) validate() error {
	if f.Table == "" || f.Column == "" || f.Row == "" ||
		len(f.Table) > maxIDLen || len(f.Column) > maxIDLen || len(f.Row) > maxIDLen || len(f.Org) > maxIDLen {
		return fmt.Errorf("keys: invalid field reference: table, column and row need 1 to %d bytes", maxIDLen)
	}
	return nil
}
