package client_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kluis/kluis/client"
	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/kluistest"
)

// TestClientDrivesARealServer uses the generated client as a customer's
// script would, against a real kluis server on each engine: sign in with a
// password, read and change one's own account, invite and list people,
// make a personal API token and work with it; errors come back in the
// contract's shape.
func TestClientDrivesARealServer(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		srv := httptest.NewServer(httpserver.NewServer(httpserver.Config{Services: env.Services(), Ready: env.Ready}))
		t.Cleanup(srv.Close)
		slug := kluistest.Name("org")
		env.NewOrg(t, slug)
		boss := "boss@" + slug + ".example"

		anon, err := client.New(srv.URL, "")
		if err != nil {
			t.Fatal(err)
		}
		wrong, err := anon.LoginWithResponse(ctx, slug, client.LoginJSONRequestBody{Email: boss, Password: "not the password 1"})
		if err != nil {
			t.Fatal(err)
		}
		if wrong.StatusCode() != 401 || wrong.JSON401 == nil || wrong.JSON401.Error.Code != client.ErrorCodeUnauthenticated {
			t.Fatalf("sign-in with a wrong password: %d %s, want 401 unauthenticated", wrong.StatusCode(), wrong.Body)
		}
		login, err := anon.LoginWithResponse(ctx, slug, client.LoginJSONRequestBody{Email: boss, Password: kluistest.Password})
		if err != nil {
			t.Fatal(err)
		}
		if login.JSON200 == nil {
			t.Fatalf("sign-in: %d %s, want 200", login.StatusCode(), login.Body)
		}
		sess, err := login.JSON200.AsSessionAnswer()
		if err != nil || sess.Token == "" || sess.User == nil || sess.User.Email != boss {
			t.Fatalf("sign-in answer %s (%v), want a session with the manager's user object", login.Body, err)
		}

		c, err := client.New(srv.URL, sess.Token)
		if err != nil {
			t.Fatal(err)
		}
		me, err := c.GetMeWithResponse(ctx, slug)
		if err != nil {
			t.Fatal(err)
		}
		if me.JSON200 == nil || me.JSON200.Email != boss || me.JSON200.Role != client.RoleManager || me.JSON200.LastLoginAt == nil {
			t.Fatalf("GET /me: %d %s, want the manager, signed in", me.StatusCode(), me.Body)
		}

		name, mails := "Boss Renamed", true
		upd, err := c.UpdateMeWithResponse(ctx, slug, client.UpdateMeJSONRequestBody{Name: &name, MaintenanceEmails: &mails})
		if err != nil {
			t.Fatal(err)
		}
		if upd.JSON200 == nil || upd.JSON200.Name != name || !upd.JSON200.MaintenanceEmails {
			t.Fatalf("PATCH /me: %d %s, want the new name and mail choice", upd.StatusCode(), upd.Body)
		}

		member := "noor@" + slug + ".example"
		inv, err := c.InviteUserWithResponse(ctx, slug, client.InviteUserJSONRequestBody{Email: member, Name: ptr("Noor"), Role: ptr(client.RoleMember)})
		if err != nil {
			t.Fatal(err)
		}
		if inv.JSON201 == nil || inv.JSON201.User.Status != client.UserStatusInvited {
			t.Fatalf("invite: %d %s, want 201 with an invited user", inv.StatusCode(), inv.Body)
		}
		bad, err := c.InviteUserWithResponse(ctx, slug, client.InviteUserJSONRequestBody{Email: "x@" + slug + ".example", Role: ptr(client.Role("emperor"))})
		if err != nil {
			t.Fatal(err)
		}
		if bad.JSON400 == nil || bad.JSON400.Error.Code != client.ErrorCodeInvalidInput || bad.JSON400.Error.Fields == nil || (*bad.JSON400.Error.Fields)["role"] == "" {
			t.Fatalf("invite with an unknown role: %d %s, want 400 invalid_input naming role", bad.StatusCode(), bad.Body)
		}

		tok, err := c.CreateTokenWithResponse(ctx, slug, client.CreateTokenJSONRequestBody{Name: "script", Scope: client.TokenScopeRead, ExpiresAt: time.Now().Add(24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if tok.JSON201 == nil {
			t.Fatalf("create token: %d %s, want 201", tok.StatusCode(), tok.Body)
		}
		script, err := client.New(srv.URL, tok.JSON201.Secret)
		if err != nil {
			t.Fatal(err)
		}
		users, err := script.ListUsersWithResponse(ctx, slug)
		if err != nil {
			t.Fatal(err)
		}
		if users.JSON200 == nil || len(users.JSON200.Users) != 2 {
			t.Fatalf("list users with a personal API token: %d %s, want the manager and the invited member", users.StatusCode(), users.Body)
		}
		for _, u := range users.JSON200.Users {
			if u.Factors == nil {
				t.Errorf("user %s in the list has no factors list", u.ID)
			}
		}
		readOnly, err := script.UpdateMeWithResponse(ctx, slug, client.UpdateMeJSONRequestBody{Name: &name})
		if err != nil {
			t.Fatal(err)
		}
		if readOnly.JSON403 == nil || readOnly.JSON403.Error.Code != client.ErrorCodeForbidden {
			t.Errorf("a write with a read token: %d %s, want 403 forbidden", readOnly.StatusCode(), readOnly.Body)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// TestGeneratedClientIsUpToDate: client.gen.go is what oapi-codegen (the
// version go.mod pins as a tool) makes of the OpenAPI description now.
func TestGeneratedClientIsUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the generator")
	}
	out := filepath.Join(t.TempDir(), "client.gen.go")
	cmd := exec.Command("go", "tool", "oapi-codegen", "-config", "oapi-codegen.yaml", "-o", out, "../internal/openapi/openapi.json")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oapi-codegen: %v\n%s", err, msg)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("client.gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("client/client.gen.go is not what the OpenAPI description gives: run `go generate ./client/`")
	}
}
