package anoncopy_test

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/anoncopy"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// versionShape is a version as the copy must keep it: number, where it was
// restored from, and its files' sizes (paths faked).
type versionShape struct {
	number, from int
	sizes        []int64
}

func shapeOf(t *testing.T, env *kluistest.Env, org kluis.OrgID, a kluis.Actor, p kluis.ProjectID) (vs []versionShape, work []int64, diff [3]int) {
	t.Helper()
	ctx := context.Background()
	versions, err := env.Projects.FindVersions(ctx, org, a, p)
	must(t, err)
	for _, v := range versions {
		tree, err := env.Projects.FindTree(ctx, org, a, p, v.Number, "")
		must(t, err)
		s := versionShape{number: v.Number, from: v.RestoredFrom}
		for _, f := range tree {
			s.sizes = append(s.sizes, f.Size)
		}
		slices.Sort(s.sizes)
		vs = append(vs, s)
	}
	tree, err := env.Projects.FindTree(ctx, org, a, p, 0, "")
	must(t, err)
	for _, f := range tree {
		work = append(work, f.Size)
	}
	slices.Sort(work)
	d, err := env.Projects.DiffVersions(ctx, org, a, p, 2, 1)
	must(t, err)
	return vs, work, [3]int{len(d.Added), len(d.Changed), len(d.Removed)}
}

