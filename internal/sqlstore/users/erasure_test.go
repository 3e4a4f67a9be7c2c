package users_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore"
)

// R5: the operator erases one person when the organisation asks — the same
// erasure as a manager's (sessions end, key destroyed so copies of their
// sealed fields no longer open), recorded in the organisation's chain as
// user.delete by the command line with the reason sealed, and the managers
// get a notice in their inbox and a mail that says only that one waits.
func TestEraseOnRequestIsAManagersDeleteWithTheReason(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, boss := env.NewOrg(t, "era")
		second := env.NewMember(t, o, boss, "second@era.example", kluis.RoleManager)
		const email, reason = "erase.me@era.example", "Request 2026-17 of HR: ex-employee asked"
		member := env.NewMember(t, o, boss, email, kluis.RoleMember)
		if _, err := env.Users.UpdateMe(ctx, o.ID, member, kluis.UserInput{Phone: new("+31 6 55555555")}); err != nil {
			t.Fatal(err)
		}
		sess, _, err := kluistest.Login(ctx, env.SignIn, o.ID, email, kluistest.Password)
		if err != nil {
			t.Fatal(err)
		}
		sealedEmail := env.Query(t, `SELECT email FROM users WHERE id = '`+string(member.UserID)+`'`)[0][0]
		env.Mail(t) // the invitations so far

		support := kluis.Actor{Realm: kluis.RealmOperator, OperatorID: "0190a0a0-0000-7000-8000-000000000001", OperatorRole: kluis.OperatorSupport}
		for _, a := range []kluis.Actor{support, boss, member} {
			kluistest.WantCode(t, env.Users.EraseOnRequest(ctx, a, o.ID, email, reason), kluis.EForbidden)
		}
		kluistest.WantCode(t, env.Users.EraseOnRequest(ctx, kluis.CLIActor, o.ID, email, "  "), kluis.EInvalid)
		kluistest.WantCode(t, env.Users.EraseOnRequest(ctx, kluis.CLIActor, o.ID, "nobody@era.example", reason), kluis.ENotFound)
		kluistest.WantCode(t, env.Users.EraseOnRequest(ctx, kluis.CLIActor, o.ID, "not an address", reason), kluis.ENotFound)

		admin := kluis.Actor{Realm: kluis.RealmOperator, OperatorID: "0190a0a0-0000-7000-8000-000000000002", OperatorRole: kluis.OperatorAdmin}
		if err := env.Users.EraseOnRequest(ctx, admin, o.ID, "  Erase.Me@ERA.example ", reason); err != nil {
			t.Fatalf("erase on request: %v", err)
		}
		if _, _, err := kluistest.Authenticate(ctx, env.SignIn, sess.Token); kluis.ErrorCode(err) != kluis.EUnauthenticated {
			t.Errorf("the erased person's session: got %v, want unauthenticated", err)
		}
		if _, err := env.Areas.Core.Open(ctx, sqlstore.UserField(o.ID, member.UserID, sqlstore.ColEmail), sealedEmail); err == nil {
			t.Error("a copy of the erased person's sealed address still opens")
		}
		if _, err := env.KeyStore.ActiveVersion(ctx, keys.UserKey(string(o.ID), string(member.UserID))); !errors.Is(err, keys.ErrKeyDestroyed) {
			t.Errorf("the erased person's key: got %v, want destroyed", err)
		}
		_, err = env.Users.FindUserByID(ctx, o.ID, boss, member.UserID)
		kluistest.WantCode(t, err, kluis.ENotFound)

		var found bool
		if err := env.Audit.ExportAudit(ctx, o.ID, boss, kluis.AuditFilter{Action: "user.delete"}, func(e kluis.AuditEvent) error {
			if e.Target == "user:"+string(member.UserID) {
				found = e.Actor == "operator:"+string(admin.OperatorID) && strings.Contains(string(e.Details), reason) && strings.Contains(string(e.Details), `"on_request":true`)
				if !found {
					t.Errorf("the erasure's event: %+v %s", e, e.Details)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !found {
			t.Error("no user.delete of the erased person in the organisation's chain")
		}
		for _, r := range env.Query(t, `SELECT details FROM audit_events`) {
			if strings.Contains(string(r[0]), "ex-employee") || strings.Contains(string(r[0]), "erase.me") {
				t.Errorf("the reason or the address in clear at rest: %s", r[0])
			}
		}
		results, err := env.Audit.VerifyChains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range results {
			if !r.OK {
				t.Errorf("chain %s broken: %+v", r.Chain, r)
			}
		}

		for _, m := range []kluis.Actor{boss, second} {
			notices, err := env.Inbox.FindNotices(ctx, o.ID, m)
			n := 0
			for _, x := range notices {
				if x.Kind != kluis.NoticeErasedOnRequest {
					continue
				}
				n++
				if s := x.Title + x.Body; x.Read || strings.Contains(s, "erase.me") || strings.Contains(s, "Member") || strings.Contains(s, "HR") {
					t.Errorf("the notice is read, or names the person or the reason: %+v", x)
				}
			}
			if err != nil || n != 1 {
				t.Fatalf("a manager's inbox: %+v, %v, want one erasure notice", notices, err)
			}
		}
		mails := env.Mail(t)
		if len(mails) != 2 {
			t.Fatalf("mails after the erasure: %d, want one to each manager", len(mails))
		}
		for _, m := range mails {
			if !strings.Contains(m, "/o/era/inbox") || !strings.Contains(m, "notice waits") {
				t.Errorf("the managers' mail: %s", m)
			}
			for _, secret := range []string{"erase.me", "Member", "HR", "2026-17", "+31"} {
				if strings.Contains(m, secret) {
					t.Errorf("the managers' mail holds %q: %s", secret, m)
				}
			}
		}
		kluistest.WantCode(t, env.Users.EraseOnRequest(ctx, kluis.CLIActor, o.ID, email, reason), kluis.ENotFound)
	})
}

// R5, R8: the last manager cannot be erased on request either.
func TestEraseOnRequestKeepsTheLastManager(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, boss := env.NewOrg(t, "last")
		kluistest.WantCode(t, env.Users.EraseOnRequest(ctx, kluis.CLIActor, o.ID, "boss@last.example", "asked"), kluis.EConflict)
		if _, err := env.Users.FindUserByID(ctx, o.ID, boss, boss.UserID); err != nil {
			t.Errorf("the last manager after a refused erasure: %v", err)
		}
		if n := kluistest.CountAction(env.Events(t, o.ID, boss), "user.delete"); n != 0 {
			t.Errorf("user.delete events after a refusal: %d", n)
		}
	})
}

