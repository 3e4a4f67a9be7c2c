// Package rights is the rights engine of projects (R2, R6, R7): who may do
// what to which project, decided in one place that every project route and
// page passes through, inside the transaction of the request.
//
// Rights come from relationships: a person or a group is viewer, runner,
// editor or owner of a project (project_grants), people are members of
// groups (group_members), and the organisation's policy (project_access)
// says whether its managers hold every right on every project ("managers")
// or only what owners grant them ("owners"). The pure rule is
// kluis.ProjectRights; this package loads its inputs with indexed queries
// and answers the engine's two questions: "what may this person do to this
// project" (Of, Require) and "which projects may this person see" (Visible).
//
// A caller who may not view a project gets not_found for it and everything
// in it, one who may view but not act gets forbidden; both are recorded as
// access.denied with the attempted action.
//
// It implements kluis.GrantService and kluis.GroupService.
package rights

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Service is the rights area: grants and groups.
type Service struct {
	core *sqlstore.Core
}

// New returns the rights area over core.
func New(core *sqlstore.Core) *Service { return &Service{core: core} }

var (
	_ kluis.GrantService = (*Service)(nil)
	_ kluis.GroupService = (*Service)(nil)
)

// ProjectTarget names a project as an audit target.
func ProjectTarget(id kluis.ProjectID) string { return "project:" + string(id) }

// State is where a project stands for the engine.
type State struct {
	Rights kluis.Rights
	// Access is the organisation's project_access policy.
	Access string
	// Trashed is set for a project in the trash.
	Trashed bool
}

// Of returns what actor may do to project of org, and whether the project
// is in the trash. A project that does not exist in org is not_found.
func Of(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, actor kluis.Actor, project kluis.ProjectID) (State, error) {
	var st State
	if !kluis.ValidID(string(project)) {
		return st, kluis.ErrNotFound
	}
	var deleted sql.NullInt64
	err := t.QueryRow(ctx, `SELECT p.deleted_at, o.project_access FROM projects p JOIN orgs o ON o.id = p.org_id
		WHERE p.org_id = ? AND p.id = ?`, org, project).Scan(&deleted, &st.Access)
	if errors.Is(err, sql.ErrNoRows) {
		return st, kluis.ErrNotFound
	}
	if err != nil {
		return st, err
	}
	st.Trashed = deleted.Valid
	if actor.IsSupport(org) {
		st.Rights = kluis.SupportProjectRights(actor, org, project, kluis.ManagerProjectRights(st.Access))
		return st, nil
	}
	granted, err := Granted(ctx, t, org, project, actor)
	if err != nil {
		return st, err
	}
	st.Rights = kluis.ProjectRights(actor, org, st.Access, granted)
	return st, nil
}

// Granted is the union of what project's grants give actor: their own and
// their groups'. Only signed-in people of org hold grants.
func Granted(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, project kluis.ProjectID, actor kluis.Actor) (kluis.Rights, error) {
	if !actor.IsOrgUser(org) {
		return 0, nil
	}
	rows, err := t.Query(ctx, `SELECT relation FROM project_grants WHERE project_id = ? AND subject = ?
		UNION ALL
		SELECT g.relation FROM group_members m JOIN project_grants g ON g.project_id = ? AND g.subject = 'group:' || m.group_id
		WHERE m.org_id = ? AND m.user_id = ?`,
		project, "user:"+string(actor.UserID), project, org, actor.UserID)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	var r kluis.Rights
	for rows.Next() {
		var rel kluis.Relation
		if err := rows.Scan(&rel); err != nil {
			return 0, err
		}
		r |= kluis.RelationRights(rel)
	}
	return r, rows.Err()
}

// Require returns what actor may do to a project that is not in the trash,
// or a recorded denial: not_found when actor may not view it (or it is in
// the trash, or does not exist), forbidden when actor may view it but lacks
// need. attempted is the audit action of the request, such as "file.put".
func Require(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, actor kluis.Actor, project kluis.ProjectID, need kluis.Right, attempted string) (State, error) {
	st, err := Of(ctx, t, org, actor, project)
	if err != nil {
		return st, err
	}
	return st, check(org, actor, project, st, need, attempted)
}

func check(org kluis.OrgID, actor kluis.Actor, project kluis.ProjectID, st State, need kluis.Right, attempted string) error {
	switch {
	case st.Trashed:
		return kluis.ErrNotFound
	case !st.Rights.Has(kluis.RightView):
		return sqlstore.DenyAccess(sqlstore.OrgChain(org), actor, ProjectTarget(project), attempted, kluis.ErrNotFound)
	case !st.Rights.Has(need):
		return sqlstore.DenyAccess(sqlstore.OrgChain(org), actor, ProjectTarget(project), attempted, kluis.ErrForbidden)
	}
	return nil
}

