package auditlog

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
	"github.com/kluis/kluis/internal/sqlstore"
)

func where(f kluis.AuditFilter, chain string) (string, []any) {
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
		args = append(args, sqlstore.Micros(f.Since))
	}
	if !f.Until.IsZero() {
		b.WriteString(` AND at < ?`)
		args = append(args, sqlstore.Micros(f.Until))
	}
	return b.String(), args
}

// auditEvents reads a chain's events. Sealed values (personal values in
// details, the client address) are decrypted when reveal is set (an export,
// itself recorded), and hidden otherwise (a list, R29); a value whose key was
// destroyed reads kluis.Erased. withheld names the restricted people ("user:ID",
// R34) whose values an export leaves out: the sealed details of events about
// them and the client address of events by them read kluis.Withheld.
func (s *Service) auditEvents(ctx context.Context, chain string, f kluis.AuditFilter, limit int, reveal bool, withheld map[string]bool) iter.Seq2[kluis.AuditEvent, error] {
	return func(yield func(kluis.AuditEvent, error) bool) {
		where, args := where(f, chain)
		query := `SELECT seq, id, at, actor, action, target, outcome, details, client, hash FROM audit_events` + where + ` ORDER BY seq`
		if f.Newest {
			query += ` DESC`
		}
		if limit > 0 {
			query += ` LIMIT ?`
			args = append(args, limit)
		}
		rows, err := s.core.DB().Query(ctx, query, args...)
		if err != nil {
			yield(kluis.AuditEvent{}, err)
			return
		}
		defer rows.Close()
		for rows.Next() {
			var e kluis.AuditEvent
			var at int64
			var id string
			var details, client, hash []byte
			if err := rows.Scan(&e.Seq, &id, &at, &e.Actor, &e.Action, &e.Target, &e.Outcome, &details, &client, &hash); err != nil {
				yield(kluis.AuditEvent{}, err)
				return
			}
			e.At = sqlstore.FromMicros(at)
			e.Details = json.RawMessage(details)
			copy(e.Hash[:], hash)
			if err := s.showSealed(ctx, chain, id, &e, client, reveal, withheld); err != nil {
				yield(kluis.AuditEvent{}, err)
				return
			}
			if !yield(e, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(kluis.AuditEvent{}, err)
		}
	}
}

// showSealed decrypts (reveal) or hides the sealed values of one event.
func (s *Service) showSealed(ctx context.Context, chain, id string, e *kluis.AuditEvent, client []byte, reveal bool, withheld map[string]bool) error {
	if reveal && len(client) > 0 && withheld[e.Actor] {
		e.Client = kluis.Withheld
	} else if reveal && len(client) > 0 {
		c, err := s.core.OpenAuditValue(ctx, chain, id, sqlstore.ColClient, client)
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
		shown := kluis.Hidden
		if reveal && withheld[e.Target] {
			shown = kluis.Withheld
		} else if reveal {
			var err error
			if shown, err = s.core.OpenAuditValue(ctx, chain, id, sqlstore.ColDetails+name, sv.Sealed); err != nil {
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
func (s *Service) FindAuditEvents(ctx context.Context, org kluis.OrgID, actor kluis.Actor, f kluis.AuditFilter) ([]kluis.AuditEvent, int64, error) {
	if !kluis.CanReadAudit(actor, org) {
		return nil, 0, s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "audit.read", "")
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, kluis.MaxAuditPage)
	var out []kluis.AuditEvent
	for e, err := range s.auditEvents(ctx, sqlstore.OrgChain(org), f, f.Limit+1, false, nil) {
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
func (s *Service) ExportAudit(ctx context.Context, org kluis.OrgID, actor kluis.Actor, f kluis.AuditFilter, emit func(kluis.AuditEvent) error) error {
	if !kluis.CanExportAudit(actor, org) {
		return s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "audit.export", "")
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
	if err := s.core.Write(context.WithoutCancel(ctx), sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "audit.export", "", "success", filter)
	}); err != nil {
		return err
	}
	// R34: the values of restricted people stay out of an export to others.
	withheld, err := s.core.RestrictedPeople(ctx, org)
	if err != nil {
		return err
	}
	for e, err := range s.auditEvents(ctx, sqlstore.OrgChain(org), f, 0, true, withheld) {
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
func (s *Service) VerifyOrgAudit(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (kluis.ChainCheck, error) {
	if !kluis.CanReadAudit(actor, org) {
		return kluis.ChainCheck{}, s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "audit.verify", "")
	}
	cps, err := s.witness.Checkpoints()
	if err != nil {
		return kluis.ChainCheck{}, fmt.Errorf("read witness: %w", err)
	}
	r, err := s.verifyChain(ctx, sqlstore.OrgChain(org), cps)
	return kluis.ChainCheck(r), err
}

// AuditChains lists every chain known to the database or the witness,
// platform first: a chain whose rows were all deleted still shows up through
// its head or its witnessed checkpoints.
func (s *Service) AuditChains(ctx context.Context) ([]string, error) {
	seen := map[string]bool{audit.PlatformChain: true}
	for _, q := range []string{`SELECT chain FROM audit_heads`, `SELECT DISTINCT chain FROM audit_events`, `SELECT DISTINCT chain FROM audit_checkpoints`} {
		rows, err := s.core.DB().Query(ctx, q)
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
func (s *Service) VerifyChains(ctx context.Context, chains ...string) ([]audit.Result, error) {
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

func (s *Service) verifyChain(ctx context.Context, chain string, witnessed []audit.Checkpoint) (audit.Result, error) {
	var cps []audit.Checkpoint
	for _, c := range witnessed {
		if c.Chain == chain {
			cps = append(cps, c)
		}
	}
	// Head, checkpoints and events are read in one snapshot, so an event
	// appended meanwhile is no false alarm. The witness was read before the
	// snapshot began: every checkpoint in it lies on committed events.
	tx, err := s.core.DB().Snapshot(ctx)
	if err != nil {
		return audit.Result{}, err
	}
	defer tx.Rollback()
	stored, err := s.checkpoints(ctx, tx, chain)
	if err != nil {
		return audit.Result{}, err
	}
	cps = append(cps, stored...)
	prunes, err := s.chainPrunes(ctx, tx, chain)
	if err != nil {
		return audit.Result{}, err
	}
	var head *audit.Head
	var seq int64
	var h []byte
	err = tx.QueryRowContext(ctx, s.core.DB().Q(`SELECT seq, hash FROM audit_heads WHERE chain = ?`), chain).Scan(&seq, &h)
	switch {
	case err == nil:
		head = &audit.Head{Seq: seq}
		copy(head.Hash[:], h)
	case !errors.Is(err, sql.ErrNoRows):
		return audit.Result{}, err
	}
	events := func(yield func(audit.Event, error) bool) {
		rows, err := tx.QueryContext(ctx, s.core.DB().Q(`SELECT seq, id, at, actor, action, target, outcome, details, client, prev_hash, hash
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
			e.At = sqlstore.FromMicros(at)
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
	return audit.VerifyPrunedChain(chain, events, head, s.signer.PublicKey(), cps, prunes)
}

func (s *Service) checkpoints(ctx context.Context, tx *sql.Tx, chain string) ([]audit.Checkpoint, error) {
	rows, err := tx.QueryContext(ctx, s.core.DB().Q(`SELECT seq, hash, at, signature FROM audit_checkpoints WHERE chain = ? ORDER BY seq`), chain)
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
		c.At = sqlstore.FromMicros(at)
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
func (s *Service) Checkpoint(ctx context.Context, p CheckpointPolicy, force bool) (int, error) {
	s.cpMu.Lock()
	defer s.cpMu.Unlock()
	if err := s.loadLastCheckpoints(); err != nil {
		return 0, err
	}
	rows, err := s.core.DB().Query(ctx, `SELECT chain, seq, hash FROM audit_heads WHERE seq > 0`)
	if err != nil {
		return 0, err
	}
	var todo []audit.Checkpoint
	now := s.core.Now().UTC().Truncate(time.Microsecond)
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
		if err := s.signAndStore(ctx, &todo[i]); err != nil {
			return i, err
		}
	}
	return len(todo), nil
}

// loadLastCheckpoints reads the last checkpoint of each chain, once, from
// the witness, outside the database: a forged checkpoint row in the
// database must not be able to hold back new checkpoints. Under cpMu.
func (s *Service) loadLastCheckpoints() error {
	if s.lastCP != nil {
		return nil
	}
	cps, err := s.witness.Checkpoints()
	if err != nil {
		return fmt.Errorf("read witness: %w", err)
	}
	s.lastCP = map[string]audit.Checkpoint{}
	for _, c := range cps {
		if last, ok := s.lastCP[c.Chain]; (!ok || c.Seq > last.Seq) && audit.VerifyCheckpoint(s.signer.PublicKey(), c) {
			s.lastCP[c.Chain] = c
		}
	}
	return nil
}

// signAndStore signs c and writes it to the witness, then to the database.
// Under cpMu.
func (s *Service) signAndStore(ctx context.Context, c *audit.Checkpoint) error {
	s.signer.Sign(c)
	if err := s.witness.Append(*c); err != nil {
		return fmt.Errorf("witness checkpoint: %w", err)
	}
	s.lastCP[c.Chain] = *c
	if _, err := s.core.DB().WriteExec(ctx, `INSERT INTO audit_checkpoints (chain, seq, hash, at, signature) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (chain, seq) DO NOTHING`, c.Chain, c.Seq, c.Hash[:], sqlstore.Micros(c.At), c.Signature); err != nil {
		return fmt.Errorf("store checkpoint: %w", err)
	}
	return nil
}

// FindAuditPeople returns the names of the organisation's users by id, so
// that the audit log can say who acted; only the names are decrypted. Like
// reading the log itself it is not recorded (the log would grow with every
// look at it); a deleted person is absent (their events keep the id).
// Managers only. Errors: forbidden.
func (s *Service) FindAuditPeople(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (map[kluis.UserID]string, error) {
	if !kluis.CanReadAudit(actor, org) {
		return nil, s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "audit.read", "")
	}
	rows, err := s.core.DB().Query(ctx, `SELECT `+sqlstore.UserColumns+` FROM users WHERE org_id = ? ORDER BY created_at, id`, org)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var sealed []sqlstore.SealedUser
	for rows.Next() {
		su, err := sqlstore.ScanSealedUser(rows)
		if err != nil {
			return nil, err
		}
		sealed = append(sealed, su)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	out := make(map[kluis.UserID]string, len(sealed))
	for _, su := range sealed {
		name, err := s.core.OpenName(ctx, su)
		if err != nil {
			return nil, err
		}
		out[su.ID] = name
	}
	return out, nil
}
