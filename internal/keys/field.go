package keys

import (
	"context"
	"errors"
	"fmt"
)

// Seal encrypts plaintext for the field it will be stored in, under the
// active version of key, with AES-256-GCM and the associated data of
// [FieldLabel]. The result is a version 1 ciphertext ([ParseCiphertext]),
// [Overhead] bytes longer than plaintext. The key, and the organisation key
// above it, are made if they do not exist yet, recorded as made by "system"
// (callers that know who causes a key to be made use the Ensure methods
// first).
//
// field.Org must be key's organisation ("" for the platform key). A key that
// has been destroyed, or any key of an organisation whose keys were
// destroyed, gets [ErrKeyDestroyed]: a deleted user's data is never sealed
// again under a fresh key. Index keys do not seal.
func (s *Store) Seal(ctx context.Context, key KeyRef, field FieldRef, plaintext []byte) ([]byte, error) {
	if err := key.validate(); err != nil {
		return nil, err
	}
	if key.Kind.macs() {
		return nil, fmt.Errorf("%w: %s keys do not seal", errBadRef, key.Kind)
	}
	if err := field.validate(); err != nil {
		return nil, err
	}
	if field.Org != key.Org {
		return nil, fmt.Errorf("%w: a field of organisation %q cannot be sealed under the %s", errBadRef, field.Org, key)
	}
	kv, e, err := s.sealing(ctx, key)
	if err != nil {
		return nil, err
	}
	sealed, err := e.aead.Encrypt(plaintext, fieldAAD(field, kv))
	if err != nil {
		return nil, fmt.Errorf("keys: sealing: %w", err)
	}
	out := make([]byte, 0, headerSize+len(sealed))
	out = appendHeader(out, kv)
	return append(out, sealed...), nil
}

// Open decrypts a ciphertext made by [Store.Seal] for the same field. It
// returns an error wrapping [ErrDecrypt] when the ciphertext is malformed or
// altered, was sealed for another table, column or row, names a key of
// another organisation than field.Org, or names a key this key store does not
// know; and one wrapping [ErrKeyDestroyed] when its key was destroyed. It
// never returns anyone else's data. Retired key versions still open.
func (s *Store) Open(ctx context.Context, field FieldRef, ciphertext []byte) ([]byte, error) {
	if err := field.validate(); err != nil {
		return nil, err
	}
	kv, err := ParseCiphertext(ciphertext)
	if err != nil {
		return nil, err
	}
	e, err := s.entry(ctx, kv)
	switch {
	case errors.Is(err, errUnknownKey):
		return nil, fmt.Errorf("%w: sealed under a key this key store does not know", ErrDecrypt)
	case err != nil:
		return nil, err
	case e.ref.Org != field.Org:
		return nil, fmt.Errorf("%w: sealed under a key of another organisation", ErrDecrypt)
	case e.state == StateDestroyed:
		return nil, fmt.Errorf("%w: the %s", ErrKeyDestroyed, e.ref)
	case e.aead == nil:
		return nil, fmt.Errorf("%w: sealed under a key that does not seal", ErrDecrypt)
	}
	plaintext, err := e.aead.Decrypt(ciphertext[headerSize:], fieldAAD(field, kv))
	if err != nil {
		return nil, fmt.Errorf("%w: altered, or sealed for another field", ErrDecrypt)
	}
	return plaintext, nil
}

// BlindIndex returns HMAC-SHA-256(index key of org, [BlindIndexLabel] ‖
// value): 32 bytes that find a row by an exact value (a normalised e-mail
// address, DESIGN §4) without storing the value. The caller normalises. The
// result is stable for an organisation, across organisation key rotations,
// and differs between organisations. The index key is made if missing (as
// by [Store.Seal]); a destroyed organisation gets [ErrKeyDestroyed].
func (s *Store) BlindIndex(ctx context.Context, org string, value string) ([]byte, error) {
	return s.keyedMAC(ctx, indexKey(org), BlindIndexLabel, []byte(value))
}

