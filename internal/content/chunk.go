package content

import (
	"fmt"
	"io"
)

// Chunk size bounds. Every chunk but a file's last is at least MinChunkSize
// bytes; none is more than MaxChunkSize. Cut points are content-defined in
// between (gear.go), about 1 MiB apart on average. The bounds, the masks
// and the gear table are part of the format: see the package
// documentation.
const (
	MinChunkSize = 512 << 10
	MaxChunkSize = 4 << 20
)

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
	c := newCutter(r)
	for {
		chunk, err := c.next(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if len(chunk) > MaxChunkSize {
			return fmt.Errorf("content: the chunker cut %d bytes, more than %d", len(chunk), MaxChunkSize)
		}
		if err := fn(chunk); err != nil {
			return err
		}
	}
}
