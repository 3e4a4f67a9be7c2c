package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore"
)

// The command line, run in-process through run() with its environment given
// as a map (docs/REFERENCE.md, "Command line").

func TestVersionAndHelpPrintToStdout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		wantStdout []string
	}{
		{"version prints the version", []string{"version"}, []string{"kluis " + version + "\n"}},
		{"help lists every command", []string{"help"}, []string{"kluis serve", "kluis operator create", "--password-stdin",
			"kluis org create SLUG", "kluis org delete SLUG --confirm", "kluis audit verify", "kluis migrate", "kluis version"}},
		{"--help is help", []string{"--help"}, []string{"kluis serve", "kluis audit verify"}},
		{"-h is help", []string{"-h"}, []string{"kluis serve", "kluis audit verify"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli(t, testEnv(), "", tt.args...)
			if r.code != 0 {
				t.Fatalf("got %s, want exit 0", r)
			}
			for _, want := range tt.wantStdout {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("stdout is %q, want it to contain %q", r.stdout, want)
				}
			}
			if r.stderr != "" {
				t.Errorf("stderr is %q, want nothing", r.stderr)
			}
		})
	}
}

func TestUsageErrorsExit2WithKluisPrefix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"unknown command", []string{"frobnicate"}},
		{"no command", nil},
		{"unknown org command", []string{"org", "frobnicate"}},
		{"org without a command", []string{"org"}},
		{"unknown operator command", []string{"operator", "delete"}},
		{"unknown audit command", []string{"audit", "erase"}},
		{"unknown flag", []string{"org", "list", "--frobnicate"}},
		{"serve with an argument", []string{"serve", "extra", "--addr", "127.0.0.1:0", "--data", "DATA"}},
		{"org create without a slug", []string{"org", "create", "--name", "Acme", "--manager-email", "m@example.com", "--data", "DATA"}},
		{"org create with two slugs", []string{"org", "create", "acme", "beta", "--name", "Acme", "--manager-email", "m@example.com", "--data", "DATA"}},
		{"org create without a manager", []string{"org", "create", "acme", "--name", "Acme", "--data", "DATA"}},
	}
	dir := t.TempDir()
	mustCLI(t, testEnv(), "", "migrate", "--data", dir)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, "DATA", dir)
			}
			r := cli(t, testEnv(), "", args...)
			if r.code != 2 {
				t.Fatalf("got %s, want exit 2", r)
			}
			checkErrorShape(t, r.stderr)
			if r.stdout != "" {
				t.Errorf("stdout is %q, want nothing", r.stdout)
			}
		})
	}
	if got := queryStrings(t, sqlstore.SQLite, dir, "", `SELECT slug FROM orgs`); len(got) != 0 {
		t.Errorf("organisations after refused commands: got %v, want none", got)
	}
}

// The password comes from the first line of stdin; the line ending is not
// part of it, everything else is (R15, docs/REFERENCE.md "Secrets never come from
// flags").
func TestOperatorCreateReadsPasswordLineFromStdin(t *testing.T) {
	t.Parallel()
	const pw = "  Correct horse 7 staple  " // spaces at both ends are part of it
	tests := []struct {
		name  string
		stdin string
	}{
		{"line ending in LF", pw + "\n"},
		{"line ending in CRLF", pw + "\r\n"},
		{"no line ending", pw},
		{"only the first line", pw + "\nsecond line\n"},
	}
	dir := t.TempDir()
	mustCLI(t, testEnv(), "", "migrate", "--data", dir)
	st := openStore(t, dir, "")
	ctx := context.Background()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			email := "op" + string(rune('a'+i)) + "@example.com"
			r := cli(t, testEnv(), tt.stdin, "operator", "create", "--email", email, "--name", "Olga Operator", "--password-stdin", "--data", dir)
			if r.code != 0 {
				t.Fatalf("got %s, want exit 0", r)
			}
			if !regexp.MustCompile(`^operator [0-9a-f-]{36} created\n$`).MatchString(r.stdout) {
				t.Errorf("stdout is %q, want %q", r.stdout, "operator ID created\n")
			}
			if strings.Contains(r.stdout+r.stderr, "horse") {
				t.Errorf("the password shows in the output:\n%s", r)
			}
			if _, err := st.SignIn.Login(ctx, kluis.OperatorScope, kluis.Origin{}, email, pw); err != nil {
				t.Errorf("login with the exact password: got %v, want a session", err)
			}
			for _, wrong := range []string{strings.TrimSpace(pw), pw + "\r", pw + "\n", pw + "\nsecond line"} {
				if _, err := st.SignIn.Login(ctx, kluis.OperatorScope, kluis.Origin{}, email, wrong); err == nil {
					t.Errorf("login with %q: got a session, want unauthenticated", wrong)
				}
			}
		})
	}
}

