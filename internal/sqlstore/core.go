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
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/keys"
)

// Core is the shared core every area of the store works over (DESIGN §10):
// the database, the one write path that commits a change together with its
// audit event (Write, Deny), field sealing under the key store, and the
// clock. Areas (organisations, users, sign-in, second factors, …) are
// packages of their own below this one; each takes a *Core and opens no
// transaction of its own around Write. Methods return *kluis.Error for
// everything a client may see; any other error is internal.
type Core struct {
	db    *DB
	clock func() time.Time
	keys  *keys.Store
	log   *slog.Logger

	publicURL string
	mailFrom  string
	observe   Observer
	// mailQueued and smsQueued wake the mail and SMS workers after a
	// transaction that queued a message commits.
	mailQueued func()
	smsQueued  func()
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
}

type nopObserver struct{}

func (nopObserver) AuditAppended(string, int) {}
func (nopObserver) Login(kluis.Realm, string) {}
func (nopObserver) Throttled(string)          {}

// Options configures a Core. Everything is given here, at construction:
// nothing is bound later.
type Options struct {
	Now       func() time.Time // defaults to time.Now
	Keys      *keys.Store      // required: the key store that seals personal data
	Log       *slog.Logger     // for failures of work after a commit; defaults to discarding
	PublicURL string           // base of every link in mail
	MailFrom  string           // From address of outgoing mail
	// Observer receives counts for metrics; nil counts nothing.
	Observer Observer
	// MailQueued and SMSQueued are called after a transaction that queued
	// mail or a text message commits, to wake the workers; nil for none.
	MailQueued func()
	SMSQueued  func()
}

// New returns a Core on a migrated database.
func New(db *DB, o Options) (*Core, error) {
	if o.Keys == nil {
		return nil, errors.New("sqlstore: the key store is required")
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
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	nop := func() {}
	if o.MailQueued == nil {
		o.MailQueued = nop
	}
	if o.SMSQueued == nil {
		o.SMSQueued = nop
	}
	return &Core{
		db: db, clock: o.Now, keys: o.Keys, log: o.Log, publicURL: o.PublicURL, mailFrom: o.MailFrom,
		observe: o.Observer, mailQueued: o.MailQueued, smsQueued: o.SMSQueued,
	}, nil
}

// Now reads the store's clock (DESIGN §2: tests move it).
func (s *Core) Now() time.Time { return s.clock() }

// Keys is the key store that seals personal data.
func (s *Core) Keys() *keys.Store { return s.keys }

// Log is the logger for failures of work after a commit.
func (s *Core) Log() *slog.Logger { return s.log }

// Observe is where counts for metrics go.
func (s *Core) Observe() Observer { return s.observe }

// PublicURL is the base of every link in mail.
func (s *Core) PublicURL() string { return s.publicURL }

// DB returns the store's database.
func (s *Core) DB() *DB { return s.db }

// Tx is one request's part of a write transaction (or a read transaction).
// Every timestamp written in it comes from one reading of the clock (DESIGN
// §2). Under group commit (groupcommit.go) the requests of a batch share one
// database transaction, each in a savepoint of its own, and the chain heads.
type Tx struct {
	tx     sharedTx
	db     *DB
	s      *Core
	at     time.Time
	events []string // chain kinds of appended events, counted after commit
	mailed bool
	texted bool       // an SMS was queued
	heads  *headCache // chain heads read (and locked) in this database transaction
	// throttled lists the locks, blocks and alarms started in this
	// transaction, counted after commit.
	throttled []string

	unprepared []string // queries to prepare after the transaction
	reader     bool     // a read transaction on the reader pool: the reader pool's statements
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
// The cache gets a copy: a later restore to the same saved heads must find
// them as they were saved.
func (h *headCache) restore(m map[string]chainHead) { h.m = maps.Clone(m) }

// stmt returns the writer's cached prepared statement for query, or nil when
// it has not been prepared yet. Preparing needs a connection of the writer
// pool, which on SQLite is the one this transaction holds, so new queries run
// unprepared now and are prepared once the transaction has ended.
func (t *Tx) stmt(query string) *sql.Stmt {
	cache := &t.db.writerStmts
	if t.reader {
		cache = &t.db.readerStmts
	}
	if v, ok := cache.Load(query); ok {
		return v.(*sql.Stmt)
	}
	t.unprepared = append(t.unprepared, query)
	return nil
}

func (t *Tx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(query); st != nil {
		return t.tx.stmtExec(ctx, st, args...)
	}
	return t.tx.ExecContext(ctx, t.db.Q(query), args...)
}

func (t *Tx) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(query); st != nil {
		return t.tx.stmtQueryRow(ctx, st, args...)
	}
	return t.tx.QueryRowContext(ctx, t.db.Q(query), args...)
}

func (t *Tx) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(query); st != nil {
		return t.tx.stmtQuery(ctx, st, args...)
	}
	return t.tx.QueryContext(ctx, t.db.Q(query), args...)
}

