package client_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/kluis/kluis/client"
	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/kluistest"
)

// TestClientDrivesProjects is the projects' end-to-end test through the
// generated client, as a customer's script would run it, on each engine
// (R9, R10, R11): create a project, upload a file, replace it under its
// ETag (a stale one loses), save two versions, compare them, read the old
// file back, go back, and share the project read-only.
func TestClientDrivesProjects(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		srv := httptest.NewServer(httpserver.NewServer(httpserver.Config{Services: env.Services(), Ready: env.Ready}))
		t.Cleanup(srv.Close)
		slug := kluistest.Name("org")
		o, mgr := env.NewOrg(t, slug)
		colleague := env.NewMember(t, o, mgr, "colleague@"+slug+".example", "member")
		anon, _ := client.New(srv.URL, "")
		login, err := anon.LoginWithResponse(ctx, slug, client.LoginJSONRequestBody{Email: "boss@" + slug + ".example", Password: kluistest.Password})
		if err != nil || login.JSON200 == nil {
			t.Fatalf("sign-in: %v %s", err, login.Body)
		}
		sess, _ := login.JSON200.AsSessionAnswer()
		c, _ := client.New(srv.URL, sess.Token)

		cp, err := c.CreateProjectWithResponse(ctx, slug, client.CreateProjectJSONRequestBody{Name: "Harbour model"})
		if err != nil || cp.JSON201 == nil || !slices.Contains(cp.JSON201.Project.Rights, client.ProjectRight("grant")) {
			t.Fatalf("create project: %v %d %s", err, cp.StatusCode(), cp.Body)
		}
		id := cp.JSON201.Project.ID
		put := func(body string, params *client.PutFileParams) *client.PutFileResponse {
			t.Helper()
			r, err := c.PutFileWithBodyWithResponse(ctx, slug, id, "model/plan.txt", params, "application/octet-stream", bytes.NewReader([]byte(body)))
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		first := put("first plan", nil)
		if first.JSON201 == nil || first.JSON201.File.Size != int64(len("first plan")) {
			t.Fatalf("upload: %d %s", first.StatusCode(), first.Body)
		}
		etag := `"` + first.JSON201.File.Etag + `"`
		if v1, err := c.CreateVersionWithResponse(ctx, slug, id, client.CreateVersionJSONRequestBody{Message: "first"}); err != nil || v1.JSON201 == nil || v1.JSON201.Version.Number != 1 {
			t.Fatalf("version 1: %v %s", err, v1.Body)
		}
		if second := put("second plan", &client.PutFileParams{IfMatch: &etag}); second.JSON200 == nil {
			t.Fatalf("replace under the current ETag: %d %s", second.StatusCode(), second.Body)
		}
		if stale := put("lost update", &client.PutFileParams{IfMatch: &etag}); stale.StatusCode() != 412 {
			t.Fatalf("replace under a stale ETag: %d %s, want 412", stale.StatusCode(), stale.Body)
		}
		if v2, err := c.CreateVersionWithResponse(ctx, slug, id, client.CreateVersionJSONRequestBody{Message: "second"}); err != nil || v2.JSON201 == nil {
			t.Fatalf("version 2: %v %s", err, v2.Body)
		}
		d, err := c.DiffVersionWithResponse(ctx, slug, id, 2, nil)
		if err != nil || d.JSON200 == nil || !slices.Equal(d.JSON200.Changed, []string{"model/plan.txt"}) {
			t.Fatalf("diff: %v %s", err, d.Body)
		}
		old, err := c.GetVersionFileWithResponse(ctx, slug, id, 1, "model/plan.txt", nil)
		if err != nil || old.StatusCode() != 200 || string(old.Body) != "first plan" {
			t.Fatalf("the file in version 1: %v %d %q", err, old.StatusCode(), old.Body)
		}
		if back, err := c.RestoreVersionWithResponse(ctx, slug, id, 1); err != nil || back.JSON201 == nil || back.JSON201.Version.Number != 3 {
			t.Fatalf("going back: %v %s", err, back.Body)
		}
		now, err := c.GetFileWithResponse(ctx, slug, id, "model/plan.txt", nil)
		if err != nil || string(now.Body) != "first plan" {
			t.Fatalf("the working tree after going back: %v %q", err, now.Body)
		}
		vs, err := c.ListVersionsWithResponse(ctx, slug, id)
		if err != nil || vs.JSON200 == nil || len(vs.JSON200.Versions) != 3 || vs.JSON200.Versions[2].AuthorName != "Boss" {
			t.Fatalf("versions: %v %s", err, vs.Body)
		}
		if g, err := c.SetGrantWithResponse(ctx, slug, id, "user:"+string(colleague.UserID), client.SetGrantJSONRequestBody{Relation: "viewer"}); err != nil || g.StatusCode() != 204 {
			t.Fatalf("share: %v %d %s", err, g.StatusCode(), g.Body)
		}
		list, err := c.ListProjectsWithResponse(ctx, slug, nil)
		if err != nil || list.JSON200 == nil || len(list.JSON200.Projects) != 1 {
			t.Fatalf("list: %v %s", err, list.Body)
		}
	})
}
