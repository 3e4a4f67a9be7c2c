package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/auditlog"
)

// Group commit (DESIGN §10): concurrent writes share one database
// transaction, each in a savepoint of its own.

// holdQueue starts a write on the organisation's chain that holds its batch
// open until the returned release function is called; writes on that queue
// started meanwhile wait behind it.
func holdQueue(t *testing.T, env *kluistest.Env, org kluis.OrgID) (release func() error) {
	t.Helper()
	held, free := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- env.Core.WriteHolding(context.Background(), org, held, free) }()
	select {
	case <-held:
	case err := <-done:
		t.Fatalf("WriteHolding: %v", err)
	}
	return func() error {
		close(free)
		return <-done
	}
}

// waitQueued waits until n writes wait in the queue of the organisation's
// chain.
func waitQueued(t *testing.T, env *kluistest.Env, org kluis.OrgID, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for env.Core.QueuedWrites("org:"+string(org)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("got %d queued writes, want %d", env.Core.QueuedWrites("org:"+string(org)), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func allEvents(t *testing.T, env *kluistest.Env, o kluis.OrgID, manager kluis.Actor) []kluis.AuditEvent {
	t.Helper()
	var all []kluis.AuditEvent
	var after int64
	for {
		evs, _, err := env.Audit.FindAuditEvents(context.Background(), o, manager, kluis.AuditFilter{After: after, Limit: kluis.MaxAuditPage})
		if err != nil {
			t.Fatalf("FindAuditEvents: %v", err)
		}
		all = append(all, evs...)
		if len(evs) < kluis.MaxAuditPage {
			return all
		}
		after = evs[len(evs)-1].Seq
	}
}

func chainsIntact(t *testing.T, env *kluistest.Env) {
	t.Helper()
	ctx := context.Background()
	if _, err := env.Audit.Checkpoint(ctx, auditlog.DefaultCheckpointPolicy, true); err != nil {
		t.Fatal(err)
	}
	results, err := env.Audit.VerifyChains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if !r.OK {
			t.Fatalf("chain %s broken at %d: %s", r.Chain, r.FirstBrokenSeq, r.Problem)
		}
	}
}

// One batch holds successful writes, a failing one, a panicking one, a
// denied one and one whose client went away while it waited: the others
// commit; the failing and panicking ones' changes and events vanish; the
// denial is recorded; the chain stays intact (R23, R25).
func TestBatchRollsBackOnlyTheFailingRequest(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := env.NewOrg(t, "batch")
		const n = 6
		var members []kluis.Actor
		for i := range n {
			members = append(members, env.NewMember(t, o, manager, fmt.Sprintf("m%d@batch.example", i), kluis.RoleMember))
		}
		env.Core.SetBatchBounds(1000, time.Minute) // everything queued goes into one batch
		before := env.Core.GroupCommitStats()

		release := holdQueue(t, env, o.ID)
		var wg sync.WaitGroup
		updateErrs := make([]error, n)
		for i, m := range members {
			wg.Go(func() {
				name := fmt.Sprintf("Batched %d", i)
				_, updateErrs[i] = env.Users.UpdateMe(ctx, o.ID, m, kluis.UserInput{Name: &name})
			})
		}
		boom := errors.New("boom")
		var failErr, sqlErr, panicErr, denyErr, cancelErr error
		wg.Go(func() { failErr = env.Core.AppendThenFail(ctx, o.ID, boom) })
		// A failed statement (on PostgreSQL it aborts the transaction
		// until the savepoint is rolled back).
		wg.Go(func() { sqlErr = env.Core.AppendThenExec(ctx, o.ID, `INSERT INTO no_such_table (x) VALUES (1)`) })
		wg.Go(func() { panicErr = env.Core.AppendThenPanic(ctx, o.ID) })
		wg.Go(func() { _, denyErr = env.Users.FindUsers(ctx, o.ID, members[0]) })
		gone, cancel := context.WithCancel(ctx)
		wg.Go(func() { cancelErr = env.Core.AppendAction(gone, o.ID, "test.gone") })
		waitQueued(t, env, o.ID, n+5)
		cancel()
		if err := release(); err != nil {
			t.Fatalf("the holding write: %v", err)
		}
		wg.Wait()

		stats := env.Core.GroupCommitStats()
		// The holder, the n updates, the failing, failed-statement,
		// panicking and denied writes; the cancelled one never ran.
		if stats.Largest < n+5 {
			t.Fatalf("the largest batch held %d requests, want %d (stats before %+v, after %+v)", stats.Largest, n+5, before, stats)
		}
		for i, err := range updateErrs {
			if err != nil {
				t.Errorf("update %d: %v", i, err)
			}
		}
		if !errors.Is(failErr, boom) {
			t.Errorf("the failing write returned %v, want %v", failErr, boom)
		}
		if sqlErr == nil {
			t.Errorf("the write with a failed statement returned no error")
		}
		if panicErr == nil || !strings.Contains(panicErr.Error(), "panic") {
			t.Errorf("the panicking write returned %v, want a panic error", panicErr)
		}
		kluistest.WantCode(t, denyErr, kluis.EForbidden)
		if !errors.Is(cancelErr, context.Canceled) {
			t.Errorf("the write cancelled while queued returned %v, want context.Canceled", cancelErr)
		}

		users, err := env.Users.FindUsers(ctx, o.ID, manager)
		if err != nil {
			t.Fatal(err)
		}
		names := map[kluis.UserID]string{}
		for _, u := range users {
			names[u.ID] = u.Name
		}
		for i, m := range members {
			if got, want := names[m.UserID], fmt.Sprintf("Batched %d", i); got != want {
				t.Errorf("member %d is named %q, want %q", i, got, want)
			}
		}
		evs := allEvents(t, env, o.ID, manager)
		for action, want := range map[string]int{"test.held": 1, "test.rolled_back": 0, "test.then_exec": 0, "test.panicked": 0, "test.gone": 0} {
			if got := kluistest.CountAction(evs, action); got != want {
				t.Errorf("%d %s events, want %d", got, action, want)
			}
		}
		denied := 0
		for _, e := range evs {
			if e.Action == "user.list" && e.Outcome == "denied" && e.Actor == "user:"+string(members[0].UserID) {
				denied++
			}
		}
		if denied != 1 {
			t.Errorf("%d denied user.list events of the member, want 1", denied)
		}
		for i := 1; i < len(evs); i++ {
			if evs[i].Seq != evs[i-1].Seq+1 {
				t.Fatalf("the chain jumps from %d to %d", evs[i-1].Seq, evs[i].Seq)
			}
		}
		chainsIntact(t, env)
		// The heads written at the batch's end are where the next write
		// goes on.
		if err := env.Core.AppendAction(ctx, o.ID, "test.after"); err != nil {
			t.Fatal(err)
		}
		chainsIntact(t, env)
	})
}

