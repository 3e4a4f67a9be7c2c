package content

import (
	"crypto/sha256"
	"encoding/binary"
	"io"
)

// Content-defined cut points, FastCDC style (Xia et al., USENIX ATC 2016):
// a gear hash — fp = fp<<1 + gear[byte] — rolls over the content, so each
// bit of fp depends on the last 64 bytes at most and the top bits on all of
// them; a chunk ends where the top bits of fp are all zero. Nothing is
// hashed in a chunk's first MinChunkSize bytes (no cut can fall there), and
// normalised chunking uses a stricter mask (more bits) before
// averageChunkSize and a looser one after it, which keeps chunk sizes close
// to the average. Gear hashing costs a shift, an add and a table lookup per
// byte: several times faster than a Rabin fingerprint, which matters
// because cutting is the one step of storing a file that cannot run in
// parallel.

// gearLabel names the gear table: gear[i] is the first 8 bytes (little
// endian) of SHA-256(gearLabel ‖ i). A fixed, public table, part of the
// format like the size bounds: see the package documentation.
const gearLabel = "kluis/content/gear/v1"

// averageChunkSize is where normalised chunking loosens its mask.
const averageChunkSize = 1 << 20

// The masks of normalised chunking: the top maskBits±2 bits of fp. Past
// MinChunkSize a cut is a one in 2^(maskBits+2) chance per byte until the
// average size, and a one in 2^(maskBits-2) chance after it; chunks then
// average about 1.1 MiB.
const (
	maskBits   = 20
	strictMask = uint64(1<<(maskBits+2)-1) << (64 - (maskBits + 2))
	looseMask  = uint64(1<<(maskBits-2)-1) << (64 - (maskBits - 2))
)

var gear = func() (g [256]uint64) {
	for i := range g {
		sum := sha256.Sum256(append([]byte(gearLabel), byte(i)))
		g[i] = binary.LittleEndian.Uint64(sum[:8])
	}
	return g
}()

// cutReadAhead is how much of the content a cutter reads at once.
const cutReadAhead = 512 << 10

// cutter cuts a stream into content-defined chunks.
type cutter struct {
	r        io.Reader
	in       []byte // read ahead: in[pos:end] is not cut yet
	pos, end int
	err      error // the reader's error once in is drained (io.EOF at the end)
}

func newCutter(r io.Reader) *cutter {
	return &cutter{r: r, in: make([]byte, cutReadAhead)}
}

// fill reads more of the stream when the read-ahead is used up; it reports
// false at the stream's end or error (c.err).
func (c *cutter) fill() bool {
	for c.pos == c.end {
		if c.err != nil {
			return false
		}
		n, err := c.r.Read(c.in)
		c.pos, c.end = 0, n
		if err != nil {
			c.err = err
		}
	}
	return true
}

// next appends the next chunk to buf[:0] and returns it, or io.EOF at the
// end of the stream, or the reader's error.
func (c *cutter) next(buf []byte) ([]byte, error) {
	buf = buf[:0]
	var fp uint64
	for c.fill() {
		data := c.in[c.pos:c.end]
		size := len(buf)
		// The part of data that cannot hold a cut point (below the
		// minimum) is taken as it is.
		i := 0
		if size < MinChunkSize {
			i = min(MinChunkSize-size, len(data))
		}
		cut := -1
		// Below the average size: the strict mask.
		for lim := min(len(data), averageChunkSize-size); i < lim; i++ {
			fp = fp<<1 + gear[data[i]]
			if fp&strictMask == 0 {
				cut = i + 1
				break
			}
		}
		// Up to the largest size: the loose mask.
		if cut < 0 {
			for lim := min(len(data), MaxChunkSize-size); i < lim; i++ {
				fp = fp<<1 + gear[data[i]]
				if fp&looseMask == 0 {
					cut = i + 1
					break
				}
			}
		}
		if cut < 0 && size+len(data) >= MaxChunkSize {
			cut = MaxChunkSize - size
		}
		if cut >= 0 {
			buf = append(buf, data[:cut]...)
			c.pos += cut
			return buf, nil
		}
		buf = append(buf, data...)
		c.pos = c.end
	}
	if c.err != io.EOF {
		return nil, c.err
	}
	if len(buf) == 0 {
		return nil, io.EOF
	}
	return buf, nil
}
