// Package kluistest holds test fixtures shared by kluis's packages: real
// databases on both engines (a fresh SQLite file, a fresh PostgreSQL
// database), a store wired with the real leaf libraries, a movable clock and
// the development outbox. Nothing here mocks our own storage.
package kluistest

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/password"
	"github.com/kluis/kluis/internal/sms"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/areas"
	"github.com/kluis/kluis/internal/sqlstore/backups"
	"github.com/kluis/kluis/internal/sqlstore/throttle"
)

// Engines are the database engines every storage and API test runs on.
var Engines = []string{sqlstore.SQLite, sqlstore.Postgres}

// DefaultPostgres is where tests look for PostgreSQL when
// KLUIS_TEST_POSTGRES is unset.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// FastArgon2 are weak argon2id parameters that keep the bulk of the tests
// quick. Tests about hashing itself use password.DefaultParams.
var FastArgon2 = password.Params{Memory: 1024, Time: 1, Threads: 1}

// PostgresDSN creates a uniquely named PostgreSQL database, drops it when the
// test ends, and returns its DSN. Without KLUIS_TEST_POSTGRES and without a
// server answering on the default address the test is skipped; with
// KLUIS_TEST_POSTGRES set (as in CI) a missing server fails the test.
func PostgresDSN(tb testing.TB) string {
	tb.Helper()
	admin := os.Getenv("KLUIS_TEST_POSTGRES")
	required := admin != ""
	if admin == "" {
		admin = DefaultPostgres
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", admin)
	if err == nil {
		err = db.PingContext(ctx)
	}
	if err != nil {
		if db != nil {
			db.Close()
		}
		if required {
			tb.Fatalf("KLUIS_TEST_POSTGRES is set but PostgreSQL does not answer: %v", err)
		}
		tb.Skipf("skipping PostgreSQL: no server at %s and KLUIS_TEST_POSTGRES is unset", DefaultPostgres)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "kluis_test_" + hex.EncodeToString(b[:])
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		db.Close()
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
		}
		db.Close()
	})
	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("KLUIS_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// DSN returns the --db value for an engine: "" (embedded SQLite in the data
// folder) or a fresh PostgreSQL database.
func DSN(tb testing.TB, engine string) string {
	if engine == sqlstore.Postgres {
		return PostgresDSN(tb)
	}
	return ""
}

// OpenDB opens and migrates a fresh database of the engine in a temporary
// data folder, closed when the test ends.
func OpenDB(tb testing.TB, engine, dataDir string) *sqlstore.DB {
	tb.Helper()
	return openDSN(tb, dataDir, DSN(tb, engine))
}

func openDSN(tb testing.TB, dataDir, dsn string) *sqlstore.DB {
	tb.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, dataDir, dsn)
	if err != nil {
		tb.Fatalf("open database: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	if _, err := db.Migrate(ctx); err != nil {
		tb.Fatalf("migrate %s: %v", db.Engine, err)
	}
	return db
}

// Clock is a movable clock for expiry tests (DESIGN §2: move the clock,
// never sleep).
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock standing at the current time.
func NewClock() *Clock { return &Clock{now: time.Now().UTC()} }

// NewClockAt returns a clock standing at t.
func NewClockAt(t time.Time) *Clock { return &Clock{now: t} }

// SyncBuffer is a bytes.Buffer safe for a writing goroutine (a process's
// output, a logger) and a reading test.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Env is the store's areas on a real database with its data folder, clock
// and outbox. Its areas (Orgs, Users, SignIn, …) are the ones kluis serve
// builds (package areas), over the same kind of database.
type Env struct {
	Engine string
	Dir    string
	DSN    string // "" for SQLite in Dir
	DB     *sqlstore.DB
	*areas.Areas
	Clock    *Clock
	Signer   *audit.Signer
	Witness  *audit.Witness
	Root     *keys.Root
	KeysDSN  string // the key store: a SQLite file in Dir, or a PostgreSQL database of its own
	KeyStore *keys.Store
	Outbox   string
	hasher   *password.Hasher
	opts     EnvOptions
	worker   *mail.Worker
	seen     map[string]bool
	// SMSOutbox is the folder of the text messages the store sent.
	SMSOutbox string
	smsWorker *sms.Worker
	smsSeen   map[string]bool
}

// EnvOptions tunes NewEnv.
type EnvOptions struct {
	Argon2   password.Params // zero means FastArgon2
	Throttle throttle.Config // zero fields mean throttle.DefaultConfig's
	// SecurityEmail is the operator's security address (alarms, digest).
	SecurityEmail string
	// Observer receives the counts kluis serve turns into metrics.
	Observer sqlstore.Observer
	// MaxFileSize bounds a project's file; 0: kluis.DefaultMaxFileSize.
	MaxFileSize int64
	// KeyObserver counts the key store's unwraps (the metrics); nil
	// ignores them.
	KeyObserver keys.Observer
	// Backup configures the backup engine; its key files and scratch
	// folder are filled in with the env's own when left empty.
	Backup backups.Options
}

// NewEnv returns the store's areas on a fresh database of the engine.
func NewEnv(tb testing.TB, engine string, opts ...EnvOptions) *Env {
	tb.Helper()
	var o EnvOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Argon2 == (password.Params{}) {
		o.Argon2 = FastArgon2
	}
	dir := tb.TempDir()
	e := &Env{Engine: engine, Dir: dir, Clock: NewClock(), Outbox: filepath.Join(dir, "outbox"), seen: map[string]bool{}}
	e.DSN = DSN(tb, engine)
	e.DB = openDSN(tb, dir, e.DSN)
	var err error
	if e.Signer, err = audit.LoadOrCreateSigner(filepath.Join(dir, "keys", "audit-signing.key")); err != nil {
		tb.Fatal(err)
	}
	if e.Witness, err = audit.OpenWitness(filepath.Join(dir, "audit", "witness.log")); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Witness.Close() })
	hasher, err := password.NewHasher(o.Argon2, 0)
	if err != nil {
		tb.Fatal(err)
	}
	e.hasher, e.opts = hasher, o
	if e.Root, err = keys.LoadOrCreateRoot(filepath.Join(dir, "keys", "root")); err != nil {
		tb.Fatal(err)
	}
	e.KeysDSN = filepath.Join(dir, "keys", "keys.db")
	if engine == sqlstore.Postgres {
		e.KeysDSN = PostgresDSN(tb)
	}
	e.Areas, e.KeyStore = e.open(tb, keys.Options{Observer: o.KeyObserver})
	e.worker = mail.NewWorker(e.MailQueue, &mail.Outbox{Dir: e.Outbox}, nil, e.Clock.Now, nil)
	e.SMSOutbox, e.smsSeen = filepath.Join(dir, "sms"), map[string]bool{}
	e.smsWorker = sms.NewWorker(e.SMSQueue, &sms.Outbox{Dir: e.SMSOutbox}, nil, e.Clock.Now, nil)
	return e
}

