package audit_test

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"slices"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/audit"
)

const testChain = "org:01954f3a-6b2c-7d1e-8f90-a1b2c3d4e5f6"

// newChain returns n sealed events of chain.
func newChain(chain string, n int) []audit.Event {
	events := make([]audit.Event, n)
	start := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	var prev audit.Hash
	for i := range events {
		seq := int64(i + 1)
		e := audit.Event{
			Chain:   chain,
			Seq:     seq,
			ID:      fmt.Sprintf("01954f3a-0000-7000-8000-%012d", seq),
			At:      start.Add(time.Duration(seq)*time.Second + 123456*time.Microsecond),
			Actor:   "user:01954f3a-0000-7000-8000-000000000001",
			Action:  "user.update",
			Target:  fmt.Sprintf("user:01954f3a-0000-7000-8000-%012d", seq%7),
			Outcome: "success",
			Details: fmt.Appendf(nil, `{"field":"name","n":%d}`, seq),
			Client:  []byte{'v', '1', ':', byte(seq)},
		}
		e.Seal(prev)
		prev = e.Hash
		events[i] = e
	}
	return events
}

// checkpointOf returns e's checkpoint signed by s.
func checkpointOf(s *audit.Signer, e audit.Event) audit.Checkpoint {
	c := audit.Checkpoint{Chain: e.Chain, Seq: e.Seq, Hash: e.Hash, At: e.At.Add(time.Minute)}
	s.Sign(&c)
	return c
}

// chainState is what the storage layer hands to verification: rows, head row,
// database checkpoints and witness checkpoints.
type chainState struct {
	events  []audit.Event
	head    *audit.Head
	db      []audit.Checkpoint
	witness []audit.Checkpoint
}

func (s *chainState) checkpoints() []audit.Checkpoint {
	return slices.Concat(s.db, s.witness)
}

// event returns the stored row with sequence number seq.
func (s *chainState) event(seq int64) *audit.Event {
	return &s.events[seq-1]
}

// resealFrom re-seals every row from seq on and rewrites the head row, as an
// attacker with SQL access but no signing key can.
func (s *chainState) resealFrom(seq int64) {
	for i := int(seq - 1); i < len(s.events); i++ {
		var prev audit.Hash
		if i > 0 {
			prev = s.events[i-1].Hash
		}
		s.events[i].Seal(prev)
	}
	s.rewriteHead()
}

// rewriteHead points the head row at the newest row.
func (s *chainState) rewriteHead() {
	if len(s.events) == 0 {
		s.head = nil
		return
	}
	last := s.events[len(s.events)-1]
	s.head = &audit.Head{Seq: last.Seq, Hash: last.Hash}
}

// dropCheckpointsAbove deletes the database checkpoints above seq; the
// witness keeps its copies.
func (s *chainState) dropCheckpointsAbove(seq int64) {
	s.db = slices.DeleteFunc(s.db, func(c audit.Checkpoint) bool { return c.Seq > seq })
}

// newChainState returns a chain of 50 events with checkpoints at 20 and 40,
// in the database and in the witness, and its head row at 50.
func newChainState(s *audit.Signer) *chainState {
	st := &chainState{events: newChain(testChain, 50)}
	for _, seq := range []int64{20, 40} {
		c := checkpointOf(s, *st.event(seq))
		st.db = append(st.db, c)
		st.witness = append(st.witness, c)
	}
	st.rewriteHead()
	return st
}

