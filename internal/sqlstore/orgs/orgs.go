package orgs

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/projects"
)

var errSlugTaken error = &kluis.Error{Code: kluis.EConflict, Message: "an organisation with this slug exists"}

// CreateOrg creates an organisation with the default policy and invites its
// first manager, whose invitation is mailed; it returns the organisation and
// the invitation link (the CLI prints it). Operators and the CLI only.
// Errors: invalid_input, conflict (slug taken), forbidden.
func (s *Service) CreateOrg(ctx context.Context, actor kluis.Actor, in kluis.NewOrg) (kluis.Org, string, error) {
	if !kluis.CanManageOrgs(actor) {
		return kluis.Org{}, "", s.core.Refuse(ctx, audit.PlatformChain, actor, "org.create", "")
	}
	in.Slug = kluis.NormalizeName(in.Slug)
	in.Name = kluis.NormalizeName(in.Name)
	if in.Language == "" {
		in.Language = "en"
	}
	email, name := kluis.NormalizeEmail(in.ManagerEmail), kluis.NormalizeName(in.ManagerName)
	f := map[string]string{}
	if err := kluis.ValidateSlug(in.Slug); err != nil {
		f["slug"] = err.Error()
	}
	if err := kluis.ValidateName(in.Name); err != nil {
		f["name"] = err.Error()
	}
	if !kluis.ValidLanguage(in.Language) {
		f["language"] = "must be en or nl"
	}
	if err := kluis.ValidateEmail(email); err != nil {
		f["manager.email"] = err.Error()
	}
	if name != "" {
		if err := kluis.ValidateName(name); err != nil {
			f["manager.name"] = err.Error()
		}
	}
	if len(f) > 0 {
		return kluis.Org{}, "", kluis.Invalid(f)
	}
	// A taken slug is refused before keys are made for nothing (the unique
	// index decides in the transaction, should two race).
	if _, err := s.core.FindOrgBySlug(ctx, in.Slug); err == nil {
		return kluis.Org{}, "", errSlugTaken
	} else if !errors.Is(err, kluis.ErrNotFound) {
		return kluis.Org{}, "", err
	}
	// The keys first (the key store is another database); if the
	// organisation is not created after all, they are destroyed unused.
	orgID := kluis.OrgID(kluis.NewID(s.core.Now()))
	err := s.core.Keys().EnsureOrgKey(ctx, string(orgID), actor.AuditName())
	s.core.DrainAfterKeyChange(ctx)
	if err != nil {
		return kluis.Org{}, "", fmt.Errorf("make organisation keys: %w", err)
	}
	managerID, err := s.users.NewUserID(ctx, orgID, actor)
	if err != nil {
		s.dropUnusedOrgKeys(ctx, orgID, actor)
		return kluis.Org{}, "", err
	}
	var org kluis.Org
	var link string
	err = s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		if !kluis.CanManageOrgs(actor) {
			return sqlstore.Deny(audit.PlatformChain, actor, "org.create", "", kluis.ErrForbidden)
		}
		org = kluis.Org{ID: orgID, Slug: in.Slug, Name: in.Name, Language: in.Language, CreatedAt: t.Now()}
		p := kluis.DefaultPolicy
		_, err := t.Exec(ctx, `INSERT INTO orgs (id, slug, name, language, created_at, password_min_length, password_require_digit,
			password_require_upper, session_idle_minutes, session_max_hours, mfa, lockout_threshold) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			org.ID, org.Slug, org.Name, org.Language, sqlstore.Micros(t.Now()), p.PasswordMinLength, p.PasswordRequireDigit,
			p.PasswordRequireUpper, p.SessionIdleMinutes, p.SessionMaxHours, p.MFA, p.LockoutThreshold)
		if sqlstore.IsUniqueViolation(err) {
			return errSlugTaken
		}
		if err != nil {
			return err
		}
		if err := t.Append(ctx, audit.PlatformChain, actor, "org.create", "org:"+string(org.ID), "success",
			map[string]any{"slug": org.Slug}); err != nil {
			return err
		}
		u, err := s.users.InsertInvited(ctx, t, org.ID, managerID, email, name, kluis.RoleManager)
		if err != nil {
			return err
		}
		link, err = s.users.Invite(ctx, t, org, u.ID, email)
		if err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org.ID), actor, "user.invite", "user:"+string(u.ID), "success",
			map[string]any{"role": string(kluis.RoleManager), "email": sqlstore.SealedDetail{Key: sqlstore.UserKey(org.ID, u.ID), Value: email}})
	})
	if err != nil {
		s.dropUnusedOrgKeys(ctx, orgID, actor)
	}
	return org, link, err
}

// dropUnusedOrgKeys destroys the keys made for an organisation whose
// creation failed, once it is sure the organisation does not exist (a commit
// can succeed and still report an error), as actor's change.
func (s *Service) dropUnusedOrgKeys(ctx context.Context, org kluis.OrgID, actor kluis.Actor) {
	ctx = context.WithoutCancel(ctx)
	var n int
	if err := s.core.DB().ReadRow(ctx, `SELECT COUNT(*) FROM orgs WHERE id = ?`, org).Scan(&n); err != nil || n > 0 {
		return
	}
	if err := s.core.Keys().DestroyOrgKeys(ctx, string(org), actor.AuditName()); err != nil {
		s.core.Log().Warn("the unused keys of an organisation not created were not destroyed (they seal nothing)", "err", err.Error())
	}
	s.core.DrainAfterKeyChange(ctx)
}

// DeleteOrg deletes an organisation on its request, with its users,
// sessions, invitations and queued mail (R5, R12, R36), and then destroys
// its keys and every key below them (crypto-shredding). Its audit chain stays,
// verifiable; the deletion is recorded in the platform chain. Operators and
// the CLI only. Errors: not_found, forbidden.
func (s *Service) DeleteOrg(ctx context.Context, actor kluis.Actor, slug string) error {
	var shred string
	var gone []kluis.ProjectID
	err := s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		if !kluis.CanManageOrgs(actor) {
			return sqlstore.Deny(audit.PlatformChain, actor, "org.delete", "", kluis.ErrForbidden)
		}
		org, err := s.findOrgBySlug(ctx, t, slug)
		if err != nil {
			return err
		}
		if gone, err = projects.ForgetContent(ctx, t, org.ID); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `DELETE FROM orgs WHERE id = ?`, org.ID); err != nil {
			return fmt.Errorf("delete organisation: %w", err)
		}
		if shred, err = t.ScheduleShred(ctx, org.ID, ""); err != nil {
			return err
		}
		return t.Append(ctx, audit.PlatformChain, actor, "org.delete", "org:"+string(org.ID), "success",
			map[string]any{"slug": org.Slug})
	})
	if err == nil {
		s.core.ShredNow(ctx, actor, shred)
		s.projects.DropBlobs(ctx, gone)
	}
	return err
}

// FindOrgBySlug resolves the organisation of a URL. It returns no personal
// data and needs no actor. Errors: not_found.
func (s *Service) FindOrgBySlug(ctx context.Context, slug string) (kluis.Org, error) {
	return s.core.FindOrgBySlug(ctx, slug)
}

func (s *Service) findOrgBySlug(ctx context.Context, t *sqlstore.Tx, slug string) (kluis.Org, error) {
	if kluis.ValidateSlug(slug) != nil {
		return kluis.Org{}, kluis.ErrNotFound
	}
	return sqlstore.ScanOrg(t.QueryRow(ctx, `SELECT `+sqlstore.OrgColumns+` FROM orgs WHERE slug = ?`+t.ForUpdate(), slug))
}

// FindOrgs lists every organisation for the operator: ids, slugs and names,
// never users or their data (R22). Errors: forbidden.
func (s *Service) FindOrgs(ctx context.Context, actor kluis.Actor) ([]kluis.Org, error) {
	if !kluis.CanListOrgs(actor) {
		return nil, s.core.Refuse(ctx, audit.PlatformChain, actor, "org.list", "")
	}
	rows, err := s.core.DB().Query(ctx, `SELECT `+sqlstore.OrgColumns+` FROM orgs ORDER BY slug`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var orgs []kluis.Org
	for rows.Next() {
		o, err := sqlstore.ScanOrg(rows)
		if err != nil {
			return nil, err
		}
		orgs = append(orgs, o)
	}
	return orgs, rows.Err()
}

// FindPolicy returns an organisation's policy. Any user of the organisation.
// Errors: forbidden.
func (s *Service) FindPolicy(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (kluis.Policy, error) {
	if !kluis.CanReadPolicy(actor, org) {
		return kluis.Policy{}, s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "policy.read", "")
	}
	return s.core.Policy(ctx, org)
}

// UpdatePolicy replaces an organisation's policy (R16, R17, R18, R21).
// Managers only. The fields added after the first release (MFA,
// LockoutThreshold, ProjectAccess, TrashDays, SupportApprovals, InactiveUserDays,
// AuditRetentionDays) keep their value when left
// zero, so older clients do not reset them. Errors: invalid_input, forbidden.
func (s *Service) UpdatePolicy(ctx context.Context, org kluis.OrgID, actor kluis.Actor, p kluis.Policy) (kluis.Policy, error) {
	if !kluis.CanUpdatePolicy(actor, org) {
		return kluis.Policy{}, s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "policy.update", "")
	}
	// Validated with the later fields filled in for the check; the stored
	// values are settled inside the transaction.
	check := p
	check.MFA = cmp.Or(check.MFA, kluis.MFAOptional)
	check.LockoutThreshold = cmp.Or(check.LockoutThreshold, kluis.DefaultPolicy.LockoutThreshold)
	check.ProjectAccess = cmp.Or(check.ProjectAccess, kluis.DefaultPolicy.ProjectAccess)
	check.TrashDays = cmp.Or(check.TrashDays, kluis.DefaultPolicy.TrashDays)
	check.SupportApprovals = cmp.Or(check.SupportApprovals, kluis.DefaultPolicy.SupportApprovals)
	check.InactiveUserDays = cmp.Or(check.InactiveUserDays, kluis.DefaultPolicy.InactiveUserDays)
	check.AuditRetentionDays = cmp.Or(check.AuditRetentionDays, kluis.DefaultPolicy.AuditRetentionDays)
	if err := check.Validate(); err != nil {
		return kluis.Policy{}, err
	}
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if !kluis.CanUpdatePolicy(actor, org) {
			return sqlstore.Deny(sqlstore.OrgChain(org), actor, "policy.update", "", kluis.ErrForbidden)
		}
		old, err := t.Policy(ctx, org)
		if err != nil {
			return err
		}
		p.MFA = cmp.Or(p.MFA, old.MFA)
		p.LockoutThreshold = cmp.Or(p.LockoutThreshold, old.LockoutThreshold)
		p.ProjectAccess = cmp.Or(p.ProjectAccess, old.ProjectAccess)
		p.TrashDays = cmp.Or(p.TrashDays, old.TrashDays)
		p.SupportApprovals = cmp.Or(p.SupportApprovals, old.SupportApprovals)
		p.InactiveUserDays = cmp.Or(p.InactiveUserDays, old.InactiveUserDays)
		p.AuditRetentionDays = cmp.Or(p.AuditRetentionDays, old.AuditRetentionDays)
		// max_managers (R8): nil keeps the cap, 0 removes it.
		switch {
		case p.MaxManagers == nil:
			p.MaxManagers = old.MaxManagers
		case *p.MaxManagers == 0:
			p.MaxManagers = nil
		}
		var maxManagers sql.NullInt64
		if p.MaxManagers != nil {
			maxManagers = sql.NullInt64{Int64: int64(*p.MaxManagers), Valid: true}
		}
		if _, err := t.Exec(ctx, `UPDATE orgs SET password_min_length = ?, password_require_digit = ?, password_require_upper = ?,
			session_idle_minutes = ?, session_max_hours = ?, mfa = ?, lockout_threshold = ?, project_access = ?, trash_days = ?,
			support_approvals = ?, max_managers = ?, inactive_user_days = ?, audit_retention_days = ? WHERE id = ?`,
			p.PasswordMinLength, p.PasswordRequireDigit, p.PasswordRequireUpper, p.SessionIdleMinutes, p.SessionMaxHours, p.MFA, p.LockoutThreshold,
			p.ProjectAccess, p.TrashDays, p.SupportApprovals, maxManagers, p.InactiveUserDays, p.AuditRetentionDays, org); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "policy.update", "org:"+string(org), "success",
			map[string]any{"old": old, "new": p})
	})
	return p, err
}
