package retention_test

import (
	"archive/zip"
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/auditlog"
)

const day = 24 * time.Hour

var admin = kluis.Actor{Realm: kluis.RealmOperator, OperatorID: "op-admin", OperatorRole: kluis.OperatorAdmin}

// count runs a COUNT(*) query through a connection of its own.
func count(t *testing.T, env *kluistest.Env, query string) int {
	t.Helper()
	rows := env.Query(t, query)
	n, err := strconv.Atoi(string(rows[0][0]))
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// run runs the retention job once, through the real store code.
func run(t *testing.T, env *kluistest.Env) kluis.RetentionReport {
	t.Helper()
	r, err := env.Retention.RunRetention(context.Background())
	if err != nil {
		t.Fatalf("RunRetention: %v", err)
	}
	return r
}

// actions counts the events of action in chain, straight from the table.
func actions(t *testing.T, env *kluistest.Env, chain, action string) int {
	t.Helper()
	return count(t, env, `SELECT COUNT(*) FROM audit_events WHERE chain = '`+chain+`' AND action = '`+action+`'`)
}

// chainsIntact fails the test unless every chain verifies, as the daily
// audit_verify job and `kluis audit verify` check them.
func chainsIntact(t *testing.T, env *kluistest.Env) {
	t.Helper()
	results, err := env.Audit.VerifyChains(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if !r.OK {
			t.Fatalf("chain %s broken at %d: %s", r.Chain, r.FirstBrokenSeq, r.Problem)
		}
	}
}

// TestInactivePeopleAreNoticedThenErasedOnTheirDay (R35, R23, R45): over
// two years at the default period of 730 days, a member and an invited
// person who never came are left alone until day 700, when the member (and
// the inactive manager) get an inbox notice and a mail that only says one
// waits; nobody is erased on day 729; on day 730 the member and the invited
// person are erased (user.erase, key destroyed) while the organisation's
// last manager is kept and reported to the operator; a person who signed in
// after the notice is not erased. Expired sessions are purged on the way,
// and every run is recorded as retention.run.
func TestInactivePeopleAreNoticedThenErasedOnTheirDay(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, boss := env.NewOrg(t, "ret-people-"+env.Engine)
		member := env.NewMember(t, o, boss, "member@ret.example", kluis.RoleMember)
		returner := env.NewMember(t, o, boss, "returner@ret.example", kluis.RoleMember)
		email, role := "never@ret.example", kluis.RoleMember
		invited, err := env.Users.InviteUser(ctx, o.ID, boss, kluis.UserInput{Email: &email, Role: &role})
		if err != nil {
			t.Fatal(err)
		}
		env.Mail(t) // the invitations
		chain := sqlstore.OrgChain(o.ID)
		users := func() int { return count(t, env, `SELECT COUNT(*) FROM users WHERE org_id = '`+string(o.ID)+`'`) }
		notices := func(id kluis.UserID) int {
			return count(t, env, `SELECT COUNT(*) FROM notices WHERE user_id = '`+string(id)+`' AND kind = 'inactivity'`)
		}

		env.Clock.Advance(699 * day)
		r := run(t, env)
		if r.Notified != 0 || r.Erased != 0 || notices(member.UserID) != 0 {
			t.Fatalf("day 699: %+v, want nothing noticed or erased", r)
		}
		if r.ExpiredPurged == 0 || count(t, env, `SELECT COUNT(*) FROM sessions`) != 0 || count(t, env, `SELECT COUNT(*) FROM invitations`) != 0 {
			t.Fatalf("day 699: %d expired rows purged, want every expired session and invitation gone", r.ExpiredPurged)
		}

		env.Clock.Advance(day) // day 700: 30 days before
		r = run(t, env)
		if r.Notified != 3 || notices(member.UserID) != 1 || notices(boss.UserID) != 1 || notices(invited.ID) != 0 {
			t.Fatalf("day 700: %+v; member %d, boss %d, invited %d notices; want the three active people told once",
				r, notices(member.UserID), notices(boss.UserID), notices(invited.ID))
		}
		if n := actions(t, env, chain, "retention.notice"); n != 3 {
			t.Fatalf("%d retention.notice events, want 3", n)
		}
		mails := env.Mail(t)
		if len(mails) != 3 {
			t.Fatalf("%d mails, want 3 (a notice waits)", len(mails))
		}
		for _, m := range mails {
			_, body, _ := strings.Cut(m, "\r\n\r\n")
			for _, secret := range []string{"@ret.example", "Member", "730", "inactiv", "erase", "gewist"} {
				if strings.Contains(body, secret) {
					t.Fatalf("a notice mail carries %q (R45): %s", secret, body)
				}
			}
			if !strings.Contains(body, "/inbox") {
				t.Fatalf("the mail does not point to the inbox: %s", body)
			}
		}
		if r := run(t, env); r.Notified != 0 {
			t.Fatalf("a second run the same day told again: %+v", r)
		}

		env.Clock.Advance(20 * day) // day 720: the returner signs in
		env.SignedIn(t, o.ID, "returner@ret.example")
		env.Clock.Advance(9 * day) // day 729
		if r := run(t, env); r.Erased != 0 || users() != 4 {
			t.Fatalf("day 729: %+v, %d people; want nobody erased before the day", r, users())
		}

		env.Clock.Advance(day) // day 730
		r = run(t, env)
		if r.Erased != 2 || r.LastManagersKept != 1 {
			t.Fatalf("day 730: %+v, want the member and the invited person erased, the last manager kept", r)
		}
		left := env.Query(t, `SELECT id FROM users WHERE org_id = '`+string(o.ID)+`' ORDER BY id`)
		if len(left) != 2 {
			t.Fatalf("%d people left, want the manager and the returner", len(left))
		}
		for _, row := range left {
			if id := kluis.UserID(row[0]); id != boss.UserID && id != returner.UserID {
				t.Fatalf("%s is still there", id)
			}
		}
		if n := actions(t, env, chain, "user.erase"); n != 2 {
			t.Fatalf("%d user.erase events, want 2", n)
		}
		if n := count(t, env, `SELECT COUNT(*) FROM key_shreds`); n != 0 {
			t.Fatalf("%d key destructions pending, want the keys destroyed at once", n)
		}
		alerts, err := env.Jobs.OpenAlertCounts(ctx)
		if err != nil || alerts[kluis.AlertInactiveLastManager] != 1 {
			t.Fatalf("open alerts %v, %v; want inactive_last_manager", alerts, err)
		}
		if n := actions(t, env, audit.PlatformChain, "retention.run"); n != 5 {
			t.Fatalf("%d retention.run events, want one per run (5)", n)
		}
		// The last manager stays, run after run.
		env.Clock.Advance(100 * day)
		if r := run(t, env); r.LastManagersKept != 1 || users() != 2 {
			t.Fatalf("day 830: %+v, %d people; want the last manager still kept", r, users())
		}
		chainsIntact(t, env)
	})
}

