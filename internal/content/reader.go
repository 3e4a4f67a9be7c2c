package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
)

// ErrCorrupt means a chunk of a file is missing, or opened but is not the
// chunk the manifest names (another length): the content store or the
// manifest was damaged or tampered with. A chunk that
// does not open at all gets the [Sealer]'s error instead (keys.ErrDecrypt).
var ErrCorrupt = errors.New("content: the file's content is corrupt")

// Reader reads a file's content from its manifest: an [io.ReadSeeker], so
// that http.ServeContent can answer Range requests. It fetches and opens one
// chunk at a time, when a read first needs it, and keeps only that chunk's
// plaintext; while it is read sequentially, it fetches and opens the next
// chunk meanwhile, in a goroutine that ends with that chunk. Every chunk it
// opens must open under its address (the Sealer binds a chunk to its
// project and address) and have the manifest's length, or the read fails
// (the Sealer's error, or [ErrCorrupt]): a Reader never returns bytes that
// were not sealed for the file's chunks. A Reader is not safe for
// concurrent use.
type Reader struct {
	ctx     context.Context
	m       FileManifest
	s       Sealer
	b       Blobs
	project string
	starts  []int64 // the file offset of each chunk
	err     error   // a manifest that does not validate

	pos   int64
	cur   int // the chunk in plain, or -1
	plain []byte
	ahead *readAhead // the next chunk, being fetched; or nil
}

// readAhead is a chunk fetched in the background: plain and err are set
// when done is closed.
type readAhead struct {
	i     int
	done  chan struct{}
	plain []byte
	err   error
}

// NewReader returns a Reader of the file m, whose chunks are in b under s's
// project and are opened with s. ctx is used by every read (a Reader lives
// for one request). An inconsistent manifest makes every read fail with
// [ErrBadManifest].
func NewReader(ctx context.Context, m FileManifest, s Sealer, b Blobs) *Reader {
	r := &Reader{ctx: ctx, m: m, s: s, b: b, project: s.Project(), cur: -1}
	if r.err = m.validate(); r.err != nil {
		return r
	}
	r.starts = make([]int64, len(m.Chunks))
	var off int64
	for i, c := range m.Chunks {
		r.starts[i] = off
		off += int64(c.Size)
	}
	return r
}

// Size returns the file's size.
func (r *Reader) Size() int64 { return r.m.Size }

// Read implements io.Reader. It returns at most the rest of the current
// chunk.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.pos >= r.m.Size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	// The last chunk that starts at or before pos.
	i := sort.Search(len(r.starts), func(i int) bool { return r.starts[i] > r.pos }) - 1
	if i != r.cur {
		if err := r.load(i); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.plain[r.pos-r.starts[i]:])
	r.pos += int64(n)
	return n, nil
}

// load makes chunk i the current one, and starts fetching the next one if
// the file is being read in order: from its start, or on from the chunk
// before.
func (r *Reader) load(i int) error {
	sequential := i == r.cur+1 && (i > 0 || r.pos == 0)
	r.cur, r.plain = -1, nil // the old plaintext may go before the new one comes
	var (
		plain   []byte
		err     error
		fetched bool
	)
	if ra := r.ahead; ra != nil {
		// One chunk in the background at most: wait for it even when it
		// is not the one wanted now.
		r.ahead = nil
		<-ra.done
		if ra.i == i {
			plain, err, fetched = ra.plain, ra.err, true
		}
	}
	if !fetched {
		plain, err = r.fetch(i)
	}
	if err != nil {
		return err
	}
	r.cur, r.plain = i, plain
	if sequential && i+1 < len(r.m.Chunks) {
		ra := &readAhead{i: i + 1, done: make(chan struct{})}
		r.ahead = ra
		go func() {
			defer close(ra.done)
			ra.plain, ra.err = r.fetch(ra.i)
		}()
	}
	return nil
}

// fetch fetches, opens and checks chunk i. It touches nothing of r that
// changes, so that it can run in the background.
func (r *Reader) fetch(i int) ([]byte, error) {
	ref := r.m.Chunks[i]
	sealed, err := r.b.Get(r.ctx, r.project, ref.Address)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: chunk %d of %d is missing: %w", ErrCorrupt, i+1, len(r.m.Chunks), err)
	}
	if err != nil {
		return nil, err
	}
	plain, err := r.s.Open(r.ctx, ref.Address, sealed)
	if err != nil {
		return nil, fmt.Errorf("content: chunk %d of %d: %w", i+1, len(r.m.Chunks), err)
	}
	if len(plain) != int(ref.Size) {
		return nil, fmt.Errorf("%w: chunk %d of %d has %d bytes, the manifest says %d", ErrCorrupt, i+1, len(r.m.Chunks), len(plain), ref.Size)
	}
	// The address is not recomputed: the chunk opened under associated
	// data that names this project and address, so it is what was sealed
	// for that address, and only the store's own writer — after computing
	// the address from these very bytes — seals with the project's key.
	// Recomputing the HMAC of every byte served (some 40 % of a download's
	// CPU) would only catch someone holding that key, who could as well
	// rewrite the manifest.
	return plain, nil
}

// Seek implements io.Seeker. Seeking past the end is allowed (reads there
// return io.EOF); before the start is an error.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.pos + offset
	case io.SeekEnd:
		abs = r.m.Size + offset
	default:
		return r.pos, errors.New("content: Seek: invalid whence")
	}
	if abs < 0 {
		return r.pos, errors.New("content: Seek: negative position")
	}
	r.pos = abs
	return abs, nil
}
