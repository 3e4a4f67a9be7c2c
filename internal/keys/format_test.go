package keys_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
)

func TestParseCiphertextFindsTheKeyVersion(t *testing.T) {
	e := newEnv(t, keys.SQLite)
	org := kluistest.Name("org")
	f := keys.FieldRef{Org: org, Table: "audit", Column: "client", Row: "1"}
	c := mustSeal(t, e.store, keys.OrgKey(org), f, "192.0.2.1")
	kv, err := keys.ParseCiphertext(c)
	if err != nil {
		t.Fatal(err)
	}
	active, err := e.store.ActiveVersion(ctx, keys.OrgKey(org))
	if err != nil {
		t.Fatal(err)
	}
	if kv != active {
		t.Errorf("parsed %v, want the active version %v", kv, active)
	}
	if _, err := e.store.ActiveVersion(ctx, keys.UserKey(org, "nobody")); !errors.Is(err, keys.ErrNoKey) {
		t.Errorf("active version of a key never made: got %v, want ErrNoKey", err)
	}
}

func FuzzParseCiphertext(f *testing.F) {
	valid := []byte("v1:0123456789abcdef")
	valid = binary.BigEndian.AppendUint32(valid, 1)
	valid = append(valid, make([]byte, 12+16)...)
	f.Add(valid)
	f.Add([]byte{})
	f.Add([]byte("v1:"))
	f.Add(append([]byte("v2:"), valid[3:]...))
	f.Add(valid[:len(valid)-1])
	f.Add(append(bytes.Clone(valid[:19]), 0xff, 0xff, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, c []byte) {
		kv, err := keys.ParseCiphertext(c)
		if err != nil {
			if !errors.Is(err, keys.ErrDecrypt) {
				t.Fatalf("error %v does not wrap ErrDecrypt", err)
			}
			return
		}
		if len(c) < keys.Overhead || !bytes.HasPrefix(c, []byte("v1:")) {
			t.Fatalf("accepted %d bytes %q", len(c), c)
		}
		if kv.Version < 1 || !bytes.Equal(kv.ID[:], c[3:19]) {
			t.Fatalf("parsed %v from %x", kv, c)
		}
	})
}

// Seal and Open of a 64-byte field with the key cached: the cost every
// encrypted column adds to a request.
func BenchmarkSeal64(b *testing.B) {
	e := newEnv(b, keys.SQLite)
	org, user := kluistest.Name("org"), kluistest.Name("user")
	f := userField(org, user, "email")
	plaintext := bytes.Repeat([]byte("a"), 64)
	mustSeal(b, e.store, keys.UserKey(org, user), f, "warm")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.store.Seal(ctx, keys.UserKey(org, user), f, plaintext); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen64(b *testing.B) {
	e := newEnv(b, keys.SQLite)
	org, user := kluistest.Name("org"), kluistest.Name("user")
	f := userField(org, user, "email")
	c := mustSeal(b, e.store, keys.UserKey(org, user), f, string(bytes.Repeat([]byte("a"), 64)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.store.Open(ctx, f, c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBlindIndex(b *testing.B) {
	e := newEnv(b, keys.SQLite)
	org := kluistest.Name("org")
	if _, err := e.store.BlindIndex(ctx, org, "warm"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.store.BlindIndex(ctx, org, "ada.lovelace@example.org"); err != nil {
			b.Fatal(err)
		}
	}
}
