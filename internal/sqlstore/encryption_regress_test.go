package sqlstore_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Security review finding (crypto-shredding, R22 R28): a pending key
// destruction of organisation B is never done by, or recorded under, a
// request of organisation A's manager (actor and client address); the
// background retry does it as the system, with no client address.
func TestPendingShredIsNotAttributedToAnotherTenant(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		bg := context.Background()
		a, mgrA := env.NewOrg(t, "rva")
		b, mgrB := env.NewOrg(t, "rvb")
		victimA := env.NewMember(t, a, mgrA, "va@rva.example", kluis.RoleMember)
		gone := env.NewMember(t, b, mgrB, "gone@rvb.example", kluis.RoleMember)
		// Simulate DeleteUser in B whose key destruction failed (key store
		// unreachable): the row is gone, the key_shreds note stays.
		env.MustExec(t, `DELETE FROM users WHERE id = '`+string(gone.UserID)+`'`)
		env.MustExec(t, `INSERT INTO key_shreds (id, org_id, user_id, created_at, attempts) VALUES ('x1', '`+string(b.ID)+`', '`+string(gone.UserID)+`', 0, 1)`)

		mgrA.From = kluis.Origin{Client: netip.MustParseAddr("198.51.100.77")}
		if err := env.Users.DeleteUser(bg, a.ID, mgrA, victimA.UserID); err != nil {
			t.Fatal(err)
		}
		var evs []kluis.AuditEvent
		if err := env.Audit.ExportAudit(bg, b.ID, mgrB, kluis.AuditFilter{}, func(e kluis.AuditEvent) error {
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
		if n, err := env.Core.Shred(bg); err != nil || n != 0 {
			t.Fatalf("Shred: %d pending, %v", n, err)
		}
		evs = evs[:0]
		if err := env.Audit.ExportAudit(bg, b.ID, mgrB, kluis.AuditFilter{Action: "key.destroyed"}, func(e kluis.AuditEvent) error {
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
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "rvm")
		env.Mail(t)
		email := "later@rvm.example"
		if _, err := env.Users.InviteUser(ctx, o.ID, mgr, kluis.UserInput{Email: &email}); err != nil {
			t.Fatal(err)
		}
		other, ks := env.OtherProcess(t, keys.Options{})
		ks.Close() // the key store is unreachable for this process for a moment
		if q, err := other.MailQueue.ClaimDue(ctx, env.Clock.Now(), 10, time.Minute); err == nil || len(q) != 0 {
			t.Errorf("ClaimDue with the key store unreachable: %d claimed, %v; want an error", len(q), err)
		}
		if n, err := env.MailQueue.QueuedMail(ctx); err != nil || n != 1 {
			t.Fatalf("after the outage %d messages queued (%v), want the invitation still there", n, err)
		}
		// Once the key store answers again, the message goes out.
		if msgs := env.Mail(t); len(msgs) != 1 {
			t.Errorf("after the outage %d messages delivered, want 1", len(msgs))
		}
	})
}

// Regression (security review), the bug that must not return: a deleted user's own client addresses stay readable (org key).
func TestDeletedUsersAddressesAreErased(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		bg := context.Background()
		o, mgr := env.NewOrg(t, "rvd")
		m := env.NewMember(t, o, mgr, "del@rvd.example", kluis.RoleMember)
		fromM := kluis.Origin{Client: netip.MustParseAddr("203.0.113.99")}
		if _, _, err := kluistest.LoginFrom(bg, env.SignIn, o.ID, fromM, "del@rvd.example", kluistest.Password); err != nil {
			t.Fatal(err)
		}
		if err := env.Users.DeleteUser(bg, o.ID, mgr, m.UserID); err != nil {
			t.Fatal(err)
		}
		erased := 0
		if err := env.Audit.ExportAudit(bg, o.ID, mgr, kluis.AuditFilter{}, func(e kluis.AuditEvent) error {
			switch {
			case e.Client == "203.0.113.99":
				t.Errorf("after the deletion, %s by %s still shows the deleted user's address", e.Action, e.Actor)
			case e.Actor == "user:"+string(m.UserID) && e.Client == sqlstore.Erased:
				erased++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if erased == 0 {
			t.Error("the deleted user's own events show no erased address")
		}
	})
}

// Regression (security review), the bug that must not return: one unreadable row stops the re-encryption of every organisation
// sorted after it.
func TestOneBadRowDoesNotBlockReencryption(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		a, mgrA := env.NewOrg(t, "aa-rv")
		b, _ := env.NewOrg(t, "bb-rv")
		// a ciphertext moved within a row (corruption, a bad restore): name <- email
		env.MustExec(t, `UPDATE users SET name = email WHERE id = '`+string(mgrA.UserID)+`'`)
		for _, s := range []string{"aa-rv", "bb-rv"} {
			if _, err := env.KeyWork.RotateOrgKey(ctx, kluis.CLIActor, s); err != nil {
				t.Fatal(err)
			}
		}
		for range 3 {
			env.Clock.Advance(env.KeyStore.CacheTTL())
			if _, err := env.KeyWork.Reencrypt(ctx, nil); err != nil {
				t.Fatalf("Reencrypt: %v", err)
			}
		}
		jobs, err := env.KeyWork.Reencryptions(ctx)
		if err != nil || len(jobs) != 2 {
			t.Fatalf("jobs %+v, %v", jobs, err)
		}
		for _, j := range jobs {
			if !j.Finished() {
				t.Errorf("%s's re-encryption did not finish", j.Slug)
			}
		}
		// The unreadable value is left as it was (and counted); all else moved.
		if n := env.StaleRows(t, b.ID); n != 0 {
			t.Errorf("%d values of bb-rv under retired versions, want 0", n)
		}
		uses, err := env.KeyWork.RetiredUses(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range uses {
			if u.Org == a.ID && u.Data != 1 {
				t.Errorf("aa-rv: %d data rows under retired versions, want the 1 unreadable row", u.Data)
			}
		}
	})
}

// Regression (security review), the bug that must not return: under key cache pressure a process keeps sealing with a retired
// version after the job finished: sealing re-puts a stale active version.
func TestRetiredVersionStopsSealingAfterTheTTL(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "rvs")
		m := env.NewMember(t, o, mgr, "m@rvs.example", kluis.RoleMember)
		stale, _ := env.OtherProcess(t, keys.Options{CacheSize: 2})
		upd := func(name string) {
			t.Helper()
			if _, err := stale.Users.UpdateMe(ctx, o.ID, m, kluis.UserInput{Name: new(name)}); err != nil {
				t.Fatal(err)
			}
		}
		upd("A") // caches the active version v1 of m's key
		if _, err := env.KeyWork.RotateOrgKey(ctx, kluis.CLIActor, "rvs"); err != nil {
			t.Fatal(err)
		}
		ttl := env.KeyStore.CacheTTL()
		if _, err := env.KeyWork.Reencrypt(ctx, nil); err != nil { // first pass: row now under v2
			t.Fatal(err)
		}
		env.Clock.Advance(ttl - time.Second)
		upd("B")                           // opens v2 (evicting v1's entry), seals with cached v1 and re-puts it for another TTL
		env.Clock.Advance(2 * time.Second) // past SettledAt
		for i := 0; i < 5; i++ {
			jobs, err := env.KeyWork.Reencrypt(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(jobs) == 1 && jobs[0].Finished() {
				break
			}
		}
		jobs, err := env.KeyWork.Reencryptions(ctx)
		if err != nil || len(jobs) != 1 || !jobs[0].Finished() {
			t.Fatalf("the re-encryption did not finish: %+v, %v", jobs, err)
		}
		upd("C") // more than a TTL after the rotation, after the job finished
		if n := env.StaleRows(t, o.ID); n > 0 {
			t.Errorf("a finished re-encryption, yet %d values sealed under the retired version more than the TTL after the rotation", n)
		}
	})
}
