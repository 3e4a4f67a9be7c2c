package backups

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"

	"filippo.io/age"

	"github.com/kluis/kluis/internal/backup"
	"github.com/kluis/kluis/internal/content"
)

// Uploading a target's missing chunks. A chunk is read, encrypted and put
// on its own, and a target makes every object durable before Put returns
// (a folder target syncs the file and its folder): one at a time, a run
// would wait for a sync per chunk, and most chunks of an instance are
// small. Several uploads at once let the syncs overlap and the encryption
// use every core, while memory stays bounded: at most uploadWorkers chunks
// in flight, and at most uploadMemory bytes of chunk buffers (each chunk
// counts its sealed and its encrypted copy), whatever the instance's size.
const (
	uploadWorkers = 16
	uploadMemory  = 32 << 20
)

// The encryption of a chunk larger than pooledChunk goes into a buffer
// that fits the largest chunk's, reused from one chunk to the next: a
// fresh buffer of megabytes per chunk costs more to allocate, clear and
// return to the system than to encrypt into. The pool never holds more
// buffers than were in use at once, which uploadMemory bounds.
const (
	pooledChunk = 256 << 10
	encBufSize  = content.MaxBlobSize + content.MaxBlobSize/(64<<10)*16 + 4<<10
)

var encBuffers = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, encBufSize)) }}

// encSize bounds the size of the age encryption of sealed bytes: a header
// and 16 bytes per 64 KiB.
func encSize(sealed int64) int64 { return sealed + sealed/(64<<10)*16 + 4<<10 }

// uploadCost is what uploading chunk c holds in memory at its peak: the
// sealed chunk as read and the buffer of its age encryption.
func uploadCost(c chunkRef) int64 {
	size := c.size
	if size <= 0 || size > content.MaxChunkSize {
		size = content.MaxChunkSize
	}
	sealed := size + content.MaxSealOverhead
	enc := encSize(sealed)
	if sealed > pooledChunk {
		enc = encBufSize
	}
	return min(sealed+enc, uploadMemory)
}

// uploadChunks encrypts and puts the chunks chunks[i] for i in missing on
// t, a few at a time, and records each in manifest[i] and in r. The first
// error stops the uploads not yet begun and is returned once those under
// way have ended; the chunks put until then stay on the target, so the
// next attempt or run does not upload them again.
func (s *Service) uploadChunks(ctx context.Context, t backup.Target, chunks []chunkRef, missing []int, recipients []age.Recipient,
	manifest []backup.Chunk, r *copyResult) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		cond     = sync.NewCond(&mu)
		free     = int64(uploadMemory)
		running  int
		firstErr error
		wg       sync.WaitGroup
	)
	for _, i := range missing {
		c := chunks[i]
		cost := uploadCost(c)
		mu.Lock()
		// Workers that end wake the loop; a failure cancels ctx first.
		for (running == uploadWorkers || free < cost) && ctx.Err() == nil {
			cond.Wait()
		}
		if ctx.Err() != nil {
			mu.Unlock()
			break
		}
		running++
		free -= cost
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch, err := s.uploadChunk(ctx, t, c, recipients)
			mu.Lock()
			defer mu.Unlock()
			running--
			free += cost
			cond.Signal()
			if err != nil {
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				return
			}
			manifest[i] = ch
			r.newChunks++
			r.bytes += ch.Size
		}()
	}
	wg.Wait()
	if firstErr == nil {
		// ctx.Err() is the caller's cancellation here: ours only follows
		// an error.
		firstErr = ctx.Err()
	}
	return firstErr
}

// uploadChunk reads chunk c from the content store as it is (sealed under
// its project's key), encrypts it with age and puts it on t under a name
// that carries the ciphertext's hash.
func (s *Service) uploadChunk(ctx context.Context, t backup.Target, c chunkRef, recipients []age.Recipient) (backup.Chunk, error) {
	addr := hex.EncodeToString(c.address)
	sealed, err := s.blobs().Get(ctx, c.project, content.Address(c.address))
	if err != nil {
		return backup.Chunk{}, fmt.Errorf("reading chunk %s of project %s: %w", addr, c.project, err)
	}
	var buf *bytes.Buffer
	pooled := len(sealed) > pooledChunk && encSize(int64(len(sealed))) <= encBufSize
	if pooled {
		buf = encBuffers.Get().(*bytes.Buffer)
		buf.Reset()
	} else {
		buf = bytes.NewBuffer(make([]byte, 0, encSize(int64(len(sealed)))))
	}
	w, err := age.Encrypt(buf, recipients...)
	if err != nil {
		return backup.Chunk{}, err
	}
	if _, err := w.Write(sealed); err != nil {
		return backup.Chunk{}, err
	}
	if err := w.Close(); err != nil {
		return backup.Chunk{}, err
	}
	sum := sha256.Sum256(buf.Bytes())
	written := backup.Written{SHA256: hex.EncodeToString(sum[:]), Size: int64(buf.Len())}
	written.Name = backup.ChunkName(c.project, addr, written.SHA256)
	if err := t.Put(ctx, written.Name, bytes.NewReader(buf.Bytes())); err != nil {
		// A target that failed may still be reading (an HTTP transport
		// can, after its request failed): the buffer is not reused.
		return backup.Chunk{}, err
	}
	if pooled {
		encBuffers.Put(buf)
	}
	return backup.Chunk{Project: c.project, Address: addr, Written: written}, nil
}