// RequireTrashed is Require for a project in the trash (bringing it back):
// the rights are those the project would have outside it.
func RequireTrashed(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, actor kluis.Actor, project kluis.ProjectID, need kluis.Right, attempted string) (State, error) {
	st, err := Of(ctx, t, org, actor, project)
	if err != nil {
		return st, err
	}
	if !st.Trashed {
		return st, kluis.ErrNotFound
	}
	st.Trashed = false
	return st, check(org, actor, project, st, need, attempted)
}

// Page is one page of the projects a person may see: their ids in order and
// what the person may do to each.
type Page struct {
	IDs    []kluis.ProjectID
	Rights map[kluis.ProjectID]kluis.Rights
}

// Visible answers "which projects may this person see": a page of at most
// limit project ids of org after the id after, in id order, that actor may
// view, with the rights on each. trashed selects the projects in the trash
// instead of the others. It reads only grants that concern actor (and
// every project only for a manager under the "managers" policy), through
// indexes, so a person's page costs the same among ten or a million
// projects.
func Visible(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, actor kluis.Actor, after kluis.ProjectID, limit int, trashed bool) (Page, error) {
	page := Page{Rights: map[kluis.ProjectID]kluis.Rights{}}
	if actor.IsSupport(org) {
		return supportVisible(ctx, t, org, actor, after, limit, trashed)
	}
	if !actor.IsOrgUser(org) {
		return page, nil
	}
	// Only a manager's rights depend on the policy.
	access := kluis.ProjectAccessOwners
	if actor.IsManager(org) {
		if err := t.QueryRow(ctx, `SELECT project_access FROM orgs WHERE id = ?`, org).Scan(&access); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return page, kluis.ErrNotFound
			}
			return page, err
		}
	}
	inTrash := "p.deleted_at IS NULL"
	if trashed {
		inTrash = "p.deleted_at IS NOT NULL"
	}
	if kluis.ProjectRights(actor, org, access, 0) == kluis.AllRights {
		ids, err := projectIDs(ctx, t, `SELECT p.id FROM projects p WHERE p.org_id = ? AND p.id > ? AND `+inTrash+`
			ORDER BY p.id LIMIT ?`, org, after, limit)
		for _, id := range ids {
			page.IDs = append(page.IDs, id)
			page.Rights[id] = kluis.AllRights
		}
		return page, err
	}
	// The page's ids: the first of the person's own grants and the first of
	// their groups' grants, each read in project order from its index and
	// cut at the page's size by the database, merged here. The first ids
	// of the union are among the first of either.
	own, err := t.Query(ctx, `SELECT g.project_id, g.relation FROM project_grants g JOIN projects p ON p.id = g.project_id
		WHERE g.org_id = ? AND g.user_id = ? AND g.project_id > ? AND `+inTrash+` ORDER BY g.project_id LIMIT ?`,
		org, actor.UserID, after, limit)
	if err != nil {
		return page, err
	}
	var ownIDs []kluis.ProjectID
	for own.Next() {
		var id kluis.ProjectID
		var rel kluis.Relation
		if err := own.Scan(&id, &rel); err != nil {
			own.Close()
			return page, err
		}
		ownIDs = append(ownIDs, id)
		page.Rights[id] = kluis.RelationRights(rel)
	}
	own.Close()
	if err := own.Err(); err != nil {
		return page, err
	}
	groupIDs, err := ids(ctx, t, `SELECT DISTINCT g.project_id FROM group_members m
			JOIN project_grants g ON g.org_id = m.org_id AND g.group_id = m.group_id
			JOIN projects p ON p.id = g.project_id
		WHERE m.org_id = ? AND m.user_id = ? AND g.project_id > ? AND `+inTrash+` ORDER BY g.project_id LIMIT ?`,
		org, actor.UserID, after, limit)
	if err != nil {
		return page, err
	}
	page.IDs = mergeIDs(ownIDs, groupIDs, limit)
	for id := range page.Rights {
		if !slices.Contains(page.IDs, id) {
			delete(page.Rights, id)
		}
	}
	if len(groupIDs) == 0 {
		return page, nil
	}
	// What the groups add on the page: every group grant of theirs on it.
	in := strings.Repeat("?, ", len(page.IDs)-1) + "?"
	args := make([]any, 0, len(page.IDs)+2)
	args = append(args, org, actor.UserID)
	for _, id := range page.IDs {
		args = append(args, id)
	}
	rows, err := t.Query(ctx, `SELECT g.project_id, g.relation FROM group_members m
		JOIN project_grants g ON g.org_id = m.org_id AND g.group_id = m.group_id
		WHERE m.org_id = ? AND m.user_id = ? AND g.project_id IN (`+in+`)`, args...)
	if err != nil {
		return page, err
	}
	defer rows.Close()
	for rows.Next() {
		var id kluis.ProjectID
		var rel kluis.Relation
		if err := rows.Scan(&id, &rel); err != nil {
			return page, err
		}
		page.Rights[id] |= kluis.RelationRights(rel)
	}
	return page, rows.Err()
}

