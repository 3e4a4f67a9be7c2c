package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/kluis/kluis"
)

// The rows every area reads: an organisation, its policy and logins switch,
// and a user with their personal fields opened.

// Column names in ciphertexts' associated data of the users table.
const (
	ColEmail = colEmail
	ColName  = colName
	ColPhone = colPhone
)

// UserTarget names a user as an audit target. An id that cannot be one of
// ours (it came from a URL) is not written into the chain.
func UserTarget(id kluis.UserID) string {
	if !kluis.ValidID(string(id)) {
		return ""
	}
	return "user:" + string(id)
}

// UserColumns are the columns ScanUser reads, in its order.
const UserColumns = `id, org_id, email, name, phone, maintenance_emails, role, status, created_at, last_login_at, restricted_at`

// SealedUser is a users row as stored: the personal fields still sealed.
type SealedUser struct {
	kluis.User
	email, name, phone []byte
}

// ScanSealedUser reads the columns of UserColumns, and extra, leaving the
// personal fields sealed. Errors: not_found for no row.
func ScanSealedUser(row interface{ Scan(...any) error }, extra ...any) (SealedUser, error) {
	var u SealedUser
	var created int64
	var lastLogin, restricted sql.NullInt64
	dest := append([]any{&u.ID, &u.OrgID, &u.email, &u.name, &u.phone, &u.MaintenanceEmails, &u.Role, &u.Status, &created, &lastLogin, &restricted}, extra...)
	err := row.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return u, kluis.ErrNotFound
	}
	u.CreatedAt = FromMicros(created)
	u.LastLoginAt = NullMicros(lastLogin)
	u.RestrictedAt = NullMicros(restricted)
	return u, err
}

// FindUser loads a user of org by id inside the transaction, locking the
// row on PostgreSQL. A user of another organisation is not found.
func (t *Tx) FindUser(ctx context.Context, org kluis.OrgID, id kluis.UserID) (kluis.User, error) {
	if !kluis.ValidID(string(id)) {
		return kluis.User{}, kluis.ErrNotFound
	}
	return t.s.ScanUser(ctx, t.QueryRow(ctx, `SELECT `+UserColumns+` FROM users WHERE org_id = ? AND id = ?`+t.db.ForUpdate(), org, id))
}

// OrgColumns are the columns ScanOrg reads, in its order.
const OrgColumns = `id, slug, name, language, created_at`

// ScanOrg reads the columns of OrgColumns. Errors: not_found for no row.
func ScanOrg(row interface{ Scan(...any) error }) (kluis.Org, error) {
	var o kluis.Org
	var created int64
	err := row.Scan(&o.ID, &o.Slug, &o.Name, &o.Language, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return o, kluis.ErrNotFound
	}
	o.CreatedAt = FromMicros(created)
	return o, err
}

// FindOrg loads an organisation in the transaction. Errors: not_found.
func (t *Tx) FindOrg(ctx context.Context, org kluis.OrgID) (kluis.Org, error) {
	return ScanOrg(t.QueryRow(ctx, `SELECT `+OrgColumns+` FROM orgs WHERE id = ?`, org))
}

// FindOrgBySlug resolves the organisation of a URL. It returns no personal
// data and needs no actor: every org route resolves its slug before
// authentication decides anything. Errors: not_found.
func (s *Core) FindOrgBySlug(ctx context.Context, slug string) (kluis.Org, error) {
	if kluis.ValidateSlug(slug) != nil {
		return kluis.Org{}, kluis.ErrNotFound
	}
	return ScanOrg(s.db.ReadRow(ctx, `SELECT `+OrgColumns+` FROM orgs WHERE slug = ?`, slug))
}

const policyQuery = `SELECT password_min_length, password_require_digit, password_require_upper,
	session_idle_minutes, session_max_hours, mfa, lockout_threshold, project_access, trash_days, support_approvals, max_managers,
	inactive_user_days, audit_retention_days FROM orgs WHERE id = ?`

func scanPolicy(row *sql.Row) (kluis.Policy, error) {
	var p kluis.Policy
	var maxManagers sql.NullInt64
	err := row.Scan(&p.PasswordMinLength, &p.PasswordRequireDigit, &p.PasswordRequireUpper, &p.SessionIdleMinutes, &p.SessionMaxHours, &p.MFA, &p.LockoutThreshold, &p.ProjectAccess, &p.TrashDays, &p.SupportApprovals, &maxManagers,
		&p.InactiveUserDays, &p.AuditRetentionDays)
	if errors.Is(err, sql.ErrNoRows) {
		return p, kluis.ErrNotFound
	}
	if maxManagers.Valid {
		n := int(maxManagers.Int64)
		p.MaxManagers = &n
	}
	return p, err
}