// keyedMAC is HMAC-SHA-256(the MAC key ref, label ‖ data), the one way an
// index or address key is used; the key is made if missing (as by Seal).
func (s *Store) keyedMAC(ctx context.Context, ref KeyRef, label string, data []byte) ([]byte, error) {
	if err := ref.validate(); err != nil {
		return nil, err
	}
	_, e, err := s.sealing(ctx, ref)
	if err != nil {
		return nil, err
	}
	msg := make([]byte, 0, len(label)+len(data))
	msg = append(msg, label...)
	msg = append(msg, data...)
	tag, err := e.mac.ComputeMAC(msg)
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", label, err)
	}
	return tag, nil
}

// EnsureOrgKey makes organisation org's key and index key unless they
// exist, recording a key.created event for each key made with actor, the
// audit name of who causes it ("user:ID", "operator:ID", "cli", "system").
// Seal and BlindIndex make them on first use anyway; calling this when an
// organisation is created puts the key event where it belongs, under its
// actor. A destroyed organisation gets [ErrKeyDestroyed].
//
// Every method that changes keys takes the actor so, and records its events
// in the transaction of the change ([Store.PendingEvents]). None of them
// writes outside the key store, so they may be called while a transaction of
// another database is open.
func (s *Store) EnsureOrgKey(ctx context.Context, org, actor string) error {
	for _, ref := range []KeyRef{OrgKey(org), indexKey(org)} {
		if err := s.ensureRef(ctx, ref, actor); err != nil {
			return err
		}
	}
	return nil
}

// EnsureUserKey makes the key of user in organisation org (and the
// organisation's keys) unless it exists, as actor's change (see
// [Store.EnsureOrgKey]). A destroyed user key, or a destroyed organisation,
// gets [ErrKeyDestroyed].
func (s *Store) EnsureUserKey(ctx context.Context, org, user, actor string) error {
	return s.ensureRef(ctx, UserKey(org, user), actor)
}

// EnsureProjectKey makes the key of project in organisation org, its
// content-address key (made together with it, in one transaction) and the
// organisation's keys unless they exist, as actor's change (see
// [Store.EnsureOrgKey]). A destroyed project key, or a destroyed
// organisation, gets [ErrKeyDestroyed].
func (s *Store) EnsureProjectKey(ctx context.Context, org, project, actor string) error {
	if err := s.ensureRef(ctx, ProjectKey(org, project), actor); err != nil {
		return err
	}
	// A project key made before address keys existed gets its address key
	// now; otherwise this finds it.
	return s.ensureRef(ctx, addressKey(org, project), actor)
}

// EnsurePlatformKey makes the platform key unless it exists, as actor's
// change (see [Store.EnsureOrgKey]).
func (s *Store) EnsurePlatformKey(ctx context.Context, actor string) error {
	return s.ensureRef(ctx, PlatformKey(), actor)
}

func (s *Store) ensureRef(ctx context.Context, ref KeyRef, actor string) error {
	if err := ref.validate(); err != nil {
		return err
	}
	if err := checkActor(actor); err != nil {
		return err
	}
	_, err := s.activeVersion(ctx, ref, actor)
	return err
}

// ActiveVersion returns the version of key that new seals use, read from the
// key store (not the cache), without making anything: background
// re-encryption compares it with [ParseCiphertext]'s answer. A key that was
// never made gets [ErrNoKey], a destroyed one [ErrKeyDestroyed].
func (s *Store) ActiveVersion(ctx context.Context, key KeyRef) (KeyVersion, error) {
	if err := key.validate(); err != nil {
		return KeyVersion{}, err
	}
	l, found, err := s.latest(ctx, s.reader, key)
	switch {
	case err != nil:
		return KeyVersion{}, err
	case !found:
		return KeyVersion{}, fmt.Errorf("%w: the %s", ErrNoKey, key)
	case l.state == StateDestroyed:
		return KeyVersion{}, fmt.Errorf("%w: the %s", ErrKeyDestroyed, key)
	case l.state != StateActive:
		return KeyVersion{}, fmt.Errorf("keys: the %s has no active version", key)
	}
	return l.kv, nil
}
