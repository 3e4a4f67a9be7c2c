package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/password"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/areas"
	"github.com/kluis/kluis/internal/sqlstore/auditlog"
)

// forEngine runs a storage test on SQLite and on PostgreSQL.
func forEngine(t *testing.T, test func(t *testing.T, env *kluistest.Env)) {
	t.Helper()
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			test(t, kluistest.NewEnv(t, engine))
		})
	}
}

const pw = "correct-horse-9"

// org creates an organisation whose first manager has accepted and signed
// in; it returns the org and the manager's actor.
func org(t *testing.T, env *kluistest.Env, slug string) (kluis.Org, kluis.Actor) {
	t.Helper()
	ctx := context.Background()
	o, link, err := env.Orgs.CreateOrg(ctx, kluis.CLIActor, kluis.NewOrg{Slug: slug, Name: "Org " + slug, ManagerEmail: "boss@" + slug + ".example"})
	if err != nil {
		t.Fatalf("CreateOrg: %v", err)
	}
	if _, err := env.Users.AcceptInvitation(ctx, o.ID, kluis.Origin{}, kluistest.Token(link), "Boss", pw); err != nil {
		t.Fatalf("AcceptInvitation: %v", err)
	}
	return o, login(t, env, o.ID, "boss@"+slug+".example")
}

func login(t *testing.T, env *kluistest.Env, org kluis.OrgID, email string) kluis.Actor {
	t.Helper()
	sess, _, err := kluistest.Login(context.Background(), env.SignIn, org, email, pw)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	actor, _, err := kluistest.Authenticate(context.Background(), env.SignIn, sess.Token)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return actor
}

// member invites and activates a member; it returns the member's actor.
func member(t *testing.T, env *kluistest.Env, o kluis.Org, manager kluis.Actor, email string, role kluis.Role) kluis.Actor {
	t.Helper()
	ctx := context.Background()
	u, err := env.Users.InviteUser(ctx, o.ID, manager, kluis.UserInput{Email: &email, Role: &role})
	if err != nil {
		t.Fatalf("InviteUser: %v", err)
	}
	if _, err := env.Users.AcceptInvitation(ctx, o.ID, kluis.Origin{}, env.LastToken(t), "Member", pw); err != nil {
		t.Fatalf("AcceptInvitation: %v", err)
	}
	a := login(t, env, o.ID, email)
	if a.UserID != u.ID {
		t.Fatalf("logged in as %s, want %s", a.UserID, u.ID)
	}
	return a
}

func events(t *testing.T, env *kluistest.Env, o kluis.OrgID, manager kluis.Actor) []kluis.AuditEvent {
	t.Helper()
	evs, _, err := env.Audit.FindAuditEvents(context.Background(), o, manager, kluis.AuditFilter{Limit: kluis.MaxAuditPage})
	if err != nil {
		t.Fatalf("FindAuditEvents: %v", err)
	}
	return evs
}

func countAction(evs []kluis.AuditEvent, action string) int {
	n := 0
	for _, e := range evs {
		if e.Action == action {
			n++
		}
	}
	return n
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := kluis.ErrorCode(err); err == nil || got != code {
		t.Fatalf("got error %v (code %q), want code %q", err, got, code)
	}
}

