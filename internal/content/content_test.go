package content_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/content"
	"github.com/kluis/kluis/internal/keys"
)

var ctx = context.Background()

// The key store is what the content store uses in production.
var _ content.ChunkKeys = (*keys.Store)(nil)

// fixture is a key store and a blob folder, in a temporary folder, for one
// organisation.
type fixture struct {
	keys *keys.Store
	dir  *content.Dir
	root string // the blob folder
	org  string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	tmp := t.TempDir()
	root, err := keys.GenerateRoot()
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keys.OpenStore(ctx, "sqlite://"+filepath.Join(tmp, "keys", "keys.db"), root, nil, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	f := &fixture{keys: ks, root: filepath.Join(tmp, "content"), org: kluis.NewID(time.Now())}
	if f.dir, err = content.OpenDir(f.root); err != nil {
		t.Fatal(err)
	}
	return f
}

// project makes a project's keys and returns its id and Sealer.
func (f *fixture) project(t testing.TB) (string, content.Sealer) {
	t.Helper()
	p := kluis.NewID(time.Now())
	if err := f.keys.EnsureProjectKey(ctx, f.org, p, "user:test"); err != nil {
		t.Fatal(err)
	}
	return p, content.ProjectSealer(f.keys, f.org, p)
}

// blobFile is where the Dir keeps a blob.
func (f *fixture) blobFile(project string, a content.Address) string {
	return filepath.Join(f.root, project, a.String()[:2], a.String())
}

// random returns a deterministic pseudo-random stream: the same for the same
// seed, on every run.
func random(seed byte) io.Reader {
	return rand.NewChaCha8([32]byte{seed, 'k', 'l', 'u', 'i', 's'})
}

func randomBytes(t testing.TB, seed byte, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(random(seed), b); err != nil {
		t.Fatal(err)
	}
	return b
}

func mustStore(t testing.TB, s content.Sealer, b content.Blobs, data []byte) content.Stored {
	t.Helper()
	st, err := content.Store(ctx, bytes.NewReader(data), s, b, int64(len(data)))
	if err != nil {
		t.Fatalf("store %d bytes: %v", len(data), err)
	}
	if st.Manifest.Size != int64(len(data)) {
		t.Fatalf("stored %d bytes, manifest says %d", len(data), st.Manifest.Size)
	}
	return st
}

func mustRead(t testing.TB, m content.FileManifest, s content.Sealer, b content.Blobs) []byte {
	t.Helper()
	got, err := io.ReadAll(content.NewReader(ctx, m, s, b))
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return got
}

// readFails reads the whole file and checks that it fails with every error
// of want.
func readFails(t testing.TB, m content.FileManifest, s content.Sealer, b content.Blobs, want ...error) {
	t.Helper()
	_, err := io.ReadAll(content.NewReader(ctx, m, s, b))
	if err == nil {
		t.Fatalf("read succeeded, want %v", want)
	}
	for _, w := range want {
		if !errors.Is(err, w) {
			t.Fatalf("read: got %v, want %v", err, w)
		}
	}
}

// countingBlobs counts what reaches the Blobs it wraps.
type countingBlobs struct {
	content.Blobs
	mu         sync.Mutex
	puts, gets int
}

func (c *countingBlobs) Put(ctx context.Context, project string, a content.Address, sealed []byte) error {
	c.mu.Lock()
	c.puts++
	c.mu.Unlock()
	return c.Blobs.Put(ctx, project, a, sealed)
}

func (c *countingBlobs) Get(ctx context.Context, project string, a content.Address) ([]byte, error) {
	c.mu.Lock()
	c.gets++
	c.mu.Unlock()
	return c.Blobs.Get(ctx, project, a)
}

// chunkSizes cuts data and returns the chunks' sizes.
func chunkSizes(t testing.TB, data []byte) []int {
	t.Helper()
	var sizes []int
	if err := content.Cut(bytes.NewReader(data), nil, func(c []byte) error {
		sizes = append(sizes, len(c))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return sizes
}

// DESIGN §8: files of every size, chunk boundaries included, come back as
// they were stored.
func TestStoreAndReadRoundTrip(t *testing.T) {
	f := newFixture(t)
	_, s := f.project(t)
	const tenMiB = 10 << 20
	data := randomBytes(t, 1, tenMiB+content.MaxChunkSize)
	cuts := chunkSizes(t, data[:tenMiB])
	if len(cuts) < 3 {
		t.Fatalf("10 MiB cut into %d chunks", len(cuts))
	}
	// A repeated 64-byte block has no cut point: chunks of exactly
	// MaxChunkSize, all the same.
	block := bytes.Repeat(data[:64], tenMiB/64)

	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", data[:1]},
		{"one byte short of the first cut", data[:cuts[0]-1]},
		{"exactly the first chunk", data[:cuts[0]]},
		{"one byte past the first cut", data[:cuts[0]+1]},
		{"exactly two chunks", data[:cuts[0]+cuts[1]]},
		{"the minimum chunk size", data[:content.MinChunkSize]},
		{"the maximum chunk size", data[:content.MaxChunkSize]},
		{"one byte more than the maximum chunk size", data[:content.MaxChunkSize+1]},
		{"10 MiB", data[:tenMiB]},
		{"10 MiB without a cut point", block},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := mustStore(t, s, f.dir, tt.data)
			if got := mustRead(t, st.Manifest, s, f.dir); !bytes.Equal(got, tt.data) {
				t.Fatalf("read back %d bytes that differ from the %d stored", len(got), len(tt.data))
			}
			for i, c := range st.Manifest.Chunks {
				if c.Size > content.MaxChunkSize || (i < len(st.Manifest.Chunks)-1 && c.Size < content.MinChunkSize) {
					t.Errorf("chunk %d of %d has %d bytes", i, len(st.Manifest.Chunks), c.Size)
				}
			}
			enc, err := st.Manifest.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			m, err := content.ParseFileManifest(enc)
			if err != nil {
				t.Fatal(err)
			}
			if got := mustRead(t, m, s, f.dir); !bytes.Equal(got, tt.data) {
				t.Fatal("the parsed manifest reads other bytes")
			}
		})
	}
	st := mustStore(t, s, f.dir, block)
	if len(st.Manifest.Chunks) != 3 || st.Manifest.Chunks[0].Size != content.MaxChunkSize || st.Manifest.Chunks[0].Address != st.Manifest.Chunks[1].Address {
		t.Errorf("10 MiB without a cut point: got chunks %v, want two equal chunks of %d bytes and the rest", st.Manifest.Chunks, content.MaxChunkSize)
	}
}

