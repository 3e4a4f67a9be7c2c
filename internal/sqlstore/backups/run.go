package backups

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/backup"
	"github.com/kluis/kluis/internal/content"
	"github.com/kluis/kluis/internal/sqldump"
	"github.com/kluis/kluis/internal/sqlstore"
)

// skipTables are not part of a backup: sessions and sign-in ceremonies
// (everyone signs in again after a restore), work in progress (uploads,
// collections, job leases), the outgoing mail and SMS queues (a restore
// must not send old mail again), and the database's chunk blobs, which
// travel as chunk objects of their own. Crash reports neither: they are
// deleted 30 days after the crash (R38), and a backup would keep them for
// its retention.
var skipTables = map[string]bool{
	"sessions": true, "challenges": true, "passkey_ceremonies": true, "support_sessions": true,
	"content_uploads": true, "content_collections": true, "content_blobs": true,
	"job_leases": true, "mail_queue": true, "sms_queue": true,
	"crash_reports": true,
}

// Pseudo-tables of the data and key streams.
const (
	witnessTable = "_witness" // the audit witness's checkpoints
	filesTable   = "_files"   // the key files (root key, audit signing key)
)

// snapshot is what a run read in its one read transaction.
type snapshot struct {
	engine string
	schema int
	tables map[string]int64
	chunks []chunkRef
	orgs   []backup.OrgHolding
}

type chunkRef struct {
	project string
	address []byte
	size    int64 // the content's size; 0 when not known
}

// copyResult is one target's part of a run.
type copyResult struct {
	target, location, status, err string
	bytes, newChunks, reused      int64
}

// Run makes one backup now, to every target, and records it: a target that
// fails is tried again (Options.Attempts) and then recorded as failed while
// the others still get the backup. The backup's status is ok when every
// target has it, partial when some do, failed when none does (an error is
// returned then, and for partial). Audited as backup.run in the platform
// chain.
func (s *Service) Run(ctx context.Context, actor kluis.Actor) (kluis.Backup, error) {
	if len(s.o.Targets) == 0 || len(s.o.Recipients) == 0 {
		return kluis.Backup{}, errNoTargets
	}
	started := s.core.Now()
	id := backup.NewID(started)
	if err := s.core.Write(ctx, "", func(t *sqlstore.Tx) error {
		_, err := t.Exec(ctx, `INSERT INTO backups (id, started_at, status) VALUES (?, ?, 'running')`, id, sqlstore.Micros(started))
		return err
	}); err != nil {
		return kluis.Backup{}, err
	}
	b := kluis.Backup{ID: id, StartedAt: started, Kind: "full"}
	results, snap, runErr := s.run(ctx, id)
	ok := 0
	for _, r := range results {
		b.Size += r.bytes
		if r.reused > 0 {
			b.Kind = "incremental"
		}
		if r.status == "ok" {
			ok++
		}
		b.Copies = append(b.Copies, kluis.BackupCopy{Target: r.target, Location: r.location, Status: r.status, Error: r.err, Bytes: r.bytes})
	}
	switch {
	case runErr == nil && ok == len(s.o.Targets):
		b.Status = kluis.BackupOK
	case ok > 0:
		b.Status = kluis.BackupPartial
	default:
		b.Status = kluis.BackupFailed
	}
	outcome := "success"
	if b.Status != kluis.BackupOK {
		outcome = "failure"
	}
	err := s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		b.FinishedAt = t.Now()
		if _, err := t.Exec(ctx, `UPDATE backups SET finished_at = ?, kind = ?, status = ?, size = ? WHERE id = ?`,
			sqlstore.Micros(b.FinishedAt), b.Kind, b.Status, b.Size, id); err != nil {
			return err
		}
		for i, r := range results {
			if _, err := t.Exec(ctx, `INSERT INTO backup_copies (backup_id, position, target, location, status, error, bytes, chunks_new, chunks_reused)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, i, r.target, r.location, r.status, r.err, r.bytes, r.newChunks, r.reused); err != nil {
				return err
			}
		}
		if snap != nil && ok > 0 {
			for _, h := range snap.orgs {
				if _, err := t.Exec(ctx, `INSERT INTO backup_holdings (backup_id, org_id, users, projects, files, versions, chunks, audit_events)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, id, h.Org, h.Users, h.Projects, h.Files, h.Versions, h.Chunks, h.AuditEvents); err != nil {
					return err
				}
			}
		}
		details := map[string]any{"status": b.Status, "kind": b.Kind, "bytes": b.Size, "targets": len(results), "targets_ok": ok}
		if runErr != nil {
			details["error"] = runErr.Error()
		}
		return t.Append(ctx, audit.PlatformChain, actor, "backup.run", id, outcome, details)
	})
	if err != nil {
		return b, err
	}
	if runErr != nil {
		return b, fmt.Errorf("backup %s: %w", id, runErr)
	}
	if b.Status != kluis.BackupOK {
		return b, fmt.Errorf("backup %s reached %d of %d targets", id, ok, len(s.o.Targets))
	}
	return b, nil
}

