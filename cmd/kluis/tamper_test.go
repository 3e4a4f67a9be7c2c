package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/auditlog"
)

// `kluis audit verify` finds tampering with the audit log, on both engines
// (R23, R25, docs/SECURITY.md "Audit"): exit 0 intact, 1 broken (naming the chain and the
// first broken sequence number), 2 when it could not check.

// chainSetup is a data folder whose chains hold known events:
//
//	platform: 1 operator.create, 2-4 org.create (acme, beta, gamma)
//	acme:     1 user.invite, 2 user.invitation_accept, 3-5 auth.login
//	beta:     1 user.invite
//	gamma:    1 user.invite
//
// Every command of the command line ends with a forced checkpoint, and the
// direct store calls end with one too, so the witness holds a checkpoint at
// every chain's newest event.
type chainSetup struct {
	engine, dir, dsn string
	env              map[string]string
	chain            map[string]string // "platform", "acme", "beta", "gamma" → chain id
}

func setupChains(t *testing.T, engine string) *chainSetup {
	t.Helper()
	s := &chainSetup{engine: engine, dir: t.TempDir(), dsn: kluistest.DSN(t, engine)}
	s.env = testEnv("KLUIS_DB", s.dsn)
	mustCLI(t, s.env, "", "migrate", "--data", s.dir)
	mustCLI(t, s.env, "Operator pass 2026!\n", "operator", "create", "--email", "op@example.com", "--password-stdin", "--data", s.dir)
	var acmeLink string
	for _, slug := range []string{"acme", "beta", "gamma"} {
		r := mustCLI(t, s.env, "", "org", "create", slug, "--name", "Org "+slug, "--manager-email", "manager@"+slug+".example", "--data", s.dir)
		if slug == "acme" {
			acmeLink = strings.TrimSpace(r.stdout)
		}
	}
	s.chain = map[string]string{"platform": "platform"}
	for _, line := range strings.Split(strings.TrimSpace(mustCLI(t, s.env, "", "org", "list", "--data", s.dir).stdout), "\n") {
		f := strings.Split(line, "\t")
		s.chain[f[0]] = sqlstore.OrgChain(kluis.OrgID(f[1]))
	}

	// More events in acme's chain, straight through the store.
	ctx := context.Background()
	st := openStore(t, s.dir, s.dsn)
	org, err := st.Orgs.FindOrgBySlug(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	const pw = "Manager pass 2026!"
	if _, err := st.Users.AcceptInvitation(ctx, org.ID, kluis.Origin{}, tokenOf(acmeLink), "Marie Manager", pw); err != nil {
		t.Fatalf("accept acme's invitation: %v", err)
	}
	for range 3 {
		if _, _, err := kluistest.Login(ctx, st.SignIn, org.ID, "manager@acme.example", pw); err != nil {
			t.Fatalf("login: %v", err)
		}
	}
	if _, err := st.Audit.Checkpoint(ctx, auditlog.DefaultCheckpointPolicy, true); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	return s
}

// exec tampers with the database through a connection of its own; {platform},
// {acme}, {beta} and {gamma} in the statement stand for the chain ids.
func (s *chainSetup) exec(t *testing.T, query string) {
	t.Helper()
	var pairs []string
	for name, chain := range s.chain {
		pairs = append(pairs, "{"+name+"}", chain)
	}
	kluistest.RawExec(t, s.engine, s.dir, s.dsn, strings.NewReplacer(pairs...).Replace(query))
}

// okLines returns the chains audit verify reported intact, with their event
// counts.
func okLines(stdout string) map[string]string {
	out := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^(\S+): ok, (\d+) events$`).FindAllStringSubmatch(stdout, -1) {
		out[m[1]] = m[2]
	}
	return out
}

func TestAuditVerifyPassesAnIntactLog(t *testing.T) {
	t.Parallel()
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			s := setupChains(t, engine)
			r := cli(t, s.env, "", "audit", "verify", "--data", s.dir)
			if r.code != 0 {
				t.Fatalf("got %s, want exit 0", r)
			}
			// Each organisation's chain starts with its manager's key.created;
			// the platform chain holds the platform, organisation and index keys'.
			want := map[string]string{s.chain["platform"]: "11", s.chain["acme"]: "6", s.chain["beta"]: "2", s.chain["gamma"]: "2"}
			got := okLines(r.stdout)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("audit verify listed %v, want %v\nstdout:\n%s", got, want, r.stdout)
			}
			if !strings.HasPrefix(r.stdout, "platform: ") {
				t.Errorf("stdout is %q, want the platform chain first", r.stdout)
			}

			r = cli(t, s.env, "", "audit", "verify", "--org", "acme", "--data", s.dir)
			if r.code != 0 || r.stdout != s.chain["acme"]+": ok, 6 events\n" {
				t.Errorf("audit verify --org acme: got %s, want exit 0 and only acme's chain", r)
			}
		})
	}
}

func TestAuditVerifyFindsTampering(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		tamper      []string // statements, in order
		broken      string   // the chain that breaks
		wantSeq     int
		wantProblem string
	}{
		{
			name:   "an event's action rewritten",
			tamper: []string{`UPDATE audit_events SET action = 'org.delete' WHERE chain = '{platform}' AND seq = 3`},
			broken: "platform", wantSeq: 3, wantProblem: "hash mismatch",
		},
		{
			name:   "an organisation event's outcome rewritten",
			tamper: []string{`UPDATE audit_events SET outcome = 'failure' WHERE chain = '{acme}' AND seq = 3`},
			broken: "acme", wantSeq: 3, wantProblem: "hash mismatch",
		},
		{
			name:   "a middle event deleted",
			tamper: []string{`DELETE FROM audit_events WHERE chain = '{platform}' AND seq = 2`},
			broken: "platform", wantSeq: 2, wantProblem: "sequence gap",
		},
		{
			name:   "a middle organisation event deleted",
			tamper: []string{`DELETE FROM audit_events WHERE chain = '{acme}' AND seq = 3`},
			broken: "acme", wantSeq: 3, wantProblem: "sequence gap",
		},
		{
			name: "two events' contents swapped, sequence numbers kept",
			tamper: []string{
				`UPDATE audit_events SET seq = -2 WHERE chain = '{acme}' AND seq = 2`,
				`UPDATE audit_events SET seq = 2 WHERE chain = '{acme}' AND seq = 4`,
				`UPDATE audit_events SET seq = 4 WHERE chain = '{acme}' AND seq = -2`,
			},
			broken: "acme", wantSeq: 2,
		},
		{
			name: "the newest events deleted with a consistent head and their database checkpoints",
			tamper: []string{
				`DELETE FROM audit_events WHERE chain = '{acme}' AND seq > 3`,
				`UPDATE audit_heads SET seq = 3, hash = (SELECT hash FROM audit_events WHERE chain = '{acme}' AND seq = 3) WHERE chain = '{acme}'`,
				`DELETE FROM audit_checkpoints WHERE chain = '{acme}' AND seq > 3`,
			},
			broken: "acme", wantSeq: 4, wantProblem: "checkpoint beyond end of chain",
		},
		{
			name: "the newest platform events deleted with a consistent head and their database checkpoints",
			tamper: []string{
				`DELETE FROM audit_events WHERE chain = '{platform}' AND seq > 2`,
				`UPDATE audit_heads SET seq = 2, hash = (SELECT hash FROM audit_events WHERE chain = '{platform}' AND seq = 2) WHERE chain = '{platform}'`,
				`DELETE FROM audit_checkpoints WHERE chain = '{platform}' AND seq > 2`,
			},
			broken: "platform", wantSeq: 3, wantProblem: "checkpoint beyond end of chain",
		},
		{
			name: "an organisation's whole chain deleted with its head and database checkpoints",
			tamper: []string{
				`DELETE FROM audit_events WHERE chain = '{beta}'`,
				`DELETE FROM audit_heads WHERE chain = '{beta}'`,
				`DELETE FROM audit_checkpoints WHERE chain = '{beta}'`,
			},
			broken: "beta", wantSeq: 1, wantProblem: "checkpoint beyond end of chain",
		},
	}
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					s := setupChains(t, engine)
					for _, q := range tt.tamper {
						s.exec(t, q)
					}
					chain := s.chain[tt.broken]

					r := cli(t, s.env, "", "audit", "verify", "--data", s.dir)
					if r.code != 1 {
						t.Fatalf("got %s, want exit 1", r)
					}
					checkErrorShape(t, r.stderr)
					wantLine := fmt.Sprintf("%s: BROKEN at sequence %d: %s", chain, tt.wantSeq, tt.wantProblem)
					if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(wantLine)).MatchString(r.stdout) {
						t.Errorf("stdout is\n%s\nwant a line %q", r.stdout, wantLine)
					}
					wantErr := fmt.Sprintf("kluis: audit chain %s is broken at sequence %d ", chain, tt.wantSeq)
					if !strings.Contains(r.stderr, wantErr) {
						t.Errorf("stderr is %q, want it to contain %q", r.stderr, wantErr)
					}
					if n := strings.Count(r.stdout, "BROKEN"); n != 1 {
						t.Errorf("stdout names %d broken chains, want 1:\n%s", n, r.stdout)
					}
					if got := len(okLines(r.stdout)); got != 3 {
						t.Errorf("stdout lists %d intact chains, want the 3 untouched ones:\n%s", got, r.stdout)
					}

					// --org checks that organisation's chain only.
					for _, slug := range []string{"acme", "beta", "gamma"} {
						r := cli(t, s.env, "", "audit", "verify", "--org", slug, "--data", s.dir)
						wantCode := 0
						if slug == tt.broken {
							wantCode = 1
						}
						if r.code != wantCode || strings.Count(r.stdout, "\n") != 1 || !strings.HasPrefix(r.stdout, s.chain[slug]+": ") {
							t.Errorf("audit verify --org %s: got %s, want exit %d and one line for its chain", slug, r, wantCode)
						}
					}
				})
			}
		})
	}
}

func TestAuditVerifyExits2WhenItCannotCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string) map[string]string // returns the environment
		args    []string
	}{
		{
			name:    "no database in the data folder",
			prepare: func(t *testing.T, dir string) map[string]string { return testEnv() },
		},
		{
			name: "a database file that is not a database",
			prepare: func(t *testing.T, dir string) map[string]string {
				if err := os.WriteFile(filepath.Join(dir, "kluis.db"), []byte(strings.Repeat("not a database ", 400)), 0o600); err != nil {
					t.Fatal(err)
				}
				return testEnv()
			},
		},
		{
			name: "an unmigrated database",
			prepare: func(t *testing.T, dir string) map[string]string {
				kluistest.RawExec(t, sqlstore.SQLite, dir, "", `CREATE TABLE unrelated (x INTEGER)`)
				return testEnv()
			},
		},
		{
			name: "a PostgreSQL database that does not exist",
			prepare: func(t *testing.T, dir string) map[string]string {
				dsn := kluistest.PostgresDSN(t) // skips without a server
				return testEnv("KLUIS_DB", regexp.MustCompile(`/kluis_test_[0-9a-f]+`).ReplaceAllString(dsn, "/kluis_test_missing"))
			},
		},
		{
			name: "an unknown organisation",
			prepare: func(t *testing.T, dir string) map[string]string {
				mustCLI(t, testEnv(), "", "migrate", "--data", dir)
				return testEnv()
			},
			args: []string{"--org", "nosuch"},
		},
		{
			name: "a witness that cannot be read",
			prepare: func(t *testing.T, dir string) map[string]string {
				mustCLI(t, testEnv(), "", "migrate", "--data", dir)
				mustCLI(t, testEnv(), "", "org", "create", "acme", "--name", "Acme", "--manager-email", "m@example.com", "--data", dir)
				w := filepath.Join(dir, "audit", "witness.log")
				if err := os.Remove(w); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(w, 0o700); err != nil {
					t.Fatal(err)
				}
				return testEnv()
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			env := tt.prepare(t, dir)
			r := cli(t, env, "", append([]string{"audit", "verify", "--data", dir}, tt.args...)...)
			if r.code != 2 {
				t.Fatalf("got %s, want exit 2", r)
			}
			checkErrorShape(t, r.stderr)
			if strings.Contains(r.stdout, "ok,") {
				t.Errorf("stdout is %q, want no chain reported intact", r.stdout)
			}
		})
	}
}

// docs/SECURITY.md "Audit", scale-out mode: with the key store in PostgreSQL, audit
// checkpoints are witnessed there — every node sees them — and no witness
// file is written; deleting the newest events with their database
// checkpoints and a consistent head is still detected.
func TestScaleOutWitnessIsTheKeyStore(t *testing.T) {
	t.Parallel()
	dir, dsn, keysDSN := t.TempDir(), kluistest.DSN(t, "postgres"), kluistest.DSN(t, "postgres")
	env := testEnv("KLUIS_DB", dsn, "KLUIS_KEYS_DB", keysDSN)
	mustCLI(t, env, "", "migrate", "--data", dir)
	for _, slug := range []string{"acme", "beta"} {
		mustCLI(t, env, "", "org", "create", slug, "--name", "Org "+slug, "--manager-email", "manager@"+slug+".example", "--data", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "audit", "witness.log")); err == nil {
		t.Error("scale-out mode wrote a witness file")
	}
	if got := queryStrings(t, "postgres", dir, keysDSN, `SELECT chain FROM audit_witness`); len(got) == 0 {
		t.Fatal("no checkpoint witnessed in the key store")
	}
	if r := cli(t, env, "", "audit", "verify", "--data", dir); r.code != 0 {
		t.Fatalf("audit verify: %s, want exit 0", r)
	}
	var acme string
	for _, line := range strings.Split(strings.TrimSpace(mustCLI(t, env, "", "org", "list", "--data", dir).stdout), "\n") {
		if f := strings.Split(line, "\t"); f[0] == "acme" {
			acme = sqlstore.OrgChain(kluis.OrgID(f[1]))
		}
	}
	for _, q := range []string{
		`DELETE FROM audit_events WHERE chain = '` + acme + `' AND seq > 1`,
		`UPDATE audit_heads SET seq = 1, hash = (SELECT hash FROM audit_events WHERE chain = '` + acme + `' AND seq = 1) WHERE chain = '` + acme + `'`,
		`DELETE FROM audit_checkpoints WHERE chain = '` + acme + `' AND seq > 1`,
	} {
		kluistest.RawExec(t, "postgres", dir, dsn, q)
	}
	r := cli(t, env, "", "audit", "verify", "--data", dir)
	if r.code != 1 || !strings.Contains(r.stdout, acme) {
		t.Errorf("after truncating acme's chain: %s, want exit 1 naming it", r)
	}
}
