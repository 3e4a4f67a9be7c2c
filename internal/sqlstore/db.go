// Package sqlstore is kluis's storage and its enforcement point: every service
// method is one transaction that loads by organisation id, authorises with a
// pure rule of package kluis, changes, appends the audit event and commits
// (DESIGN §1). The same code runs on SQLite (embedded, one node) and
// PostgreSQL (scale-out); the differences live in a small dialect and in
// per-engine error translation (DESIGN §7).
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/kluis/kluis/internal/sqlmigrate"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Engine names.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// DB is an open database: one writer and a pool of readers. On SQLite the
// writer is a single connection whose transactions begin IMMEDIATE, so another
// process (the CLI) waits for the write lock instead of failing mid-way; on
// PostgreSQL both are the same pool.
type DB struct {
	Engine string
	writer *sql.DB
	reader *sql.DB
	// blobs carries the projects' sealed chunks on PostgreSQL (up to 4 MiB
	// a row): a pool of its own with few connections, since every
	// connection keeps buffers as large as the largest row it moved; the
	// main pool's many connections then never grow to chunk size. nil on
	// SQLite, whose chunks live in files.
	blobs *sql.DB
	// queries caches statements rewritten for the engine's placeholders;
	// readerStmts and writerStmts cache prepared statements, so the hot
	// paths do not parse SQL on every request.
	queries     sync.Map
	readerStmts sync.Map
	writerStmts sync.Map
}

// Open opens the database: PostgreSQL when dsn starts with postgres:// or
// postgresql://, otherwise SQLite in dataDir/kluis.db (dsn empty) or at the
// sqlite:// path given. It does not migrate.
func Open(ctx context.Context, dataDir, dsn string) (*DB, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(ctx, dsn)
	case dsn == "":
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data folder: %w", err)
		}
		return openSQLite(ctx, filepath.Join(dataDir, "kluis.db"))
	case strings.HasPrefix(dsn, "sqlite://"):
		return openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite://"))
	}
	return nil, errors.New("unsupported database: use a postgres:// DSN, or none for the embedded SQLite database")
}

func openSQLite(ctx context.Context, path string) (*DB, error) {
	// busy_timeout comes first so that the other settings wait for a lock
	// held by another process instead of failing. synchronous=FULL syncs
	// the WAL at every commit: a write answered 2xx survives a power cut
	// (with NORMAL the newest commits could be lost, and the witness would
	// then hold checkpoints beyond the chain). Group commit (groupcommit.go)
	// shares that sync among the requests of a batch.
	base := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_busy_timeout=15000&_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1"
	writer, err := sql.Open("sqlite", base+"&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	if err := writer.PingContext(ctx); err != nil {
		writer.Close()
		return nil, fmt.Errorf("open sqlite database: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		writer.Close()
		return nil, err
	}
	// Readers map the database file (256 MiB at most) and keep a larger
	// page cache each: a page read is then a memory access, not a pread
	// system call, and listing pages of a large organisation stays fast.
	reader, err := sql.Open("sqlite", base+"&_query_only=1&_pragma=mmap_size(268435456)&_pragma=cache_size(-16384)")
	if err != nil {
		writer.Close()
		return nil, err
	}
	n := max(4, 2*runtime.NumCPU())
	reader.SetMaxOpenConns(n)
	reader.SetMaxIdleConns(n)
	reader.SetConnMaxLifetime(0)
	return &DB{Engine: SQLite, writer: writer, reader: reader}, nil
}

func openPostgres(ctx context.Context, dsn string) (*DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres database: %w", redactDSNError(err))
	}
	db.SetMaxOpenConns(max(16, 8*runtime.NumCPU()))
	db.SetMaxIdleConns(max(16, 8*runtime.NumCPU()))
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres: %w", redactDSNError(err))
	}
	blobs, err := sql.Open("pgx", dsn)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres database: %w", redactDSNError(err))
	}
	blobs.SetMaxOpenConns(blobConns)
	blobs.SetMaxIdleConns(blobConns)
	blobs.SetConnMaxIdleTime(time.Minute)
	return &DB{Engine: Postgres, writer: db, reader: db, blobs: blobs}, nil
}

// redactDSNError keeps a connection error but never a password that a DSN
// might have carried.
func redactDSNError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	return err
}

// Close closes the pools.
func (db *DB) Close() error {
	for _, cache := range []*sync.Map{&db.readerStmts, &db.writerStmts} {
		cache.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
	}
	err := db.writer.Close()
	if db.reader != db.writer {
		err = errors.Join(err, db.reader.Close())
	}
	if db.blobs != nil {
		err = errors.Join(err, db.blobs.Close())
	}
	return err
}

// Ping checks that the database answers (readiness).
func (db *DB) Ping(ctx context.Context) error { return db.reader.PingContext(ctx) }

// q rewrites a query written with '?' placeholders for the engine. Queries
// are constants of this package; none holds a '?' inside a literal.
func (db *DB) Q(query string) string {
	if db.Engine != Postgres {
		return query
	}
	if v, ok := db.queries.Load(query); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	db.queries.Store(query, b.String())
	return b.String()
}

