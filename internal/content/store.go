package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrTooLarge means a file is larger than the limit given to [Store].
var ErrTooLarge = errors.New("content: the file is too large")

// Stored is what [Store] did with a file.
type Stored struct {
	// Manifest is the file's content, to be sealed and kept by the caller.
	Manifest FileManifest
	// New lists the chunks this call put, and Found those that were
	// already there, each address once, in the order of first appearance.
	// A chunk put concurrently by two calls may be New in both.
	New, Found []Address
}

// Store reads a file from r to its end, cuts it into chunks (as [Cut]
// does), addresses each with s and, unless b already has a chunk of that
// address in s's project, seals it with s and puts it in b: identical chunks
// are kept once per project. A goroutine addresses and seals each chunk
// while the next is cut, and up to three write blobs (a blob store syncs
// each blob, and syncs overlap). Memory stays bounded whatever the file's
// size: two chunk buffers of [MaxChunkSize], at most three sealed chunks in
// flight, a copy of the chunk being addressed and 512 KiB of read-ahead, so
// at most about 25 MiB live (about 12 MiB for chunks of the average size);
// the manifest grows by 36 bytes per chunk. Store returns once every blob
// it put is durable.
//
// A file of more than limit bytes (or [MaxFileSize]) gets [ErrTooLarge] as
// soon as its next byte is read; a negative limit is an error. Errors of r,
// s and b are returned as they are (a destroyed project key:
// keys.ErrKeyDestroyed). On error, Stored.New still lists the chunks put
// before it; nothing refers to them yet.
//
// The caller keeps the manifest and records the chunks (New and Found) in
// the same transaction: a chunk that Has found may be deleted by a
// concurrent deletion of its last file unless the storage side orders the
// two.
func Store(ctx context.Context, r io.Reader, s Sealer, b Blobs, limit int64) (Stored, error) {
	if limit < 0 {
		return Stored{}, fmt.Errorf("content: negative size limit %d", limit)
	}
	limit = min(limit, MaxFileSize)
	project := s.Project()
	if err := CheckProject(project); err != nil {
		return Stored{}, err
	}
	putters := storePutters
	if l, ok := b.(PutLimiter); ok {
		putters = max(1, min(putters, l.MaxConcurrentPuts()))
	}
	w := &storeWork{s: s, b: b, project: project, seen: map[Address]bool{}, puts: make(chan struct{}, putters)}
	w.ctx, w.cancel = context.WithCancel(ctx)
	defer w.cancel()

	// The buffers the chunker cuts into: one being filled, the others
	// held by the goroutines addressing and sealing until the chunk is
	// sealed (which waits for a put slot). Taking a buffer waits for one:
	// that is the back-pressure.
	free := make(chan []byte, storeSealers+1)
	for range storeSealers + 1 {
		free <- make([]byte, 0, MaxChunkSize)
	}
	c := newCutter(&limitedReader{r: r, left: limit})
	var (
		chunks []*storedChunk
		wg     sync.WaitGroup
	)
	for {
		var buf []byte
		select {
		case buf = <-free:
		case <-w.ctx.Done():
		}
		if buf == nil || w.ctx.Err() != nil {
			w.fail(context.Cause(w.ctx))
			break
		}
		chunk, err := c.next(buf)
		if err == io.EOF {
			break
		}
		if errors.Is(err, ErrTooLarge) {
			err = fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
		}
		if err != nil {
			w.fail(err)
			break
		}
		sc := &storedChunk{size: len(chunk)}
		chunks = append(chunks, sc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.store(sc, chunk, func() { free <- buf })
		}()
	}
	wg.Wait()

	var st Stored
	for _, sc := range chunks {
		st.Manifest.Size += int64(sc.size)
		st.Manifest.Chunks = append(st.Manifest.Chunks, ChunkRef{Address: sc.address, Size: uint32(sc.size)})
		switch sc.outcome {
		case chunkPut:
			st.New = append(st.New, sc.address)
		case chunkFound:
			st.Found = append(st.Found, sc.address)
		}
	}
	if w.err != nil {
		st.Manifest = FileManifest{}
		return st, w.err
	}
	if err := st.Manifest.validate(); err != nil {
		return st, err
	}
	return st, nil
}