// run writes the streams and copies them to every target.
func (s *Service) run(ctx context.Context, id string) ([]copyResult, *snapshot, error) {
	recipients := s.recipients()
	// The witness is read before the snapshot begins, so every checkpoint
	// it holds lies on events the snapshot has.
	cps, err := s.o.Witness.Checkpoints()
	if err != nil {
		return nil, nil, fmt.Errorf("reading the audit witness: %w", err)
	}
	dir := filepath.Join(s.o.TmpDir, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	keysPath, dataPath := filepath.Join(dir, "keys.age"), filepath.Join(dir, "data.age")
	keysW, err := backup.EncryptFile(keysPath, recipients, func(w io.Writer) error { return s.dumpKeys(ctx, w) })
	if err != nil {
		return nil, nil, fmt.Errorf("the key store stream: %w", err)
	}
	var snap *snapshot
	dataW, err := backup.EncryptFile(dataPath, recipients, func(w io.Writer) error {
		var err error
		snap, err = s.dumpData(ctx, w, cps)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("the data stream: %w", err)
	}
	results := make([]copyResult, len(s.o.Targets))
	for i, t := range s.o.Targets {
		r := &results[i]
		r.target, r.location = t.Name(), t.Location()
		var err error
		for attempt := 0; attempt < s.o.Attempts; attempt++ {
			if attempt > 0 {
				s.o.Log.Warn("backup target failed; trying again", "backup", id, "target", t.Name(), "attempt", attempt+1, "err", err.Error())
				select {
				case <-ctx.Done():
					return results, snap, ctx.Err()
				case <-time.After(s.o.Backoff << (attempt - 1)):
				}
			}
			*r = copyResult{target: t.Name(), location: t.Location()}
			if err = s.toTarget(ctx, t, id, snap, recipients, dataPath, dataW, keysPath, keysW, r); err == nil {
				break
			}
		}
		if err != nil {
			r.status, r.err = "failed", err.Error()
			s.o.Log.Error("backup target failed", "backup", id, "target", t.Name(), "err", err.Error())
			continue
		}
		r.status = "ok"
	}
	return results, snap, nil
}

// toTarget writes the backup to one target: the chunks it lacks, the data
// and key streams, and last the manifest — a backup is on a target once its
// manifest is.
func (s *Service) toTarget(ctx context.Context, t backup.Target, id string, snap *snapshot, recipients []age.Recipient,
	dataPath string, dataW backup.Written, keysPath string, keysW backup.Written, r *copyResult) error {
	have, err := t.List(ctx, "chunks/")
	if err != nil {
		return err
	}
	existing := make(map[string]backup.Object, len(have))
	for _, o := range have {
		if p, a, ok := backup.ParseChunkName(o.Name); ok {
			existing[p+"/"+a] = o
		}
	}
	m := backup.Manifest{
		Format: backup.Format, ID: id, CreatedAt: s.core.Now().UTC(), Engine: snap.engine, Schema: snap.schema,
		Tables: snap.tables, Orgs: snap.orgs, CheckpointPublicKey: base64.StdEncoding.EncodeToString(s.o.CheckpointKey),
	}
	// The manifest lists the chunks in the snapshot's order; those the
	// target lacks are uploaded a few at a time (upload.go).
	m.Chunks = make([]backup.Chunk, len(snap.chunks))
	var missing []int
	for i, c := range snap.chunks {
		addr := hex.EncodeToString(c.address)
		if o, ok := existing[c.project+"/"+addr]; ok {
			if sum, ok := backup.ChunkSum(o.Name); ok {
				m.Chunks[i] = backup.Chunk{Project: c.project, Address: addr, Written: backup.Written{Name: o.Name, SHA256: sum, Size: o.Size}}
				r.reused++
				continue
			}
		}
		missing = append(missing, i)
	}
	if err := s.uploadChunks(ctx, t, snap.chunks, missing, recipients, m.Chunks, r); err != nil {
		return err
	}
	for _, f := range []struct {
		path, name string
		w          *backup.Written
	}{{dataPath, backup.DataName(id), &m.Data}, {keysPath, backup.KeysName(id), &m.Keys}} {
		want := dataW
		if f.path == keysPath {
			want = keysW
		}
		file, err := os.Open(f.path)
		if err != nil {
			return err
		}
		w, err := backup.Copy(ctx, t, f.name, file, want)
		file.Close()
		if err != nil {
			return err
		}
		*f.w = w
		r.bytes += w.Size
	}
	mw, err := backup.Encrypt(ctx, t, backup.ManifestName(id), recipients, func(w io.Writer) error {
		return json.NewEncoder(w).Encode(m)
	})
	if err != nil {
		return err
	}
	r.bytes += mw.Size
	return nil
}

// blobs is the content store chunks are read from and restored into.
func (s *Service) blobs() content.Blobs { return s.o.Blobs }

// dumpKeys writes the key store stream: the key files, then the key store.
func (s *Service) dumpKeys(ctx context.Context, out io.Writer) error {
	w := sqldump.NewWriter(out)
	if err := w.Start(filesTable, []string{"name", "data"}); err != nil {
		return err
	}
	for _, name := range sortedKeys(s.o.KeyFiles) {
		b, err := os.ReadFile(s.o.KeyFiles[name])
		if err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		if err := w.Row([]any{name, b}); err != nil {
			return err
		}
	}
	if err := s.core.Keys().Dump(ctx, w); err != nil {
		return err
	}
	return w.Flush()
}

// dumpData writes the data stream from one read transaction: the witness's
// checkpoints, then every table but skipTables, in foreign-key order.
func (s *Service) dumpData(ctx context.Context, out io.Writer, cps []audit.Checkpoint) (*snapshot, error) {
	db := s.core.DB()
	tables, err := db.Tables(ctx)
	if err != nil {
		return nil, err
	}
	schema, err := db.SchemaVersion(ctx)
	if err != nil {
		return nil, err
	}
	snap := &snapshot{engine: db.Engine, schema: schema, tables: map[string]int64{}}
	w := sqldump.NewWriter(out)
	if err := w.Start(witnessTable, []string{"chain", "seq", "hash", "at", "signature"}); err != nil {
		return nil, err
	}
	for _, c := range cps {
		if err := w.Row([]any{c.Chain, c.Seq, c.Hash[:], sqlstore.Micros(c.At), c.Signature}); err != nil {
			return nil, err
		}
	}
	tx, err := db.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	for _, t := range tables {
		if skipTables[t] {
			continue
		}
		n, err := w.Table(ctx, tx, t, `SELECT * FROM `+sqldump.Quote(t))
		if err != nil {
			return nil, err
		}
		snap.tables[t] = n
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	// Only chunks that a file or version uses: the rest waits for the
	// collector and is not worth keeping.
	rows, err := tx.QueryContext(ctx, `SELECT c.project_id, c.address, c.size FROM content_chunks c
		WHERE EXISTS (SELECT 1 FROM chunk_refs r WHERE r.project_id = c.project_id AND r.address = c.address)
		ORDER BY c.project_id, c.address`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var c chunkRef
		if err := rows.Scan(&c.project, &c.address, &c.size); err != nil {
			rows.Close()
			return nil, err
		}
		snap.chunks = append(snap.chunks, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if snap.orgs, err = holdings(ctx, tx, db); err != nil {
		return nil, err
	}
	return snap, nil
}

// holdings counts what the snapshot holds per organisation (R31).
func holdings(ctx context.Context, tx *sql.Tx, db *sqlstore.DB) ([]backup.OrgHolding, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, slug FROM orgs ORDER BY slug`)
	if err != nil {
		return nil, err
	}
	var out []backup.OrgHolding
	for rows.Next() {
		var h backup.OrgHolding
		if err := rows.Scan(&h.Org, &h.Slug); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		h := &out[i]
		for _, q := range []struct {
			dst   *int64
			query string
			arg   string
		}{
			{&h.Users, `SELECT COUNT(*) FROM users WHERE org_id = ?`, h.Org},
			{&h.Projects, `SELECT COUNT(*) FROM projects WHERE org_id = ?`, h.Org},
			{&h.Files, `SELECT COUNT(*) FROM project_files f JOIN projects p ON p.id = f.project_id WHERE p.org_id = ?`, h.Org},
			{&h.Versions, `SELECT COUNT(*) FROM project_versions v JOIN projects p ON p.id = v.project_id WHERE p.org_id = ?`, h.Org},
			{&h.Chunks, `SELECT COUNT(*) FROM content_chunks c JOIN projects p ON p.id = c.project_id WHERE p.org_id = ?`, h.Org},
			{&h.AuditEvents, `SELECT COUNT(*) FROM audit_events WHERE chain = ?`, "org:" + h.Org},
		} {
			if err := tx.QueryRowContext(ctx, db.Q(q.query), q.arg).Scan(q.dst); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}
