package backups

// Restoring one organisation from a backup into the running instance (R32):
// the organisation's rows are replaced by the backup's in one transaction of
// the write path, together with the org.restore event that continues its
// audit chain. Which rows are the organisation's is decided per table from
// its columns (ClassifyTable); the audit chain, the organisation's own row,
// its licence, the key work and the record of support access stay as they
// are. People and projects whose keys were destroyed since stay erased.

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"filippo.io/age"
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/backup"
	"github.com/kluis/kluis/internal/content"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sqldump"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Treatment is what a restore of one organisation does with a table's rows
// of that organisation.
type Treatment int

// Treatments.
const (
	// Platform tables hold no organisation's rows, or only the platform's
	// own record about them: never touched.
	Platform Treatment = iota + 1
	// Kept: the organisation's rows stay as they are now.
	Kept
	// Replaced: the organisation's rows are deleted and the backup's loaded.
	Replaced
	// Ended: the organisation's rows are deleted and none are loaded, as
	// backups leave the table out (sessions, sign-in ceremonies, queued
	// mail and text messages): everyone of the organisation signs in again.
	Ended
	// Merged: the backup's rows are added where they are missing, the
	// organisation's rows stay, except those of projects the restore
	// removes. Only the content store's record of its chunks is merged: the
	// collector deletes the chunks nothing uses any more.
	Merged
)

func (t Treatment) String() string {
	switch t {
	case Platform:
		return "platform"
	case Kept:
		return "kept"
	case Replaced:
		return "replaced"
	case Ended:
		return "ended"
	case Merged:
		return "merged"
	}
	return fmt.Sprintf("treatment(%d)", int(t))
}

// OrgTable says how a restore of one organisation treats a table, and
// which of its rows are the organisation's.
type OrgTable struct {
	Treatment Treatment
	// Column ties a row to the organisation: it holds the organisation's
	// id (Parent and Prefix empty), the id after Prefix ("org:" for the
	// audit chain's tables), or the id of a row of Parent, a table whose
	// rows are the organisation's by its org_id column ("project_id" →
	// projects, "user_id" → users). Empty for platform tables.
	Column, Parent, Prefix string
}

// Where is the SQL condition ('?' placeholders) that selects the
// organisation's rows of the table, with its arguments; "" for a platform
// table.
func (c OrgTable) Where(org kluis.OrgID) (string, []any) {
	switch {
	case c.Column == "":
		return "", nil
	case c.Parent != "":
		return sqldump.Quote(c.Column) + ` IN (SELECT id FROM ` + sqldump.Quote(c.Parent) + ` WHERE org_id = ?)`, []any{string(org)}
	default:
		return sqldump.Quote(c.Column) + ` = ?`, []any{c.Prefix + string(org)}
	}
}

