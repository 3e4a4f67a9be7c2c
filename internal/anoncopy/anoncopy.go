// Package anoncopy makes an anonymised copy of a kluis instance for
// acceptance, testing and development (kluis export --anonymize, R39, R48;
// docs/OPERATIONS.md, "An anonymised copy"). It reads the source through
// the source's store and keys and writes a new instance through the copy's:
// the copy has keys of its own, and every value in it was sealed under
// them.
//
// What the copy keeps is the structure: organisations with their policies
// and licences, people with their roles and states, groups and who is in
// them, projects with their grants, files (paths, sizes, types) and
// versions. What it fakes is everything personal: names, e-mail addresses
// and phone numbers (the same real value gives the same fake everywhere,
// through an HMAC under a key made for the copy and then forgotten),
// organisation, project and group names, file paths and version messages;
// file contents are generated stand-ins of the same size and type. What it
// drops: passwords, second factors, sessions, tokens, invitations and
// every other credential; the operators; the audit history; the inbox,
// support records, queued mail and text messages, sign-in failures, key
// work, jobs, alerts and backups. Every table has a rule (Rules); a table
// without one makes the copy refuse, so a new table is never copied by
// accident.
package anoncopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/projects"
	"github.com/kluis/kluis/internal/sqlstore/rights"
)

// Rule is what the copy does with a table of the source.
type Rule string

// Rules.
const (
	// Faked: the rows are written anew with every personal value faked and
	// sealed under the copy's keys.
	Faked Rule = "faked"
	// Copied: the rows hold ids, roles, policies and times only; they are
	// copied as they are.
	Copied Rule = "copied"
	// Rebuilt: the copy's content store makes its own rows (stand-ins).
	Rebuilt Rule = "rebuilt"
	// Fresh: the copy starts its own (new audit chains, its own settings).
	Fresh Rule = "fresh"
	// Dropped: nothing of the table is copied.
	Dropped Rule = "dropped"
)

// Rules say what the copy does with each table.
var Rules = map[string]Rule{
	"orgs": Faked, "users": Faked, "user_groups": Faked, "projects": Faked,
	"project_files": Faked, "project_versions": Faked,
	"licences": Copied, "group_members": Copied, "project_grants": Copied,
	"content_chunks": Rebuilt, "content_blobs": Rebuilt, "chunk_refs": Rebuilt,
	"content_uploads": Rebuilt, "content_collections": Rebuilt,
	"audit_events": Fresh, "audit_heads": Fresh, "audit_checkpoints": Fresh, "audit_prunes": Fresh,
	"settings": Fresh, "key_events_drained": Fresh, "schema_migrations": Fresh,
	// Credentials and everything that lets someone in: reset.
	"operators": Dropped, "invitations": Dropped, "password_resets": Dropped,
	"sessions": Dropped, "factors": Dropped, "recovery_codes": Dropped,
	"challenges": Dropped, "passkeys": Dropped, "passkey_ceremonies": Dropped,
	"factor_guards": Dropped, "api_tokens": Dropped, "api_token_clients": Dropped,
	"email_changes": Dropped, "unlock_links": Dropped, "sms_codes": Dropped,
	"support_sessions": Dropped,
	// Messages and records about people and what they did.
	"mail_queue": Dropped, "sms_queue": Dropped, "notices": Dropped,
	"support_requests": Dropped, "support_grants": Dropped, "support_uses": Dropped,
	"activity_periods": Dropped, "privacy_requests": Dropped, "privacy_settings": Dropped,
	// The source's guards, work and operations.
	"login_failures": Dropped, "address_failures": Dropped, "org_failure_rates": Dropped,
	"key_shreds": Dropped, "key_reencryptions": Dropped, "job_leases": Dropped,
	"job_runs": Dropped, "alerts": Dropped, "backups": Dropped, "backup_copies": Dropped,
	"backup_holdings": Dropped, "backup_drills": Dropped, "usage_counts": Dropped, "crash_reports": Dropped,
}