// TestShorterPeriodStillWarnsFirst (R35): a manager who shortens the period
// to 90 days erases nobody unwarned: people long inactive get their notice
// at the next run and are erased 30 days later, not at once.
func TestShorterPeriodStillWarnsFirst(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, boss := env.NewOrg(t, "ret-short-"+env.Engine)
		member := env.NewMember(t, o, boss, "m@short.example", kluis.RoleMember)
		env.Clock.Advance(200 * day)
		boss = env.SignedIn(t, o.ID, "boss@ret-short-"+env.Engine+".example")
		p, err := env.Orgs.FindPolicy(ctx, o.ID, boss)
		if err != nil {
			t.Fatal(err)
		}
		p.InactiveUserDays = 90
		if _, err := env.Orgs.UpdatePolicy(ctx, o.ID, boss, p); err != nil {
			t.Fatal(err)
		}
		if r := run(t, env); r.Notified != 1 || r.Erased != 0 {
			t.Fatalf("%+v: want the member told, nobody erased", r)
		}
		env.Clock.Advance(29 * day)
		if r := run(t, env); r.Erased != 0 {
			t.Fatalf("29 days after the notice: %+v, want nobody erased", r)
		}
		env.Clock.Advance(day)
		if r := run(t, env); r.Erased != 1 {
			t.Fatalf("30 days after the notice: %+v, want the member erased", r)
		}
		if n := count(t, env, `SELECT COUNT(*) FROM users WHERE id = '`+string(member.UserID)+`'`); n != 0 {
			t.Fatal("the member is still there")
		}
	})
}

