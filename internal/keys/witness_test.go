package keys_test

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/keys"
)

// DESIGN §3: in scale-out mode the key store witnesses audit checkpoints;
// what one process appends, another reads back whole and in order, and the
// signatures still verify.
func TestKeyStoreWitnessesCheckpoints(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		signer, err := audit.LoadOrCreateSigner(filepath.Join(t.TempDir(), "signing.key"))
		if err != nil {
			t.Fatal(err)
		}
		var want []audit.Checkpoint
		for i, chain := range []string{"platform", "org:a", "platform"} {
			c := audit.Checkpoint{Chain: chain, Seq: int64(10 + i), At: time.Now().UTC().Truncate(time.Microsecond)}
			c.Hash[0], c.Hash[31] = byte(i+1), 0xee
			signer.Sign(&c)
			if err := e.store.Witness().Append(c); err != nil {
				t.Fatal(err)
			}
			want = append(want, c)
		}
		other := e.open(t, e.root, keys.Options{})
		got, err := other.Witness().Checkpoints()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("witnessed checkpoints:\n got %+v\nwant %+v", got, want)
		}
		for _, c := range got {
			if !audit.VerifyCheckpoint(signer.PublicKey(), c) {
				t.Errorf("checkpoint %s/%d no longer verifies", c.Chain, c.Seq)
			}
		}
	})
}
