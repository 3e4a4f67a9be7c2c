package users

import (
	"context"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// FindSignIns returns the signed-in user's own most recent sign-ins and
// failed attempts on their account, newest first (R4: a person sees what is
// held about them). A person reading their own history is not recorded
// (DESIGN §3). Errors: unauthenticated.
func (s *Service) FindSignIns(ctx context.Context, org kluis.OrgID, actor kluis.Actor, limit int) ([]kluis.SignIn, error) {
	if !actor.IsOrgUser(org) {
		return nil, kluis.ErrUnauthenticated
	}
	limit = min(max(limit, 1), kluis.MaxSignIns)
	chain := sqlstore.OrgChain(org)
	rows, err := s.core.DB().Query(ctx, `SELECT id, at, action, client FROM audit_events
		WHERE chain = ? AND target = ? AND action IN ('auth.login', 'auth.login_failed')
		ORDER BY seq DESC LIMIT ?`, chain, sqlstore.UserTarget(actor.UserID), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type row struct {
		id     string
		si     kluis.SignIn
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
		r.si = kluis.SignIn{At: sqlstore.FromMicros(at), OK: action == "auth.login"}
		found = append(found, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	out := make([]kluis.SignIn, 0, len(found))
	for _, r := range found {
		if r.si.OK && len(r.client) > 0 {
			c, err := s.core.OpenAuditValue(ctx, chain, r.id, sqlstore.ColClient, r.client)
			if err != nil {
				return nil, err
			}
			r.si.Client = c
		}
		out = append(out, r.si)
	}
	return out, nil
}
