package sqlstore

import (
	"context"
	"time"

	"github.com/kluis/kluis"
)

// SignIn is one attempt to sign in to a person's account.
type SignIn struct {
	At time.Time
	// OK is false for a failed attempt (a wrong password).
	OK bool
	// Client is the address of a successful sign-in, decrypted; failed
	// attempts show none: the address is the one who tried, maybe not the
	// person, and it is kept for the managers' log only.
	Client string
}

// MaxSignIns caps FindSignIns.
const MaxSignIns = 50

// FindSignIns returns the signed-in user's own most recent sign-ins and
// failed attempts on their account, newest first (R4: a person sees what is
// held about them). A person reading their own history is not recorded
// (DESIGN §3). Errors: unauthenticated.
func (s *Store) FindSignIns(ctx context.Context, org kluis.OrgID, actor kluis.Actor, limit int) ([]SignIn, error) {
	if !actor.IsOrgUser(org) {
		return nil, kluis.ErrUnauthenticated
	}
	limit = min(max(limit, 1), MaxSignIns)
	chain := OrgChain(org)
	rows, err := s.db.reader.QueryContext(ctx, s.db.Q(`SELECT id, at, action, client FROM audit_events
		WHERE chain = ? AND target = ? AND action IN ('auth.login', 'auth.login_failed')
		ORDER BY seq DESC LIMIT ?`), chain, UserTarget(actor.UserID), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type row struct {
		id     string
		si     SignIn
		client []byte
	}
	var found []row
	for rows.Next() {
		var r row
		var at int64
		var action string
		if err := rows.Scan(&r.id, &at, &action, &r.client); err != nil {
			return nil, err
		}
		r.si = SignIn{At: FromMicros(at), OK: action == "auth.login"}
		found = append(found, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	out := make([]SignIn, 0, len(found))
	for _, r := range found {
		if r.si.OK && len(r.client) > 0 {
			c, err := s.openAuditValue(ctx, chain, r.id, colClient, r.client)
			if err != nil {
				return nil, err
			}
			r.si.Client = c
		}
		out = append(out, r.si)
	}
	return out, nil
}

// FindAuditPeople returns the names of the organisation's users by id, so
// that the audit log can say who acted; only the names are decrypted. Like
// reading the log itself it is not recorded (the log would grow with every
// look at it); a deleted person is absent (their events keep the id).
// Managers only. Errors: forbidden.
func (s *Store) FindAuditPeople(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (map[kluis.UserID]string, error) {
	if !kluis.CanReadAudit(actor, org) {
		return nil, s.Refuse(ctx, OrgChain(org), actor, "audit.read", "")
	}
	rows, err := s.db.reader.QueryContext(ctx, s.db.Q(`SELECT `+userColumns+` FROM users WHERE org_id = ? ORDER BY created_at, id`), org)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var sealed []sealedUser
	for rows.Next() {
		su, err := scanSealedUser(rows)
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
		name, err := s.Open(ctx, UserField(org, su.ID, colName), su.name)
		if err != nil {
			return nil, err
		}
		out[su.ID] = string(name)
	}
	return out, nil
}