// Columns are the columns of the tables whose rows are copied as they are
// (the organisation's row with its name and slug faked): a column added
// later, which might hold something personal, makes the copy refuse until
// it is named here.
var Columns = map[string][]string{
	"orgs": {"id", "slug", "name", "language", "created_at", "password_min_length", "password_require_digit",
		"password_require_upper", "session_idle_minutes", "session_max_hours", "logins_disabled", "mfa",
		"lockout_threshold", "project_access", "trash_days", "max_managers", "support_approvals",
		"inactive_user_days", "audit_retention_days", "terminated_at"},
	"licences": {"org_id", "max_users", "max_projects", "max_active_projects", "max_storage_bytes", "ends_at",
		"activity_timeout", "updated_at"},
	"group_members":  {"group_id", "org_id", "user_id"},
	"project_grants": {"project_id", "org_id", "subject", "user_id", "group_id", "relation", "granted_at"},
}

// ErrNoRule means the source has a table no rule covers: the copy refuses
// rather than guess whether it holds personal data.
var ErrNoRule = errors.New("no rule says what an anonymised copy does with this table")

// Side is one instance of the copy: the source or the copy.
type Side struct {
	Core     *sqlstore.Core
	Projects *projects.Service
}

// Report counts what was copied.
type Report struct {
	Orgs, Users, Groups, Projects, Files, Versions int
	// Managers are the managers of the copy, by their fake addresses: a
	// tester signs in as one with a password-reset link (fake values are
	// nobody's personal data).
	Managers []Manager
}

// Manager is one manager of the copy.
type Manager struct {
	Slug, Email, Status string
}

// Action is the audit action that starts each of the copy's chains and
// records each part of the copy.
const Action = "instance.anonymised_copy"

// StartPlatformChain appends the first event of the copy's platform chain.
// Call it before anything else is written to the copy (before its platform
// key is made), so that the chain starts with it.
func StartPlatformChain(ctx context.Context, dst *sqlstore.Core, environment string) error {
	return dst.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		return t.Append(ctx, audit.PlatformChain, kluis.CLIActor, Action, "", "success",
			map[string]any{"environment": environment})
	})
}

// CheckTables refuses a source with a table no rule covers.
func CheckTables(ctx context.Context, src *sqlstore.Core) error {
	tables, err := src.DB().Tables(ctx)
	if err != nil {
		return err
	}
	for _, t := range tables {
		if _, ok := Rules[t]; !ok {
			return fmt.Errorf("%w: %s", ErrNoRule, t)
		}
		allowed, ok := Columns[t]
		if !ok {
			continue
		}
		q := `SELECT name FROM pragma_table_info(?)`
		if src.DB().Engine == sqlstore.Postgres {
			q = `SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?`
		}
		_, cols, err := readRows(ctx, src, q, t)
		if err != nil {
			return err
		}
		for _, c := range cols {
			if name := asString(c[0]); !slices.Contains(allowed, name) {
				return fmt.Errorf("%w: %s.%s", ErrNoRule, t, name)
			}
		}
	}
	return nil
}

// Copy copies every organisation of src into dst, faked, and records the
// key events of the copy's new keys in its chains. dst must be a new
// instance whose platform chain StartPlatformChain began.
func Copy(ctx context.Context, src, dst Side, environment string) (Report, error) {
	var rep Report
	if err := CheckTables(ctx, src.Core); err != nil {
		return rep, err
	}
	f, err := NewFaker()
	if err != nil {
		return rep, err
	}
	defer f.Forget()
	_, ids, err := readRows(ctx, src.Core, `SELECT id FROM orgs ORDER BY id`)
	if err != nil {
		return rep, err
	}
	for _, id := range ids {
		if err := copyOrg(ctx, src, dst, f, kluis.OrgID(asString(id[0])), environment, &rep); err != nil {
			return rep, err
		}
		rep.Orgs++
	}
	_, err = dst.Core.DrainKeyEvents(ctx)
	return rep, err
}

// readRows reads every row of a query, each value as the driver gives it.
func readRows(ctx context.Context, c *sqlstore.Core, query string, args ...any) (cols []string, out [][]any, err error) {
	err = c.Read(ctx, func(t *sqlstore.Tx) error {
		rows, err := t.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		if cols, err = rows.Columns(); err != nil {
			return err
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			out = append(out, vals)
		}
		return rows.Err()
	})
	return cols, out, err
}

func asString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return fmt.Sprint(v)
}

