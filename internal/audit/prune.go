package audit

import (
	"crypto/ed25519"
	"iter"
	"time"
)

// Pruning (R25, retention): an organisation keeps its audit events for a
// set time; older events are removed from the start of the chain. What
// vouches for the removal is a [Prune]: a signed statement, under the
// checkpoint key but another label, that events 1..Seq of Chain were
// removed on purpose and that event Seq had hash Hash. The verifier then
// starts the chain at Seq+1, whose PrevHash must be Hash. Rows deleted from
// the start of a chain without such a record — by hand, by an attacker who
// cannot sign — remain a "sequence gap" at 1 (or a broken link), exactly as
// before.
//
// Of several prune records of one chain, the one with the highest Seq
// counts: an older one vouches for less. Deleting the newest prune record
// (while its events are gone) leaves a gap after the older one's Seq, so
// that is detected too.

// PruneLabel separates prune signatures from checkpoint signatures: a
// checkpoint can never be passed off as a prune record, nor the reverse.
const PruneLabel = "kluis/prune/v1"

// ProblemBadPruneSignature names a prune record whose signature fails, and
// ProblemPruneMismatch one that disagrees with a checkpoint of its Seq.
const (
	ProblemBadPruneSignature = "bad prune signature"
	ProblemPruneMismatch     = "prune record does not match checkpoint"
)

// Prune is a signed statement that the events 1..Seq of Chain were pruned,
// event Seq having had hash Hash, at time At.
type Prune struct {
	Chain     string
	Seq       int64
	Hash      Hash
	At        time.Time
	Signature []byte
}

// signedBytes is PruneLabel ‖ uint32 length ‖ Chain ‖ Seq ‖ Hash ‖
// At.UnixMicro(), integers 8-byte big-endian (as a checkpoint's, with
// another label).
func (p *Prune) signedBytes() []byte {
	return signedStatement(PruneLabel, p.Chain, p.Seq, p.Hash, p.At)
}

// SignPrune sets p.Signature.
func (s *Signer) SignPrune(p *Prune) {
	p.Signature = ed25519.Sign(s.key, p.signedBytes())
}

// VerifyPrune reports whether p.Signature is pub's signature of p.
func VerifyPrune(pub ed25519.PublicKey, p Prune) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	return ed25519.Verify(pub, p.signedBytes(), p.Signature)
}

// StartAfterPrune tells the verifier that the chain's start was pruned:
// of the validly signed prune records of its chain, the highest decides
// where the events must begin (its Seq+1, linked to its Hash). A record
// with a bad signature breaks the chain at its Seq. Call it before the
// first Add; records of other chains are ignored.
func (v *Verifier) StartAfterPrune(pub ed25519.PublicKey, prunes []Prune) {
	var best *Prune
	for i, p := range prunes {
		if p.Chain != v.chain {
			continue
		}
		if p.Seq < 1 || !VerifyPrune(pub, p) {
			v.fail(max(p.Seq, 1), ProblemBadPruneSignature)
			continue
		}
		if best == nil || p.Seq > best.Seq {
			best = &prunes[i]
		}
	}
	if best == nil {
		return
	}
	if h, ok := v.checkpoints[best.Seq]; ok && h != best.Hash {
		v.fail(best.Seq, ProblemPruneMismatch)
	}
	v.next, v.prev = best.Seq+1, best.Hash
}

// VerifyPrunedChain is [VerifyChain] for a chain whose start may have been
// pruned behind the given prune records.
func VerifyPrunedChain(chain string, events iter.Seq2[Event, error], head *Head, pub ed25519.PublicKey, checkpoints []Checkpoint, prunes []Prune) (Result, error) {
	v := NewVerifier(chain, pub, checkpoints)
	v.StartAfterPrune(pub, prunes)
	for e, err := range events {
		if err != nil {
			return Result{Chain: chain}, err
		}
		if !v.Add(e) {
			break
		}
	}
	return v.Finish(head), nil
}
