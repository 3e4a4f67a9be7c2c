package backups

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"filippo.io/age"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/backup"
	"github.com/kluis/kluis/internal/content"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sqldump"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/projects"
)

// ReadManifest opens backup id's manifest on t with identities.
func ReadManifest(ctx context.Context, t backup.Target, identities []age.Identity, id string) (backup.Manifest, error) {
	var m backup.Manifest
	if err := backup.CheckID(id); err != nil {
		return m, err
	}
	rc, err := backup.Decrypt(ctx, t, backup.ManifestName(id), identities, backup.Written{})
	if err != nil {
		return m, err
	}
	defer rc.Close()
	dec := json.NewDecoder(io.LimitReader(rc, 1<<30))
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("%w: the manifest of %s: %v", backup.ErrDamaged, id, err)
	}
	if m.Format != backup.Format || m.ID != id {
		return m, fmt.Errorf("%w: the manifest of %s is not a %s manifest of that backup", backup.ErrDamaged, id, backup.Format)
	}
	return m, nil
}

// NewestKeys returns the id of the newest key store object on t. A restore
// uses it with any data backup: keys are only ever added, retired or
// destroyed, so the newest key store opens every older backup's data —
// except what was erased since, which is the point.
func NewestKeys(ctx context.Context, t backup.Target) (string, error) {
	objs, err := t.List(ctx, "keys/")
	if err != nil {
		return "", err
	}
	var ids []string
	for _, o := range objs {
		if id, ok := backup.IDFromName(o.Name); ok {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return "", errors.New("the target holds no key store backup")
	}
	sort.Strings(ids)
	return ids[len(ids)-1], nil
}

// Into is where a whole-instance restore goes: an empty or missing data
// folder, and optionally an empty PostgreSQL database for the data (the
// key store is always DATA/keys/keys.db, the witness DATA/audit/witness.log).
// The chunks go to Blobs when it is set (the instance's content store is a
// bucket, KLUIS_CONTENT_STORE), else to DATA/content, or to the database
// with a DSN.
type Into struct {
	DataDir string
	DSN     string
	Blobs   content.Blobs
}

// Restored reports a restore.
type Restored struct {
	Manifest backup.Manifest
	KeysID   string
	// Tables counts the rows loaded per table (before people and projects
	// erased since the backup were taken out again).
	Tables map[string]int64
	Chunks int
	// ErasedUsers and ErasedProjects count the people and projects whose
	// keys were destroyed after the backup: they stay erased.
	ErasedUsers, ErasedProjects int
}

// RestoreInstance restores backup id from t into into, opening it with
// identities: the key store from the newest key backup on t (with the root
// key and the audit signing key), the data into the backup's schema and then
// migrated to this kluis's, the witness's checkpoints, and every chunk, each
// checked against the checksum the manifest records. People and projects
// whose keys were destroyed since stay erased. Sessions are not restored.
// The caller opens the restored instance afterwards and records the
// restore in its platform chain.
func RestoreInstance(ctx context.Context, t backup.Target, identities []age.Identity, id string, into Into) (Restored, error) {
	var out Restored
	m, err := ReadManifest(ctx, t, identities, id)
	if err != nil {
		return out, err
	}
	out.Manifest = m
	if err := emptyFolder(into.DataDir); err != nil {
		return out, err
	}
	if out.KeysID, err = NewestKeys(ctx, t); err != nil {
		return out, err
	}
	if out.KeysID < id {
		return out, fmt.Errorf("the newest key store backup (%s) is older than backup %s", out.KeysID, id)
	}
	keysDir := filepath.Join(into.DataDir, "keys")
	if err := os.MkdirAll(keysDir, 0o700); err != nil {
		return out, err
	}
	if err := restoreKeys(ctx, t, identities, out.KeysID, keysDir); err != nil {
		return out, fmt.Errorf("restoring the key store: %w", err)
	}
	db, err := sqlstore.Open(ctx, into.DataDir, into.DSN)
	if err != nil {
		return out, err
	}
	defer db.Close()
	if v, err := db.SchemaVersion(ctx); err != nil {
		return out, err
	} else if v != 0 {
		return out, errors.New("the database to restore into is not empty")
	}
	if err := db.MigrateTo(ctx, m.Schema); err != nil {
		return out, err
	}
	cps, tables, err := loadData(ctx, t, identities, m, db)
	if err != nil {
		return out, fmt.Errorf("restoring the data: %w", err)
	}
	out.Tables = tables
	if _, err := db.Migrate(ctx); err != nil {
		return out, err
	}
	w, err := audit.OpenWitness(filepath.Join(into.DataDir, "audit", "witness.log"))
	if err != nil {
		return out, err
	}
	for _, c := range cps {
		if err := w.Append(c); err != nil {
			w.Close()
			return out, err
		}
	}
	if err := w.Close(); err != nil {
		return out, err
	}
	blobs := into.Blobs
	switch {
	case blobs != nil: // the bucket the restored instance will use
	case db.Engine == sqlstore.Postgres:
		blobs = projects.DBBlobs(db)
	default:
		if blobs, err = content.OpenDir(filepath.Join(into.DataDir, "content")); err != nil {
			return out, err
		}
	}
	put, err := restoreChunks(ctx, t, identities, m.Chunks, blobs)
	out.Chunks = len(put)
	if err != nil {
		return out, err
	}
	root, err := keys.LoadRoot(filepath.Join(keysDir, "root"))
	if err != nil {
		return out, err
	}
	ks, err := keys.OpenStore(ctx, filepath.Join(keysDir, "keys.db"), root, nil, keys.Options{})
	if err != nil {
		return out, err
	}
	defer ks.Close()
	out.ErasedUsers, out.ErasedProjects, err = dropErased(ctx, db, ks, blobs, "")
	return out, err
}

// emptyFolder makes sure dir is missing or empty, and creates it.
func emptyFolder(dir string) error {
	if dir == "" {
		return errors.New("no folder to restore into")
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case len(entries) > 0:
		return fmt.Errorf("the folder %s is not empty: restore into an empty or missing folder", dir)
	}
	return os.MkdirAll(dir, 0o700)
}

// restoreKeys writes the key files and the key store of key backup id.
func restoreKeys(ctx context.Context, t backup.Target, identities []age.Identity, id, keysDir string) error {
	rc, err := backup.Decrypt(ctx, t, backup.KeysName(id), identities, backup.Written{})
	if err != nil {
		return err
	}
	defer rc.Close()
	r := sqldump.NewReader(rc)
	table, cols, err := r.Next()
	if err != nil || table != filesTable || len(cols) != 2 {
		return fmt.Errorf("%w: the key store backup %s does not start with its key files", backup.ErrDamaged, id)
	}
	for {
		row, err := r.Row(2)
		if err != nil {
			return err
		}
		if row == nil {
			break
		}
		name, _ := row[0].(string)
		data, _ := row[1].([]byte)
		if name != "root" && name != "audit-signing.key" {
			return fmt.Errorf("%w: the key store backup names an unexpected file", backup.ErrDamaged)
		}
		if err := os.WriteFile(filepath.Join(keysDir, name), data, 0o600); err != nil {
			return err
		}
	}
	if err := keys.Restore(ctx, filepath.Join(keysDir, "keys.db"), r); err != nil {
		return err
	}
	// The whole stream must have been read and authenticated.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return err
	}
	return nil
}

