package audit

import (
	"archive/zip"
	"bufio"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"time"
)

// An organisation's export (R9, docs/EXPORT.md) carries its audit chain in
// three files, so that anyone can check it without kluis's database or keys:
//
//	audit/events.jsonl      one ExportedEvent per line, in sequence order
//	audit/checkpoints.json  ExportedCheckpoints: the chain, its head, its signed checkpoints
//	audit/public-key        the Ed25519 key that verifies them (PEM "PUBLIC KEY", PKIX)
//
// VerifyExport reads them back with the same Verifier as `kluis audit verify`.

// The names of the audit files inside an export.
const (
	ExportEventsFile      = "audit/events.jsonl"
	ExportCheckpointsFile = "audit/checkpoints.json"
	ExportPublicKeyFile   = "audit/public-key"
)

// ProblemMalformedEvent names an exported event line that cannot be read.
const ProblemMalformedEvent = "malformed event"

// ExportedEvent is one line of audit/events.jsonl: exactly the fields the
// hash covers (Details and Client as the stored bytes, base64, so that
// sealed values stay their ciphertext), the hashes, and — beside them, not
// hashed — the details and client address opened for the reader.
type ExportedEvent struct {
	Chain    string    `json:"chain"`
	Seq      int64     `json:"seq"`
	ID       string    `json:"id"`
	AtMicros int64     `json:"at_micros"`
	At       time.Time `json:"at"`
	Actor    string    `json:"actor"`
	Action   string    `json:"action"`
	Target   string    `json:"target"`
	Outcome  string    `json:"outcome"`
	// DetailsRaw and ClientRaw are the hashed bytes (JSON: standard
	// base64).
	DetailsRaw []byte `json:"details_raw"`
	ClientRaw  []byte `json:"client_raw"`
	PrevHash   string `json:"prev_hash"`
	Hash       string `json:"hash"`
	// Details are the details with sealed values opened (or "[erased]");
	// Client is the opened client address. Neither is hashed.
	Details json.RawMessage `json:"details,omitempty"`
	Client  string          `json:"client,omitempty"`
}

// NewExportedEvent is e as an export line, with the opened details and
// client address beside it.
func NewExportedEvent(e Event, opened json.RawMessage, client string) ExportedEvent {
	return ExportedEvent{
		Chain: e.Chain, Seq: e.Seq, ID: e.ID, AtMicros: e.At.UnixMicro(), At: e.At.UTC(),
		Actor: e.Actor, Action: e.Action, Target: e.Target, Outcome: e.Outcome,
		DetailsRaw: nonNil(e.Details), ClientRaw: nonNil(e.Client),
		PrevHash: e.PrevHash.String(), Hash: e.Hash.String(),
		Details: opened, Client: client,
	}
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Event turns the line back into the event whose hash it claims. Hashes
// that cannot be parsed are an error.
func (x ExportedEvent) Event() (Event, error) {
	prev, err := ParseHash(x.PrevHash)
	if err != nil {
		return Event{}, err
	}
	h, err := ParseHash(x.Hash)
	if err != nil {
		return Event{}, err
	}
	return Event{
		Chain: x.Chain, Seq: x.Seq, ID: x.ID, At: time.UnixMicro(x.AtMicros).UTC(),
		Actor: x.Actor, Action: x.Action, Target: x.Target, Outcome: x.Outcome,
		Details: x.DetailsRaw, Client: x.ClientRaw, PrevHash: prev, Hash: h,
	}, nil
}

// ExportedCheckpoint is one signed checkpoint in audit/checkpoints.json.
type ExportedCheckpoint struct {
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"`
	AtMicros  int64     `json:"at_micros"`
	At        time.Time `json:"at"`
	Signature []byte    `json:"signature"` // Ed25519, standard base64
}

// ExportedCheckpoints is audit/checkpoints.json: the chain id, the newest
// event the export holds (its head) and the chain's signed checkpoints up
// to it. kluis takes a checkpoint of the head when it makes an export, so
// the whole exported chain is vouched for by a signature.
type ExportedCheckpoints struct {
	Chain       string               `json:"chain"`
	Head        ExportedHead         `json:"head"`
	Checkpoints []ExportedCheckpoint `json:"checkpoints"`
	// Prunes are the signed records of the chain's pruned start (R25,
	// retention): the events start after the highest one. Absent when
	// nothing was pruned.
	Prunes []ExportedCheckpoint `json:"prunes,omitempty"`
}

// AddPrunes lists the prune records of the export's chain (others are
// left out).
func (x *ExportedCheckpoints) AddPrunes(prunes []Prune) {
	for _, p := range prunes {
		if p.Chain == x.Chain {
			x.Prunes = append(x.Prunes, ExportedCheckpoint{Seq: p.Seq, Hash: p.Hash.String(), AtMicros: p.At.UnixMicro(), At: p.At.UTC(), Signature: p.Signature})
		}
	}
}

// ExportedHead is the newest exported event.
type ExportedHead struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// NewExportedCheckpoints lists cps of chain (others are left out) under
// head.
func NewExportedCheckpoints(chain string, head Head, cps []Checkpoint) ExportedCheckpoints {
	out := ExportedCheckpoints{Chain: chain, Head: ExportedHead{Seq: head.Seq, Hash: head.Hash.String()}, Checkpoints: []ExportedCheckpoint{}}
	for _, c := range cps {
		if c.Chain == chain {
			out.Checkpoints = append(out.Checkpoints, ExportedCheckpoint{Seq: c.Seq, Hash: c.Hash.String(), AtMicros: c.At.UnixMicro(), At: c.At.UTC(), Signature: c.Signature})
		}
	}
	return out
}

// MarshalPublicKey encodes pub as the export's audit/public-key: a PEM
// block "PUBLIC KEY" holding the PKIX form, as openssl writes it.
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKey reads what MarshalPublicKey writes.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("audit: the public key is not a PEM block \"PUBLIC KEY\"")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit: public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("audit: the public key is not an Ed25519 key")
	}
	return pub, nil
}

