package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kluis/kluis/internal/sqldump"
	"github.com/kluis/kluis/internal/sqlmigrate"
)

// SchemaVersion is the highest migration applied to the database (0 when
// none was).
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	r, _, err := db.migrator()
	if err != nil {
		return 0, err
	}
	v, _, err := r.Version(ctx)
	return v, err
}

// MigrateTo applies the migrations up to and including version, and no
// further: a restore loads a backup into the schema it was taken with,
// then migrates the rest (Migrate). A version this binary does not know is
// refused.
func (db *DB) MigrateTo(ctx context.Context, version int) error {
	r, ms, err := db.migrator()
	if err != nil {
		return err
	}
	if version > ms[len(ms)-1].Version {
		return fmt.Errorf("%w (schema %d; this kluis knows up to %d)", ErrSchemaNewer, version, ms[len(ms)-1].Version)
	}
	var upTo []sqlmigrate.Migration
	for _, m := range ms {
		if m.Version <= version {
			upTo = append(upTo, m)
		}
	}
	_, err = r.Apply(ctx, upTo)
	return err
}

// Tables lists the data database's tables (without the migrations' record)
// in an order in which every table follows those its foreign keys name.
func (db *DB) Tables(ctx context.Context) ([]string, error) {
	all, err := sqldump.Tables(ctx, db.reader, db.Engine)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, t := range all {
		if t != "schema_migrations" {
			out = append(out, t)
		}
	}
	return out, nil
}

// BeginLoad begins a write transaction outside the write path, for a
// restore into a database nothing else uses yet.
func (db *DB) BeginLoad(ctx context.Context) (*sql.Tx, error) {
	return db.writer.BeginTx(ctx, nil)
}

// ResetSequences makes PostgreSQL's serial columns continue after the
// rows a restore loaded (SQLite needs nothing).
func (db *DB) ResetSequences(ctx context.Context, tx *sql.Tx) error {
	if db.Engine != Postgres {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND column_default LIKE 'nextval(%'`)
	if err != nil {
		return err
	}
	type col struct{ table, column string }
	var cols []col
	for rows.Next() {
		var c col
		if err := rows.Scan(&c.table, &c.column); err != nil {
			rows.Close()
			return err
		}
		cols = append(cols, c)
	}
	rows.Close()
	for _, c := range cols {
		q := fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%s', '%s'), COALESCE((SELECT MAX(%s) FROM %s), 0) + 1, false)`,
			c.table, c.column, sqldump.Quote(c.column), sqldump.Quote(c.table))
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// Load inserts the rows of r's current table (as r.Next returned it) into
// table in this transaction, as [sqldump.LoadTable] does; keep, when not
// nil, chooses the rows. A restore of one organisation into a running
// instance loads its rows through the write path with it, so that they
// commit together with their audit event.
func (t *Tx) Load(ctx context.Context, r *sqldump.Reader, table string, cols []string, keep func(row []any) bool) (int64, error) {
	return sqldump.LoadTable(t.tx.ctx(ctx), t.tx.tx, t.db.Engine, r, table, cols, keep)
}

// Columns returns a table's columns and their declared types
// ([sqldump.ColumnTypes]); a missing table has none.
func (db *DB) Columns(ctx context.Context, table string) (map[string]string, error) {
	return sqldump.ColumnTypes(ctx, db.reader, db.Engine, table)
}
