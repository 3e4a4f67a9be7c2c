package audit_test

import (
	"testing"
	"time"

	"github.com/kluis/kluis/internal/audit"
)

// TestPrunedChainVerifiesOnlyBehindASignedRecord (R25): a chain whose
// first 4 events were removed verifies when a signed prune record vouches
// for event 4 (its sequence number and hash), also with a checkpoint at
// and below the pruned part; without the record, with a record of another
// key, another chain, a wrong hash, a record claiming less than was
// removed, or a checkpoint's signature passed off as a record, it is
// broken at the first missing or unlinked sequence number.
func TestPrunedChainVerifiesOnlyBehindASignedRecord(t *testing.T) {
	signer, other := mustGenerateSigner(t), mustGenerateSigner(t)
	pub := signer.PublicKey()
	all := newChain(testChain, 10)
	kept := all[4:]
	head := &audit.Head{Seq: 10, Hash: all[9].Hash}
	cps := []audit.Checkpoint{checkpointOf(signer, all[2]), checkpointOf(signer, all[3]), checkpointOf(signer, all[9])}
	prune := func(s *audit.Signer, chain string, e audit.Event) audit.Prune {
		p := audit.Prune{Chain: chain, Seq: e.Seq, Hash: e.Hash, At: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
		s.SignPrune(&p)
		return p
	}
	good := prune(signer, testChain, all[3])
	older := prune(signer, testChain, all[1])
	wrongHash := good
	wrongHash.Hash = all[2].Hash
	signer.SignPrune(&wrongHash)
	asCheckpoint := audit.Prune{Chain: testChain, Seq: cps[1].Seq, Hash: cps[1].Hash, At: cps[1].At, Signature: cps[1].Signature}

	cases := []struct {
		name   string
		prunes []audit.Prune
		ok     bool
		at     int64
	}{
		{"signed record", []audit.Prune{good}, true, 0},
		{"an older record beside it", []audit.Prune{older, good}, true, 0},
		{"no record", nil, false, 1},
		{"another key's record", []audit.Prune{prune(other, testChain, all[3])}, false, 1},
		{"another chain's record", []audit.Prune{prune(signer, "org:other", all[3])}, false, 1},
		{"a record with another hash", []audit.Prune{wrongHash}, false, 4},
		{"only the older record", []audit.Prune{older}, false, 3},
		{"a checkpoint's signature", []audit.Prune{asCheckpoint}, false, 1},
	}
	for _, c := range cases {
		r, err := audit.VerifyPrunedChain(testChain, eventsOf(kept), head, pub, cps, c.prunes)
		if err != nil {
			t.Fatal(err)
		}
		if r.OK != c.ok || (!c.ok && r.FirstBrokenSeq != c.at) {
			t.Errorf("%s: %+v, want ok=%v broken at %d", c.name, r, c.ok, c.at)
		}
	}
	// Unpruned, the whole chain verifies as before without any record.
	if r, _ := audit.VerifyPrunedChain(testChain, eventsOf(all), head, pub, cps, nil); !r.OK {
		t.Fatalf("the whole chain: %+v", r)
	}
}