// DESIGN §8: chunks are about 1 MiB on average, and cut where the content
// says: the same cut points on every run.
func TestCutPointsAreContentDefinedAndStable(t *testing.T) {
	data := randomBytes(t, 2, 64<<20)
	sizes := chunkSizes(t, data)
	total := 0
	for i, n := range sizes {
		total += n
		if n > content.MaxChunkSize || (i < len(sizes)-1 && n < content.MinChunkSize) {
			t.Errorf("chunk %d has %d bytes", i, n)
		}
	}
	if total != len(data) {
		t.Fatalf("chunks hold %d bytes, want %d", total, len(data))
	}
	if avg := total / len(sizes); avg < 768<<10 || avg > 1280<<10 {
		t.Errorf("chunks average %d bytes, want about 1 MiB", avg)
	}
	// The boundaries are part of the format: a change of gear table, masks or
	// bounds would store every old file's chunks anew.
	want := []int{1223494, 991201, 1079321, 1238799, 1223391}
	for i, n := range want {
		if sizes[i] != n {
			t.Fatalf("the first chunks are %v, want %v: the cut points changed", sizes[:len(want)], want)
		}
	}
	// A buffer too small is replaced, not overrun.
	small := make([]byte, 0, 1024)
	if got := chunkSizes(t, data[:3<<20]); len(got) == 0 {
		t.Fatal("no chunks")
	}
	if err := content.Cut(bytes.NewReader(data[:3<<20]), small, func([]byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
	// fn's error stops the cut.
	stop := errors.New("stop")
	if err := content.Cut(bytes.NewReader(data), nil, func([]byte) error { return stop }); err != stop {
		t.Errorf("got %v, want fn's error", err)
	}
}

// DESIGN §8: the same content stored twice (two files of a project) puts its
// chunks once; the same content in another project is stored again, under
// other addresses.
func TestIdenticalContentIsStoredOncePerProject(t *testing.T) {
	f := newFixture(t)
	_, s := f.project(t)
	_, other := f.project(t)
	blobs := &countingBlobs{Blobs: f.dir}
	data := randomBytes(t, 3, 50<<20)

	first := mustStore(t, s, blobs, data)
	n := len(first.Manifest.Chunks)
	if blobs.puts != n || len(first.New) != n || len(first.Found) != 0 {
		t.Fatalf("first file: %d puts, %d new, %d found; want %d, %d, 0", blobs.puts, len(first.New), len(first.Found), n, n)
	}
	second := mustStore(t, s, blobs, data)
	if blobs.puts != n || len(second.New) != 0 || len(second.Found) != n {
		t.Errorf("second file: %d puts in all, %d new, %d found; want %d, 0, %d", blobs.puts, len(second.New), len(second.Found), n, n)
	}
	if first.Manifest.ETag() != second.Manifest.ETag() {
		t.Error("identical content in one project has two ETags")
	}
	if got := mustRead(t, second.Manifest, s, f.dir); !bytes.Equal(got, data) {
		t.Error("the second file reads other bytes")
	}

	third := mustStore(t, other, blobs, data)
	if blobs.puts != 2*n || len(third.New) != n {
		t.Errorf("another project: %d puts in all, %d new; want %d, %d", blobs.puts, len(third.New), 2*n, n)
	}
	for i := range third.Manifest.Chunks {
		if third.Manifest.Chunks[i].Address == first.Manifest.Chunks[i].Address {
			t.Fatalf("chunk %d has the same address in two projects", i)
		}
	}
	if third.Manifest.ETag() == first.Manifest.ETag() {
		t.Error("identical content in two projects has the same ETag")
	}
	if other := mustStore(t, s, blobs, data[1:]); other.Manifest.ETag() == first.Manifest.ETag() {
		t.Error("other content has the same ETag")
	}
}

// DESIGN §8: a byte inserted in the middle of a large file changes only the
// chunks around it; the rest is found, not stored again.
func TestAnInsertedByteChangesOnlyNearbyChunks(t *testing.T) {
	f := newFixture(t)
	_, s := f.project(t)
	data := randomBytes(t, 4, 32<<20)
	first := mustStore(t, s, f.dir, data)
	edited := make([]byte, 0, len(data)+1)
	edited = append(append(append(edited, data[:len(data)/2]...), 'x'), data[len(data)/2:]...)
	second := mustStore(t, s, f.dir, edited)
	t.Logf("%d chunks; the inserted byte made %d new", len(second.Manifest.Chunks), len(second.New))
	if len(second.New) > 2 {
		t.Errorf("an inserted byte made %d new chunks of %d, want at most 2", len(second.New), len(second.Manifest.Chunks))
	}
	if len(second.Found) < len(first.Manifest.Chunks)-2 {
		t.Errorf("found %d of the %d chunks again", len(second.Found), len(first.Manifest.Chunks))
	}
	if got := mustRead(t, second.Manifest, s, f.dir); !bytes.Equal(got, edited) {
		t.Error("the edited file reads other bytes")
	}
}

// DESIGN §8: a large file streams through in bounded memory, both ways.
func TestLargeFileStreamsInBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("stores and reads 256 MiB")
	}
	f := newFixture(t)
	_, s := f.project(t)
	const size = 256 << 20
	const bound = 48 << 20

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()

	written := sha256.New()
	st, err := content.Store(ctx, io.TeeReader(io.LimitReader(random(5), size), written), s, f.dir, size)
	if err != nil {
		t.Fatal(err)
	}
	storePeak := peak.Swap(0)
	read := sha256.New()
	n, err := io.Copy(read, content.NewReader(ctx, st.Manifest, s, f.dir))
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if n != size || !bytes.Equal(read.Sum(nil), written.Sum(nil)) {
		t.Fatalf("read %d bytes back with another hash than the %d written", n, size)
	}
	for what, p := range map[string]uint64{"storing": storePeak, "reading": peak.Load()} {
		growth := int64(p) - int64(base)
		t.Logf("%s %d MiB in %d chunks: the heap in use peaked %d MiB above the %d MiB before", what, size>>20, len(st.Manifest.Chunks), growth>>20, base>>20)
		if growth > bound {
			t.Errorf("%s, the heap in use grew by %d MiB, want under %d MiB", what, growth>>20, bound>>20)
		}
	}
}

