package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// WitnessLog keeps a copy of every checkpoint outside the data database
// (DESIGN §3): the Witness file in embedded mode, the key store in scale-out
// mode, so that every node sees every checkpoint.
type WitnessLog interface {
	// Append adds a checkpoint durably before it returns.
	Append(c Checkpoint) error
	// Checkpoints returns every checkpoint appended, oldest first.
	Checkpoints() ([]Checkpoint, error)
}

var _ WitnessLog = (*Witness)(nil)

// Witness is an append-only file outside the data database that keeps a copy
// of every checkpoint (in embedded mode DATA/audit/witness.log). An attacker
// who can rewrite the database but not this file cannot delete the newest
// events unseen, even by deleting their checkpoints from the database too.
//
// The file holds one JSON object per line:
//
//	{"chain":"org:…","seq":42,"hash":"<64 hex digits>","at":"<RFC 3339 UTC>","sig":"<base64>"}
//
// Several processes (the server and the command line) may append to one file
// at once: each line is one write to a file opened with O_APPEND, under an
// exclusive advisory lock where the platform has flock, and synced before
// Append returns. A Witness is safe for concurrent use.
type Witness struct {
	mu sync.Mutex
	f  *os.File // nil once closed
}

// witnessLine is the JSON form of one checkpoint in the witness file.
type witnessLine struct {
	Chain string    `json:"chain"`
	Seq   int64     `json:"seq"`
	Hash  string    `json:"hash"`
	At    time.Time `json:"at"`
	Sig   []byte    `json:"sig"`
}

// maxWitnessLine bounds a line of the witness file; real lines are a few
// hundred bytes.
const maxWitnessLine = 64 << 10

// OpenWitness opens the witness file at path for appending and reading,
// creating it with mode 0600, and its directory with mode 0700, if missing.
func OpenWitness(path string) (*Witness, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: creating witness directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: opening witness: %w", err)
	}
	return &Witness{f: f}, nil
}

// Append adds c to the witness and syncs the file. A line torn by an earlier
// crash is cut off first, so that it never ends up in the middle of the file.
func (w *Witness) Append(c Checkpoint) error {
	line, err := json.Marshal(witnessLine{
		Chain: c.Chain,
		Seq:   c.Seq,
		Hash:  c.Hash.String(),
		At:    c.At.UTC().Truncate(time.Microsecond),
		Sig:   c.Signature,
	})
	if err != nil {
		return fmt.Errorf("audit: encoding witness line: %w", err)
	}
	line = append(line, '\n')

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return fmt.Errorf("audit: appending to witness: %w", os.ErrClosed)
	}
	unlock, err := lockFile(w.f)
	if err != nil {
		return fmt.Errorf("audit: locking witness: %w", err)
	}
	defer unlock()
	if err := w.repairTail(); err != nil {
		return fmt.Errorf("audit: repairing witness: %w", err)
	}
	if _, err := w.f.Write(line); err != nil {
		return fmt.Errorf("audit: appending to witness: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("audit: syncing witness: %w", err)
	}
	return nil
}

// repairTail makes the file end in a newline. A last line without one was
// torn by a crash: if it still parses (only the newline was lost) the newline
// is added, otherwise the line is cut off. It runs under the file lock, so no
// other appender is half-way through a line.
func (w *Witness) repairTail() error {
	fi, err := w.f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	var last [1]byte
	if _, err := w.f.ReadAt(last[:], size-1); err != nil {
		return err
	}
	if last[0] == '\n' {
		return nil
	}
	// Find the start of the torn line, reading backwards in chunks.
	start, buf := size, make([]byte, 4096)
	for start > 0 {
		n := int64(len(buf))
		if start < n {
			n = start
		}
		chunk := buf[:n]
		if _, err := w.f.ReadAt(chunk, start-n); err != nil {
			return err
		}
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			start = start - n + int64(i) + 1
			break
		}
		start -= n
	}
	if size-start <= maxWitnessLine {
		torn := make([]byte, size-start)
		if _, err := w.f.ReadAt(torn, start); err != nil {
			return err
		}
		if _, err := parseWitnessLine(torn); err == nil {
			_, err := w.f.Write([]byte{'\n'})
			return err
		}
	}
	return w.f.Truncate(start)
}

// Checkpoints returns every checkpoint in the witness, in file order, without
// duplicates. A last line without a newline that does not parse is a write
// torn by a crash (or still in progress in another process) and is skipped;
// any other malformed line is an error naming its line number.
func (w *Witness) Checkpoints() ([]Checkpoint, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil, fmt.Errorf("audit: reading witness: %w", os.ErrClosed)
	}
	fi, err := w.f.Stat()
	if err != nil {
		return nil, fmt.Errorf("audit: reading witness: %w", err)
	}
	r := bufio.NewReaderSize(io.NewSectionReader(w.f, 0, fi.Size()), maxWitnessLine)

	type key struct {
		chain string
		seq   int64
		hash  Hash
		at    int64
		sig   string
	}
	seen := make(map[key]bool)
	var cps []Checkpoint
	for n := 1; ; n++ {
		line, err := r.ReadSlice('\n')
		torn := err == io.EOF
		switch {
		case torn && len(line) == 0:
			return cps, nil
		case errors.Is(err, bufio.ErrBufferFull):
			return nil, fmt.Errorf("audit: witness line %d is longer than %d bytes", n, maxWitnessLine)
		case err != nil && !torn:
			return nil, fmt.Errorf("audit: reading witness: %w", err)
		}
		c, err := parseWitnessLine(bytes.TrimSuffix(line, []byte{'\n'}))
		if err != nil && torn {
			return cps, nil
		}
		if err != nil {
			return nil, fmt.Errorf("audit: witness line %d: %w", n, err)
		}
		k := key{c.Chain, c.Seq, c.Hash, c.At.UnixMicro(), string(c.Signature)}
		if !seen[k] {
			seen[k] = true
			cps = append(cps, c)
		}
	}
}

// parseWitnessLine parses one line (without its newline) strictly: one JSON
// object with exactly the known fields, a chain id and a well-formed hash.
func parseWitnessLine(line []byte) (Checkpoint, error) {
	var l witnessLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return Checkpoint{}, fmt.Errorf("malformed checkpoint: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Checkpoint{}, errors.New("malformed checkpoint: data after the object")
	}
	if l.Chain == "" {
		return Checkpoint{}, errors.New("malformed checkpoint: no chain")
	}
	h, err := ParseHash(l.Hash)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("malformed checkpoint: %w", err)
	}
	return Checkpoint{Chain: l.Chain, Seq: l.Seq, Hash: h, At: l.At, Signature: l.Sig}, nil
}

// Close closes the witness file. Appends and reads after Close fail.
func (w *Witness) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
