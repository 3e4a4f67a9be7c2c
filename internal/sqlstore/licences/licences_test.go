package licences_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
)

var (
	admin   = kluis.Actor{Realm: kluis.RealmOperator, OperatorID: "op-admin", OperatorRole: kluis.OperatorAdmin}
	support = kluis.Actor{Realm: kluis.RealmOperator, OperatorID: "op-support", OperatorRole: kluis.OperatorSupport}
	guard   = kluis.Actor{Realm: kluis.RealmOperator, OperatorID: "op-security", OperatorRole: kluis.OperatorSecurity}
)

func ptr[T any](v T) *T { return &v }

// wantLimit checks that err is licence_limit naming limit.
func wantLimit(t *testing.T, err error, limit string) {
	t.Helper()
	kluistest.WantCode(t, err, kluis.ELicenceLimit)
	if e, ok := err.(*kluis.Error); !ok || e.Fields[limit] == "" {
		t.Fatalf("error %v does not name %s", err, limit)
	}
}

func setLicence(t *testing.T, env *kluistest.Env, org kluis.OrgID, l kluis.Licence) {
	t.Helper()
	if _, err := env.Licences.SetLicence(context.Background(), org, admin, l); err != nil {
		t.Fatalf("SetLicence: %v", err)
	}
}

// TestLicenceUsersAtBoundary (R13): with max_users 3, the manager and two
// invited people fit (an invitation not yet accepted counts); the fourth
// invitation is refused with licence_limit naming max_users and leaves no
// one behind. Erasing a person makes room again.
func TestLicenceUsersAtBoundary(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "lic-users-"+env.Engine)
		setLicence(t, env, o.ID, kluis.Licence{MaxUsers: ptr(3)})
		env.NewMember(t, o, mgr, "two@lic.example", kluis.RoleMember)
		email, role := "three@lic.example", kluis.RoleMember
		third, err := env.Users.InviteUser(ctx, o.ID, mgr, kluis.UserInput{Email: &email, Role: &role})
		if err != nil {
			t.Fatalf("the third user (n = max) is refused: %v", err)
		}
		email = "four@lic.example"
		_, err = env.Users.InviteUser(ctx, o.ID, mgr, kluis.UserInput{Email: &email, Role: &role})
		wantLimit(t, err, "max_users")
		v, err := env.Licences.GetLicence(ctx, o.ID, mgr)
		if err != nil || v.Usage.Users != 3 {
			t.Fatalf("usage %+v, %v; want 3 users", v.Usage, err)
		}
		if err := env.Users.DeleteUser(ctx, o.ID, mgr, third.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Users.InviteUser(ctx, o.ID, mgr, kluis.UserInput{Email: &email, Role: &role}); err != nil {
			t.Fatalf("after an erasure there is room: %v", err)
		}
	})
}

// TestLicenceProjectsAtBoundary (R13): with max_projects 2, two projects
// fit; a project in the trash still counts, so a third is refused.
func TestLicenceProjectsAtBoundary(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "lic-projects-"+env.Engine)
		setLicence(t, env, o.ID, kluis.Licence{MaxProjects: ptr(2)})
		p1, err := env.Projects.CreateProject(ctx, o.ID, mgr, kluis.ProjectInput{Name: "one"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.Projects.CreateProject(ctx, o.ID, mgr, kluis.ProjectInput{Name: "two"}); err != nil {
			t.Fatalf("the second project (n = max) is refused: %v", err)
		}
		if err := env.Projects.DeleteProject(ctx, o.ID, mgr, p1.ID); err != nil {
			t.Fatal(err)
		}
		_, err = env.Projects.CreateProject(ctx, o.ID, mgr, kluis.ProjectInput{Name: "three"})
		wantLimit(t, err, "max_projects")
		v, _ := env.Licences.GetLicence(ctx, o.ID, mgr)
		if v.Usage.Projects != 2 {
			t.Fatalf("usage %+v; want 2 projects (one in the trash)", v.Usage)
		}
	})
}