// R39 R48: the copy keeps the structure — people with their ids, roles and
// states, groups and members, grants, projects in and out of the trash,
// every version with its files' sizes and what it was restored from, the
// working tree — under new keys, with every personal value and every file
// content replaced; nothing of the source's names, addresses, phone
// numbers, project and group names, paths, messages or contents is in
// anything the copy stored; and the copy's chains verify.
func TestCopyKeepsTheStructureAndNothingPersonal(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, src *kluistest.Env) {
		ctx := context.Background()
		o, boss := src.NewOrg(t, "zandvoort")
		phone := "+31 6 9876 5432"
		name := "Wilhelmina Zandvoort"
		_, err := src.Users.UpdateMe(ctx, o.ID, boss, kluis.UserInput{Name: &name, Phone: &phone})
		must(t, err)
		clerk := src.NewMember(t, o, boss, "bartholomeus.quist@zandvoort.example", kluis.RoleMember)
		second := src.NewMember(t, o, boss, "second.manager@zandvoort.example", kluis.RoleManager)
		g, err := src.Rights.CreateGroup(ctx, o.ID, boss, kluis.GroupInput{Name: "Familie Quistenburg"})
		must(t, err)
		must(t, src.Rights.AddGroupMember(ctx, o.ID, boss, g.ID, clerk.UserID))
		p, err := src.Projects.CreateProject(ctx, o.ID, boss, kluis.ProjectInput{Name: "Dossier Quistenburg"})
		must(t, err)
		must(t, src.Rights.SetGrant(ctx, o.ID, boss, p.ID, kluis.Grant{Subject: kluis.Subject{Kind: kluis.SubjectGroup, ID: string(g.ID)}, Relation: kluis.RelViewer}))
		must(t, src.Rights.SetGrant(ctx, o.ID, boss, p.ID, kluis.Grant{Subject: kluis.Subject{Kind: kluis.SubjectUser, ID: string(second.UserID)}, Relation: kluis.RelEditor}))
		put := func(path, body string) {
			_, _, err := src.Projects.PutFile(ctx, o.ID, boss, p.ID, kluis.FileWrite{Path: path, Body: strings.NewReader(body)})
			must(t, err)
		}
		secret := "Vertrouwelijk: de hypotheek van Quistenburg bedraagt 412.000 euro."
		put("klanten/Quistenburg/hypotheek.txt", secret)
		put("klanten/Quistenburg/kopie.txt", secret) // the same content twice
		put("scans/Quistenburg.bin", strings.Repeat("Quistenburg scan ", 3000))
		_, err = src.Projects.CreateVersion(ctx, o.ID, boss, p.ID, "eerste versie Quistenburg")
		must(t, err)
		put("klanten/Quistenburg/hypotheek.txt", secret+" Bijgewerkt.")
		must(t, src.Projects.DeleteFile(ctx, o.ID, boss, p.ID, "scans/Quistenburg.bin", ""))
		put("nieuw/Quistenburg.md", "# Quistenburg")
		_, err = src.Projects.CreateVersion(ctx, o.ID, boss, p.ID, "tweede versie Quistenburg")
		must(t, err)
		_, err = src.Projects.RestoreVersion(ctx, o.ID, boss, p.ID, 1)
		must(t, err)
		trashed, err := src.Projects.CreateProject(ctx, o.ID, boss, kluis.ProjectInput{Name: "Oud dossier Quistenburg"})
		must(t, err)
		must(t, src.Projects.DeleteProject(ctx, o.ID, boss, trashed.ID))

		srcUsers, err := src.Users.FindUsers(ctx, o.ID, boss)
		must(t, err)
		srcVersions, srcWork, srcDiff := shapeOf(t, src, o.ID, boss, p.ID)
		srcGrants, err := src.Rights.FindGrants(ctx, o.ID, boss, p.ID)
		must(t, err)

		dst := kluistest.NewEnv(t, sqlstore.SQLite)
		rep, err := anoncopy.Copy(ctx, anoncopy.Side{Core: src.Core, Projects: src.Projects}, anoncopy.Side{Core: dst.Core, Projects: dst.Projects}, "test")
		must(t, err)
		if rep.Orgs != 1 || rep.Users != 3 || rep.Groups != 1 || rep.Projects != 2 || rep.Versions != 3 || len(rep.Managers) != 2 {
			t.Errorf("report %+v: want 1 organisation, 3 people, 1 group, 2 projects, 3 versions, 2 managers", rep)
		}

		// The copy, as its manager (same id, same role) sees it.
		dboss := kluis.Actor{Realm: kluis.RealmOrg, OrgID: o.ID, UserID: boss.UserID, Role: kluis.RoleManager}
		dstUsers, err := dst.Users.FindUsers(ctx, o.ID, dboss)
		must(t, err)
		if len(dstUsers) != len(srcUsers) {
			t.Fatalf("%d people in the copy, want %d", len(dstUsers), len(srcUsers))
		}
		for i, u := range dstUsers {
			s := srcUsers[i]
			if u.ID != s.ID || u.Role != s.Role || u.Status != s.Status {
				t.Errorf("person %d: %s %s %s, want %s %s %s", i, u.ID, u.Role, u.Status, s.ID, s.Role, s.Status)
			}
			if u.Email == s.Email || u.Name == s.Name || !strings.HasSuffix(u.Email, "@example.org") {
				t.Errorf("person %d is not faked: %q %q", i, u.Email, u.Name)
			}
			if (s.Phone == "") != (u.Phone == "") || s.Phone != "" && u.Phone == s.Phone {
				t.Errorf("person %d's phone: %q from %q", i, u.Phone, s.Phone)
			}
		}
		groups, err := dst.Rights.FindGroups(ctx, o.ID, dboss)
		must(t, err)
		if len(groups) != 1 || groups[0].ID != g.ID || !slices.Equal(groups[0].Members, []kluis.UserID{clerk.UserID}) || groups[0].Name == g.Name {
			t.Errorf("the copy's groups: %+v", groups)
		}
		live, err := dst.Projects.FindProjects(ctx, o.ID, dboss, kluis.ProjectFilter{})
		must(t, err)
		trash, err := dst.Projects.FindTrash(ctx, o.ID, dboss)
		must(t, err)
		if len(live) != 1 || live[0].ID != p.ID || live[0].Name == p.Name || len(trash) != 1 || trash[0].ID != trashed.ID {
			t.Fatalf("the copy's projects: %+v, trash %+v", live, trash)
		}
		dstVersions, dstWork, dstDiff := shapeOf(t, dst, o.ID, dboss, p.ID)
		if len(dstVersions) != len(srcVersions) || !slices.Equal(dstWork, srcWork) || dstDiff != srcDiff {
			t.Errorf("the copy's project: versions %+v work %v diff %v, want %+v %v %v", dstVersions, dstWork, dstDiff, srcVersions, srcWork, srcDiff)
		}
		for i := range min(len(dstVersions), len(srcVersions)) {
			d, s := dstVersions[i], srcVersions[i]
			if d.number != s.number || d.from != s.from || !slices.Equal(d.sizes, s.sizes) {
				t.Errorf("version %d: %+v, want %+v", i, d, s)
			}
		}
		dstGrants, err := dst.Rights.FindGrants(ctx, o.ID, dboss, p.ID)
		must(t, err)
		if len(dstGrants) != len(srcGrants) {
			t.Errorf("the copy's grants: %+v, want %+v", dstGrants, srcGrants)
		}
		for _, sg := range srcGrants {
			if !slices.ContainsFunc(dstGrants, func(dg kluis.Grant) bool { return dg.Subject == sg.Subject && dg.Relation == sg.Relation }) {
				t.Errorf("the copy lacks the grant %+v", sg)
			}
		}
		tree, err := dst.Projects.FindTree(ctx, o.ID, dboss, p.ID, 0, "")
		must(t, err)
		bodies := map[string]string{}
		for _, f := range tree {
			if strings.Contains(f.Path, "Quistenburg") || strings.Contains(f.Path, "klanten") {
				t.Errorf("a path is not faked: %s", f.Path)
			}
			_, rc, err := dst.Projects.OpenFile(ctx, o.ID, dboss, p.ID, 0, f.Path)
			must(t, err)
			b, err := io.ReadAll(rc)
			rc.Close()
			must(t, err)
			if int64(len(b)) != f.Size {
				t.Errorf("%s: %d bytes, want %d", f.Path, len(b), f.Size)
			}
			bodies[f.ETag] = string(b)
		}
		if len(bodies) != 2 {
			t.Errorf("the copy's working tree has %d distinct contents, want 2 (two files shared one)", len(bodies))
		}

		found := kluistest.FindMarkers(dst.StoredBytes(t), "Zandvoort", "zandvoort.example", "Quistenburg", "9876 5432", "+31698765432",
			"Wilhelmina", "bartholomeus", "hypotheek", "Vertrouwelijk", "eerste versie", "tweede versie", "Familie", "Dossier")
		if len(found) > 0 {
			t.Errorf("the copy stores the source's values: %v", found)
		}
		results, err := dst.Audit.VerifyChains(ctx)
		must(t, err)
		for _, r := range results {
			if !r.OK {
				t.Errorf("the copy's chain %s is broken at %d: %s", r.Chain, r.FirstBrokenSeq, r.Problem)
			}
		}
		if first := dst.Query(t, `SELECT action FROM audit_events WHERE chain = '`+sqlstore.OrgChain(o.ID)+`' AND seq = 1`); len(first) != 1 || string(first[0][0]) != anoncopy.Action {
			t.Errorf("the copy's organisation chain does not start with %s", anoncopy.Action)
		}
	})
}
