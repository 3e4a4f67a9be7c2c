package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"sort"
	"strings"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
)

// AuditFilter selects events of one organisation's log (R25).
type AuditFilter struct {
	After  int64     // only events with a greater sequence number
	Before int64     // only events with a smaller sequence number (0: no bound)
	Newest bool      // newest first; the next page is then Before the last one
	Limit  int       // 1…1000; 0 means 100
	Action string    // exact action, or a prefix ending in "." ("user.")
	Actor  string    // "user:ID", "operator:ID", "cli", "anonymous"
	Since  time.Time // inclusive
	Until  time.Time // exclusive
}

// MaxAuditPage is the largest page of FindAuditEvents.
const MaxAuditPage = 1000

// AuditEvent is an event as a manager reads it.
type AuditEvent struct {
	Seq     int64
	At      time.Time
	Actor   string
	Action  string
	Target  string
	Outcome string
	Details json.RawMessage
	// Client is the address the request came from, decrypted; empty for the
	// command line, background work, and in lists (R29).
	Client string
	Hash   audit.Hash
}

func (f AuditFilter) where(db *DB, chain string) (string, []any) {
	var b strings.Builder
	args := []any{chain, f.After}
	b.WriteString(` WHERE chain = ? AND seq > ?`)
	if f.Before > 0 {
		b.WriteString(` AND seq < ?`)
		args = append(args, f.Before)
	}
	if f.Action != "" {
		if strings.HasSuffix(f.Action, ".") {
			b.WriteString(` AND action >= ? AND action < ?`)
			args = append(args, f.Action, f.Action[:len(f.Action)-1]+"/") // '/' follows '.'
		} else {
			b.WriteString(` AND action = ?`)
			args = append(args, f.Action)
		}
	}
	if f.Actor != "" {
		b.WriteString(` AND actor = ?`)
		args = append(args, f.Actor)
	}
	if !f.Since.IsZero() {
		b.WriteString(` AND at >= ?`)
		args = append(args, micros(f.Since))
	}
	if !f.Until.IsZero() {
		b.WriteString(` AND at < ?`)
		args = append(args, micros(f.Until))
	}
	return b.String(), args
}

