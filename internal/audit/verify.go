package audit

import (
	"crypto/ed25519"
	"iter"
)

// The problems a [Result] can name. They are short English phrases without
// personal data, safe for logs, the command line and managers.
const (
	ProblemSequenceGap            = "sequence gap"
	ProblemSequenceOrder          = "sequence out of order"
	ProblemWrongChain             = "event of another chain"
	ProblemHashMismatch           = "hash mismatch"
	ProblemPrevHashMismatch       = "prev hash mismatch"
	ProblemHeadMissing            = "head missing"
	ProblemHeadMismatch           = "head does not match chain"
	ProblemCheckpointBeyondEnd    = "checkpoint beyond end of chain"
	ProblemCheckpointMismatch     = "checkpoint hash mismatch"
	ProblemCheckpointConflict     = "conflicting checkpoints"
	ProblemCheckpointNotOnChain   = "checkpoint not on chain"
	ProblemBadCheckpointSignature = "bad checkpoint signature"
)

// Head is a chain-head row as stored: the sequence number and hash of the
// newest event. Callers pass a nil *Head when the chain has no head row.
type Head struct {
	// Seq is the sequence number of the newest event.
	Seq int64
	// Hash is that event's Hash.
	Hash Hash
}

// Result is the outcome of verifying one chain.
type Result struct {
	// Chain is the chain id.
	Chain string
	// OK is true when nothing was found broken.
	OK bool
	// Checked is the number of events the walk examined: every event up to and
	// including the first broken one. Events fed after that are not examined.
	Checked int64
	// FirstBrokenSeq is the lowest broken sequence number, or 0 when OK.
	FirstBrokenSeq int64
	// Problem is one of the Problem constants, naming what is wrong at
	// FirstBrokenSeq ("" when OK). When several things are wrong at that
	// sequence number, one of them is named.
	Problem string
}

// Verifier checks one chain while its events stream past, in memory
// proportional to the number of checkpoints, not of events. Build one with
// [NewVerifier], feed it every event with [Verifier.Add] in ascending stored
// order, then call [Verifier.Finish] with the chain-head row. A Verifier is
// not safe for concurrent use.
//
// The result is the lowest sequence number at which any of these holds:
//
//   - the event found at position N has another sequence number: a higher one
//     is a "sequence gap" at N, a lower one (a duplicate) is "sequence out of
//     order" at N;
//   - event N names another chain, its Hash is not its ComputeHash(), or its
//     PrevHash is not the Hash of event N-1 (the zero Hash for event 1);
//   - a checkpoint for N has a bad signature, or two validly signed ones for N
//     disagree, or one disagrees with event N's Hash;
//   - a validly signed checkpoint lies beyond the newest event M: broken at M+1
//     (events were deleted from the end);
//   - the head row disagrees with the chain of newest event M: a missing head
//     row while the chain has events is broken at M+1 (the events that are
//     there verify, but the end of the chain cannot be vouched for); a head
//     past M at M+1; a head at H < M at H+1; a head at M with another hash at
//     M.
//
// A chain without events, head row or checkpoints is OK.
type Verifier struct {
	chain string
	// checkpoints holds the hash of every validly signed checkpoint of the
	// chain, by sequence number; maxCheckpoint is the highest of them.
	checkpoints   map[int64]Hash
	maxCheckpoint int64

	next    int64 // sequence number the next event must have
	prev    Hash  // Hash of event next-1, all zero before the first event
	checked int64

	broken  int64 // lowest broken sequence number found so far; 0 if none
	problem string
}

