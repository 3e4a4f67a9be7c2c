// Package support is support access by the customer's consent (R22): the
// grants an organisation's managers (for the organisation) and a project's
// owners (for that project) give the operator's support staff, support's
// requests for them, the support sessions that run on them, and the record
// of every request made through one.
//
// A support session acts in the organisation's realm as
// "support:OPERATOR_ID" with exactly its grant's rights (the rules of
// package kluis: Actor.ManagerReads, ManagerWrites, SupportProjectRights);
// it is never a user, so every rule that asks for a person refuses it. Its
// token is checked against its grant on every request, on whichever node,
// so revoking or the grant's end stops it at the next request.
//
// It implements kluis.SupportService.
package support

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/accounts"
	"github.com/kluis/kluis/internal/sqlstore/rights"
)

// Service is the support access area.
type Service struct {
	core *sqlstore.Core
}

// New returns the support access area over core.
func New(core *sqlstore.Core) *Service { return &Service{core: core} }

var _ kluis.SupportService = (*Service)(nil)

// GrantTarget names a support grant as an audit target.
func GrantTarget(id kluis.SupportGrantID) string { return "support-grant:" + string(id) }

func requestTarget(id kluis.SupportRequestID) string { return "support-request:" + string(id) }

const (
	tabGrants   = "support_grants"
	tabRequests = "support_requests"
	colReason   = "reason"
)

func reasonField(org kluis.OrgID, table, id string) keys.FieldRef {
	return keys.FieldRef{Org: string(org), Table: table, Column: colReason, Row: id}
}

func (s *Service) sealReason(ctx context.Context, org kluis.OrgID, table, id, reason string) ([]byte, error) {
	return s.core.Seal(ctx, keys.OrgKey(string(org)), reasonField(org, table, id), []byte(reason))
}

func (s *Service) openReason(ctx context.Context, org kluis.OrgID, table, id string, c []byte) string {
	p, err := s.core.Open(ctx, reasonField(org, table, id), c)
	if err != nil {
		return sqlstore.Erased
	}
	return string(p)
}

// mayGrant checks that actor may give support right over scope: a manager
// for the organisation; for a project, whoever holds the grant right on it
// and the right itself (never beyond their own). Support never grants.
func mayGrant(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, actor kluis.Actor, scope kluis.SupportScope, right kluis.SupportRight, action string) error {
	chain := sqlstore.OrgChain(org)
	if actor.Support != nil || !actor.IsOrgUser(org) {
		return sqlstore.Deny(chain, actor, action, "", kluis.ErrForbidden)
	}
	if scope.Org() {
		if !actor.IsManager(org) {
			return sqlstore.Deny(chain, actor, action, "", kluis.ErrForbidden)
		}
		return nil
	}
	project, _ := scope.Project()
	st, err := rights.Require(ctx, t, org, actor, project, kluis.RightGrant, action)
	if err != nil {
		return err
	}
	need := kluis.RightView
	if right == kluis.SupportEdit {
		need = kluis.RightEdit
	}
	if !st.Rights.Has(need) {
		return sqlstore.DenyAccess(chain, actor, rights.ProjectTarget(project), action, kluis.ErrForbidden)
	}
	return nil
}

func fresh(ctx context.Context, core *sqlstore.Core, org kluis.OrgID, actor kluis.Actor, action string) error {
	if actor.Support != nil || !actor.IsOrgUser(org) {
		return core.Refuse(ctx, sqlstore.OrgChain(org), actor, action, "")
	}
	if !kluis.FreshlyAuthenticated(actor, core.Now()) {
		return accounts.ReauthRequired(ctx, core, kluis.OrgScope(org), actor, action)
	}
	return nil
}

// GrantSupport gives support access (R22). Errors: forbidden, not_found,
// invalid_input, reauth_required.
func (s *Service) GrantSupport(ctx context.Context, org kluis.OrgID, actor kluis.Actor, in kluis.SupportGrantInput) (kluis.SupportGrant, error) {
	in = in.Normalize()
	if err := in.Validate(s.core.Now()); err != nil {
		return kluis.SupportGrant{}, err
	}
	if err := fresh(ctx, s.core, org, actor, "support.grant"); err != nil {
		return kluis.SupportGrant{}, err
	}
	var g kluis.SupportGrant
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if err := mayGrant(ctx, t, org, actor, in.Scope, in.Right, "support.grant"); err != nil {
			return err
		}
		var err error
		g, err = s.insertGrant(ctx, t, org, actor, in, "")
		return err
	})
	return g, err
}

