package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/keys"
)

// Key life-cycle events in the audit log (issue 3, issue 11 item 5; R28: a
// log of key use). The key store records each event (a key made, rotated,
// retired or destroyed, the root key rotated) in a table of its own, in the
// transaction of the change, with the audit name of the actor that caused
// it. DrainKeyEvents moves them into the audit chains: in one data
// transaction it appends each event and notes its id in key_events_drained,
// then marks the events done in the key store. A crash before the data
// commit leaves the events pending; a crash after it and before the mark
// leaves ids that the next drain finds noted and skips. So an event reaches
// its chain exactly once, however the process dies.
//
// The store drains right after each of its own key changes (a request's
// key.destroyed is in the chain before the request is answered), at start
// (EnsurePlatformKey: what a crash left behind), and kluis serve drains with its
// periodic key work (what other processes left behind).

// keyEventBatch is how many key events one data transaction appends.
const keyEventBatch = 100

// DrainKeyEvents appends the key store's pending life-cycle events to the
// audit chains, oldest first, as key.created, key.rotated, key.retired,
// key.destroyed and key.root_rotated: a user's or project's key in its
// organisation's chain, the root, organisation, index and platform keys in
// the platform chain. Each event is recorded as its recorded actor's
// ("user:ID", "cli", "system", …) with key ids, versions and fingerprints;
// key events carry no client address. An event already appended (by another
// process, or before a crash) is not appended again. It returns how many
// events it appended. Any caller may call it at any time, several at once;
// it must not be called inside a write transaction of the store.
func (s *Core) DrainKeyEvents(ctx context.Context) (int, error) {
	appended := 0
	for {
		events, err := s.keys.PendingEvents(ctx, keyEventBatch)
		if err != nil {
			return appended, fmt.Errorf("read key events: %w", err)
		}
		if len(events) == 0 {
			return appended, nil
		}
		n, err := s.appendKeyEvents(ctx, events)
		appended += n
		if err != nil {
			return appended, fmt.Errorf("append key events: %w", err)
		}
		ids := make([]string, len(events))
		for i, e := range events {
			ids[i] = e.EventID
		}
		if err := s.keys.MarkEventsDone(ctx, ids); err != nil {
			return appended, fmt.Errorf("mark key events done: %w", err)
		}
		if len(events) < keyEventBatch {
			return appended, nil
		}
	}
}

// appendKeyEvents appends events to their chains in one transaction, each
// unless key_events_drained holds its id, and notes the ids there. It
// returns how many it appended.
func (s *Core) appendKeyEvents(ctx context.Context, events []keys.Event) (int, error) {
	// Chain heads are locked in one order, the platform chain first, as
	// the writes that append to the platform chain and an organisation's
	// lock them, so that two transactions never wait for each other.
	var chains []string
	for _, e := range events {
		if c := keyEventChain(e); c != audit.PlatformChain && !slices.Contains(chains, c) {
			chains = append(chains, c)
		}
	}
	slices.Sort(chains)
	chains = append([]string{audit.PlatformChain}, chains...)
	var appended int
	err := s.Write(ctx, "", func(t *Tx) error {
		appended = 0
		for _, c := range chains {
			if _, _, err := t.lockHead(ctx, c); err != nil {
				return err
			}
		}
		for _, e := range events {
			res, err := t.Exec(ctx, `INSERT INTO key_events_drained (id, at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING`, e.EventID, Micros(t.Now()))
			if err != nil {
				return fmt.Errorf("note key event: %w", err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				continue // appended before
			}
			chain, action, target, details := keyEventRecord(e)
			if err := t.appendAs(ctx, chain, kluis.NewID(t.Now()), e.Actor, action, target, "success", details, []byte{}); err != nil {
				return err
			}
			appended++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return appended, nil
}

// keyEventChain is the chain of a key event: a user's or project's key (and
// a project's address key) is its organisation's business, every other key
// the platform's (DESIGN §4).
func keyEventChain(e keys.Event) string {
	if (e.Key.Kind == keys.KindUser || e.Key.Kind == keys.KindProject || e.Key.Kind == keys.KindAddress) && e.Key.Org != "" {
		return OrgChain(kluis.OrgID(e.Key.Org))
	}
	return audit.PlatformChain
}

// keyEventRecord returns the chain, action, target and details of a key
// event's audit event: ids, versions and fingerprints, never key material.
func keyEventRecord(e keys.Event) (chain, action, target string, details map[string]any) {
	action = "key." + strings.ReplaceAll(strings.TrimPrefix(string(e.Action), "key."), "-", "_")
	if e.ID != (keys.KeyID{}) {
		target = "key:" + e.ID.String()
	}
	details = map[string]any{"kind": string(e.Key.Kind), "version": e.Version}
	if e.Key.Org != "" {
		details["org"] = e.Key.Org
	}
	if e.Rewrapped > 0 {
		details["rewrapped"] = e.Rewrapped
	}
	if e.RootFingerprint != "" {
		details["root_fingerprint"], details["previous_root_fingerprint"] = e.RootFingerprint, e.PreviousRootFingerprint
	}
	return keyEventChain(e), action, target, details
}

// DrainAfterKeyChange drains the key events that a change of the key store
// just recorded, so that they are in the chain before the operation
// answers. The change has committed, whatever happens here: a failure only
// leaves the events pending for the next drain, and is logged.
func (s *Core) DrainAfterKeyChange(ctx context.Context) {
	if _, err := s.DrainKeyEvents(context.WithoutCancel(ctx)); err != nil {
		s.log.Error("key events not yet in the audit log; the next drain records them", "err", err.Error())
	}
}