// open builds the areas on the env's databases with a key store connection
// and key cache of its own, as a kluis process does.
func (e *Env) open(tb testing.TB, opts keys.Options) (*areas.Areas, *keys.Store) {
	tb.Helper()
	ks, err := keys.OpenStore(context.Background(), e.KeysDSN, e.Root, e.Clock.Now, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ks.Close() })
	core, err := sqlstore.New(e.DB, sqlstore.Options{
		Now: e.Clock.Now, Keys: ks, PublicURL: "http://kluis.test", MailFrom: "kluis@kluis.test", Observer: e.opts.Observer,
	})
	if err != nil {
		tb.Fatal(err)
	}
	blobs, err := areas.ContentStore(e.DB, e.Dir)
	if err != nil {
		tb.Fatal(err)
	}
	bo := e.opts.Backup
	if bo.KeyFiles == nil {
		bo.KeyFiles = map[string]string{"root": filepath.Join(e.Dir, "keys", "root"), "audit-signing.key": filepath.Join(e.Dir, "keys", "audit-signing.key")}
	}
	if bo.TmpDir == "" {
		bo.TmpDir = filepath.Join(e.Dir, "tmp", "backup")
	}
	a := areas.New(core, areas.Config{
		Hasher: e.hasher, Signer: e.Signer, Witness: e.Witness, Throttle: e.opts.Throttle, SecurityEmail: e.opts.SecurityEmail,
		Blobs: blobs, MaxFileSize: e.opts.MaxFileSize, Backup: bo,
	})
	if err := a.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return a, ks
}

