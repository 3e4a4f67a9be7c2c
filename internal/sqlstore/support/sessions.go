package support

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/sqlstore"
)

// orgOfSlug resolves the organisation an operator names.
func (s *Service) orgOfSlug(ctx context.Context, slug string) (kluis.Org, error) {
	return s.core.FindOrgBySlug(ctx, slug)
}

// RequestSupport is support asking an organisation for access; its
// managers (and, for a project, its owners) see it and approve or refuse.
// Recorded in the organisation's chain. Operator support only. Errors:
// forbidden, not_found, invalid_input.
func (s *Service) RequestSupport(ctx context.Context, actor kluis.Actor, slug string, scope kluis.SupportScope, right kluis.SupportRight, reason string) (kluis.SupportRequest, error) {
	if !kluis.CanAskSupport(actor) || actor.CLI {
		return kluis.SupportRequest{}, s.core.Refuse(ctx, audit.PlatformChain, actor, "support.request", "")
	}
	in := kluis.SupportGrantInput{Scope: scope, Right: right, Reason: reason, ExpiresAt: s.core.Now().Add(time.Hour)}.Normalize()
	if err := in.Validate(s.core.Now()); err != nil {
		return kluis.SupportRequest{}, err
	}
	org, err := s.orgOfSlug(ctx, slug)
	if err != nil {
		return kluis.SupportRequest{}, err
	}
	var q kluis.SupportRequest
	err = s.core.Write(ctx, sqlstore.OrgChain(org.ID), func(t *sqlstore.Tx) error {
		now := t.Now()
		var project sql.NullString
		if p, ok := in.Scope.Project(); ok {
			var one int
			if err := t.QueryRow(ctx, `SELECT 1 FROM projects WHERE org_id = ? AND id = ? AND deleted_at IS NULL`, org.ID, p).Scan(&one); err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					return kluis.ErrNotFound
				}
				return err
			}
			project = sql.NullString{String: string(p), Valid: true}
		}
		q = kluis.SupportRequest{ID: kluis.SupportRequestID(kluis.NewID(now)), Operator: actor.OperatorID, Scope: in.Scope,
			Right: in.Right, Reason: in.Reason, At: now, Status: "open"}
		sealed, err := s.sealReason(ctx, org.ID, tabRequests, string(q.ID), q.Reason)
		if err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `INSERT INTO support_requests (id, org_id, operator_id, scope, project_id, access, reason, created_at, status)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, q.ID, org.ID, q.Operator, q.Scope, project, q.Right, sealed, sqlstore.Micros(now), q.Status); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org.ID), actor, "support.request", requestTarget(q.ID), "success",
			map[string]any{"scope": string(q.Scope), "right": string(q.Right)})
	})
	return q, err
}

const requestColumns = `id, operator_id, scope, access, reason, created_at, status, decided_by, decided_at, grant_id`

func (s *Service) scanRequest(ctx context.Context, org kluis.OrgID, row interface{ Scan(...any) error }, open bool) (kluis.SupportRequest, error) {
	var q kluis.SupportRequest
	var reason []byte
	var at int64
	var decided sql.NullInt64
	err := row.Scan(&q.ID, &q.Operator, &q.Scope, &q.Right, &reason, &at, &q.Status, &q.DecidedBy, &decided, &q.GrantID)
	if errors.Is(err, sql.ErrNoRows) {
		return q, kluis.ErrNotFound
	}
	if err != nil {
		return q, err
	}
	q.At, q.DecidedAt = sqlstore.FromMicros(at), sqlstore.NullMicros(decided)
	if open {
		q.Reason = s.openReason(ctx, org, tabRequests, string(q.ID), reason)
	}
	return q, nil
}

func (s *Service) listRequests(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, open bool) ([]kluis.SupportRequest, error) {
	rows, err := t.Query(ctx, `SELECT `+requestColumns+` FROM support_requests WHERE org_id = ? ORDER BY id DESC LIMIT 500`, org)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kluis.SupportRequest
	for rows.Next() {
		q, err := s.scanRequest(ctx, org, rows, open)
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

// decide loads an open request for a decision by actor: whoever could
// grant what it asks.
func (s *Service) decide(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, actor kluis.Actor, id kluis.SupportRequestID, action string) (kluis.SupportRequest, error) {
	if !kluis.ValidID(string(id)) {
		return kluis.SupportRequest{}, kluis.ErrNotFound
	}
	q, err := s.scanRequest(ctx, org, t.QueryRow(ctx, `SELECT `+requestColumns+` FROM support_requests WHERE org_id = ? AND id = ?`+t.ForUpdate(), org, id), true)
	if err != nil {
		return q, err
	}
	if err := mayGrant(ctx, t, org, actor, q.Scope, q.Right, action); err != nil {
		return q, err
	}
	if q.Status != "open" {
		return q, kluis.Errorf(kluis.EConflict, "this request was decided already")
	}
	return q, nil
}

// ApproveSupportRequest turns an open request into a grant ending at
// expiresAt. Errors: forbidden, not_found, conflict, invalid_input,
// reauth_required.
func (s *Service) ApproveSupportRequest(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.SupportRequestID, expiresAt time.Time) (kluis.SupportGrant, error) {
	if err := fresh(ctx, s.core, org, actor, "support.approve"); err != nil {
		return kluis.SupportGrant{}, err
	}
	var g kluis.SupportGrant
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		q, err := s.decide(ctx, t, org, actor, id, "support.approve")
		if err != nil {
			return err
		}
		// The end is checked once the request is known to the caller: an
		// id of another organisation is not found, whatever the body.
		if err := (kluis.SupportGrantInput{Scope: q.Scope, Right: q.Right, Reason: q.Reason, ExpiresAt: expiresAt}).Validate(t.Now()); err != nil {
			return err
		}
		if g, err = s.insertGrant(ctx, t, org, actor, kluis.SupportGrantInput{Scope: q.Scope, Right: q.Right, Reason: q.Reason, ExpiresAt: expiresAt}, q.ID); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE support_requests SET status = 'approved', decided_by = ?, decided_at = ?, grant_id = ? WHERE id = ?`,
			actor.AuditName(), sqlstore.Micros(t.Now()), g.ID, id); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "support.approve", requestTarget(id), "success",
			map[string]any{"grant": string(g.ID)})
	})
	return g, err
}