// TestLicenceActiveProjectsAtBoundary (R13): with max_active_projects 2,
// two projects run; starting a third is refused; a project another person
// runs already does not count twice; after a stop there is room. Starting
// one's own running project again answers the open period.
func TestLicenceActiveProjectsAtBoundary(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "lic-active-"+env.Engine)
		setLicence(t, env, o.ID, kluis.Licence{MaxActiveProjects: ptr(2)})
		var ids []kluis.ProjectID
		for _, n := range []string{"a", "b", "c"} {
			p, err := env.Projects.CreateProject(ctx, o.ID, mgr, kluis.ProjectInput{Name: n})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, p.ID)
		}
		first, started, err := env.Licences.StartProject(ctx, o.ID, mgr, ids[0])
		if err != nil || !started {
			t.Fatalf("start: %v, %v", started, err)
		}
		again, started, err := env.Licences.StartProject(ctx, o.ID, mgr, ids[0])
		if err != nil || started || again.ID != first.ID {
			t.Fatalf("starting again: %+v, %v, %v; want the open period", again, started, err)
		}
		if _, _, err := env.Licences.StartProject(ctx, o.ID, mgr, ids[1]); err != nil {
			t.Fatalf("the second active project (n = max) is refused: %v", err)
		}
		_, _, err = env.Licences.StartProject(ctx, o.ID, mgr, ids[2])
		wantLimit(t, err, "max_active_projects")
		// Another person joins a running project: it still counts once.
		other := env.NewMember(t, o, mgr, "runner@lic.example", kluis.RoleMember)
		if err := env.Rights.SetGrant(ctx, o.ID, mgr, ids[0], kluis.Grant{Subject: kluis.Subject{Kind: kluis.SubjectUser, ID: string(other.UserID)}, Relation: kluis.RelRunner}); err != nil {
			t.Fatal(err)
		}
		if _, started, err := env.Licences.StartProject(ctx, o.ID, other, ids[0]); err != nil || !started {
			t.Fatalf("joining a running project: %v, %v", started, err)
		}
		if err := env.Licences.StopProject(ctx, o.ID, mgr, ids[1]); err != nil {
			t.Fatal(err)
		}
		if _, _, err := env.Licences.StartProject(ctx, o.ID, mgr, ids[2]); err != nil {
			t.Fatalf("after a stop there is room: %v", err)
		}
		v, _ := env.Licences.GetLicence(ctx, o.ID, mgr)
		if v.Usage.ActiveProjects != 2 {
			t.Fatalf("usage %+v; want 2 active projects", v.Usage)
		}
		evs := env.Events(t, o.ID, mgr)
		if kluistest.CountAction(evs, "project.start") != 4 || kluistest.CountAction(evs, "project.stop") != 1 {
			t.Fatalf("want 4 project.start and 1 project.stop events")
		}
	})
}

// TestLicenceStorageAtBoundary (R13): with max_storage_bytes 10, a file of
// 10 bytes is stored; one more byte of new content is refused in the
// upload's commit and leaves no file; the same content again (stored once)
// and an empty file still fit.
func TestLicenceStorageAtBoundary(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "lic-storage-"+env.Engine)
		setLicence(t, env, o.ID, kluis.Licence{MaxStorageBytes: ptr(int64(10))})
		p, err := env.Projects.CreateProject(ctx, o.ID, mgr, kluis.ProjectInput{Name: "files"})
		if err != nil {
			t.Fatal(err)
		}
		put := func(path, body string) error {
			_, _, err := env.Projects.PutFile(ctx, o.ID, mgr, p.ID, kluis.FileWrite{Path: path, Body: strings.NewReader(body)})
			return err
		}
		if err := put("ten.txt", "0123456789"); err != nil {
			t.Fatalf("10 bytes (n = max) refused: %v", err)
		}
		wantLimit(t, put("eleven.txt", "x"), "max_storage_bytes")
		if _, err := env.Projects.FindFile(ctx, o.ID, mgr, p.ID, 0, "eleven.txt"); kluis.ErrorCode(err) != kluis.ENotFound {
			t.Fatalf("the refused upload left a file: %v", err)
		}
		if err := put("copy.txt", "0123456789"); err != nil {
			t.Fatalf("the same content, stored once, refused: %v", err)
		}
		v, _ := env.Licences.GetLicence(ctx, o.ID, mgr)
		if v.Usage.StorageBytes != 10 {
			t.Fatalf("usage %+v; want 10 bytes", v.Usage)
		}
	})
}

