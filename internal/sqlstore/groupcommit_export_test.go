package sqlstore

import (
	"context"
	"sync"
	"time"

	"github.com/kluis/kluis"
)

// SetBatchBounds replaces the bounds at which a batch closes, so that a test
// can put every queued write into one batch.
func (s *Core) SetBatchBounds(requests int, work time.Duration) {
	s.commits.mu.Lock()
	defer s.commits.mu.Unlock()
	s.commits.maxRequests, s.commits.maxWork = requests, work
}

// SetBeforeHeads makes every batch call hook before it writes its chain
// heads, outside every request's body (nil: no hook).
func (s *Core) SetBeforeHeads(hook func()) {
	if hook == nil {
		s.commits.beforeHeads.Store(nil)
		return
	}
	s.commits.beforeHeads.Store(&hook)
}

// QueuedWrites returns how many writes wait in the queue that writes locking
// lockChain join.
func (s *Core) QueuedWrites(lockChain string) int {
	key, _ := queueKey(s.db.Engine, lockChain)
	s.commits.mu.Lock()
	defer s.commits.mu.Unlock()
	if q := s.commits.queues[key]; q != nil {
		return len(q.pending)
	}
	return 0
}

// WriteHolding is a write on the organisation's chain that appends
// test.held, tells held that it runs and then waits for release: the writes
// that arrive meanwhile queue up behind it. Run again (after a deadlock), it
// does not wait.
func (s *Core) WriteHolding(ctx context.Context, org kluis.OrgID, held chan<- struct{}, release <-chan struct{}) error {
	var once sync.Once
	return s.Write(ctx, OrgChain(org), func(t *Tx) error {
		if err := t.Append(ctx, OrgChain(org), kluis.CLIActor, "test.held", "", "success", nil); err != nil {
			return err
		}
		once.Do(func() { close(held) })
		<-release
		return nil
	})
}

// WriteSteps is a write on the organisation's chain that appends test.steps
// and lets steps run statements (no placeholders) in it.
func (s *Core) WriteSteps(ctx context.Context, org kluis.OrgID, steps func(exec func(query string) error) error) error {
	return s.Write(ctx, OrgChain(org), func(t *Tx) error {
		if err := steps(func(q string) error { _, err := t.tx.ExecContext(ctx, q); return err }); err != nil {
			return err
		}
		return t.Append(ctx, OrgChain(org), kluis.CLIActor, "test.steps", "", "success", nil)
	})
}

// AppendAction is a write on the organisation's chain that appends one
// event with the action given.
func (s *Core) AppendAction(ctx context.Context, org kluis.OrgID, action string) error {
	return s.Write(ctx, OrgChain(org), func(t *Tx) error {
		return t.Append(ctx, OrgChain(org), kluis.CLIActor, action, "", "success", nil)
	})
}

// AppendThenPanic appends an event in a write and then panics.
func (s *Core) AppendThenPanic(ctx context.Context, org kluis.OrgID) error {
	return s.Write(ctx, OrgChain(org), func(t *Tx) error {
		if err := t.Append(ctx, OrgChain(org), kluis.CLIActor, "test.panicked", "", "success", nil); err != nil {
			return err
		}
		panic("test: a bug in a transaction body")
	})
}

// ExecInWrite runs statements (no placeholders) and appends test.exec in a
// write on the organisation's chain.
func (s *Core) ExecInWrite(ctx context.Context, org kluis.OrgID, stmts ...string) error {
	return s.Write(ctx, OrgChain(org), func(t *Tx) error {
		for _, q := range stmts {
			if _, err := t.tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return t.Append(ctx, OrgChain(org), kluis.CLIActor, "test.exec", "", "success", nil)
	})
}

// WriterPragma reads a PRAGMA on the writer connection (SQLite).
func (db *DB) WriterPragma(ctx context.Context, name string) (string, error) {
	var v string
	err := db.writer.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v)
	return v, err
}

// AppendThenExec appends test.then_exec in a write and then runs a statement
// (no placeholders).
func (s *Core) AppendThenExec(ctx context.Context, org kluis.OrgID, stmt string) error {
	return s.Write(ctx, OrgChain(org), func(t *Tx) error {
		if err := t.Append(ctx, OrgChain(org), kluis.CLIActor, "test.then_exec", "", "success", nil); err != nil {
			return err
		}
		_, err := t.tx.ExecContext(ctx, stmt)
		return err
	})
}
