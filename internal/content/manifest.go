package content

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
)

// Address is a chunk's content address within its project: HMAC-SHA-256
// under the project's address key (see [Sealer]). It is not secret, and
// says nothing about the chunk to anyone without the key.
type Address [32]byte

// String returns the address in lower-case hexadecimal, as [Dir] names its
// files.
func (a Address) String() string { return hex.EncodeToString(a[:]) }

// ChunkRef is one chunk of a file: its address and its plaintext size.
type ChunkRef struct {
	Address Address
	Size    uint32 // 1 to MaxChunkSize
}

// FileManifest is a file's content: its size and its chunks in order. The
// chunk sizes add up to Size; an empty file has no chunks. Manifests are
// sealed by the caller before they are stored.
type FileManifest struct {
	Size   int64
	Chunks []ChunkRef
}

// Size limits of files and manifests. Every chunk but the last is at least
// MinChunkSize bytes, so a file of at most MaxFileSize bytes has at most
// MaxChunks chunks.
const (
	MaxFileSize = 512 << 30
	MaxChunks   = MaxFileSize/MinChunkSize + 1
)

// Manifest format version 1, binary, every integer big-endian:
//
//	"fm1:" ‖ file size (8) ‖ chunk count (4) ‖ count × (address (32) ‖ chunk size (4))
//
// Fixed widths make the encoding canonical: one manifest, one encoding.
const (
	manifestPrefix     = "fm1:"
	manifestHeaderSize = len(manifestPrefix) + 8 + 4
	chunkRefSize       = len(Address{}) + 4
	// MaxManifestSize is the longest encoding ParseFileManifest accepts.
	MaxManifestSize = manifestHeaderSize + MaxChunks*chunkRefSize
)

// ErrBadManifest means bytes are not a version 1 file manifest, or a
// manifest is inconsistent (sizes that do not add up, a chunk that is empty
// or too large, too many chunks).
var ErrBadManifest = errors.New("content: bad file manifest")

// validate checks what ParseFileManifest checks, for a manifest built in
// memory.
func (m FileManifest) validate() error {
	if m.Size < 0 || m.Size > MaxFileSize {
		return fmt.Errorf("%w: file size %d is outside 0 to %d", ErrBadManifest, m.Size, int64(MaxFileSize))
	}
	if len(m.Chunks) > MaxChunks {
		return fmt.Errorf("%w: %d chunks, more than %d", ErrBadManifest, len(m.Chunks), MaxChunks)
	}
	var sum int64
	for i, c := range m.Chunks {
		if c.Size == 0 || c.Size > MaxChunkSize {
			return fmt.Errorf("%w: chunk %d has %d bytes, want 1 to %d", ErrBadManifest, i, c.Size, MaxChunkSize)
		}
		sum += int64(c.Size) // at most MaxChunks × MaxChunkSize: no overflow
	}
	if sum != m.Size {
		return fmt.Errorf("%w: the chunks hold %d bytes, the file %d", ErrBadManifest, sum, m.Size)
	}
	return nil
}

// MarshalBinary encodes the manifest in the version 1 format that
// [ParseFileManifest] reads. An inconsistent manifest gets [ErrBadManifest].
func (m FileManifest) MarshalBinary() ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, manifestHeaderSize+len(m.Chunks)*chunkRefSize)
	b = append(b, manifestPrefix...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Size))
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Chunks)))
	for _, c := range m.Chunks {
		b = append(b, c.Address[:]...)
		b = binary.BigEndian.AppendUint32(b, c.Size)
	}
	return b, nil
}

// ParseFileManifest decodes a manifest encoded by [FileManifest.MarshalBinary].
// Anything else (another format, truncated or trailing bytes, more than
// [MaxManifestSize] bytes, sizes that do not add up) gets an error wrapping
// [ErrBadManifest]. It never panics, and allocates no more than the input's
// length warrants.
func ParseFileManifest(b []byte) (FileManifest, error) {
	if len(b) > MaxManifestSize {
		return FileManifest{}, fmt.Errorf("%w: %d bytes, more than %d", ErrBadManifest, len(b), MaxManifestSize)
	}
	if len(b) < manifestHeaderSize || string(b[:len(manifestPrefix)]) != manifestPrefix {
		return FileManifest{}, fmt.Errorf("%w: not a version 1 manifest", ErrBadManifest)
	}
	size := binary.BigEndian.Uint64(b[len(manifestPrefix):])
	count := binary.BigEndian.Uint32(b[len(manifestPrefix)+8:])
	rest := b[manifestHeaderSize:]
	if size > math.MaxInt64 || count > MaxChunks || uint64(len(rest)) != uint64(count)*uint64(chunkRefSize) {
		return FileManifest{}, fmt.Errorf("%w: the header does not match the length", ErrBadManifest)
	}
	m := FileManifest{Size: int64(size)}
	if count > 0 {
		m.Chunks = make([]ChunkRef, count)
	}
	for i := range m.Chunks {
		c := rest[i*chunkRefSize:]
		copy(m.Chunks[i].Address[:], c)
		m.Chunks[i].Size = binary.BigEndian.Uint32(c[len(Address{}):])
	}
	if err := m.validate(); err != nil {
		return FileManifest{}, err
	}
	return m, nil
}

// etagLabel prefixes what a file's ETag hashes.
const etagLabel = "kluis/content/etag/v1"

// ETag returns the file's entity tag, without the quotes HTTP puts around
// it: the hexadecimal SHA-256 of etagLabel ‖ file size ‖ the chunks'
// addresses and sizes (as encoded in a manifest). Identical content in one
// project has the same ETag (its chunks have the same addresses); it tells
// nothing about the content to anyone without the project's address key,
// and nothing links the same content in two projects.
func (m FileManifest) ETag() string {
	h := sha256.New()
	var b [8]byte
	h.Write([]byte(etagLabel))
	binary.BigEndian.PutUint64(b[:], uint64(m.Size))
	h.Write(b[:])
	binary.BigEndian.PutUint32(b[:4], uint32(len(m.Chunks)))
	h.Write(b[:4])
	for _, c := range m.Chunks {
		h.Write(c.Address[:])
		binary.BigEndian.PutUint32(b[:4], c.Size)
		h.Write(b[:4])
	}
	return hex.EncodeToString(h.Sum(nil))
}
