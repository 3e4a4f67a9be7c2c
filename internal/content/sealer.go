package content

import "context"

// Sealer addresses, seals and opens the chunks of one project. [Store] and
// [Reader] use nothing else of the keys; [ProjectSealer] makes one from the
// key store.
type Sealer interface {
	// Project returns the id of the project whose keys the Sealer uses;
	// its blobs are kept under that id.
	Project() string
	// Address returns the chunk's content address: a keyed hash, the same
	// for the same bytes within the project and unrelated across projects.
	Address(ctx context.Context, plaintext []byte) (Address, error)
	// Seal encrypts the chunk stored at address, with at most
	// [MaxSealOverhead] bytes of overhead, bound to the project and address.
	Seal(ctx context.Context, address Address, plaintext []byte) ([]byte, error)
	// Open decrypts what Seal made for the same project and address, and
	// fails for anything else (keys.ErrDecrypt with the key store), or when
	// the project's key was destroyed (keys.ErrKeyDestroyed).
	Open(ctx context.Context, address Address, sealed []byte) ([]byte, error)
}

// ChunkKeys is what a [Sealer] needs of the key store; *keys.Store
// implements it (DESIGN §8: the address key and the project key of each
// project).
type ChunkKeys interface {
	ContentAddress(ctx context.Context, org, project string, plaintext []byte) ([32]byte, error)
	SealChunk(ctx context.Context, org, project string, address [32]byte, plaintext []byte) ([]byte, error)
	OpenChunk(ctx context.Context, org, project string, address [32]byte, sealed []byte) ([]byte, error)
}

// ProjectSealer returns the [Sealer] of project in organisation org, with
// keys from the key store k. Making it touches no key: a missing key is made
// on first use, and a destroyed one fails then.
func ProjectSealer(k ChunkKeys, org, project string) Sealer {
	return projectSealer{keys: k, org: org, project: project}
}

type projectSealer struct {
	keys         ChunkKeys
	org, project string
}

func (s projectSealer) Project() string { return s.project }

func (s projectSealer) Address(ctx context.Context, plaintext []byte) (Address, error) {
	return s.keys.ContentAddress(ctx, s.org, s.project, plaintext)
}

func (s projectSealer) Seal(ctx context.Context, a Address, plaintext []byte) ([]byte, error) {
	return s.keys.SealChunk(ctx, s.org, s.project, a, plaintext)
}

func (s projectSealer) Open(ctx context.Context, a Address, sealed []byte) ([]byte, error) {
	return s.keys.OpenChunk(ctx, s.org, s.project, a, sealed)
}
