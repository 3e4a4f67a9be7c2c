package sqlstore

// Group commit (DESIGN §10): concurrent writes are gathered into one database
// transaction, so that one commit — one WAL flush, with synchronous=FULL one
// fsync — carries many requests.
//
// How a batch forms. A write joins a queue: on SQLite the one queue of the
// one writer connection; on PostgreSQL the queue of the chain whose head it
// locks (writes that lock no head are not batched there, see ARCHITECTURE.md,
// "Group commit"). The first write to find its queue idle leads: it begins a
// transaction and runs the queued requests one after another, taking each
// from the queue as it goes, so a request that arrives while the batch runs
// joins it. The batch closes when the queue is empty, or at a bound (a
// number of requests, a time of work since the transaction began): a lone
// request is committed at once, never held back to wait for company. The
// leader commits, hands the lead to the first request still queued, and
// answers the batch's requests. Nobody is answered before the commit
// returned: a failed commit fails every request of the batch.
//
// Each request runs in a SAVEPOINT. Its error rolls back to it: its changes
// and its audit events vanish, the chain heads it read or advanced are
// restored in memory, the other requests' work stays. A rights denial rolls
// back the same way and then records the refusal event in the same
// savepoint. A request cancelled while queued is skipped; one cancelled while
// it runs is rolled back to its savepoint. Statements never run under a
// cancellable request context (sharedTx): an interrupted statement would roll
// back the whole transaction on SQLite. A panic in a request is that
// request's error (runBody).
//
// Chain heads are read (locked on PostgreSQL) once per batch, advanced in
// memory by each append, in the order the savepoints ran, and written to
// audit_heads once before the commit.

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Batch bounds. A batch closes at whichever comes first: the queue empty,
// this many requests, or this much time since its transaction began.
// PostgreSQL's count stays below its 64 cached subtransactions per
// transaction (each released savepoint is one), past which other sessions'
// snapshots must look subtransactions up on disk. Its time is longer: there
// every statement is a round trip to the server, a request takes ~0.5 ms
// and the commit's WAL flush ~2 ms, so 2 ms would close batches after two
// or three requests.
const (
	maxBatchRequests         = 64
	maxBatchRequestsPostgres = 48
	maxBatchWork             = 2 * time.Millisecond
	maxBatchWorkPostgres     = 10 * time.Millisecond
)

// groupCommit gathers concurrent writes into batches. Its zero value is
// ready: it has no goroutine of its own (a waiting writer leads), so there
// is nothing to start or stop.
type groupCommit struct {
	mu     sync.Mutex
	queues map[string]*writeQueue

	// Bounds; zero means the defaults above. Tests widen them.
	maxRequests int
	maxWork     time.Duration
	// beforeHeads, when set (by tests), runs before a batch writes its
	// chain heads: outside every request's body.
	beforeHeads atomic.Pointer[func()]

	// Statistics, for tests and benchmarks.
	batches, batched, largest atomic.Int64
}

// writeQueue is the queue of writes that can share a transaction.
type writeQueue struct {
	key     string
	pending []*writeRequest
	leading bool // a request is leading a batch of this queue
}

// writeRequest is one call of write waiting in a queue.
type writeRequest struct {
	ctx       context.Context
	lockChain string
	fn        func(*Tx) error
	wake      chan struct{} // one send: answered, or told to lead

	// Set by the batch's leader before the wake-up (or by the request
	// itself when it leads).
	lead  bool  // woken to lead the next batch
	alone bool  // run again in a transaction of its own (PostgreSQL deadlock)
	err   error // the answer, once the batch has ended
	after *Tx   // the request's work, to finish after a successful commit
	own   bool  // err is the request's own (rolled back): it stands whatever the commit does
}

// GroupCommitStats are counts of the batches committed or failed so far.
type GroupCommitStats struct {
	Batches  int64 // database transactions of the batched write path
	Requests int64 // requests run in them
	Largest  int64 // the most requests one batch held
}

// GroupCommitStats returns counts of the batches so far (for benchmarks).
func (s *Core) GroupCommitStats() GroupCommitStats {
	g := &s.commits
	return GroupCommitStats{Batches: g.batches.Load(), Requests: g.batched.Load(), Largest: g.largest.Load()}
}

// queueKey returns the queue a write joins, and false for a write that is
// not batched.
func queueKey(engine, lockChain string) (string, bool) {
	if engine == Postgres {
		return lockChain, lockChain != ""
	}
	return "", true
}