func TestOperatorCreateRefusesWithoutPasswordOnStdin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantHint bool
	}{
		{"without --password-stdin", []string{"--email", "op@example.com"}, "Correct horse 7 staple\n", true},
		{"empty stdin", []string{"--email", "op@example.com", "--password-stdin"}, "", false},
		{"an empty line", []string{"--email", "op@example.com", "--password-stdin"}, "\n", false},
		{"an empty CRLF line", []string{"--email", "op@example.com", "--password-stdin"}, "\r\nCorrect horse 7 staple\n", false},
		{"without --email", []string{"--password-stdin"}, "Correct horse 7 staple\n", true},
		{"with a positional argument", []string{"op@example.com", "--password-stdin"}, "Correct horse 7 staple\n", true},
	}
	dir := t.TempDir()
	mustCLI(t, testEnv(), "", "migrate", "--data", dir)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli(t, testEnv(), tt.stdin, append(append([]string{"operator", "create"}, tt.args...), "--data", dir)...)
			if r.code != 2 {
				t.Fatalf("got %s, want exit 2", r)
			}
			checkErrorShape(t, r.stderr)
			if hasHint := strings.Contains(r.stderr, "\nhint: "); tt.wantHint && !hasHint {
				t.Errorf("stderr is %q, want a hint line", r.stderr)
			}
		})
	}
	if got := queryStrings(t, sqlstore.SQLite, dir, "", `SELECT id FROM operators`); len(got) != 0 {
		t.Errorf("operators after refused commands: got %d, want none", len(got))
	}
}

// Flags may stand before or after the positional argument (docs/REFERENCE.md).
func TestOrgCreateTakesFlagsBeforeAndAfterTheSlug(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustCLI(t, testEnv(), "", "migrate", "--data", dir)
	tests := []struct {
		name string
		args []string
	}{
		{"slug between flags", []string{"--name", "Acme", "acme", "--manager-email", "m1@example.com", "--data", dir}},
		{"slug first", []string{"beta", "--name", "Beta", "--manager-email", "m2@example.com", "--data", dir}},
		{"slug last", []string{"--data", dir, "--name=Gamma", "--manager-email=m3@example.com", "--manager-name", "Gert", "gamma"}},
		{"data before the slug, others after", []string{"--data=" + dir, "delta", "--manager-email", "m4@example.com", "--name", "Delta", "--language", "nl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli(t, testEnv(), "", append([]string{"org", "create"}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("got %s, want exit 0", r)
			}
		})
	}
	r := mustCLI(t, testEnv(), "", "org", "list", "--data", dir)
	for _, slug := range []string{"acme", "beta", "gamma", "delta"} {
		if !regexp.MustCompile(`(?m)^` + slug + `\t`).MatchString(r.stdout) {
			t.Errorf("org list is %q, want a line for %s", r.stdout, slug)
		}
	}
}

var invitationLinkPattern = regexp.MustCompile(`^http://127\.0\.0\.1:8080/o/acme/invite#[A-Za-z0-9_-]{43}$`)

