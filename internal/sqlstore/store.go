package sqlstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/password"
)

// Store is kluis's service layer on a database. Each exported method that
// changes state is one transaction with its audit event. Methods return
// *kluis.Error for everything a client may see; any other error is internal.
type Store struct {
	db      *DB
	now     func() time.Time
	hasher  *password.Hasher
	signer  *audit.Signer
	witness audit.WitnessLog
	keys    *keys.Store
	log     *slog.Logger

	publicURL     string
	mailFrom      string
	throttle      Throttle
	securityEmail string
	tkey          throttleKey
	// mailQueued is called after a transaction that queued mail commits, to
	// wake the mail worker. It may be nil.
	mailQueued func()
	// smsQueued is called after a transaction that queued a text message
	// commits, to wake the SMS worker. It may be nil.
	smsQueued func()
	// observe receives counters for metrics; it may be nil.
	observe Observer

	cpMu   sync.Mutex
	lastCP map[string]audit.Checkpoint // last witnessed checkpoint per chain

	// commits gathers concurrent writes into batches (group commit).
	commits groupCommit
}

// Observer receives events worth counting (metrics). Implementations must be
// fast and must not block.
type Observer interface {
	AuditAppended(chainKind string, n int)
	Login(realm kluis.Realm, outcome string)
	// Throttled counts a throttling event (R18, R26): "lock" and
	// "address_block" when one starts, "alarm", and refusals by kind.
	Throttled(kind string)
	// KeyUnwrapped counts a key of the kind of organisation org ("" for the
	// platform key) unwrapped by the key store (R28).
	KeyUnwrapped(org, kind string)
}

// Options configures a Store.
type Options struct {
	Now       func() time.Time // defaults to time.Now
	Hasher    *password.Hasher // required
	Signer    *audit.Signer    // required: signs audit checkpoints
	Witness   audit.WitnessLog // required: the checkpoint copy outside the database
	Keys      *keys.Store      // required: the key store that seals personal data
	Log       *slog.Logger     // for failures of work after a commit; defaults to discarding
	PublicURL string           // base of every link in mail
	MailFrom  string           // From address of outgoing mail
	// Throttle holds the brute-force protection's numbers; zero fields
	// take DefaultThrottle's.
	Throttle Throttle
	// SecurityEmail is the operator's security address: alarms and the
	// security digest go there (R26). Empty: not mailed.
	SecurityEmail string
}

