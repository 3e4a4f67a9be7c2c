package audit_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/audit"
)

func mustOpenWitness(t *testing.T, path string) *audit.Witness {
	t.Helper()
	w, err := audit.OpenWitness(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// appendRaw appends bytes to the witness file behind the Witness's back, as a
// crash half-way through a write leaves them.
func appendRaw(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func signedCheckpoint(s *audit.Signer, chain string, seq int64) audit.Checkpoint {
	c := audit.Checkpoint{
		Chain: chain,
		Seq:   seq,
		Hash:  audit.Hash{byte(seq), byte(seq >> 8)},
		At:    time.Date(2025, 3, 1, 10, 0, 0, int(seq)*1001, time.FixedZone("CET", 3600)),
	}
	s.Sign(&c)
	return c
}

// R25: checkpoints survive the round trip through the witness with their
// signatures valid, in a private file in a private directory.
func TestWitnessKeepsSignedCheckpoints(t *testing.T) {
	s := mustGenerateSigner(t)
	dir := filepath.Join(t.TempDir(), "audit")
	path := filepath.Join(dir, "witness.log")
	w := mustOpenWitness(t, path)
	want := []audit.Checkpoint{signedCheckpoint(s, audit.PlatformChain, 1000), signedCheckpoint(s, testChain, 7)}
	for _, c := range want {
		if err := w.Append(c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := w.Checkpoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Checkpoints() = %d checkpoints, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Chain != want[i].Chain || got[i].Seq != want[i].Seq || got[i].Hash != want[i].Hash ||
			got[i].At.UnixMicro() != want[i].At.UnixMicro() {
			t.Errorf("checkpoint %d = %+v, want %+v", i, got[i], want[i])
		}
		if !audit.VerifyCheckpoint(s.PublicKey(), got[i]) {
			t.Errorf("checkpoint %d read back from the witness does not verify", i)
		}
	}

	for _, p := range []struct {
		path string
		want os.FileMode
	}{{dir, 0o700}, {path, 0o600}} {
		fi, err := os.Stat(p.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != p.want {
			t.Errorf("mode of %s = %04o, want %04o", p.path, got, p.want)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	for _, field := range []string{`"chain":"platform"`, `"seq":1000`, `"hash":"` + want[0].Hash.String() + `"`, `"at":"2025-03-01T09:00:00.001001Z"`, `"sig":"`} {
		if !strings.Contains(line, field) {
			t.Errorf("witness line %s does not contain %s", line, field)
		}
	}
}

// Several processes append at once (each Witness opens the file on its own, as
// a second process would); no line may be lost or mixed with another.
func TestWitnessConcurrentAppendsKeepEveryLine(t *testing.T) {
	s := mustGenerateSigner(t)
	path := filepath.Join(t.TempDir(), "witness.log")
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for i := range writers {
		w := mustOpenWitness(t, path)
		wg.Go(func() {
			for j := range each {
				errs <- w.Append(signedCheckpoint(s, fmt.Sprintf("org:%d", i), int64(j+1)))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := mustOpenWitness(t, path).Checkpoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != writers*each {
		t.Errorf("Checkpoints() = %d checkpoints, want %d", len(got), writers*each)
	}
	for _, c := range got {
		if !audit.VerifyCheckpoint(s.PublicKey(), c) {
			t.Errorf("checkpoint %s/%d does not verify", c.Chain, c.Seq)
		}
	}
}

func TestWitnessToleratesDuplicates(t *testing.T) {
	s := mustGenerateSigner(t)
	w := mustOpenWitness(t, filepath.Join(t.TempDir(), "witness.log"))
	c := signedCheckpoint(s, testChain, 20)
	later := c
	later.At = later.At.Add(time.Second)
	s.Sign(&later)
	for _, c := range []audit.Checkpoint{c, c, later, c} {
		if err := w.Append(c); err != nil {
			t.Fatal(err)
		}
	}
	got, err := w.Checkpoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Errorf("Checkpoints() = %+v, want the 2 distinct checkpoints", got)
	}
}

func TestWitnessIgnoresTornLastLine(t *testing.T) {
	s := mustGenerateSigner(t)
	path := filepath.Join(t.TempDir(), "witness.log")
	w := mustOpenWitness(t, path)
	if err := w.Append(signedCheckpoint(s, testChain, 1)); err != nil {
		t.Fatal(err)
	}
	appendRaw(t, path, `{"chain":"org:x","seq":2,"ha`)

	got, err := w.Checkpoints()
	if err != nil {
		t.Fatalf("Checkpoints() with a torn last line: %v", err)
	}
	if len(got) != 1 {
		t.Errorf("Checkpoints() = %d checkpoints, want 1", len(got))
	}

	// The next append cuts the torn line off instead of burying it.
	if err := w.Append(signedCheckpoint(s, testChain, 3)); err != nil {
		t.Fatal(err)
	}
	got, err = w.Checkpoints()
	if err != nil {
		t.Fatalf("Checkpoints() after appending past a torn line: %v", err)
	}
	if len(got) != 2 || got[1].Seq != 3 {
		t.Errorf("Checkpoints() = %+v, want seq 1 and 3", got)
	}
	if data, _ := os.ReadFile(path); strings.Contains(string(data), `"ha`+"\n") || strings.Count(string(data), "\n") != 2 {
		t.Errorf("witness file = %q, want two whole lines", data)
	}
}

func TestWitnessKeepsLastLineThatLostOnlyItsNewline(t *testing.T) {
	s := mustGenerateSigner(t)
	path := filepath.Join(t.TempDir(), "witness.log")
	w := mustOpenWitness(t, path)
	if err := w.Append(signedCheckpoint(s, testChain, 1)); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	appendRaw(t, path, strings.Replace(strings.TrimSuffix(string(data), "\n"), `"seq":1`, `"seq":2`, 1))
	if got, err := w.Checkpoints(); err != nil || len(got) != 2 {
		t.Errorf("Checkpoints() = %d checkpoints, %v, want 2", len(got), err)
	}
	if err := w.Append(signedCheckpoint(s, testChain, 3)); err != nil {
		t.Fatal(err)
	}
	if got, err := w.Checkpoints(); err != nil || len(got) != 3 {
		t.Errorf("Checkpoints() = %d checkpoints, %v, want 3", len(got), err)
	}
}

func TestWitnessRefusesMalformedLines(t *testing.T) {
	s := mustGenerateSigner(t)
	tests := []struct {
		name string
		line string
	}{
		{"not JSON", "garbage\n"},
		{"empty line", "\n"},
		{"unknown field", `{"chain":"platform","seq":1,"hash":"` + audit.Hash{}.String() + `","at":"2025-03-01T10:00:00Z","sig":"","extra":1}` + "\n"},
		{"no chain", `{"seq":1,"hash":"` + audit.Hash{}.String() + `","at":"2025-03-01T10:00:00Z","sig":""}` + "\n"},
		{"short hash", `{"chain":"platform","seq":1,"hash":"00","at":"2025-03-01T10:00:00Z","sig":""}` + "\n"},
		{"two objects", `{"chain":"platform","seq":1,"hash":"` + audit.Hash{}.String() + `","at":"2025-03-01T10:00:00Z","sig":""}{}` + "\n"},
		{"torn line in the middle", `{"chain":"platform","se` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "witness.log")
			w := mustOpenWitness(t, path)
			if err := w.Append(signedCheckpoint(s, testChain, 1)); err != nil {
				t.Fatal(err)
			}
			appendRaw(t, path, tt.line)
			if err := w.Append(signedCheckpoint(s, testChain, 2)); err != nil {
				t.Fatal(err)
			}
			got, err := w.Checkpoints()
			if err == nil {
				t.Fatalf("Checkpoints() = %+v, want an error", got)
			}
			if !strings.Contains(err.Error(), "line 2") {
				t.Errorf("error %q does not name line 2", err)
			}
		})
	}
}

func TestWitnessFailsAfterClose(t *testing.T) {
	w, err := audit.OpenWitness(filepath.Join(t.TempDir(), "witness.log"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Append(audit.Checkpoint{Chain: testChain, Seq: 1}); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Append after Close = %v, want os.ErrClosed", err)
	}
	if _, err := w.Checkpoints(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Checkpoints after Close = %v, want os.ErrClosed", err)
	}
}

// R25: a checkpoint the witness kept for events that were deleted from the
// database breaks the chain, even after the rows, their database checkpoints
// and the head row were rewritten to match.
func TestWitnessCheckpointBeyondChainIsDetected(t *testing.T) {
	s := mustGenerateSigner(t)
	w := mustOpenWitness(t, filepath.Join(t.TempDir(), "witness.log"))
	events := newChain(testChain, 60)
	if err := w.Append(checkpointOf(s, events[59])); err != nil {
		t.Fatal(err)
	}
	cps, err := w.Checkpoints()
	if err != nil {
		t.Fatal(err)
	}
	events = events[:50]
	head := &audit.Head{Seq: 50, Hash: events[49].Hash}
	got, err := audit.VerifyChain(testChain, eventsOf(events), head, s.PublicKey(), cps)
	if err != nil {
		t.Fatal(err)
	}
	if got.OK || got.FirstBrokenSeq != 51 || got.Problem != audit.ProblemCheckpointBeyondEnd {
		t.Errorf("VerifyChain = %+v, want broken at 51: %s", got, audit.ProblemCheckpointBeyondEnd)
	}
}
