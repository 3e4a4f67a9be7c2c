// Package sqlmigrate applies numbered SQL migrations embedded in a binary,
// for kluis's two databases (the data database and the key store). Files are
// named NNN_name.sql, one folder per engine; each migration runs in its own
// transaction and is recorded in a table of the caller's choosing, so two
// processes migrating at once wait for each other (SQLite's write lock, a
// PostgreSQL advisory lock) and apply each migration once.
package sqlmigrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Migration is one numbered SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Load reads the migrations in dir of fsys, in version order.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	var ms []Migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("bad migration file name %q", e.Name())
		}
		b, err := fs.ReadFile(fsys, dir+"/"+e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations in %s", dir)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// ErrNewer is returned when the database was migrated by a newer binary.
var ErrNewer = errors.New("the database was migrated by a newer kluis")

// Runner applies migrations to one database.
type Runner struct {
	DB       *sql.DB
	Table    string // the tracking table, a constant of the caller
	Postgres bool   // placeholders $n and an advisory lock, else SQLite
	LockID   int64  // the PostgreSQL advisory lock id
}

func (r Runner) ph(n int) string {
	if r.Postgres {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// Version returns the highest applied version; ok is false when the
// database was never migrated.
func (r Runner) Version(ctx context.Context) (v int, ok bool, err error) {
	var have sql.NullInt64
	if err := r.DB.QueryRowContext(ctx, `SELECT MAX(version) FROM `+r.Table).Scan(&have); err != nil {
		return 0, false, nil // no tracking table: never migrated
	}
	return int(have.Int64), have.Valid, nil
}

// Apply applies the missing migrations and returns how many it applied. It
// refuses, with ErrNewer, a database ahead of ms.
func (r Runner) Apply(ctx context.Context, ms []Migration) (int, error) {
	if _, err := r.DB.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+r.Table+` (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return 0, err
	}
	if v, ok, err := r.Version(ctx); err != nil {
		return 0, err
	} else if ok && v > ms[len(ms)-1].Version {
		return 0, ErrNewer
	}
	applied := 0
	for _, m := range ms {
		done, err := r.apply(ctx, m)
		if err != nil {
			return applied, fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if done {
			applied++
		}
	}
	return applied, nil
}

func (r Runner) apply(ctx context.Context, m Migration) (bool, error) {
	tx, err := r.DB.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	if r.Postgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(`+strconv.FormatInt(r.LockID, 10)+`)`); err != nil {
			return false, err
		}
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+r.Table+` WHERE version = `+r.ph(1), m.Version).Scan(&n); err != nil {
		return false, err
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+r.Table+` (version, applied_at) VALUES (`+r.ph(1)+`, `+r.ph(2)+`)`, m.Version, time.Now().UnixMicro()); err != nil {
		return false, err
	}
	return true, tx.Commit()
}