// NewStore returns a Store on a migrated database.
func NewStore(db *DB, o Options) (*Store, error) {
	if o.Hasher == nil || o.Signer == nil || o.Witness == nil || o.Keys == nil {
		return nil, errors.New("sqlstore: hasher, signer, witness and key store are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.PublicURL == "" {
		o.PublicURL = "http://127.0.0.1:8080"
	}
	if o.MailFrom == "" {
		o.MailFrom = "kluis@localhost"
	}
	return &Store{
		db: db, now: o.Now, hasher: o.Hasher, signer: o.Signer, witness: o.Witness, keys: o.Keys, log: o.Log,
		publicURL: o.PublicURL, mailFrom: o.MailFrom, throttle: o.Throttle.withDefaults(), securityEmail: o.SecurityEmail,
	}, nil
}

// DB returns the store's database.
func (s *Store) DB() *DB { return s.db }

// Tx is one request's part of a write transaction (or a read transaction).
// Every timestamp written in it comes from one reading of the clock (DESIGN
// §2). Under group commit (groupcommit.go) the requests of a batch share one
// database transaction, each in a savepoint of its own, and the chain heads.
type Tx struct {
	tx     sharedTx
	db     *DB
	s      *Store
	now    time.Time
	events []string // chain kinds of appended events, counted after commit
	mailed bool
	texted bool       // an SMS was queued
	heads  *headCache // chain heads read (and locked) in this database transaction
	// throttled lists the locks, blocks and alarms started in this
	// transaction, counted after commit.
	throttled []string

	unprepared []string // queries to prepare after the transaction
	reader     bool     // a read transaction on the reader pool: no cached statements
}

// sharedTx is the database transaction under a Tx. In a batch it carries the
// work of several requests, so no request's context may interrupt one of its
// statements: SQLite rolls the whole transaction back when a statement is
// interrupted, and pgx may close the connection of a cancelled query. A
// statement of a shared transaction therefore runs under its request's
// context without the cancellation; a request already cancelled fails at its
// next statement, before the driver sees it (database/sql checks first), and
// its savepoint is rolled back.
type sharedTx struct {
	tx     *sql.Tx
	shared bool // the transaction carries other requests' work too
}

func (c sharedTx) ctx(ctx context.Context) context.Context {
	if !c.shared || ctx.Err() != nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// QueryRowContext makes a sharedTx a queryRower.
func (c sharedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return c.tx.QueryRowContext(c.ctx(ctx), query, args...)
}

func (c sharedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return c.tx.ExecContext(c.ctx(ctx), query, args...)
}

func (c sharedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return c.tx.QueryContext(c.ctx(ctx), query, args...)
}

func (c sharedTx) stmtExec(ctx context.Context, st *sql.Stmt, args ...any) (sql.Result, error) {
	ctx = c.ctx(ctx)
	return c.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
}

func (c sharedTx) stmtQueryRow(ctx context.Context, st *sql.Stmt, args ...any) *sql.Row {
	ctx = c.ctx(ctx)
	return c.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
}

func (c sharedTx) stmtQuery(ctx context.Context, st *sql.Stmt, args ...any) (*sql.Rows, error) {
	ctx = c.ctx(ctx)
	return c.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
}

// chainHead is a chain's head as a transaction sees it: seq and hash of the
// last event appended, and the seq that audit_heads holds (written once, before
// the commit).
type chainHead struct {
	seq    int64
	hash   audit.Hash
	stored int64
}

// headCache holds the chain heads of one database transaction: read (on
// PostgreSQL locked) once, advanced in memory by every append, and written to
// audit_heads once before the commit. A request's savepoint that rolls back
// restores the heads it started with.
type headCache struct {
	m map[string]chainHead
}

// save returns the heads as they are, for restore.
func (h *headCache) save() map[string]chainHead { return maps.Clone(h.m) }

// restore puts back the heads save returned: the heads a rolled-back
// savepoint read, created or advanced are forgotten (on PostgreSQL its row
// locks are released with it, so they are read and locked again).
func (h *headCache) restore(m map[string]chainHead) { h.m = m }

// stmt returns the writer's cached prepared statement for query, or nil when
// it has not been prepared yet. Preparing needs a connection of the writer
// pool, which on SQLite is the one this transaction holds, so new queries run
// unprepared now and are prepared once the transaction has ended.
func (t *Tx) stmt(query string) *sql.Stmt {
	if t.reader {
		return nil
	}
	if v, ok := t.db.writerStmts.Load(query); ok {
		return v.(*sql.Stmt)
	}
	t.unprepared = append(t.unprepared, query)
	return nil
}

func (t *Tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(query); st != nil {
		return t.tx.stmtExec(ctx, st, args...)
	}
	return t.tx.ExecContext(ctx, t.db.q(query), args...)
}

func (t *Tx) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(query); st != nil {
		return t.tx.stmtQueryRow(ctx, st, args...)
	}
	return t.tx.QueryRowContext(ctx, t.db.q(query), args...)
}

func (t *Tx) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(query); st != nil {
		return t.tx.stmtQuery(ctx, st, args...)
	}
	return t.tx.QueryContext(ctx, t.db.q(query), args...)
}

// prepareLater prepares the statements a finished transaction ran unprepared.
func (t *Tx) prepareLater(ctx context.Context) {
	for _, q := range t.unprepared {
		t.db.stmt(ctx, true, q) // a failure only means the next call runs unprepared again
	}
}

// afterCommit does what waits for the commit of the request's work: counts
// for the metrics, waking the mail and SMS workers, preparing the statements
// that ran unprepared. It runs only for work that committed.
func (t *Tx) afterCommit(ctx context.Context) {
	t.prepareLater(ctx)
	s := t.s
	if s.observe != nil {
		for _, kind := range t.events {
			s.observe.AuditAppended(kind, 1)
		}
		for _, kind := range t.throttled {
			s.observe.Throttled(kind)
		}
	}
	if t.mailed && s.mailQueued != nil {
		s.mailQueued()
	}
	if t.texted && s.smsQueued != nil {
		s.smsQueued()
	}
}

// denial is returned by a transaction body when a rights rule refused the
// actor. write rolls the body's work back and records the refusal in the
// chain instead, since nothing else changes, and answers forbidden.
type denial struct {
	chain, action, target string
	actor                 kluis.Actor
	answer                *kluis.Error
}

func (d *denial) Error() string { return "denied: " + d.action }

