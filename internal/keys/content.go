package keys

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
)

// Project content (DESIGN §8) is cut into chunks by package content; each
// chunk is addressed and sealed here, under keys the caller never sees.

// ContentAddressLabel prefixes a chunk in its address:
// HMAC-SHA-256(project address key, ContentAddressLabel ‖ plaintext).
const ContentAddressLabel = "kluis/content/address/v1"

// PathIndexLabel prefixes a path in its blind index:
// HMAC-SHA-256(project address key, PathIndexLabel ‖ path). The two labels
// differ before either ends, so no path index equals a content address.
const PathIndexLabel = "kluis/content/path/v1"

// ChunkLabel begins the associated data of every chunk ciphertext:
//
//	ChunkLabel ‖ len ‖ organisation ‖ len ‖ project ‖ address (32) ‖ key id (16) ‖ key version
//
// where each len is a 4-byte big-endian length of what follows it and the
// key version a 4-byte big-endian integer. Chunks are not fields: they get a
// label of their own rather than a made-up table, column and row, and
// [Store.OpenChunk] requires the very project's key, not just one of the
// organisation's.
const ChunkLabel = "kluis/content/chunk/v1"

// ContentAddress returns HMAC-SHA-256(address key of project,
// [ContentAddressLabel] ‖ plaintext): the address of a chunk of the
// project's content. It is stable for a project, across organisation key
// rotations, and differs between projects, so identical chunks are stored
// once within a project and cannot be recognised across projects. The keys
// are made if missing (as by [Store.Seal]); a destroyed project key, or a
// destroyed organisation, gets [ErrKeyDestroyed].
func (s *Store) ContentAddress(ctx context.Context, org, project string, plaintext []byte) ([32]byte, error) {
	return s.addressMAC(ctx, org, project, ContentAddressLabel, plaintext)
}

// PathIndex returns HMAC-SHA-256(address key of project, [PathIndexLabel] ‖
// path): 32 bytes that find a file of the project by its exact path without
// storing the path in the clear. The caller normalises the path. Stability,
// errors and key making are as for [Store.ContentAddress].
func (s *Store) PathIndex(ctx context.Context, org, project, path string) ([32]byte, error) {
	return s.addressMAC(ctx, org, project, PathIndexLabel, []byte(path))
}

func (s *Store) addressMAC(ctx context.Context, org, project, label string, data []byte) ([32]byte, error) {
	var out [32]byte
	tag, err := s.keyedMAC(ctx, addressKey(org, project), label, data)
	if err != nil {
		return out, err
	}
	if len(tag) != len(out) {
		return out, fmt.Errorf("keys: content address of %d bytes, want %d", len(tag), len(out))
	}
	copy(out[:], tag)
	return out, nil
}

// SealChunk encrypts a chunk of project's content stored at address (its
// [Store.ContentAddress]) under the active version of the project key, with
// AES-256-GCM and the associated data of [ChunkLabel]. The result is a
// version 1 ciphertext, as [Store.Seal] makes ([ParseCiphertext] finds its
// key version, so that re-encryption after a rotation finds what still uses
// an old one), [Overhead] bytes longer than plaintext. The keys are made if
// missing; a destroyed project key, or a destroyed organisation, gets
// [ErrKeyDestroyed].
func (s *Store) SealChunk(ctx context.Context, org, project string, address [32]byte, plaintext []byte) ([]byte, error) {
	key := ProjectKey(org, project)
	if err := key.validate(); err != nil {
		return nil, err
	}
	kv, e, err := s.sealing(ctx, key)
	if err != nil {
		return nil, err
	}
	sealed, err := e.aead.Encrypt(plaintext, chunkAAD(org, project, address, kv))
	if err != nil {
		return nil, fmt.Errorf("keys: sealing a chunk: %w", err)
	}
	out := make([]byte, 0, headerSize+len(sealed))
	out = appendHeader(out, kv)
	return append(out, sealed...), nil
}

// OpenChunk decrypts a chunk made by [Store.SealChunk] for the same
// organisation, project and address. It returns an error wrapping
// [ErrDecrypt] when the ciphertext is malformed or altered, was sealed for
// another address, or under any key but this project's (another project's,
// even of the same organisation), or names a key this key store does not
// know; and one wrapping [ErrKeyDestroyed] when the project key was
// destroyed. It never returns another chunk's plaintext. It does not check
// that the plaintext has that address: package content does.
func (s *Store) OpenChunk(ctx context.Context, org, project string, address [32]byte, sealed []byte) ([]byte, error) {
	key := ProjectKey(org, project)
	if err := key.validate(); err != nil {
		return nil, err
	}
	kv, err := ParseCiphertext(sealed)
	if err != nil {
		return nil, err
	}
	e, err := s.entry(ctx, kv)
	switch {
	case errors.Is(err, errUnknownKey):
		return nil, fmt.Errorf("%w: sealed under a key this key store does not know", ErrDecrypt)
	case err != nil:
		return nil, err
	case e.ref != key:
		return nil, fmt.Errorf("%w: sealed under another key than the project's", ErrDecrypt)
	case e.state == StateDestroyed:
		return nil, fmt.Errorf("%w: the %s", ErrKeyDestroyed, e.ref)
	case e.aead == nil:
		return nil, fmt.Errorf("%w: sealed under a key that does not seal", ErrDecrypt)
	}
	plaintext, err := e.aead.Decrypt(sealed[headerSize:], chunkAAD(org, project, address, kv))
	if err != nil {
		return nil, fmt.Errorf("%w: altered, or sealed for another address", ErrDecrypt)
	}
	return plaintext, nil
}

// chunkAAD returns the associated data of a chunk sealed under kv (see
// ChunkLabel).
func chunkAAD(org, project string, address [32]byte, kv KeyVersion) []byte {
	b := make([]byte, 0, len(ChunkLabel)+5*4+len(org)+len(project)+len(address)+len(kv.ID)+4)
	b = append(b, ChunkLabel...)
	b = appendLP(b, org)
	b = appendLP(b, project)
	b = binary.BigEndian.AppendUint32(b, uint32(len(address)))
	b = append(b, address[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(kv.ID)))
	b = append(b, kv.ID[:]...)
	return binary.BigEndian.AppendUint32(b, uint32(kv.Version))
}
