package signin_test

import (
	"context"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/password"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/areas"
)

// R21, R14: sessions end when idle, at their absolute end, when the user is
// disabled or deleted, and at a password change (except the current one).
func TestSessionsEnd(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := env.NewOrg(t, "zeta")
		open := func(email string) string {
			sess, _, err := kluistest.Login(ctx, env.SignIn, o.ID, email, kluistest.Password)
			if err != nil {
				t.Fatal(err)
			}
			return sess.Token
		}
		alive := func(token string) bool {
			_, _, err := kluistest.Authenticate(ctx, env.SignIn, token)
			if err != nil && kluis.ErrorCode(err) != kluis.EUnauthenticated {
				t.Fatal(err)
			}
			return err == nil
		}
		m := env.NewMember(t, o, manager, "m@zeta.example", kluis.RoleMember)

		idle := open("m@zeta.example")
		env.Clock.Advance(29 * time.Minute)
		if !alive(idle) {
			t.Fatal("session died before the idle timeout")
		}
		env.Clock.Advance(31 * time.Minute)
		if alive(idle) {
			t.Fatal("session outlived the idle timeout (R21)")
		}

		busy := open("m@zeta.example")
		for i := 0; i < 12*4-1; i++ {
			env.Clock.Advance(15 * time.Minute)
			if !alive(busy) {
				t.Fatalf("busy session died after %d quarters", i+1)
			}
		}
		env.Clock.Advance(16 * time.Minute)
		if alive(busy) {
			t.Fatal("session outlived its absolute lifetime")
		}

		manager = env.SignedIn(t, o.ID, "boss@zeta.example")
		other, current := open("m@zeta.example"), open("m@zeta.example")
		cur, _, err := kluistest.Authenticate(ctx, env.SignIn, current)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.SignIn.ChangePassword(ctx, kluis.OrgScope(o.ID), cur, kluistest.Password, "Brand-new-passw0rd"); err != nil {
			t.Fatal(err)
		}
		if alive(other) || !alive(current) {
			t.Fatalf("after a password change: other alive=%v (want false), current alive=%v (want true)", alive(other), alive(current))
		}

		yes := true
		if _, err := env.Users.UpdateUser(ctx, o.ID, manager, m.UserID, kluis.UserInput{Disabled: &yes}); err != nil {
			t.Fatal(err)
		}
		if alive(current) {
			t.Fatal("a disabled user's session still works")
		}
		if _, _, err := kluistest.Login(ctx, env.SignIn, o.ID, "m@zeta.example", "Brand-new-passw0rd"); kluis.ErrorCode(err) != kluis.EUnauthenticated {
			t.Fatalf("disabled user logged in: %v", err)
		}
		no := false
		if _, err := env.Users.UpdateUser(ctx, o.ID, manager, m.UserID, kluis.UserInput{Disabled: &no}); err != nil {
			t.Fatal(err)
		}
		tok := ""
		if sess, _, err := kluistest.Login(ctx, env.SignIn, o.ID, "M@Zeta.example ", "Brand-new-passw0rd"); err != nil {
			t.Fatalf("re-enabled user cannot log in (e-mail normalised): %v", err)
		} else {
			tok = sess.Token
		}
		if err := env.Users.DeleteUser(ctx, o.ID, manager, m.UserID); err != nil {
			t.Fatal(err)
		}
		if alive(tok) {
			t.Fatal("a deleted user's session still works")
		}
	})
}

// R15: a hash made with weaker parameters is upgraded at the next login.
func TestWeakHashUpgradedAtLogin(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			weak := kluistest.NewEnv(t, engine)
			o, _ := weak.NewOrg(t, "eta")
			strong, err := password.NewHasher(password.Params{Memory: 2048, Time: 2, Threads: 1}, 0)
			if err != nil {
				t.Fatal(err)
			}
			core, err := sqlstore.New(weak.DB, sqlstore.Options{Now: weak.Clock.Now, Keys: weak.KeyStore})
			if err != nil {
				t.Fatal(err)
			}
			store := areas.New(core, areas.Config{Hasher: strong, Signer: weak.Signer, Witness: weak.Witness})
			if _, _, err := kluistest.Login(ctx, store.SignIn, o.ID, "boss@eta.example", kluistest.Password); err != nil {
				t.Fatal(err)
			}
			n := weak.MustExec(t, "UPDATE users SET name = name WHERE password_hash LIKE '$argon2id$v=19$m=2048,t=2,p=1$%'")
			if n != 1 {
				t.Fatalf("got %d upgraded hashes, want 1", n)
			}
			if _, _, err := kluistest.Login(ctx, store.SignIn, o.ID, "boss@eta.example", kluistest.Password); err != nil {
				t.Fatalf("login after upgrade: %v", err)
			}
		})
	}
}

// A personal API token never changes its owner's password, factors or
// sessions and never re-authenticates (R9, R14): the services refuse a
// token's actor themselves, whatever route or caller hands it over, and
// nothing changes.
func TestTokensCannotChangeCredentialsOrSessions(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := env.NewOrg(t, "tokcred")
		env.SignedIn(t, o.ID, "boss@tokcred.example") // a second session to end
		_, secret, err := env.Tokens.CreateAPIToken(ctx, o.ID, manager, kluis.TokenInput{Name: "script", Scope: kluis.ScopeFull, Lifetime: 24 * time.Hour})
		if err != nil {
			t.Fatalf("CreateAPIToken: %v", err)
		}
		token, _, err := kluistest.Authenticate(ctx, env.SignIn, secret)
		if err != nil {
			t.Fatalf("Authenticate the token: %v", err)
		}
		if !token.ViaToken() || token.SessionID != "" {
			t.Fatalf("the token's actor: %+v", token)
		}
		scope := kluis.OrgScope(o.ID)
		before, err := env.SignIn.FindSessions(ctx, scope, manager)
		if err != nil {
			t.Fatal(err)
		}
		_, err = env.SignIn.EndOtherSessions(ctx, scope, token)
		kluistest.WantCode(t, err, kluis.EUnauthenticated)
		kluistest.WantCode(t, env.SignIn.EndSession(ctx, scope, token, manager.SessionID), kluis.EUnauthenticated)
		kluistest.WantCode(t, env.SignIn.ChangePassword(ctx, scope, token, kluistest.Password, "another-horse-42"), kluis.EUnauthenticated)
		_, err = env.SignIn.Reauth(ctx, scope, token, kluistest.Password, "", "")
		kluistest.WantCode(t, err, kluis.EUnauthenticated)
		_, err = env.SignIn.PrepareReauth(ctx, scope, token, "sms")
		kluistest.WantCode(t, err, kluis.EUnauthenticated)
		_, err = env.Factors.StartFactor(ctx, scope, token, kluis.FactorTOTP, kluis.FactorSetup{})
		kluistest.WantCode(t, err, kluis.EUnauthenticated)
		kluistest.WantCode(t, env.Factors.RemoveFactor(ctx, scope, token, kluis.FactorTOTP, ""), kluis.EUnauthenticated)

		after, err := env.SignIn.FindSessions(ctx, scope, manager)
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before) || len(after) != 2 {
			t.Fatalf("sessions before %d, after %d, want 2 both times", len(before), len(after))
		}
		if _, _, err := kluistest.Login(ctx, env.SignIn, o.ID, "boss@tokcred.example", kluistest.Password); err != nil {
			t.Fatalf("the password changed: %v", err)
		}
	})
}
