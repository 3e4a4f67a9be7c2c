package auditlog

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/sqlstore"
)

// PruneBatch is the most events one pruning transaction removes: a long
// chain is pruned in several steps, each with its own record and event.
const PruneBatch = 10000

// chainPrunes reads the signed prune records of chain, in tx (a snapshot)
// or, when tx is nil, from the database.
func (s *Service) chainPrunes(ctx context.Context, tx *sql.Tx, chain string) ([]audit.Prune, error) {
	const q = `SELECT seq, hash, at, signature FROM audit_prunes WHERE chain = ? ORDER BY seq`
	var rows *sql.Rows
	var err error
	if tx != nil {
		rows, err = tx.QueryContext(ctx, s.core.DB().Q(q), chain)
	} else {
		rows, err = s.core.DB().Query(ctx, q, chain)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []audit.Prune
	for rows.Next() {
		p := audit.Prune{Chain: chain}
		var h []byte
		var at int64
		if err := rows.Scan(&p.Seq, &h, &at, &p.Signature); err != nil {
			return nil, err
		}
		copy(p.Hash[:], h)
		p.At = sqlstore.FromMicros(at)
		out = append(out, p)
	}
	return out, rows.Err()
}

// PruneOrgChain removes the organisation's audit events older than before
// (R25: the policy's audit_retention_days), from the start of its chain,
// behind a signed prune record that vouches for the last removed event
// (its sequence number and hash), so that the rest still verifies and rows
// removed any other way are still detected. Each step (at most PruneBatch
// events) is one transaction: the record, the deletion and the event
// audit.prune (counts and sequence numbers only) in the organisation's
// chain, by the system actor. It returns how many events were removed.
// The platform chain is never pruned.
func (s *Service) PruneOrgChain(ctx context.Context, org kluis.OrgID, before time.Time) (int64, error) {
	chain := sqlstore.OrgChain(org)
	var old int
	if err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		return t.QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM audit_events WHERE chain = ? AND at < ? LIMIT 1) o`, chain, sqlstore.Micros(before)).Scan(&old)
	}); err != nil || old == 0 {
		return 0, err // nothing to prune: no write, no lock on the chain
	}
	var total int64
	for ctx.Err() == nil {
		var n int64
		err := s.core.Write(ctx, chain, func(t *sqlstore.Tx) error {
			var err error
			n, err = s.pruneStep(ctx, t, chain, before)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < PruneBatch {
			return total, nil
		}
	}
	return total, ctx.Err()
}

// pruneStep removes at most PruneBatch events older than before from the
// start of chain, in t. Nothing to remove changes and records nothing.
func (s *Service) pruneStep(ctx context.Context, t *sqlstore.Tx, chain string, before time.Time) (int64, error) {
	var first sql.NullInt64
	if err := t.QueryRow(ctx, `SELECT MIN(seq) FROM audit_events WHERE chain = ?`, chain).Scan(&first); err != nil || !first.Valid {
		return 0, err
	}
	// Only a prefix of events all older than before goes: it ends before
	// the first younger event, whatever order the times of events from
	// several nodes came in.
	var young sql.NullInt64
	if err := t.QueryRow(ctx, `SELECT MIN(seq) FROM audit_events WHERE chain = ? AND at >= ?`, chain, sqlstore.Micros(before)).Scan(&young); err != nil {
		return 0, err
	}
	limit := first.Int64 + PruneBatch - 1
	if young.Valid && young.Int64-1 < limit {
		limit = young.Int64 - 1
	}
	var last int64
	var h []byte
	err := t.QueryRow(ctx, `SELECT seq, hash FROM audit_events WHERE chain = ? AND seq <= ? ORDER BY seq DESC LIMIT 1`,
		chain, limit).Scan(&last, &h)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	p := audit.Prune{Chain: chain, Seq: last, At: t.Now().UTC().Truncate(time.Microsecond)}
	copy(p.Hash[:], h)
	s.signer.SignPrune(&p)
	if _, err := t.Exec(ctx, `INSERT INTO audit_prunes (chain, seq, hash, at, signature) VALUES (?, ?, ?, ?, ?)`,
		chain, p.Seq, p.Hash[:], sqlstore.Micros(p.At), p.Signature); err != nil {
		return 0, err
	}
	res, err := t.Exec(ctx, `DELETE FROM audit_events WHERE chain = ? AND seq <= ?`, chain, last)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	return n, t.Append(ctx, chain, kluis.SystemActor, "audit.prune", "", "success", map[string]any{
		"from_seq": first.Int64, "through_seq": last, "events": n, "before": before.UTC().Format(time.RFC3339),
	})
}