// org create prints exactly the invitation link and mails it: a notice with
// the link on a line of its own, no personal data but the recipient (R3, R40,
// R45, docs/REFERENCE.md "Links and mail").
func TestOrgCreatePrintsAndMailsTheInvitationLink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustCLI(t, testEnv(), "", "migrate", "--data", dir)
	const email, managerName = "marie.curie@example.com", "Marie Curie"
	r := cli(t, testEnv(), "", "org", "create", "acme", "--name", "Acme Bakery", "--manager-email", email, "--manager-name", managerName, "--data", dir)
	if r.code != 0 {
		t.Fatalf("got %s, want exit 0", r)
	}
	link := strings.TrimSuffix(r.stdout, "\n")
	if !invitationLinkPattern.MatchString(link) || r.stdout != link+"\n" {
		t.Fatalf("stdout is %q, want exactly one line {public-url}/o/acme/invite#TOKEN", r.stdout)
	}
	token := tokenOf(link)
	for _, secret := range []string{token, email, "marie", managerName} {
		if strings.Contains(strings.ToLower(r.stderr), strings.ToLower(secret)) {
			t.Errorf("stderr contains %q:\n%s", secret, r.stderr)
		}
	}

	mails := readOutbox(t, dir, map[string]bool{})
	if len(mails) != 1 {
		t.Fatalf("got %d mails in DATA/outbox, want 1", len(mails))
	}
	m := mails[0]
	if !outboxNamePattern.MatchString(m.name) || strings.Contains(m.name, "@") {
		t.Errorf("outbox file name is %q, want a time stamp and a random part", m.name)
	}
	if got := m.header.Get("To"); !strings.Contains(got, email) {
		t.Errorf("To is %q, want %q", got, email)
	}
	if got := linkLines(m.body); len(got) != 1 || got[0] != link {
		t.Errorf("link lines in the mail body are %q, want exactly [%q]", got, link)
	}
	// Personal data only in the recipient header: not in the body, the other
	// headers or the file name.
	var rest []string
	for _, l := range strings.Split(m.raw, "\n") {
		if !strings.HasPrefix(strings.ToLower(l), "to:") {
			rest = append(rest, l)
		}
	}
	restText := strings.ToLower(strings.Join(rest, "\n") + m.body)
	for _, pd := range []string{"marie", "curie", "example.com"} {
		if strings.Contains(restText, pd) {
			t.Errorf("the mail holds %q outside the To header:\n%s", pd, m.raw)
		}
	}

	// The link works: the manager can accept the invitation with its token.
	st := openStore(t, dir, "")
	ctx := context.Background()
	org, err := st.Orgs.FindOrgBySlug(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Users.AcceptInvitation(ctx, org.ID, kluis.Origin{}, token, managerName, "Tr0ub4dor&3 horse"); err != nil {
		t.Errorf("accept the invitation with the printed token: got %v, want the user", err)
	}
}