// R1: every store method scopes by the organisation id it is given; a
// manager of A reaching for B's user through A's id finds nothing, and
// through B's id is not a user of B.
func TestStoreKeepsOrganisationsApart(t *testing.T) {
	forEngine(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		a, managerA := org(t, env, "alpha")
		b, managerB := org(t, env, "beta")
		victim := member(t, env, b, managerB, "victim@beta.example", kluis.RoleMember)

		_, err := env.Users.FindUserByID(ctx, a.ID, managerA, victim.UserID)
		wantCode(t, err, kluis.ENotFound)
		name := "Hacked"
		_, err = env.Users.UpdateUser(ctx, a.ID, managerA, victim.UserID, kluis.UserInput{Name: &name})
		wantCode(t, err, kluis.ENotFound)
		wantCode(t, env.Users.DeleteUser(ctx, a.ID, managerA, victim.UserID), kluis.ENotFound)
		wantCode(t, env.Users.ResendInvitation(ctx, a.ID, managerA, victim.UserID), kluis.ENotFound)
		// With B's id but A's actor, the rule refuses before anything is read.
		_, err = env.Users.FindUserByID(ctx, b.ID, managerA, victim.UserID)
		wantCode(t, err, kluis.EForbidden)
		_, err = env.Users.FindUsers(ctx, b.ID, managerA)
		wantCode(t, err, kluis.EForbidden)

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
	forEngine(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := org(t, env, "gamma")
		m := member(t, env, o, manager, "m@gamma.example", kluis.RoleMember)
		name := "Renamed"
		if _, err := env.Users.UpdateUser(ctx, o.ID, manager, m.UserID, kluis.UserInput{Name: &name}); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Users.UpdateMe(ctx, o.ID, m, kluis.UserInput{Name: &name}); err != nil {
			t.Fatal(err) // no change: no event
		}
		if err := env.SignIn.ChangePassword(ctx, kluis.OrgScope(o.ID), m, pw, "another-passw0rd"); err != nil {
			t.Fatal(err)
		}
		if err := env.SignIn.Logout(ctx, kluis.OrgScope(o.ID), m); err != nil {
			t.Fatal(err)
		}
		evs := events(t, env, o.ID, manager)
		for action, want := range map[string]int{
			"user.invite": 2, "user.invitation_accept": 2, "auth.login": 2, "user.update": 1,
			"user.password_change": 1, "auth.logout": 1,
		} {
			if got := countAction(evs, action); got != want {
				t.Errorf("%s: got %d events, want %d", action, got, want)
			}
		}
		before := len(evs)
		boom := errors.New("boom")
		if err := env.Core.AppendThenFail(ctx, o.ID, boom); !errors.Is(err, boom) {
			t.Fatalf("got %v, want boom", err)
		}
		evs = events(t, env, o.ID, manager)
		if len(evs) != before || countAction(evs, "test.rolled_back") != 0 {
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
	forEngine(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := org(t, env, "delta")
		m := member(t, env, o, manager, "m@delta.example", kluis.RoleMember)
		role := kluis.RoleManager
		_, err := env.Users.UpdateUser(ctx, o.ID, m, m.UserID, kluis.UserInput{Role: &role})
		wantCode(t, err, kluis.EForbidden)
		_, err = env.Orgs.UpdatePolicy(ctx, o.ID, m, kluis.DefaultPolicy)
		wantCode(t, err, kluis.EForbidden)
		evs := events(t, env, o.ID, manager)
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

// R8: the last active manager can be neither demoted, disabled nor deleted;
// on PostgreSQL two managers demoting each other at once leave one.
func TestLastManagerStays(t *testing.T) {
	forEngine(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := org(t, env, "epsilon")
		member := kluis.RoleMember
		yes := true
		_, err := env.Users.UpdateUser(ctx, o.ID, manager, manager.UserID, kluis.UserInput{Role: &member})
		wantCode(t, err, kluis.EConflict)
		_, err = env.Users.UpdateUser(ctx, o.ID, manager, manager.UserID, kluis.UserInput{Disabled: &yes})
		wantCode(t, err, kluis.EConflict)
		wantCode(t, env.Users.DeleteUser(ctx, o.ID, manager, manager.UserID), kluis.EConflict)

		second := memberOf(t, env, o, manager, "second@epsilon.example", kluis.RoleManager)
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

var memberOf = member

// R21, R14: sessions end when idle, at their absolute end, when the user is
// disabled or deleted, and at a password change (except the current one).
func TestSessionsEnd(t *testing.T) {
	forEngine(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := org(t, env, "zeta")
		open := func(email string) string {
			sess, _, err := kluistest.Login(ctx, env.SignIn, o.ID, email, pw)
			if err != nil {
				t.Fatal(err)
			}
			return sess.Token
		}
		alive := func(token string) bool {
			_, _, err := kluistest.Authenticate(ctx, env.SignIn, token)
			if err != nil && kluis.ErrorCode(err) != kluis.EUnauthenticated {
				t.Fatal(err)
			}
			return err == nil
		}
		m := member(t, env, o, manager, "m@zeta.example", kluis.RoleMember)

		idle := open("m@zeta.example")
		env.Clock.Advance(29 * time.Minute)
		if !alive(idle) {
			t.Fatal("session died before the idle timeout")
		}
		env.Clock.Advance(31 * time.Minute)
		if alive(idle) {
			t.Fatal("session outlived the idle timeout (R21)")
		}

		busy := open("m@zeta.example")
		for i := 0; i < 12*4-1; i++ {
			env.Clock.Advance(15 * time.Minute)
			if !alive(busy) {
				t.Fatalf("busy session died after %d quarters", i+1)
			}
		}
		env.Clock.Advance(16 * time.Minute)
		if alive(busy) {
			t.Fatal("session outlived its absolute lifetime")
		}

		manager = login(t, env, o.ID, "boss@zeta.example")
		other, current := open("m@zeta.example"), open("m@zeta.example")
		cur, _, err := kluistest.Authenticate(ctx, env.SignIn, current)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.SignIn.ChangePassword(ctx, kluis.OrgScope(o.ID), cur, pw, "Brand-new-passw0rd"); err != nil {
			t.Fatal(err)
		}
		if alive(other) || !alive(current) {
			t.Fatalf("after a password change: other alive=%v (want false), current alive=%v (want true)", alive(other), alive(current))
		}

		yes := true
		if _, err := env.Users.UpdateUser(ctx, o.ID, manager, m.UserID, kluis.UserInput{Disabled: &yes}); err != nil {
			t.Fatal(err)
		}
		if alive(current) {
			t.Fatal("a disabled user's session still works")
		}
		if _, _, err := kluistest.Login(ctx, env.SignIn, o.ID, "m@zeta.example", "Brand-new-passw0rd"); kluis.ErrorCode(err) != kluis.EUnauthenticated {
			t.Fatalf("disabled user logged in: %v", err)
		}
		no := false
		if _, err := env.Users.UpdateUser(ctx, o.ID, manager, m.UserID, kluis.UserInput{Disabled: &no}); err != nil {
			t.Fatal(err)
		}
		tok := ""
		if sess, _, err := kluistest.Login(ctx, env.SignIn, o.ID, "M@Zeta.example ", "Brand-new-passw0rd"); err != nil {
			t.Fatalf("re-enabled user cannot log in (e-mail normalised): %v", err)
		} else {
			tok = sess.Token
		}
		if err := env.Users.DeleteUser(ctx, o.ID, manager, m.UserID); err != nil {
			t.Fatal(err)
		}
		if alive(tok) {
			t.Fatal("a deleted user's session still works")
		}
	})
}

// R15: a hash made with weaker parameters is upgraded at the next login.
func TestWeakHashUpgradedAtLogin(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			weak := kluistest.NewEnv(t, engine)
			o, _ := org(t, weak, "eta")
			strong, err := password.NewHasher(password.Params{Memory: 2048, Time: 2, Threads: 1}, 0)
			if err != nil {
				t.Fatal(err)
			}
			core, err := sqlstore.New(weak.DB, sqlstore.Options{Now: weak.Clock.Now, Keys: weak.KeyStore})
			if err != nil {
				t.Fatal(err)
			}
			store := areas.New(core, areas.Config{Hasher: strong, Signer: weak.Signer, Witness: weak.Witness})
			if _, _, err := kluistest.Login(ctx, store.SignIn, o.ID, "boss@eta.example", pw); err != nil {
				t.Fatal(err)
			}
			n := weak.MustExec(t, "UPDATE users SET name = name WHERE password_hash LIKE '$argon2id$v=19$m=2048,t=2,p=1$%'")
			if n != 1 {
				t.Fatalf("got %d upgraded hashes, want 1", n)
			}
			if _, _, err := kluistest.Login(ctx, store.SignIn, o.ID, "boss@eta.example", pw); err != nil {
				t.Fatalf("login after upgrade: %v", err)
			}
		})
	}
}

// R3, R40: only name, e-mail, phone and the maintenance choice are stored,
// and the invitation token only as a hash.
func TestInvitationTokenStoredOnlyAsHash(t *testing.T) {
	forEngine(t, func(t *testing.T, env *kluistest.Env) {
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

// R25: concurrent writers of one organisation keep one contiguous chain.
func TestConcurrentWritesKeepTheChain(t *testing.T) {
	forEngine(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := org(t, env, "iota")
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
				o, manager := org(t, env, "kappa")
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

// R5, R36: deleting an organisation removes its users and sessions and
// queued mail; its audit chain stays and verifies; the deletion is recorded
// in the platform chain.
func TestDeleteOrganisation(t *testing.T) {
	forEngine(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := org(t, env, "lambda")
		member(t, env, o, manager, "m@lambda.example", kluis.RoleMember)
		_, err := env.Users.InviteUser(ctx, o.ID, manager, kluis.UserInput{Email: ptr("pending@lambda.example")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.Audit.Checkpoint(ctx, auditlog.DefaultCheckpointPolicy, true); err != nil {
			t.Fatal(err)
		}
		wantCode(t, env.Orgs.DeleteOrg(ctx, manager, o.Slug), kluis.EForbidden)
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
		wantCode(t, env.Orgs.DeleteOrg(ctx, kluis.CLIActor, o.Slug), kluis.ENotFound)
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

func ptr[T any](v T) *T { return &v }

// R1, DESIGN §4: e-mail is unique within an organisation after
// normalisation; the same address in two organisations is two unrelated
// accounts with their own passwords.
func TestSameEmailInTwoOrganisations(t *testing.T) {
	forEngine(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		a, managerA := org(t, env, "mu")
		b, managerB := org(t, env, "nu")
		shared := "Shared@Example.org"
		ua := member(t, env, a, managerA, shared, kluis.RoleMember)
		_, err := env.Users.InviteUser(ctx, a.ID, managerA, kluis.UserInput{Email: ptr(" shared@EXAMPLE.org")})
		wantCode(t, err, kluis.EConflict)
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
		if _, _, err := kluistest.Login(ctx, env.SignIn, b.ID, shared, pw); kluis.ErrorCode(err) != kluis.EUnauthenticated {
			t.Fatalf("A's password opened B's account: %v", err)
		}
		if _, u, err := kluistest.Login(ctx, env.SignIn, b.ID, shared, "a-different-passw0rd"); err != nil || u.ID != ub.ID {
			t.Fatalf("login in B: %v", err)
		}
	})
}

// R25, DESIGN §3: a checkpoint row forged in the database (far beyond the
// head) does not hold back new checkpoints: the last one is taken from the
// witness outside the database.
func TestForgedCheckpointRowDoesNotStopCheckpoints(t *testing.T) {
	forEngine(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := org(t, env, "xi")
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

// R45, DESIGN §5: a queued invitation mail carries its link; it goes with
// the invitation when the link is re-sent, revoked or used.
func TestQueuedInvitationMailGoesWithTheInvitation(t *testing.T) {
	forEngine(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := org(t, env, "omicron")
		env.Mail(t)
		queued := func() int64 { return env.MustExec(t, "UPDATE mail_queue SET id = id") }
		u, err := env.Users.InviteUser(ctx, o.ID, manager, kluis.UserInput{Email: ptr("new@omicron.example")})
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

// R24: refused requests name only valid ids; a manager's empty update is a
// recorded read, since the answer shows the user's data.
func TestAuditTargetsAndReads(t *testing.T) {
	forEngine(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := org(t, env, "pi")
		m := member(t, env, o, manager, "m@pi.example", kluis.RoleMember)
		_, err := env.Users.UpdateUser(ctx, o.ID, m, kluis.UserID("someone@else.example +31 6 1234"), kluis.UserInput{})
		wantCode(t, err, kluis.EForbidden)
		if _, err := env.Users.UpdateUser(ctx, o.ID, manager, m.UserID, kluis.UserInput{}); err != nil {
			t.Fatal(err)
		}
		evs := events(t, env, o.ID, manager)
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