// ids reads one column of project ids.
func ids(ctx context.Context, t *sqlstore.Tx, query string, args ...any) ([]kluis.ProjectID, error) {
	rows, err := t.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kluis.ProjectID
	for rows.Next() {
		var id kluis.ProjectID
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// mergeIDs merges two ascending lists of distinct ids into the first limit
// distinct ids of both.
func mergeIDs(a, b []kluis.ProjectID, limit int) []kluis.ProjectID {
	out := make([]kluis.ProjectID, 0, min(limit, len(a)+len(b)))
	for len(out) < limit && (len(a) > 0 || len(b) > 0) {
		switch {
		case len(b) == 0 || len(a) > 0 && a[0] < b[0]:
			out, a = append(out, a[0]), a[1:]
		case len(a) == 0 || b[0] < a[0]:
			out, b = append(out, b[0]), b[1:]
		default:
			out, a, b = append(out, a[0]), a[1:], b[1:]
		}
	}
	return out
}

// subjectExists reports whether a grant's subject is a person or group of
// org.
func subjectExists(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, s kluis.Subject) (bool, error) {
	q := `SELECT COUNT(*) FROM users WHERE org_id = ? AND id = ?`
	if s.Kind == kluis.SubjectGroup {
		q = `SELECT COUNT(*) FROM user_groups WHERE org_id = ? AND id = ?`
	}
	var n int
	err := t.QueryRow(ctx, q, org, s.ID).Scan(&n)
	return n > 0, err
}

// isMember reports whether user is in group.
func isMember(ctx context.Context, t *sqlstore.Tx, group string, user kluis.UserID) (bool, error) {
	var n int
	err := t.QueryRow(ctx, `SELECT COUNT(*) FROM group_members WHERE group_id = ? AND user_id = ?`, group, user).Scan(&n)
	return n > 0, err
}

// otherOwners counts the owner grants of project other than subject's.
func otherOwners(ctx context.Context, t *sqlstore.Tx, project kluis.ProjectID, subject string) (int, error) {
	var n int
	err := t.QueryRow(ctx, `SELECT COUNT(*) FROM project_grants WHERE project_id = ? AND relation = ? AND subject <> ?`,
		project, kluis.RelOwner, subject).Scan(&n)
	return n, err
}

// errLastOwner answers a change that would leave a project without owner.
var errLastOwner = kluis.Errorf(kluis.EConflict, "a project keeps at least one owner; make someone else owner first")

// InsertOwner makes actor the owner of a new project, in the transaction
// that creates it.
func InsertOwner(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, project kluis.ProjectID, user kluis.UserID) error {
	_, err := t.Exec(ctx, `INSERT INTO project_grants (project_id, org_id, subject, user_id, relation, granted_at) VALUES (?, ?, ?, ?, ?, ?)`,
		project, org, "user:"+string(user), user, kluis.RelOwner, sqlstore.Micros(t.Now()))
	return err
}

// FindGrants lists a project's grants, for anyone who may view it.
// Errors: not_found.
func (s *Service) FindGrants(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.ProjectID) ([]kluis.Grant, error) {
	var out []kluis.Grant
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		if _, err := Require(ctx, t, org, actor, id, kluis.RightView, "grant.list"); err != nil {
			return err
		}
		var err error
		out, err = GrantsOf(ctx, t, id)
		return err
	})
	return out, err
}