// TestLicenceEndReadOnlyThenPurged (R36, R23): the day the licence ends
// the organisation becomes read-only (org.terminate, managers told); the
// organisation export still works; 29 days later it is still there; on day
// 30 of the grace period its people, projects and keys are erased, with
// org.purge in the platform chain, and every chain still verifies. A
// second organisation renewed during its grace period is no longer
// read-only and is not erased.
func TestLicenceEndReadOnlyThenPurged(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, boss := env.NewOrg(t, "ret-end-"+env.Engine)
		keep, keepBoss := env.NewOrg(t, "ret-renew-"+env.Engine)
		if _, err := env.Projects.CreateProject(ctx, o.ID, boss, kluis.ProjectInput{Name: "plan"}); err != nil {
			t.Fatal(err)
		}
		ends := env.Clock.Now().Add(10 * day)
		for _, org := range []kluis.OrgID{o.ID, keep.ID} {
			if _, err := env.Licences.SetLicence(ctx, org, admin, kluis.Licence{EndsAt: &ends}); err != nil {
				t.Fatal(err)
			}
		}
		_ = keepBoss
		orgs := func(id kluis.OrgID) int {
			return count(t, env, `SELECT COUNT(*) FROM orgs WHERE id = '`+string(id)+`'`)
		}

		env.Clock.Advance(10*day - time.Minute)
		if r := run(t, env); r.OrgsTerminated != 0 {
			t.Fatalf("a minute before the end: %+v, want nothing terminated", r)
		}
		if ro, err := env.Retention.ReadOnly(ctx, o.ID); err != nil || ro {
			t.Fatalf("read-only %v, %v before the end", ro, err)
		}
		env.Clock.Advance(time.Minute) // the licence ends
		if ro, err := env.Retention.ReadOnly(ctx, o.ID); err != nil || !ro {
			t.Fatalf("read-only %v, %v at the end, want true", ro, err)
		}
		r := run(t, env)
		if r.OrgsTerminated != 2 || r.OrgsPurged != 0 {
			t.Fatalf("at the end: %+v, want both terminated, none purged", r)
		}
		if n := actions(t, env, sqlstore.OrgChain(o.ID), "org.terminate"); n != 1 {
			t.Fatalf("%d org.terminate events, want 1", n)
		}
		if n := count(t, env, `SELECT COUNT(*) FROM notices WHERE org_id = '`+string(o.ID)+`' AND kind = 'licence_ended'`); n != 1 {
			t.Fatalf("%d licence notices, want the manager told", n)
		}
		if r := run(t, env); r.OrgsTerminated != 0 {
			t.Fatalf("terminated twice: %+v", r)
		}

		env.Clock.Advance(10 * day) // renewal during the grace period
		later := env.Clock.Now().Add(400 * day)
		if _, err := env.Licences.SetLicence(ctx, keep.ID, admin, kluis.Licence{EndsAt: &later}); err != nil {
			t.Fatal(err)
		}
		if ro, _ := env.Retention.ReadOnly(ctx, keep.ID); ro {
			t.Fatal("a renewed organisation is still read-only")
		}
		env.Clock.Advance(19 * day) // day 29 of the grace period
		if r := run(t, env); r.OrgsPurged != 0 || orgs(o.ID) != 1 {
			t.Fatalf("day 29 of grace: %+v, want nothing purged", r)
		}
		env.Clock.Advance(day) // day 30
		r = run(t, env)
		if r.OrgsPurged != 1 || orgs(o.ID) != 0 || orgs(keep.ID) != 1 {
			t.Fatalf("day 30 of grace: %+v; orgs %d/%d; want the ended one purged, the renewed one kept", r, orgs(o.ID), orgs(keep.ID))
		}
		for _, q := range []string{
			`SELECT COUNT(*) FROM users WHERE org_id = '` + string(o.ID) + `'`,
			`SELECT COUNT(*) FROM projects WHERE org_id = '` + string(o.ID) + `'`,
			`SELECT COUNT(*) FROM key_shreds`,
		} {
			if n := count(t, env, q); n != 0 {
				t.Fatalf("%s: %d, want 0", q, n)
			}
		}
		if n := actions(t, env, audit.PlatformChain, "org.purge"); n != 1 {
			t.Fatalf("%d org.purge events, want 1", n)
		}
		chainsIntact(t, env)
		// The erased organisation's chain (ciphertext under destroyed keys)
		// is pruned after the default retention like any other.
		gone := sqlstore.OrgChain(o.ID)
		before := count(t, env, `SELECT COUNT(*) FROM audit_events WHERE chain = '`+gone+`'`)
		env.Clock.Advance(731 * day)
		run(t, env)
		if n := actions(t, env, gone, "audit.prune"); n != 1 || count(t, env, `SELECT COUNT(*) FROM audit_events WHERE chain = '`+gone+`'`) != 1 {
			t.Fatalf("%d audit.prune events in the erased organisation's chain of %d events, want it pruned to that event", n, before)
		}
		chainsIntact(t, env)
	})
}