// --public-url, KLUIS_PUBLIC_URL and the URL serve records are the base of
// the invitation link, in that order; the default is http://127.0.0.1:8080
// (docs/REFERENCE.md "Links and mail").
func TestOrgCreateLinkUsesThePublicURL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := testEnv()
	mustCLI(t, env, "", "migrate", "--data", dir)
	seen := map[string]bool{}
	create := func(t *testing.T, env map[string]string, slug string, extra ...string) string {
		t.Helper()
		r := mustCLI(t, env, "", append([]string{"org", "create", slug, "--name", "Org " + slug, "--manager-email", slug + "@example.com", "--data", dir}, extra...)...)
		link := strings.TrimSuffix(r.stdout, "\n")
		mails := readOutbox(t, dir, seen)
		if len(mails) != 1 {
			t.Fatalf("got %d new mails, want 1", len(mails))
		}
		if got := linkLines(mails[0].body); len(got) != 1 || got[0] != link {
			t.Errorf("mailed links are %q, want [%q] as printed", got, link)
		}
		return link
	}
	check := func(t *testing.T, link, wantPrefix string) {
		t.Helper()
		if !strings.HasPrefix(link, wantPrefix) || !regexp.MustCompile(`#[A-Za-z0-9_-]{43}$`).MatchString(link) {
			t.Errorf("link is %q, want %sTOKEN", link, wantPrefix)
		}
	}

	t.Run("default before serve ran", func(t *testing.T) {
		check(t, create(t, env, "org-a"), "http://127.0.0.1:8080/o/org-a/invite#")
	})
	t.Run("--public-url without a trailing slash", func(t *testing.T) {
		check(t, create(t, env, "org-b", "--public-url", "https://cli.example.org/"), "https://cli.example.org/o/org-b/invite#")
	})
	t.Run("KLUIS_PUBLIC_URL", func(t *testing.T) {
		check(t, create(t, testEnv("KLUIS_PUBLIC_URL", "https://env.example.org"), "org-c"), "https://env.example.org/o/org-c/invite#")
	})

	s := startServe(t, env, "--addr", "127.0.0.1:0", "--data", dir, "--public-url", "https://kluis.example.org")
	if err := s.shutdown(t); err != nil {
		t.Fatalf("serve: %v", err)
	}
	t.Run("the URL serve recorded", func(t *testing.T) {
		check(t, create(t, env, "org-d"), "https://kluis.example.org/o/org-d/invite#")
	})
	t.Run("--public-url over the recorded URL", func(t *testing.T) {
		check(t, create(t, env, "org-e", "--public-url", "https://other.example.org"), "https://other.example.org/o/org-e/invite#")
	})

	s = startServe(t, env, "--addr", "127.0.0.1:0", "--data", dir)
	addr := s.addr
	if err := s.shutdown(t); err != nil {
		t.Fatalf("serve: %v", err)
	}
	t.Run("serve records http:// and its listen address by default", func(t *testing.T) {
		check(t, create(t, env, "org-f"), "http://"+addr+"/o/org-f/invite#")
	})
}

