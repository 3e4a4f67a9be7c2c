package keys

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver

	"github.com/kluis/kluis/internal/sqlmigrate"
)

// Cache limits. DESIGN §4: unwrapped keys are held for at most a minute, so
// a key destroyed by another process (the CLI, another node) is unusable
// everywhere within that time.
//
// DefaultCacheSize holds the keys of some ten thousand projects (each has a
// key and an address key) besides the organisations' and people's: a list
// walks every project's key, and a least-recently-used cache smaller than
// that working set misses on every key of a cyclic walk.
const (
	MaxCacheTTL      = time.Minute
	DefaultCacheTTL  = MaxCacheTTL
	DefaultCacheSize = 30000
)

// Options tunes [OpenStore]; the zero value is the default.
type Options struct {
	// CacheTTL is how long an unwrapped key (and the knowledge of which
	// version of a key is active) is used before the key store is asked
	// again: at most MaxCacheTTL, default DefaultCacheTTL.
	CacheTTL time.Duration
	// CacheSize bounds how many unwrapped keys are held (default
	// DefaultCacheSize); the least recently used go first.
	CacheSize int
	// Observer learns of key events and unwraps; nil ignores them.
	Observer Observer
	// ReloadRoot, if set, is called when the key store turns out to be
	// wrapped under a root key this Store does not hold, which happens
	// when another process rotated the root key (kluis keys rotate --root)
	// while this one runs. It typically re-reads the root key file. The
	// root it returns is used only if its fingerprint is the one the key
	// store records.
	ReloadRoot func() (*Root, error)
}

// Engine names, as reported by [Store.Engine].
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Store is the key store: wrapped keys in a database of their own, and a
// bounded, short-lived cache of unwrapped ones. It is the only place that
// ever holds unwrapped key bytes. A Store is safe for concurrent use, and
// several processes may share one key store database.
type Store struct {
	engine string
	writer *sql.DB // on SQLite one connection whose transactions BEGIN IMMEDIATE
	reader *sql.DB // never waits for a writer's lock

	now        func() time.Time
	obs        Observer
	reloadRoot func() (*Root, error)
	ttl        time.Duration

	rootMu  sync.RWMutex
	roots   map[int]*Root // by root generation: the current one and the one before
	rootGen int
	reload  sync.Mutex // one root reload at a time

	mu      sync.Mutex
	entries *lru[KeyVersion, *entry] // unwrapped keys, and tombstones of destroyed ones
	active  *lru[KeyRef, KeyVersion] // the version of a key that seals
	epoch   uint64                   // bumped by forget; see load
}

// OpenStore opens the key store at dsn, migrates it and checks it against
// root. dsn is a postgres:// or postgresql:// DSN (a database of its own, not
// the data database), or the path of a SQLite file, bare or as
// sqlite:///path/keys.db; a missing SQLite file is created with mode 0600 in
// a 0700 directory. now is the clock for timestamps and cache expiry (nil for
// time.Now).
//
// The first open records root's fingerprint. Opening a key store made with
// (or rotated to) another root key returns an error wrapping
// [ErrRootMismatch] that says so, and changes nothing: the check comes before
// any migration or write. A key store migrated by a newer kluis is refused.
func OpenStore(ctx context.Context, dsn string, root *Root, now func() time.Time, opts Options) (*Store, error) {
	if root == nil {
		return nil, errors.New("keys: OpenStore needs a root key")
	}
	if now == nil {
		now = time.Now
	}
	ttl := opts.CacheTTL
	switch {
	case ttl == 0:
		ttl = DefaultCacheTTL
	case ttl < 0 || ttl > MaxCacheTTL:
		return nil, fmt.Errorf("keys: cache TTL %v is outside (0, %v]", ttl, MaxCacheTTL)
	}
	size := opts.CacheSize
	switch {
	case size == 0:
		size = DefaultCacheSize
	case size < 0:
		return nil, fmt.Errorf("keys: negative cache size %d", size)
	}
	s := &Store{
		now: now, obs: opts.Observer, reloadRoot: opts.ReloadRoot, ttl: ttl,
		entries: newLRU[KeyVersion, *entry](size),
		active:  newLRU[KeyRef, KeyVersion](size),
	}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	var err error
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		err = s.openPostgres(ctx, dsn)
	case strings.HasPrefix(dsn, "sqlite://"):
		err = s.openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite://"))
	case dsn == "" || strings.Contains(dsn, "://"):
		err = errors.New("keys: the key store is a SQLite file path (or sqlite:///path) or a postgres:// DSN")
	default:
		err = s.openSQLite(ctx, dsn)
	}
	if err != nil {
		return nil, err
	}
	if err := s.start(ctx, root); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) openSQLite(ctx context.Context, path string) error {
	if path == "" {
		return errors.New("keys: empty key store path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("keys: creating key store directory: %w", err)
	}
	// Create the file ourselves so that it is never, even briefly, readable
	// by others; SQLite gives its -wal and -shm files the same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("keys: opening key store: %w", err)
	}
	f.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("keys: opening key store: %w", err)
	}
	// busy_timeout comes first (the driver applies it before the rest) so
	// that the other settings wait for another process's lock. secure_delete
	// overwrites freed content, destroyed keys included, with zeros.
	// synchronous=FULL: a key that data was sealed with must survive a power
	// cut even if the data's own commit does; key writes are rare.
	base := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_busy_timeout=15000&_pragma=secure_delete(ON)&_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1"
	s.engine = SQLite
	if s.writer, err = sql.Open("sqlite", base+"&_txlock=immediate"); err != nil {
		return fmt.Errorf("keys: opening key store: %w", err)
	}
	s.writer.SetMaxOpenConns(1)
	s.writer.SetMaxIdleConns(1)
	s.writer.SetConnMaxLifetime(0)
	if err := s.writer.PingContext(ctx); err != nil {
		s.writer.Close()
		return fmt.Errorf("keys: opening key store: %w", err)
	}
	if s.reader, err = sql.Open("sqlite", base+"&_query_only=1"); err != nil {
		s.writer.Close()
		return fmt.Errorf("keys: opening key store: %w", err)
	}
	s.reader.SetMaxOpenConns(4)
	s.reader.SetMaxIdleConns(4)
	return nil
}

