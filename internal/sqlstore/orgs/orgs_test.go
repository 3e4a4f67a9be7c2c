package orgs_test

import (
	"context"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore/auditlog"
)

// R5, R36: deleting an organisation removes its users and sessions and
// queued mail; its audit chain stays and verifies; the deletion is recorded
// in the platform chain.
func TestDeleteOrganisation(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := env.NewOrg(t, "lambda")
		env.NewMember(t, o, manager, "m@lambda.example", kluis.RoleMember)
		_, err := env.Users.InviteUser(ctx, o.ID, manager, kluis.UserInput{Email: new("pending@lambda.example")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.Audit.Checkpoint(ctx, auditlog.DefaultCheckpointPolicy, true); err != nil {
			t.Fatal(err)
		}
		kluistest.WantCode(t, env.Orgs.DeleteOrg(ctx, manager, o.Slug), kluis.EForbidden)
		if err := env.Orgs.DeleteOrg(ctx, kluis.CLIActor, o.Slug); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"users", "sessions", "invitations", "mail_queue", "orgs"} {
			if n := env.MustExec(t, "UPDATE "+table+" SET id = id"); n != 0 {
				t.Errorf("%s: %d rows left after deleting the organisation", table, n)
			}
		}
		if _, _, err := kluistest.Authenticate(ctx, env.SignIn, "x"); kluis.ErrorCode(err) != kluis.EUnauthenticated {
			t.Fatal(err)
		}
		kluistest.WantCode(t, env.Orgs.DeleteOrg(ctx, kluis.CLIActor, o.Slug), kluis.ENotFound)
		results, err := env.Audit.VerifyChains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(results) != 2 {
			t.Fatalf("got %d chains, want platform and the deleted org's", len(results))
		}
		for _, r := range results {
			if !r.OK {
				t.Fatalf("chain %s broken after deletion: %+v", r.Chain, r)
			}
		}
	})
}
