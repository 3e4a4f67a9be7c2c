package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore/auditlog"
)

// R1: every store method scopes by the organisation id it is given; a
// manager of A reaching for B's user through A's id finds nothing, and
// through B's id is not a user of B.
func TestStoreKeepsOrganisationsApart(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		a, managerA := env.NewOrg(t, "alpha")
		b, managerB := env.NewOrg(t, "beta")
		victim := env.NewMember(t, b, managerB, "victim@beta.example", kluis.RoleMember)

		_, err := env.Users.FindUserByID(ctx, a.ID, managerA, victim.UserID)
		kluistest.WantCode(t, err, kluis.ENotFound)
		name := "Hacked"
		_, err = env.Users.UpdateUser(ctx, a.ID, managerA, victim.UserID, kluis.UserInput{Name: &name})
		kluistest.WantCode(t, err, kluis.ENotFound)
		kluistest.WantCode(t, env.Users.DeleteUser(ctx, a.ID, managerA, victim.UserID), kluis.ENotFound)
		kluistest.WantCode(t, env.Users.ResendInvitation(ctx, a.ID, managerA, victim.UserID), kluis.ENotFound)
		// With B's id but A's actor, the rule refuses before anything is read.
		_, err = env.Users.FindUserByID(ctx, b.ID, managerA, victim.UserID)
		kluistest.WantCode(t, err, kluis.EForbidden)
		_, err = env.Users.FindUsers(ctx, b.ID, managerA)
		kluistest.WantCode(t, err, kluis.EForbidden)

		users, err := env.Users.FindUsers(ctx, a.ID, managerA)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			if u.OrgID != a.ID || u.ID == victim.UserID {
				t.Errorf("FindUsers(A) returned %s of org %s", u.ID, u.OrgID)
			}
		}
		if u, err := env.Users.FindUserByID(ctx, b.ID, managerB, victim.UserID); err != nil || u.Name != "Member" {
			t.Fatalf("victim changed: %+v, %v", u, err)
		}
	})
}

// R23: each audited action produces exactly one event, in the chain of its
// organisation; a transaction that fails after appending leaves none.
func TestAuditOneEventPerActionAndNoneOnRollback(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := env.NewOrg(t, "gamma")
		m := env.NewMember(t, o, manager, "m@gamma.example", kluis.RoleMember)
		name := "Renamed"
		if _, err := env.Users.UpdateUser(ctx, o.ID, manager, m.UserID, kluis.UserInput{Name: &name}); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Users.UpdateMe(ctx, o.ID, m, kluis.UserInput{Name: &name}); err != nil {
			t.Fatal(err) // no change: no event
		}
		if err := env.SignIn.ChangePassword(ctx, kluis.OrgScope(o.ID), m, kluistest.Password, "another-passw0rd"); err != nil {
			t.Fatal(err)
		}
		if err := env.SignIn.Logout(ctx, kluis.OrgScope(o.ID), m); err != nil {
			t.Fatal(err)
		}
		evs := env.Events(t, o.ID, manager)
		for action, want := range map[string]int{
			"user.invite": 2, "user.invitation_accept": 2, "auth.login": 2, "user.update": 1,
			"user.password_change": 1, "auth.logout": 1,
		} {
			if got := kluistest.CountAction(evs, action); got != want {
				t.Errorf("%s: got %d events, want %d", action, got, want)
			}
		}
		before := len(evs)
		boom := errors.New("boom")
		if err := env.Core.AppendThenFail(ctx, o.ID, boom); !errors.Is(err, boom) {
			t.Fatalf("got %v, want boom", err)
		}
		evs = env.Events(t, o.ID, manager)
		if len(evs) != before || kluistest.CountAction(evs, "test.rolled_back") != 0 {
			t.Fatalf("rolled-back transaction left an event: %d events, want %d", len(evs), before)
		}
		res, err := env.Audit.VerifyOrgAudit(ctx, o.ID, manager)
		if err != nil || !res.OK {
			t.Fatalf("chain after rollback: %+v, %v", res, err)
		}
	})
}

// R6, R23: a refused request changes nothing but is recorded as denied.
func TestDenialsAreRecorded(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := env.NewOrg(t, "delta")
		m := env.NewMember(t, o, manager, "m@delta.example", kluis.RoleMember)
		role := kluis.RoleManager
		_, err := env.Users.UpdateUser(ctx, o.ID, m, m.UserID, kluis.UserInput{Role: &role})
		kluistest.WantCode(t, err, kluis.EForbidden)
		_, err = env.Orgs.UpdatePolicy(ctx, o.ID, m, kluis.DefaultPolicy)
		kluistest.WantCode(t, err, kluis.EForbidden)
		evs := env.Events(t, o.ID, manager)
		denied := 0
		for _, e := range evs {
			if e.Outcome == "denied" {
				denied++
				if e.Actor != "user:"+string(m.UserID) {
					t.Errorf("denied event actor %q, want the member", e.Actor)
				}
			}
		}
		if denied != 2 {
			t.Fatalf("got %d denied events, want 2", denied)
		}
		u, err := env.Users.FindUserByID(ctx, o.ID, manager, m.UserID)
		if err != nil || u.Role != kluis.RoleMember {
			t.Fatalf("member became %q (%v), want member", u.Role, err)
		}
	})
}

// R25: concurrent writers of one organisation keep one contiguous chain.
func TestConcurrentWritesKeepTheChain(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := env.NewOrg(t, "iota")
		var wg sync.WaitGroup
		errc := make(chan error, 40)
		for i := 0; i < 40; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("Boss %d", i)
				_, err := env.Users.UpdateMe(ctx, o.ID, manager, kluis.UserInput{Name: &name})
				errc <- err
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			if err != nil {
				t.Fatal(err)
			}
		}
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
	})
}