// TestLicenceEndDate (R13): after the licence's end (the store's clock
// moved past it), inviting, creating and starting projects are refused
// with licence_limit naming ends_at; what exists stays readable.
func TestLicenceEndDate(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "lic-end-"+env.Engine)
		p, err := env.Projects.CreateProject(ctx, o.ID, mgr, kluis.ProjectInput{Name: "before"})
		if err != nil {
			t.Fatal(err)
		}
		setLicence(t, env, o.ID, kluis.Licence{EndsAt: ptr(env.Clock.Now().Add(time.Hour))})
		if _, _, err := env.Licences.StartProject(ctx, o.ID, mgr, p.ID); err != nil {
			t.Fatalf("before the end: %v", err)
		}
		if err := env.Licences.StopProject(ctx, o.ID, mgr, p.ID); err != nil {
			t.Fatal(err)
		}
		env.Clock.Advance(time.Hour)
		_, err = env.Projects.CreateProject(ctx, o.ID, mgr, kluis.ProjectInput{Name: "after"})
		wantLimit(t, err, "ends_at")
		_, _, err = env.Licences.StartProject(ctx, o.ID, mgr, p.ID)
		wantLimit(t, err, "ends_at")
		email, role := "late@lic.example", kluis.RoleMember
		_, err = env.Users.InviteUser(ctx, o.ID, mgr, kluis.UserInput{Email: &email, Role: &role})
		wantLimit(t, err, "ends_at")
		if _, err := env.Projects.FindProject(ctx, o.ID, mgr, p.ID); err != nil {
			t.Fatalf("an existing project after the end: %v", err)
		}
	})
}

// TestActivityTimeoutAndOperatorView (R13): a period nobody stops ends
// after the licence's timeout (the clock moved, no sleep): it no longer
// counts as active and shows to = start + timeout. Managers see who; the
// operator sees the same periods without anyone's id. A project deleted to
// the trash ends its periods.
func TestActivityTimeoutAndOperatorView(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "lic-timeout-"+env.Engine)
		setLicence(t, env, o.ID, kluis.Licence{ActivityTimeoutMinutes: 60, MaxActiveProjects: ptr(1)})
		p, _ := env.Projects.CreateProject(ctx, o.ID, mgr, kluis.ProjectInput{Name: "runs"})
		q, _ := env.Projects.CreateProject(ctx, o.ID, mgr, kluis.ProjectInput{Name: "later"})
		start, _, err := env.Licences.StartProject(ctx, o.ID, mgr, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		env.Clock.Advance(59 * time.Minute)
		if v, _ := env.Licences.GetLicence(ctx, o.ID, mgr); v.Usage.ActiveProjects != 1 {
			t.Fatalf("before the timeout: %+v", v.Usage)
		}
		env.Clock.Advance(time.Minute)
		if v, _ := env.Licences.GetLicence(ctx, o.ID, mgr); v.Usage.ActiveProjects != 0 {
			t.Fatalf("after the timeout: %+v; want none active", v.Usage)
		}
		periods, err := env.Licences.ListActivity(ctx, o.ID, mgr, kluis.ActivityFilter{})
		if err != nil || len(periods) != 1 {
			t.Fatalf("periods %+v, %v", periods, err)
		}
		want := start.From.Add(time.Hour)
		if got := periods[0]; got.User != mgr.UserID || got.To == nil || !got.To.Equal(want) || got.Ended != kluis.EndedTimeout {
			t.Fatalf("period %+v; want by the manager, to %v, timeout", got, want)
		}
		// The timed-out project no longer holds the one active slot, and
		// its end is written when the next start looks.
		if _, _, err := env.Licences.StartProject(ctx, o.ID, mgr, q.ID); err != nil {
			t.Fatalf("start after a timeout: %v", err)
		}
		env.Clock.Advance(time.Minute)
		if err := env.Projects.DeleteProject(ctx, o.ID, mgr, q.ID); err != nil {
			t.Fatal(err)
		}
		anon, err := env.Licences.ListActivityAnonymous(ctx, o.ID, support, kluis.ActivityFilter{})
		if err != nil || len(anon) != 2 {
			t.Fatalf("operator view %+v, %v", anon, err)
		}
		for _, a := range anon {
			if a.User != "" || a.To == nil {
				t.Fatalf("operator sees %+v; want no person and an end", a)
			}
		}
		if anon[0].Project != q.ID || anon[0].Ended != kluis.EndedTrash || anon[1].Ended != kluis.EndedTimeout || !anon[1].To.Equal(want) {
			t.Fatalf("operator view %+v; want the trashed period first, the timed-out one at %v", anon, want)
		}
		// The filter: since after the first period's end leaves only the second.
		f := kluis.ActivityFilter{Since: want.Add(time.Second)}
		if got, _ := env.Licences.ListActivity(ctx, o.ID, mgr, f); len(got) != 1 || got[0].Project != q.ID {
			t.Fatalf("since filter: %+v", got)
		}
	})
}

