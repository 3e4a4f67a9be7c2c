package backups_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/backup"
	"github.com/kluis/kluis/internal/content"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/password"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/areas"
	"github.com/kluis/kluis/internal/sqlstore/auditlog"
	"github.com/kluis/kluis/internal/sqlstore/backups"
	"github.com/kluis/kluis/internal/sqlstore/projects"
)

// rig is an instance with a backup engine writing to a local folder.
type rig struct {
	env      *kluistest.Env
	engine   *backups.Service
	target   *backup.Dir
	identity *age.X25519Identity // the operator's offline key
	idFile   string
	drill    *age.X25519Identity
}

func newRig(t *testing.T, env *kluistest.Env, targets ...backup.Target) *rig {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	drill, err := backup.LoadOrCreateDrillIdentity(filepath.Join(env.Dir, "keys", "backup-drill.key"))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := backup.OpenDir(t.TempDir(), "NL")
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) == 0 {
		targets = []backup.Target{dir}
	}
	idFile := filepath.Join(t.TempDir(), "operator.key")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	blobs, err := areas.ContentStore(env.DB, env.Dir)
	if err != nil {
		t.Fatal(err)
	}
	o := backups.Options{
		Targets: targets, Recipients: []age.Recipient{id.Recipient()}, Drill: drill,
		Blobs: blobs, Witness: env.Witness, CheckpointKey: env.Signer.PublicKey(),
		KeyFiles: map[string]string{"root": filepath.Join(env.Dir, "keys", "root"), "audit-signing.key": filepath.Join(env.Dir, "keys", "audit-signing.key")},
		TmpDir:   filepath.Join(env.Dir, "tmp"), Backoff: time.Millisecond,
	}
	if blobs == nil {
		o.Blobs = projects.DBBlobs(env.DB)
	}
	return &rig{env: env, engine: backups.New(env.Core, o), target: dir, identity: id, idFile: idFile, drill: drill}
}