// loadData loads the data stream into db in one transaction and returns the
// witness's checkpoints and the rows loaded per table.
func loadData(ctx context.Context, t backup.Target, identities []age.Identity, m backup.Manifest, db *sqlstore.DB) ([]audit.Checkpoint, map[string]int64, error) {
	rc, err := backup.Decrypt(ctx, t, m.Data.Name, identities, m.Data)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	tx, err := db.BeginLoad(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback()
	// Migrations seed some rows (the platform chain's head, settings): the
	// backup's rows replace them.
	tables, err := db.Tables(ctx)
	if err != nil {
		return nil, nil, err
	}
	for i := len(tables) - 1; i >= 0; i-- {
		if !skipTables[tables[i]] {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+sqldump.Quote(tables[i])); err != nil {
				return nil, nil, err
			}
		}
	}
	r := sqldump.NewReader(rc)
	var cps []audit.Checkpoint
	counts := map[string]int64{}
	for {
		table, cols, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		if table == witnessTable {
			for {
				row, err := r.Row(len(cols))
				if err != nil {
					return nil, nil, err
				}
				if row == nil {
					break
				}
				c, err := checkpointOf(row)
				if err != nil {
					return nil, nil, err
				}
				cps = append(cps, c)
			}
			continue
		}
		if skipTables[table] || table == "schema_migrations" {
			return nil, nil, fmt.Errorf("%w: the data stream holds table %s, which backups leave out", backup.ErrDamaged, table)
		}
		n, err := sqldump.LoadTable(ctx, tx, db.Engine, r, table, cols, nil)
		if err != nil {
			return nil, nil, err
		}
		counts[table] = n
	}
	for table, want := range m.Tables {
		if counts[table] != want {
			return nil, nil, fmt.Errorf("%w: table %s has %d rows, the manifest says %d", backup.ErrDamaged, table, counts[table], want)
		}
	}
	// A backup taken while it ran records itself as running: the restored
	// record says what it is.
	if _, err := tx.ExecContext(ctx, db.Q(`UPDATE backups SET status = ?, finished_at = started_at WHERE id = ?`), "ok", m.ID); err != nil {
		return nil, nil, err
	}
	if _, err := tx.ExecContext(ctx, db.Q(`UPDATE backups SET status = ? WHERE status = ?`), "failed", "running"); err != nil {
		return nil, nil, err
	}
	if err := db.ResetSequences(ctx, tx); err != nil {
		return nil, nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, err
	}
	return cps, counts, nil
}