// A batch whose commit fails fails every request in it: none is answered
// before the commit, and none of their changes or events is kept. Here one
// request leaves a deferred foreign-key violation, which only COMMIT checks.
func TestFailedCommitFailsTheWholeBatch(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := env.NewOrg(t, "doomed")
		if err := env.Core.ExecInWrite(ctx, o.ID,
			`CREATE TABLE poison_parent (id INTEGER PRIMARY KEY)`,
			`CREATE TABLE poison_child (parent INTEGER REFERENCES poison_parent (id) DEFERRABLE INITIALLY DEFERRED)`); err != nil {
			t.Fatal(err)
		}
		env.Core.SetBatchBounds(1000, time.Minute)
		release := holdQueue(t, env, o.ID)
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n+1)
		for i := range n {
			wg.Go(func() { errs[i] = env.Core.AppendAction(ctx, o.ID, fmt.Sprintf("test.doomed%d", i)) })
		}
		wg.Go(func() { errs[n] = env.Core.ExecInWrite(ctx, o.ID, `INSERT INTO poison_child (parent) VALUES (42)`) })
		waitQueued(t, env, o.ID, n+1)
		if err := release(); err == nil || !strings.Contains(err.Error(), "commit") {
			t.Errorf("the holding write returned %v, want the commit's error", err)
		}
		wg.Wait()
		for i, err := range errs {
			if err == nil || !strings.Contains(err.Error(), "commit") {
				t.Errorf("request %d returned %v, want the commit's error", i, err)
			}
		}
		evs := allEvents(t, env, o.ID, manager)
		for _, e := range evs {
			if strings.HasPrefix(e.Action, "test.doomed") || e.Action == "test.held" {
				t.Errorf("event %d %s of the failed batch was kept", e.Seq, e.Action)
			}
		}
		if got := kluistest.CountAction(evs, "test.exec"); got != 1 {
			t.Errorf("%d test.exec events, want 1 (the table's creation)", got)
		}
		chainsIntact(t, env)
		if err := env.Core.AppendAction(ctx, o.ID, "test.after"); err != nil {
			t.Fatal(err)
		}
		chainsIntact(t, env)
	})
}

