package orgexport_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/kluistest"
)

func export(t *testing.T, env *kluistest.Env, org kluis.OrgID, actor kluis.Actor) (map[string][]byte, *zip.Reader) {
	t.Helper()
	var buf bytes.Buffer
	if err := env.Export.ExportOrg(context.Background(), org, actor, &buf); err != nil {
		t.Fatalf("ExportOrg: %v", err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		var b bytes.Buffer
		b.ReadFrom(rc)
		rc.Close()
		files[f.Name] = b.Bytes()
	}
	return files, zr
}

// TestExportUnderOwnersPolicy (R9, R7): under project_access "owners" a
// manager's export holds the projects they may open and names the others by
// id only, with the reason; under "managers" it holds every project, in the
// trash too. The audit log of either verifies from the archive.
func TestExportUnderOwnersPolicy(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, boss := env.NewOrg(t, "exp-owners")
		alice := env.NewMember(t, o, boss, "alice@exp-owners.example", kluis.RoleMember)
		theirs, err := env.Projects.CreateProject(ctx, o.ID, alice, kluis.ProjectInput{Name: "Alice's secret"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := env.Projects.PutFile(ctx, o.ID, alice, theirs.ID, kluis.FileWrite{Path: "plan.txt", Body: strings.NewReader("alice's plan")}); err != nil {
			t.Fatal(err)
		}
		mine, err := env.Projects.CreateProject(ctx, o.ID, boss, kluis.ProjectInput{Name: "Boss's own"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := env.Projects.PutFile(ctx, o.ID, boss, mine.ID, kluis.FileWrite{Path: "a/b.txt", Body: strings.NewReader("mine")}); err != nil {
			t.Fatal(err)
		}
		trashed, err := env.Projects.CreateProject(ctx, o.ID, alice, kluis.ProjectInput{Name: "Old"})
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Projects.DeleteProject(ctx, o.ID, alice, trashed.ID); err != nil {
			t.Fatal(err)
		}

		// Under "managers" (the default) everything is there, the trash too.
		files, zr := export(t, env, o.ID, boss)
		if string(files["projects/"+string(theirs.ID)+"/files/plan.txt"]) != "alice's plan" || string(files["projects/"+string(mine.ID)+"/files/a/b.txt"]) != "mine" {
			t.Errorf("under managers the export lacks a project's files: %v", keys(files))
		}
		if !bytes.Contains(files["projects/"+string(trashed.ID)+"/project.json"], []byte(`"purge_at"`)) {
			t.Errorf("the trashed project's project.json: %s", files["projects/"+string(trashed.ID)+"/project.json"])
		}
		if r, err := audit.VerifyExport(zr); err != nil || !r.OK {
			t.Errorf("verify: %+v %v", r, err)
		}

		pol, err := env.Orgs.FindPolicy(ctx, o.ID, boss)
		if err != nil {
			t.Fatal(err)
		}
		pol.ProjectAccess = kluis.ProjectAccessOwners
		if _, err := env.Orgs.UpdatePolicy(ctx, o.ID, boss, pol); err != nil {
			t.Fatal(err)
		}
		files, zr = export(t, env, o.ID, boss)
		for name := range files {
			if strings.HasPrefix(name, "projects/"+string(theirs.ID)) || strings.HasPrefix(name, "projects/"+string(trashed.ID)) {
				t.Errorf("under owners the export holds %s of a project nobody granted the manager", name)
			}
		}
		if string(files["projects/"+string(mine.ID)+"/files/a/b.txt"]) != "mine" {
			t.Errorf("under owners the manager's own project is missing")
		}
		var oj struct {
			Withheld []struct{ ID, Reason string } `json:"withheld_projects"`
		}
		json.Unmarshal(files["organisation.json"], &oj)
		if len(oj.Withheld) != 2 || oj.Withheld[0].Reason == "" || !strings.Contains(string(files["README.md"]), string(theirs.ID)) {
			t.Errorf("withheld projects %+v; README lists them: %v", oj.Withheld, strings.Contains(string(files["README.md"]), string(theirs.ID)))
		}
		if strings.Contains(string(bytes.Join(values(files), nil)), "Alice's secret") {
			t.Errorf("the withheld project's name is in the export")
		}
		if r, err := audit.VerifyExport(zr); err != nil || !r.OK {
			t.Errorf("verify: %+v %v", r, err)
		}
	})
}

// TestExportRefusesSupportAndMembers (R9, R22): a support session, whatever
// its grant, and a member never export; a manager's API token must
// re-authenticate (a token is never a fresh sign-in). Nothing is written.
func TestExportRefusesSupportAndMembers(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, boss := env.NewOrg(t, "exp-refuse")
		member := env.NewMember(t, o, boss, "m@exp-refuse.example", kluis.RoleMember)
		support := kluis.Actor{Realm: kluis.RealmOrg, OrgID: o.ID, OperatorID: "0190f0e0-0000-7000-8000-000000000009", AuthenticatedAt: env.Clock.Now(),
			Support: &kluis.SupportAccess{Scope: kluis.SupportOrgScope, Right: kluis.SupportEdit, ExpiresAt: env.Clock.Now().Add(24 * 3600e9)}}
		token := boss
		token.SessionID, token.TokenID = "", "0190f0e0-0000-7000-8000-00000000000a"
		for _, c := range []struct {
			name  string
			actor kluis.Actor
			code  string
		}{{"support with an edit grant", support, kluis.EForbidden}, {"member", member, kluis.EForbidden}, {"manager's token", token, kluis.EReauthRequired}} {
			var buf bytes.Buffer
			err := env.Export.ExportOrg(ctx, o.ID, c.actor, &buf)
			if kluis.ErrorCode(err) != c.code || buf.Len() != 0 {
				t.Errorf("%s: %v with %d bytes, want %s and nothing written", c.name, err, buf.Len(), c.code)
			}
		}
	})
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func values(m map[string][]byte) [][]byte {
	var out [][]byte
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestDocsHoldTheArchiveReadme: docs/EXPORT.md carries the archive's
// README.md word for word, so the two cannot drift apart.
func TestDocsHoldTheArchiveReadme(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/EXPORT.md")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("readme.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(doc, readme) {
		t.Errorf("docs/EXPORT.md does not hold internal/sqlstore/orgexport/readme.md word for word")
	}
}