// auditEvents reads a chain's events. Sealed values (personal values in
// details, the client address) are decrypted when reveal is set (an export,
// itself recorded), and hidden otherwise (a list, R29); a value whose key was
// destroyed reads Erased.
func (s *Store) auditEvents(ctx context.Context, chain string, f AuditFilter, limit int, reveal bool) iter.Seq2[AuditEvent, error] {
	return func(yield func(AuditEvent, error) bool) {
		where, args := f.where(s.db, chain)
		query := `SELECT seq, id, at, actor, action, target, outcome, details, client, hash FROM audit_events` + where + ` ORDER BY seq`
		if f.Newest {
			query += ` DESC`
		}
		if limit > 0 {
			query += ` LIMIT ?`
			args = append(args, limit)
		}
		rows, err := s.db.reader.QueryContext(ctx, s.db.q(query), args...)
		if err != nil {
			yield(AuditEvent{}, err)
			return
		}
		defer rows.Close()
		for rows.Next() {
			var e AuditEvent
			var at int64
			var id string
			var details, client, hash []byte
			if err := rows.Scan(&e.Seq, &id, &at, &e.Actor, &e.Action, &e.Target, &e.Outcome, &details, &client, &hash); err != nil {
				yield(AuditEvent{}, err)
				return
			}
			e.At = fromMicros(at)
			e.Details = json.RawMessage(details)
			copy(e.Hash[:], hash)
			if err := s.showSealed(ctx, chain, id, &e, client, reveal); err != nil {
				yield(AuditEvent{}, err)
				return
			}
			if !yield(e, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(AuditEvent{}, err)
		}
	}
}

// Hidden replaces a sealed audit detail in lists.
const Hidden = "[hidden]"

// showSealed decrypts (reveal) or hides the sealed values of one event.
func (s *Store) showSealed(ctx context.Context, chain, id string, e *AuditEvent, client []byte, reveal bool) error {
	if reveal && len(client) > 0 {
		c, err := s.openAuditValue(ctx, chain, id, colClient, client)
		if err != nil {
			return err
		}
		e.Client = c
	}
	if !bytes.Contains(e.Details, []byte(`"sealed"`)) {
		return nil
	}
	var d map[string]json.RawMessage
	if err := json.Unmarshal(e.Details, &d); err != nil {
		return nil // not an object: shown as stored
	}
	changed := false
	for name, v := range d {
		var sv struct {
			Sealed []byte `json:"sealed"`
		}
		if json.Unmarshal(v, &sv) != nil || sv.Sealed == nil {
			continue
		}
		shown := Hidden
		if reveal {
			var err error
			if shown, err = s.openAuditValue(ctx, chain, id, colDetails+name, sv.Sealed); err != nil {
				return err
			}
		}
		d[name], _ = json.Marshal(shown)
		changed = true
	}
	if changed {
		b, err := json.Marshal(d)
		if err != nil {
			return err
		}
		e.Details = b
	}
	return nil
}

// FindAuditEvents returns a page of the organisation's log and the sequence
// number to pass as After (or, with Newest, as Before) for the next page (0
// when there is none). Reading
// the log is not itself recorded: paging would never end. Managers only.
// Errors: forbidden.
func (s *Store) FindAuditEvents(ctx context.Context, org kluis.OrgID, actor kluis.Actor, f AuditFilter) ([]AuditEvent, int64, error) {
	if !kluis.CanReadAudit(actor, org) {
		return nil, 0, s.refuse(ctx, orgChain(org), actor, "audit.read", "")
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, MaxAuditPage)
	var out []AuditEvent
	for e, err := range s.auditEvents(ctx, orgChain(org), f, f.Limit+1, false) {
		if err != nil {
			return nil, 0, err
		}
		out = append(out, e)
	}
	var next int64
	if len(out) > f.Limit {
		out = out[:f.Limit]
		next = out[len(out)-1].Seq
	}
	return out, next, nil
}

// ExportAudit records the export as audit.export and then streams every
// event of the organisation's log that matches the filter (Limit is ignored)
// to emit (R24, R25). Managers only. Errors: forbidden.
func (s *Store) ExportAudit(ctx context.Context, org kluis.OrgID, actor kluis.Actor, f AuditFilter, emit func(AuditEvent) error) error {
	if !kluis.CanReadAudit(actor, org) {
		return s.refuse(ctx, orgChain(org), actor, "audit.export", "")
	}
	// Recorded before the first byte leaves: a client that stops reading
	// half-way has still received data.
	// Which filters were used, not their values: query text never enters the chain.
	var filters []string
	for name, used := range map[string]bool{"after": f.After > 0, "action": f.Action != "", "actor": f.Actor != "", "since": !f.Since.IsZero(), "until": !f.Until.IsZero()} {
		if used {
			filters = append(filters, name)
		}
	}
	sort.Strings(filters)
	filter := map[string]any{"filters": filters}
	if err := s.write(context.WithoutCancel(ctx), orgChain(org), func(t *Tx) error {
		return t.appendEvent(ctx, orgChain(org), actor, "audit.export", "", "success", filter)
	}); err != nil {
		return err
	}
	for e, err := range s.auditEvents(ctx, orgChain(org), f, 0, true) {
		if err != nil {
			return err
		}
		if err := emit(e); err != nil {
			return err
		}
	}
	return nil
}

// VerifyOrgAudit checks the organisation's chain and its checkpoints (R25).
// Managers only. Errors: forbidden; other errors mean it could not check.
func (s *Store) VerifyOrgAudit(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (audit.Result, error) {
	if !kluis.CanReadAudit(actor, org) {
		return audit.Result{}, s.refuse(ctx, orgChain(org), actor, "audit.verify", "")
	}
	cps, err := s.witness.Checkpoints()
	if err != nil {
		return audit.Result{}, fmt.Errorf("read witness: %w", err)
	}
	return s.verifyChain(ctx, orgChain(org), cps)
}

// OrgChain returns the audit chain id of an organisation.
func OrgChain(org kluis.OrgID) string { return orgChain(org) }

// AuditChains lists every chain known to the database or the witness,
// platform first: a chain whose rows were all deleted still shows up through
// its head or its witnessed checkpoints.
func (s *Store) AuditChains(ctx context.Context) ([]string, error) {
	seen := map[string]bool{audit.PlatformChain: true}
	for _, q := range []string{`SELECT chain FROM audit_heads`, `SELECT DISTINCT chain FROM audit_events`, `SELECT DISTINCT chain FROM audit_checkpoints`} {
		rows, err := s.db.reader.QueryContext(ctx, q)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				rows.Close()
				return nil, err
			}
			seen[c] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	cps, err := s.witness.Checkpoints()
	if err != nil {
		return nil, fmt.Errorf("read witness: %w", err)
	}
	for _, c := range cps {
		seen[c.Chain] = true
	}
	chains := make([]string, 0, len(seen))
	for c := range seen {
		if c != audit.PlatformChain {
			chains = append(chains, c)
		}
	}
	sort.Strings(chains)
	return append([]string{audit.PlatformChain}, chains...), nil
}

// VerifyChains checks the given chains (all when none are given), for the
// command line. An error means the check could not be made.
func (s *Store) VerifyChains(ctx context.Context, chains ...string) ([]audit.Result, error) {
	if len(chains) == 0 {
		var err error
		if chains, err = s.AuditChains(ctx); err != nil {
			return nil, err
		}
	}
	cps, err := s.witness.Checkpoints()
	if err != nil {
		return nil, fmt.Errorf("read witness: %w", err)
	}
	var out []audit.Result
	for _, c := range chains {
		r, err := s.verifyChain(ctx, c, cps)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (s *Store) verifyChain(ctx context.Context, chain string, witnessed []audit.Checkpoint) (audit.Result, error) {
	var cps []audit.Checkpoint
	for _, c := range witnessed {
		if c.Chain == chain {
			cps = append(cps, c)
		}
	}
	// Head, checkpoints and events are read in one snapshot, so an event
	// appended meanwhile is no false alarm. The witness was read before the
	// snapshot began: every checkpoint in it lies on committed events.
	opts := &sql.TxOptions{ReadOnly: true}
	if s.db.Engine == Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.db.reader.BeginTx(ctx, opts)
	if err != nil {
		return audit.Result{}, err
	}
	defer tx.Rollback()
	stored, err := s.checkpoints(ctx, tx, chain)
	if err != nil {
		return audit.Result{}, err
	}
	cps = append(cps, stored...)
	var head *audit.Head
	var seq int64
	var h []byte
	err = tx.QueryRowContext(ctx, s.db.q(`SELECT seq, hash FROM audit_heads WHERE chain = ?`), chain).Scan(&seq, &h)
	switch {
	case err == nil:
		head = &audit.Head{Seq: seq}
		copy(head.Hash[:], h)
	case !errors.Is(err, sql.ErrNoRows):
		return audit.Result{}, err
	}
	events := func(yield func(audit.Event, error) bool) {
		rows, err := tx.QueryContext(ctx, s.db.q(`SELECT seq, id, at, actor, action, target, outcome, details, client, prev_hash, hash
			FROM audit_events WHERE chain = ? ORDER BY seq`), chain)
		if err != nil {
			yield(audit.Event{}, err)
			return
		}
		defer rows.Close()
		for rows.Next() {
			e := audit.Event{Chain: chain}
			var at int64
			var prev, hash []byte
			if err := rows.Scan(&e.Seq, &e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Outcome, &e.Details, &e.Client, &prev, &hash); err != nil {
				yield(audit.Event{}, err)
				return
			}
			e.At = fromMicros(at)
			copy(e.PrevHash[:], prev)
			copy(e.Hash[:], hash)
			if !yield(e, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(audit.Event{}, err)
		}
	}
	return audit.VerifyChain(chain, events, head, s.signer.PublicKey(), cps)
}

func (s *Store) checkpoints(ctx context.Context, tx *sql.Tx, chain string) ([]audit.Checkpoint, error) {
	rows, err := tx.QueryContext(ctx, s.db.q(`SELECT seq, hash, at, signature FROM audit_checkpoints WHERE chain = ? ORDER BY seq`), chain)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []audit.Checkpoint
	for rows.Next() {
		c := audit.Checkpoint{Chain: chain}
		var h []byte
		var at int64
		if err := rows.Scan(&c.Seq, &h, &at, &c.Signature); err != nil {
			return nil, err
		}
		copy(c.Hash[:], h)
		c.At = fromMicros(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

// CheckpointPolicy says when a chain gets a signed checkpoint.
type CheckpointPolicy struct {
	Every    int64         // after this many new events
	Interval time.Duration // or this long after the last checkpoint, if anything was appended
}

// DefaultCheckpointPolicy checkpoints every 1000 events or 30 seconds.
var DefaultCheckpointPolicy = CheckpointPolicy{Every: 1000, Interval: 30 * time.Second}

// Checkpoint signs a checkpoint for every chain that is due by the policy
// (or, with force, that has any event after its last checkpoint), writes it to
// the witness outside the database and then to the database (DESIGN §3). It
// returns how many checkpoints it made.
func (s *Store) Checkpoint(ctx context.Context, p CheckpointPolicy, force bool) (int, error) {
	s.cpMu.Lock()
	defer s.cpMu.Unlock()
	// The last checkpoint of each chain comes from the witness, outside the
	// database: a forged checkpoint row in the database must not be able to
	// hold back new checkpoints.
	if s.lastCP == nil {
		cps, err := s.witness.Checkpoints()
		if err != nil {
			return 0, fmt.Errorf("read witness: %w", err)
		}
		s.lastCP = map[string]audit.Checkpoint{}
		for _, c := range cps {
			if last, ok := s.lastCP[c.Chain]; (!ok || c.Seq > last.Seq) && audit.VerifyCheckpoint(s.signer.PublicKey(), c) {
				s.lastCP[c.Chain] = c
			}
		}
	}
	rows, err := s.db.reader.QueryContext(ctx, `SELECT chain, seq, hash FROM audit_heads WHERE seq > 0`)
	if err != nil {
		return 0, err
	}
	var todo []audit.Checkpoint
	now := s.now().UTC().Truncate(time.Microsecond)
	for rows.Next() {
		c := audit.Checkpoint{At: now}
		var h []byte
		if err := rows.Scan(&c.Chain, &c.Seq, &h); err != nil {
			rows.Close()
			return 0, err
		}
		copy(c.Hash[:], h)
		last := s.lastCP[c.Chain]
		if force && c.Seq != last.Seq || audit.CheckpointDue(last.Seq, last.At, c.Seq, now, p.Every, p.Interval) {
			todo = append(todo, c)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for i := range todo {
		c := &todo[i]
		s.signer.Sign(c)
		if err := s.witness.Append(*c); err != nil {
			return i, fmt.Errorf("witness checkpoint: %w", err)
		}
		s.lastCP[c.Chain] = *c
		if _, err := s.db.writeExec(ctx, `INSERT INTO audit_checkpoints (chain, seq, hash, at, signature) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (chain, seq) DO NOTHING`, c.Chain, c.Seq, c.Hash[:], micros(c.At), c.Signature); err != nil {
			return i, fmt.Errorf("store checkpoint: %w", err)
		}
	}
	return len(todo), nil
}