// insertGrant writes a new grant, active at once unless the policy asks a
// second manager to approve it, and records support.grant.
func (s *Service) insertGrant(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, actor kluis.Actor, in kluis.SupportGrantInput, request kluis.SupportRequestID) (kluis.SupportGrant, error) {
	policy, err := t.Policy(ctx, org)
	if err != nil {
		return kluis.SupportGrant{}, err
	}
	now := t.Now()
	g := kluis.SupportGrant{
		ID: kluis.SupportGrantID(kluis.NewID(now)), Scope: in.Scope, Right: in.Right, Reason: in.Reason,
		GrantedBy: actor.AuditName(), RequestID: request, CreatedAt: now, ExpiresAt: in.ExpiresAt.UTC().Truncate(time.Microsecond),
		Status: kluis.SupportActive,
	}
	active := 1
	if policy.SupportApprovals >= 2 {
		active, g.Status = 0, kluis.SupportPending
	}
	reason, err := s.sealReason(ctx, org, tabGrants, string(g.ID), g.Reason)
	if err != nil {
		return g, err
	}
	var project sql.NullString
	if p, ok := g.Scope.Project(); ok {
		project = sql.NullString{String: string(p), Valid: true}
	}
	if _, err := t.Exec(ctx, `INSERT INTO support_grants (id, org_id, scope, project_id, access, reason, granted_by, request_id, created_at, expires_at, active)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, g.ID, org, g.Scope, project, g.Right, reason, g.GrantedBy, g.RequestID,
		sqlstore.Micros(now), sqlstore.Micros(g.ExpiresAt), active); err != nil {
		return g, err
	}
	return g, t.Append(ctx, sqlstore.OrgChain(org), actor, "support.grant", GrantTarget(g.ID), "success", map[string]any{
		"scope": string(g.Scope), "right": string(g.Right), "expires_at": g.ExpiresAt, "status": g.Status,
		"reason": sqlstore.SealedDetail{Key: keys.OrgKey(string(org)), Value: g.Reason},
	})
}

// grantRow is a grant as stored.
type grantRow struct {
	g         kluis.SupportGrant
	reason    []byte
	active    int
	revokedAt sql.NullInt64
}

const grantColumns = `id, scope, access, reason, granted_by, approved_by, request_id, created_at, expires_at, active, revoked_at, revoked_by`

func scanGrant(row interface{ Scan(...any) error }, now time.Time) (grantRow, error) {
	var r grantRow
	var created, expires int64
	err := row.Scan(&r.g.ID, &r.g.Scope, &r.g.Right, &r.reason, &r.g.GrantedBy, &r.g.ApprovedBy, &r.g.RequestID,
		&created, &expires, &r.active, &r.revokedAt, &r.g.RevokedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return r, kluis.ErrNotFound
	}
	r.g.CreatedAt, r.g.ExpiresAt, r.g.RevokedAt = sqlstore.FromMicros(created), sqlstore.FromMicros(expires), sqlstore.NullMicros(r.revokedAt)
	switch {
	case r.revokedAt.Valid:
		r.g.Status = kluis.SupportRevoked
	case !now.Before(r.g.ExpiresAt):
		r.g.Status = kluis.SupportExpired
	case r.active == 0:
		r.g.Status = kluis.SupportPending
	default:
		r.g.Status = kluis.SupportActive
	}
	return r, err
}

func (s *Service) findGrant(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, id kluis.SupportGrantID) (grantRow, error) {
	if !kluis.ValidID(string(id)) {
		return grantRow{}, kluis.ErrNotFound
	}
	return scanGrant(t.QueryRow(ctx, `SELECT `+grantColumns+` FROM support_grants WHERE org_id = ? AND id = ?`+t.ForUpdate(), org, id), t.Now())
}

// ApproveSupportGrant is the second manager's approval of a pending grant
// (four eyes): a manager other than its granter. Errors: forbidden,
// not_found, conflict, reauth_required.
func (s *Service) ApproveSupportGrant(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.SupportGrantID) (kluis.SupportGrant, error) {
	if err := fresh(ctx, s.core, org, actor, "support.approve"); err != nil {
		return kluis.SupportGrant{}, err
	}
	var g kluis.SupportGrant
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if !actor.IsManager(org) {
			return sqlstore.Deny(sqlstore.OrgChain(org), actor, "support.approve", GrantTarget(id), kluis.ErrForbidden)
		}
		r, err := s.findGrant(ctx, t, org, id)
		if err != nil {
			return err
		}
		switch {
		case r.g.Status != kluis.SupportPending:
			return kluis.Errorf(kluis.EConflict, "this grant does not wait for an approval")
		case r.g.GrantedBy == actor.AuditName():
			return kluis.Errorf(kluis.EConflict, "a second manager must approve this grant")
		}
		if _, err := t.Exec(ctx, `UPDATE support_grants SET active = 1, approved_by = ? WHERE id = ?`, actor.AuditName(), id); err != nil {
			return err
		}
		g = r.g
		g.ApprovedBy, g.Status = actor.AuditName(), kluis.SupportActive
		g.Reason = s.openReason(ctx, org, tabGrants, string(g.ID), r.reason)
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "support.approve", GrantTarget(id), "success", nil)
	})
	return g, err
}

// SupportGrants lists the organisation's grants, each with its uses, and
// support's requests, newest first. Managers only.
func (s *Service) SupportGrants(ctx context.Context, org kluis.OrgID, actor kluis.Actor) ([]kluis.SupportGrant, []kluis.SupportRequest, error) {
	if !actor.IsManager(org) {
		return nil, nil, s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "support.list", "")
	}
	var grants []kluis.SupportGrant
	var requests []kluis.SupportRequest
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		var err error
		if grants, err = s.listGrants(ctx, t, org, true); err != nil {
			return err
		}
		requests, err = s.listRequests(ctx, t, org, true)
		return err
	})
	return grants, requests, err
}

func (s *Service) listGrants(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, withUses bool) ([]kluis.SupportGrant, error) {
	rows, err := t.Query(ctx, `SELECT `+grantColumns+` FROM support_grants WHERE org_id = ? ORDER BY id DESC LIMIT 500`, org)
	if err != nil {
		return nil, err
	}
	var found []grantRow
	for rows.Next() {
		r, err := scanGrant(rows, t.Now())
		if err != nil {
			rows.Close()
			return nil, err
		}
		found = append(found, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]kluis.SupportGrant, 0, len(found))
	for _, r := range found {
		r.g.Reason = s.openReason(ctx, org, tabGrants, string(r.g.ID), r.reason)
		if withUses {
			if r.g.Uses, err = uses(ctx, t, r.g.ID); err != nil {
				return nil, err
			}
		}
		out = append(out, r.g)
	}
	return out, nil
}

func uses(ctx context.Context, t *sqlstore.Tx, grant kluis.SupportGrantID) ([]kluis.SupportUse, error) {
	rows, err := t.Query(ctx, `SELECT at, operator_id, method, route, object FROM support_uses
		WHERE grant_id = ? ORDER BY at DESC, id DESC LIMIT 1000`, grant)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kluis.SupportUse
	for rows.Next() {
		var u kluis.SupportUse
		var at int64
		if err := rows.Scan(&at, &u.Operator, &u.Method, &u.Route, &u.Object); err != nil {
			return nil, err
		}
		u.At = sqlstore.FromMicros(at)
		out = append(out, u)
	}
	return out, rows.Err()
}

// RevokeSupportGrant ends a grant and its sessions: its granter or any
// manager; anyone else does not find it. Errors: not_found.
func (s *Service) RevokeSupportGrant(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.SupportGrantID) error {
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		deny := sqlstore.Deny(sqlstore.OrgChain(org), actor, "support.revoke", GrantTarget(id), kluis.ErrNotFound)
		if actor.Support != nil || !actor.IsOrgUser(org) {
			return deny
		}
		r, err := s.findGrant(ctx, t, org, id)
		if err != nil {
			return err
		}
		if !actor.IsManager(org) && r.g.GrantedBy != actor.AuditName() {
			return deny
		}
		if r.g.Status == kluis.SupportRevoked {
			return nil
		}
		if _, err := t.Exec(ctx, `UPDATE support_grants SET revoked_at = ?, revoked_by = ? WHERE id = ?`,
			sqlstore.Micros(t.Now()), actor.AuditName(), id); err != nil {
			return err
		}
		res, err := t.Exec(ctx, `DELETE FROM support_sessions WHERE grant_id = ?`, id)
		if err != nil {
			return err
		}
		ended, _ := res.RowsAffected()
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "support.revoke", GrantTarget(id), "success",
			map[string]any{"sessions_ended": ended})
	})
}
