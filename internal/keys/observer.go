package keys

import "errors"

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

// Observer counts unwraps (for metrics). It is given to [OpenStore] and its
// method is called synchronously, with no lock of the [Store] held; it should
// not block. Key life-cycle events are not reported to it: the key store
// records them itself, in the transaction of the change ([Store.PendingEvents]).
type Observer interface {
	// KeyUnwrapped reports that a key of the kind, belonging to organisation
	// org ("" for the platform key), was unwrapped into the cache.
	KeyUnwrapped(org string, kind Kind)
}

type nopObserver struct{}

func (nopObserver) KeyUnwrapped(string, Kind) {}
