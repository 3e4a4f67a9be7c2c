package keys

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kluis/kluis/internal/sqldump"
)

// dumpTables are the key store's tables a backup carries: the store's
// record of its root key, every wrapped key (destroyed ones as tombstones
// without key bytes), the audit witness of scale-out mode and the key events
// not yet drained into the audit chains.
var dumpTables = []string{"key_store", "keys", "audit_witness", "key_events"}

// Dump writes the key store's tables to w (package sqldump's format) from one
// consistent read. The keys stay wrapped by the root key: a dump without the
// root key opens nothing. Only backups call it.
func (s *Store) Dump(ctx context.Context, w *sqldump.Writer) error {
	tx, err := s.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: s.snapshotLevel()})
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	defer tx.Rollback()
	for _, t := range dumpTables {
		if _, err := w.Table(ctx, tx, t, `SELECT * FROM `+sqldump.Quote(t)); err != nil {
			return fmt.Errorf("keys: dumping %s: %w", t, err)
		}
	}
	return nil
}

func (s *Store) snapshotLevel() sql.IsolationLevel {
	if s.engine == Postgres {
		return sql.LevelRepeatableRead
	}
	return sql.LevelDefault
}

// ErrStoreNotEmpty means a key store to restore into already holds keys.
var ErrStoreNotEmpty = errors.New("keys: the key store to restore into is not empty")

// Restore loads a dump made by [Store.Dump] into a new, empty key store at
// dsn (as [OpenStore] takes it), migrated first. It refuses a store that
// already holds a root key record with [ErrStoreNotEmpty]. Open the restored
// store with [OpenStore] and the root key that the dump's key_store row
// records.
func Restore(ctx context.Context, dsn string, r *sqldump.Reader) error {
	s := &Store{}
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		err = s.openPostgres(ctx, dsn)
	case strings.HasPrefix(dsn, "sqlite://"):
		err = s.openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite://"))
	default:
		err = s.openSQLite(ctx, dsn)
	}
	if err != nil {
		return err
	}
	defer s.Close()
	if exists, err := s.tableExists(ctx, "key_store"); err != nil {
		return err
	} else if exists {
		var n int
		if err := s.reader.QueryRowContext(ctx, `SELECT COUNT(*) FROM key_store`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrStoreNotEmpty
		}
	}
	if err := s.migrate(ctx); err != nil {
		return err
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	loaded := map[string]bool{}
	for {
		table, cols, err := r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("keys: reading the key store dump: %w", err)
		}
		if !isDumpTable(table) || loaded[table] {
			return fmt.Errorf("keys: the key store dump holds an unexpected table %q", table)
		}
		loaded[table] = true
		if _, err := sqldump.LoadTable(ctx, tx, s.engine, r, table, cols, nil); err != nil {
			return fmt.Errorf("keys: %w", err)
		}
	}
	if !loaded["key_store"] || !loaded["keys"] {
		return errors.New("keys: the key store dump is incomplete")
	}
	if s.engine == Postgres {
		// The serial columns continue after the restored rows.
		for _, t := range []string{"audit_witness", "key_events"} {
			col := "id"
			if t == "key_events" {
				col = "seq"
			}
			if _, err := tx.ExecContext(ctx, fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%s', '%s'), COALESCE((SELECT MAX(%s) FROM %s), 0) + 1, false)`, t, col, col, t)); err != nil {
				return fmt.Errorf("keys: %w", err)
			}
		}
	}
	return tx.Commit()
}

func isDumpTable(t string) bool {
	for _, d := range dumpTables {
		if d == t {
			return true
		}
	}
	return false
}

// Erased returns the owners (user or project ids, by kind) whose every key
// version is destroyed: people and projects erased from the key store. A
// restore of an older backup leaves them erased.
func (s *Store) Erased(ctx context.Context, kind Kind) (map[string]bool, error) {
	rows, err := s.reader.QueryContext(ctx, s.q(`SELECT owner_id FROM keys WHERE kind = ?
		GROUP BY owner_id HAVING SUM(CASE WHEN state = 'destroyed' THEN 0 ELSE 1 END) = 0`), string(kind))
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
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

// HasLiveKey reports whether ref has a version that is not destroyed: a
// restore drill checks that every organisation's key came back.
func (s *Store) HasLiveKey(ctx context.Context, ref KeyRef) (bool, error) {
	var n int
	err := s.reader.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM keys WHERE kind = ? AND org_id = ? AND owner_id = ? AND state <> 'destroyed'`),
		string(ref.Kind), ref.Org, ref.Owner).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("keys: %w", err)
	}
	return n > 0, nil
}