// TestAuditPruneKeepsChainVerifiable (R25): events beyond the policy's
// audit_retention_days are pruned on the first day they are older, not
// before, behind a signed prune record, with audit.prune; the pruned chain
// (with witnessed checkpoints inside the pruned part) still verifies.
// Deleting the oldest remaining row by hand, or the prune record, is
// detected; so is deleting old rows of another chain without a record.
func TestAuditPruneKeepsChainVerifiable(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, boss := env.NewOrg(t, "ret-prune-"+env.Engine)
		other, _ := env.NewOrg(t, "ret-hand-"+env.Engine)
		p, err := env.Orgs.FindPolicy(ctx, o.ID, boss)
		if err != nil {
			t.Fatal(err)
		}
		p.AuditRetentionDays = 365
		if _, err := env.Orgs.UpdatePolicy(ctx, o.ID, boss, p); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Audit.Checkpoint(ctx, auditPolicy, true); err != nil {
			t.Fatal(err)
		}
		chain := sqlstore.OrgChain(o.ID)
		old := count(t, env, `SELECT COUNT(*) FROM audit_events WHERE chain = '`+chain+`'`)
		env.Clock.Advance(100 * day)
		env.SignedIn(t, o.ID, "boss@ret-prune-"+env.Engine+".example") // a newer event
		env.Clock.Advance(265 * day)                                   // day 365: not older yet
		if r := run(t, env); r.AuditPruned != 0 {
			t.Fatalf("day 365: %d pruned, want none", r.AuditPruned)
		}
		env.Clock.Advance(day) // day 366
		r := run(t, env)
		if r.AuditPruned != int64(old) {
			t.Fatalf("day 366: %d pruned, want the %d events of day 0", r.AuditPruned, old)
		}
		if n := actions(t, env, chain, "audit.prune"); n != 1 {
			t.Fatalf("%d audit.prune events, want 1", n)
		}
		if n := count(t, env, `SELECT COUNT(*) FROM audit_events WHERE chain = '`+chain+`' AND seq <= `+strconv.Itoa(old)); n != 0 {
			t.Fatalf("%d old events left", n)
		}
		if n := count(t, env, `SELECT COUNT(*) FROM audit_events WHERE chain = '`+chain+`' AND action = 'auth.login'`); n != 1 {
			t.Fatalf("%d sign-ins of day 100 left, want 1: only older events go", n)
		}
		chainsIntact(t, env)
		if _, err := env.Audit.Checkpoint(ctx, auditPolicy, true); err != nil {
			t.Fatal(err)
		}
		chainsIntact(t, env)
		// The organisation's export carries the prune record: its chain
		// verifies from the archive alone.
		fresh := env.SignedIn(t, o.ID, "boss@ret-prune-"+env.Engine+".example")
		var buf bytes.Buffer
		if err := env.Export.ExportOrg(ctx, o.ID, fresh, &buf); err != nil {
			t.Fatal(err)
		}
		zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatal(err)
		}
		if res, err := audit.VerifyExport(zr); err != nil || !res.OK {
			t.Fatalf("the export of a pruned chain: %+v, %v", res, err)
		}

		// Deleting old rows by hand, without a prune record, is detected.
		env.MustExec(t, `DELETE FROM audit_events WHERE chain = '`+sqlstore.OrgChain(other.ID)+`' AND seq <= 2`)
		wantBroken(t, env, sqlstore.OrgChain(other.ID), 1)
		// So is deleting the oldest row after the pruned part …
		first := old + 1
		env.MustExec(t, `DELETE FROM audit_events WHERE chain = '`+chain+`' AND seq = `+strconv.Itoa(first))
		wantBroken(t, env, chain, int64(first))
		// … and removing the prune record that vouches for the start.
		env.MustExec(t, `DELETE FROM audit_prunes WHERE chain = '`+chain+`'`)
		wantBroken(t, env, chain, 1)
	})
}

