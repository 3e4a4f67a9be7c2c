package auditlog

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"sort"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/sqlstore"
)

// The audit part of an organisation's export (R9, docs/EXPORT.md): the
// chain as it stood when the export began, every event with the exact
// fields its hash covers, the signed checkpoints and the key that checks
// them. The caller (the export area) has decided and recorded the export.

// checkpointHead signs a checkpoint of chain's head now, unless the last
// one already covers it, and returns the head's checkpoint: the export's
// chain then ends at a signed point.
func (s *Service) checkpointHead(ctx context.Context, chain string) (audit.Checkpoint, error) {
	s.cpMu.Lock()
	defer s.cpMu.Unlock()
	if err := s.loadLastCheckpoints(); err != nil {
		return audit.Checkpoint{}, err
	}
	c := audit.Checkpoint{Chain: chain, At: s.core.Now().UTC().Truncate(time.Microsecond)}
	var h []byte
	err := s.core.DB().ReadRow(ctx, `SELECT seq, hash FROM audit_heads WHERE chain = ?`, chain).Scan(&c.Seq, &h)
	if errors.Is(err, sql.ErrNoRows) || err == nil && c.Seq == 0 {
		return audit.Checkpoint{Chain: chain}, nil
	}
	if err != nil {
		return audit.Checkpoint{}, err
	}
	copy(c.Hash[:], h)
	if last, ok := s.lastCP[chain]; ok && last.Seq == c.Seq && last.Hash == c.Hash {
		return last, nil
	}
	return c, s.signAndStore(ctx, &c)
}

// ExportChain writes the organisation's chain to events as JSON lines
// (audit.ExportedEvent), up to a checkpoint of its head taken now, with
// sealed values opened beside their ciphertext; it returns the chain's
// checkpoints up to that head and the public key, for
// audit/checkpoints.json and audit/public-key. Events are streamed: memory
// does not grow with the chain.
func (s *Service) ExportChain(ctx context.Context, org kluis.OrgID, events io.Writer) (audit.ExportedCheckpoints, []byte, error) {
	chain := sqlstore.OrgChain(org)
	head, err := s.checkpointHead(ctx, chain)
	if err != nil {
		return audit.ExportedCheckpoints{}, nil, err
	}
	// R34: the values of restricted people stay out of an export to others.
	withheld, err := s.core.RestrictedPeople(ctx, org)
	if err != nil {
		return audit.ExportedCheckpoints{}, nil, err
	}
	bw := bufio.NewWriterSize(events, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	rows, err := s.core.DB().Query(ctx, `SELECT seq, id, at, actor, action, target, outcome, details, client, prev_hash, hash
		FROM audit_events WHERE chain = ? AND seq <= ? ORDER BY seq`, chain, head.Seq)
	if err != nil {
		return audit.ExportedCheckpoints{}, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		e := audit.Event{Chain: chain}
		var at int64
		var prev, hash []byte
		if err := rows.Scan(&e.Seq, &e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Outcome, &e.Details, &e.Client, &prev, &hash); err != nil {
			return audit.ExportedCheckpoints{}, nil, err
		}
		e.At = sqlstore.FromMicros(at)
		copy(e.PrevHash[:], prev)
		copy(e.Hash[:], hash)
		shown := kluis.AuditEvent{Actor: e.Actor, Target: e.Target, Details: json.RawMessage(append([]byte(nil), e.Details...))}
		if err := s.showSealed(ctx, chain, e.ID, &shown, e.Client, true, withheld); err != nil {
			return audit.ExportedCheckpoints{}, nil, err
		}
		opened := shown.Details
		if len(opened) == 0 || !json.Valid(opened) {
			opened = nil
		}
		if err := enc.Encode(audit.NewExportedEvent(e, opened, shown.Client)); err != nil {
			return audit.ExportedCheckpoints{}, nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return audit.ExportedCheckpoints{}, nil, err
	}
	rows.Close()
	if err := bw.Flush(); err != nil {
		return audit.ExportedCheckpoints{}, nil, err
	}
	cps, err := s.exportCheckpoints(ctx, chain, head.Seq)
	if err != nil {
		return audit.ExportedCheckpoints{}, nil, err
	}
	pub, err := audit.MarshalPublicKey(s.signer.PublicKey())
	if err != nil {
		return audit.ExportedCheckpoints{}, nil, err
	}
	x := audit.NewExportedCheckpoints(chain, audit.Head{Seq: head.Seq, Hash: head.Hash}, cps)
	prunes, err := s.chainPrunes(ctx, nil, chain)
	if err != nil {
		return audit.ExportedCheckpoints{}, nil, err
	}
	x.AddPrunes(prunes)
	return x, pub, nil
}

// exportCheckpoints is the union of the witness's and the database's
// checkpoints of chain up to seq end, one per sequence number and
// signature, in order.
func (s *Service) exportCheckpoints(ctx context.Context, chain string, end int64) ([]audit.Checkpoint, error) {
	witnessed, err := s.witness.Checkpoints()
	if err != nil {
		return nil, err
	}
	tx, err := s.core.DB().Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	stored, err := s.checkpoints(ctx, tx, chain)
	tx.Rollback()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []audit.Checkpoint
	for _, c := range append(witnessed, stored...) {
		key := string(c.Signature)
		if c.Chain != chain || c.Seq > end || seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}
