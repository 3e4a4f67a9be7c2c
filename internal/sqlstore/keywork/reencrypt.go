package keywork

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Organisation key rotation (issue 3 item 4, DESIGN §4). keys.RotateOrgKey
// makes a new version of the organisation key and of every user and project
// key below it; new writes use them at once (other processes within their
// key cache TTL). The data sealed under the retired versions is then
// re-encrypted in the background, in small transactions, resumably (the
// key_reencryptions table). Audit rows keep their ciphertext: the chain
// hashes it, so the retired versions stay available to decrypt them.

// reencryptBatch is how many rows one transaction re-encrypts: small enough
// that the organisation's writes wait only milliseconds for it.
const reencryptBatch = 100

// sealedTable is a table with values sealed under an organisation's keys:
// each row's values are sealed under the key of the user its owner column
// names (the organisation's key when it is empty: mail to no user, or a
// table of the organisation's own, whose owner is the expression ”), for
// the field (organisation, table, field column, row id).
type sealedTable struct {
	name    string        // the table
	label   string        // the table named in the ciphertexts' associated data
	owner   string        // the column with the owning user's id
	columns []sealedField // the sealed columns
}

type sealedField struct {
	db    string // the column in the table
	field string // the column named in the ciphertexts' associated data
}

func same(cols ...string) []sealedField {
	out := make([]sealedField, len(cols))
	for i, c := range cols {
		out[i] = sealedField{c, c}
	}
	return out
}

// sealedTables are the tables with rows sealed under an organisation's
// keys, other than the audit rows, in the order a re-encryption pass visits
// them (its phases). A table that gains a sealed column belongs here, or
// rotation leaves it on the old key version.
var sealedTables = []sealedTable{
	{"users", "users", "id", same("email", "name", "phone")},
	{"mail_queue", "mail_queue", "user_id", same("envelope")},
	{"factors", "user_factors", "user_id", same("secret")},
	{"passkeys", "passkeys", "user_id", same("name")},
	{"sms_queue", "sms_queue", "user_id", same("envelope")},
	{"api_tokens", "api_tokens", "user_id", same("name")},
	{"email_changes", "email_changes", "user_id", []sealedField{{"new_email", "email"}}},
	{"sessions", "sessions", "user_id", same("device")},
	{"notices", "notices", "user_id", same("title", "body")},
	// Sealed under the organisation's own key: no owning user.
	{"user_groups", "user_groups", "''", same("name")},
	{"support_requests", "support_requests", "''", same("reason")},
	{"support_grants", "support_grants", "''", same("reason")},
	// A request's outcome is sealed under the organisation key: no owner.
	{"privacy_requests", "privacy_requests", "NULL", same("outcome")},
}

// phases are the names of sealedTables, in order.
var phases = func() []string {
	var out []string
	for _, t := range sealedTables {
		out = append(out, t.name)
	}
	return out
}()

func sealedTableNamed(name string) (sealedTable, bool) {
	for _, t := range sealedTables {
		if t.name == name {
			return t, true
		}
	}
	return sealedTable{}, false
}

// RotateOrgKey starts a new version of the organisation's keys and the
// background re-encryption of its data. Operators and the command line only.
// Errors: not_found, forbidden.
func (s *Service) RotateOrgKey(ctx context.Context, actor kluis.Actor, slug string) (int, error) {
	if !kluis.CanManageOrgs(actor) {
		return 0, s.core.Refuse(ctx, audit.PlatformChain, actor, "key.rotate", "")
	}
	org, err := s.core.FindOrgBySlug(ctx, slug)
	if err != nil {
		return 0, err
	}
	kv, err := s.core.Keys().RotateOrgKey(ctx, string(org.ID), actor.AuditName())
	s.core.DrainAfterKeyChange(ctx)
	if err != nil {
		return 0, fmt.Errorf("rotate the organisation key: %w", err)
	}
	now := sqlstore.Micros(s.core.Now())
	// Whatever a job before had done is moot: the pass starts over against
	// the versions active now.
	err = s.core.Write(ctx, sqlstore.OrgChain(org.ID), func(t *sqlstore.Tx) error {
		if _, err := t.Exec(ctx, `DELETE FROM key_reencryptions WHERE org_id = ?`, org.ID); err != nil {
			return err
		}
		_, err := t.Exec(ctx, `INSERT INTO key_reencryptions (org_id, key_version, started_at, pass_started_at, phase, after_id, done, resealed)
			VALUES (?, ?, ?, ?, ?, '', 0, 0)`, org.ID, kv.String(), now, now, phases[0])
		return err
	})
	return kv.Version, err
}