// Under many concurrent writers on several organisations, every
// organisation's chain stays gap-free and each writer's events appear in
// the order it wrote them (R25).
func TestConcurrentBatchesKeepEveryChainInOrder(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		const orgs, writers, writes = 3, 6, 15
		type orgUnderLoad struct {
			org     kluis.Org
			manager kluis.Actor
			start   int
		}
		var os []orgUnderLoad
		for i := range orgs {
			o, manager := env.NewOrg(t, fmt.Sprintf("order%d", i))
			os = append(os, orgUnderLoad{org: o, manager: manager, start: len(allEvents(t, env, o.ID, manager))})
		}
		// The first organisation's writers queue up behind a held write
		// and then go into its batch, so that a batch of several requests
		// surely forms however slow the machine.
		env.Core.SetBatchBounds(1000, time.Minute)
		release := holdQueue(t, env, os[0].org.ID)
		var wg sync.WaitGroup
		errc := make(chan error, orgs*writers*writes)
		for _, ou := range os {
			for w := range writers {
				wg.Go(func() {
					for k := range writes {
						if err := env.Core.AppendAction(ctx, ou.org.ID, fmt.Sprintf("test.w%d.%03d", w, k)); err != nil {
							errc <- err
							return
						}
					}
				})
			}
		}
		waitQueued(t, env, os[0].org.ID, writers)
		if err := release(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
		if stats := env.Core.GroupCommitStats(); stats.Largest < writers {
			t.Errorf("the largest batch held %d requests, want at least %d", stats.Largest, writers)
		}
		for _, ou := range os {
			evs := allEvents(t, env, ou.org.ID, ou.manager)
			next := map[string]int{}
			got := 0
			for i, e := range evs {
				if e.Seq != int64(i+1) {
					t.Fatalf("%s: event %d has seq %d", ou.org.Slug, i+1, e.Seq)
				}
				var w, k int
				if _, err := fmt.Sscanf(e.Action, "test.w%d.%d", &w, &k); err != nil {
					continue
				}
				got++
				key := fmt.Sprint(w)
				if k != next[key] {
					t.Fatalf("%s: writer %d's write %d follows its write %d", ou.org.Slug, w, k, next[key]-1)
				}
				next[key]++
			}
			if got != writers*writes {
				t.Errorf("%s: %d events of the writers, want %d", ou.org.Slug, got, writers*writes)
			}
		}
		chainsIntact(t, env)
	})
}

// An answered write survives a power cut (DESIGN §7): SQLite syncs the WAL
// at every commit (synchronous=FULL, 2), not only at checkpoints (NORMAL).
func TestSQLiteSyncsEveryCommit(t *testing.T) {
	env := kluistest.NewEnv(t, sqlstore.SQLite)
	for pragma, want := range map[string]string{"synchronous": "2", "journal_mode": "wal", "foreign_keys": "1"} {
		got, err := env.DB.WriterPragma(context.Background(), pragma)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s is %s, want %s", pragma, got, want)
		}
	}
}

