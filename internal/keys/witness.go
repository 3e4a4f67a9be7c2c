package keys

import (
	"context"
	"fmt"
	"time"

	"github.com/kluis/kluis/internal/audit"
)

// Witness returns the key store as the audit witness (DESIGN §3): in
// scale-out mode checkpoints are witnessed here, outside the data database,
// where every node sees them, instead of in a file of one node.
func (s *Store) Witness() audit.WitnessLog { return storeWitness{s} }

type storeWitness struct{ s *Store }

// witnessTimeout bounds one witness operation: the interface has no context.
const witnessTimeout = 30 * time.Second

func (w storeWitness) Append(c audit.Checkpoint) error {
	ctx, cancel := context.WithTimeout(context.Background(), witnessTimeout)
	defer cancel()
	if _, err := w.s.writer.ExecContext(ctx, w.s.q(`INSERT INTO audit_witness (chain, seq, hash, at, signature) VALUES (?, ?, ?, ?, ?)`),
		c.Chain, c.Seq, c.Hash[:], c.At.UnixMicro(), c.Signature); err != nil {
		return fmt.Errorf("keys: witnessing a checkpoint: %w", err)
	}
	return nil
}

func (w storeWitness) Checkpoints() ([]audit.Checkpoint, error) {
	ctx, cancel := context.WithTimeout(context.Background(), witnessTimeout)
	defer cancel()
	rows, err := w.s.reader.QueryContext(ctx, `SELECT chain, seq, hash, at, signature FROM audit_witness ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("keys: reading the witness: %w", err)
	}
	defer rows.Close()
	var out []audit.Checkpoint
	for rows.Next() {
		var c audit.Checkpoint
		var h []byte
		var at int64
		if err := rows.Scan(&c.Chain, &c.Seq, &h, &at, &c.Signature); err != nil {
			return nil, fmt.Errorf("keys: reading the witness: %w", err)
		}
		if len(h) != len(c.Hash) {
			return nil, fmt.Errorf("keys: witness checkpoint %s/%d: bad hash length", c.Chain, c.Seq)
		}
		copy(c.Hash[:], h)
		c.At = time.UnixMicro(at).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}