// Range requests: reads after any seek return the file's bytes there.
func TestSeekAndReadAnywhere(t *testing.T) {
	f := newFixture(t)
	_, s := f.project(t)
	data := randomBytes(t, 6, 7<<20+123)
	st := mustStore(t, s, f.dir, data)
	blobs := &countingBlobs{Blobs: f.dir}
	r := content.NewReader(ctx, st.Manifest, s, blobs)
	if r.Size() != int64(len(data)) {
		t.Fatalf("size %d, want %d", r.Size(), len(data))
	}
	rng := rand.New(rand.NewPCG(7, 7))
	var offsets []int64
	var at int64
	for _, c := range st.Manifest.Chunks {
		offsets = append(offsets, at-1, at, at+1) // around every boundary
		at += int64(c.Size)
	}
	for range 40 {
		offsets = append(offsets, rng.Int64N(int64(len(data))))
	}
	buf := make([]byte, 3<<20)
	for _, off := range offsets {
		if off < 0 {
			continue
		}
		n := min(int64(1+rng.IntN(len(buf))), int64(len(data))-off)
		if got, err := r.Seek(off, io.SeekStart); err != nil || got != off {
			t.Fatalf("seek %d: %d, %v", off, got, err)
		}
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			t.Fatalf("read %d bytes at %d: %v", n, off, err)
		}
		if !bytes.Equal(buf[:n], data[off:off+n]) {
			t.Fatalf("%d bytes at %d differ", n, off)
		}
	}
	// Relative seeks, the end, and beyond it.
	if pos, err := r.Seek(-10, io.SeekEnd); err != nil || pos != int64(len(data))-10 {
		t.Fatalf("seek from the end: %d, %v", pos, err)
	}
	if pos, err := r.Seek(5, io.SeekCurrent); err != nil || pos != int64(len(data))-5 {
		t.Fatalf("seek from the current position: %d, %v", pos, err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, data[len(data)-5:]) {
		t.Fatalf("the last 5 bytes: %q, %v", got, err)
	}
	if _, err := r.Seek(1, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("read past the end: %d, %v; want 0, EOF", n, err)
	}
	if _, err := r.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("seek before the start succeeded")
	}
	// Small reads within a chunk fetch it once; a range within one chunk
	// fetches no other.
	blobs.gets = 0
	middle := st.Manifest.Chunks[0].Size + 100
	r.Seek(int64(middle), io.SeekStart)
	for range 100 {
		if _, err := io.ReadFull(r, buf[:1000]); err != nil {
			t.Fatal(err)
		}
	}
	if blobs.gets != 1 {
		t.Errorf("100 small reads in one chunk fetched %d chunks, want 1", blobs.gets)
	}
	// Reading the whole file, with the chunk after the current one read
	// ahead, fetches every chunk once.
	blobs.gets = 0
	whole, err := io.ReadAll(content.NewReader(ctx, st.Manifest, s, blobs))
	if err != nil || !bytes.Equal(whole, data) {
		t.Fatalf("read the whole file: %d bytes, %v", len(whole), err)
	}
	if blobs.gets != len(st.Manifest.Chunks) {
		t.Errorf("reading the whole file fetched %d chunks, want %d", blobs.gets, len(st.Manifest.Chunks))
	}
}

