package auditlog_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/auditlog"
)

// R25: tampering with stored events is found at the right sequence number.
func TestTamperingDetected(t *testing.T) {
	cases := []struct {
		name   string
		tamper string // SQL; CHAIN is replaced by the org chain id
		want   int64
	}{
		{"updated action", "UPDATE audit_events SET action = 'user.read' WHERE chain = 'CHAIN' AND seq = 3", 3},
		{"deleted middle row", "DELETE FROM audit_events WHERE chain = 'CHAIN' AND seq = 4", 4},
		{"updated time", "UPDATE audit_events SET at = at + 1 WHERE chain = 'CHAIN' AND seq = 2", 2},
		{"rows after the checkpoint deleted with the head rewritten",
			"DELETE FROM audit_events WHERE chain = 'CHAIN' AND seq > 5; UPDATE audit_heads SET seq = 5, hash = (SELECT hash FROM audit_events WHERE chain = 'CHAIN' AND seq = 5) WHERE chain = 'CHAIN'; DELETE FROM audit_checkpoints WHERE chain = 'CHAIN'", 6},
	}
	for _, engine := range kluistest.Engines {
		for _, c := range cases {
			t.Run(engine+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				env := kluistest.NewEnv(t, engine)
				ctx := context.Background()
				o, manager := env.NewOrg(t, "kappa")
				for i := 0; i < 5; i++ {
					name := fmt.Sprintf("Name %d", i)
					if _, err := env.Users.UpdateMe(ctx, o.ID, manager, kluis.UserInput{Name: &name}); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := env.Audit.Checkpoint(ctx, auditlog.DefaultCheckpointPolicy, true); err != nil {
					t.Fatal(err)
				}
				chain := sqlstore.OrgChain(o.ID)
				for _, stmt := range strings.Split(strings.ReplaceAll(c.tamper, "CHAIN", chain), "; ") {
					env.MustExec(t, stmt)
				}
				rs, err := env.Audit.VerifyChains(ctx, chain)
				if err != nil {
					t.Fatal(err)
				}
				if rs[0].OK || rs[0].FirstBrokenSeq != c.want {
					t.Fatalf("got %+v, want broken at %d", rs[0], c.want)
				}
				platform, err := env.Audit.VerifyChains(ctx, audit.PlatformChain)
				if err != nil || !platform[0].OK {
					t.Fatalf("platform chain: %+v, %v", platform, err)
				}
			})
		}
	}
}

// R25, DESIGN §3: a checkpoint row forged in the database (far beyond the
// head) does not hold back new checkpoints: the last one is taken from the
// witness outside the database.
func TestForgedCheckpointRowDoesNotStopCheckpoints(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := env.NewOrg(t, "xi")
		if _, err := env.Audit.Checkpoint(ctx, auditlog.DefaultCheckpointPolicy, true); err != nil {
			t.Fatal(err)
		}
		chain := sqlstore.OrgChain(o.ID)
		env.MustExec(t, "INSERT INTO audit_checkpoints (chain, seq, hash, at, signature) SELECT chain, 999999999, hash, at, signature FROM audit_checkpoints WHERE chain = '"+chain+"'")
		name := "After the forgery"
		if _, err := env.Users.UpdateMe(ctx, o.ID, manager, kluis.UserInput{Name: &name}); err != nil {
			t.Fatal(err)
		}
		n, err := env.Audit.Checkpoint(ctx, auditlog.DefaultCheckpointPolicy, true)
		if err != nil || n == 0 {
			t.Fatalf("got %d checkpoints (%v), want the chain checkpointed despite the forged row", n, err)
		}
		rs, err := env.Audit.VerifyChains(ctx, chain)
		if err != nil {
			t.Fatal(err)
		}
		if rs[0].OK {
			t.Fatal("the forged checkpoint row was not reported")
		}
	})
}

// R24: refused requests name only valid ids; a manager's empty update is a
// recorded read, since the answer shows the user's data.
func TestAuditTargetsAndReads(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := env.NewOrg(t, "pi")
		m := env.NewMember(t, o, manager, "m@pi.example", kluis.RoleMember)
		_, err := env.Users.UpdateUser(ctx, o.ID, m, kluis.UserID("someone@else.example +31 6 1234"), kluis.UserInput{})
		kluistest.WantCode(t, err, kluis.EForbidden)
		if _, err := env.Users.UpdateUser(ctx, o.ID, manager, m.UserID, kluis.UserInput{}); err != nil {
			t.Fatal(err)
		}
		evs := env.Events(t, o.ID, manager)
		for _, e := range evs {
			if strings.Contains(e.Target, "@") || strings.Contains(e.Target, "+31") {
				t.Errorf("event %d (%s) has a target from the URL: %q", e.Seq, e.Action, e.Target)
			}
		}
		last := evs[len(evs)-1]
		if last.Action != "user.read" || last.Target != "user:"+string(m.UserID) {
			t.Fatalf("an empty update recorded %s %s, want user.read of the member", last.Action, last.Target)
		}
	})
}