// orgTableRules are the tables whose treatment their columns do not
// decide: every other table is the organisation's by org_id, project_id or
// user_id (in that order), and replaced — or ended when backups leave it
// out. A table that fits neither has no rule, and a restore refuses to
// guess (ClassifyTable).
var orgTableRules = map[string]OrgTable{
	// The platform's own tables.
	"operators": {Treatment: Platform}, "settings": {Treatment: Platform},
	"key_events_drained": {Treatment: Platform}, "job_leases": {Treatment: Platform},
	"login_failures": {Treatment: Platform}, "address_failures": {Treatment: Platform},
	"backups": {Treatment: Platform}, "backup_copies": {Treatment: Platform},
	"backup_drills": {Treatment: Platform}, "schema_migrations": {Treatment: Platform},
	"job_runs": {Treatment: Platform}, "alerts": {Treatment: Platform},
	// What each backup holds per organisation is the backups' record.
	"backup_holdings": {Treatment: Platform},
	// Anonymous statistics and crash reports (R37, R38): the platform's.
	"usage_counts": {Treatment: Platform}, "crash_reports": {Treatment: Platform},
	// The tamper-evident log keeps everything that happened since the
	// backup; the chain continues with org.restore.
	"audit_events":      {Treatment: Kept, Column: "chain", Prefix: "org:"},
	"audit_heads":       {Treatment: Kept, Column: "chain", Prefix: "org:"},
	"audit_checkpoints": {Treatment: Kept, Column: "chain", Prefix: "org:"},
	"audit_prunes":      {Treatment: Kept, Column: "chain", Prefix: "org:"}, // retention (issue 15)
	// The organisation itself (slug, name, policy) stays as it is now:
	// a restore brings back its content, not its settings.
	"orgs": {Treatment: Kept, Column: "id"},
	// The licence is the operator's agreement with the organisation.
	"licences": {Treatment: Kept, Column: "org_id"},
	// Key work in progress (destruction after an erasure, re-encryption
	// after a rotation) and the sign-in failure rates are the platform's
	// guards, not the organisation's data: a restore must never cancel a
	// pending key destruction.
	"key_shreds":        {Treatment: Kept, Column: "org_id"},
	"key_reencryptions": {Treatment: Kept, Column: "org_id"},
	"org_failure_rates": {Treatment: Kept, Column: "org_id"},
	// The record of support access: the operator who restores must not be
	// able to roll back what support did or revive a grant revoked since.
	"support_requests": {Treatment: Kept, Column: "org_id"},
	"support_grants":   {Treatment: Kept, Column: "org_id"},
	"support_uses":     {Treatment: Kept, Column: "org_id"},
	// The register of data-subject requests is the organisation's evidence
	// that it answered them (R34): a restore must not forget a request
	// filed or handled since. Its privacy page's settings stay like its
	// policy.
	"privacy_requests": {Treatment: Kept, Column: "org_id"},
	"privacy_settings": {Treatment: Kept, Column: "org_id"},
	// The content store itself (PostgreSQL's chunk blobs) and its guards
	// against the collector: chunks are restored through the store.
	"content_blobs":       {Treatment: Kept, Column: "project_id", Parent: "projects"},
	"content_uploads":     {Treatment: Kept, Column: "project_id", Parent: "projects"},
	"content_collections": {Treatment: Kept, Column: "project_id", Parent: "projects"},
	"content_chunks":      {Treatment: Merged, Column: "project_id", Parent: "projects"},
	// Rows that belong to the organisation through another of its rows.
	"api_token_clients": {Treatment: Replaced, Column: "token_id", Parent: "api_tokens"},
}

// ErrNoTableRule means a table has no rule for restoring one organisation.
var ErrNoTableRule = errors.New("no rule says how a restore of one organisation treats this table")

// ClassifyTable says how a restore of one organisation treats table, given
// its columns (a dump's header or the database's).
func ClassifyTable(table string, cols []string) (OrgTable, error) {
	has := map[string]bool{}
	for _, c := range cols {
		has[c] = true
	}
	if rule, ok := orgTableRules[table]; ok {
		if rule.Column != "" && !has[rule.Column] {
			return OrgTable{}, fmt.Errorf("%w: %s has no column %s", ErrNoTableRule, table, rule.Column)
		}
		return rule, nil
	}
	rule := OrgTable{Treatment: Replaced}
	if skipTables[table] {
		rule.Treatment = Ended
	}
	switch {
	case has["org_id"]:
		rule.Column = "org_id"
	case has["project_id"]:
		rule.Column, rule.Parent = "project_id", "projects"
	case has["user_id"]:
		rule.Column, rule.Parent = "user_id", "users"
	default:
		return OrgTable{}, fmt.Errorf("%w: %s", ErrNoTableRule, table)
	}
	return rule, nil
}

// Errors of RestoreOrg.
var (
	ErrOrgNotInBackup = errors.New("the backup holds no organisation of that slug")
	ErrOrgGone        = errors.New("the organisation of the backup is not in this instance: it was deleted since, its keys are destroyed, and nothing of it can be restored")
	ErrSchemaDiffers  = errors.New("the backup was taken with another schema than this instance's")
	errCollecting     = errors.New("the collector is tidying one of the organisation's projects; try again in a few minutes")
)