// PostgreSQL: when a batch loses a deadlock against another transaction
// (another node's, say), nothing of it has been answered, so each of its
// requests runs again in a transaction of its own, and all of them succeed.
func TestDeadlockedBatchRunsItsRequestsAgain(t *testing.T) {
	env := kluistest.NewEnv(t, sqlstore.Postgres)
	ctx := context.Background()
	o, manager := env.NewOrg(t, "deadlock")
	if err := env.Core.ExecInWrite(ctx, o.ID, `CREATE TABLE contested (id INTEGER PRIMARY KEY, v INTEGER)`,
		`INSERT INTO contested (id, v) VALUES (1, 0), (2, 0)`); err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("pgx", env.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	otherTx, err := other.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer otherTx.Rollback()
	if _, err := otherTx.ExecContext(ctx, `UPDATE contested SET v = v + 1 WHERE id = 2`); err != nil {
		t.Fatal(err)
	}

	env.Core.SetBatchBounds(1000, time.Minute)
	release := holdQueue(t, env, o.ID)
	var (
		wg        sync.WaitGroup
		runs      atomic.Int32
		lockedOne = make(chan struct{}, 2)
		stepsErr  error
	)
	wg.Go(func() {
		stepsErr = env.Core.WriteSteps(ctx, o.ID, func(exec func(string) error) error {
			runs.Add(1)
			if err := exec(`UPDATE contested SET v = v + 1 WHERE id = 1`); err != nil {
				return err
			}
			lockedOne <- struct{}{}
			return exec(`UPDATE contested SET v = v + 1 WHERE id = 2`) // waits for the other transaction
		})
	})
	waitQueued(t, env, o.ID, 1)
	const n = 4
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = env.Core.AppendAction(ctx, o.ID, fmt.Sprintf("test.bystander%d", i)) })
	}
	waitQueued(t, env, o.ID, n+1)
	holderErr := make(chan error, 1)
	go func() { holderErr <- release() }()
	<-lockedOne
	// The batch waits first, so its deadlock check runs first and it is
	// the one aborted; the other transaction then gets row 1.
	time.Sleep(200 * time.Millisecond)
	if _, err := otherTx.ExecContext(ctx, `UPDATE contested SET v = v + 1 WHERE id = 1`); err != nil {
		t.Fatalf("the other transaction lost the deadlock instead of the batch: %v", err)
	}
	if err := otherTx.Commit(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := <-holderErr; err != nil {
		t.Errorf("the holding write: %v", err)
	}
	if stepsErr != nil {
		t.Errorf("the deadlocked request: %v", stepsErr)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("bystander %d: %v", i, err)
		}
	}
	if got := runs.Load(); got != 2 {
		t.Errorf("the deadlocked request ran %d times, want 2 (in the batch, then alone)", got)
	}
	evs := allEvents(t, env, o.ID, manager)
	for action, want := range map[string]int{"test.held": 1, "test.steps": 1, "test.bystander0": 1, "test.bystander3": 1} {
		if got := kluistest.CountAction(evs, action); got != want {
			t.Errorf("%d %s events, want %d", got, action, want)
		}
	}
	var v1, v2 int
	if err := other.QueryRowContext(ctx, `SELECT (SELECT v FROM contested WHERE id = 1), (SELECT v FROM contested WHERE id = 2)`).Scan(&v1, &v2); err != nil {
		t.Fatal(err)
	}
	if v1 != 2 || v2 != 2 {
		t.Errorf("contested rows are %d and %d, want 2 and 2 (each transaction once)", v1, v2)
	}
	chainsIntact(t, env)
}

// A write whose client goes away while it waits behind a batch that does
// not end leaves the queue at once, having run nothing; a panic outside
// every request's body (here: just before the batch writes its chain heads)
// fails and rolls back that whole batch, and the queue goes on with the
// next write on an intact chain.
func TestStuckOrPanickedBatchReleasesItsQueue(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := env.NewOrg(t, "stuck")
		release := holdQueue(t, env, o.ID)
		gone, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- env.Core.AppendAction(gone, o.ID, "test.gone") }()
		waitQueued(t, env, o.ID, 1)
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("the cancelled write returned %v, want context.Canceled", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a cancelled write still waits behind a batch that does not end")
		}
		if err := release(); err != nil {
			t.Fatalf("the holding write: %v", err)
		}

		var fired atomic.Bool
		env.Core.SetBeforeHeads(func() {
			if fired.CompareAndSwap(false, true) {
				panic("injected")
			}
		})
		defer env.Core.SetBeforeHeads(nil)
		if err := env.Core.AppendAction(ctx, o.ID, "test.panicked_batch"); err == nil || !strings.Contains(err.Error(), "panic in a write batch") {
			t.Fatalf("the write of the panicking batch returned %v, want a panic error", err)
		}
		if err := env.Core.AppendAction(ctx, o.ID, "test.after"); err != nil {
			t.Fatalf("the next write: %v", err)
		}
		evs := allEvents(t, env, o.ID, manager)
		for action, want := range map[string]int{"test.held": 1, "test.gone": 0, "test.panicked_batch": 0, "test.after": 1} {
			if got := kluistest.CountAction(evs, action); got != want {
				t.Errorf("%d %s events, want %d", got, action, want)
			}
		}
		chainsIntact(t, env)
	})
}
