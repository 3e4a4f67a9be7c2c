package content

import (
	"fmt"
	"io"

	"github.com/restic/chunker"
)

// Chunk size bounds. Every chunk but a file's last is at least MinChunkSize
// bytes; none is more than MaxChunkSize. Cut points are content-defined in
// between, about 1 MiB apart on average (MinChunkSize plus a geometric
// distribution of mean 2^averageBits bytes, cut off at MaxChunkSize). The
// bounds, averageBits and polynomial are part of the format: see the package
// documentation.
const (
	MinChunkSize = 512 << 10
	MaxChunkSize = 4 << 20

	averageBits = 19
)

// polynomial is the irreducible polynomial of degree 53 over GF(2) of the
// Rabin fingerprint that finds cut points: a fixed public constant (the one
// restic's chunker uses in its own tests), not a secret, so that boundaries
// are stable across runs and nodes. Why that is safe enough here, and what it
// reveals, is in the package documentation.
const polynomial = chunker.Pol(0x3DA3358B4DC173)

// Cut reads r to its end and calls fn with each content-defined chunk of it,
// in order; the chunks concatenated are what r returned. An empty r gives no
// chunk. buf is the memory the chunks are cut into: Cut uses buf[:0:cap(buf)]
// if its capacity is at least MaxChunkSize, else a buffer it allocates, so
// that callers cutting many files reuse one buffer. fn must not keep chunk,
// which the next chunk overwrites, after it returns. Cut returns the first
// error of r (other than io.EOF) or of fn. Besides buf, Cut holds 512 KiB of
// read-ahead.
func Cut(r io.Reader, buf []byte, fn func(chunk []byte) error) error {
	if cap(buf) < MaxChunkSize {
		buf = make([]byte, 0, MaxChunkSize)
	}
	c := newChunker(r)
	for {
		chunk, err := c.Next(buf[:0])
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if len(chunk.Data) > MaxChunkSize {
			return fmt.Errorf("content: the chunker cut %d bytes, more than %d", len(chunk.Data), MaxChunkSize)
		}
		if err := fn(chunk.Data); err != nil {
			return err
		}
	}
}

// newChunker returns the chunker of r, with kluis's polynomial and bounds.
func newChunker(r io.Reader) *chunker.Chunker {
	c := chunker.NewWithBoundaries(r, polynomial, MinChunkSize, MaxChunkSize)
	c.SetAverageBits(averageBits)
	return c
}