// Deleting an organisation is the operator's act on its request: it needs
// --confirm, and it is recorded in the platform chain (R5, R12, R23, R36).
func TestOrgDeleteNeedsConfirmAndIsAudited(t *testing.T) {
	t.Parallel()
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			dir, dsn := t.TempDir(), kluistest.DSN(t, engine)
			env := testEnv("KLUIS_DB", dsn)
			mustCLI(t, env, "", "migrate", "--data", dir)
			mustCLI(t, env, "", "org", "create", "acme", "--name", "Acme", "--manager-email", "m@example.com", "--data", dir)
			mustCLI(t, env, "", "org", "create", "beta", "--name", "Beta", "--manager-email", "m@example.com", "--data", dir)
			acmeID := strings.Fields(mustCLI(t, env, "", "org", "list", "--data", dir).stdout)[1]
			platform := func() []string {
				return queryStrings(t, engine, dir, dsn, `SELECT action FROM audit_events WHERE chain = 'platform' ORDER BY seq`)
			}
			before := platform()

			r := cli(t, env, "", "org", "delete", "acme", "--data", dir)
			if r.code != 2 || !strings.Contains(r.stderr, "hint: ") || !strings.Contains(r.stderr, "--confirm") {
				t.Errorf("org delete without --confirm: got %s, want exit 2 and a hint to add --confirm", r)
			}
			checkErrorShape(t, r.stderr)
			if got := mustCLI(t, env, "", "org", "list", "--data", dir).stdout; !strings.Contains(got, "acme\t") {
				t.Errorf("after a refused delete org list is %q, want acme still there", got)
			}
			if got := platform(); len(got) != len(before) {
				t.Errorf("a refused delete changed the platform chain: got %v, want %v", got, before)
			}

			r = cli(t, env, "", "org", "delete", "nosuch", "--confirm", "--data", dir)
			if r.code != 1 {
				t.Errorf("org delete of an unknown slug: got %s, want exit 1", r)
			}
			checkErrorShape(t, r.stderr)

			r = cli(t, env, "", "org", "delete", "--confirm", "acme", "--data", dir)
			if r.code != 0 {
				t.Fatalf("org delete --confirm: got %s, want exit 0", r)
			}
			if got := mustCLI(t, env, "", "org", "list", "--data", dir).stdout; strings.Contains(got, "acme") || !strings.Contains(got, "beta\t") {
				t.Errorf("after the delete org list is %q, want beta only", got)
			}
			for _, q := range []string{`SELECT id FROM users WHERE org_id = '` + acmeID + `'`, `SELECT id FROM invitations WHERE org_id = '` + acmeID + `'`} {
				if got := queryStrings(t, engine, dir, dsn, q); len(got) != 0 {
					t.Errorf("%s: got %d rows, want none", q, len(got))
				}
			}
			// The deletion, then the destruction of the organisation and
			// index keys (crypto-shredding); the user key's destruction is in
			// the organisation's own chain.
			after := platform()
			if fmt.Sprint(after) != fmt.Sprint(append(before, "org.delete", "key.destroyed", "key.destroyed")) {
				t.Errorf("platform chain actions: got %v, want %v + org.delete and two key.destroyed", after, before)
			}
			if got := queryStrings(t, engine, dir, dsn, `SELECT action FROM audit_events WHERE chain = 'org:`+acmeID+`' AND action = 'key.destroyed'`); len(got) != 1 {
				t.Errorf("the organisation's chain records %d user key destructions, want 1", len(got))
			}
			targets := queryStrings(t, engine, dir, dsn, `SELECT target FROM audit_events WHERE chain = 'platform' AND action = 'org.delete'`)
			if len(targets) != 1 || targets[0] != "org:"+acmeID {
				t.Errorf("org.delete targets: got %v, want [org:%s]", targets, acmeID)
			}
			if r := cli(t, env, "", "audit", "verify", "--data", dir); r.code != 0 {
				t.Errorf("audit verify after the delete: got %s, want exit 0", r)
			}
		})
	}
}

// A database password never comes from --db, where other users of the machine
// can read it, and is never echoed (docs/REFERENCE.md "Secrets never come from
// flags").
func TestDBFlagWithPasswordIsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const secret = "s3cr3t-pw"
	dsns := []string{
		"postgres://u:" + secret + "@127.0.0.1:5432/db",
		"postgresql://u:" + secret + "@127.0.0.1:5432/db?sslmode=disable",
		"postgres://u@127.0.0.1:5432/db?password=" + secret,
	}
	commands := []struct {
		words []string // the command
		args  []string
		stdin string
	}{
		{[]string{"migrate"}, nil, ""},
		{[]string{"serve"}, []string{"--addr", "127.0.0.1:0"}, ""},
		{[]string{"operator", "create"}, []string{"--email", "op@example.com", "--password-stdin"}, "Correct horse 7 staple\n"},
		{[]string{"org", "create"}, []string{"acme", "--name", "Acme", "--manager-email", "m@example.com"}, ""},
		{[]string{"org", "delete"}, []string{"acme", "--confirm"}, ""},
		{[]string{"org", "list"}, nil, ""},
		{[]string{"audit", "verify"}, nil, ""},
	}
	for _, c := range commands {
		for i, dsn := range dsns {
			for _, form := range []string{"--db DSN last", "--db=DSN first"} {
				args := append([]string{}, c.words...)
				if form == "--db DSN last" {
					args = append(append(args, c.args...), "--data", dir, "--db", dsn)
				} else {
					args = append(append(args, "--db="+dsn, "--data", dir), c.args...)
				}
				t.Run(strings.Join(c.words, " ")+"/"+form+"/"+string(rune('a'+i)), func(t *testing.T) {
					r := cli(t, testEnv(), c.stdin, args...)
					if r.code != 2 {
						t.Errorf("got %s, want exit 2", r)
					}
					checkErrorShape(t, r.stderr)
					if strings.Contains(r.stdout+r.stderr, secret) {
						t.Errorf("the output echoes the password:\n%s", r)
					}
				})
			}
		}
	}
	t.Run("a flag error does not print a KLUIS_DB password as the default", func(t *testing.T) {
		r := cli(t, testEnv("KLUIS_DB", dsns[0]), "", "org", "list", "--frobnicate")
		if r.code != 2 {
			t.Errorf("got %s, want exit 2", r)
		}
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("the output echoes the password:\n%s", r)
		}
	})
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("refused commands left %d entries in the data folder, want none", len(entries))
	}
}

