package sqlstore_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore/areas"
)

// Key life-cycle events reach the audit chains through the key store's own
// table (issue 11 item 5; R28: a log of key use): no crash loses one, and
// none is recorded twice.

// pendingKeyEvents returns the key events the key store holds, not yet in
// the audit log.
func pendingKeyEvents(t *testing.T, env *kluistest.Env) []keys.Event {
	t.Helper()
	evs, err := env.KeyStore.PendingEvents(context.Background(), keys.MaxEventBatch)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// wantChainsIntact fails the test unless every audit chain verifies.
func wantChainsIntact(t *testing.T, st *areas.Areas) {
	t.Helper()
	results, err := st.Audit.VerifyChains(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if !r.OK {
			t.Errorf("chain %s: %+v, want intact", r.Chain, r)
		}
	}
}

// R28: a request's key events are in the chain when the request answers,
// with the request's actor, and the key store keeps none of them: a new
// user's key.created before the invitation, a deleted user's key.destroyed
// after the deletion.
func TestKeyEventsAreInTheChainWhenTheRequestAnswers(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "ke-req")
		email := "new@ke-req.example"
		u, err := env.Users.InviteUser(ctx, o.ID, mgr, kluis.UserInput{Email: &email})
		if err != nil {
			t.Fatal(err)
		}
		evs := env.Events(t, o.ID, mgr)
		last := evs[len(evs)-2:]
		if last[0].Action != "key.created" || last[0].Actor != mgr.AuditName() || last[1].Action != "user.invite" {
			t.Errorf("the chain ends with %s by %s, %s; want key.created by %s, then user.invite", last[0].Action, last[0].Actor, last[1].Action, mgr.AuditName())
		}
		if p := pendingKeyEvents(t, env); len(p) != 0 {
			t.Errorf("after the invitation the key store still holds %d key events, want none", len(p))
		}

		if err := env.Users.DeleteUser(ctx, o.ID, mgr, u.ID); err != nil {
			t.Fatal(err)
		}
		evs = env.Events(t, o.ID, mgr)
		last = evs[len(evs)-2:]
		if last[0].Action != "user.delete" || last[1].Action != "key.destroyed" || last[1].Actor != mgr.AuditName() || !strings.HasPrefix(last[1].Target, "key:") {
			t.Errorf("the chain ends with %s, %s by %s on %q; want user.delete, then key.destroyed by %s on the key", last[0].Action, last[1].Action, last[1].Actor, last[1].Target, mgr.AuditName())
		}
		if last[1].Client != "" {
			t.Errorf("key.destroyed carries the client address %q, want none", last[1].Client)
		}
		if p := pendingKeyEvents(t, env); len(p) != 0 {
			t.Errorf("after the deletion the key store still holds %d key events, want none", len(p))
		}
	})
}

// Issue 11 item 5, acceptance: a process killed between a key destruction
// and its audit append loses no key event: the event appears in the chain
// after restart, once. The crash is the key store's commit with nothing
// after it: the destruction is made through the key store alone, as the
// deleting process does just before it would drain, and this process
// (which could drain) is then left aside; a second one starts on the same
// databases, as kluis serve and every command do.
func TestKeyEventOfAKilledProcessIsRecordedAtRestart(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "ke-kill")
		m := env.NewMember(t, o, mgr, "m@ke-kill.example", kluis.RoleMember)
		if err := env.KeyStore.DestroyUserKey(ctx, string(o.ID), string(m.UserID), mgr.AuditName()); err != nil {
			t.Fatal(err)
		}
		if n := kluistest.CountAction(env.Events(t, o.ID, mgr), "key.destroyed"); n != 0 {
			t.Fatalf("before the restart the chain holds %d key.destroyed, want 0 (the test crashes nothing)", n)
		}
		if p := pendingKeyEvents(t, env); len(p) != 1 || p[0].Action != keys.ActionDestroyed || p[0].Actor != mgr.AuditName() {
			t.Fatalf("the key store holds %+v, want the destruction by %s", p, mgr.AuditName())
		}

		restarted, _ := env.OtherProcess(t, keys.Options{})
		if err := restarted.Start(ctx); err != nil {
			t.Fatalf("start: %v", err)
		}
		var destroyed []kluis.AuditEvent
		for _, e := range env.Events(t, o.ID, mgr) {
			if e.Action == "key.destroyed" {
				destroyed = append(destroyed, e)
			}
		}
		if len(destroyed) != 1 {
			t.Fatalf("after the restart the chain holds %d key.destroyed, want 1", len(destroyed))
		}
		if d := destroyed[0]; d.Actor != mgr.AuditName() || !strings.HasPrefix(d.Target, "key:") ||
			!strings.Contains(string(d.Details), `"kind":"user"`) || !strings.Contains(string(d.Details), `"org":"`+string(o.ID)+`"`) {
			t.Errorf("key.destroyed: %+v; want by %s, on the key, kind user of the organisation", d, mgr.AuditName())
		}
		if p := pendingKeyEvents(t, env); len(p) != 0 {
			t.Errorf("after the restart the key store still holds %d key events, want none", len(p))
		}
		for name, st := range map[string]*areas.Areas{"the restarted process": restarted, "the first process": env.Areas} {
			if n, err := st.Core.DrainKeyEvents(ctx); err != nil || n != 0 {
				t.Errorf("%s drains again: %d appended, %v; want 0", name, n, err)
			}
		}
		if n := kluistest.CountAction(env.Events(t, o.ID, mgr), "key.destroyed"); n != 1 {
			t.Errorf("the chain holds %d key.destroyed, want 1", n)
		}
		wantChainsIntact(t, restarted)
	})
}

