package rights_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
)

// TestListingMergesOwnAndGroupGrants (R2, R6): a person's project list is
// the union of their own grants and their groups', in order, each project
// once with the union of its rights, page after page — and nothing else.
func TestListingMergesOwnAndGroupGrants(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "merge-"+env.Engine)
		owner := env.NewMember(t, o, mgr, "owner@merge.example", kluis.RoleMember)
		amir := env.NewMember(t, o, mgr, "amir@merge.example", kluis.RoleMember)
		g1, err := env.Rights.CreateGroup(ctx, o.ID, mgr, kluis.GroupInput{Name: "One"})
		if err != nil {
			t.Fatal(err)
		}
		g2, _ := env.Rights.CreateGroup(ctx, o.ID, mgr, kluis.GroupInput{Name: "Two"})
		for _, g := range []kluis.GroupID{g1.ID, g2.ID} {
			if err := env.Rights.AddGroupMember(ctx, o.ID, mgr, g, amir.UserID); err != nil {
				t.Fatal(err)
			}
		}
		want := map[kluis.ProjectID][]string{}
		var order []kluis.ProjectID
		for i := range 12 {
			p, err := env.Projects.CreateProject(ctx, o.ID, owner, kluis.ProjectInput{Name: fmt.Sprintf("P%d", i)})
			if err != nil {
				t.Fatal(err)
			}
			grant := func(s kluis.Subject, rel kluis.Relation) {
				t.Helper()
				if err := env.Rights.SetGrant(ctx, o.ID, owner, p.ID, kluis.Grant{Subject: s, Relation: rel}); err != nil {
					t.Fatal(err)
				}
			}
			amirS := kluis.Subject{Kind: kluis.SubjectUser, ID: string(amir.UserID)}
			one := kluis.Subject{Kind: kluis.SubjectGroup, ID: string(g1.ID)}
			two := kluis.Subject{Kind: kluis.SubjectGroup, ID: string(g2.ID)}
			switch i % 4 {
			case 0: // own grant only
				grant(amirS, kluis.RelViewer)
				want[p.ID] = []string{"view"}
			case 1: // both groups
				grant(one, kluis.RelRunner)
				grant(two, kluis.RelEditor)
				want[p.ID] = []string{"view", "edit", "start"}
			case 2: // own and a group
				grant(amirS, kluis.RelViewer)
				grant(two, kluis.RelRunner)
				want[p.ID] = []string{"view", "start"}
			case 3: // nothing for amir
				continue
			}
			order = append(order, p.ID)
		}
		slices.Sort(order) // ids order the list: time-ordered to the millisecond
		var got []kluis.ProjectID
		after := kluis.ProjectID("")
		for pages := 0; ; pages++ {
			page, err := env.Projects.FindProjects(ctx, o.ID, amir, kluis.ProjectFilter{After: after, Limit: 4})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range page {
				got = append(got, p.ID)
				if !slices.Equal(p.Rights.Names(), want[p.ID]) {
					t.Errorf("%s: rights %v, want %v", p.Name, p.Rights.Names(), want[p.ID])
				}
			}
			if len(page) < 4 {
				break
			}
			after = page[len(page)-1].ID
			if pages > 5 {
				t.Fatal("paging does not end")
			}
		}
		if !slices.Equal(got, order) {
			t.Errorf("listed %v, want %v", got, order)
		}
	})
}