// The inbox is one's own: another person's notice is not found, also to
// someone of another organisation; reading marks it read.
func TestInboxIsOwnAndMarksRead(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, boss := env.NewOrg(t, "box")
		other, stranger := env.NewOrg(t, "box-other")
		_ = other
		second := env.NewMember(t, o, boss, "second@box.example", kluis.RoleManager) // boss gets a notice (R8)
		notices, err := env.Inbox.FindNotices(ctx, o.ID, boss)
		if err != nil || len(notices) != 1 || notices[0].Kind != kluis.NoticeManagerGranted {
			t.Fatalf("the manager's inbox: %+v, %v", notices, err)
		}
		if !strings.Contains(notices[0].Body, "Member") {
			t.Errorf("the notice does not name the new manager: %q", notices[0].Body)
		}
		id := notices[0].ID
		kluistest.WantCode(t, env.Inbox.MarkNoticeRead(ctx, o.ID, second, id), kluis.ENotFound)
		kluistest.WantCode(t, env.Inbox.MarkNoticeRead(ctx, other.ID, stranger, id), kluis.ENotFound)
		kluistest.WantCode(t, env.Inbox.MarkNoticeRead(ctx, o.ID, stranger, id), kluis.EUnauthenticated)
		kluistest.WantCode(t, env.Inbox.MarkNoticeRead(ctx, o.ID, boss, "nonsense"), kluis.ENotFound)
		if n, err := env.Inbox.CountUnread(ctx, o.ID, boss); err != nil || n != 1 {
			t.Errorf("unread before: %d, %v", n, err)
		}
		if err := env.Inbox.MarkNoticeRead(ctx, o.ID, boss, id); err != nil {
			t.Fatal(err)
		}
		if err := env.Inbox.MarkNoticeRead(ctx, o.ID, boss, id); err != nil {
			t.Errorf("marking read again: %v", err)
		}
		if n, err := env.Inbox.CountUnread(ctx, o.ID, boss); err != nil || n != 0 {
			t.Errorf("unread after: %d, %v", n, err)
		}
		if got, _ := env.Inbox.FindNotices(ctx, o.ID, second); len(got) != 0 {
			t.Errorf("the new manager's own inbox: %+v, want nothing about themself", got)
		}
		for _, r := range env.Query(t, `SELECT title, body FROM notices`) {
			if strings.Contains(string(r[0])+string(r[1]), "Member") || strings.Contains(string(r[0]), "manager") {
				t.Errorf("a notice in clear at rest: %q", r)
			}
		}
	})
}

