package users_test

import (
	"context"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
)

// R34: a person restricts and lifts processing of their own data, a manager
// of the people of their organisation; a member cannot restrict someone
// else (forbidden, recorded as a refusal), and another organisation's
// person or an unknown id is not_found. Restricting twice records once.
func TestRestrictionRights(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := env.NewOrg(t, "restrict")
		member := env.NewMember(t, o, manager, "mem@restrict.example", kluis.RoleMember)
		other := env.NewMember(t, o, manager, "other@restrict.example", kluis.RoleMember)
		o2, manager2 := env.NewOrg(t, "elsewhere")

		if err := env.Users.RestrictProcessing(ctx, o.ID, member, member.UserID); err != nil {
			t.Fatalf("the person restricts themselves: %v", err)
		}
		if err := env.Users.RestrictProcessing(ctx, o.ID, member, member.UserID); err != nil {
			t.Fatalf("again: %v", err)
		}
		kluistest.WantCode(t, env.Users.RestrictProcessing(ctx, o.ID, member, other.UserID), kluis.EForbidden)
		kluistest.WantCode(t, env.Users.RestrictProcessing(ctx, o2.ID, manager2, member.UserID), kluis.ENotFound)
		kluistest.WantCode(t, env.Users.RestrictProcessing(ctx, o.ID, manager, "01a00000-0000-7000-8000-000000000000"), kluis.ENotFound)
		u, err := env.Users.FindUserByID(ctx, o.ID, manager, member.UserID)
		if err != nil || !u.Restricted() {
			t.Fatalf("the manager reads %+v (%v), want restricted", u, err)
		}
		if err := env.Users.LiftRestriction(ctx, o.ID, manager, member.UserID); err != nil {
			t.Fatalf("the manager lifts: %v", err)
		}
		if err := env.Users.RestrictProcessing(ctx, o.ID, manager, other.UserID); err != nil {
			t.Fatalf("the manager restricts another: %v", err)
		}
		if err := env.Users.LiftRestriction(ctx, o.ID, other, other.UserID); err != nil {
			t.Fatalf("the person lifts a restriction a manager set: %v", err)
		}

		evs := env.Events(t, o.ID, manager)
		if n := kluistest.CountAction(evs, "user.restrict"); n != 3 {
			t.Errorf("%d user.restrict events, want 3 (2 done, 1 refused; the repeat records nothing)", n)
		}
		refused := 0
		for _, e := range evs {
			if e.Action == "user.restrict" && e.Outcome == "denied" && e.Target == "user:"+string(other.UserID) {
				refused++
			}
		}
		if refused != 1 {
			t.Errorf("%d recorded refusals of the member restricting another, want 1", refused)
		}
		if n := kluistest.CountAction(evs, "user.lift_restriction"); n != 2 {
			t.Errorf("%d user.lift_restriction events, want 2", n)
		}
	})
}