// OrgRestored reports a restore of one organisation.
type OrgRestored struct {
	Backup string
	Org    kluis.OrgID
	Slug   string
	// Removed counts the organisation's rows deleted per table (its
	// sessions among them), Loaded the backup's rows loaded per table
	// (before the people and projects erased since were taken out again).
	Removed, Loaded map[string]int64
	// Chunks counts the chunks copied from the target into the content
	// store; ChunksPresent those the store held already.
	Chunks, ChunksPresent int
	// ErasedUsers and ErasedProjects count the backup's people and projects
	// whose keys were destroyed since: they stay erased.
	ErasedUsers, ErasedProjects int
	// DroppedProjects counts the projects the organisation had that the
	// backup does not: their rows and chunks are gone, their keys stay.
	DroppedProjects int
}

// String is the report as the command line prints it.
func (r OrgRestored) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "organisation %s (%s) restored from backup %s\n", r.Slug, r.Org, r.Backup)
	tables := make([]string, 0, len(r.Loaded)+len(r.Removed))
	for t := range r.Removed {
		tables = append(tables, t)
	}
	for t := range r.Loaded {
		if _, ok := r.Removed[t]; !ok {
			tables = append(tables, t)
		}
	}
	sort.Strings(tables)
	for _, t := range tables {
		if r.Removed[t] != 0 || r.Loaded[t] != 0 {
			fmt.Fprintf(&b, "  %-22s %6d removed %6d loaded\n", t, r.Removed[t], r.Loaded[t])
		}
	}
	fmt.Fprintf(&b, "chunks: %d copied, %d already held\n", r.Chunks, r.ChunksPresent)
	fmt.Fprintf(&b, "erased since the backup, kept erased: %d people, %d projects\n", r.ErasedUsers, r.ErasedProjects)
	fmt.Fprintf(&b, "projects not in the backup, removed: %d\n", r.DroppedProjects)
	return b.String()
}

// total counts the rows of m.
func total(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// OrgInBackup returns what backup m holds for the organisation slug, for
// the confirmation a restore asks first.
func OrgInBackup(m backup.Manifest, slug string) (backup.OrgHolding, bool) {
	for _, h := range m.Orgs {
		if h.Slug == slug {
			return h, true
		}
	}
	return backup.OrgHolding{}, false
}

// RestoreOrgFromTargets is RestoreOrg from the first configured target
// that holds backup id: the command line's entry point. ErrUnknownBackup
// when no target holds it.
func (s *Service) RestoreOrgFromTargets(ctx context.Context, actor kluis.Actor, identities []age.Identity, id, slug string) (OrgRestored, error) {
	if !kluis.CanManageOrgs(actor) {
		return OrgRestored{}, s.core.Refuse(ctx, audit.PlatformChain, actor, "org.restore", "")
	}
	var firstErr error
	for _, t := range s.o.Targets {
		if _, err := ReadManifest(ctx, t, identities, id); err != nil {
			if !errors.Is(err, backup.ErrNotExist) && firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", t.Name(), err)
			}
			continue
		}
		return s.RestoreOrg(ctx, actor, t, identities, id, slug)
	}
	if firstErr != nil {
		return OrgRestored{}, firstErr
	}
	return OrgRestored{}, ErrUnknownBackup
}