// GrantsOf lists a project's grants inside t, ordered by subject, without
// a rights check (the caller's business: the organisation's export).
func GrantsOf(ctx context.Context, t *sqlstore.Tx, id kluis.ProjectID) ([]kluis.Grant, error) {
	rows, err := t.Query(ctx, `SELECT subject, relation FROM project_grants WHERE project_id = ? ORDER BY subject`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kluis.Grant
	for rows.Next() {
		var subject string
		var g kluis.Grant
		if err := rows.Scan(&subject, &g.Relation); err != nil {
			return nil, err
		}
		kind, sid, _ := strings.Cut(subject, ":")
		g.Subject = kluis.Subject{Kind: kluis.SubjectKind(kind), ID: sid}
		out = append(out, g)
	}
	return out, rows.Err()
}

// SetGrant gives a person or group a relation to a project, replacing any
// earlier one. The granter needs the grant right and every right the
// relation gives (no grant exceeds the granter's own); under the "owners"
// policy a manager never gives themselves a right, directly or through a
// group. Recorded as grant.set. Errors: not_found, forbidden,
// invalid_input, conflict (the last owner would go).
func (s *Service) SetGrant(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.ProjectID, g kluis.Grant) error {
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		return s.setGrant(ctx, t, org, actor, id, g)
	})
}

// SetGrantByEmail is SetGrant for the person with that e-mail address,
// found by its blind index (DESIGN §4), after the rights check: nobody
// learns who is in the organisation from a project they cannot grant on.
// Errors: as SetGrant; invalid_input naming email for an address of nobody
// in the organisation.
func (s *Service) SetGrantByEmail(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.ProjectID, email string, rel kluis.Relation) error {
	idx, err := s.core.EmailIndex(ctx, org, kluis.NormalizeEmail(email))
	if err != nil {
		return err
	}
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if _, err := Require(ctx, t, org, actor, id, kluis.RightGrant, "grant.set"); err != nil {
			return err
		}
		var user string
		err := t.QueryRow(ctx, `SELECT id FROM users WHERE org_id = ? AND email_index = ?`, org, idx).Scan(&user)
		if errors.Is(err, sql.ErrNoRows) {
			return kluis.Invalid(map[string]string{"email": "is not the address of anyone in this organisation"})
		}
		if err != nil {
			return err
		}
		return s.setGrant(ctx, t, org, actor, id, kluis.Grant{Subject: kluis.Subject{Kind: kluis.SubjectUser, ID: user}, Relation: rel})
	})
}

// setGrant is SetGrant inside its transaction.
func (s *Service) setGrant(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, actor kluis.Actor, id kluis.ProjectID, g kluis.Grant) error {
	st, err := Require(ctx, t, org, actor, id, kluis.RightGrant, "grant.set")
	if err != nil {
		return err
	}
	// The input is judged only once the caller may grant: nobody
	// learns about a project they cannot see from a 400.
	f := map[string]string{}
	if !g.Subject.Valid() {
		f["subject"] = "must be user:ID or group:ID"
	}
	if !g.Relation.Valid() {
		f["relation"] = "must be viewer, runner, editor or owner"
	}
	if len(f) > 0 {
		return kluis.Invalid(f)
	}
	give := kluis.RelationRights(g.Relation)
	if !st.Rights.Covers(give) {
		return sqlstore.DenyAccess(sqlstore.OrgChain(org), actor, ProjectTarget(id), "grant.set", kluis.ErrForbidden)
	}
	ok, err := subjectExists(ctx, t, org, g.Subject)
	if err != nil {
		return err
	}
	if !ok {
		return kluis.Invalid(map[string]string{"subject": "is not a person or group of this organisation"})
	}
	if err := s.refuseSelfGrant(ctx, t, org, actor, id, g.Subject, give); err != nil {
		return err
	}
	subject := g.Subject.String()
	var old kluis.Relation
	err = t.QueryRow(ctx, `SELECT relation FROM project_grants WHERE project_id = ? AND subject = ?`, id, subject).Scan(&old)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if old == g.Relation {
		return nil
	}
	if old == kluis.RelOwner {
		n, err := otherOwners(ctx, t, id, subject)
		if err != nil {
			return err
		}
		if n == 0 {
			return errLastOwner
		}
	}
	var user, group any
	if g.Subject.Kind == kluis.SubjectUser {
		user = g.Subject.ID
	} else {
		group = g.Subject.ID
	}
	if _, err := t.Exec(ctx, `INSERT INTO project_grants (project_id, org_id, subject, user_id, group_id, relation, granted_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, subject) DO UPDATE SET relation = excluded.relation, granted_at = excluded.granted_at`,
		id, org, subject, user, group, g.Relation, sqlstore.Micros(t.Now())); err != nil {
		return err
	}
	details := map[string]any{"subject": subject, "relation": string(g.Relation)}
	if old != "" {
		details["old"] = string(old)
	}
	return t.Append(ctx, sqlstore.OrgChain(org), actor, "grant.set", ProjectTarget(id), "success", details)
}