func (g *groupCommit) write(ctx context.Context, s *Core, lockChain string, fn func(*Tx) error) error {
	key, batched := queueKey(s.db.Engine, lockChain)
	if !batched {
		return s.writeAlone(ctx, lockChain, fn)
	}
	r := &writeRequest{ctx: ctx, lockChain: lockChain, fn: fn, wake: make(chan struct{}, 1)}
	g.mu.Lock()
	q := g.queues[key]
	if q == nil {
		if g.queues == nil {
			g.queues = map[string]*writeQueue{}
		}
		q = &writeQueue{key: key}
		g.queues[key] = q
	}
	q.pending = append(q.pending, r)
	lead := !q.leading
	q.leading = true
	g.mu.Unlock()
	if !lead {
		select {
		case <-r.wake: // answered, or told to lead
		case <-ctx.Done():
			// Gone while still queued, and not yet told to lead: leave the
			// queue, nothing ran. Once a batch took it, or the lead was
			// handed to it, its answer (or the lead) comes.
			g.mu.Lock()
			if i := slices.Index(q.pending, r); i >= 0 && !r.lead {
				q.pending = slices.Delete(q.pending, i, i+1)
				g.mu.Unlock()
				return ctx.Err()
			}
			g.mu.Unlock()
			<-r.wake
		}
		lead = r.lead
	}
	if lead {
		g.lead(s, q, r)
	}
	if r.alone {
		return s.writeAlone(ctx, lockChain, fn)
	}
	if r.after != nil {
		r.after.afterCommit(ctx)
	}
	return r.err
}

// take returns the next request for a batch begun at began holding n
// requests, or nil when the batch closes: the queue is empty or a bound is
// reached.
func (g *groupCommit) take(s *Core, q *writeQueue, n int, began time.Time) *writeRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	limit, work := g.maxRequests, g.maxWork
	if limit == 0 {
		limit = maxBatchRequests
		if s.db.Engine == Postgres {
			limit = maxBatchRequestsPostgres
		}
	}
	if work == 0 {
		work = maxBatchWork
		if s.db.Engine == Postgres {
			work = maxBatchWorkPostgres
		}
	}
	if len(q.pending) == 0 || n > 0 && (n >= limit || time.Since(began) >= work) {
		return nil
	}
	r := q.pending[0]
	q.pending[0] = nil
	q.pending = q.pending[1:]
	return r
}

// lead runs one batch of q, hands the lead on and answers the batch's
// requests. self is the leading request: it is answered by the fields it
// reads on return, not woken.
func (g *groupCommit) lead(s *Core, q *writeQueue, self *writeRequest) {
	b := &batch{s: s, heads: &headCache{}}
	b.runGuarded(g, q)
	answer := b.taken
	g.mu.Lock()
	var next *writeRequest
	if len(q.pending) > 0 {
		next = q.pending[0]
		next.lead = true
	} else {
		q.leading = false
		delete(g.queues, q.key)
	}
	g.mu.Unlock()
	if next != nil {
		next.wake <- struct{}{}
	}
	for _, r := range answer {
		if r != self {
			r.wake <- struct{}{}
		}
	}
}

// batch is one database transaction of group commit.
type batch struct {
	s       *Core
	tx      sharedTx
	heads   *headCache
	began   time.Time
	taken   []*writeRequest // requests taken from the queue, to be answered
	members []*writeRequest // requests whose work ran in the transaction
	err     error           // the transaction failed: its members fail with it
	flush   *Tx             // writes the heads; its statements are prepared later
}

// runGuarded is run, with a panic outside a request's body (in recording a
// refusal, in writing the heads, in the driver) failing the whole batch:
// its transaction is rolled back and its requests answered, instead of a
// transaction left open on the writer and a queue left without a leader.
func (b *batch) runGuarded(g *groupCommit, q *writeQueue) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		b.s.log.Error("panic in a write batch; the batch is rolled back", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		if b.tx.tx != nil {
			b.tx.tx.Rollback()
		}
		err := fmt.Errorf("sqlstore: panic in a write batch: %v", v)
		for _, r := range b.taken {
			r.err, r.own, r.after, r.alone = err, true, nil, false
		}
	}()
	b.run(g, q)
}