// deny returns the error a transaction body gives when the actor lacks the
// right. answer is what the client sees (forbidden, or not_found where even the
// existence of the object must not be confirmed).
func deny(chain string, actor kluis.Actor, action, target string, answer *kluis.Error) error {
	return &denial{chain: chain, actor: actor, action: action, target: target, answer: answer}
}

// write runs fn as one atomic unit of writing: its changes and its audit
// events commit together or not at all, and write returns only once they
// are committed (or known not to be). lockChain, when not empty, is the audit
// chain whose head is locked first: it serialises the organisation's writes,
// so rules such as "the last active manager stays" hold on PostgreSQL too. A
// denial is rolled back and recorded instead, and answered with its answer.
//
// Concurrent writes are group-committed (groupcommit.go, DESIGN §10): fn runs
// in a savepoint of a transaction shared with other requests. So fn must not
// call write itself (it would wait for the batch it runs in), and everything
// it does in the database goes through t.
func (s *Store) write(ctx context.Context, lockChain string, fn func(*Tx) error) error {
	return s.commits.write(ctx, s, lockChain, fn)
}

// writeAlone runs fn in a database transaction of its own: for writes that
// are not batched (on PostgreSQL, those that lock no chain head) and for the
// requests of a batch that PostgreSQL aborted with a deadlock.
func (s *Store) writeAlone(ctx context.Context, lockChain string, fn func(*Tx) error) error {
	sqlTx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	t := &Tx{tx: sharedTx{tx: sqlTx}, db: s.db, s: s, now: s.now().UTC().Truncate(time.Microsecond), heads: &headCache{}}
	err = s.runBody(ctx, t, lockChain, fn)
	if err == nil {
		err = t.writeHeads(ctx)
	}
	if err != nil {
		sqlTx.Rollback()
		t.prepareLater(ctx)
		var d *denial
		if errors.As(err, &d) {
			if rerr := s.recordRefusal(ctx, d.chain, d.actor, d.action, d.target, "denied", nil); rerr != nil {
				return rerr
			}
			return d.answer
		}
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	t.afterCommit(ctx)
	return nil
}

// runBody locks lockChain's head and runs fn. A panic in fn becomes an error
// of this request: it must not take down the goroutine that commits a batch
// for others, nor leave a transaction open.
func (s *Store) runBody(ctx context.Context, t *Tx, lockChain string, fn func(*Tx) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			stack := debug.Stack()
			s.log.Error("panic in a write transaction; its work is rolled back", "panic", fmt.Sprint(v), "stack", string(stack))
			err = fmt.Errorf("sqlstore: panic in a write transaction: %v", v)
		}
	}()
	if lockChain != "" {
		if _, _, err := t.lockHead(ctx, lockChain); err != nil {
			return err
		}
	}
	return fn(t)
}

// read runs fn in a transaction on the reader pool, for reads that need a
// consistent view of several rows; it never writes, takes no lock and is
// never batched.
func (s *Store) read(ctx context.Context, fn func(*Tx) error) error {
	sqlTx, err := s.db.reader.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer sqlTx.Rollback()
	return fn(&Tx{tx: sharedTx{tx: sqlTx}, db: s.db, s: s, now: s.now().UTC().Truncate(time.Microsecond), reader: true})
}

// recordRefusal appends one refused request (a rights denial, a failed login)
// to a chain, as a write of its own: nothing else changes. It locks the
// chain's head first, so on PostgreSQL it joins the chain's batch.
func (s *Store) recordRefusal(ctx context.Context, chain string, actor kluis.Actor, action, target, outcome string, details map[string]any) error {
	return s.write(ctx, chain, func(t *Tx) error {
		return t.appendEvent(ctx, chain, actor, action, target, outcome, details)
	})
}

// Chain ids (DESIGN §3).
func orgChain(org kluis.OrgID) string { return "org:" + string(org) }

func chainKind(chain string) string {
	if chain == audit.PlatformChain {
		return "platform"
	}
	return "org"
}

// lockHead reads a chain head, locking it on PostgreSQL, once per database
// transaction: later appends advance it in memory (writeHeads stores it). A
// missing head is created (a new organisation's chain starts in the
// transaction that creates the organisation).
func (t *Tx) lockHead(ctx context.Context, chain string) (int64, audit.Hash, error) {
	if h, ok := t.heads.m[chain]; ok {
		return h.seq, h.hash, nil
	}
	seq, hash, err := t.readHead(ctx, chain)
	if err == nil {
		if t.heads.m == nil {
			t.heads.m = map[string]chainHead{}
		}
		t.heads.m[chain] = chainHead{seq: seq, hash: hash, stored: seq}
	}
	return seq, hash, err
}