// Services returns the areas as the HTTP server takes them.
func (e *Env) Services() kluis.Services { return e.Areas.Services() }

// SMS delivers the queued text messages to the SMS outbox and returns those
// that arrived since the last call, oldest first.
func (e *Env) SMS(tb testing.TB) []sms.OutboxMessage {
	tb.Helper()
	if _, err := e.smsWorker.DeliverDue(context.Background()); err != nil {
		tb.Fatalf("deliver SMS: %v", err)
	}
	all, err := sms.ReadOutbox(e.SMSOutbox)
	if err != nil {
		tb.Fatal(err)
	}
	var out []sms.OutboxMessage
	for _, m := range all {
		if !e.smsSeen[m.Name] {
			e.smsSeen[m.Name] = true
			out = append(out, m)
		}
	}
	return out
}

// SMSCode returns the code of a text message.
func SMSCode(tb testing.TB, m sms.OutboxMessage) string {
	tb.Helper()
	c := regexp.MustCompile(`\b(\d{6})\b`).FindStringSubmatch(m.Text)
	if c == nil {
		tb.Fatalf("no code in the text message %q", m.Text)
	}
	return c[1]
}

// Mail delivers the queued mail to the outbox and returns the messages that
// arrived since the last call, oldest first.
func (e *Env) Mail(tb testing.TB) []string {
	tb.Helper()
	if _, err := e.worker.DeliverDue(context.Background()); err != nil {
		tb.Fatalf("deliver mail: %v", err)
	}
	return NewMail(tb, e.Outbox, e.seen)
}

// OutboxMail is one message file of the development outbox.
type OutboxMail struct {
	Name string // the file name, NAME.eml
	Raw  string // the RFC 5322 message
}

// NewMail returns the messages in an outbox folder not in seen (which it
// updates), oldest first.
func NewMail(tb testing.TB, dir string, seen map[string]bool) []string {
	tb.Helper()
	var out []string
	for _, m := range ReadOutbox(tb, dir, seen) {
		out = append(out, m.Raw)
	}
	return out
}

// ReadOutbox is NewMail with the file names.
func ReadOutbox(tb testing.TB, dir string, seen map[string]bool) []OutboxMail {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		tb.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		if strings.HasSuffix(en.Name(), ".eml") && !strings.HasPrefix(en.Name(), ".") && !seen[en.Name()] {
			names = append(names, en.Name())
		}
	}
	sort.Strings(names)
	var out []OutboxMail
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			tb.Fatal(err)
		}
		seen[n] = true
		out = append(out, OutboxMail{Name: n, Raw: string(b)})
	}
	return out
}

var linkPattern = regexp.MustCompile(`https?://\S+/o/[a-z0-9-]+/[a-z-]+#[A-Za-z0-9_-]{43}`)

// Link returns the one invitation or reset link in a mail, where it stands
// whole on a line of its own (mail bodies are 7bit or 8bit text).
func Link(tb testing.TB, msg string) string {
	tb.Helper()
	m := linkPattern.FindAllString(msg, -1)
	if len(m) != 1 {
		tb.Fatalf("want one link in the mail, found %d", len(m))
	}
	return m[0]
}

// Token returns the token in a link's fragment.
func Token(link string) string {
	_, t, _ := strings.Cut(link, "#")
	return t
}

// LastToken delivers mail and returns the token of the newest link mailed.
func (e *Env) LastToken(tb testing.TB) string {
	tb.Helper()
	msgs := e.Mail(tb)
	if len(msgs) == 0 {
		tb.Fatal("no mail was sent")
	}
	return Token(Link(tb, msgs[len(msgs)-1]))
}

// MustExec runs SQL on the env's database through a connection of its own,
// the way an attacker with database access would tamper with rows. The query
// takes no parameters and must be valid on both engines.
func (e *Env) MustExec(tb testing.TB, query string) int64 {
	tb.Helper()
	return RawExec(tb, e.Engine, e.Dir, e.DSN, query)
}

