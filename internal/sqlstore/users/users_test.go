package users_test

import (
	"context"
	"sync"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
)

// R8: the last active manager can be neither demoted, disabled nor deleted;
// on PostgreSQL two managers demoting each other at once leave one.
func TestLastManagerStays(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := env.NewOrg(t, "epsilon")
		member := kluis.RoleMember
		yes := true
		_, err := env.Users.UpdateUser(ctx, o.ID, manager, manager.UserID, kluis.UserInput{Role: &member})
		kluistest.WantCode(t, err, kluis.EConflict)
		_, err = env.Users.UpdateUser(ctx, o.ID, manager, manager.UserID, kluis.UserInput{Disabled: &yes})
		kluistest.WantCode(t, err, kluis.EConflict)
		kluistest.WantCode(t, env.Users.DeleteUser(ctx, o.ID, manager, manager.UserID), kluis.EConflict)

		second := env.NewMember(t, o, manager, "second@epsilon.example", kluis.RoleManager)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, pair := range [][2]kluis.Actor{{manager, second}, {second, manager}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = env.Users.UpdateUser(ctx, o.ID, pair[0], pair[1].UserID, kluis.UserInput{Role: &member})
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else if kluis.ErrorCode(err) != kluis.EConflict && kluis.ErrorCode(err) != kluis.EForbidden {
				t.Fatalf("unexpected error: %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("got %d successful demotions, want exactly 1 (errors %v)", ok, errs)
		}
	})
}

// R3, R40: only name, e-mail, phone and the maintenance choice are stored,
// and the invitation token only as a hash.
func TestInvitationTokenStoredOnlyAsHash(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		_, link, err := env.Orgs.CreateOrg(ctx, kluis.CLIActor, kluis.NewOrg{Slug: "theta", Name: "Theta", ManagerEmail: "x@theta.example"})
		if err != nil {
			t.Fatal(err)
		}
		token := kluistest.Token(link)
		if n := env.MustExec(t, "UPDATE invitations SET id = id WHERE CAST(token_hash AS TEXT) LIKE '%"+token+"%'"); n != 0 {
			t.Fatal("the invitation token is stored in clear")
		}
		if n := env.MustExec(t, "UPDATE mail_queue SET id = id"); n != 1 {
			t.Fatalf("got %d queued mails, want 1", n)
		}
		env.Mail(t)
		if n := env.MustExec(t, "UPDATE mail_queue SET id = id"); n != 0 {
			t.Fatalf("delivered mail stays in the queue: %d rows", n)
		}
	})
}

// R1, DESIGN §4: e-mail is unique within an organisation after
// normalisation; the same address in two organisations is two unrelated
// accounts with their own passwords.
func TestSameEmailInTwoOrganisations(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		a, managerA := env.NewOrg(t, "mu")
		b, managerB := env.NewOrg(t, "nu")
		shared := "Shared@Example.org"
		ua := env.NewMember(t, a, managerA, shared, kluis.RoleMember)
		_, err := env.Users.InviteUser(ctx, a.ID, managerA, kluis.UserInput{Email: new(" shared@EXAMPLE.org")})
		kluistest.WantCode(t, err, kluis.EConflict)
		ub, err := env.Users.InviteUser(ctx, b.ID, managerB, kluis.UserInput{Email: &shared})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.Users.AcceptInvitation(ctx, b.ID, kluis.Origin{}, env.LastToken(t), "Other", "a-different-passw0rd"); err != nil {
			t.Fatal(err)
		}
		if ua.UserID == ub.ID {
			t.Fatal("one account for two organisations")
		}
		if _, _, err := kluistest.Login(ctx, env.SignIn, b.ID, shared, kluistest.Password); kluis.ErrorCode(err) != kluis.EUnauthenticated {
			t.Fatalf("A's password opened B's account: %v", err)
		}
		if _, u, err := kluistest.Login(ctx, env.SignIn, b.ID, shared, "a-different-passw0rd"); err != nil || u.ID != ub.ID {
			t.Fatalf("login in B: %v", err)
		}
	})
}

// R45, DESIGN §5: a queued invitation mail carries its link; it goes with
// the invitation when the link is re-sent, revoked or used.
func TestQueuedInvitationMailGoesWithTheInvitation(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := env.NewOrg(t, "omicron")
		env.Mail(t)
		queued := func() int64 { return env.MustExec(t, "UPDATE mail_queue SET id = id") }
		u, err := env.Users.InviteUser(ctx, o.ID, manager, kluis.UserInput{Email: new("new@omicron.example")})
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Users.ResendInvitation(ctx, o.ID, manager, u.ID); err != nil {
			t.Fatal(err)
		}
		if n := queued(); n != 1 {
			t.Fatalf("after a re-send: %d queued mails, want only the new link's", n)
		}
		if err := env.Users.RevokeInvitation(ctx, o.ID, manager, u.ID); err != nil {
			t.Fatal(err)
		}
		if n := queued(); n != 0 {
			t.Fatalf("after a revoke: %d queued mails, want 0", n)
		}
	})
}
