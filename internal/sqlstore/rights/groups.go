package rights

import (
	"context"
	"database/sql"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Groups: managers gather people in named groups, and a grant to a group
// holds for each member. A group's name is sealed under the organisation's
// key (it may say whose clients its members are).

const tabGroups = "user_groups"

func groupNameField(org kluis.OrgID, id kluis.GroupID) keys.FieldRef {
	return keys.FieldRef{Org: string(org), Table: tabGroups, Column: sqlstore.ColName, Row: string(id)}
}

// GroupTarget names a group as an audit target.
func GroupTarget(id kluis.GroupID) string { return "group:" + string(id) }

func (s *Service) refuseGroups(org kluis.OrgID, actor kluis.Actor, action string, id kluis.GroupID) error {
	if kluis.CanManageGroups(actor, org) {
		return nil
	}
	target := ""
	if kluis.ValidID(string(id)) {
		target = GroupTarget(id)
	}
	return sqlstore.DenyAccess(sqlstore.OrgChain(org), actor, target, action, kluis.ErrForbidden)
}

// CreateGroup makes a group (managers). Recorded as group.create. Errors:
// forbidden, invalid_input.
func (s *Service) CreateGroup(ctx context.Context, org kluis.OrgID, actor kluis.Actor, in kluis.GroupInput) (kluis.Group, error) {
	in = in.Normalize()
	var g kluis.Group
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if err := s.refuseGroups(org, actor, "group.create", ""); err != nil {
			return err
		}
		if err := in.Validate(); err != nil {
			return err
		}
		g = kluis.Group{ID: kluis.GroupID(kluis.NewID(t.Now())), Name: in.Name, CreatedAt: t.Now(), Members: []kluis.UserID{}}
		sealed, err := s.core.Seal(ctx, keys.OrgKey(string(org)), groupNameField(org, g.ID), []byte(g.Name))
		if err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `INSERT INTO user_groups (id, org_id, name, created_at) VALUES (?, ?, ?, ?)`,
			g.ID, org, sealed, sqlstore.Micros(t.Now())); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "group.create", GroupTarget(g.ID), "success", nil)
	})
	return g, err
}

// FindGroups lists the organisation's groups with their members
// (managers). Errors: forbidden.
func (s *Service) FindGroups(ctx context.Context, org kluis.OrgID, actor kluis.Actor) ([]kluis.Group, error) {
	var out []kluis.Group
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		if !actor.ManagerReads(org) {
			return sqlstore.DenyAccess(sqlstore.OrgChain(org), actor, "", "group.list", kluis.ErrForbidden)
		}
		var err error
		out, err = GroupsOf(ctx, s.core, t, org)
		return err
	})
	return out, err
}

// GroupsOf lists the organisation's groups with their members inside t,
// names opened, without a rights check (the caller's business: the
// organisation's export).
func GroupsOf(ctx context.Context, core *sqlstore.Core, t *sqlstore.Tx, org kluis.OrgID) ([]kluis.Group, error) {
	rows, err := t.Query(ctx, `SELECT g.id, g.name, g.created_at, m.user_id FROM user_groups g
		LEFT JOIN group_members m ON m.group_id = g.id WHERE g.org_id = ? ORDER BY g.id, m.user_id`, org)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kluis.Group
	for rows.Next() {
		var id kluis.GroupID
		var name []byte
		var created int64
		var member sql.NullString
		if err := rows.Scan(&id, &name, &created, &member); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].ID != id {
			plain, err := core.Open(ctx, groupNameField(org, id), name)
			if err != nil {
				return nil, err
			}
			out = append(out, kluis.Group{ID: id, Name: string(plain), CreatedAt: sqlstore.FromMicros(created), Members: []kluis.UserID{}})
		}
		if member.Valid {
			g := &out[len(out)-1]
			g.Members = append(g.Members, kluis.UserID(member.String))
		}
	}
	return out, rows.Err()
}

// groupExists reports whether id is a group of org.
func groupExists(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, id kluis.GroupID) error {
	ok, err := subjectExists(ctx, t, org, kluis.Subject{Kind: kluis.SubjectGroup, ID: string(id)})
	if err == nil && !ok {
		err = kluis.ErrNotFound
	}
	return err
}

