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

// Tx is one write transaction. Every timestamp written in it comes from one
// reading of the clock (DESIGN §2).
type Tx struct {
	tx     *sql.Tx
	db     *DB
	s      *Store
	now    time.Time
	events []string // chain kinds of appended events, counted after commit
	mailed bool
	texted bool                 // an SMS was queued
	heads  map[string]chainHead // chain heads locked in this transaction
	// throttled lists the locks, blocks and alarms started in this
	// transaction, counted after commit.
	throttled []string

	unprepared []string // queries to prepare after the transaction
	reader     bool     // a read transaction on the reader pool: no cached statements
}

type chainHead struct {
	seq  int64
	hash audit.Hash
}

// stmt returns the writer's cached prepared statement bound to this
// transaction, or nil when the query has not been prepared yet. Preparing
// needs a connection of the writer pool, which on SQLite is the one this
// transaction holds, so new queries run unprepared now and are prepared
// once the transaction has ended.
func (t *Tx) stmt(ctx context.Context, query string) *sql.Stmt {
	if t.reader {
		return nil
	}
	if v, ok := t.db.writerStmts.Load(query); ok {
		return t.tx.StmtContext(ctx, v.(*sql.Stmt))
	}
	t.unprepared = append(t.unprepared, query)
	return nil
}

func (t *Tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, t.db.q(query), args...)
}

func (t *Tx) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, t.db.q(query), args...)
}

func (t *Tx) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, t.db.q(query), args...)
}

// prepareLater prepares the statements a finished transaction ran unprepared.
func (t *Tx) prepareLater(ctx context.Context) {
	for _, q := range t.unprepared {
		t.db.stmt(ctx, true, q) // a failure only means the next call runs unprepared again
	}
}

// denial is returned by a transaction body when a rights rule refused the
// actor. write records it in the chain in a transaction of its own, since
// nothing else changes, and answers forbidden.
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

// write runs fn in one write transaction. lockChain, when not empty, is the
// audit chain whose head is locked first: it serialises the organisation's
// writes, so rules such as "the last active manager stays" hold on PostgreSQL
// too. A denial is rolled back and recorded on its own.
func (s *Store) write(ctx context.Context, lockChain string, fn func(*Tx) error) error {
	sqlTx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	t := &Tx{tx: sqlTx, db: s.db, s: s, now: s.now().UTC().Truncate(time.Microsecond)}
	defer t.prepareLater(ctx)
	if lockChain != "" {
		if _, _, err := t.lockHead(ctx, lockChain); err != nil {
			sqlTx.Rollback()
			return err
		}
	}
	if err := fn(t); err != nil {
		sqlTx.Rollback()
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
	return nil
}

// read runs fn in a transaction on the reader pool, for reads that need a
// consistent view of several rows; it never writes and takes no lock.
func (s *Store) read(ctx context.Context, fn func(*Tx) error) error {
	sqlTx, err := s.db.reader.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer sqlTx.Rollback()
	return fn(&Tx{tx: sqlTx, db: s.db, s: s, now: s.now().UTC().Truncate(time.Microsecond), reader: true})
}

// recordRefusal appends one refused request (a rights denial, a failed login)
// to a chain, in a transaction of its own.
func (s *Store) recordRefusal(ctx context.Context, chain string, actor kluis.Actor, action, target, outcome string, details map[string]any) error {
	return s.write(ctx, "", func(t *Tx) error {
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

// lockHead reads a chain head, locking it on PostgreSQL. A missing head is
// created (a new organisation's chain starts in the transaction that creates
// the organisation).
func (t *Tx) lockHead(ctx context.Context, chain string) (int64, audit.Hash, error) {
	if h, ok := t.heads[chain]; ok {
		return h.seq, h.hash, nil
	}
	seq, hash, err := t.readHead(ctx, chain)
	if err == nil {
		if t.heads == nil {
			t.heads = map[string]chainHead{}
		}
		t.heads[chain] = chainHead{seq, hash}
	}
	return seq, hash, err
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
	id := kluis.NewID(t.now)
	client, err := t.s.sealClient(ctx, chain, id, actor)
	if err != nil {
		return err
	}
	return t.appendAs(ctx, chain, id, actor.AuditName(), action, target, outcome, details, client)
}

// appendAs is appendEvent for an actor known only by its audit name (one
// recorded elsewhere, such as the key store's events) and an event whose
// client address, if any, is sealed already (empty for none).
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
		Chain: chain, Seq: seq + 1, ID: id, At: t.now,
		Actor: actorName, Action: action, Target: target, Outcome: outcome,
		Details: d, Client: client,
	}
	e.Seal(prev)
	if _, err := t.exec(ctx, `INSERT INTO audit_events (chain, seq, id, at, actor, action, target, outcome, details, client, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.Chain, e.Seq, e.ID, micros(e.At), e.Actor, e.Action, e.Target, e.Outcome, e.Details, e.Client, e.PrevHash[:], e.Hash[:]); err != nil {
		return fmt.Errorf("append audit event: %w", err)
	}
	if _, err := t.exec(ctx, `UPDATE audit_heads SET seq = ?, hash = ? WHERE chain = ?`, e.Seq, e.Hash[:], chain); err != nil {
		return fmt.Errorf("advance chain head: %w", err)
	}
	t.heads[chain] = chainHead{e.Seq, e.Hash}
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