// writeHeads stores the heads that appends advanced, once per database
// transaction, in the order of their chain ids.
func (t *Tx) writeHeads(ctx context.Context) error {
	var chains []string
	for chain, h := range t.heads.m {
		if h.seq != h.stored {
			chains = append(chains, chain)
		}
	}
	slices.Sort(chains)
	for _, chain := range chains {
		h := t.heads.m[chain]
		if _, err := t.exec(ctx, `UPDATE audit_heads SET seq = ?, hash = ? WHERE chain = ?`, h.seq, h.hash[:], chain); err != nil {
			return fmt.Errorf("advance chain head: %w", err)
		}
		h.stored = h.seq
		t.heads.m[chain] = h
	}
	return nil
}

func (t *Tx) readHead(ctx context.Context, chain string) (int64, audit.Hash, error) {
	var seq int64
	var h []byte
	err := t.queryRow(ctx, `SELECT seq, hash FROM audit_heads WHERE chain = ?`+t.db.forUpdate(), chain).Scan(&seq, &h)
	if errors.Is(err, sql.ErrNoRows) {
		var zero audit.Hash
		if _, err := t.exec(ctx, `INSERT INTO audit_heads (chain, seq, hash) VALUES (?, 0, ?)`, chain, zero[:]); err != nil {
			return 0, zero, fmt.Errorf("create chain head: %w", err)
		}
		return 0, zero, nil
	}
	if err != nil {
		return 0, audit.Hash{}, fmt.Errorf("lock chain head: %w", err)
	}
	var hash audit.Hash
	if len(h) != len(hash) {
		return 0, hash, fmt.Errorf("chain head %s: bad hash length", chain)
	}
	copy(hash[:], h)
	return seq, hash, nil
}

// appendEvent appends one event to a chain in this transaction: the change
// and its record commit together or not at all (R23, R25). details must hold
// no personal values in the clear: a personal value goes in as a
// sealedDetail. The request's client address, if any, is recorded sealed.
func (t *Tx) appendEvent(ctx context.Context, chain string, actor kluis.Actor, action, target, outcome string, details map[string]any) error {
	seq, prev, err := t.lockHead(ctx, chain)
	if err != nil {
		return err
	}
	id := kluis.NewID(t.now)
	d := []byte("{}")
	if len(details) > 0 {
		if details, err = t.s.sealDetails(ctx, chain, id, details); err != nil {
			return err
		}
		if d, err = json.Marshal(details); err != nil {
			return err
		}
	}
	client, err := t.s.sealClient(ctx, chain, id, actor)
	if err != nil {
		return err
	}
	e := audit.Event{
		Chain: chain, Seq: seq + 1, ID: id, At: t.now,
		Actor: actor.AuditName(), Action: action, Target: target, Outcome: outcome,
		Details: d, Client: client,
	}
	e.Seal(prev)
	if _, err := t.exec(ctx, `INSERT INTO audit_events (chain, seq, id, at, actor, action, target, outcome, details, client, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Chain, e.Seq, e.ID, micros(e.At), e.Actor, e.Action, e.Target, e.Outcome, e.Details, e.Client, e.PrevHash[:], e.Hash[:]); err != nil {
		return fmt.Errorf("append audit event: %w", err)
	}
	h := t.heads.m[chain]
	h.seq, h.hash = e.Seq, e.Hash
	t.heads.m[chain] = h
	t.events = append(t.events, chainKind(chain))
	return nil
}

// Time is stored as Unix microseconds in UTC on both engines.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func nullMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromMicros(n.Int64)
}

// newToken returns a secret token (32 random bytes, unpadded base64url) and
// the SHA-256 under which it is stored and looked up (DESIGN §5).
func newToken() (token string, hash []byte) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("sqlstore: crypto/rand failed: " + err.Error())
	}
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, tokenHash(token)
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// validTokenShape reports whether a presented token can be one of ours, so
// that garbage is refused without a database lookup.
func validTokenShape(token string) bool {
	if len(token) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil
}

// SetHooks sets the mail worker's wake-up (called after a transaction that
// queued mail commits) and the metrics observer; either may be nil. They are
// set after construction because the worker is built on the store. Call it
// before serving requests.
func (s *Store) SetHooks(mailQueued func(), o Observer) {
	s.mailQueued, s.observe = mailQueued, o
}
