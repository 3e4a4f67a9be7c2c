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
// use every core, while memory stays bounded whatever the instance's size:
//
//   - at most uploadWorkers chunks are in flight;
//   - of those, at most uploadLarge are larger than smallChunk, and each
//     of these encrypts into one of uploadLarge buffers that fit the
//     largest chunk, allocated once per target and reused (a fresh buffer of
//     megabytes per chunk cost more to allocate, clear and give back to
//     the system than the encryption itself);
//   - so at most uploadMemory bytes of chunk buffers are held: each chunk
//     in flight holds its sealed copy and its encryption.
const (
	uploadWorkers = 16
	uploadLarge   = 3
	smallChunk    = 256 << 10 // sealed bytes
	encBufSize    = content.MaxBlobSize + content.MaxBlobSize/(64<<10)*16 + 4<<10
	uploadMemory  = uploadLarge*(content.MaxBlobSize+encBufSize) + (uploadWorkers-uploadLarge)*2*(smallChunk+4<<10+smallChunk/(64<<10)*16)
)

// encSize bounds the size of the age encryption of sealed bytes: a header
// and 16 bytes per 64 KiB.
func encSize(sealed int) int { return sealed + sealed/(64<<10)*16 + 4<<10 }

// large tells whether chunk c takes a large chunk's buffer: when its size
// is not known, it does.
func (c chunkRef) large() bool {
	return c.size <= 0 || c.size+content.MaxSealOverhead > smallChunk
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
	slots := make(chan struct{}, uploadWorkers)
	buffers := make(chan []byte, uploadLarge)
	for range uploadLarge {
		buffers <- nil // allocated when first needed
	}
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
feed:
	for _, i := range missing {
		c := chunks[i]
		var buf []byte
		large := c.large()
		if large {
			select {
			case buf = <-buffers:
			case <-ctx.Done():
				break feed
			}
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break feed
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if large && buf == nil {
				buf = make([]byte, 0, encBufSize)
			}
			ch, err := s.uploadChunk(ctx, t, c, recipients, buf)
			if large {
				if err != nil {
					// A target that failed may still be reading it (an
					// HTTP transport can, after its request failed).
					buf = nil
				}
				buffers <- buf
			}
			<-slots
			mu.Lock()
			defer mu.Unlock()
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
// its project's key), encrypts it with age into buf (a new buffer when buf
// is too small) and puts it on t under a name that carries the
// ciphertext's hash.
func (s *Service) uploadChunk(ctx context.Context, t backup.Target, c chunkRef, recipients []age.Recipient, buf []byte) (backup.Chunk, error) {
	addr := hex.EncodeToString(c.address)
	sealed, err := s.blobs().Get(ctx, c.project, content.Address(c.address))
	if err != nil {
		return backup.Chunk{}, fmt.Errorf("reading chunk %s of project %s: %w", addr, c.project, err)
	}
	if n := encSize(len(sealed)); cap(buf) < n {
		buf = make([]byte, 0, n)
	}
	out := bytes.NewBuffer(buf[:0])
	w, err := age.Encrypt(out, recipients...)
	if err != nil {
		return backup.Chunk{}, err
	}
	if _, err := w.Write(sealed); err != nil {
		return backup.Chunk{}, err
	}
	if err := w.Close(); err != nil {
		return backup.Chunk{}, err
	}
	sum := sha256.Sum256(out.Bytes())
	written := backup.Written{SHA256: hex.EncodeToString(sum[:]), Size: int64(out.Len())}
	written.Name = backup.ChunkName(c.project, addr, written.SHA256)
	if err := t.Put(ctx, written.Name, bytes.NewReader(out.Bytes())); err != nil {
		return backup.Chunk{}, err
	}
	return backup.Chunk{Project: c.project, Address: addr, Written: written}, nil
}
