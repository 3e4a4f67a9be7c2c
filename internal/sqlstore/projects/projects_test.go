package projects_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
)

// TestTrashAndPurge (R12): a deleted project waits in the trash for the
// organisation's trash period, during which its owner brings it back; after
// it, the purge removes it and destroys its key, so its sealed name in a
// copy of the database taken before can no longer be opened. The chain
// records each step and still verifies.
func TestTrashAndPurge(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "trash-"+env.Engine)
		owner := env.NewMember(t, o, mgr, "owner@trash.example", kluis.RoleMember)
		p, err := env.Projects.CreateProject(ctx, o.ID, owner, kluis.ProjectInput{Name: "  Dossier Jansen  "})
		if err != nil {
			t.Fatal(err)
		}
		if p.Name != "Dossier Jansen" || p.Rights != kluis.AllRights {
			t.Fatalf("created %+v, want the trimmed name and every right", p)
		}
		if err := env.Projects.DeleteProject(ctx, o.ID, owner, p.ID); err != nil {
			t.Fatal(err)
		}
		_, err = env.Projects.FindProject(ctx, o.ID, owner, p.ID)
		kluistest.WantCode(t, err, kluis.ENotFound)
		trash, err := env.Projects.FindTrash(ctx, o.ID, owner)
		if err != nil || len(trash) != 1 || trash[0].ID != p.ID {
			t.Fatalf("trash %+v, %v; want the project", trash, err)
		}
		if want := trash[0].DeletedAt.Add(kluis.DefaultTrashDays * 24 * time.Hour); !trash[0].PurgeAt.Equal(want) {
			t.Errorf("purge at %v, want %v", trash[0].PurgeAt, want)
		}
		// Brought back, and deleted again.
		if _, err := env.Projects.UndeleteProject(ctx, o.ID, owner, p.ID); err != nil {
			t.Fatal(err)
		}
		if err := env.Projects.DeleteProject(ctx, o.ID, owner, p.ID); err != nil {
			t.Fatal(err)
		}
		sealed := env.Query(t, `SELECT name FROM projects WHERE id = '`+string(p.ID)+`'`)[0][0]

		// Not yet: a day before the end nothing goes.
		env.Clock.Advance((kluis.DefaultTrashDays - 1) * 24 * time.Hour)
		if n, err := env.Projects.PurgeProjects(ctx); err != nil || n != 0 {
			t.Fatalf("purge a day early: %d, %v; want nothing", n, err)
		}
		env.Clock.Advance(25 * time.Hour)
		if n, err := env.Projects.PurgeProjects(ctx); err != nil || n != 1 {
			t.Fatalf("purge: %d, %v; want one", n, err)
		}
		if rows := env.Query(t, `SELECT id FROM projects WHERE id = '`+string(p.ID)+`'`); len(rows) != 0 {
			t.Error("the purged project's row is still there")
		}
		if rows := env.Query(t, `SELECT project_id FROM project_grants WHERE project_id = '`+string(p.ID)+`'`); len(rows) != 0 {
			t.Error("the purged project's grants are still there")
		}
		_, err = env.KeyStore.Open(ctx, keys.FieldRef{Org: string(o.ID), Table: "projects", Column: "name", Row: string(p.ID)}, sealed)
		if !errors.Is(err, keys.ErrKeyDestroyed) {
			t.Errorf("opening the old copy of the name: %v, want the key destroyed", err)
		}
		trash, _ = env.Projects.FindTrash(ctx, o.ID, owner)
		if len(trash) != 0 {
			t.Errorf("trash after the purge: %+v", trash)
		}
		evs := env.Events(t, o.ID, mgr)
		for action, want := range map[string]int{"project.create": 1, "project.delete": 2, "project.undelete": 1, "project.purge": 1} {
			if got := kluistest.CountAction(evs, action); got != want {
				t.Errorf("%s: %d events, want %d", action, got, want)
			}
		}
		res, err := env.Audit.VerifyOrgAudit(ctx, o.ID, mgr)
		if err != nil || !res.OK {
			t.Errorf("verify after the purge: %+v, %v", res, err)
		}
	})
}

// TestTrashPolicy: the trash period is the organisation's policy.
func TestTrashPolicy(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "trashpol-"+env.Engine)
		pol, err := env.Orgs.FindPolicy(ctx, o.ID, mgr)
		if err != nil {
			t.Fatal(err)
		}
		pol.TrashDays = 2
		if _, err := env.Orgs.UpdatePolicy(ctx, o.ID, mgr, pol); err != nil {
			t.Fatal(err)
		}
		pol.TrashDays = kluis.MaxTrashDays + 1
		_, err = env.Orgs.UpdatePolicy(ctx, o.ID, mgr, pol)
		kluistest.WantCode(t, err, kluis.EInvalid)
		p, err := env.Projects.CreateProject(ctx, o.ID, mgr, kluis.ProjectInput{Name: "Short-lived"})
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Projects.DeleteProject(ctx, o.ID, mgr, p.ID); err != nil {
			t.Fatal(err)
		}
		env.Clock.Advance(49 * time.Hour)
		if n, err := env.Projects.PurgeProjects(ctx); err != nil || n != 1 {
			t.Fatalf("purge after two days: %d, %v; want one", n, err)
		}
	})
}
