package content_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/kluis/kluis/internal/content"
)

func address(b byte) content.Address {
	var a content.Address
	for i := range a {
		a[i] = b + byte(i)
	}
	return a
}

// manifests are valid manifests of several shapes.
func manifests() []content.FileManifest {
	return []content.FileManifest{
		{},
		{Size: 1, Chunks: []content.ChunkRef{{address(1), 1}}},
		{Size: content.MaxChunkSize + 3, Chunks: []content.ChunkRef{{address(1), content.MaxChunkSize}, {address(2), 3}}},
		{Size: 3 * content.MinChunkSize, Chunks: []content.ChunkRef{{address(1), content.MinChunkSize}, {address(1), content.MinChunkSize}, {address(9), content.MinChunkSize}}},
	}
}

func TestManifestRoundTrip(t *testing.T) {
	for _, m := range manifests() {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if want := 16 + 36*len(m.Chunks); len(b) != want {
			t.Errorf("%d chunks encode in %d bytes, want %d", len(m.Chunks), len(b), want)
		}
		got, err := content.ParseFileManifest(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Size != m.Size || len(got.Chunks) != len(m.Chunks) {
			t.Fatalf("got %+v, want %+v", got, m)
		}
		for i := range m.Chunks {
			if got.Chunks[i] != m.Chunks[i] {
				t.Fatalf("chunk %d: got %+v, want %+v", i, got.Chunks[i], m.Chunks[i])
			}
		}
		if got.ETag() != m.ETag() {
			t.Error("the ETag changed in the round trip")
		}
	}
	// ETags differ when anything differs, and are 64 hex digits.
	seen := map[string]bool{}
	for _, m := range manifests() {
		e := m.ETag()
		if len(e) != 64 || seen[e] {
			t.Errorf("ETag %q is not a new 64-digit hash", e)
		}
		seen[e] = true
	}
}

// Malformed, truncated, inconsistent and oversized manifests are refused
// with ErrBadManifest.
func TestBadManifestsAreRefused(t *testing.T) {
	good, err := manifests()[2].MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"the prefix only", []byte("fm1:")},
		{"another version", with(func(b []byte) { b[2] = '2' })},
		{"truncated", good[:len(good)-1]},
		{"a trailing byte", append(bytes.Clone(good), 0)},
		{"a file size that does not add up", with(func(b []byte) { b[11]++ })},
		{"a negative file size", with(func(b []byte) { b[4] = 0x80 })},
		{"one chunk more than there is", with(func(b []byte) { b[15]++ })},
		{"a count of 2^32-1", with(func(b []byte) { binary.BigEndian.PutUint32(b[12:], 1<<32-1) })},
		{"an empty chunk", with(func(b []byte) {
			binary.BigEndian.PutUint32(b[16+36+32:], 0)
			binary.BigEndian.PutUint64(b[4:], content.MaxChunkSize)
		})},
		{"a chunk over the maximum size", with(func(b []byte) {
			binary.BigEndian.PutUint32(b[16+32:], content.MaxChunkSize+1)
			binary.BigEndian.PutUint64(b[4:], content.MaxChunkSize+4)
		})},
		{"more than the largest manifest", make([]byte, content.MaxManifestSize+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if m, err := content.ParseFileManifest(tt.b); !errors.Is(err, content.ErrBadManifest) {
				t.Fatalf("got %+v, %v; want ErrBadManifest", m, err)
			}
		})
	}
	for _, m := range []content.FileManifest{
		{Size: -1},
		{Size: 2, Chunks: []content.ChunkRef{{address(1), 1}}},
		{Size: 0, Chunks: []content.ChunkRef{{address(1), 0}}},
		{Size: content.MaxFileSize + 1},
	} {
		if _, err := m.MarshalBinary(); !errors.Is(err, content.ErrBadManifest) {
			t.Errorf("marshal %+v: got %v, want ErrBadManifest", m, err)
		}
	}
}

// ParseFileManifest never panics, and what it accepts encodes back to the
// same bytes (the encoding is canonical).
func FuzzParseFileManifest(f *testing.F) {
	for _, m := range manifests() {
		b, err := m.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte("fm1:"))
	f.Add([]byte("fm1:\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := content.ParseFileManifest(b)
		if err != nil {
			if !errors.Is(err, content.ErrBadManifest) {
				t.Fatalf("error %v does not wrap ErrBadManifest", err)
			}
			return
		}
		again, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("a parsed manifest does not marshal: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatal("a parsed manifest marshals to other bytes")
		}
	})
}