func mustGenerateSigner(tb testing.TB) *audit.Signer {
	tb.Helper()
	s, err := audit.GenerateSigner()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func eventsOf(events []audit.Event) iter.Seq2[audit.Event, error] {
	return func(yield func(audit.Event, error) bool) {
		for _, e := range events {
			if !yield(e, nil) {
				return
			}
		}
	}
}

// verifyAll feeds every event, ignoring Add's hint to stop, so tests can check
// that the result does not depend on when the caller stops reading.
func verifyAll(st *chainState, pub []byte) audit.Result {
	v := audit.NewVerifier(testChain, pub, st.checkpoints())
	for _, e := range st.events {
		v.Add(e)
	}
	return v.Finish(st.head)
}

// R23 R24 R25: the record of every change and every access (R23, R24) can be
// checked for tampering (R25): every kind of tampering is reported at the
// lowest broken sequence number, and the limits stated in the package's threat
// model are pinned too, so that a change to them is a conscious one.
func TestVerifyChain(t *testing.T) {
	signer := mustGenerateSigner(t)
	other := mustGenerateSigner(t)

	tests := []struct {
		name        string
		tamper      func(st *chainState)
		wantSeq     int64 // 0: OK
		wantProblem string
	}{
		{"intact chain is OK", func(st *chainState) {}, 0, ""},
		{"intact chain with only witness checkpoints is OK", func(st *chainState) { st.db = nil }, 0, ""},
		{"checkpoint of another chain is ignored", func(st *chainState) {
			e := newChain("org:other", 60)[59]
			st.witness = append(st.witness, checkpointOf(signer, e))
		}, 0, ""},
		{"time changed below a microsecond is not a change", func(st *chainState) {
			st.event(30).At = st.event(30).At.Add(999 * time.Nanosecond)
		}, 0, ""},

		// Modified fields, hash left alone.
		{"modified chain id is detected", func(st *chainState) { st.event(30).Chain = "org:other" }, 30, audit.ProblemWrongChain},
		{"modified seq is detected", func(st *chainState) { st.event(30).Seq = 31 }, 30, audit.ProblemSequenceGap},
		{"modified id is detected", func(st *chainState) { st.event(30).ID = "01954f3a-0000-7000-8000-999999999999" }, 30, audit.ProblemHashMismatch},
		{"modified time is detected", func(st *chainState) { st.event(30).At = st.event(30).At.Add(time.Microsecond) }, 30, audit.ProblemHashMismatch},
		{"modified actor is detected", func(st *chainState) { st.event(30).Actor = "operator:1" }, 30, audit.ProblemHashMismatch},
		{"modified action is detected", func(st *chainState) { st.event(30).Action = "user.read" }, 30, audit.ProblemHashMismatch},
		{"modified target is detected", func(st *chainState) { st.event(30).Target = "" }, 30, audit.ProblemHashMismatch},
		{"modified outcome is detected", func(st *chainState) { st.event(30).Outcome = "denied" }, 30, audit.ProblemHashMismatch},
		{"modified details are detected", func(st *chainState) { st.event(30).Details[2] ^= 1 }, 30, audit.ProblemHashMismatch},
		{"emptied details are detected", func(st *chainState) { st.event(30).Details = nil }, 30, audit.ProblemHashMismatch},
		{"modified client is detected", func(st *chainState) { st.event(30).Client = []byte("v1:x") }, 30, audit.ProblemHashMismatch},
		{"modified prev hash is detected", func(st *chainState) { st.event(30).PrevHash[0] ^= 1 }, 30, audit.ProblemHashMismatch},
		{"modified hash is detected", func(st *chainState) { st.event(30).Hash[31] ^= 1 }, 30, audit.ProblemHashMismatch},
		{"modified first event is detected", func(st *chainState) { st.event(1).Outcome = "failure" }, 1, audit.ProblemHashMismatch},
		{"modified newest event is detected", func(st *chainState) { st.event(50).Actor = "cli" }, 50, audit.ProblemHashMismatch},

		// Modified rows with recomputed hashes.
		{"modified row resealed breaks the next row's link", func(st *chainState) {
			st.event(30).Actor = "cli"
			st.event(30).Seal(st.event(29).Hash)
		}, 31, audit.ProblemPrevHashMismatch},
		{"modified row with all later rows and head resealed is caught by the next checkpoint", func(st *chainState) {
			st.event(30).Actor = "cli"
			st.resealFrom(30)
		}, 40, audit.ProblemCheckpointMismatch},
		{"modified row covered by a checkpoint is caught by it even with database checkpoints deleted", func(st *chainState) {
			st.event(40).Details = []byte(`{}`)
			st.resealFrom(40)
			st.db = nil
		}, 40, audit.ProblemCheckpointMismatch},
		{"modified row after the last checkpoint, resealed with the head, is not detected (threat model)", func(st *chainState) {
			st.event(45).Details = []byte(`{}`)
			st.resealFrom(45)
		}, 0, ""},

		// Deleted, swapped and inserted rows.
		{"deleted middle row is detected", func(st *chainState) {
			st.events = slices.Delete(st.events, 24, 25)
		}, 25, audit.ProblemSequenceGap},
		{"deleted first row is detected", func(st *chainState) {
			st.events = st.events[1:]
		}, 1, audit.ProblemSequenceGap},
		{"deleted middle row with later rows renumbered is detected", func(st *chainState) {
			st.events = slices.Delete(st.events, 24, 25)
			for i := 24; i < len(st.events); i++ {
				st.events[i].Seq--
			}
		}, 25, audit.ProblemHashMismatch},
		{"swapped contents of two rows keeping seq are detected", func(st *chainState) {
			a, b := *st.event(10), *st.event(11)
			a.Seq, b.Seq = 11, 10
			*st.event(10), *st.event(11) = b, a
		}, 10, audit.ProblemHashMismatch},
		{"swapped rows are detected", func(st *chainState) {
			st.events[9], st.events[10] = st.events[10], st.events[9]
		}, 10, audit.ProblemSequenceGap},
		{"inserted row with made-up hash is detected at its seq", func(st *chainState) {
			forged := *st.event(26)
			forged.Actor = "user:forged"
			st.events = slices.Insert(st.events, 25, forged)
			for i := 26; i < len(st.events); i++ {
				st.events[i].Seq++
			}
		}, 26, audit.ProblemHashMismatch},
		{"inserted forged row sealed onto its predecessor breaks the row after it", func(st *chainState) {
			forged := *st.event(26)
			forged.Actor = "user:forged"
			forged.Seal(st.event(25).Hash)
			st.events = slices.Insert(st.events, 25, forged)
			for i := 26; i < len(st.events); i++ {
				st.events[i].Seq++
			}
			st.rewriteHead()
		}, 27, audit.ProblemHashMismatch},
		{"inserted forged row with a duplicate seq is detected", func(st *chainState) {
			forged := *st.event(26)
			forged.Actor = "user:forged"
			forged.Seal(st.event(25).Hash)
			st.events = slices.Insert(st.events, 25, forged)
		}, 27, audit.ProblemSequenceOrder},
		{"inserted forged row with all later rows and head resealed is caught by the next checkpoint", func(st *chainState) {
			forged := *st.event(26)
			forged.Actor = "user:forged"
			st.events = slices.Insert(st.events, 25, forged)
			for i := 26; i < len(st.events); i++ {
				st.events[i].Seq++
			}
			st.resealFrom(26)
		}, 40, audit.ProblemCheckpointMismatch},
		{"row appended without moving the head is detected", func(st *chainState) {
			e := newChain(testChain, 51)[50]
			e.Seal(st.event(50).Hash)
			st.events = append(st.events, e)
		}, 51, audit.ProblemHeadMismatch},
		{"forged row appended with the head moved is not detected (threat model)", func(st *chainState) {
			e := newChain(testChain, 51)[50]
			e.Seal(st.event(50).Hash)
			st.events = append(st.events, e)
			st.rewriteHead()
		}, 0, ""},

		// Truncation.
		{"truncated newest rows after a checkpoint are detected with head unchanged", func(st *chainState) {
			st.events = st.events[:35]
			st.dropCheckpointsAbove(35)
		}, 36, audit.ProblemCheckpointBeyondEnd},
		{"truncated newest rows after a checkpoint are detected with head rewritten", func(st *chainState) {
			st.events = st.events[:35]
			st.dropCheckpointsAbove(35)
			st.rewriteHead()
		}, 36, audit.ProblemCheckpointBeyondEnd},
		{"truncated newest rows with database checkpoints kept are detected", func(st *chainState) {
			st.events = st.events[:35]
			st.rewriteHead()
		}, 36, audit.ProblemCheckpointBeyondEnd},
		{"truncated rows newer than the last checkpoint are detected with head unchanged", func(st *chainState) {
			st.events = st.events[:45]
		}, 46, audit.ProblemHeadMismatch},
		{"truncated rows newer than the last checkpoint with head rewritten are not detected (threat model)", func(st *chainState) {
			st.events = st.events[:45]
			st.rewriteHead()
		}, 0, ""},
		{"truncation after a checkpoint without the witness is not detected (why the witness exists)", func(st *chainState) {
			st.events = st.events[:35]
			st.dropCheckpointsAbove(35)
			st.witness = nil
			st.rewriteHead()
		}, 0, ""},
		{"deleted whole chain that had a checkpoint is detected", func(st *chainState) {
			st.events, st.head, st.db = nil, nil, nil
		}, 1, audit.ProblemCheckpointBeyondEnd},

		// Checkpoints.
		{"checkpoint with a forged signature is detected", func(st *chainState) {
			st.db[0].Signature = bytes.Clone(st.db[0].Signature)
			st.db[0].Signature[5] ^= 1
		}, 20, audit.ProblemBadCheckpointSignature},
		{"checkpoint signed by another key is detected", func(st *chainState) {
			st.db = append(st.db, checkpointOf(other, *st.event(30)))
		}, 30, audit.ProblemBadCheckpointSignature},
		{"checkpoint with altered hash is detected", func(st *chainState) {
			st.db[1].Hash = st.event(39).Hash
		}, 40, audit.ProblemBadCheckpointSignature},
		{"checkpoint without signature is detected", func(st *chainState) {
			st.db[1].Signature = nil
		}, 40, audit.ProblemBadCheckpointSignature},
		{"signed checkpoint off the chain is detected", func(st *chainState) {
			c := checkpointOf(signer, *st.event(29))
			c.Seq = 30
			signer.Sign(&c)
			st.db = append(st.db, c)
		}, 30, audit.ProblemCheckpointMismatch},
		{"conflicting signed checkpoints are detected", func(st *chainState) {
			c := st.db[0]
			c.Hash = st.event(19).Hash
			signer.Sign(&c)
			st.db[0] = c
		}, 20, audit.ProblemCheckpointConflict},
		{"witness checkpoint beyond the chain is detected", func(st *chainState) {
			e := newChain(testChain, 60)[59]
			st.witness = append(st.witness, checkpointOf(signer, e))
		}, 51, audit.ProblemCheckpointBeyondEnd},
		{"signed checkpoint at seq 0 is detected", func(st *chainState) {
			c := audit.Checkpoint{Chain: testChain, Seq: 0, At: time.Now()}
			signer.Sign(&c)
			st.witness = append(st.witness, c)
		}, 1, audit.ProblemCheckpointNotOnChain},

		// Head row.
		{"missing head is detected", func(st *chainState) { st.head = nil }, 51, audit.ProblemHeadMissing},
		{"head with another hash is detected", func(st *chainState) { st.head.Hash[0] ^= 1 }, 50, audit.ProblemHeadMismatch},
		{"head behind the chain is detected", func(st *chainState) {
			st.head = &audit.Head{Seq: 48, Hash: st.event(48).Hash}
		}, 49, audit.ProblemHeadMismatch},
		{"head beyond the chain is detected", func(st *chainState) { st.head.Seq = 55 }, 51, audit.ProblemHeadMismatch},
		{"head at zero is detected", func(st *chainState) { st.head = &audit.Head{} }, 1, audit.ProblemHeadMismatch},

		// Several problems: the lowest wins.
		{"lowest of several broken rows is reported", func(st *chainState) {
			st.event(30).Actor = "cli"
			st.event(10).Actor = "cli"
			st.head = nil
		}, 10, audit.ProblemHashMismatch},
		{"bad checkpoint below a broken row is reported", func(st *chainState) {
			st.event(30).Actor = "cli"
			st.db[0].Signature = nil
		}, 20, audit.ProblemBadCheckpointSignature},
		{"broken row below a bad checkpoint is reported", func(st *chainState) {
			st.event(10).Actor = "cli"
			st.db[0].Signature = nil
		}, 10, audit.ProblemHashMismatch},
		{"head below a broken row is reported", func(st *chainState) {
			st.event(30).Actor = "cli"
			st.head = &audit.Head{Seq: 12, Hash: st.event(12).Hash}
		}, 13, audit.ProblemHeadMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newChainState(signer)
			tt.tamper(st)
			got, err := audit.VerifyChain(testChain, eventsOf(st.events), st.head, signer.PublicKey(), st.checkpoints())
			if err != nil {
				t.Fatalf("VerifyChain: %v", err)
			}
			want := audit.Result{Chain: testChain, OK: tt.wantSeq == 0, FirstBrokenSeq: tt.wantSeq, Problem: tt.wantProblem}
			got.Checked = 0
			if got != want {
				t.Errorf("VerifyChain = %+v, want %+v", got, want)
			}
			all := verifyAll(st, signer.PublicKey())
			all.Checked = 0
			if all != got {
				t.Errorf("result after feeding every event = %+v, want the early-stopping result %+v", all, got)
			}
		})
	}
}

