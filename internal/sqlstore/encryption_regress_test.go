package sqlstore_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/password"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Security review finding (crypto-shredding, R22 R28): a pending key
// destruction of organisation B is never done by, or recorded under, a
// request of organisation A's manager (actor and client address); the
// background retry does it as the system, with no client address.
func TestPendingShredIsNotAttributedToAnotherTenant(t *testing.T) {
	forEngine(t, func(t *testing.T, env *kluistest.Env) {
		bg := context.Background()
		a, mgrA := org(t, env, "rva")
		b, mgrB := org(t, env, "rvb")
		victimA := member(t, env, a, mgrA, "va@rva.example", kluis.RoleMember)
		gone := member(t, env, b, mgrB, "gone@rvb.example", kluis.RoleMember)
		// Simulate DeleteUser in B whose key destruction failed (key store
		// unreachable): the row is gone, the key_shreds note stays.
		env.MustExec(t, `DELETE FROM users WHERE id = '`+string(gone.UserID)+`'`)
		env.MustExec(t, `INSERT INTO key_shreds (id, org_id, user_id, created_at, attempts) VALUES ('x1', '`+string(b.ID)+`', '`+string(gone.UserID)+`', 0, 1)`)

		ctxA := sqlstore.WithClient(bg, netip.MustParseAddr("198.51.100.77"))
		if err := env.Store.DeleteUser(ctxA, a.ID, mgrA, victimA.UserID); err != nil {
			t.Fatal(err)
		}
		var evs []sqlstore.AuditEvent
		if err := env.Store.ExportAudit(bg, b.ID, mgrB, sqlstore.AuditFilter{}, func(e sqlstore.AuditEvent) error {
			evs = append(evs, e)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Action == "key.destroyed" {
				t.Errorf("org B's pending destruction ran in org A's request: %s by %s, client %q", e.Action, e.Actor, e.Client)
			}
		}
		if n, err := env.Store.Shred(bg); err != nil || n != 0 {
			t.Fatalf("Shred: %d pending, %v", n, err)
		}
		evs = evs[:0]
		if err := env.Store.ExportAudit(bg, b.ID, mgrB, sqlstore.AuditFilter{Action: "key.destroyed"}, func(e sqlstore.AuditEvent) error {
			evs = append(evs, e)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].Actor != "system" || evs[0].Client != "" {
			t.Errorf("the retried destruction in org B's chain: %+v, want one by system without a client address", evs)
		}
	})
}

// Regression (security review), the bug that must not return: a transient key store failure makes ClaimDue delete queued mail for good.
func TestQueuedMailSurvivesAKeyStoreOutage(t *testing.T) {
	forEngine(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := org(t, env, "rvm")
		env.Mail(t)
		email := "later@rvm.example"
		if _, err := env.Store.InviteUser(ctx, o.ID, mgr, kluis.UserInput{Email: &email}); err != nil {
			t.Fatal(err)
		}
		other, ks := env.OtherProcess(t)
		ks.Close() // the key store is unreachable for this process for a moment
		q, err := other.ClaimDue(ctx, env.Clock.Now(), 10, time.Minute)
		t.Logf("ClaimDue: %d claimed, err %v", len(q), err)
		n, _ := env.Store.QueuedMail(ctx)
		if n == 0 {
			t.Errorf("LOST: the invitation mail was deleted from the queue because the key store was unreachable")
		}
	})
}

// Regression (security review), the bug that must not return: a deleted user's own client addresses stay readable (org key).
func TestDeletedUsersAddressesAreErased(t *testing.T) {
	forEngine(t, func(t *testing.T, env *kluistest.Env) {
		bg := context.Background()
		o, mgr := org(t, env, "rvd")
		m := member(t, env, o, mgr, "del@rvd.example", kluis.RoleMember)
		ctxM := sqlstore.WithClient(bg, netip.MustParseAddr("203.0.113.99"))
		if _, _, err := env.Store.Login(ctxM, o.ID, "del@rvd.example", pw); err != nil {
			t.Fatal(err)
		}
		if err := env.Store.DeleteUser(bg, o.ID, mgr, m.UserID); err != nil {
			t.Fatal(err)
		}
		env.Store.ExportAudit(bg, o.ID, mgr, sqlstore.AuditFilter{}, func(e sqlstore.AuditEvent) error {
			if e.Target == "user:"+string(m.UserID) && e.Client == "203.0.113.99" {
				t.Errorf("after deletion: %s of the deleted user still shows client %q", e.Action, e.Client)
			}
			return nil
		})
	})
}

// Regression (security review), the bug that must not return: one unreadable row stops the re-encryption of every organisation
// sorted after it.
func TestOneBadRowDoesNotBlockReencryption(t *testing.T) {
	forEngine(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		_, mgrA := org(t, env, "aa-rv")
		b, _ := org(t, env, "bb-rv")
		_ = b
		// a ciphertext moved within a row (corruption, a bad restore): name <- email
		env.MustExec(t, `UPDATE users SET name = email WHERE id = '`+string(mgrA.UserID)+`'`)
		for _, s := range []string{"aa-rv", "bb-rv"} {
			if _, err := env.Store.RotateOrgKey(ctx, kluis.CLIActor, s); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 3; i++ {
			env.Clock.Advance(env.Keys.CacheTTL())
			_, err := env.Store.Reencrypt(ctx, nil)
			t.Logf("round %d: %v", i, err)
		}
		jobs, _ := env.Store.Reencryptions(ctx)
		for _, j := range jobs {
			t.Logf("job %s finished=%v resealed=%d", j.Slug, j.Finished(), j.Resealed)
			if j.Slug == "bb-rv" && !j.Finished() {
				t.Errorf("org bb-rv's re-encryption never progresses because of a bad row in aa-rv (stale rows %d)", reencStaleRows(t, env, b.ID))
			}
		}
	})
}

// Regression (security review), the bug that must not return: under key cache pressure a process keeps sealing with a retired
// version after the job finished: sealing re-puts a stale active version.
func TestRetiredVersionStopsSealingAfterTheTTL(t *testing.T) {
	forEngine(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := org(t, env, "rvs")
		m := member(t, env, o, mgr, "m@rvs.example", kluis.RoleMember)
		ks, err := keys.OpenStore(ctx, env.KeysDSN, env.Root, env.Clock.Now, keys.Options{CacheSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ks.Close() })
		h, _ := password.NewHasher(kluistest.FastArgon2, 0)
		stale, err := sqlstore.NewStore(env.DB, sqlstore.Options{Now: env.Clock.Now, Hasher: h, Signer: env.Signer, Witness: env.Witness, Keys: ks})
		if err != nil {
			t.Fatal(err)
		}
		upd := func(name string) {
			t.Helper()
			if _, err := stale.UpdateMe(ctx, o.ID, m, kluis.UserInput{Name: ptr(name)}); err != nil {
				t.Fatal(err)
			}
		}
		upd("A") // caches the active version v1 of m's key
		if _, err := env.Store.RotateOrgKey(ctx, kluis.CLIActor, "rvs"); err != nil {
			t.Fatal(err)
		}
		ttl := env.Keys.CacheTTL()
		if _, err := env.Store.Reencrypt(ctx, nil); err != nil { // first pass: row now under v2
			t.Fatal(err)
		}
		env.Clock.Advance(ttl - time.Second)
		upd("B")                           // opens v2 (evicting v1's entry), seals with cached v1 and re-puts it for another TTL
		env.Clock.Advance(2 * time.Second) // past SettledAt
		for i := 0; i < 5; i++ {
			jobs, err := env.Store.Reencrypt(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(jobs) == 1 && jobs[0].Finished() {
				break
			}
		}
		jobs, _ := env.Store.Reencryptions(ctx)
		upd("C") // more than a TTL after the rotation, after the job finished
		n := reencStaleRows(t, env, o.ID)
		t.Logf("job finished=%v; rows under retired versions now: %d", jobs[0].Finished(), n)
		if jobs[0].Finished() && n > 0 {
			t.Errorf("a finished re-encryption, yet %d values sealed under the retired version more than the TTL after the rotation", n)
		}
	})
}