// KLUIS_DB is where a DSN with its password belongs (docs/REFERENCE.md).
func TestKLUISDBMayCarryAPassword(t *testing.T) {
	t.Parallel()
	dsn := kluistest.PostgresDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "s3cr3t-pw" // the test server trusts local connections and ignores it
	u.User = url.UserPassword(u.User.Username(), secret)
	dir := t.TempDir()
	env := testEnv("KLUIS_DB", u.String())
	r := mustCLI(t, env, "", "migrate", "--data", dir)
	if !strings.Contains(r.stdout, "postgres") {
		t.Errorf("migrate stdout is %q, want it to name the postgres database", r.stdout)
	}
	r = mustCLI(t, env, "", "org", "create", "acme", "--name", "Acme", "--manager-email", "m@example.com", "--data", dir)
	if strings.Contains(r.stdout+r.stderr, secret) {
		t.Errorf("the output echoes the password:\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "kluis.db")); err == nil {
		t.Errorf("an SQLite database was created although KLUIS_DB names PostgreSQL")
	}

	t.Run("an unreachable server is reported without the password", func(t *testing.T) {
		r := cli(t, testEnv("KLUIS_DB", "postgres://u:"+secret+"@127.0.0.1:1/db?connect_timeout=2"), "", "org", "list", "--data", dir)
		if r.code == 0 {
			t.Fatalf("got %s, want a failure", r)
		}
		checkErrorShape(t, r.stderr)
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Errorf("the output echoes the password:\n%s", r)
		}
	})
}

// Only serve and migrate migrate; every other command refuses an unmigrated
// database with a hint, and creates nothing (docs/REFERENCE.md).
func TestCommandsRefuseAnUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	commands := []struct {
		name  string
		args  []string
		stdin string
	}{
		{"org list", []string{"org", "list"}, ""},
		{"org create", []string{"org", "create", "acme", "--name", "Acme", "--manager-email", "m@example.com"}, ""},
		{"org delete", []string{"org", "delete", "acme", "--confirm"}, ""},
		{"operator create", []string{"operator", "create", "--email", "op@example.com", "--password-stdin"}, "Correct horse 7 staple\n"},
		{"audit verify", []string{"audit", "verify"}, ""},
	}
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			dsn := kluistest.DSN(t, engine)
			env := testEnv("KLUIS_DB", dsn)
			dir := filepath.Join(t.TempDir(), "data") // does not exist yet
			for _, c := range commands {
				t.Run(c.name, func(t *testing.T) {
					r := cli(t, env, c.stdin, append(c.args, "--data", dir)...)
					if r.code == 0 {
						t.Fatalf("got %s, want a refusal", r)
					}
					checkErrorShape(t, r.stderr)
					if !strings.Contains(r.stderr, "\nhint: ") || !strings.Contains(r.stderr, "kluis migrate") {
						t.Errorf("stderr is %q, want a hint to run 'kluis migrate'", r.stderr)
					}
				})
			}
			if engine == sqlstore.SQLite {
				if _, err := os.Stat(dir); !os.IsNotExist(err) {
					t.Errorf("refused commands created the data folder (stat: %v), want nothing created", err)
				}
			}
			mustCLI(t, env, "", "migrate", "--data", dir)
			r := mustCLI(t, env, "", "org", "list", "--data", dir)
			if r.stdout != "" {
				t.Errorf("org list on a fresh database is %q, want nothing", r.stdout)
			}
			mustCLI(t, env, "", "org", "create", "acme", "--name", "Acme", "--manager-email", "m@example.com", "--data", dir)
			r = mustCLI(t, env, "", "migrate", "--data", dir)
			if !strings.HasPrefix(r.stdout, "0 migrations applied") {
				t.Errorf("a second migrate printed %q, want 0 migrations applied", r.stdout)
			}
		})
	}
}