// RefuseSupportRequest refuses an open request. Errors: forbidden,
// not_found, conflict.
func (s *Service) RefuseSupportRequest(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.SupportRequestID) error {
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if _, err := s.decide(ctx, t, org, actor, id, "support.refuse"); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE support_requests SET status = 'refused', decided_by = ?, decided_at = ? WHERE id = ?`,
			actor.AuditName(), sqlstore.Micros(t.Now()), id); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "support.refuse", requestTarget(id), "success", nil)
	})
}

// OperatorSupportGrants lists an organisation's grants and support's
// requests as support sees them: scope, right, reason, status and times;
// never who granted, and no uses. Operator support only.
func (s *Service) OperatorSupportGrants(ctx context.Context, actor kluis.Actor, slug string) ([]kluis.SupportGrant, []kluis.SupportRequest, error) {
	if !kluis.CanAskSupport(actor) || actor.CLI {
		return nil, nil, s.core.Refuse(ctx, audit.PlatformChain, actor, "support.list", "")
	}
	org, err := s.orgOfSlug(ctx, slug)
	if err != nil {
		return nil, nil, err
	}
	var grants []kluis.SupportGrant
	var requests []kluis.SupportRequest
	err = s.core.Read(ctx, func(t *sqlstore.Tx) error {
		if grants, err = s.listGrants(ctx, t, org.ID, false); err != nil {
			return err
		}
		requests, err = s.listRequests(ctx, t, org.ID, true)
		return err
	})
	for i := range grants {
		grants[i].GrantedBy, grants[i].ApprovedBy, grants[i].RevokedBy = "", "", ""
		if grants[i].Status != kluis.SupportActive {
			grants[i].Reason = ""
		}
	}
	for i := range requests {
		requests[i].DecidedBy = ""
	}
	return grants, requests, err
}

// OpenSupportSession opens a session on an active grant of the
// organisation: it ends with the grant at the latest, and after the
// organisation's idle timeout. Recorded as support.session in the
// organisation's chain. Operator support only. Errors: forbidden,
// not_found.
func (s *Service) OpenSupportSession(ctx context.Context, actor kluis.Actor, slug string, grant kluis.SupportGrantID) (kluis.SupportSession, error) {
	if !kluis.CanAskSupport(actor) || actor.CLI {
		return kluis.SupportSession{}, s.core.Refuse(ctx, audit.PlatformChain, actor, "support.session", "")
	}
	org, err := s.orgOfSlug(ctx, slug)
	if err != nil {
		return kluis.SupportSession{}, err
	}
	var sess kluis.SupportSession
	err = s.core.Write(ctx, sqlstore.OrgChain(org.ID), func(t *sqlstore.Tx) error {
		r, err := s.findGrant(ctx, t, org.ID, grant)
		if err != nil {
			return err
		}
		if r.g.Status != kluis.SupportActive {
			return kluis.ErrNotFound
		}
		policy, err := t.Policy(ctx, org.ID)
		if err != nil {
			return err
		}
		now := t.Now()
		token, hash := sqlstore.NewToken()
		sess = kluis.SupportSession{Token: kluis.SupportTokenPrefix + token, ExpiresAt: r.g.ExpiresAt}
		if end := now.Add(policy.MaxLifetime()); end.Before(sess.ExpiresAt) {
			sess.ExpiresAt = end
		}
		id := kluis.NewID(now)
		if _, err := t.Exec(ctx, `INSERT INTO support_sessions (id, org_id, grant_id, operator_id, token_hash, created_at, last_seen_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, id, org.ID, grant, actor.OperatorID, hash, sqlstore.Micros(now), sqlstore.Micros(now),
			sqlstore.Micros(sess.ExpiresAt)); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org.ID), actor, "support.session", GrantTarget(grant), "success",
			map[string]any{"expires_at": sess.ExpiresAt, "scope": string(r.g.Scope), "right": string(r.g.Right)})
	})
	return sess, err
}