const reencryptionColumns = `r.org_id, o.slug, r.key_version, r.started_at, r.pass_started_at, r.phase, r.done, r.resealed, r.finished_at`

func (s *Service) scanReencryption(row interface{ Scan(...any) error }) (kluis.Reencryption, error) {
	var r kluis.Reencryption
	var started, pass int64
	var finished sql.NullInt64
	err := row.Scan(&r.Org, &r.Slug, &r.KeyVersion, &started, &pass, &r.Phase, &r.Done, &r.Resealed, &finished)
	if errors.Is(err, sql.ErrNoRows) {
		return r, kluis.ErrNotFound
	}
	r.StartedAt, r.PassStarted, r.FinishedAt = sqlstore.FromMicros(started), sqlstore.FromMicros(pass), sqlstore.NullMicros(finished)
	r.SettledAt = r.StartedAt.Add(s.core.Keys().CacheTTL())
	if r.Finished() {
		r.Phase = ""
	}
	return r, err
}

// Reencryptions lists the re-encryption jobs, finished or not, by slug.
func (s *Service) Reencryptions(ctx context.Context) ([]kluis.Reencryption, error) {
	rows, err := s.core.DB().Query(ctx, `SELECT `+reencryptionColumns+` FROM key_reencryptions r JOIN orgs o ON o.id = r.org_id ORDER BY o.slug`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kluis.Reencryption
	for rows.Next() {
		r, err := s.scanReencryption(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// errStaleCache stops a batch that sealed with a version older than the one
// the key store calls active: this process's cache has not caught up with a
// rotation made elsewhere yet. The batch is rolled back and tried again
// after the TTL.
var errStaleCache = errors.New("the key cache still holds the version before the rotation")

// Reencrypt works on every unfinished re-encryption job until it finishes
// or there is nothing to do before wait has passed (the settling time of a
// job), and returns the jobs' states. progress, when not nil, is called after
// every batch. Two processes may work at once: every batch is a transaction
// that holds the organisation's chain head, and work done twice is only
// slower.
func (s *Service) Reencrypt(ctx context.Context, progress func(kluis.Reencryption)) ([]kluis.Reencryption, error) {
	jobs, err := s.Reencryptions(ctx)
	if err != nil {
		return nil, err
	}
	var errs []error
	for i, j := range jobs {
		for !j.Finished() {
			if err := ctx.Err(); err != nil {
				return jobs, err
			}
			next, err := s.reencryptStep(ctx, j.Org)
			if errors.Is(err, errStaleCache) || errors.Is(err, errSettling) {
				break // the next round, after the caller's pause
			}
			if err != nil {
				// This organisation's job waits for the next round; the
				// others go on.
				errs = append(errs, fmt.Errorf("re-encrypt organisation %s: %w", j.Org, err))
				break
			}
			j = next
			if progress != nil {
				progress(j)
			}
			if j.Finished() {
				s.recordReencrypted(ctx, j)
			}
		}
		jobs[i] = j
	}
	return jobs, errors.Join(errs...)
}

// errSettling: the pass is complete but began before every process could
// have the new versions; the final pass waits for SettledAt.
var errSettling = errors.New("waiting for key caches to settle")

// reencryptStep re-encrypts one batch of an organisation's rows in one
// transaction and advances the job.
func (s *Service) reencryptStep(ctx context.Context, org kluis.OrgID) (kluis.Reencryption, error) {
	var job kluis.Reencryption
	settling := false
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		var err error
		job, err = s.scanReencryption(t.QueryRow(ctx, `SELECT `+reencryptionColumns+` FROM key_reencryptions r JOIN orgs o ON o.id = r.org_id WHERE r.org_id = ?`, org))
		if err != nil || job.Finished() {
			return err
		}
		var after string
		if err := t.QueryRow(ctx, `SELECT after_id FROM key_reencryptions WHERE org_id = ?`, org).Scan(&after); err != nil {
			return err
		}
		last, visited, resealed, err := s.reencryptRows(ctx, t, org, job.Phase, after)
		if err != nil {
			return err
		}
		job.Done += int64(visited)
		job.Resealed += int64(resealed)
		switch {
		case visited == reencryptBatch: // more in this table
		case job.Phase != phases[len(phases)-1]: // the next table
			for i, p := range phases {
				if p == job.Phase {
					job.Phase, last = phases[i+1], ""
					break
				}
			}
		case job.PassStarted.Before(job.SettledAt) && t.Now().Before(job.SettledAt):
			settling = true // this batch commits; the final pass waits
		case job.PassStarted.Before(job.SettledAt): // a pass that could miss a stale seal: once more
			job.Phase, last, job.Done, job.PassStarted = phases[0], "", 0, t.Now()
		default:
			job.FinishedAt = t.Now()
		}
		var finished sql.NullInt64
		if job.Finished() {
			finished = sql.NullInt64{Int64: sqlstore.Micros(job.FinishedAt), Valid: true}
		}
		_, err = t.Exec(ctx, `UPDATE key_reencryptions SET phase = ?, after_id = ?, done = ?, resealed = ?, pass_started_at = ?, finished_at = ? WHERE org_id = ?`,
			job.Phase, last, job.Done, job.Resealed, sqlstore.Micros(job.PassStarted), finished, org)
		if job.Finished() {
			job.Phase = ""
		}
		return err
	})
	if err == nil && settling {
		err = errSettling
	}
	return job, err
}

// sealedColumn is one sealed column of a row being re-encrypted.
type sealedColumn struct {
	name  string
	key   keys.KeyRef
	field keys.FieldRef
	c     []byte
}

// reencryptRows re-seals, under the active versions, the sealed columns of
// up to reencryptBatch rows of table after the id after, and returns the
// last id visited, how many rows were visited and how many re-sealed.
func (s *Service) reencryptRows(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, table, after string) (last string, visited, resealed int, err error) {
	type row struct {
		id   string
		cols []sealedColumn
	}
	var batch []row
	spec, ok := sealedTableNamed(table)
	if !ok {
		return "", 0, 0, fmt.Errorf("re-encryption: unknown table %q", table)
	}
	var cols []string
	for _, c := range spec.columns {
		cols = append(cols, c.db)
	}
	rows, err := t.Query(ctx, `SELECT id, `+spec.owner+`, `+strings.Join(cols, ", ")+` FROM `+spec.name+` WHERE org_id = ? AND id > ? ORDER BY id LIMIT ?`, org, after, reencryptBatch)
	if err != nil {
		return "", 0, 0, err
	}
	for rows.Next() {
		var r row
		var owner sql.NullString
		values := make([][]byte, len(cols))
		dst := []any{&r.id, &owner}
		for i := range values {
			dst = append(dst, &values[i])
		}
		if err := rows.Scan(dst...); err != nil {
			rows.Close()
			return "", 0, 0, err
		}
		k := ownerKey(org, kluis.UserID(owner.String))
		for i, c := range spec.columns {
			f := keys.FieldRef{Org: string(org), Table: spec.label, Column: c.field, Row: r.id}
			r.cols = append(r.cols, sealedColumn{c.db, k, f, values[i]})
		}
		batch = append(batch, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", 0, 0, err
	}
	active := map[keys.KeyRef]keys.KeyVersion{}
rows:
	for _, r := range batch {
		last = r.id
		changed := false
		for i, c := range r.cols {
			if c.c == nil {
				continue // not set (a session without a device name)
			}
			kv, ok := active[c.key]
			if !ok {
				kv, err = s.core.Keys().ActiveVersion(ctx, c.key)
				if errors.Is(err, keys.ErrKeyDestroyed) {
					continue rows // its owner is being erased
				}
				if err != nil {
					return "", 0, 0, err
				}
				active[c.key] = kv
			}
			if have, err := keys.ParseCiphertext(c.c); err == nil && have == kv {
				continue
			}
			p, err := s.core.Open(ctx, c.field, c.c)
			if errors.Is(err, keys.ErrDecrypt) || errors.Is(err, keys.ErrKeyDestroyed) {
				// Altered or moved (it opens nowhere), or its owner is being
				// erased: nothing to re-encrypt. Left as it is, logged, and
				// counted by keys status; the job goes on.
				s.core.Log().Error("re-encryption skipped an unreadable value", "table", table, "row", r.id, "column", c.name, "err", err.Error())
				continue rows
			}
			if err != nil {
				return "", 0, 0, err
			}
			n, err := s.core.Keys().Seal(ctx, c.key, c.field, p)
			if err != nil {
				return "", 0, 0, err
			}
			if got, _ := keys.ParseCiphertext(n); got != kv {
				return "", 0, 0, errStaleCache
			}
			r.cols[i].c, changed = n, true
		}
		if !changed {
			continue
		}
		set := make([]string, len(r.cols))
		args := make([]any, 0, len(r.cols)+2)
		for i, c := range r.cols {
			set[i] = c.name + " = ?"
			args = append(args, c.c)
		}
		_, err = t.Exec(ctx, `UPDATE `+spec.name+` SET `+strings.Join(set, ", ")+` WHERE org_id = ? AND id = ?`, append(args, org, r.id)...)
		if err != nil {
			return "", 0, 0, err
		}
		resealed++
	}
	return last, len(batch), resealed, nil
}

// recordReencrypted records a finished job in the platform chain, with the
// organisation key's other life-cycle events.
func (s *Service) recordReencrypted(ctx context.Context, j kluis.Reencryption) {
	err := s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		return t.Append(ctx, audit.PlatformChain, kluis.SystemActor, "key.reencrypted", "org:"+string(j.Org), "success",
			map[string]any{"org": string(j.Org), "version": j.KeyVersion, "rows": j.Resealed})
	})
	if err != nil {
		s.core.Log().Error("re-encryption finished but not recorded in the audit log", "org", string(j.Org), "err", err.Error())
	}
}

// RetiredUses scans every sealed value of every organisation (a full read:
// for kluis keys status, not for requests).
func (s *Service) RetiredUses(ctx context.Context) ([]kluis.RetiredUse, error) {
	orgs, err := s.orgs.FindOrgs(ctx, kluis.CLIActor)
	if err != nil {
		return nil, err
	}
	var out []kluis.RetiredUse
	for _, o := range orgs {
		states, err := s.core.Keys().Versions(ctx, string(o.ID))
		if err != nil {
			return nil, err
		}
		retired := func(c []byte) bool {
			kv, err := keys.ParseCiphertext(c)
			return err == nil && states[kv] == keys.StateRetired
		}
		u := kluis.RetiredUse{Org: o.ID, Slug: o.Slug}
		type scan struct {
			n     *int64
			query string
			arg   string
			audit bool
		}
		var scans []scan
		for _, t := range sealedTables {
			var cols []string
			for _, c := range t.columns {
				cols = append(cols, c.db)
			}
			scans = append(scans, scan{&u.Data, `SELECT ` + strings.Join(cols, ", ") + ` FROM ` + t.name + ` WHERE org_id = ?`, string(o.ID), false})
		}
		scans = append(scans, scan{&u.Audit, `SELECT client, details FROM audit_events WHERE chain = ?`, sqlstore.OrgChain(o.ID), true})
		for _, q := range scans {
			rows, err := s.core.DB().Query(ctx, q.query, q.arg)
			if err != nil {
				return nil, err
			}
			n, _ := rows.Columns()
			for rows.Next() {
				values := make([][]byte, len(n))
				dst := make([]any, len(n))
				for i := range values {
					dst[i] = &values[i]
				}
				if err := rows.Scan(dst...); err != nil {
					rows.Close()
					return nil, err
				}
				if q.audit { // the client, then the details: their sealed values
					values = append(values[:1], sqlstore.SealedDetails(values[1])...)
				}
				if slices.ContainsFunc(values, retired) {
					*q.n++
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, err
			}
		}
		out = append(out, u)
	}
	return out, nil
}

// ownerKey is the key a row of an organisation is sealed under: its owning
// user's key, or the organisation's for a row of no user (mail to no one of
// the organisation).
func ownerKey(org kluis.OrgID, user kluis.UserID) keys.KeyRef {
	if user != "" {
		return sqlstore.UserKey(org, user)
	}
	return keys.OrgKey(string(org))
}