// stmt returns a prepared statement for query on the given pool, preparing
// it once. database/sql re-prepares it on each pooled connection as needed.
func (db *DB) stmt(ctx context.Context, writer bool, query string) (*sql.Stmt, error) {
	cache, pool := &db.readerStmts, db.reader
	if writer {
		cache, pool = &db.writerStmts, db.writer
	}
	if v, ok := cache.Load(query); ok {
		return v.(*sql.Stmt), nil
	}
	st, err := pool.PrepareContext(ctx, db.Q(query))
	if err != nil {
		return nil, err
	}
	if v, loaded := cache.LoadOrStore(query, st); loaded {
		st.Close()
		return v.(*sql.Stmt), nil
	}
	return st, nil
}

// readRow runs a one-row query on the reader pool with a cached statement.
func (db *DB) ReadRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := db.stmt(ctx, false, query)
	if err != nil {
		// Let Scan report the error: the plain path prepares and fails the same way.
		return db.reader.QueryRowContext(ctx, db.Q(query), args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// blobConns bounds the connections that carry chunks on PostgreSQL: what
// they keep in buffers is at most this many times a chunk's size.
const blobConns = 2

// BlobExec and BlobRow run a statement on the chunks' own pool
// (PostgreSQL), outside any transaction.
func (db *DB) BlobExec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if db.blobs == nil {
		return db.WriteExec(ctx, query, args...)
	}
	return db.blobs.ExecContext(ctx, db.Q(query), args...)
}

func (db *DB) BlobRow(ctx context.Context, query string, args ...any) *sql.Row {
	if db.blobs == nil {
		return db.ReadRow(ctx, query, args...)
	}
	return db.blobs.QueryRowContext(ctx, db.Q(query), args...)
}

// writeExec runs a statement outside a transaction on the writer.
func (db *DB) WriteExec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := db.stmt(ctx, true, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// forUpdate is the row-locking suffix: PostgreSQL locks the rows; SQLite
// needs none because its write transactions hold the database's one write lock.
func (db *DB) ForUpdate() string {
	if db.Engine == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// Engine error translation, by error code, never by message text.

func IsUniqueViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func IsForeignKeyViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}

//go:embed migrations
var migrations embed.FS

func (db *DB) migrator() (sqlmigrate.Runner, []sqlmigrate.Migration, error) {
	ms, err := sqlmigrate.Load(migrations, "migrations/"+db.Engine)
	r := sqlmigrate.Runner{DB: db.writer, Table: "schema_migrations", Postgres: db.Engine == Postgres, LockID: 7283541}
	return r, ms, err
}

// ErrNotMigrated is returned by CheckMigrated when the schema is older than
// this binary.
var ErrNotMigrated = errors.New("the database is not migrated")

// ErrSchemaNewer is returned when the database was migrated by a newer kluis.
var ErrSchemaNewer = sqlmigrate.ErrNewer

// Migrate applies the missing migrations, each in its own transaction. Two
// processes migrating at once wait for each other (SQLite's write lock, a
// PostgreSQL advisory lock).
func (db *DB) Migrate(ctx context.Context) (applied int, err error) {
	r, ms, err := db.migrator()
	if err != nil {
		return 0, err
	}
	if err := db.refusePlaintextUpgrade(ctx, r); err != nil {
		return 0, err
	}
	if applied, err = r.Apply(ctx, ms); err != nil {
		return applied, err
	}
	return applied, db.CheckMigrated(ctx)
}

// ErrPlaintextSchema refuses to upgrade a database of a pre-release kluis
// that stored personal data unencrypted.
var ErrPlaintextSchema = errors.New("this database was made by a pre-release kluis that stored personal data unencrypted; " +
	"migration 2 (encryption at rest) cannot convert it in place: export what you need and start with a new data folder " +
	"(docs/OPERATIONS.md, Upgrades); nothing was changed")

// refusePlaintextUpgrade stops migration 2, which rebuilds the tables that
// held plaintext, on a database whose users would be dropped by it.
func (db *DB) refusePlaintextUpgrade(ctx context.Context, r sqlmigrate.Runner) error {
	v, ok, err := r.Version(ctx)
	if err != nil || !ok || v != 1 {
		return err
	}
	var n int
	if err := db.writer.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return ErrPlaintextSchema
	}
	return nil
}

// CheckMigrated returns ErrNotMigrated when migrations are missing and
// ErrSchemaNewer when the database is ahead of this binary.
func (db *DB) CheckMigrated(ctx context.Context) error {
	r, ms, err := db.migrator()
	if err != nil {
		return err
	}
	have, ok, err := r.Version(ctx)
	switch want := ms[len(ms)-1].Version; {
	case err != nil:
		return err
	case !ok || have < want:
		return ErrNotMigrated
	case have > want:
		return ErrSchemaNewer
	}
	return nil
}

// Query runs a query on the reader pool (outside any transaction).
func (db *DB) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return db.reader.QueryContext(ctx, db.Q(query), args...)
}

// Snapshot begins a read-only transaction on the reader pool that sees one
// moment of the database (REPEATABLE READ on PostgreSQL; SQLite's readers
// see a snapshot anyway), for reads that must agree with each other.
func (db *DB) Snapshot(ctx context.Context) (*sql.Tx, error) {
	opts := &sql.TxOptions{ReadOnly: true}
	if db.Engine == Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	return db.reader.BeginTx(ctx, opts)
}
