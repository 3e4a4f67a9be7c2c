package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/mail"
)

// NewOrg is what the operator gives to create an organisation.
type NewOrg struct {
	Slug         string
	Name         string
	Language     string // "en" (default) or "nl": the language of its mails
	ManagerEmail string
	ManagerName  string // optional: the manager gives it when accepting
}

var errSlugTaken error = &kluis.Error{Code: kluis.EConflict, Message: "an organisation with this slug exists"}

// CreateOrg creates an organisation with the default policy and invites its
// first manager, whose invitation is mailed; it returns the organisation and
// the invitation link (the CLI prints it). Operators and the CLI only.
// Errors: invalid_input, conflict (slug taken), forbidden.
func (s *Store) CreateOrg(ctx context.Context, actor kluis.Actor, in NewOrg) (kluis.Org, string, error) {
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
	if !kluis.CanManageOrgs(actor) {
		return kluis.Org{}, "", s.refuse(ctx, audit.PlatformChain, actor, "org.create", "")
	}
	// A taken slug is refused before keys are made for nothing (the unique
	// index decides in the transaction, should two race).
	if _, err := s.FindOrgBySlug(ctx, in.Slug); err == nil {
		return kluis.Org{}, "", errSlugTaken
	} else if !errors.Is(err, kluis.ErrNotFound) {
		return kluis.Org{}, "", err
	}
	// The keys first (the key store is another database); if the
	// organisation is not created after all, they are destroyed unused.
	orgID := kluis.OrgID(kluis.NewID(s.now()))
	err := s.keys.EnsureOrgKey(ctx, string(orgID), actor.AuditName())
	s.drainAfterKeyChange(ctx)
	if err != nil {
		return kluis.Org{}, "", fmt.Errorf("make organisation keys: %w", err)
	}
	managerID, err := s.newUserID(ctx, orgID, actor)
	if err != nil {
		s.dropUnusedOrgKeys(ctx, orgID, actor)
		return kluis.Org{}, "", err
	}
	var org kluis.Org
	var link string
	err = s.write(ctx, audit.PlatformChain, func(t *Tx) error {
		if !kluis.CanManageOrgs(actor) {
			return deny(audit.PlatformChain, actor, "org.create", "", kluis.ErrForbidden)
		}
		org = kluis.Org{ID: orgID, Slug: in.Slug, Name: in.Name, Language: in.Language, CreatedAt: t.now}
		p := kluis.DefaultPolicy
		_, err := t.exec(ctx, `INSERT INTO orgs (id, slug, name, language, created_at, password_min_length, password_require_digit,
			password_require_upper, session_idle_minutes, session_max_hours, mfa, lockout_threshold) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			org.ID, org.Slug, org.Name, org.Language, micros(t.now), p.PasswordMinLength, p.PasswordRequireDigit,
			p.PasswordRequireUpper, p.SessionIdleMinutes, p.SessionMaxHours, p.MFA, p.LockoutThreshold)
		if isUniqueViolation(err) {
			return errSlugTaken
		}
		if err != nil {
			return err
		}
		if err := t.appendEvent(ctx, audit.PlatformChain, actor, "org.create", "org:"+string(org.ID), "success",
			map[string]any{"slug": org.Slug}); err != nil {
			return err
		}
		u, err := t.insertInvitedUser(ctx, org.ID, managerID, email, name, kluis.RoleManager)
		if err != nil {
			return err
		}
		link, err = t.invite(ctx, org, u.ID, email)
		if err != nil {
			return err
		}
		return t.appendEvent(ctx, orgChain(org.ID), actor, "user.invite", "user:"+string(u.ID), "success",
			map[string]any{"role": string(kluis.RoleManager), "email": sealedDetail{userKey(org.ID, u.ID), email}})
	})
	if err != nil {
		s.dropUnusedOrgKeys(ctx, orgID, actor)
	}
	return org, link, err
}

// dropUnusedOrgKeys destroys the keys made for an organisation whose
// creation failed, once it is sure the organisation does not exist (a commit
// can succeed and still report an error), as actor's change.
func (s *Store) dropUnusedOrgKeys(ctx context.Context, org kluis.OrgID, actor kluis.Actor) {
	ctx = context.WithoutCancel(ctx)
	var n int
	if err := s.db.readRow(ctx, `SELECT COUNT(*) FROM orgs WHERE id = ?`, org).Scan(&n); err != nil || n > 0 {
		return
	}
	if err := s.keys.DestroyOrgKeys(ctx, string(org), actor.AuditName()); err != nil {
		s.log.Warn("the unused keys of an organisation not created were not destroyed (they seal nothing)", "err", err.Error())
	}
	s.drainAfterKeyChange(ctx)
}

// DeleteOrg deletes an organisation on its request, with its users,
// sessions, invitations and queued mail (R5, R12, R36), and then destroys
// its keys and every key below them (crypto-shredding). Its audit chain stays,
// verifiable; the deletion is recorded in the platform chain. Operators and
// the CLI only. Errors: not_found, forbidden.
func (s *Store) DeleteOrg(ctx context.Context, actor kluis.Actor, slug string) error {
	var shred string
	err := s.write(ctx, audit.PlatformChain, func(t *Tx) error {
		if !kluis.CanManageOrgs(actor) {
			return deny(audit.PlatformChain, actor, "org.delete", "", kluis.ErrForbidden)
		}
		org, err := t.findOrgBySlug(ctx, slug)
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, `DELETE FROM orgs WHERE id = ?`, org.ID); err != nil {
			return fmt.Errorf("delete organisation: %w", err)
		}
		if shred, err = t.scheduleShred(ctx, org.ID, ""); err != nil {
			return err
		}
		return t.appendEvent(ctx, audit.PlatformChain, actor, "org.delete", "org:"+string(org.ID), "success",
			map[string]any{"slug": org.Slug})
	})
	if err == nil {
		s.shredNow(ctx, actor, shred)
	}
	return err
}

const orgColumns = `id, slug, name, language, created_at`

func scanOrg(row interface{ Scan(...any) error }) (kluis.Org, error) {
	var o kluis.Org
	var created int64
	err := row.Scan(&o.ID, &o.Slug, &o.Name, &o.Language, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return o, kluis.ErrNotFound
	}
	o.CreatedAt = fromMicros(created)
	return o, err
}

// FindOrgBySlug resolves the organisation of a URL. It returns no personal
// data and needs no actor: every org route resolves its slug before
// authentication decides anything. Errors: not_found.
func (s *Store) FindOrgBySlug(ctx context.Context, slug string) (kluis.Org, error) {
	if kluis.ValidateSlug(slug) != nil {
		return kluis.Org{}, kluis.ErrNotFound
	}
	return scanOrg(s.db.readRow(ctx, `SELECT `+orgColumns+` FROM orgs WHERE slug = ?`, slug))
}

func (t *Tx) findOrgBySlug(ctx context.Context, slug string) (kluis.Org, error) {
	if kluis.ValidateSlug(slug) != nil {
		return kluis.Org{}, kluis.ErrNotFound
	}
	return scanOrg(t.queryRow(ctx, `SELECT `+orgColumns+` FROM orgs WHERE slug = ?`+t.db.forUpdate(), slug))
}

// FindOrgs lists every organisation for the operator: ids, slugs and names,
// never users or their data (R22). Errors: forbidden.
func (s *Store) FindOrgs(ctx context.Context, actor kluis.Actor) ([]kluis.Org, error) {
	if !kluis.CanManageOrgs(actor) {
		return nil, s.refuse(ctx, audit.PlatformChain, actor, "org.list", "")
	}
	rows, err := s.db.reader.QueryContext(ctx, `SELECT `+orgColumns+` FROM orgs ORDER BY slug`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var orgs []kluis.Org
	for rows.Next() {
		o, err := scanOrg(rows)
		if err != nil {
			return nil, err
		}
		orgs = append(orgs, o)
	}
	return orgs, rows.Err()
}

// refuse records a rights denial of a read and returns forbidden.
func (s *Store) refuse(ctx context.Context, chain string, actor kluis.Actor, action, target string) error {
	if err := s.recordRefusal(ctx, chain, actor, action, target, "denied", nil); err != nil {
		return err
	}
	return kluis.ErrForbidden
}

// FindPolicy returns an organisation's policy. Any user of the organisation.
// Errors: forbidden.
func (s *Store) FindPolicy(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (kluis.Policy, error) {
	if !kluis.CanReadPolicy(actor, org) {
		return kluis.Policy{}, s.refuse(ctx, orgChain(org), actor, "policy.read", "")
	}
	return s.policy(ctx, s.db.reader, org)
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) policy(ctx context.Context, db queryRower, org kluis.OrgID) (kluis.Policy, error) {
	var p kluis.Policy
	err := db.QueryRowContext(ctx, s.db.q(`SELECT password_min_length, password_require_digit, password_require_upper,
		session_idle_minutes, session_max_hours, mfa, lockout_threshold FROM orgs WHERE id = ?`), org).
		Scan(&p.PasswordMinLength, &p.PasswordRequireDigit, &p.PasswordRequireUpper, &p.SessionIdleMinutes, &p.SessionMaxHours, &p.MFA, &p.LockoutThreshold)
	if errors.Is(err, sql.ErrNoRows) {
		return p, kluis.ErrNotFound
	}
	return p, err
}

// UpdatePolicy replaces an organisation's policy (R16, R17, R18, R21).
// Managers only. The fields added after the first release (MFA,
// LockoutThreshold) keep their value when left zero, so older clients do not
// reset them. Errors: invalid_input, forbidden.
func (s *Store) UpdatePolicy(ctx context.Context, org kluis.OrgID, actor kluis.Actor, p kluis.Policy) (kluis.Policy, error) {
	if !kluis.CanUpdatePolicy(actor, org) {
		return kluis.Policy{}, s.refuse(ctx, orgChain(org), actor, "policy.update", "")
	}
	// Validated with the later fields filled in for the check; the stored
	// values are settled inside the transaction.
	check := p
	check.MFA = cmp.Or(check.MFA, kluis.MFAOptional)
	check.LockoutThreshold = cmp.Or(check.LockoutThreshold, kluis.DefaultPolicy.LockoutThreshold)
	if err := check.Validate(); err != nil {
		return kluis.Policy{}, err
	}
	err := s.write(ctx, orgChain(org), func(t *Tx) error {
		if !kluis.CanUpdatePolicy(actor, org) {
			return deny(orgChain(org), actor, "policy.update", "", kluis.ErrForbidden)
		}
		old, err := t.s.policy(ctx, t.tx, org)
		if err != nil {
			return err
		}
		p.MFA = cmp.Or(p.MFA, old.MFA)
		p.LockoutThreshold = cmp.Or(p.LockoutThreshold, old.LockoutThreshold)
		if _, err := t.exec(ctx, `UPDATE orgs SET password_min_length = ?, password_require_digit = ?, password_require_upper = ?,
			session_idle_minutes = ?, session_max_hours = ?, mfa = ?, lockout_threshold = ? WHERE id = ?`,
			p.PasswordMinLength, p.PasswordRequireDigit, p.PasswordRequireUpper, p.SessionIdleMinutes, p.SessionMaxHours, p.MFA, p.LockoutThreshold, org); err != nil {
			return err
		}
		return t.appendEvent(ctx, orgChain(org), actor, "policy.update", "org:"+string(org), "success",
			map[string]any{"old": old, "new": p})
	})
	return p, err
}

// queueMail renders a notice, composes it and queues it in this
// transaction; the worker delivers it after commit (R45: notices only).
func (t *Tx) queueMail(ctx context.Context, org kluis.OrgID, user kluis.UserID, lang, to string, kind mail.Kind, data mail.Data) error {
	subject, body, err := mail.Render(kind, lang, data)
	if err != nil {
		return err
	}
	msg, _, err := mail.Compose(t.s.mailFrom, to, subject, body, t.now)
	if err != nil {
		return err
	}
	orgID := sql.NullString{String: string(org), Valid: org != ""}
	userID := sql.NullString{String: string(user), Valid: user != ""}
	id := kluis.NewID(t.now)
	env, err := t.s.sealEnvelope(ctx, id, org, user, envelope{From: t.s.mailFrom, To: []string{to}, Message: msg})
	if err != nil {
		return err
	}
	if _, err := t.exec(ctx, `INSERT INTO mail_queue (id, org_id, user_id, kind, created_at, next_attempt_at, lease_until, attempts, envelope)
		VALUES (?, ?, ?, ?, ?, ?, 0, 0, ?)`, id, orgID, userID, string(kind), micros(t.now), micros(t.now), env); err != nil {
		return fmt.Errorf("queue mail: %w", err)
	}
	t.mailed = true
	return nil
}