// TestLicenceRights (R13, R8): the organisation's managers and operator
// admins and support read the licence; only admins set it (recorded as
// licence.update in the organisation's chain); members, security staff and
// managers are refused; a bad licence is invalid_input.
func TestLicenceRights(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "lic-rights-"+env.Engine)
		member := env.NewMember(t, o, mgr, "member@lic.example", kluis.RoleMember)
		for _, a := range []kluis.Actor{mgr, admin, support, kluis.CLIActor} {
			if v, err := env.Licences.GetLicence(ctx, o.ID, a); err != nil || v.Licence.ActivityTimeoutMinutes != kluis.DefaultActivityTimeout || v.Licence.MaxUsers != nil {
				t.Fatalf("%s reads %+v, %v; want no limits and the default timeout", a.AuditName(), v, err)
			}
		}
		for _, a := range []kluis.Actor{member, guard} {
			_, err := env.Licences.GetLicence(ctx, o.ID, a)
			kluistest.WantCode(t, err, kluis.EForbidden)
			_, err = env.Licences.ListActivityAnonymous(ctx, o.ID, a, kluis.ActivityFilter{})
			kluistest.WantCode(t, err, kluis.EForbidden)
		}
		for _, a := range []kluis.Actor{member, support, admin} {
			_, err := env.Licences.ListActivity(ctx, o.ID, a, kluis.ActivityFilter{})
			kluistest.WantCode(t, err, kluis.EForbidden)
		}
		for _, a := range []kluis.Actor{mgr, support, guard} {
			_, err := env.Licences.SetLicence(ctx, o.ID, a, kluis.Licence{MaxUsers: ptr(1)})
			kluistest.WantCode(t, err, kluis.EForbidden)
		}
		_, err := env.Licences.SetLicence(ctx, o.ID, admin, kluis.Licence{MaxUsers: ptr(-1), ActivityTimeoutMinutes: -5})
		kluistest.WantCode(t, err, kluis.EInvalid)
		_, err = env.Licences.SetLicence(ctx, "nope", admin, kluis.Licence{})
		kluistest.WantCode(t, err, kluis.ENotFound)
		v, err := env.Licences.SetLicence(ctx, o.ID, admin, kluis.Licence{MaxUsers: ptr(1)})
		if err != nil || *v.Licence.MaxUsers != 1 || v.Usage.Users != 2 {
			t.Fatalf("set below usage: %+v, %v; want it set (only growth is refused)", v, err)
		}
		updates := map[string]int{}
		for _, e := range env.Events(t, o.ID, mgr) {
			if e.Action == "licence.update" {
				updates[e.Outcome]++
			}
		}
		if updates["success"] != 1 || updates["denied"] != 3 {
			t.Fatalf("licence.update events %v, want 1 success and 3 denied", updates)
		}
		// A member without the start right cannot start.
		p, _ := env.Projects.CreateProject(ctx, o.ID, mgr, kluis.ProjectInput{Name: "mine"})
		_, _, err = env.Licences.StartProject(ctx, o.ID, member, p.ID)
		kluistest.WantCode(t, err, kluis.ENotFound)
		if err := env.Rights.SetGrant(ctx, o.ID, mgr, p.ID, kluis.Grant{Subject: kluis.Subject{Kind: kluis.SubjectUser, ID: string(member.UserID)}, Relation: kluis.RelViewer}); err != nil {
			t.Fatal(err)
		}
		_, _, err = env.Licences.StartProject(ctx, o.ID, member, p.ID)
		kluistest.WantCode(t, err, kluis.EForbidden)
	})
}