// R8: a policy caps the number of managers, at the boundary, for an
// invitation and for a role change; granting the role is recorded with the
// role and told to the other managers; managers see the counts.
func TestManagerCapAndNotices(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, boss := env.NewOrg(t, "cap")
		p := kluis.DefaultPolicy
		for _, bad := range []int{-1, 101} {
			p.MaxManagers = &bad
			_, err := env.Orgs.UpdatePolicy(ctx, o.ID, boss, p)
			kluistest.WantCode(t, err, kluis.EInvalid)
		}
		two := 2
		p.MaxManagers = &two
		if _, err := env.Orgs.UpdatePolicy(ctx, o.ID, boss, p); err != nil {
			t.Fatal(err)
		}
		second := env.NewMember(t, o, boss, "second@cap.example", kluis.RoleManager) // the 2nd: allowed
		member := env.NewMember(t, o, boss, "member@cap.example", kluis.RoleMember)
		email, role := "third@cap.example", kluis.RoleManager
		_, err := env.Users.InviteUser(ctx, o.ID, boss, kluis.UserInput{Email: &email, Role: &role})
		kluistest.WantCode(t, err, kluis.EConflict)
		var ke *kluis.Error
		if errors.As(err, &ke); ke.Fields["max_managers"] == "" {
			t.Errorf("the refusal does not name max_managers: %+v", ke)
		}
		_, err = env.Users.UpdateUser(ctx, o.ID, boss, member.UserID, kluis.UserInput{Role: &role})
		kluistest.WantCode(t, err, kluis.EConflict)

		if _, err := env.Operators.CreateOperator(ctx, kluis.CLIActor, "help@kluis.example", "Help", "a long operator password 1", kluis.OperatorSupport); err != nil {
			t.Fatal(err)
		}
		admins, err := env.Users.CountAdministrators(ctx, o.ID, boss)
		if err != nil || admins.Managers != 2 || admins.MaxManagers == nil || *admins.MaxManagers != 2 ||
			admins.Operators[kluis.OperatorSupport] != 1 || admins.Operators[kluis.OperatorAdmin] != 0 || admins.Operators[kluis.OperatorSecurity] != 0 {
			t.Errorf("administrators: %+v, %v", admins, err)
		}
		_, err = env.Users.CountAdministrators(ctx, o.ID, member)
		kluistest.WantCode(t, err, kluis.EForbidden)

		zero := 0 // removes the cap
		p.MaxManagers = &zero
		if got, err := env.Orgs.UpdatePolicy(ctx, o.ID, boss, p); err != nil || got.MaxManagers != nil {
			t.Fatalf("removing the cap: %+v, %v", got.MaxManagers, err)
		}
		p.MaxManagers = nil // keeps it
		if _, err := env.Orgs.UpdatePolicy(ctx, o.ID, boss, p); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Users.UpdateUser(ctx, o.ID, boss, member.UserID, kluis.UserInput{Role: &role}); err != nil {
			t.Fatalf("a role change without a cap: %v", err)
		}
		var recorded bool
		for _, e := range env.Events(t, o.ID, boss) {
			recorded = recorded || e.Action == "user.update" && e.Target == "user:"+string(member.UserID) && strings.Contains(string(e.Details), `"role":"manager"`)
		}
		if !recorded {
			t.Error("the role change to manager is not recorded with the role")
		}
		got, err := env.Inbox.FindNotices(ctx, o.ID, second)
		if err != nil || len(got) != 1 || got[0].Kind != kluis.NoticeManagerGranted {
			t.Errorf("the other manager's inbox: %+v, %v (want the role change's; their own acceptance is not told to them)", got, err)
		}
		mine, _ := env.Inbox.FindNotices(ctx, o.ID, boss)
		if len(mine) != 1 {
			t.Errorf("the granting manager's inbox: %d notices, want only the one of the second manager's acceptance", len(mine))
		}
	})
}
