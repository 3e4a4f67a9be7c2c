package keywork_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
)

// R28, issue 3 item 4: kluis keys rotate --org starts new versions of the
// organisation's keys; the background re-encryption leaves no row but audit
// rows under the retired versions, also rows written by a process whose key
// cache was stale, and the audit chains still verify.
func TestOrgKeyRotationReencryptsEverythingButAudit(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "rot")
		other, _ := env.NewOrg(t, "other")
		m := env.NewMember(t, o, mgr, "member@rot.example", kluis.RoleMember)
		email, role := "invited@rot.example", kluis.RoleMember
		if _, err := env.Users.InviteUser(ctx, o.ID, mgr, kluis.UserInput{Email: &email, Role: &role}); err != nil {
			t.Fatal(err) // its invitation mail stays queued
		}
		if _, err := env.Users.UpdateMe(ctx, o.ID, m, kluis.UserInput{Phone: new("+31 6 12345678")}); err != nil {
			t.Fatal(err)
		}
		// A token's name, a pending e-mail change and a session's device
		// name are sealed under the member's key too.
		if _, _, err := env.Tokens.CreateAPIToken(ctx, o.ID, m, kluis.TokenInput{Name: "backup script", Scope: kluis.ScopeRead, ExpiresAt: env.Clock.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := env.Users.RequestEmailChange(ctx, o.ID, m, "new@rot.example"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := kluistest.LoginFrom(ctx, env.SignIn, o.ID, kluis.Origin{Device: "Firefox on Linux"}, "member@rot.example", kluistest.Password); err != nil {
			t.Fatal(err)
		}
		// A group's name and a support grant's reason are sealed under the
		// organisation's own key.
		if _, err := env.Rights.CreateGroup(ctx, o.ID, mgr, kluis.GroupInput{Name: "Coaches of Rotterdam"}); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Support.GrantSupport(ctx, o.ID, mgr, kluis.SupportGrantInput{Scope: kluis.SupportOrgScope, Right: kluis.SupportView,
			Reason: "ticket 4711: the export stops halfway", ExpiresAt: env.Clock.Now().Add(24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		stale, _ := env.OtherProcess(t, keys.Options{})
		if _, _, err := kluistest.Login(ctx, stale.SignIn, o.ID, "member@rot.example", kluistest.Password); err != nil { // warms its cache
			t.Fatal(err)
		}
		if _, err := stale.Users.UpdateMe(ctx, o.ID, m, kluis.UserInput{Name: new("Before")}); err != nil {
			t.Fatal(err)
		}

		if _, err := env.KeyWork.RotateOrgKey(ctx, m, "rot"); kluis.ErrorCode(err) != kluis.EForbidden {
			t.Errorf("a user rotating keys: got %v, want forbidden", err)
		}
		kv, err := env.KeyWork.RotateOrgKey(ctx, kluis.CLIActor, "rot")
		if err != nil {
			t.Fatal(err)
		}
		if kv != 2 {
			t.Fatalf("rotated to version %d, want 2", kv)
		}
		if n := env.StaleRows(t, o.ID); n == 0 {
			t.Fatal("no row under a retired version right after the rotation: nothing to test")
		}
		// The other process still seals with the version it cached.
		if _, err := stale.Users.UpdateMe(ctx, o.ID, m, kluis.UserInput{Name: new("During")}); err != nil {
			t.Fatal(err)
		}

		jobs, err := env.KeyWork.Reencrypt(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != 1 || jobs[0].Finished() {
			t.Fatalf("before the caches settled: jobs %+v, want one unfinished", jobs)
		}
		if n := env.StaleRows(t, o.ID); n != 0 {
			t.Errorf("after the first pass %d values under retired versions, want 0", n)
		}
		// Another write of the stale process after the first pass: only the
		// final pass, once the caches settled, can catch it.
		if _, err := stale.Users.UpdateMe(ctx, o.ID, m, kluis.UserInput{Name: new("Later")}); err != nil {
			t.Fatal(err)
		}
		if n := env.StaleRows(t, o.ID); n != 2 {
			t.Errorf("after the stale write %d values under retired versions, want its 2 (name, phone)", n)
		}
		env.Clock.Advance(env.KeyStore.CacheTTL())
		var seen []kluis.Reencryption
		jobs, err = env.KeyWork.Reencrypt(ctx, func(r kluis.Reencryption) { seen = append(seen, r) })
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != 1 || !jobs[0].Finished() || len(seen) == 0 {
			t.Fatalf("after the caches settled: jobs %+v (progress %d calls), want finished", jobs, len(seen))
		}
		if n := env.StaleRows(t, o.ID); n != 0 {
			t.Errorf("after the re-encryption %d values use retired versions, want 0", n)
		}
		uses, err := env.KeyWork.RetiredUses(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range uses {
			switch {
			case u.Org == o.ID && (u.Data != 0 || u.Audit == 0):
				t.Errorf("rotated organisation: %d data rows and %d audit rows under retired versions, want 0 and some", u.Data, u.Audit)
			case u.Org == other.ID && (u.Data != 0 || u.Audit != 0):
				t.Errorf("untouched organisation: %+v, want nothing under retired versions", u)
			}
		}

		// Everything still reads, the old audit values included.
		got, err := env.Users.FindUserByID(ctx, o.ID, mgr, m.UserID)
		if err != nil || got.Name != "Later" || got.Phone != "+31612345678" || got.Email != "member@rot.example" {
			t.Errorf("after the rotation: %+v, %v", got, err)
		}
		env.SignedIn(t, o.ID, "member@rot.example") // the blind index did not change
		n := 0
		if err := env.Audit.ExportAudit(ctx, o.ID, mgr, kluis.AuditFilter{Action: "user.invite"}, func(e kluis.AuditEvent) error {
			n++
			if string(e.Details) == "" || !strings.Contains(string(e.Details), "@rot.example") {
				t.Errorf("audit details after the rotation: %s", e.Details)
			}
			return nil
		}); err != nil || n != 3 {
			t.Errorf("export after the rotation: %d invitations, %v", n, err)
		}
		results, err := env.Audit.VerifyChains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range results {
			if !r.OK {
				t.Errorf("chain %s broken after the rotation: %+v", r.Chain, r)
			}
		}
		var finished int
		for _, r := range env.Query(t, `SELECT action FROM audit_events WHERE chain = 'platform'`) {
			if string(r[0]) == "key.reencrypted" {
				finished++
			}
		}
		if finished != 1 {
			t.Errorf("%d key.reencrypted events in the platform chain, want 1", finished)
		}
	})
}