// AuthenticateSupport resolves a support session's token with one query,
// checking its grant on every request: a session whose grant was revoked,
// ended or never became active, whose operator lost the support role or
// was disabled, or that was idle past the organisation's timeout, is
// deleted. Errors: unauthenticated.
func (s *Service) AuthenticateSupport(ctx context.Context, from kluis.Origin, token string) (kluis.Identity, error) {
	secret, ok := strings.CutPrefix(token, kluis.SupportTokenPrefix)
	if !ok || !sqlstore.ValidTokenShape(secret) {
		return kluis.Identity{}, kluis.ErrUnauthenticated
	}
	var o kluis.Org
	var sid kluis.SessionID
	var acc kluis.SupportAccess
	var opID kluis.OperatorID
	var role kluis.OperatorRole
	var disabled bool
	var active int
	var revoked sql.NullInt64
	var lastSeen, expires, grantExpires, orgCreated int64
	var idle int
	err := s.core.DB().ReadRow(ctx, `SELECT s.id, s.org_id, s.operator_id, s.last_seen_at, s.expires_at,
		g.id, g.scope, g.access, g.expires_at, g.active, g.revoked_at,
		o.slug, o.name, o.language, o.created_at, o.session_idle_minutes, op.name, op.role, op.disabled
		FROM support_sessions s JOIN support_grants g ON g.id = s.grant_id JOIN orgs o ON o.id = s.org_id
		JOIN operators op ON op.id = s.operator_id WHERE s.token_hash = ?`, sqlstore.TokenHash(secret)).
		Scan(&sid, &o.ID, &opID, &lastSeen, &expires, &acc.GrantID, &acc.Scope, &acc.Right, &grantExpires, &active, &revoked,
			&o.Slug, &o.Name, &o.Language, &orgCreated, &idle, &acc.OperatorName, &role, &disabled)
	if errors.Is(err, sql.ErrNoRows) {
		return kluis.Identity{}, kluis.ErrUnauthenticated
	}
	if err != nil {
		return kluis.Identity{}, err
	}
	now := s.core.Now()
	o.CreatedAt = sqlstore.FromMicros(orgCreated)
	acc.ExpiresAt = sqlstore.FromMicros(min(expires, grantExpires))
	idleFor := time.Duration(idle) * time.Minute
	seen := sqlstore.FromMicros(lastSeen)
	if revoked.Valid || active == 0 || !now.Before(acc.ExpiresAt) || now.Sub(seen) >= idleFor || disabled || role != kluis.OperatorSupport {
		if _, err := s.core.DB().WriteExec(ctx, `DELETE FROM support_sessions WHERE id = ?`, sid); err != nil {
			return kluis.Identity{}, err
		}
		return kluis.Identity{}, kluis.ErrUnauthenticated
	}
	if now.Sub(seen) >= min(time.Minute, idleFor/2) {
		if _, err := s.core.DB().WriteExec(ctx, `UPDATE support_sessions SET last_seen_at = ? WHERE id = ?`, sqlstore.Micros(now), sid); err != nil {
			return kluis.Identity{}, err
		}
	}
	actor := kluis.Actor{Realm: kluis.RealmOrg, OrgID: o.ID, OperatorID: opID, Support: &acc, SessionID: sid, From: from}
	return kluis.Identity{Actor: actor, Org: o}, nil
}