// content fills an organisation with people, a project, files and versions.
func fill(t *testing.T, env *kluistest.Env, slug string) (kluis.Org, kluis.Actor, kluis.Actor, kluis.ProjectID) {
	t.Helper()
	ctx := context.Background()
	o, boss := env.NewOrg(t, slug)
	member := env.NewMember(t, o, boss, "kim.jansen@"+slug+".example", kluis.RoleMember)
	p, err := env.Projects.CreateProject(ctx, o.ID, boss, kluis.ProjectInput{Name: "Plan " + slug})
	if err != nil {
		t.Fatal(err)
	}
	for i, body := range []string{"secret plans of " + slug, strings.Repeat("bulk content "+slug+" ", 300000)} {
		if _, _, err := env.Projects.PutFile(ctx, o.ID, boss, p.ID, kluis.FileWrite{Path: "docs/file" + string(rune('a'+i)) + ".txt", Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.Projects.CreateVersion(ctx, o.ID, boss, p.ID, "first"); err != nil {
		t.Fatal(err)
	}
	return o, boss, member, p.ID
}

// restored opens a restored instance's areas.
func restored(t *testing.T, dir, dsn string) *areas.Areas {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, dir, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.CheckMigrated(ctx); err != nil {
		t.Fatal(err)
	}
	root, err := keys.LoadRoot(filepath.Join(dir, "keys", "root"))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keys.OpenStore(ctx, filepath.Join(dir, "keys", "keys.db"), root, nil, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	signer, err := audit.LoadOrCreateSigner(filepath.Join(dir, "keys", "audit-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	w, err := audit.OpenWitness(filepath.Join(dir, "audit", "witness.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	core, err := sqlstore.New(db, sqlstore.Options{Keys: ks, PublicURL: "http://kluis.test", MailFrom: "kluis@kluis.test"})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := areas.ContentStore(db, dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := password.NewHasher(kluistest.FastArgon2, 0)
	if err != nil {
		t.Fatal(err)
	}
	a := areas.New(core, areas.Config{Hasher: h, Signer: signer, Witness: w, Blobs: blobs})
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return a
}

func readFile(t *testing.T, a *areas.Areas, org kluis.OrgID, actor kluis.Actor, p kluis.ProjectID, path string) string {
	t.Helper()
	_, rc, err := a.Projects.OpenFile(context.Background(), org, actor, p, 0, path)
	if err != nil {
		t.Fatalf("OpenFile %s: %v", path, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func verifyChains(t *testing.T, a *areas.Areas) {
	t.Helper()
	res, err := a.Audit.VerifyChains(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res) < 2 {
		t.Fatalf("verified %d chains, want the platform chain and the organisations'", len(res))
	}
	for _, r := range res {
		if !r.OK {
			t.Errorf("chain %s does not verify after the restore: %+v", r.Chain, r)
		}
	}
}

// TestBackupRestoresTheWholeInstance: a backup of either engine restores
// into an empty folder (SQLite) and into an empty PostgreSQL database, with
// every organisation's people, files and audit chain as they were (R30 R32).
func TestBackupRestoresTheWholeInstance(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		r := newRig(t, env)
		o1, boss1, _, p1 := fill(t, env, "acme")
		o2, boss2, _, p2 := fill(t, env, "bolt")
		if _, err := env.Audit.Checkpoint(ctx, auditCheckpointPolicy, true); err != nil {
			t.Fatal(err)
		}
		b, err := r.engine.Run(ctx, kluis.CLIActor)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if b.Status != kluis.BackupOK || b.Kind != "full" || len(b.Copies) != 1 || b.Copies[0].Location != "NL" {
			t.Fatalf("backup %+v, want ok, full, one copy in NL", b)
		}
		ids := []age.Identity{r.identity}
		for _, into := range []backups.Into{
			{DataDir: filepath.Join(t.TempDir(), "restored")},
			{DataDir: filepath.Join(t.TempDir(), "restored-pg"), DSN: kluistest.PostgresDSN(t)},
		} {
			rep, err := backups.RestoreInstance(ctx, r.target, ids, b.ID, into)
			if err != nil {
				t.Fatalf("restore into %+v: %v", into, err)
			}
			if rep.Chunks == 0 || rep.ErasedUsers != 0 {
				t.Fatalf("restore report %+v", rep)
			}
			a := restored(t, into.DataDir, into.DSN)
			verifyChains(t, a)
			for _, c := range []struct {
				org  kluis.OrgID
				boss kluis.Actor
				p    kluis.ProjectID
				name string
			}{{o1.ID, boss1, p1, "acme"}, {o2.ID, boss2, p2, "bolt"}} {
				if got := readFile(t, a, c.org, c.boss, c.p, "docs/filea.txt"); got != "secret plans of "+c.name {
					t.Errorf("restored file holds %q", got)
				}
				if got, want := readFile(t, a, c.org, c.boss, c.p, "docs/fileb.txt"), readFile(t, env.Areas, c.org, c.boss, c.p, "docs/fileb.txt"); got != want {
					t.Errorf("restored big file differs (%d bytes, want %d)", len(got), len(want))
				}
				src := env.Events(t, c.org, c.boss)
				got, _, err := a.Audit.FindAuditEvents(ctx, c.org, c.boss, kluis.AuditFilter{Limit: kluis.MaxAuditPage})
				if err != nil {
					t.Fatal(err)
				}
				// The source has since recorded the reading of its own log.
				if len(got) < len(src)-1 || len(got) == 0 {
					t.Errorf("restored chain of %s has %d events, source %d", c.name, len(got), len(src))
				}
			}
			// Sessions do not survive a restore.
			if _, _, err := kluistest.Authenticate(ctx, a.SignIn, "no-such-token"); err == nil {
				t.Fatal("authenticated a made-up token")
			}
		}
	})
}

var auditCheckpointPolicy = auditlog.DefaultCheckpointPolicy

// TestBackupObjectsOpenWithAgeAndHoldNoPlaintext: every object a target
// holds opens with Debian's age command and the operator's key, and even
// then shows no personal data or file content — not as text, hex or base64
// (R28).
func TestBackupObjectsOpenWithAgeAndHoldNoPlaintext(t *testing.T) {
	ageBin, err := exec.LookPath("age")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("the age command is missing (apt-get install age)")
		}
		t.Skip("the age command is missing (apt-get install age)")
	}
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		r := newRig(t, env)
		fill(t, env, "acme")
		if _, err := r.engine.Run(ctx, kluis.CLIActor); err != nil {
			t.Fatal(err)
		}
		objs, err := r.target.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		secrets := []string{"boss@acme.example", "kim.jansen@acme.example", "secret plans of acme", "bulk content acme", "Member"}
		kinds := map[string]int{}
		for _, o := range objs {
			kinds[strings.SplitN(o.Name, "/", 2)[0]]++
			raw, err := os.ReadFile(filepath.Join(r.target.Root(), filepath.FromSlash(o.Name)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(raw, []byte("age-encryption.org/v1\n")) {
				t.Fatalf("%s is not an age file", o.Name)
			}
			plain, err := exec.Command(ageBin, "-d", "-i", r.idFile, filepath.Join(r.target.Root(), filepath.FromSlash(o.Name))).Output()
			if err != nil {
				t.Fatalf("age -d %s: %v", o.Name, err)
			}
			for _, s := range secrets {
				for _, form := range []string{s, hex.EncodeToString([]byte(s)), base64.StdEncoding.EncodeToString([]byte(s))[:len(s)*4/3-2]} {
					if bytes.Contains(plain, []byte(form)) || bytes.Contains(raw, []byte(form)) {
						t.Errorf("%s holds %q in the clear", o.Name, form)
					}
				}
			}
		}
		if kinds["backups"] != 2 || kinds["keys"] != 1 || kinds["chunks"] == 0 {
			t.Fatalf("objects by kind %v, want a manifest, a data stream, a key store and chunks", kinds)
		}
	})
}

// TestIncrementalBackupCopiesOnlyNewChunks: a second backup copies only
// the chunks the target lacks (incremental), and still restores whole.
func TestIncrementalBackupCopiesOnlyNewChunks(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		r := newRig(t, env)
		o, boss, _, p := fill(t, env, "acme")
		first, err := r.engine.Run(ctx, kluis.CLIActor)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := env.Projects.PutFile(ctx, o.ID, boss, p, kluis.FileWrite{Path: "new.txt", Body: strings.NewReader("a new file")}); err != nil {
			t.Fatal(err)
		}
		env.Clock.Advance(time.Second)
		second, err := r.engine.Run(ctx, kluis.CLIActor)
		if err != nil {
			t.Fatal(err)
		}
		if second.Kind != "incremental" {
			t.Fatalf("second backup is %q, want incremental", second.Kind)
		}
		if second.Size >= first.Size {
			t.Errorf("incremental backup wrote %d bytes, the full one %d", second.Size, first.Size)
		}
		dir := filepath.Join(t.TempDir(), "restored")
		if _, err := backups.RestoreInstance(ctx, r.target, []age.Identity{r.identity}, second.ID, backups.Into{DataDir: dir}); err != nil {
			t.Fatal(err)
		}
		a := restored(t, dir, "")
		if got := readFile(t, a, o.ID, boss, p, "new.txt"); got != "a new file" {
			t.Fatalf("restored new file holds %q", got)
		}
		verifyChains(t, a)
	})
}

// TestDamagedObjectFailsVerification: a changed byte in any object makes
// verification report the backup damaged (R32).
func TestDamagedObjectFailsVerification(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		r := newRig(t, env)
		fill(t, env, "acme")
		b, err := r.engine.Run(ctx, kluis.CLIActor)
		if err != nil {
			t.Fatal(err)
		}
		v, err := r.engine.Verify(ctx, kluis.CLIActor, b.ID)
		if err != nil || v.Damaged {
			t.Fatalf("fresh backup: %+v, %v", v, err)
		}
		objs, _ := r.target.List(ctx, "chunks/")
		path := filepath.Join(r.target.Root(), filepath.FromSlash(objs[0].Name))
		raw, _ := os.ReadFile(path)
		raw[len(raw)/2] ^= 1
		os.WriteFile(path, raw, 0o600)
		v, err = r.engine.Verify(ctx, kluis.CLIActor, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !v.Damaged {
			t.Fatalf("a flipped bit went unnoticed: %+v", v)
		}
		if _, err := backups.RestoreInstance(ctx, r.target, []age.Identity{r.identity}, b.ID, backups.Into{DataDir: filepath.Join(t.TempDir(), "x")}); err == nil {
			t.Fatal("restored a damaged backup without complaint")
		}
		if _, err := r.engine.Verify(ctx, kluis.CLIActor, "20200101-000000-abcdef"); err != backups.ErrUnknownBackup {
			t.Fatalf("unknown backup: %v", err)
		}
		_ = content.MaxBlobSize
	})
}