// VerifyExport checks the audit chain of an organisation's export from the
// archive alone: it recomputes every event's hash and link, checks every
// checkpoint's signature with the exported public key and that each lies on
// the chain, and that the chain ends at the exported head. A broken chain
// is a Result with OK false naming the first broken sequence number; an
// error means the archive lacks or garbles a file needed to check at all.
func VerifyExport(zr *zip.Reader) (Result, error) {
	read := func(name string) ([]byte, error) {
		f, err := zr.Open(name)
		if err != nil {
			return nil, fmt.Errorf("audit: the export has no %s: %w", name, err)
		}
		defer f.Close()
		return io.ReadAll(io.LimitReader(f, 64<<20))
	}
	raw, err := read(ExportPublicKeyFile)
	if err != nil {
		return Result{}, err
	}
	pub, err := ParsePublicKey(raw)
	if err != nil {
		return Result{}, err
	}
	if raw, err = read(ExportCheckpointsFile); err != nil {
		return Result{}, err
	}
	var xc ExportedCheckpoints
	if err := json.Unmarshal(raw, &xc); err != nil {
		return Result{}, fmt.Errorf("audit: %s: %w", ExportCheckpointsFile, err)
	}
	head := &Head{Seq: xc.Head.Seq}
	if head.Hash, err = ParseHash(xc.Head.Hash); err != nil {
		return Result{}, fmt.Errorf("audit: %s: head: %w", ExportCheckpointsFile, err)
	}
	cps := make([]Checkpoint, 0, len(xc.Checkpoints))
	for _, x := range xc.Checkpoints {
		c := Checkpoint{Chain: xc.Chain, Seq: x.Seq, At: time.UnixMicro(x.AtMicros).UTC(), Signature: x.Signature}
		// A garbled hash leaves the zero hash, whose signature fails.
		c.Hash, _ = ParseHash(x.Hash)
		cps = append(cps, c)
	}
	f, err := zr.Open(ExportEventsFile)
	if err != nil {
		return Result{}, fmt.Errorf("audit: the export has no %s: %w", ExportEventsFile, err)
	}
	defer f.Close()
	v := NewVerifier(xc.Chain, pub, cps)
	prunes := make([]Prune, 0, len(xc.Prunes))
	for _, x := range xc.Prunes {
		p := Prune{Chain: xc.Chain, Seq: x.Seq, At: time.UnixMicro(x.AtMicros).UTC(), Signature: x.Signature}
		p.Hash, _ = ParseHash(x.Hash) // a garbled hash fails the signature
		prunes = append(prunes, p)
	}
	v.StartAfterPrune(pub, prunes)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var x ExportedEvent
		e, err := Event{}, json.Unmarshal(sc.Bytes(), &x)
		if err == nil {
			e, err = x.Event()
		}
		if err != nil {
			v.fail(v.next, ProblemMalformedEvent)
			break
		}
		if !v.Add(e) {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return Result{}, fmt.Errorf("audit: reading %s: %w", ExportEventsFile, err)
	}
	return v.Finish(head), nil
}