// RawExec runs one parameterless statement on a database given as kluis is
// given it (data folder and DSN) and returns the rows it affected.
func RawExec(tb testing.TB, engine, dataDir, dsn, query string) int64 {
	tb.Helper()
	driver, source := "pgx", dsn
	if engine != sqlstore.Postgres {
		driver, source = "sqlite", "file:"+filepath.Join(dataDir, "kluis.db")+"?_busy_timeout=10000"
	}
	db, err := sql.Open(driver, source)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(query)
	if err != nil {
		tb.Fatalf("exec %q: %v", query, err)
	}
	n, _ := res.RowsAffected()
	return n
}

// OtherProcess returns the areas a second process (or node) builds on the
// env's databases, with a key store connection and key cache of its own.
func (e *Env) OtherProcess(tb testing.TB, opts keys.Options) (*areas.Areas, *keys.Store) {
	tb.Helper()
	return e.open(tb, opts)
}

// Query runs a read on the env's database through a connection of its own
// and returns every row's columns as bytes (NULL as nil).
func (e *Env) Query(tb testing.TB, query string) [][][]byte {
	tb.Helper()
	driver, source := "pgx", e.DSN
	if e.Engine != sqlstore.Postgres {
		driver, source = "sqlite", "file:"+filepath.Join(e.Dir, "kluis.db")+"?_busy_timeout=10000"
	}
	return QueryRows(tb, driver, source, query)
}

// QueryRows runs a read on any database (a driver name and its source) and
// returns every row's columns as bytes (NULL as nil).
func QueryRows(tb testing.TB, driver, source, query string) [][][]byte {
	tb.Helper()
	db, err := sql.Open(driver, source)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(query)
	if err != nil {
		tb.Fatalf("query %q: %v", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		tb.Fatal(err)
	}
	var out [][][]byte
	for rows.Next() {
		raw := make([]any, len(cols))
		for i := range raw {
			raw[i] = new(sql.RawBytes)
		}
		if err := rows.Scan(raw...); err != nil {
			tb.Fatal(err)
		}
		row := make([][]byte, len(cols))
		for i, r := range raw {
			if b := *r.(*sql.RawBytes); b != nil {
				row[i] = bytes.Clone(b)
			}
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// Name returns a unique name for test objects.
func Name(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%s", prefix, hex.EncodeToString(b[:]))
}

// Login is a test's shorthand for the password step of an organisation's
// sign-in: the session and the person signed in.
func Login(ctx context.Context, s kluis.SignInService, org kluis.OrgID, email, pw string) (kluis.Session, kluis.User, error) {
	return LoginFrom(ctx, s, org, kluis.Origin{}, email, pw)
}

// LoginFrom is Login from a request's origin.
func LoginFrom(ctx context.Context, s kluis.SignInService, org kluis.OrgID, from kluis.Origin, email, pw string) (kluis.Session, kluis.User, error) {
	sess, err := s.Login(ctx, kluis.OrgScope(org), from, email, pw)
	return sess, sess.User, err
}

// Authenticate is a test's shorthand for resolving an organisation
// session's token: the actor and the person.
func Authenticate(ctx context.Context, s kluis.SessionService, token string) (kluis.Actor, kluis.User, error) {
	return AuthenticateFrom(ctx, s, kluis.Origin{}, token)
}

// AuthenticateFrom is Authenticate from a request's origin: the actor
// carries it.
func AuthenticateFrom(ctx context.Context, s kluis.SessionService, from kluis.Origin, token string) (kluis.Actor, kluis.User, error) {
	id, err := s.Authenticate(ctx, kluis.RealmOrg, from, token)
	if err != nil {
		return kluis.Actor{}, kluis.User{}, err
	}
	u, err := id.User(ctx)
	if err != nil {
		return kluis.Actor{}, kluis.User{}, err
	}
	return id.Actor, u, nil
}

// Ready is the server's readiness check on the env's database.
func (e *Env) Ready(ctx context.Context) error { return e.DB.Ping(ctx) }