// prepareLater prepares the statements a finished transaction ran unprepared.
func (t *Tx) prepareLater(ctx context.Context) {
	for _, q := range t.unprepared {
		t.db.stmt(ctx, !t.reader, q) // a failure only means the next call runs unprepared again
	}
}

// afterCommit does what waits for the commit of the request's work: counts
// for the metrics, waking the mail and SMS workers, preparing the statements
// that ran unprepared. It runs only for work that committed.
func (t *Tx) afterCommit(ctx context.Context) {
	t.prepareLater(ctx)
	s := t.s
	for _, kind := range t.events {
		s.observe.AuditAppended(kind, 1)
	}
	for _, kind := range t.throttled {
		s.observe.Throttled(kind)
	}
	if t.mailed {
		s.mailQueued()
	}
	if t.texted {
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
	details               map[string]any
}

func (d *denial) Error() string { return "denied: " + d.action }

// Deny returns the error a transaction body gives when the actor lacks the
// right. answer is what the client sees (forbidden, or not_found where even the
// existence of the object must not be confirmed).
func Deny(chain string, actor kluis.Actor, action, target string, answer *kluis.Error) error {
	return &denial{chain: chain, actor: actor, action: action, target: target, answer: answer}
}

// DenyAccess is Deny for the rights engine (R6): recorded as access.denied
// on target, with the action that was attempted, such as "file.put".
func DenyAccess(chain string, actor kluis.Actor, target, attempted string, answer *kluis.Error) error {
	return &denial{chain: chain, actor: actor, action: "access.denied", target: target, answer: answer,
		details: map[string]any{"action": attempted}}
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
func (s *Core) Write(ctx context.Context, lockChain string, fn func(*Tx) error) error {
	return s.commits.write(ctx, s, lockChain, fn)
}

// writeAlone runs fn in a database transaction of its own: for writes that
// are not batched (on PostgreSQL, those that lock no chain head) and for the
// requests of a batch that PostgreSQL aborted with a deadlock.
func (s *Core) writeAlone(ctx context.Context, lockChain string, fn func(*Tx) error) error {
	sqlTx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	t := &Tx{tx: sharedTx{tx: sqlTx}, db: s.db, s: s, at: s.Now().UTC().Truncate(time.Microsecond), heads: &headCache{}}
	err = s.runBody(ctx, t, lockChain, fn)
	if err == nil {
		err = t.writeHeads(ctx)
	}
	if err != nil {
		sqlTx.Rollback()
		t.prepareLater(ctx)
		var d *denial
		if errors.As(err, &d) {
			if rerr := s.RecordRefusal(ctx, d.chain, d.actor, d.action, d.target, "denied", d.details); rerr != nil {
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
func (s *Core) runBody(ctx context.Context, t *Tx, lockChain string, fn func(*Tx) error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			stack := debug.Stack()
			s.log.Error("panic in a write transaction; its work is rolled back", "panic", kluis.ScrubCrash(fmt.Sprint(v)), "stack", kluis.ScrubCrash(string(stack)))
			err = fmt.Errorf("sqlstore: panic in a write transaction: %s", kluis.ScrubCrash(fmt.Sprint(v)))
		}
	}()
	if lockChain != "" {
		if _, _, err := t.lockHead(ctx, lockChain); err != nil {
			return err
		}
	}
	return fn(t)
}

// Read runs fn in a transaction on the reader pool, for reads that need a
// consistent view of several rows; it never writes, takes no lock and is
// never batched. A denial fn returns is recorded in a write of its own and
// answered with its answer, as in Write.
func (s *Core) Read(ctx context.Context, fn func(*Tx) error) error {
	sqlTx, err := s.db.reader.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	t := &Tx{tx: sharedTx{tx: sqlTx}, db: s.db, s: s, at: s.Now().UTC().Truncate(time.Microsecond), reader: true}
	err = fn(t)
	sqlTx.Rollback()
	t.prepareLater(ctx)
	var d *denial
	if errors.As(err, &d) {
		if rerr := s.RecordRefusal(context.WithoutCancel(ctx), d.chain, d.actor, d.action, d.target, "denied", d.details); rerr != nil {
			return rerr
		}
		return d.answer
	}
	return err
}

// recordRefusal appends one refused request (a rights denial, a failed login)
// to a chain, as a write of its own: nothing else changes. It locks the
// chain's head first, so on PostgreSQL it joins the chain's batch.
func (s *Core) RecordRefusal(ctx context.Context, chain string, actor kluis.Actor, action, target, outcome string, details map[string]any) error {
	return s.Write(ctx, chain, func(t *Tx) error {
		return t.Append(ctx, chain, actor, action, target, outcome, details)
	})
}

// Chain ids (DESIGN §3).
func OrgChain(org kluis.OrgID) string { return "org:" + string(org) }

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
		res, err := t.Exec(ctx, `UPDATE audit_heads SET seq = ?, hash = ? WHERE chain = ?`, h.seq, h.hash[:], chain)
		if err != nil {
			return fmt.Errorf("advance chain head: %w", err)
		}
		// The row was read or created in this transaction: a head that is
		// not there is a cache that went wrong, and committing would leave
		// the chain's events without their head.
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("advance chain head: %d rows, %v", n, err)
		}
		h.stored = h.seq
		t.heads.m[chain] = h
	}
	return nil
}

func (t *Tx) readHead(ctx context.Context, chain string) (int64, audit.Hash, error) {
	var seq int64
	var h []byte
	err := t.QueryRow(ctx, `SELECT seq, hash FROM audit_heads WHERE chain = ?`+t.db.ForUpdate(), chain).Scan(&seq, &h)
	if errors.Is(err, sql.ErrNoRows) {
		var zero audit.Hash
		if _, err := t.Exec(ctx, `INSERT INTO audit_heads (chain, seq, hash) VALUES (?, 0, ?)`, chain, zero[:]); err != nil {
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

// Append appends one event to a chain in this transaction: the change and
// its record commit together or not at all (R23, R25). details must hold no
// personal values in the clear: a personal value goes in as a SealedDetail.
// The client address of the actor's request, if any, is recorded sealed.
func (t *Tx) Append(ctx context.Context, chain string, actor kluis.Actor, action, target, outcome string, details map[string]any) error {
	id := kluis.NewID(t.Now())
	client, err := t.s.sealClient(ctx, chain, id, actor)
	if err != nil {
		return err
	}
	return t.appendAs(ctx, chain, id, actor.AuditName(), action, target, outcome, details, client)
}

// appendAs is Append for an actor known only by its audit name (one
// recorded elsewhere, such as the key store's events) and an event whose
// client address, if any, is sealed already (empty for none). The chain's
// head advances in memory; the write path stores it once per database
// transaction (writeHeads).
func (t *Tx) appendAs(ctx context.Context, chain, id, actorName, action, target, outcome string, details map[string]any, client []byte) error {
	seq, prev, err := t.lockHead(ctx, chain)
	if err != nil {
		return err
	}
	d := []byte("{}")
	if len(details) > 0 {
		if details, err = t.s.sealDetails(ctx, chain, id, details); err != nil {
			return err
		}
		if d, err = json.Marshal(details); err != nil {
			return err
		}
	}
	e := audit.Event{
		Chain: chain, Seq: seq + 1, ID: id, At: t.Now(),
		Actor: actorName, Action: action, Target: target, Outcome: outcome,
		Details: d, Client: client,
	}
	e.Seal(prev)
	if _, err := t.Exec(ctx, `INSERT INTO audit_events (chain, seq, id, at, actor, action, target, outcome, details, client, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Chain, e.Seq, e.ID, Micros(e.At), e.Actor, e.Action, e.Target, e.Outcome, e.Details, e.Client, e.PrevHash[:], e.Hash[:]); err != nil {
		return fmt.Errorf("append audit event: %w", err)
	}
	h := t.heads.m[chain]
	h.seq, h.hash = e.Seq, e.Hash
	t.heads.m[chain] = h
	t.events = append(t.events, chainKind(chain))
	return nil
}

// Time is stored as Unix microseconds in UTC on both engines.
func Micros(t time.Time) int64 { return t.UnixMicro() }

func FromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func NullMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return FromMicros(n.Int64)
}

// newToken returns a secret token (32 random bytes, unpadded base64url) and
// the SHA-256 under which it is stored and looked up (DESIGN §5).
func NewToken() (token string, hash []byte) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("sqlstore: crypto/rand failed: " + err.Error())
	}
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, TokenHash(token)
}

func TokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// validTokenShape reports whether a presented token can be one of ours, so
// that garbage is refused without a database lookup.
func ValidTokenShape(token string) bool {
	if len(token) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil
}

// Now is the one time of the transaction: every timestamp written in it.
func (t *Tx) Now() time.Time { return t.at }

// Refuse records a rights denial of a read, in a transaction of its own,
// and returns forbidden.
func (s *Core) Refuse(ctx context.Context, chain string, actor kluis.Actor, action, target string) error {
	if err := s.RecordRefusal(ctx, chain, actor, action, target, "denied", nil); err != nil {
		return err
	}
	return kluis.ErrForbidden
}

// ForUpdate is the row-locking suffix of a SELECT in this transaction (the
// engine's; nothing on SQLite, whose writer holds the database's lock).
func (t *Tx) ForUpdate() string { return t.db.ForUpdate() }

// Count counts a throttling event in the metrics once the transaction
// commits (R18, R26): "lock", "address_block", "alarm".
func (t *Tx) Count(kind string) { t.throttled = append(t.throttled, kind) }