func TestVerifyChainCountsCheckedEvents(t *testing.T) {
	signer := mustGenerateSigner(t)
	st := newChainState(signer)
	got, err := audit.VerifyChain(testChain, eventsOf(st.events), st.head, signer.PublicKey(), st.checkpoints())
	if err != nil || !got.OK || got.Checked != 50 {
		t.Errorf("VerifyChain = %+v, %v, want OK with Checked 50", got, err)
	}

	st.event(30).Actor = "cli"
	got, err = audit.VerifyChain(testChain, eventsOf(st.events), st.head, signer.PublicKey(), st.checkpoints())
	if err != nil || got.OK || got.Checked != 30 {
		t.Errorf("VerifyChain = %+v, %v, want broken with Checked 30", got, err)
	}
}

func TestEmptyChainIsOK(t *testing.T) {
	signer := mustGenerateSigner(t)
	for _, head := range []*audit.Head{nil, {}} {
		got, err := audit.VerifyChain(audit.PlatformChain, eventsOf(nil), head, signer.PublicKey(), nil)
		want := audit.Result{Chain: audit.PlatformChain, OK: true}
		if err != nil || got != want {
			t.Errorf("VerifyChain(empty, head %v) = %+v, %v, want %+v", head, got, err, want)
		}
	}
}