// insertRows inserts rows of cols into table.
func insertRows(ctx context.Context, t *sqlstore.Tx, table string, cols []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	q := `INSERT INTO ` + table + ` (` + strings.Join(cols, ", ") + `) VALUES (` + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + `)`
	for _, r := range rows {
		if _, err := t.Exec(ctx, q, r...); err != nil {
			return fmt.Errorf("copy %s: %w", table, err)
		}
	}
	return nil
}

// ofKnown keeps the rows whose user_id is empty or a known person's.
func ofKnown(cols []string, rows [][]any, known map[string]bool) [][]any {
	col := -1
	for i, c := range cols {
		if c == "user_id" {
			col = i
		}
	}
	var out [][]any
	for _, r := range rows {
		if col < 0 || r[col] == nil || known[asString(r[col])] {
			out = append(out, r)
		}
	}
	return out
}

func set(cols []string, row []any, col string, v any) {
	for i, c := range cols {
		if c == col {
			row[i] = v
		}
	}
}

type fakeUser struct {
	id                 kluis.UserID
	email, name, phone []byte
	index              []byte
	maintenance        bool
	role, status       string
	created, updated   int64
}

func copyOrg(ctx context.Context, src, dst Side, f *Faker, org kluis.OrgID, environment string, rep *Report) error {
	ocols, orows, err := readRows(ctx, src.Core, `SELECT * FROM orgs WHERE id = ?`, org)
	if err != nil || len(orows) != 1 {
		return errors.Join(err, fmt.Errorf("read organisation %s", org))
	}
	set(ocols, orows[0], "name", f.OrgName(string(org)))
	set(ocols, orows[0], "slug", f.OrgSlug(string(org)))
	lcols, lrows, err := readRows(ctx, src.Core, `SELECT * FROM licences WHERE org_id = ?`, org)
	if err != nil {
		return err
	}
	// People: their personal values opened with the source's keys, faked,
	// and sealed under new keys of the copy.
	var people []kluis.User
	var updated []int64
	err = src.Core.Read(ctx, func(t *sqlstore.Tx) error {
		rows, err := t.Query(ctx, `SELECT `+sqlstore.UserColumns+`, updated_at FROM users WHERE org_id = ? ORDER BY id`, org)
		if err != nil {
			return err
		}
		defer rows.Close()
		var sealed []sqlstore.SealedUser
		for rows.Next() {
			var up int64
			su, err := sqlstore.ScanSealedUser(rows, &up)
			if err != nil {
				return err
			}
			sealed, updated = append(sealed, su), append(updated, up)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		kept := updated[:0]
		for i, su := range sealed {
			u, err := src.Core.OpenUser(ctx, su)
			if errors.Is(err, keys.ErrKeyDestroyed) {
				continue // being erased (their key is destroyed): not copied
			}
			if err != nil {
				return err
			}
			people, kept = append(people, u), append(kept, updated[i])
		}
		updated = kept
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the people of an organisation: %w", err)
	}
	keyStore := dst.Core.Keys()
	if err := keyStore.EnsureOrgKey(ctx, string(org), kluis.CLIActor.AuditName()); err != nil {
		return err
	}
	users := make([]fakeUser, len(people))
	for i, u := range people {
		fu := fakeUser{id: u.ID, maintenance: u.MaintenanceEmails, role: string(u.Role), status: string(u.Status),
			created: sqlstore.Micros(u.CreatedAt), updated: updated[i]}
		if err := keyStore.EnsureUserKey(ctx, string(org), string(u.ID), kluis.CLIActor.AuditName()); err != nil {
			return err
		}
		email := f.Email(u.Email)
		if u.Role == kluis.RoleManager {
			rep.Managers = append(rep.Managers, Manager{Slug: f.OrgSlug(string(org)), Email: email, Status: string(u.Status)})
		}
		if fu.index, err = dst.Core.EmailIndex(ctx, org, email); err != nil {
			return err
		}
		for _, v := range []struct {
			col, val string
			out      *[]byte
		}{{sqlstore.ColEmail, email, &fu.email}, {sqlstore.ColName, f.Name(u.Name), &fu.name}, {sqlstore.ColPhone, f.Phone(u.Phone), &fu.phone}} {
			if *v.out, err = dst.Core.SealUser(ctx, org, u.ID, v.col, v.val); err != nil {
				return err
			}
		}
		users[i] = fu
	}
	_, groups, err := readRows(ctx, src.Core, `SELECT id, created_at FROM user_groups WHERE org_id = ? ORDER BY id`, org)
	if err != nil {
		return err
	}
	for i, g := range groups {
		id := kluis.GroupID(asString(g[0]))
		sealed, err := dst.Core.Seal(ctx, keys.OrgKey(string(org)), rights.GroupNameField(org, id), []byte(f.Label("Group", string(id))))
		if err != nil {
			return err
		}
		groups[i] = []any{string(id), g[1], string(org), sealed}
	}
	mcols, members, err := readRows(ctx, src.Core, `SELECT * FROM group_members WHERE org_id = ?`, org)
	if err != nil {
		return err
	}
	gcols, grants, err := readRows(ctx, src.Core, `SELECT * FROM project_grants WHERE org_id = ?`, org)
	if err != nil {
		return err
	}
	// Rows of people who were not copied (being erased) go with them.
	known := map[string]bool{}
	for _, u := range people {
		known[string(u.ID)] = true
	}
	members, grants = ofKnown(mcols, members, known), ofKnown(gcols, grants, known)
	shapes, err := src.Projects.ReadProjectShapes(ctx, org)
	if err != nil {
		return fmt.Errorf("read the projects of an organisation: %w", err)
	}
	chain := sqlstore.OrgChain(org)
	err = dst.Core.Write(ctx, chain, func(t *sqlstore.Tx) error {
		if err := t.Append(ctx, chain, kluis.CLIActor, Action, "org:"+string(org), "success", map[string]any{
			"environment": environment, "users": len(users), "groups": len(groups), "projects": len(shapes)}); err != nil {
			return err
		}
		if err := insertRows(ctx, t, "orgs", ocols, orows); err != nil {
			return err
		}
		if err := insertRows(ctx, t, "licences", lcols, lrows); err != nil {
			return err
		}
		for _, u := range users {
			// No password, no last sign-in: everyone sets a password
			// by the reset link (docs/OPERATIONS.md).
			if _, err := t.Exec(ctx, `INSERT INTO users (id, org_id, email_index, email, name, phone, maintenance_emails, role, status,
				password_hash, created_at, updated_at, last_login_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, NULL)`,
				u.id, org, u.index, u.email, u.name, u.phone, u.maintenance, u.role, u.status, u.created, u.updated); err != nil {
				return fmt.Errorf("copy users: %w", err)
			}
		}
		for _, g := range groups {
			// g is id, created_at, org_id, sealed name.
			if _, err := t.Exec(ctx, `INSERT INTO user_groups (id, created_at, org_id, name) VALUES (?, ?, ?, ?)`, g...); err != nil {
				return fmt.Errorf("copy groups: %w", err)
			}
		}
		return insertRows(ctx, t, "group_members", mcols, members)
	})
	if err != nil {
		return err
	}
	rep.Users += len(users)
	rep.Groups += len(groups)
	for _, sh := range shapes {
		var mine [][]any
		for _, g := range grants {
			for i, c := range gcols {
				if c == "project_id" && asString(g[i]) == string(sh.ID) {
					mine = append(mine, g)
				}
			}
		}
		if err := src.Projects.ReadShape(ctx, org, &sh); err != nil {
			return fmt.Errorf("read a project: %w", err)
		}
		id := string(sh.ID)
		err := dst.Projects.WriteCopy(ctx, org, sh, projects.CopyNames{
			Project: f.Label("Project", id),
			Path:    func(p string) string { return f.Path(id, p) },
			Message: func(v projects.ShapeVersion) string { return fmt.Sprintf("Version %d", v.Number) },
			Content: func(sf projects.ShapeFile) io.Reader { return StandIn(safeExt(path.Base(sf.Path)), sf.Size) },
			Audit: func(t *sqlstore.Tx) error {
				if err := insertRows(ctx, t, "project_grants", gcols, mine); err != nil {
					return err
				}
				return t.Append(ctx, chain, kluis.CLIActor, Action, rights.ProjectTarget(sh.ID), "success",
					map[string]any{"files": len(sh.Files), "versions": len(sh.Versions), "grants": len(mine)})
			},
		})
		if err != nil {
			return fmt.Errorf("copy a project: %w", err)
		}
		rep.Projects++
		rep.Files += len(sh.Files)
		rep.Versions += len(sh.Versions)
	}
	return nil
}