// KLUIS_CONFIG names a KEY=VALUE file; the environment wins over it.
func TestConfigFileIsReadAndEnvironmentWins(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	fileDir := filepath.Join(root, "from-file")
	path := filepath.Join(root, "kluis.conf")
	conf := "# kluis configuration\n\nKLUIS_DATA=" + fileDir + "\nKLUIS_PUBLIC_URL = \"https://file.example.org\"\n"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, testEnv("KLUIS_CONFIG", path), "", "migrate")
	if _, err := os.Stat(filepath.Join(fileDir, "kluis.db")); err != nil {
		t.Fatalf("KLUIS_DATA from the file was not used: %v", err)
	}
	tests := []struct {
		name     string
		env      map[string]string
		slug     string
		wantLink string
	}{
		{"the file alone", testEnv("KLUIS_CONFIG", path), "acme", "https://file.example.org/o/acme/invite#"},
		{"the environment over the file", testEnv("KLUIS_CONFIG", path, "KLUIS_PUBLIC_URL", "https://env.example.org"), "beta", "https://env.example.org/o/beta/invite#"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustCLI(t, tt.env, "", "org", "create", tt.slug, "--name", "Org", "--manager-email", "m@example.com")
			if !strings.HasPrefix(r.stdout, tt.wantLink) {
				t.Errorf("link is %q, want %sTOKEN", r.stdout, tt.wantLink)
			}
		})
	}
	t.Run("the environment's data folder over the file's", func(t *testing.T) {
		envDir := filepath.Join(root, "from-env")
		mustCLI(t, testEnv("KLUIS_CONFIG", path, "KLUIS_DATA", envDir), "", "migrate")
		if _, err := os.Stat(filepath.Join(envDir, "kluis.db")); err != nil {
			t.Errorf("KLUIS_DATA from the environment was not used: %v", err)
		}
	})
	t.Run("a flag over both", func(t *testing.T) {
		flagDir := filepath.Join(root, "from-flag")
		mustCLI(t, testEnv("KLUIS_CONFIG", path, "KLUIS_DATA", filepath.Join(root, "unused")), "", "migrate", "--data", flagDir)
		if _, err := os.Stat(filepath.Join(flagDir, "kluis.db")); err != nil {
			t.Errorf("--data was not used: %v", err)
		}
		if _, err := os.Stat(filepath.Join(root, "unused")); err == nil {
			t.Errorf("the environment's data folder was created although --data was given")
		}
	})

	bad := filepath.Join(root, "bad.conf")
	if err := os.WriteFile(bad, []byte("KLUIS_DATA\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]string{"a malformed file": bad, "a missing file": filepath.Join(root, "missing.conf")} {
		t.Run(name+" exits 2", func(t *testing.T) {
			r := cli(t, testEnv("KLUIS_CONFIG", p), "", "org", "list")
			if r.code != 2 {
				t.Errorf("got %s, want exit 2", r)
			}
			checkErrorShape(t, r.stderr)
		})
	}
}

