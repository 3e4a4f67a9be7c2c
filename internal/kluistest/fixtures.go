package kluistest

import (
	"context"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
)

// Password is the password every fixture account signs in with.
const Password = "correct-horse-9"

// ForEngines runs a storage test on SQLite and on PostgreSQL, side by
// side, each on a fresh Env built with opts.
func ForEngines(t *testing.T, test func(t *testing.T, env *Env), opts ...EnvOptions) {
	t.Helper()
	for _, engine := range Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			test(t, NewEnv(t, engine, opts...))
		})
	}
}

// NewOrg creates an organisation whose first manager
// (boss@<slug>.example) has accepted the invitation and signed in; it
// returns the organisation and the manager's actor.
func (e *Env) NewOrg(tb testing.TB, slug string) (kluis.Org, kluis.Actor) {
	tb.Helper()
	ctx := context.Background()
	o, link, err := e.Orgs.CreateOrg(ctx, kluis.CLIActor, kluis.NewOrg{Slug: slug, Name: "Org " + slug, ManagerEmail: "boss@" + slug + ".example"})
	if err != nil {
		tb.Fatalf("CreateOrg: %v", err)
	}
	if _, err := e.Users.AcceptInvitation(ctx, o.ID, kluis.Origin{}, Token(link), "Boss", Password); err != nil {
		tb.Fatalf("AcceptInvitation: %v", err)
	}
	return o, e.SignedIn(tb, o.ID, "boss@"+slug+".example")
}

// SignedIn signs email in with Password and returns the session's actor.
func (e *Env) SignedIn(tb testing.TB, org kluis.OrgID, email string) kluis.Actor {
	tb.Helper()
	sess, _, err := Login(context.Background(), e.SignIn, org, email, Password)
	if err != nil {
		tb.Fatalf("Login: %v", err)
	}
	actor, _, err := Authenticate(context.Background(), e.SignIn, sess.Token)
	if err != nil {
		tb.Fatalf("Authenticate: %v", err)
	}
	return actor
}

// NewMember invites email with role, accepts the invitation and signs the
// member in; it returns the member's actor.
func (e *Env) NewMember(tb testing.TB, o kluis.Org, manager kluis.Actor, email string, role kluis.Role) kluis.Actor {
	tb.Helper()
	ctx := context.Background()
	u, err := e.Users.InviteUser(ctx, o.ID, manager, kluis.UserInput{Email: &email, Role: &role})
	if err != nil {
		tb.Fatalf("InviteUser: %v", err)
	}
	if _, err := e.Users.AcceptInvitation(ctx, o.ID, kluis.Origin{}, e.LastToken(tb), "Member", Password); err != nil {
		tb.Fatalf("AcceptInvitation: %v", err)
	}
	a := e.SignedIn(tb, o.ID, email)
	if a.UserID != u.ID {
		tb.Fatalf("signed in as %s, want %s", a.UserID, u.ID)
	}
	return a
}

// Events is the organisation's audit trail as its manager reads it, newest
// first, one full page.
func (e *Env) Events(tb testing.TB, org kluis.OrgID, manager kluis.Actor) []kluis.AuditEvent {
	tb.Helper()
	evs, _, err := e.Audit.FindAuditEvents(context.Background(), org, manager, kluis.AuditFilter{Limit: kluis.MaxAuditPage})
	if err != nil {
		tb.Fatalf("FindAuditEvents: %v", err)
	}
	return evs
}

// CountAction counts the events of one action.
func CountAction(evs []kluis.AuditEvent, action string) int {
	n := 0
	for _, ev := range evs {
		if ev.Action == action {
			n++
		}
	}
	return n
}

// WantCode fails the test unless err carries the error code.
func WantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := kluis.ErrorCode(err); err == nil || got != code {
		tb.Fatalf("got error %v (code %q), want code %q", err, got, code)
	}
}

// StaleRows counts the sealed values of the organisation's users and
// queued mail whose ciphertext does not use the active version of its key.
func (e *Env) StaleRows(t testing.TB, org kluis.OrgID) (stale int) {
	t.Helper()
	ctx := context.Background()
	for _, query := range []string{
		`SELECT id, email FROM users WHERE org_id = '` + string(org) + `'`,
		`SELECT id, name FROM users WHERE org_id = '` + string(org) + `'`,
		`SELECT id, phone FROM users WHERE org_id = '` + string(org) + `'`,
		`SELECT user_id, envelope FROM mail_queue WHERE org_id = '` + string(org) + `'`,
		`SELECT user_id, name FROM api_tokens WHERE org_id = '` + string(org) + `'`,
		`SELECT user_id, new_email FROM email_changes WHERE org_id = '` + string(org) + `'`,
		`SELECT user_id, device FROM sessions WHERE org_id = '` + string(org) + `' AND device IS NOT NULL`,
		`SELECT user_id, title FROM notices WHERE org_id = '` + string(org) + `'`,
		`SELECT user_id, body FROM notices WHERE org_id = '` + string(org) + `'`,
		// Sealed under the organisation's key: no user.
		`SELECT '', name FROM user_groups WHERE org_id = '` + string(org) + `'`,
		`SELECT '', reason FROM support_requests WHERE org_id = '` + string(org) + `'`,
		`SELECT '', reason FROM support_grants WHERE org_id = '` + string(org) + `'`,
	} {
		for _, r := range e.Query(t, query) {
			kv, err := keys.ParseCiphertext(r[1])
			if err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			key := keys.UserKey(string(org), string(r[0]))
			if len(r[0]) == 0 {
				key = keys.OrgKey(string(org))
			}
			active, err := e.KeyStore.ActiveVersion(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if kv != active {
				stale++
			}
		}
	}
	return stale
}