// DeleteGroup removes a group, its memberships and its grants (managers).
// A group that is the last owner of a project stays. Recorded as
// group.delete. Errors: forbidden, not_found, conflict.
func (s *Service) DeleteGroup(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.GroupID) error {
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if err := s.refuseGroups(org, actor, "group.delete", id); err != nil {
			return err
		}
		if !kluis.ValidID(string(id)) {
			return kluis.ErrNotFound
		}
		if err := groupExists(ctx, t, org, id); err != nil {
			return err
		}
		var orphans int
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM project_grants g WHERE g.group_id = ? AND g.relation = ?
			AND NOT EXISTS (SELECT 1 FROM project_grants o WHERE o.project_id = g.project_id AND o.relation = ? AND o.subject <> g.subject)`,
			id, kluis.RelOwner, kluis.RelOwner).Scan(&orphans); err != nil {
			return err
		}
		if orphans > 0 {
			return errLastOwner
		}
		if _, err := t.Exec(ctx, `DELETE FROM user_groups WHERE org_id = ? AND id = ?`, org, id); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "group.delete", GroupTarget(id), "success", nil)
	})
}

// AddGroupMember puts a person of the organisation in a group (managers).
// Under the "owners" policy a manager cannot put themselves in a group
// that would give them a project right they do not hold (R7). Recorded as
// group.member_add. Errors: forbidden, not_found.
func (s *Service) AddGroupMember(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.GroupID, user kluis.UserID) error {
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if err := s.refuseGroups(org, actor, "group.member_add", id); err != nil {
			return err
		}
		if !kluis.ValidID(string(id)) || !kluis.ValidID(string(user)) {
			return kluis.ErrNotFound
		}
		if err := groupExists(ctx, t, org, id); err != nil {
			return err
		}
		if ok, err := subjectExists(ctx, t, org, kluis.Subject{Kind: kluis.SubjectUser, ID: string(user)}); err != nil || !ok {
			if err == nil {
				err = kluis.ErrNotFound
			}
			return err
		}
		if user == actor.UserID {
			if err := s.refuseJoining(ctx, t, org, actor, id); err != nil {
				return err
			}
		}
		res, err := t.Exec(ctx, `INSERT INTO group_members (group_id, org_id, user_id) VALUES (?, ?, ?) ON CONFLICT (group_id, user_id) DO NOTHING`,
			id, org, user)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "group.member_add", GroupTarget(id), "success",
			map[string]any{"user": string(user)})
	})
}

// refuseJoining refuses a manager under the "owners" policy joining a group
// whose grants would give them a right they do not hold.
func (s *Service) refuseJoining(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, actor kluis.Actor, id kluis.GroupID) error {
	var access string
	if err := t.QueryRow(ctx, `SELECT project_access FROM orgs WHERE id = ?`, org).Scan(&access); err != nil {
		return err
	}
	if access != kluis.ProjectAccessOwners {
		return nil
	}
	rows, err := t.Query(ctx, `SELECT project_id, relation FROM project_grants WHERE org_id = ? AND group_id = ?`, org, id)
	if err != nil {
		return err
	}
	type grant struct {
		project kluis.ProjectID
		rel     kluis.Relation
	}
	var grants []grant
	for rows.Next() {
		var g grant
		if err := rows.Scan(&g.project, &g.rel); err != nil {
			rows.Close()
			return err
		}
		grants = append(grants, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, g := range grants {
		held, err := Granted(ctx, t, org, g.project, actor)
		if err != nil {
			return err
		}
		if !held.Covers(kluis.RelationRights(g.rel)) {
			return sqlstore.DenyAccess(sqlstore.OrgChain(org), actor, GroupTarget(id), "group.member_add", kluis.ErrForbidden)
		}
	}
	return nil
}

// RemoveGroupMember takes a person out of a group (managers). Recorded as
// group.member_remove. Errors: forbidden, not_found.
func (s *Service) RemoveGroupMember(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.GroupID, user kluis.UserID) error {
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if err := s.refuseGroups(org, actor, "group.member_remove", id); err != nil {
			return err
		}
		if !kluis.ValidID(string(id)) || !kluis.ValidID(string(user)) {
			return kluis.ErrNotFound
		}
		res, err := t.Exec(ctx, `DELETE FROM group_members WHERE org_id = ? AND group_id = ? AND user_id = ?`, org, id, user)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return kluis.ErrNotFound
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "group.member_remove", GroupTarget(id), "success",
			map[string]any{"user": string(user)})
	})
}