// RestoreOrg restores the organisation slug from backup id on t into this
// running instance, opening the backup with identities (R32). The
// organisation must still exist here with the id it had in the backup: one
// deleted since has its keys destroyed, and is refused (ErrOrgGone).
//
// In one transaction of the write path, under the organisation's chain
// lock, the organisation's rows of every table ClassifyTable calls Replaced
// or Ended are deleted (children first) and the backup's rows of the
// Replaced ones loaded; people and projects whose keys the key store
// destroyed since stay erased, and the organisation's sessions end. Its
// audit chain is not replaced: it keeps every event, and continues with
// org.restore (the backup, the counts), committed with the change. The
// projects' chunks are copied into the content store first (only those it
// lacks). A failure anywhere leaves the organisation as it was; once the
// organisation is known, it is recorded as a failed org.restore in the
// platform chain. Operator admins and the command line only.
func (s *Service) RestoreOrg(ctx context.Context, actor kluis.Actor, t backup.Target, identities []age.Identity, id string, slug string) (OrgRestored, error) {
	if !kluis.CanManageOrgs(actor) {
		return OrgRestored{Backup: id, Slug: slug}, s.core.Refuse(ctx, audit.PlatformChain, actor, "org.restore", "")
	}
	out, err := s.restoreOrg(ctx, actor, t, identities, id, slug)
	if err != nil && out.Org != "" {
		if rerr := s.core.RecordRefusal(context.WithoutCancel(ctx), audit.PlatformChain, actor, "org.restore", "org:"+string(out.Org), "failure",
			map[string]any{"backup": id, "error": err.Error()}); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return out, err
}

func (s *Service) restoreOrg(ctx context.Context, actor kluis.Actor, t backup.Target, identities []age.Identity, id string, slug string) (OrgRestored, error) {
	out := OrgRestored{Backup: id, Slug: slug}
	db := s.core.DB()
	m, err := ReadManifest(ctx, t, identities, id)
	if err != nil {
		return out, err
	}
	if v, err := db.SchemaVersion(ctx); err != nil {
		return out, err
	} else if v != m.Schema {
		return out, fmt.Errorf("%w (backup %d, this instance %d): restore the backup into a scratch folder and take what is needed from there", ErrSchemaDiffers, m.Schema, v)
	}
	held, ok := OrgInBackup(m, slug)
	if !ok {
		return out, ErrOrgNotInBackup
	}
	org := kluis.OrgID(held.Org)
	out.Org = org
	if err := s.checkOrgHere(ctx, org); err != nil {
		return out, err
	}
	rules, tables, err := s.runningRules(ctx)
	if err != nil {
		return out, err
	}
	data, done, err := s.dataHere(ctx, t, m)
	if err != nil {
		return out, fmt.Errorf("reading backup %s: %w", id, err)
	}
	defer done()
	scan, err := scanOrg(ctx, data, identities, m, org, slug, rules)
	if err != nil {
		return out, fmt.Errorf("reading backup %s: %w", id, err)
	}
	var erasedProjects map[string]bool
	if err := s.core.Read(ctx, func(tx *sqlstore.Tx) error {
		var err error
		_, erasedProjects, err = s.erased(ctx, tx, org)
		return err
	}); err != nil {
		return out, err
	}
	var chunks []backup.Chunk
	for _, c := range m.Chunks {
		if scan.ids["projects"][c.Project] && !erasedProjects[c.Project] {
			chunks = append(chunks, c)
		}
	}
	blobs := s.blobs()
	put, present, err := copyMissing(ctx, t, identities, chunks, blobs)
	out.Chunks, out.ChunksPresent = len(put), present
	if err != nil {
		s.forgetPut(ctx, org, put)
		return out, fmt.Errorf("copying the organisation's chunks: %w", err)
	}

	var gone []string
	copied := out.Chunks
	err = s.core.Write(ctx, sqlstore.OrgChain(org), func(tx *sqlstore.Tx) error {
		// The body may run again (a batch PostgreSQL aborted): it starts
		// from scratch each time.
		out.Removed, out.Loaded = map[string]int64{}, map[string]int64{}
		out.ErasedUsers, out.ErasedProjects, out.DroppedProjects = 0, 0, 0
		var late []backup.Chunk
		var err error
		gone, late, err = s.replaceOrg(ctx, tx, t, data, identities, m, org, rules, tables, scan, chunks, &out)
		put = append(put, late...)
		out.Chunks = copied + len(late)
		if err != nil {
			return err
		}
		details := map[string]any{
			"backup": id, "rows_removed": total(out.Removed), "rows_loaded": total(out.Loaded),
			"users": out.Loaded["users"] - int64(out.ErasedUsers), "projects": out.Loaded["projects"] - int64(out.ErasedProjects),
			"files": out.Loaded["project_files"], "versions": out.Loaded["project_versions"],
			"chunks_copied": out.Chunks, "erased_users": out.ErasedUsers, "erased_projects": out.ErasedProjects,
			"projects_removed": out.DroppedProjects, "sessions_ended": out.Removed["sessions"],
		}
		return tx.Append(ctx, sqlstore.OrgChain(org), actor, "org.restore", "org:"+string(org), "success", details)
	})
	if err != nil {
		s.forgetPut(ctx, org, put)
		return out, err
	}
	// Committed: the chunks of the projects that are gone go too (their
	// keys stay, so a restore of a newer backup can bring them back).
	for _, p := range gone {
		if err := blobs.DeleteProject(context.WithoutCancel(ctx), p); err != nil {
			s.o.Log.Warn("the chunks of a project an organisation's restore removed stay in the content store", "project", p, "err", err.Error())
		}
	}
	return out, nil
}

// dataHere returns a target in the local file system that holds the data
// stream of backup m: t itself when it is one (a file:// target, read in
// place), else a temporary copy, which done removes. The stream is read
// twice, once before anything changes and once in the transaction: the
// transaction, which holds up the organisation's writes (on SQLite every
// write), then never waits for a remote target, and both readings see the
// same bytes (still encrypted; decryption checks them each time).
func (s *Service) dataHere(ctx context.Context, t backup.Target, m backup.Manifest) (data backup.Target, done func(), err error) {
	if _, local := t.(interface{ Root() string }); local {
		return t, func() {}, nil
	}
	tmp := s.o.TmpDir
	if tmp == "" {
		tmp = os.TempDir()
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp(tmp, "org-restore-")
	if err != nil {
		return nil, nil, err
	}
	done = func() { os.RemoveAll(dir) }
	abs, err := filepath.Abs(dir)
	if err == nil {
		data, err = backup.OpenDir(abs, t.Location())
	}
	if err != nil {
		done()
		return nil, nil, err
	}
	rc, err := t.Open(ctx, m.Data.Name)
	if err != nil {
		done()
		return nil, nil, err
	}
	defer rc.Close()
	if err := data.Put(ctx, m.Data.Name, rc); err != nil {
		done()
		return nil, nil, err
	}
	return data, done, nil
}

// checkOrgHere makes sure the organisation is in this instance, under the
// id the backup knows it by.
func (s *Service) checkOrgHere(ctx context.Context, org kluis.OrgID) error {
	return s.core.Read(ctx, func(t *sqlstore.Tx) error {
		var n int
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM orgs WHERE id = ?`, org).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return ErrOrgGone
		}
		return nil
	})
}

// runningRules classifies every table of the running database, and returns
// them in foreign-key order.
func (s *Service) runningRules(ctx context.Context) (map[string]OrgTable, []string, error) {
	db := s.core.DB()
	tables, err := db.Tables(ctx)
	if err != nil {
		return nil, nil, err
	}
	rules := map[string]OrgTable{}
	for _, t := range tables {
		types, err := db.Columns(ctx, t)
		if err != nil {
			return nil, nil, err
		}
		cols := make([]string, 0, len(types))
		for c := range types {
			cols = append(cols, c)
		}
		if rules[t], err = ClassifyTable(t, cols); err != nil {
			return nil, nil, err
		}
	}
	return rules, tables, nil
}

// orgScan is what a first reading of the data stream found.
type orgScan struct {
	// ids holds, per table that other tables point into (projects, users,
	// api_tokens), the ids of the organisation's rows in the backup.
	ids map[string]map[string]bool
}

// parentTables are the tables whose rows other tables' rows belong to.
func parentTables(rules map[string]OrgTable) map[string]bool {
	out := map[string]bool{}
	for _, r := range rules {
		if r.Parent != "" {
			out[r.Parent] = true
		}
	}
	return out
}

// scanOrg reads the whole data stream once, before anything changes: it
// authenticates it, checks each table's rows against the manifest and its
// rule against the running database's, finds the organisation's row, and
// collects the ids of its rows that other rows point to.
func scanOrg(ctx context.Context, t backup.Target, identities []age.Identity, m backup.Manifest, org kluis.OrgID, slug string, rules map[string]OrgTable) (orgScan, error) {
	scan := orgScan{ids: map[string]map[string]bool{}}
	parents := parentTables(rules)
	for p := range parents {
		scan.ids[p] = map[string]bool{}
	}
	rc, err := backup.Decrypt(ctx, t, m.Data.Name, identities, m.Data)
	if err != nil {
		return scan, err
	}
	defer rc.Close()
	r := sqldump.NewReader(rc)
	counts := map[string]int64{}
	seen := map[string]bool{}
	found := false
	for {
		table, cols, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return scan, err
		}
		if table == witnessTable {
			continue
		}
		if seen[table] {
			return scan, fmt.Errorf("%w: the data stream holds table %s twice", backup.ErrDamaged, table)
		}
		seen[table] = true
		rule, err := ClassifyTable(table, cols)
		if err != nil {
			return scan, err
		}
		if running, ok := rules[table]; !ok || running != rule {
			return scan, fmt.Errorf("%w: table %s of the backup does not match this instance's", ErrSchemaDiffers, table)
		}
		idCol, orgCol, slugCol := index(cols, "id"), index(cols, "org_id"), index(cols, "slug")
		collect := parents[table] && idCol >= 0 && orgCol >= 0
		for {
			row, err := r.Row(len(cols))
			if err != nil {
				return scan, err
			}
			if row == nil {
				break
			}
			counts[table]++
			switch {
			case collect && text(row[orgCol]) == string(org):
				scan.ids[table][text(row[idCol])] = true
			case table == "orgs" && idCol >= 0 && slugCol >= 0 && text(row[idCol]) == string(org):
				if text(row[slugCol]) != slug {
					return scan, fmt.Errorf("%w: the manifest and the data stream disagree about the organisation %s", backup.ErrDamaged, slug)
				}
				found = true
			}
		}
	}
	for table, want := range m.Tables {
		if counts[table] != want {
			return scan, fmt.Errorf("%w: table %s has %d rows, the manifest says %d", backup.ErrDamaged, table, counts[table], want)
		}
	}
	for table, rule := range rules {
		if (rule.Treatment == Replaced || rule.Treatment == Merged) && !seen[table] {
			return scan, fmt.Errorf("%w: the data stream lacks table %s", backup.ErrDamaged, table)
		}
	}
	if !found {
		return scan, fmt.Errorf("%w: the data stream lacks the organisation %s", backup.ErrDamaged, slug)
	}
	return scan, nil
}

func index(cols []string, name string) int {
	for i, c := range cols {
		if c == name {
			return i
		}
	}
	return -1
}

// text is a dumped id as a string.
func text(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

// erased returns the people and projects whose keys are destroyed or about
// to be: with a key destruction of the organisation still pending (the
// deletion committed, the destruction is retried), or erased in the key
// store — read in that order, as a destruction ends by removing its
// pending record.
func (s *Service) erased(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID) (users, projects map[string]bool, err error) {
	users, projects = map[string]bool{}, map[string]bool{}
	rows, err := t.Query(ctx, `SELECT user_id, project_id FROM key_shreds WHERE org_id = ?`, org)
	if err != nil {
		return nil, nil, err
	}
	for rows.Next() {
		var u, p *string
		if err := rows.Scan(&u, &p); err != nil {
			rows.Close()
			return nil, nil, err
		}
		if u != nil {
			users[*u] = true
		}
		if p != nil {
			projects[*p] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	for _, k := range []struct {
		kind keys.Kind
		into map[string]bool
	}{{keys.KindUser, users}, {keys.KindProject, projects}} {
		gone, err := s.core.Keys().Erased(ctx, k.kind)
		if err != nil {
			return nil, nil, err
		}
		for id := range gone {
			k.into[id] = true
		}
	}
	return users, projects, nil
}

// copyMissing copies the chunks the content store lacks from t, each
// checked against its recorded checksum, and returns those it put and how
// many were there already.
func copyMissing(ctx context.Context, t backup.Target, identities []age.Identity, chunks []backup.Chunk, blobs content.Blobs) (put []backup.Chunk, present int, err error) {
	var missing []backup.Chunk
	for _, c := range chunks {
		ok, err := hasChunk(ctx, blobs, c)
		if err != nil {
			return nil, present, err
		}
		if ok {
			present++
		} else {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return nil, present, nil
	}
	put, err = restoreChunks(ctx, t, identities, missing, blobs)
	return put, present, err
}

func hasChunk(ctx context.Context, blobs content.Blobs, c backup.Chunk) (bool, error) {
	addr, err := chunkAddress(c)
	if err != nil {
		return false, err
	}
	return blobs.Has(ctx, c.Project, addr)
}

func chunkAddress(c backup.Chunk) (content.Address, error) {
	var a content.Address
	b, err := hex.DecodeString(c.Address)
	if err != nil || len(b) != len(a) {
		return a, fmt.Errorf("%w: a chunk address is malformed", backup.ErrDamaged)
	}
	copy(a[:], b)
	return a, nil
}

// forgetPut hands the chunks a failed restore put into the content store
// to the collector: recorded for the projects that exist here (nothing
// refers to them, so the collector deletes them after its grace period),
// deleted outright for projects that do not.
func (s *Service) forgetPut(ctx context.Context, org kluis.OrgID, put []backup.Chunk) {
	if len(put) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	var strays []string
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		strays = strays[:0]
		exists := map[string]bool{}
		rows, err := t.Query(ctx, `SELECT id FROM projects WHERE org_id = ?`, org)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			exists[id] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		strayed := map[string]bool{}
		for _, c := range put {
			if !exists[c.Project] {
				if !strayed[c.Project] {
					strayed[c.Project] = true
					strays = append(strays, c.Project)
				}
				continue
			}
			a, err := chunkAddress(c)
			if err != nil {
				return err
			}
			if _, err := t.Exec(ctx, `INSERT INTO content_chunks (project_id, address, size, touched_at) VALUES (?, ?, 0, ?)
				ON CONFLICT (project_id, address) DO NOTHING`, c.Project, a[:], sqlstore.Micros(t.Now())); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.o.Log.Warn("chunks a failed restore copied stay unrecorded in the content store", "err", err.Error())
		return
	}
	for _, p := range strays {
		if err := s.blobs().DeleteProject(ctx, p); err != nil {
			s.o.Log.Warn("chunks a failed restore copied stay in the content store", "project", p, "err", err.Error())
		}
	}
}

// replaceOrg is the restore's transaction body: it deletes the
// organisation's rows, loads the backup's, takes out what was erased since,
// and makes sure every chunk the restored rows use is in the content store.
// It returns the projects the organisation no longer has (whose chunks go
// once it has committed), and the chunks it had to copy itself.
func (s *Service) replaceOrg(ctx context.Context, tx *sqlstore.Tx, t, data backup.Target, identities []age.Identity, m backup.Manifest,
	org kluis.OrgID, rules map[string]OrgTable, tables []string, scan orgScan, chunks []backup.Chunk,
	out *OrgRestored) (gone []string, late []backup.Chunk, err error) {
	var here string
	if err := tx.QueryRow(ctx, `SELECT id FROM orgs WHERE id = ?`+tx.ForUpdate(), org).Scan(&here); errors.Is(err, sql.ErrNoRows) {
		return nil, nil, ErrOrgGone
	} else if err != nil {
		return nil, nil, err
	}
	var n int
	// A collection under way deletes chunks it found unused, which the
	// restored rows may use again.
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM content_collections WHERE until > ? AND project_id IN (SELECT id FROM projects WHERE org_id = ?)`,
		sqlstore.Micros(tx.Now()), org).Scan(&n); err != nil {
		return nil, nil, err
	}
	if n > 0 {
		return nil, nil, errCollecting
	}
	before, err := orgProjects(ctx, tx, org)
	if err != nil {
		return nil, nil, err
	}
	held, err := heldChunks(ctx, tx, before, scan.ids["projects"])
	if err != nil {
		return nil, nil, err
	}

	// The organisation's rows go, children first: those that belong to it
	// through another of its rows while those rows are still there, then
	// those that name it, each in reverse foreign-key order.
	for _, through := range []bool{true, false} {
		for i := len(tables) - 1; i >= 0; i-- {
			table, rule := tables[i], rules[tables[i]]
			if (rule.Treatment != Replaced && rule.Treatment != Ended) || (rule.Parent != "") != through {
				continue
			}
			where, args := rule.Where(org)
			res, err := tx.Exec(ctx, `DELETE FROM `+sqldump.Quote(table)+` WHERE `+where, args...)
			if err != nil {
				return nil, nil, fmt.Errorf("removing the organisation's rows of %s: %w", table, err)
			}
			if n, err := res.RowsAffected(); err == nil && n > 0 {
				out.Removed[table] = n
			}
		}
	}

	// The backup's rows of the organisation come in, in the stream's
	// (foreign-key) order.
	rc, err := backup.Decrypt(ctx, data, m.Data.Name, identities, m.Data)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	r := sqldump.NewReader(rc)
	for {
		table, cols, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		if table == witnessTable {
			continue
		}
		rule := rules[table]
		if rule.Treatment != Replaced && rule.Treatment != Merged {
			continue
		}
		col := index(cols, rule.Column)
		if col < 0 {
			return nil, nil, fmt.Errorf("%w: table %s has no column %s", backup.ErrDamaged, table, rule.Column)
		}
		keep := func(row []any) bool {
			v := text(row[col])
			if rule.Parent != "" {
				return scan.ids[rule.Parent][v]
			}
			return v == rule.Prefix+string(org)
		}
		if rule.Treatment == Merged {
			addr := index(cols, "address")
			if addr < 0 || rule.Column != "project_id" {
				return nil, nil, fmt.Errorf("%w: table %s cannot be merged", ErrNoTableRule, table)
			}
			member := keep
			keep = func(row []any) bool {
				return member(row) && !held[text(row[col])+"/"+text(row[addr])]
			}
		}
		n, err := tx.Load(ctx, r, table, cols, keep)
		if err != nil {
			return nil, nil, err
		}
		if n > 0 {
			out.Loaded[table] = n
		}
	}
	// The whole stream was read and authenticated: anything after its end
	// would have failed it.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, nil, err
	}

	// Erasures since the backup stand: those that committed before this
	// transaction began included.
	erasedUsers, erasedProjects, err := s.erased(ctx, tx, org)
	if err != nil {
		return nil, nil, err
	}
	users, erasedGone, err := dropErasedIn(ctx, tx, erasedUsers, erasedProjects, string(org))
	if err != nil {
		return nil, nil, err
	}
	out.ErasedUsers, out.ErasedProjects = users, len(erasedGone)

	after, err := orgProjects(ctx, tx, org)
	if err != nil {
		return nil, nil, err
	}
	for p := range before {
		if !after[p] {
			gone = append(gone, p)
			if _, err := tx.Exec(ctx, `DELETE FROM content_chunks WHERE project_id = ?`, p); err != nil {
				return nil, nil, err
			}
		}
	}
	sort.Strings(gone)
	out.DroppedProjects = len(gone)
	gone = append(gone, erasedGone...)

	// A collection that ran since the chunks were copied may have deleted
	// one the restored rows use again: it comes back now.
	for _, c := range chunks {
		if !after[c.Project] {
			continue
		}
		ok, err := hasChunk(ctx, s.blobs(), c)
		if err != nil {
			return gone, late, err
		}
		if !ok {
			if err := restoreChunk(ctx, t, identities, c, s.blobs()); err != nil {
				return gone, late, err
			}
			late = append(late, c)
		}
	}
	return gone, late, nil
}

// orgProjects returns the ids of the organisation's projects.
func orgProjects(ctx context.Context, tx *sqlstore.Tx, org kluis.OrgID) (map[string]bool, error) {
	rows, err := tx.Query(ctx, `SELECT id FROM projects WHERE org_id = ?`, org)
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
		out[id] = true
	}
	return out, rows.Err()
}

// heldChunks returns the content store's record of the chunks of the
// projects given (the organisation's now and in the backup), as
// "project/address" (the address's raw bytes).
func heldChunks(ctx context.Context, tx *sqlstore.Tx, projects ...map[string]bool) (map[string]bool, error) {
	out := map[string]bool{}
	done := map[string]bool{}
	for _, ps := range projects {
		for p := range ps {
			if done[p] {
				continue
			}
			done[p] = true
			if err := heldOf(ctx, tx, p, out); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func heldOf(ctx context.Context, tx *sqlstore.Tx, project string, into map[string]bool) error {
	rows, err := tx.Query(ctx, `SELECT address FROM content_chunks WHERE project_id = ?`, project)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var a []byte
		if err := rows.Scan(&a); err != nil {
			return err
		}
		into[project+"/"+string(a)] = true
	}
	return rows.Err()
}