func TestVerifierAddStopsOnceBroken(t *testing.T) {
	signer := mustGenerateSigner(t)
	events := newChain(testChain, 10)
	events[4].Outcome = "denied"
	v := audit.NewVerifier(testChain, signer.PublicKey(), nil)
	for i, e := range events {
		if got, want := v.Add(e), i < 4; got != want {
			t.Errorf("Add(seq %d) = %v, want %v", e.Seq, got, want)
		}
	}
}

// R25: a chain that could not be read is "could not check" (exit 2 at the
// command line), never "intact" or "broken".
func TestVerifyChainReturnsReadError(t *testing.T) {
	signer := mustGenerateSigner(t)
	events := newChain(testChain, 5)
	errRead := errors.New("connection reset")
	seq := func(yield func(audit.Event, error) bool) {
		for _, e := range events[:3] {
			if !yield(e, nil) {
				return
			}
		}
		yield(audit.Event{}, errRead)
	}
	if _, err := audit.VerifyChain(testChain, seq, &audit.Head{Seq: 5, Hash: events[4].Hash}, signer.PublicKey(), nil); !errors.Is(err, errRead) {
		t.Errorf("VerifyChain error = %v, want %v", err, errRead)
	}
}

// FuzzVerifier mutates one event of a valid chain, or deletes it. Verification
// must never panic, and must report the chain broken exactly when a byte that
// is hashed or chained changed.
func FuzzVerifier(f *testing.F) {
	f.Add(uint8(3), uint8(8), uint16(0), []byte("x"))
	f.Add(uint8(0), uint8(1), uint16(1), []byte{})
	f.Add(uint8(7), uint8(12), uint16(0), []byte{})
	f.Add(uint8(5), uint8(13), uint16(9), []byte("{}"))
	f.Add(uint8(2), uint8(3), uint16(0), []byte{})
	f.Add(uint8(6), uint8(11), uint16(31), []byte{0x80})

	signer, err := audit.GenerateSigner()
	if err != nil {
		f.Fatal(err)
	}
	const n = 8
	f.Fuzz(func(t *testing.T, idx, field uint8, pos uint16, data []byte) {
		st := &chainState{events: newChain(testChain, n)}
		st.db = []audit.Checkpoint{checkpointOf(signer, *st.event(4))}
		st.witness = []audit.Checkpoint{checkpointOf(signer, *st.event(n))}
		st.rewriteHead()

		i := int(idx) % n
		orig := st.events[i]
		e := &st.events[i]
		changed := false
		flip := func(h *audit.Hash) {
			if len(data) > 0 && data[0] != 0 {
				h[int(pos)%len(h)] ^= data[0]
			}
		}
		switch field % 14 {
		case 0:
			e.Chain = string(data)
		case 1:
			e.Seq += int64(int16(pos))
		case 2:
			e.ID = string(data)
		case 3:
			e.At = e.At.Add(time.Duration(int16(pos)) * 100 * time.Nanosecond)
		case 4:
			e.Actor = string(data)
		case 5:
			e.Action = string(data)
		case 6:
			e.Target = string(data)
		case 7:
			e.Outcome = string(data)
		case 8:
			e.Details = data
		case 9:
			e.Client = data
		case 10:
			flip(&e.PrevHash)
		case 11:
			flip(&e.Hash)
		case 12:
			st.events = slices.Delete(st.events, i, i+1)
			changed = true
		case 13:
			// A consistent rewrite of the row alone: its successor, the
			// head or a checkpoint still notices.
			e.Details = data
			e.Seal(e.PrevHash)
		}
		if !changed {
			changed = !bytes.Equal(orig.Encode(), e.Encode()) || orig.PrevHash != e.PrevHash || orig.Hash != e.Hash
		}

		got, err := audit.VerifyChain(testChain, eventsOf(st.events), st.head, signer.PublicKey(), st.checkpoints())
		if err != nil {
			t.Fatal(err)
		}
		if got.OK == changed {
			t.Fatalf("changed %v but VerifyChain = %+v", changed, got)
		}
		if !got.OK && (got.FirstBrokenSeq < 1 || got.FirstBrokenSeq > int64(i)+2) {
			t.Fatalf("event %d changed but FirstBrokenSeq = %d", i+1, got.FirstBrokenSeq)
		}
		if all := verifyAll(st, signer.PublicKey()); all.FirstBrokenSeq != got.FirstBrokenSeq {
			t.Fatalf("feeding every event gives %+v, stopping early %+v", all, got)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	signer := mustGenerateSigner(b)
	events := newChain(testChain, 100_000)
	var cps []audit.Checkpoint
	for i := 999; i < len(events); i += 1000 {
		cps = append(cps, checkpointOf(signer, events[i]))
	}
	last := events[len(events)-1]
	head := &audit.Head{Seq: last.Seq, Hash: last.Hash}
	b.ReportAllocs()
	for b.Loop() {
		res, err := audit.VerifyChain(testChain, eventsOf(events), head, signer.PublicKey(), cps)
		if err != nil || !res.OK {
			b.Fatalf("VerifyChain = %+v, %v", res, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(events)), "ns/event")
}
