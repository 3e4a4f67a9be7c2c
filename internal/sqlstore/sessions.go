package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
)

const tabSessions = "sessions"

type deviceKey struct{}

// WithDevice returns a context that carries the coarse device name of a
// request ("Firefox on Linux"); a session opened in it records the name.
func WithDevice(ctx context.Context, device string) context.Context {
	return context.WithValue(ctx, deviceKey{}, device)
}

func deviceFrom(ctx context.Context) string {
	d, _ := ctx.Value(deviceKey{}).(string)
	return d
}

func sessionField(org kluis.OrgID, id kluis.SessionID) keys.FieldRef {
	return keys.FieldRef{Org: string(org), Table: tabSessions, Column: "device", Row: string(id)}
}

// sessionDevice is what a session's device column holds, sealed.
type sessionDevice struct {
	Client string `json:"client,omitempty"`
	Device string `json:"device,omitempty"`
}

// sealSessionDevice seals the request's address and device name for a new
// session of user.
func (t *Tx) sealSessionDevice(ctx context.Context, org kluis.OrgID, user kluis.UserID, id kluis.SessionID) ([]byte, error) {
	d := sessionDevice{Device: deviceFrom(ctx)}
	if a := clientFrom(ctx); a.IsValid() {
		d.Client = a.Unmap().String()
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	c, err := t.s.Seal(ctx, UserKey(org, user), sessionField(org, id), b)
	if err != nil {
		return nil, fmt.Errorf("seal session device: %w", err)
	}
	return c, nil
}

// SessionInfo is one of a person's sessions as My account shows it.
type SessionInfo struct {
	ID         kluis.SessionID
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
	Client     string // "" when not recorded
	Device     string // "" when not recorded
	Current    bool   // the session of the request
}

// FindSessions returns the signed-in user's live sessions, newest first,
// with where they were opened (R4, R14). Reading one's own sessions is not
// recorded. Errors: unauthenticated.
func (s *Store) FindSessions(ctx context.Context, org kluis.OrgID, actor kluis.Actor) ([]SessionInfo, error) {
	if !actor.IsOrgUser(org) {
		return nil, kluis.ErrUnauthenticated
	}
	policy, err := s.policy(ctx, s.db.reader, org)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.reader.QueryContext(ctx, s.db.Q(`SELECT id, created_at, last_seen_at, expires_at, device FROM sessions
		WHERE org_id = ? AND user_id = ? ORDER BY created_at DESC, id DESC`), org, actor.UserID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type row struct {
		si     SessionInfo
		sealed []byte
	}
	var found []row
	now := s.Now()
	for rows.Next() {
		var r row
		var created, seen, expires int64
		if err := rows.Scan(&r.si.ID, &created, &seen, &expires, &r.sealed); err != nil {
			return nil, err
		}
		r.si.CreatedAt, r.si.LastSeenAt, r.si.ExpiresAt = FromMicros(created), FromMicros(seen), FromMicros(expires)
		if !sessionAlive(now, r.si.CreatedAt, r.si.LastSeenAt, r.si.ExpiresAt, policy.IdleTimeout(), policy.MaxLifetime()) {
			continue
		}
		r.si.Current = r.si.ID == actor.SessionID
		found = append(found, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	out := make([]SessionInfo, 0, len(found))
	for _, r := range found {
		if len(r.sealed) > 0 {
			b, err := s.Open(ctx, sessionField(org, r.si.ID), r.sealed)
			if err != nil {
				return nil, err
			}
			var d sessionDevice
			if json.Unmarshal(b, &d) == nil {
				r.si.Client, r.si.Device = d.Client, d.Device
			}
		}
		out = append(out, r.si)
	}
	return out, nil
}

// EndSession ends one of the signed-in user's own sessions, recorded as
// auth.session_end; ending the current one signs out. A session of someone
// else is not found. Errors: unauthenticated, not_found.
func (s *Store) EndSession(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.SessionID) error {
	if !actor.IsOrgUser(org) {
		return kluis.ErrUnauthenticated
	}
	if !kluis.ValidID(string(id)) {
		return kluis.ErrNotFound
	}
	return s.Write(ctx, OrgChain(org), func(t *Tx) error {
		res, err := t.Exec(ctx, `DELETE FROM sessions WHERE org_id = ? AND user_id = ? AND id = ?`, org, actor.UserID, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return kluis.ErrNotFound
		}
		return t.Append(ctx, OrgChain(org), actor, "auth.session_end", UserTarget(actor.UserID), "success", map[string]any{"session": string(id)})
	})
}

// EndOtherSessions ends every session of the signed-in user but the
// current one, recorded as auth.session_end with the number ended.
// Errors: unauthenticated.
func (s *Store) EndOtherSessions(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (int, error) {
	if !actor.IsOrgUser(org) {
		return 0, kluis.ErrUnauthenticated
	}
	var ended int64
	err := s.Write(ctx, OrgChain(org), func(t *Tx) error {
		var err error
		if ended, err = t.endOtherSessions(ctx, org, actor); err != nil {
			return err
		}
		return t.Append(ctx, OrgChain(org), actor, "auth.session_end", UserTarget(actor.UserID), "success", map[string]any{"sessions_ended": ended})
	})
	return int(ended), err
}

// endOtherSessions ends every session of the actor but the current one and
// returns how many ended.
func (t *Tx) endOtherSessions(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (int64, error) {
	res, err := t.Exec(ctx, `DELETE FROM sessions WHERE org_id = ? AND user_id = ? AND id <> ?`, org, actor.UserID, string(actor.SessionID))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