// refuseSelfGrant is the "owners" policy's guard (R7): a manager's change
// that would give the manager a right they do not hold yet on the project
// is refused, whether the grant names them or a group they are in.
func (s *Service) refuseSelfGrant(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, actor kluis.Actor, id kluis.ProjectID, subject kluis.Subject, give kluis.Rights) error {
	if !actor.IsManager(org) {
		return nil
	}
	var access string
	if err := t.QueryRow(ctx, `SELECT project_access FROM orgs WHERE id = ?`, org).Scan(&access); err != nil {
		return err
	}
	if access != kluis.ProjectAccessOwners {
		return nil
	}
	reaches := subject.Kind == kluis.SubjectUser && subject.ID == string(actor.UserID)
	if subject.Kind == kluis.SubjectGroup {
		var err error
		if reaches, err = isMember(ctx, t, subject.ID, actor.UserID); err != nil {
			return err
		}
	}
	if !reaches {
		return nil
	}
	held, err := Granted(ctx, t, org, id, actor)
	if err != nil {
		return err
	}
	if !held.Covers(give) {
		return sqlstore.DenyAccess(sqlstore.OrgChain(org), actor, ProjectTarget(id), "grant.set", kluis.ErrForbidden)
	}
	return nil
}

// RemoveGrant takes a person's or group's relation to a project away (the
// grant right). Recorded as grant.remove. Errors: not_found, forbidden,
// conflict (the last owner).
func (s *Service) RemoveGrant(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.ProjectID, subject kluis.Subject) error {
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		st, err := Require(ctx, t, org, actor, id, kluis.RightGrant, "grant.remove")
		if err != nil {
			return err
		}
		if !subject.Valid() {
			return kluis.ErrNotFound
		}
		var old kluis.Relation
		err = t.QueryRow(ctx, `SELECT relation FROM project_grants WHERE project_id = ? AND subject = ?`, id, subject.String()).Scan(&old)
		if errors.Is(err, sql.ErrNoRows) {
			return kluis.ErrNotFound
		}
		if err != nil {
			return err
		}
		if !st.Rights.Covers(kluis.RelationRights(old)) {
			return sqlstore.DenyAccess(sqlstore.OrgChain(org), actor, ProjectTarget(id), "grant.remove", kluis.ErrForbidden)
		}
		if old == kluis.RelOwner {
			n, err := otherOwners(ctx, t, id, subject.String())
			if err != nil {
				return err
			}
			if n == 0 {
				return errLastOwner
			}
		}
		if _, err := t.Exec(ctx, `DELETE FROM project_grants WHERE project_id = ? AND subject = ?`, id, subject.String()); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "grant.remove", ProjectTarget(id), "success",
			map[string]any{"subject": subject.String(), "old": string(old)})
	})
}

// supportVisible is Visible for a support session (R22): every project a
// manager sees under an organisation grant, the grant's one project under a
// project grant; never the trash.
func supportVisible(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, actor kluis.Actor, after kluis.ProjectID, limit int, trashed bool) (Page, error) {
	page := Page{Rights: map[kluis.ProjectID]kluis.Rights{}}
	if trashed {
		return page, nil
	}
	var access string
	if err := t.QueryRow(ctx, `SELECT project_access FROM orgs WHERE id = ?`, org).Scan(&access); err != nil {
		return page, err
	}
	query, args := `SELECT id FROM projects WHERE org_id = ? AND id > ? AND deleted_at IS NULL ORDER BY id LIMIT ?`, []any{org, after, limit}
	if p, ok := actor.Support.Scope.Project(); ok {
		query, args = `SELECT id FROM projects WHERE org_id = ? AND id = ? AND id > ? AND deleted_at IS NULL`, []any{org, p, after}
	}
	ids, err := projectIDs(ctx, t, query, args...)
	for _, id := range ids {
		if r := kluis.SupportProjectRights(actor, org, id, kluis.ManagerProjectRights(access)); r.Has(kluis.RightView) {
			page.IDs = append(page.IDs, id)
			page.Rights[id] = r
		}
	}
	return page, err
}

// projectIDs runs a query of project ids.
func projectIDs(ctx context.Context, t *sqlstore.Tx, query string, args ...any) ([]kluis.ProjectID, error) {
	rows, err := t.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []kluis.ProjectID
	for rows.Next() {
		var id kluis.ProjectID
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