// How many chunks Store addresses and seals at once, and how many blobs it
// writes at once. Cutting takes a core and addressing and sealing the other
// of the two cores kluis needs at least (a second sealer measured no
// faster there, and costs a chunk buffer); a blob store that syncs every
// blob needs several writes at once (one file at a time synced at 180
// MB/s, four at a time at 1 GB/s on the machine the benchmarks ran on).
// Each costs memory: see Store.
const (
	storeSealers = 1
	storePutters = 3
)

// PutLimiter is implemented by a Blobs that gains nothing from several
// puts of one file at once, or pays for each in memory: a database whose
// driver copies every blob on its way in. Store then writes at most
// MaxConcurrentPuts blobs at once.
type PutLimiter interface {
	MaxConcurrentPuts() int
}

// storeWork is what the goroutines of one Store share.
type storeWork struct {
	ctx     context.Context
	cancel  context.CancelFunc
	s       Sealer
	b       Blobs
	project string
	puts    chan struct{} // a slot per blob being written

	mu   sync.Mutex
	seen map[Address]bool // addresses claimed by a chunk of this file
	err  error            // the first error
}

// storedChunk is one chunk's part of the result, written by its goroutine
// and read once all are done.
type storedChunk struct {
	size    int
	address Address
	outcome int
}

// The outcomes of a chunk.
const (
	chunkPending = iota // failed, or not done
	chunkPut            // put by this Store
	chunkFound          // already in the blob store
	chunkRepeat         // an earlier chunk of this file has the address
)

// fail records the first error and stops the other goroutines.
func (w *storeWork) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	w.cancel()
}

// store addresses a chunk and, unless it is a repeat or already stored,
// seals and puts it. It calls release, which frees the plaintext buffer, as
// soon as the plaintext is no longer needed and no later.
func (w *storeWork) store(sc *storedChunk, plaintext []byte, release func()) {
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	if err := w.ctx.Err(); err != nil {
		w.fail(context.Cause(w.ctx))
		return
	}
	a, err := w.s.Address(w.ctx, plaintext)
	if err != nil {
		w.fail(err)
		return
	}
	sc.address = a
	w.mu.Lock()
	repeat := w.seen[a]
	w.seen[a] = true
	w.mu.Unlock()
	if repeat {
		sc.outcome = chunkRepeat
		return
	}
	have, err := w.b.Has(w.ctx, w.project, a)
	if err != nil {
		w.fail(err)
		return
	}
	if have {
		sc.outcome = chunkFound
		return
	}
	// A put slot first, so that no more sealed chunks exist than slots.
	select {
	case w.puts <- struct{}{}:
	case <-w.ctx.Done():
		w.fail(context.Cause(w.ctx))
		return
	}
	defer func() { <-w.puts }()
	sealed, err := w.s.Seal(w.ctx, a, plaintext)
	if err != nil {
		w.fail(err)
		return
	}
	if len(sealed) > len(plaintext)+MaxSealOverhead {
		w.fail(fmt.Errorf("content: the sealer added %d bytes to a chunk, more than %d", len(sealed)-len(plaintext), MaxSealOverhead))
		return
	}
	released = true
	release()
	if err := w.b.Put(w.ctx, w.project, a, sealed); err != nil {
		w.fail(err)
		return
	}
	sc.outcome = chunkPut
}

// limitedReader reads at most left bytes from r and fails with ErrTooLarge
// at the first byte beyond them. Unlike io.LimitReader it tells a file of
// exactly the limit from a longer one.
type limitedReader struct {
	r    io.Reader
	left int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n - 1, ErrTooLarge
	}
	return n, err
}