var auditPolicy = auditlog.CheckpointPolicy{}

func wantBroken(t *testing.T, env *kluistest.Env, chain string, at int64) {
	t.Helper()
	results, err := env.Audit.VerifyChains(context.Background(), chain)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].OK || results[0].FirstBrokenSeq != at {
		t.Fatalf("verify %s: %+v, want broken at %d", chain, results, at)
	}
}

// TestInvitedOnlyManagerIsKept (R35): an organisation whose only manager
// never accepted the invitation keeps that manager past the period (the
// operator is alerted), so it is never left without anyone to manage it.
func TestInvitedOnlyManagerIsKept(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		o, _, err := env.Orgs.CreateOrg(context.Background(), kluis.CLIActor, kluis.NewOrg{Slug: "ret-invited-" + env.Engine, Name: "Invited", ManagerEmail: "m@invited.example"})
		if err != nil {
			t.Fatal(err)
		}
		env.Clock.Advance(731 * day)
		if r := run(t, env); r.Erased != 0 || r.LastManagersKept != 1 {
			t.Fatalf("%+v: want the invited only manager kept and reported", r)
		}
		if n := count(t, env, `SELECT COUNT(*) FROM users WHERE org_id = '`+string(o.ID)+`'`); n != 1 {
			t.Fatalf("%d people, want the manager kept", n)
		}
	})
}

// TestRestrictedPersonIsKeptUntilTheRestrictionIsLifted (R35, R34): a
// person whose processing is restricted is frozen: two years of inactivity
// bring neither a notice nor an erasure; once the restriction is lifted,
// the next run gives the notice and 30 days later they are erased.
func TestRestrictedPersonIsKeptUntilTheRestrictionIsLifted(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, boss := env.NewOrg(t, "ret-restricted-"+env.Engine)
		member := env.NewMember(t, o, boss, "frozen@ret.example", kluis.RoleMember)
		if err := env.Users.RestrictProcessing(ctx, o.ID, boss, member.UserID); err != nil {
			t.Fatal(err)
		}
		notices := func() int {
			return count(t, env, `SELECT COUNT(*) FROM notices WHERE user_id = '`+string(member.UserID)+`' AND kind = 'inactivity'`)
		}
		present := func() int {
			return count(t, env, `SELECT COUNT(*) FROM users WHERE id = '`+string(member.UserID)+`'`)
		}
		env.Clock.Advance(800 * day)
		run(t, env)
		if notices() != 0 || present() != 1 {
			t.Fatalf("after 800 days restricted: %d notices, present %d; want neither told nor erased", notices(), present())
		}
		boss = env.SignedIn(t, o.ID, "boss@ret-restricted-"+env.Engine+".example")
		if err := env.Users.LiftRestriction(ctx, o.ID, boss, member.UserID); err != nil {
			t.Fatal(err)
		}
		run(t, env)
		if notices() != 1 || present() != 1 {
			t.Fatalf("the run after the lift: %d notices, present %d; want told, not yet erased", notices(), present())
		}
		env.Clock.Advance(30 * day)
		run(t, env)
		if present() != 0 {
			t.Fatal("30 days after the notice the person is still there")
		}
	})
}