// run runs requests from q until the batch closes, then commits. Every
// request it took (b.taken) has its answer set.
func (b *batch) run(g *groupCommit, q *writeQueue) {
	for b.err == nil {
		r := g.take(b.s, q, len(b.members), b.began)
		if r == nil {
			break
		}
		b.taken = append(b.taken, r)
		if err := r.ctx.Err(); err != nil {
			r.err, r.own = err, true // cancelled while queued: nothing ran
			continue
		}
		if b.tx.tx == nil {
			// Not the request's context: the transaction is the batch's.
			tx, err := b.s.db.writer.BeginTx(context.Background(), nil)
			if err != nil {
				r.err, r.own = fmt.Errorf("begin: %w", err), true
				break
			}
			b.tx, b.began = sharedTx{tx: tx, shared: true}, time.Now()
		}
		b.members = append(b.members, r)
		b.runRequest(r)
	}
	if b.tx.tx != nil {
		b.end()
	}
	if n := int64(len(b.members)); n > 0 {
		g.batches.Add(1)
		g.batched.Add(n)
		for {
			l := g.largest.Load()
			if n <= l || g.largest.CompareAndSwap(l, n) {
				break
			}
		}
	}
}

// savepoint runs a savepoint statement of the batch. Its failure means the
// transaction cannot go on.
func (b *batch) savepoint(stmt string) bool {
	if _, err := b.tx.tx.ExecContext(context.Background(), stmt); err != nil {
		b.err = fmt.Errorf("%s: %w", stmt, err)
		return false
	}
	return true
}

func (b *batch) newTx() *Tx {
	return &Tx{tx: b.tx, db: b.s.db, s: b.s, at: b.s.Now().UTC().Truncate(time.Microsecond), heads: b.heads}
}

// runRequest runs one request in a savepoint of the batch.
func (b *batch) runRequest(r *writeRequest) {
	if !b.savepoint("SAVEPOINT request") {
		return
	}
	heads := b.heads.save()
	t := b.newTx()
	err := b.s.runBody(r.ctx, t, r.lockChain, r.fn)
	if err == nil {
		err = r.ctx.Err() // cancelled while it ran: rolled back
	}
	if err == nil {
		if _, err = b.tx.tx.ExecContext(context.Background(), "RELEASE request"); err == nil {
			r.after = t
			return
		}
		// PostgreSQL refuses to release a savepoint whose transaction an
		// error aborted (fn went on after a failed statement): that
		// request is rolled back like a failed one.
		err = fmt.Errorf("release savepoint: %w", err)
	}
	if retryable(err) {
		b.err = err
		return
	}
	if !b.savepoint("ROLLBACK TO request") {
		return
	}
	b.heads.restore(heads)
	r.err, r.own = err, true
	var d *denial
	if errors.As(err, &d) {
		// The refusal is recorded even if the client has gone: it happened.
		ctx := context.WithoutCancel(r.ctx)
		rt := b.newTx()
		if rerr := rt.Append(ctx, d.chain, d.actor, d.action, d.target, "denied", d.details); rerr != nil {
			if retryable(rerr) {
				b.err = rerr
				return
			}
			if !b.savepoint("ROLLBACK TO request") {
				return
			}
			b.heads.restore(heads)
			r.err = rerr
		} else {
			r.err, r.own, r.after = d.answer, false, rt
		}
	}
	b.savepoint("RELEASE request")
}

// end writes the chain heads and commits, or rolls back a failed batch, and
// sets every member's answer.
func (b *batch) end() {
	if b.err == nil {
		if hook := b.s.commits.beforeHeads.Load(); hook != nil {
			(*hook)()
		}
		b.flush = b.newTx()
		b.err = b.flush.writeHeads(context.Background())
	}
	if b.err == nil {
		if err := b.tx.tx.Commit(); err != nil {
			b.err = fmt.Errorf("commit: %w", err)
		}
	} else {
		b.tx.tx.Rollback()
	}
	if b.flush != nil {
		b.flush.prepareLater(context.Background())
	}
	if b.err == nil {
		return
	}
	// Nothing of the batch committed and nobody has been answered yet.
	// After a deadlock (PostgreSQL), every request runs again on its own.
	again := retryable(b.err)
	for _, r := range b.members {
		r.after = nil
		switch {
		case again:
			r.alone = true
		case !r.own:
			r.err = b.err
		}
	}
}

// retryable reports a PostgreSQL deadlock or serialization failure: the
// transaction was aborted and can run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}