func checkpointOf(row []any) (audit.Checkpoint, error) {
	chain, ok1 := row[0].(string)
	seq, ok2 := row[1].(int64)
	hash, ok3 := row[2].([]byte)
	at, ok4 := row[3].(int64)
	sig, ok5 := row[4].([]byte)
	if !(ok1 && ok2 && ok3 && ok4 && ok5) || len(hash) != len(audit.Hash{}) {
		return audit.Checkpoint{}, fmt.Errorf("%w: a witness checkpoint is malformed", backup.ErrDamaged)
	}
	c := audit.Checkpoint{Chain: chain, Seq: seq, At: sqlstore.FromMicros(at), Signature: sig}
	copy(c.Hash[:], hash)
	return c, nil
}

// restoreChunks copies every chunk of the manifest into blobs, each checked
// against its recorded checksum; a few at a time. It returns the chunks it
// put, also when it stops at an error.
func restoreChunks(ctx context.Context, t backup.Target, identities []age.Identity, chunks []backup.Chunk, blobs content.Blobs) ([]backup.Chunk, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan backup.Chunk)
	var mu sync.Mutex
	var firstErr error
	var put []backup.Chunk
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				err := restoreChunk(ctx, t, identities, c, blobs)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				if err == nil {
					put = append(put, c)
				}
				mu.Unlock()
			}
		}()
	}
	for _, c := range chunks {
		select {
		case work <- c:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return put, firstErr
}

func restoreChunk(ctx context.Context, t backup.Target, identities []age.Identity, c backup.Chunk, blobs content.Blobs) error {
	addr, err := hex.DecodeString(c.Address)
	if err != nil || len(addr) != len(content.Address{}) {
		return fmt.Errorf("%w: a chunk address is malformed", backup.ErrDamaged)
	}
	rc, err := backup.Decrypt(ctx, t, c.Name, identities, c.Written)
	if err != nil {
		return err
	}
	defer rc.Close()
	sealed, err := io.ReadAll(io.LimitReader(rc, content.MaxBlobSize+1))
	if err != nil {
		return err
	}
	if len(sealed) > content.MaxBlobSize {
		return fmt.Errorf("%w: %s is larger than a chunk", backup.ErrDamaged, c.Name)
	}
	return blobs.Put(ctx, c.Project, content.Address(addr), sealed)
}

// dropErased deletes the people and projects whose keys the key store
// destroyed after the backup was taken (restricted to org when not
// empty): a restore never brings back what an erasure took.
func dropErased(ctx context.Context, db *sqlstore.DB, ks *keys.Store, blobs content.Blobs, org string) (users, projs int, err error) {
	erasedUsers, err := ks.Erased(ctx, keys.KindUser)
	if err != nil {
		return 0, 0, err
	}
	erasedProjects, err := ks.Erased(ctx, keys.KindProject)
	if err != nil {
		return 0, 0, err
	}
	tx, err := db.BeginLoad(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	users, dropProjects, err := dropErasedIn(ctx, loadTx{tx: tx, db: db}, erasedUsers, erasedProjects, org)
	if err != nil {
		return 0, 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, err
	}
	for _, p := range dropProjects {
		if err := blobs.DeleteProject(ctx, p); err != nil {
			return users, len(dropProjects), err
		}
	}
	return users, len(dropProjects), nil
}

// execQuerier runs statements written with '?' placeholders in a
// transaction: a *sqlstore.Tx of the write path, or a loadTx.
type execQuerier interface {
	Exec(ctx context.Context, query string, args ...any) (sql.Result, error)
	Query(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// loadTx is a transaction of a restore into an empty database, outside
// the write path.
type loadTx struct {
	tx *sql.Tx
	db *sqlstore.DB
}

func (l loadTx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return l.tx.ExecContext(ctx, l.db.Q(query), args...)
}

func (l loadTx) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return l.tx.QueryContext(ctx, l.db.Q(query), args...)
}

// dropErasedIn deletes, in x, the rows of the people in erasedUsers and
// of the projects in erasedProjects (of org only, when not empty), with
// their chunk records; everything else that belongs to them goes with them
// by foreign key. It returns how many people it deleted and the projects
// whose blobs are to be removed once x has committed.
func dropErasedIn(ctx context.Context, x execQuerier, erasedUsers, erasedProjects map[string]bool, org string) (users int, dropProjects []string, err error) {
	for _, q := range []struct {
		table  string
		erased map[string]bool
	}{{"users", erasedUsers}, {"projects", erasedProjects}} {
		if len(q.erased) == 0 {
			continue
		}
		query := `SELECT id FROM ` + q.table
		var args []any
		if org != "" {
			query += ` WHERE org_id = ?`
			args = append(args, org)
		}
		rows, err := x.Query(ctx, query, args...)
		if err != nil {
			return 0, nil, err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return 0, nil, err
			}
			if q.erased[id] {
				ids = append(ids, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, nil, err
		}
		for _, id := range ids {
			if q.table == "projects" {
				for _, child := range []string{"chunk_refs", "content_chunks"} {
					if _, err := x.Exec(ctx, `DELETE FROM `+child+` WHERE project_id = ?`, id); err != nil {
						return 0, nil, err
					}
				}
				dropProjects = append(dropProjects, id)
			} else {
				users++
			}
			if _, err := x.Exec(ctx, `DELETE FROM `+q.table+` WHERE id = ?`, id); err != nil {
				return 0, nil, err
			}
		}
	}
	return users, dropProjects, nil
}
