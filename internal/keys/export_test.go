package keys

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"

	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	"github.com/tink-crypto/tink-go/v2/mac/hmac"
)

// Test-only views of secrets, for the scans that prove the key store holds
// none of them in the clear. Production code never extracts key bytes.

// RootSecrets returns the root key and the wrapping key derived from it.
func RootSecrets(r *Root) [][]byte {
	wk, err := hkdf.Key(sha256.New, r.key[:], nil, rootWrapLabel, 32)
	if err != nil {
		panic(err)
	}
	return [][]byte{append([]byte(nil), r.key[:]...), wk}
}

// WrappedKey is one live row of the key store with its unwrapped key bytes.
type WrappedKey struct {
	Ref     KeyRef
	KV      KeyVersion
	Wrapped []byte
	Raw     []byte
}

// LiveKeys unwraps every live key in the key store and returns the wrapped
// and the raw key bytes.
func LiveKeys(ctx context.Context, s *Store) ([]WrappedKey, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT id, version, kind, org_id, owner_id, wrapped, wrapped_by_id, wrapped_by_version FROM keys WHERE wrapped IS NOT NULL`)
	if err != nil {
		return nil, err
	}
	type row struct {
		WrappedKey
		parent  string
		version int
	}
	var all []row
	for rows.Next() {
		var (
			r        row
			id, kind string
		)
		if err := rows.Scan(&id, &r.KV.Version, &kind, &r.Ref.Org, &r.Ref.Owner, &r.Wrapped, &r.parent, &r.version); err != nil {
			rows.Close()
			return nil, err
		}
		r.KV.ID, _ = parseKeyID(id)
		r.Ref.Kind = Kind(kind)
		all = append(all, r)
	}
	rows.Close()
	var out []WrappedKey
	for _, r := range all {
		parent, err := s.parentAEAD(ctx, r.parent, r.version)
		if err != nil {
			return nil, err
		}
		h, err := unwrap(r.Ref, r.KV, r.Wrapped, parent, r.parent, r.version)
		if err != nil {
			return nil, err
		}
		e, err := h.Primary()
		if err != nil {
			return nil, err
		}
		switch k := e.Key().(type) {
		case *aesgcm.Key:
			r.Raw = k.KeyBytes().Data(insecuresecretdataaccess.Token{})
		case *hmac.Key:
			r.Raw = k.KeyBytes().Data(insecuresecretdataaccess.Token{})
		default:
			return nil, fmt.Errorf("unexpected key type %T", k)
		}
		out = append(out, r.WrappedKey)
	}
	return out, nil
}

// CachedKeys returns how many key versions the cache holds.
func CachedKeys(s *Store) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entries.len()
}
