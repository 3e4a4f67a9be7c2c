package content_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/kluis/kluis/internal/content"
)

// The benchmarks move benchSize bytes, through the content store and, for
// comparison, straight to and from a file in the same file system (the
// target: the content store at half the disk's speed or better):
//
//	go test -run '^$' -bench . -benchtime 5x ./internal/content/
const benchSize = 64 << 20

// BenchmarkStore stores a new file (into a new project, so nothing is
// deduplicated): cut, address, seal, write and sync every chunk.
func BenchmarkStore(b *testing.B) {
	f := newFixture(b)
	data := randomBytes(b, 20, benchSize)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		_, s := f.project(b)
		b.StartTimer()
		if _, err := content.Store(ctx, bytes.NewReader(data), s, f.dir, benchSize); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead reads a stored file: fetch, open and check every chunk.
func BenchmarkRead(b *testing.B) {
	f := newFixture(b)
	_, s := f.project(b)
	st := mustStore(b, s, f.dir, randomBytes(b, 21, benchSize))
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		n, err := io.Copy(io.Discard, content.NewReader(ctx, st.Manifest, s, f.dir))
		if err != nil || n != benchSize {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkCut only cuts (no keys, no disk).
func BenchmarkCut(b *testing.B) {
	data := randomBytes(b, 22, benchSize)
	buf := make([]byte, 0, content.MaxChunkSize)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		if err := content.Cut(bytes.NewReader(data), buf, func([]byte) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDiskWrite is the disk's own sequential write of the same bytes:
// one file written in 1 MiB pieces and synced once.
func BenchmarkDiskWrite(b *testing.B) {
	dir := b.TempDir()
	data := randomBytes(b, 23, benchSize)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		path := filepath.Join(dir, "file")
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < len(data); off += 1 << 20 {
			if _, err := f.Write(data[off : off+1<<20]); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.Remove(path)
		b.StartTimer()
	}
}

// BenchmarkDiskRead is the disk's own sequential read of the same bytes,
// in 1 MiB pieces (from the page cache, as the content store's reads are).
func BenchmarkDiskRead(b *testing.B) {
	path := filepath.Join(b.TempDir(), "file")
	if err := os.WriteFile(path, randomBytes(b, 24, benchSize), 0o600); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
		f.Close()
		if err != nil || n != benchSize {
			b.Fatal(n, err)
		}
	}
}