// RecordSupportUse records one request made through a support session: in
// the organisation's chain as support.access, and among its grant's uses.
func (s *Service) RecordSupportUse(ctx context.Context, actor kluis.Actor, use kluis.SupportUse) error {
	if actor.Support == nil {
		return nil
	}
	org := actor.OrgID
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		now := t.Now()
		if _, err := t.Exec(ctx, `INSERT INTO support_uses (id, org_id, grant_id, operator_id, at, method, route, object)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, kluis.NewID(now), org, actor.Support.GrantID, actor.OperatorID, sqlstore.Micros(now),
			use.Method, use.Route, use.Object); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "support.access", use.Object, "success", map[string]any{
			"grant": string(actor.Support.GrantID), "method": use.Method, "route": use.Route,
		})
	})
}

// SupportIn lists the support sessions active in the organisation now,
// for the notice on its managers' pages. Others get none.
func (s *Service) SupportIn(ctx context.Context, org kluis.OrgID, actor kluis.Actor) ([]kluis.SupportAccess, error) {
	if !actor.IsManager(org) {
		return nil, nil
	}
	now := s.core.Now()
	rows, err := s.core.DB().Query(ctx, `SELECT g.id, g.scope, g.access, s.expires_at, g.expires_at, op.name
		FROM support_sessions s JOIN support_grants g ON g.id = s.grant_id JOIN operators op ON op.id = s.operator_id
		JOIN orgs o ON o.id = s.org_id
		WHERE s.org_id = ? AND s.expires_at > ? AND g.expires_at > ? AND g.revoked_at IS NULL AND g.active = 1
		AND s.last_seen_at > ? - o.session_idle_minutes * 60000000
		ORDER BY s.id`, org, sqlstore.Micros(now), sqlstore.Micros(now), sqlstore.Micros(now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kluis.SupportAccess
	for rows.Next() {
		var a kluis.SupportAccess
		var sessEnd, grantEnd int64
		if err := rows.Scan(&a.GrantID, &a.Scope, &a.Right, &sessEnd, &grantEnd, &a.OperatorName); err != nil {
			return nil, err
		}
		a.ExpiresAt = sqlstore.FromMicros(min(sessEnd, grantEnd))
		out = append(out, a)
	}
	return out, rows.Err()
}

// EndSupportSession deletes the support session of actor: support signs
// out of the organisation.
func (s *Service) EndSupportSession(ctx context.Context, actor kluis.Actor) error {
	if actor.Support == nil {
		return kluis.ErrUnauthenticated
	}
	_, err := s.core.DB().WriteExec(ctx, `DELETE FROM support_sessions WHERE id = ? AND org_id = ?`, actor.SessionID, actor.OrgID)
	return err
}