// TestOrgLoginsFromTheCommandLine (R19): the operator stops every login of
// one organisation, or of all of them, and resumes them; each is recorded
// in the organisation's own chain.
func TestOrgLoginsFromTheCommandLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := testEnv()
	mustCLI(t, env, "", "migrate", "--data", dir)
	mustCLI(t, env, "", "org", "create", "acme", "--name", "Acme", "--manager-email", "m@example.com", "--data", dir)
	mustCLI(t, env, "", "org", "create", "beta", "--name", "Beta", "--manager-email", "m@example.com", "--data", dir)
	for _, args := range [][]string{
		{"acme"}, {"acme", "--stop", "--resume"}, {"--stop"}, {"acme", "--all", "--stop"}, {"acme", "beta", "--stop"},
	} {
		r := cli(t, env, "", append(append([]string{"org", "logins"}, args...), "--data", dir)...)
		if r.code != 2 {
			t.Errorf("org logins %v: got %s, want a usage error", args, r)
		}
		checkErrorShape(t, r.stderr)
	}
	if r := cli(t, env, "", "org", "logins", "nosuch", "--stop", "--data", dir); r.code != 1 {
		t.Errorf("org logins of an unknown slug: got %s, want exit 1", r)
	}
	if got := mustCLI(t, env, "", "org", "logins", "acme", "--stop", "--data", dir).stdout; got != "acme: logins stopped, 0 sessions ended\n" {
		t.Errorf("org logins acme --stop printed %q", got)
	}
	stopped := func() string {
		return strings.Join(queryStrings(t, "sqlite", dir, "", `SELECT slug || '=' || logins_disabled FROM orgs ORDER BY slug`), " ")
	}
	if got := stopped(); got != "acme=1 beta=0" {
		t.Errorf("after stopping acme: %s", got)
	}
	mustCLI(t, env, "", "org", "logins", "--all", "--stop", "--data", dir)
	if got := stopped(); got != "acme=1 beta=1" {
		t.Errorf("after stopping all: %s", got)
	}
	mustCLI(t, env, "", "org", "logins", "--resume", "--all", "--data", dir)
	if got := stopped(); got != "acme=0 beta=0" {
		t.Errorf("after resuming all: %s", got)
	}
	actions := queryStrings(t, "sqlite", dir, "", `SELECT a.action FROM audit_events a JOIN orgs o ON a.chain = 'org:' || o.id WHERE o.slug = 'acme' AND a.action LIKE 'org.logins%' ORDER BY a.seq`)
	if strings.Join(actions, " ") != "org.logins_stop org.logins_stop org.logins_resume" {
		t.Errorf("acme's chain records %v", actions)
	}
}

// TestContentStoreSettingsAreCheckedAtStart (DESIGN §8, STYLE 9): a
// content store in a bucket that is not an s3:// URL, or lacks its keys,
// stops kluis serve at start with exit 2 and a message naming the
// setting, never the secret.
func TestContentStoreSettingsAreCheckedAtStart(t *testing.T) {
	t.Parallel()
	const secret = "wJalrXUtnFEMIsecretEXAMPLEKEY"
	for _, c := range []struct{ name, store, access, secretKey, want string }{
		{"not s3", "https://s3.example.eu/kluis", "AKID", secret, "must be an s3:// URL"},
		{"no keys", "s3://kluis-content/prod?endpoint=https://s3.example.eu", "", "", "needs its keys"},
		{"no endpoint", "s3://kluis-content/prod", "AKID", secret, "names its endpoint"},
		{"a bad bucket", "s3://Kluis_Content/prod?endpoint=https://s3.example.eu", "AKID", secret, "names its bucket"},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := testEnv("KLUIS_CONTENT_STORE", c.store, "KLUIS_CONTENT_S3_ACCESS_KEY", c.access, "KLUIS_CONTENT_S3_SECRET_KEY", c.secretKey)
			r := cli(t, env, "", "serve", "--addr", "127.0.0.1:0", "--data", t.TempDir())
			if r.code != 2 || !strings.Contains(r.stderr, "KLUIS_CONTENT_STORE") || !strings.Contains(r.stderr, c.want) {
				t.Errorf("got %s, want exit 2 naming KLUIS_CONTENT_STORE: %q", r, c.want)
			}
			if strings.Contains(r.stdout+r.stderr, secret) {
				t.Errorf("the message holds the secret key: %s", r)
			}
		})
	}
}
