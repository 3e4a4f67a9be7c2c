package keys

import (
	"context"
	"errors"
	"time"
)

// Errors of this package. Callers test for them with errors.Is; the messages
// of the wrapping errors may name keys and paths but never hold key bytes or
// plaintext.
var (
	// ErrDecrypt means a ciphertext cannot be opened where it was found: it
	// is malformed, was tampered with, was sealed for another table,
	// column, row or organisation, or names a key this store does not know.
	// It never means "here is some other data".
	ErrDecrypt = errors.New("keys: cannot decrypt this ciphertext here")

	// ErrKeyDestroyed means the key a ciphertext was sealed with, or the key
	// asked for, has been destroyed (crypto-shredding): the data is gone
	// for good and no new key is made in its place.
	ErrKeyDestroyed = errors.New("keys: the key has been destroyed")

	// ErrRootMismatch means the root key given is not the one the key store
	// was made with (or last rotated to). The key store is left unchanged.
	ErrRootMismatch = errors.New("keys: the root key does not match the key store")

	// ErrNoKey means the operation needs a key that does not exist yet,
	// such as rotating an organisation key that was never made.
	ErrNoKey = errors.New("keys: no such key")
)

// Action is what happened to a key in an [Event].
type Action string

// The key life-cycle actions reported to an [Observer].
const (
	// ActionCreated: a key was made (version 1).
	ActionCreated Action = "key.created"
	// ActionRotated: a new version of a key was made by rotation; Event.Version
	// is the new version and Event.Rewrapped counts the keys below it that
	// were re-wrapped under it.
	ActionRotated Action = "key.rotated"
	// ActionRetired: a version stopped sealing new data; it still decrypts.
	ActionRetired Action = "key.retired"
	// ActionDestroyed: a version's wrapped bytes were erased.
	ActionDestroyed Action = "key.destroyed"
	// ActionRootRotated: every key wrapped by the root key was re-wrapped
	// under a new root key.
	ActionRootRotated Action = "key.root-rotated"
)

// Event reports one key life-cycle event, after the key store committed it.
type Event struct {
	Action  Action
	Key     KeyRef // zero for ActionRootRotated
	ID      KeyID  // zero for ActionRootRotated
	Version int    // the key version; for ActionRootRotated the new root generation
	At      time.Time
	// Rewrapped counts the keys re-wrapped (ActionRotated, ActionRootRotated).
	Rewrapped int
	// RootFingerprint and PreviousRootFingerprint are set for
	// ActionRootRotated only.
	RootFingerprint         string
	PreviousRootFingerprint string
}

// Observer learns of key life-cycle events (for the audit log) and counts
// unwraps (for metrics). Its methods are called synchronously, after the key
// store has committed and with no lock of the [Store] held, so they may call
// the Store; they should not block for long, and cannot fail the operation
// (it has happened), so they return nothing. The context is the caller's, so
// an observer may find the actor in it.
//
// Events report what the key store committed: if the process dies between
// the commit and the call, the event is lost, so an audit trail built from
// them can be reconciled with [Store.KeyStatus].
type Observer interface {
	// KeyEvent reports a create, rotate, retire, destroy or root rotation.
	KeyEvent(ctx context.Context, e Event)
	// KeyUnwrapped reports that a key of the kind, belonging to organisation
	// org ("" for the platform key), was unwrapped into the cache.
	KeyUnwrapped(org string, kind Kind)
}

type nopObserver struct{}

func (nopObserver) KeyEvent(context.Context, Event) {}
func (nopObserver) KeyUnwrapped(string, Kind)       {}
