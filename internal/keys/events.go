package keys

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kluis/kluis"
)

// Key life-cycle events (R28: a log of key use). Every change of a key is
// recorded as a row of the key store's own key_events table in the
// transaction that makes the change, so the record commits with the change
// or not at all: no crash can lose one, and recording needs nothing outside
// the key store (a key may be made while a data transaction is open). The
// caller moves the events into its audit log and then deletes them here
// ([Store.PendingEvents], [Store.MarkEventsDone]); until then they wait,
// across restarts. The rows hold ids, versions, fingerprints and the audit
// name of the actor, never key material.

// Action is what happened to a key in an [Event].
type Action string

// The key life-cycle actions.
const (
	// ActionCreated: a key was made (version 1).
	ActionCreated Action = "key.created"
	// ActionRotated: a new version of a key was made by rotation; Event.Version
	// is the new version and Event.Rewrapped counts the keys below it that
	// were re-wrapped under it.
	ActionRotated Action = "key.rotated"
	// ActionRetired: a version stopped sealing new data; it still decrypts.
	ActionRetired Action = "key.retired"
	// ActionDestroyed: a version's wrapped bytes were erased.
	ActionDestroyed Action = "key.destroyed"
	// ActionRootRotated: every key wrapped by the root key was re-wrapped
	// under a new root key.
	ActionRootRotated Action = "key.root-rotated"
)

// Event is one key life-cycle event as the key store recorded it, in the
// transaction of the change.
type Event struct {
	// EventID identifies the event: a time-ordered UUIDv7, unique across
	// the key store, so that a caller can tell an event it has already
	// recorded from a new one.
	EventID string
	Action  Action
	Key     KeyRef // zero for ActionRootRotated
	ID      KeyID  // the key's id; zero for ActionRootRotated
	Version int    // the key version; for ActionRootRotated the new root generation
	At      time.Time
	// Actor is who caused the change, as given to the method that made it:
	// an audit name such as "user:ID", "operator:ID", "cli" or "system".
	Actor string
	// Rewrapped counts the keys re-wrapped (ActionRotated, ActionRootRotated).
	Rewrapped int
	// RootFingerprint and PreviousRootFingerprint are set for
	// ActionRootRotated only.
	RootFingerprint         string
	PreviousRootFingerprint string
}

// MaxEventBatch is the most events [Store.PendingEvents] returns and
// [Store.MarkEventsDone] takes at once.
const MaxEventBatch = 1000

// firstUseActor is the actor recorded for a key that [Store.Seal] or
// [Store.BlindIndex] makes because it did not exist yet: kluis's own work,
// not anyone's request (kluis makes its keys beforehand with the Ensure
// methods, which name the actor).
var firstUseActor = kluis.SystemActor.AuditName()

// errNoActor is returned by the methods that change keys when the actor is
// missing or unreasonable.
var errNoActor = errors.New("keys: a key change needs its actor's audit name (1 to 255 bytes, such as \"system\")")

func checkActor(actor string) error {
	if actor == "" || len(actor) > maxIDLen {
		return errNoActor
	}
	return nil
}

// recordEvents stores events in tx, the transaction of the change they
// describe, each with a new event id, the time at and the actor.
func (s *Store) recordEvents(ctx context.Context, tx *sql.Tx, at time.Time, actor string, events ...Event) error {
	for _, e := range events {
		keyID := ""
		if e.ID != (KeyID{}) {
			keyID = e.ID.String()
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO key_events (id, action, kind, org_id, owner_id, key_id, version, rewrapped,
			root_fingerprint, previous_root_fingerprint, at, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			kluis.NewID(at), string(e.Action), string(e.Key.Kind), e.Key.Org, e.Key.Owner, keyID, e.Version, e.Rewrapped,
			e.RootFingerprint, e.PreviousRootFingerprint, at.UnixMicro(), actor); err != nil {
			return fmt.Errorf("keys: recording a %s event: %w", e.Action, err)
		}
	}
	return nil
}

// PendingEvents returns up to limit (1 to [MaxEventBatch]) of the recorded
// life-cycle events not yet marked done, oldest first: the order in which
// their changes committed. Several processes may read the same events; the
// caller records each event once by its EventID.
func (s *Store) PendingEvents(ctx context.Context, limit int) ([]Event, error) {
	if limit < 1 || limit > MaxEventBatch {
		return nil, fmt.Errorf("keys: a batch of events holds 1 to %d, not %d", MaxEventBatch, limit)
	}
	rows, err := s.reader.QueryContext(ctx, s.q(`SELECT id, action, kind, org_id, owner_id, key_id, version, rewrapped,
		root_fingerprint, previous_root_fingerprint, at, actor FROM key_events ORDER BY seq LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("keys: reading key events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var (
			e           Event
			action      string
			kind, keyID string
			at          int64
		)
		if err := rows.Scan(&e.EventID, &action, &kind, &e.Key.Org, &e.Key.Owner, &keyID, &e.Version, &e.Rewrapped,
			&e.RootFingerprint, &e.PreviousRootFingerprint, &at, &e.Actor); err != nil {
			return nil, fmt.Errorf("keys: reading key events: %w", err)
		}
		e.Action, e.Key.Kind, e.At = Action(action), Kind(kind), fromMicro(at)
		if keyID != "" {
			if e.ID, err = parseKeyID(keyID); err != nil {
				return nil, err
			}
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("keys: reading key events: %w", err)
	}
	return out, nil
}

// MarkEventsDone deletes the events with the given ids (at most
// [MaxEventBatch]), once the caller has recorded them for good. Ids that
// are not pending (marked before, by this or another process) are ignored,
// so marking twice does no harm.
func (s *Store) MarkEventsDone(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if len(ids) > MaxEventBatch {
		return fmt.Errorf("keys: a batch of events holds at most %d", MaxEventBatch)
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	query := `DELETE FROM key_events WHERE id IN (?` + strings.Repeat(", ?", len(ids)-1) + `)`
	if _, err := s.writer.ExecContext(ctx, s.q(query), args...); err != nil {
		return fmt.Errorf("keys: marking key events done: %w", err)
	}
	return nil
}