// Issue 11 item 5: a drain interrupted after its data commit and before the
// key store marked the events done does not append them twice: the next
// drain finds their ids noted and only marks them.
func TestInterruptedKeyEventDrainAppendsOnce(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "ke-half")
		m := env.NewMember(t, o, mgr, "m@ke-half.example", kluis.RoleMember)
		if err := env.KeyStore.DestroyUserKey(ctx, string(o.ID), string(m.UserID), mgr.AuditName()); err != nil {
			t.Fatal(err)
		}
		pending := pendingKeyEvents(t, env)
		if len(pending) != 1 {
			t.Fatalf("the key store holds %d events, want the destruction", len(pending))
		}
		if n, err := env.Core.AppendKeyEventsOnly(ctx, pending); err != nil || n != 1 {
			t.Fatalf("the drain's data transaction: %d appended, %v; want 1", n, err)
		}
		// The process dies here: the key store was not told.
		if p := pendingKeyEvents(t, env); len(p) != 1 || p[0].EventID != pending[0].EventID {
			t.Fatalf("the key store holds %+v, want the same event still pending", p)
		}

		restarted, _ := env.OtherProcess(t, keys.Options{})
		if n, err := restarted.Core.DrainKeyEvents(ctx); err != nil || n != 0 {
			t.Errorf("the drain after the restart: %d appended, %v; want 0 (the event is in the chain)", n, err)
		}
		if p := pendingKeyEvents(t, env); len(p) != 0 {
			t.Errorf("the key store still holds %d events, want none", len(p))
		}
		if n := kluistest.CountAction(env.Events(t, o.ID, mgr), "key.destroyed"); n != 1 {
			t.Errorf("the chain holds %d key.destroyed, want 1", n)
		}
		wantChainsIntact(t, restarted)
	})
}

// Several processes (nodes, a command beside the server) drain at once:
// each event is appended once, in the chain it belongs to, and the chains
// stay intact (on PostgreSQL the drains wait for each other, they do not
// deadlock).
func TestConcurrentKeyEventDrainsAppendEachOnce(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "ke-many")
		var members []kluis.Actor
		for _, name := range []string{"a", "b", "c"} {
			members = append(members, env.NewMember(t, o, mgr, name+"@ke-many.example", kluis.RoleMember))
		}
		// The other process is running already (its start drains what it
		// finds, and here that is nothing yet).
		other, _ := env.OtherProcess(t, keys.Options{})
		// Changes made by a process that stopped before draining: user keys
		// (the organisation's chain) and an organisation key rotation (the
		// platform chain and the organisation's).
		for _, m := range members {
			if err := env.KeyStore.DestroyUserKey(ctx, string(o.ID), string(m.UserID), mgr.AuditName()); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := env.KeyStore.RotateOrgKey(ctx, string(o.ID), "cli"); err != nil {
			t.Fatal(err)
		}
		want := len(pendingKeyEvents(t, env))
		if want < 7 { // three destructions, the organisation key's rotation and retirement, the manager's key's
			t.Fatalf("the key store holds %d events, want at least 7", want)
		}
		count := func() int {
			rows := env.Query(t, `SELECT COUNT(*) FROM audit_events WHERE action LIKE 'key.%'`)
			n := 0
			for _, c := range rows[0][0] {
				n = n*10 + int(c-'0')
			}
			return n
		}
		before := count()

		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			total int
		)
		for i := range 6 {
			st := env.Areas
			if i%2 == 1 {
				st = other
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := st.Core.DrainKeyEvents(ctx)
				if err != nil {
					t.Errorf("drain: %v", err)
				}
				mu.Lock()
				total += n
				mu.Unlock()
			}()
		}
		wg.Wait()
		if total != want {
			t.Errorf("the drains appended %d events in all, want %d", total, want)
		}
		if got := count() - before; got != want {
			t.Errorf("the chains gained %d key events, want %d", got, want)
		}
		if n := kluistest.CountAction(env.Events(t, o.ID, mgr), "key.destroyed"); n != len(members) {
			t.Errorf("the organisation's chain holds %d key.destroyed, want %d", n, len(members))
		}
		if p := pendingKeyEvents(t, env); len(p) != 0 {
			t.Errorf("the key store still holds %d events, want none", len(p))
		}
		wantChainsIntact(t, env.Areas)
	})
}