func (s *Store) openPostgres(ctx context.Context, dsn string) error {
	s.engine = Postgres
	// Two pools: a writer transaction waiting for the key store's lock must
	// never hold the connection a reader (the unwrap of a parent key inside
	// that very transaction, say) needs.
	for _, p := range []struct {
		db *(*sql.DB)
		n  int
	}{{&s.writer, 4}, {&s.reader, 8}} {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			s.Close()
			return fmt.Errorf("keys: opening key store: %w", redactDSNError(err))
		}
		db.SetMaxOpenConns(p.n)
		db.SetMaxIdleConns(p.n)
		db.SetConnMaxIdleTime(5 * time.Minute)
		*p.db = db
		if err := db.PingContext(ctx); err != nil {
			s.Close()
			return fmt.Errorf("keys: connecting to the key store: %w", redactDSNError(err))
		}
	}
	return nil
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

// Close closes the key store's database connections. The cache goes with the
// Store.
func (s *Store) Close() error {
	var err error
	if s.writer != nil {
		err = s.writer.Close()
	}
	if s.reader != nil {
		err = errors.Join(err, s.reader.Close())
	}
	return err
}

// Engine returns SQLite or Postgres.
func (s *Store) Engine() string { return s.engine }

// q rewrites a query written with '?' placeholders for the engine. Queries
// are constants of this package; none holds a '?' inside a literal.
func (s *Store) q(query string) string {
	if s.engine != Postgres {
		return query
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
	return b.String()
}

// forUpdate is the row-locking suffix: PostgreSQL locks the rows; SQLite
// needs none because its write transactions hold the database's write lock.
func (s *Store) forUpdate() string {
	if s.engine == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// meta is the key_store row: which root key the store is wrapped under.
type meta struct {
	fingerprint string
	generation  int
	rotatedAt   int64
}

const selectMeta = `SELECT root_fingerprint, root_generation, root_rotated_at FROM key_store WHERE id = 1`

func (s *Store) readMeta(ctx context.Context) (meta, error) {
	var m meta
	err := s.reader.QueryRowContext(ctx, selectMeta).Scan(&m.fingerprint, &m.generation, &m.rotatedAt)
	return m, err
}

func rootMismatch(recorded string, given *Root) error {
	return fmt.Errorf("%w: the key store was made with (or last rotated to) the root key with fingerprint %s, "+
		"but the root key given has fingerprint %s. Start kluis with the root key file that belongs to this key store "+
		"(a wrong --data folder or KLUIS_ROOT_KEY_FILE, or a node without the secret?); nothing was changed, "+
		"and no new root key is made because it could not read anything already stored",
		ErrRootMismatch, recorded, given.Fingerprint())
}

// start checks root against the key store before anything is written, then
// migrates and records root's fingerprint if the store is new.
func (s *Store) start(ctx context.Context, root *Root) error {
	exists, err := s.tableExists(ctx, "key_store")
	if err != nil {
		return fmt.Errorf("keys: reading key store: %w", err)
	}
	if exists {
		m, err := s.readMeta(ctx)
		switch {
		case err == nil && !root.sameFingerprint(m.fingerprint):
			return rootMismatch(m.fingerprint, root)
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("keys: reading key store: %w", err)
		}
	}
	if err := s.migrate(ctx); err != nil {
		return err
	}
	now := s.now().UnixMicro()
	// Two processes creating the store at once: the first insert wins and
	// the other is checked against it below.
	if _, err := s.writer.ExecContext(ctx, s.q(`INSERT INTO key_store (id, root_fingerprint, root_generation, created_at, root_rotated_at)
		VALUES (1, ?, 1, ?, ?) ON CONFLICT (id) DO NOTHING`), root.Fingerprint(), now, now); err != nil {
		return fmt.Errorf("keys: recording the root key: %w", err)
	}
	m, err := s.readMeta(ctx)
	if err != nil {
		return fmt.Errorf("keys: reading key store: %w", err)
	}
	if !root.sameFingerprint(m.fingerprint) {
		return rootMismatch(m.fingerprint, root)
	}
	s.roots = map[int]*Root{m.generation: root}
	s.rootGen = m.generation
	return nil
}

func (s *Store) tableExists(ctx context.Context, name string) (bool, error) {
	query := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`
	if s.engine == Postgres {
		query = `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?`
	}
	var n int
	err := s.reader.QueryRowContext(ctx, s.q(query), name).Scan(&n)
	return n > 0, err
}

//go:embed migrations
var migrations embed.FS

// migrationLock is the PostgreSQL advisory lock id taken while migrating the
// key store (apart from the data database's).
const migrationLock = 7283542

// migrate applies the key store's missing migrations, each in a transaction
// of its own, and refuses a store migrated by a newer kluis.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := sqlmigrate.Load(migrations, "migrations/"+s.engine)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	r := sqlmigrate.Runner{DB: s.writer, Table: "key_store_migrations", Postgres: s.engine == Postgres, LockID: migrationLock}
	if _, err := r.Apply(ctx, ms); errors.Is(err, sqlmigrate.ErrNewer) {
		return errors.New("keys: the key store was migrated by a newer kluis")
	} else if err != nil {
		return fmt.Errorf("keys: migrating key store: %w", err)
	}
	return nil
}

// inTx runs fn in a write transaction that first reads (and on PostgreSQL
// locks) the key_store row, so that every change to the key store, on every
// node, is serialised, as SQLite's one write lock serialises it anyway. Key
// store writes are rare: new keys, rotations, destructions.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx, m meta) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	defer tx.Rollback()
	var m meta
	if err := tx.QueryRowContext(ctx, selectMeta+s.forUpdate()).Scan(&m.fingerprint, &m.generation, &m.rotatedAt); err != nil {
		return fmt.Errorf("keys: reading key store: %w", err)
	}
	if err := fn(tx, m); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	return nil
}

// rootFor returns the root key of generation gen, which wraps the rows that
// record it. A generation this process does not hold means another process
// rotated the root key: Options.ReloadRoot gets a chance to supply it.
// fingerprint, when known (the current generation, read from key_store), is
// checked too.
func (s *Store) rootFor(ctx context.Context, gen int, fingerprint string) (*Root, error) {
	s.rootMu.RLock()
	r := s.roots[gen]
	s.rootMu.RUnlock()
	if r != nil && (fingerprint == "" || r.sameFingerprint(fingerprint)) {
		return r, nil
	}
	return s.reloadRootFor(ctx, gen)
}

func (s *Store) reloadRootFor(ctx context.Context, gen int) (*Root, error) {
	s.reload.Lock()
	defer s.reload.Unlock()
	m, err := s.readMeta(ctx)
	if err != nil {
		return nil, fmt.Errorf("keys: reading key store: %w", err)
	}
	s.rootMu.RLock()
	r := s.roots[gen]
	s.rootMu.RUnlock()
	if r != nil && m.generation == gen && r.sameFingerprint(m.fingerprint) {
		return r, nil // another goroutine reloaded it meanwhile
	}
	if m.generation != gen || s.reloadRoot == nil {
		return nil, fmt.Errorf("%w: the key store is wrapped under root key generation %d (fingerprint %s), which this process does not hold; "+
			"was the root key rotated by another process? Restart with the new root key file", ErrRootMismatch, m.generation, m.fingerprint)
	}
	r, err = s.reloadRoot()
	if err != nil {
		return nil, fmt.Errorf("%w: the root key was rotated by another process and reloading it failed: %w", ErrRootMismatch, err)
	}
	if !r.sameFingerprint(m.fingerprint) {
		return nil, rootMismatch(m.fingerprint, r)
	}
	s.addRoot(gen, r)
	return r, nil
}

// addRoot makes r the root key of generation gen and forgets all but the
// generation before it, which readers that looked at rows before a rotation
// committed may still need.
func (s *Store) addRoot(gen int, r *Root) {
	s.rootMu.Lock()
	defer s.rootMu.Unlock()
	s.roots[gen] = r
	if gen > s.rootGen {
		s.rootGen = gen
	}
	for g := range s.roots {
		if g < s.rootGen-1 {
			delete(s.roots, g)
		}
	}
}