// http.ServeContent answers Range requests from a Reader.
func TestServeContentRanges(t *testing.T) {
	f := newFixture(t)
	_, s := f.project(t)
	data := randomBytes(t, 14, 5<<20)
	st := mustStore(t, s, f.dir, data)
	for _, tt := range []struct {
		header     string
		start, end int // the bytes wanted, end exclusive
	}{
		{"bytes=0-0", 0, 1},
		{"bytes=1000000-2999999", 1000000, 3000000},
		{"bytes=-100", len(data) - 100, len(data)},
		{"bytes=4000000-", 4000000, len(data)},
	} {
		req := httptest.NewRequest("GET", "/file", nil)
		req.Header.Set("Range", tt.header)
		w := httptest.NewRecorder()
		http.ServeContent(w, req, "file", time.Time{}, content.NewReader(ctx, st.Manifest, s, f.dir))
		if w.Code != http.StatusPartialContent {
			t.Fatalf("%s: status %d, want 206", tt.header, w.Code)
		}
		if !bytes.Equal(w.Body.Bytes(), data[tt.start:tt.end]) {
			t.Errorf("%s: got %d bytes that are not bytes %d to %d", tt.header, w.Body.Len(), tt.start, tt.end)
		}
	}
}

// A blob altered, truncated, swapped with another, or moved to another
// project does not open; a chunk that opens but is not the manifest's is
// ErrCorrupt. No read returns other bytes.
func TestTamperedContentFailsToRead(t *testing.T) {
	f := newFixture(t)
	project, s := f.project(t)
	otherProject, other := f.project(t)
	data := randomBytes(t, 8, 6<<20)
	st := mustStore(t, s, f.dir, data)
	m := st.Manifest
	if len(m.Chunks) < 3 {
		t.Fatalf("want at least 3 chunks, got %d", len(m.Chunks))
	}
	a0, a1 := m.Chunks[0].Address, m.Chunks[1].Address
	file0, file1 := f.blobFile(project, a0), f.blobFile(project, a1)
	orig0, err := os.ReadFile(file0)
	if err != nil {
		t.Fatal(err)
	}
	orig1, err := os.ReadFile(file1)
	if err != nil {
		t.Fatal(err)
	}
	write := func(file string, b []byte) {
		t.Helper()
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	restore := func() {
		write(file0, orig0)
		write(file1, orig1)
		if got := mustRead(t, m, s, f.dir); !bytes.Equal(got, data) {
			t.Fatal("the restored file reads other bytes")
		}
	}

	t.Run("a flipped byte", func(t *testing.T) {
		defer restore()
		b := bytes.Clone(orig0)
		b[len(b)/2] ^= 0x40
		write(file0, b)
		readFails(t, m, s, f.dir, keys.ErrDecrypt)
	})
	t.Run("a truncated blob", func(t *testing.T) {
		defer restore()
		write(file0, orig0[:len(orig0)-1])
		readFails(t, m, s, f.dir, keys.ErrDecrypt)
	})
	t.Run("two blobs swapped", func(t *testing.T) {
		defer restore()
		write(file0, orig1)
		write(file1, orig0)
		readFails(t, m, s, f.dir, keys.ErrDecrypt)
	})
	t.Run("a missing blob", func(t *testing.T) {
		defer restore()
		if err := os.Remove(file1); err != nil {
			t.Fatal(err)
		}
		readFails(t, m, s, f.dir, content.ErrCorrupt, content.ErrNotFound)
	})
	t.Run("blobs moved to another project", func(t *testing.T) {
		// The other project's folder gets this project's blobs at the
		// same addresses, and is read with its own keys.
		for _, c := range m.Chunks {
			b, err := os.ReadFile(f.blobFile(project, c.Address))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.dir.Put(ctx, otherProject, c.Address, b); err != nil {
				t.Fatal(err)
			}
		}
		readFails(t, m, other, f.dir, keys.ErrDecrypt)
		// And one blob of another project put at an address of this one.
		theirs := mustStore(t, other, f.dir, data[:1<<20])
		b, err := f.dir.Get(ctx, otherProject, theirs.Manifest.Chunks[0].Address)
		if err != nil {
			t.Fatal(err)
		}
		defer restore()
		write(file0, b)
		readFails(t, m, s, f.dir, keys.ErrDecrypt)
	})
	t.Run("a chunk sealed for its address with content of another length", func(t *testing.T) {
		// Sealing needs the project's key: only the store's writer, or
		// someone holding the key store and root key (who could as well
		// rewrite the manifest), can make one. The length still gives it
		// away.
		defer restore()
		fake := randomBytes(t, 9, int(m.Chunks[0].Size)-1)
		b, err := f.keys.SealChunk(ctx, f.org, project, a0, fake)
		if err != nil {
			t.Fatal(err)
		}
		write(file0, b)
		readFails(t, m, s, f.dir, content.ErrCorrupt)
	})
	t.Run("a manifest with a wrong chunk length", func(t *testing.T) {
		bad := content.FileManifest{Size: m.Size + 1, Chunks: append([]content.ChunkRef(nil), m.Chunks...)}
		bad.Chunks[1].Size++
		r := content.NewReader(ctx, bad, s, f.dir)
		buf := make([]byte, m.Chunks[0].Size)
		if _, err := io.ReadFull(r, buf); err != nil {
			t.Fatalf("the first chunk: %v", err)
		}
		n, err := r.Read(buf)
		if n != 0 || !errors.Is(err, content.ErrCorrupt) {
			t.Fatalf("the second chunk: %d bytes, %v; want 0, ErrCorrupt", n, err)
		}
	})
	t.Run("an inconsistent manifest", func(t *testing.T) {
		bad := content.FileManifest{Size: m.Size - 1, Chunks: m.Chunks}
		readFails(t, bad, s, f.dir, content.ErrBadManifest)
	})
}

// R15 DESIGN §8: the content folder holds no plaintext, in any encoding.
func TestContentFolderHoldsNoPlaintext(t *testing.T) {
	f := newFixture(t)
	_, s := f.project(t)
	marker := []byte("KLUIS-CONTENT-MARKER 7f3a9c Zoë")
	var data []byte
	noise := randomBytes(t, 10, 3<<20)
	for i := 0; i < len(noise); i += 64 << 10 {
		data = append(append(data, noise[i:i+64<<10]...), marker...)
	}
	st := mustStore(t, s, f.dir, data)
	mustStore(t, s, f.dir, marker) // a file that is only the marker

	forms := encodings(marker)
	files := 0
	err := filepath.WalkDir(f.root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			if perm := info.Mode().Perm(); perm != 0o700 {
				t.Errorf("folder %s has mode %v, want 0700", path, perm)
			}
			return nil
		}
		files++
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("blob %s has mode %v, want 0600", path, perm)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for name, form := range forms {
			if bytes.Contains(b, form) {
				t.Errorf("%s holds the marker (%s)", path, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files != len(st.New)+1 {
		t.Errorf("the folder holds %d files, want %d blobs", files, len(st.New)+1)
	}
}

// R31 R34 DESIGN §8: once the project key is destroyed, nothing of the
// project reads and nothing can be stored or addressed.
func TestDestroyedProjectKeyLeavesNothingReadable(t *testing.T) {
	f := newFixture(t)
	project, s := f.project(t)
	_, kept := f.project(t)
	data := randomBytes(t, 11, 3<<20)
	st := mustStore(t, s, f.dir, data)
	keptSt := mustStore(t, kept, f.dir, data)

	if err := f.keys.DestroyProjectKey(ctx, f.org, project, "user:test"); err != nil {
		t.Fatal(err)
	}
	readFails(t, st.Manifest, s, f.dir, keys.ErrKeyDestroyed)
	if _, err := f.keys.ContentAddress(ctx, f.org, project, data[:100]); !errors.Is(err, keys.ErrKeyDestroyed) {
		t.Errorf("content address: got %v, want ErrKeyDestroyed", err)
	}
	if _, err := content.Store(ctx, bytes.NewReader(data), s, f.dir, int64(len(data))); !errors.Is(err, keys.ErrKeyDestroyed) {
		t.Errorf("store: got %v, want ErrKeyDestroyed", err)
	}
	if got := mustRead(t, keptSt.Manifest, kept, f.dir); !bytes.Equal(got, data) {
		t.Error("another project's file reads other bytes")
	}
	// The blobs can go too, and the folder with them.
	if err := f.dir.DeleteProject(ctx, project); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(f.root, project)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the project's folder is still there: %v", err)
	}
}

// A file over the limit fails with ErrTooLarge as soon as the limit is
// passed, without reading the rest.
func TestStoreEnforcesTheSizeLimit(t *testing.T) {
	f := newFixture(t)
	_, s := f.project(t)
	data := randomBytes(t, 12, 3<<20)
	if _, err := content.Store(ctx, bytes.NewReader(data), s, f.dir, int64(len(data))); err != nil {
		t.Fatalf("a file of exactly the limit: %v", err)
	}
	if _, err := content.Store(ctx, bytes.NewReader(data), s, f.dir, int64(len(data)-1)); !errors.Is(err, content.ErrTooLarge) {
		t.Fatalf("a file one byte over the limit: got %v, want ErrTooLarge", err)
	}
	if _, err := content.Store(ctx, bytes.NewReader(nil), s, f.dir, 0); err != nil {
		t.Fatalf("an empty file with limit 0: %v", err)
	}
	if _, err := content.Store(ctx, bytes.NewReader(data), s, f.dir, -1); err == nil {
		t.Fatal("a negative limit was accepted")
	}
	// An endless stream stops at the limit.
	const limit = 5 << 20
	src := &countingReader{r: random(13)}
	st, err := content.Store(ctx, src, s, f.dir, limit)
	if !errors.Is(err, content.ErrTooLarge) {
		t.Fatalf("an endless stream: got %v, want ErrTooLarge", err)
	}
	if src.n > limit+1 {
		t.Errorf("read %d bytes of an endless stream, want at most %d", src.n, limit+1)
	}
	if len(st.New) == 0 {
		t.Error("the chunks put before the limit was passed are not reported")
	}
	// A cancelled context stops the store.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := content.Store(cctx, bytes.NewReader(data), s, f.dir, int64(len(data))); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled store: got %v, want context.Canceled", err)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