// Policy reads an organisation's policy, without a rights check (the
// caller's business). Errors: not_found.
func (s *Core) Policy(ctx context.Context, org kluis.OrgID) (kluis.Policy, error) {
	return scanPolicy(s.db.ReadRow(ctx, policyQuery, org))
}

// Policy reads an organisation's policy in the transaction.
func (t *Tx) Policy(ctx context.Context, org kluis.OrgID) (kluis.Policy, error) {
	return scanPolicy(t.QueryRow(ctx, policyQuery, org))
}

// InstanceLoginsKey is the settings row that stops every login of the
// instance while it exists; its value is when the stop began (R19).
const InstanceLoginsKey = "logins_stopped"

// loginsStoppedQuery is the one check of R19: the organisation's own
// switch, or the instance-wide one, which holds for every organisation,
// also one created after the stop.
const loginsStoppedQuery = `SELECT o.logins_disabled OR EXISTS (SELECT 1 FROM settings WHERE key = '` + InstanceLoginsKey + `')
	FROM orgs o WHERE o.id = ?`

// LoginsStopped reports whether the organisation's logins are stopped
// (R19), without a rights check.
func (s *Core) LoginsStopped(ctx context.Context, org kluis.OrgID) (bool, error) {
	var stopped bool
	err := s.db.ReadRow(ctx, loginsStoppedQuery, org).Scan(&stopped)
	return stopped, err
}

// LoginsStopped is the check again inside a transaction that is about to
// open a session: logins may have been stopped since the first look.
func (t *Tx) LoginsStopped(ctx context.Context, org kluis.OrgID) (bool, error) {
	var stopped bool
	err := t.QueryRow(ctx, loginsStoppedQuery, org).Scan(&stopped)
	return stopped, err
}

// EnrolmentOnly is 1 when the credential row of the alias (a session, an
// API token, with org_id and user_id columns) belongs to a user whose
// organisation requires a second factor (R17) and who has none: such a
// credential is limited to enrolling one. It needs the organisation as o.
// Enrolled factors count under every policy, "off" included: switching the
// policy off must not quietly weaken the sign-in of those who protected
// their account.
func EnrolmentOnly(alias string) string {
	return `CASE WHEN o.mfa = 'required'
	AND NOT EXISTS (SELECT 1 FROM factors f WHERE f.org_id = ` + alias + `.org_id AND f.subject = ` + alias + `.user_id AND f.confirmed_at IS NOT NULL)
	AND NOT EXISTS (SELECT 1 FROM passkeys p WHERE p.org_id = ` + alias + `.org_id AND p.subject = ` + alias + `.user_id)
	THEN 1 ELSE 0 END`
}

// ColClient is the column of an audit event's sealed client address, for
// OpenAuditValue.
const ColClient = colClient

// ColDetails prefixes the name of a sealed audit detail, for
// OpenAuditValue.
const ColDetails = colDetails

// OpenName opens only the name of a sealed user (lists that show names and
// nothing else).
func (s *Core) OpenName(ctx context.Context, su SealedUser) (string, error) {
	b, err := s.Open(ctx, UserField(su.OrgID, su.ID, colName), su.name)
	return string(b), err
}

// Restricted reports whether processing of the person's data is restricted
// (R34), in the transaction. A person who does not exist is not restricted.
func (t *Tx) Restricted(ctx context.Context, org kluis.OrgID, id kluis.UserID) (bool, error) {
	var restricted bool
	err := t.QueryRow(ctx, `SELECT restricted_at IS NOT NULL FROM users WHERE org_id = ? AND id = ?`, org, id).Scan(&restricted)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return restricted, err
}

// RefuseRestricted answers processing_restricted when the person's
// processing is restricted (R34): every change to their data calls it in
// its transaction before changing anything.
func (t *Tx) RefuseRestricted(ctx context.Context, org kluis.OrgID, id kluis.UserID) error {
	restricted, err := t.Restricted(ctx, org, id)
	if err == nil && restricted {
		return kluis.ErrProcessingRestricted
	}
	return err
}

// RestrictedPeople names the organisation's people whose processing is
// restricted, as audit names ("user:ID"): exports to others leave their
// personal values out (R34).
func (s *Core) RestrictedPeople(ctx context.Context, org kluis.OrgID) (map[string]bool, error) {
	rows, err := s.db.Query(ctx, `SELECT id FROM users WHERE org_id = ? AND restricted_at IS NOT NULL`, org)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out["user:"+id] = true
	}
	return out, rows.Err()
}