// NewVerifier returns a Verifier for chain. The checkpoints are the union of
// the database's and the witness's copies; duplicates are expected, and
// checkpoints of other chains are ignored, so callers may pass the whole
// witness. pub is the checkpoint signing key.
func NewVerifier(chain string, pub ed25519.PublicKey, checkpoints []Checkpoint) *Verifier {
	v := &Verifier{chain: chain, checkpoints: make(map[int64]Hash), next: 1}
	for _, c := range checkpoints {
		if c.Chain != chain {
			continue
		}
		switch {
		case !VerifyCheckpoint(pub, c):
			v.fail(max(c.Seq, 1), ProblemBadCheckpointSignature)
		case c.Seq < 1:
			v.fail(1, ProblemCheckpointNotOnChain)
		default:
			if h, ok := v.checkpoints[c.Seq]; ok && h != c.Hash {
				v.fail(c.Seq, ProblemCheckpointConflict)
				continue
			}
			v.checkpoints[c.Seq] = c.Hash
			v.maxCheckpoint = max(v.maxCheckpoint, c.Seq)
		}
	}
	return v
}

// fail records a problem at seq unless a lower one is already known.
func (v *Verifier) fail(seq int64, problem string) {
	if v.broken == 0 || seq < v.broken {
		v.broken, v.problem = seq, problem
	}
}

// Add checks the next event of the chain. It returns false once the chain is
// known to be broken at or before this event; the caller may then stop
// reading, as further events cannot change the result.
func (v *Verifier) Add(e Event) bool {
	if v.broken != 0 && v.next >= v.broken {
		return false
	}
	v.checked++
	switch {
	case e.Seq > v.next:
		v.fail(v.next, ProblemSequenceGap)
	case e.Seq < v.next:
		v.fail(v.next, ProblemSequenceOrder)
	case e.Chain != v.chain:
		v.fail(v.next, ProblemWrongChain)
	case e.ComputeHash() != e.Hash:
		v.fail(v.next, ProblemHashMismatch)
	case e.PrevHash != v.prev:
		v.fail(v.next, ProblemPrevHashMismatch)
	default:
		if h, ok := v.checkpoints[e.Seq]; ok && h != e.Hash {
			v.fail(v.next, ProblemCheckpointMismatch)
		}
	}
	if v.broken != 0 && v.next >= v.broken {
		return false
	}
	v.prev = e.Hash
	v.next++
	return true
}

// Finish compares the events seen with the checkpoints and the chain-head row
// (nil when there is none) and returns the result. Call it once, after the
// last Add.
//
// After the walk stopped at a broken event, the newest event Finish knows of
// is the one before it; every conclusion drawn from that is at or above the
// broken sequence number, except a head row pointing lower, which is
// reported, so the result does not depend on whether the caller stopped
// reading early.
func (v *Verifier) Finish(head *Head) Result {
	last := v.next - 1 // newest good event, 0 if none
	if v.maxCheckpoint > last {
		v.fail(last+1, ProblemCheckpointBeyondEnd)
	}
	switch {
	case head == nil:
		if last > 0 {
			v.fail(last+1, ProblemHeadMissing)
		}
	case head.Seq > last:
		v.fail(last+1, ProblemHeadMismatch)
	case head.Seq < last:
		v.fail(max(head.Seq+1, 1), ProblemHeadMismatch)
	case head.Hash != v.prev:
		v.fail(max(head.Seq, 1), ProblemHeadMismatch)
	}
	return Result{
		Chain:          v.chain,
		OK:             v.broken == 0,
		Checked:        v.checked,
		FirstBrokenSeq: v.broken,
		Problem:        v.problem,
	}
}

// VerifyChain verifies chain from its events in ascending stored order, its
// head row (nil when missing) and its checkpoints; see [Verifier] for the
// rules. It stops reading events once the result is known. An error from the
// events iterator means the chain could not be checked: it is returned as is,
// with a Result that must not be used, and is distinct from a broken chain,
// which is a Result with OK false and a nil error.
func VerifyChain(chain string, events iter.Seq2[Event, error], head *Head, pub ed25519.PublicKey, checkpoints []Checkpoint) (Result, error) {
	v := NewVerifier(chain, pub, checkpoints)
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
