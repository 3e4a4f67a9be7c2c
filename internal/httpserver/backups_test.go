package httpserver_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/backup"
	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/i18n"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore/areas"
	"github.com/kluis/kluis/internal/sqlstore/backups"
	"github.com/kluis/kluis/internal/sqlstore/projects"
)

// The backup pages over real HTTP on both engines (docs/UI.md, Backups):
// the record they show comes from real backups, made by the backup engine
// over the test's database to folders of the test.

// backupRig is a server whose backup engine writes to two local folders:
// one declared in the Netherlands, one without a declared location.
type backupRig struct {
	engine      *backups.Service
	nl, nowhere *backup.Dir
}

// newBackupAPI is newTestAPI with a backup engine configured as kluis
// serve configures it (targets, the operator's recipient, the drill key).
func newBackupAPI(t *testing.T, engine string) (*testAPI, *backupRig) {
	t.Helper()
	m := httpserver.NewMetrics()
	env := kluistest.NewEnv(t, engine, kluistest.EnvOptions{KeyObserver: m, Observer: m})
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	drill, err := backup.LoadOrCreateDrillIdentity(filepath.Join(env.Dir, "keys", "backup-drill.key"))
	if err != nil {
		t.Fatal(err)
	}
	rig := &backupRig{}
	if rig.nl, err = backup.OpenDir(filepath.Join(t.TempDir(), "vault-amsterdam"), "NL"); err != nil {
		t.Fatal(err)
	}
	if rig.nowhere, err = backup.OpenDir(filepath.Join(t.TempDir(), "vault-unknown"), ""); err != nil {
		t.Fatal(err)
	}
	blobs, err := areas.ContentStore(env.DB, env.Dir)
	if err != nil {
		t.Fatal(err)
	}
	o := backups.Options{
		Targets: []backup.Target{rig.nl, rig.nowhere}, Recipients: []age.Recipient{id.Recipient()}, Drill: drill,
		Blobs: blobs, Witness: env.Witness, CheckpointKey: env.Signer.PublicKey(),
		KeyFiles: map[string]string{"root": filepath.Join(env.Dir, "keys", "root"), "audit-signing.key": filepath.Join(env.Dir, "keys", "audit-signing.key")},
		TmpDir:   filepath.Join(env.Dir, "tmp"), Attempts: 1, Backoff: time.Millisecond,
	}
	if blobs == nil {
		o.Blobs = projects.DBBlobs(env.DB)
	}
	rig.engine = backups.New(env.Core, o)
	svc := env.Services()
	svc.Backups = rig.engine
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := httptest.NewServer(httpserver.NewServer(httpserver.Config{Services: svc, Ready: env.Ready, Logger: logger, Metrics: m}))
	t.Cleanup(srv.Close)
	return &testAPI{env: env, srv: srv, logs: logs, metrics: m, requestIDs: map[string]bool{}}, rig
}

// operatorPage is a page browser signed in as the operator's account.
func operatorPage(a *testAPI, acc account) *browser {
	b := newBrowser(a)
	b.cookies["__Host-kluis_operator"] = &http.Cookie{Name: "__Host-kluis_operator", Value: acc.Token}
	return b
}

// backupOverviewAnswer is the answer of GET /api/v1/orgs/{org}/backups.
type backupOverviewAnswer struct {
	Locations  []string   `json:"locations"`
	LastBackup *time.Time `json:"last_backup"`
	LastDrill  *time.Time `json:"last_drill"`
	MaxAgeDays int        `json:"max_age_days"`
}

var holdingsRow = regexp.MustCompile(`<tr data-backup="([^"]+)">`)

// TestBackupPages (R30 R31 R32 R42): after a complete backup, a verification
// and a backup that reached one of two targets, every operator role sees
// both backups with each target, its declared location, its state and the
// error; only an operator admin sees what they hold for an organisation
// (support is refused, and the refusal is recorded in the organisation's
// log). Every person of an organisation sees the declared locations ("not
// declared" for the target without one), when the newest complete backup
// finished, in their language and time zone, and how long backups are
// kept — never a target's address, an error or a backup of the platform's
// record; managers also see what each backup holds, counts only, for their
// own organisation. The API's overview answers a person the same.
func TestBackupPages(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			a, rig := newBackupAPI(t, engine)
			o, other := a.newOrg(t), a.newOrg(t)
			mem := a.addUser(t, o, "member")
			r := a.call(t, "POST", orgPath(o.Slug, "/projects"), mem.Token, map[string]string{"name": "Harbour study"})
			wantStatus(t, "create a project", r, 201)
			project := orgPath(o.Slug, "/projects/"+decodeStrict[projectAnswer](t, r).Project.ID)
			wantStatus(t, "upload", a.putFile(t, mem.Token, project, "plan.txt", []byte("the quay moves north"), nil), 201)
			_, admin := a.operatorOf(t, kluis.OperatorAdmin)
			_, support := a.operatorOf(t, kluis.OperatorSupport)
			_, security := a.operatorOf(t, kluis.OperatorSecurity)

			// Before any backup.
			empty := signInPage(t, a, o.Slug, mem).get(t, "/o/"+o.Slug+"/backups")
			wantPage(t, "the organisation's page before a backup", empty, 200, "")
			mustContain(t, "before a backup", empty.body, `id="last-backup">none yet<`, `id="last-drill">not tested yet<`)
			wantPage(t, "the operator's page before a backup", operatorPage(a, admin).get(t, "/operator/backups"), 200, "")

			// A complete backup, verified; ten minutes later the folder without
			// a location is gone and the next backup reaches only the other.
			first, err := rig.engine.Run(ctx, kluis.CLIActor)
			if err != nil || first.Status != kluis.BackupOK {
				t.Fatalf("the first backup: %+v, %v", first, err)
			}
			if v, err := rig.engine.Verify(ctx, kluis.CLIActor, first.ID); err != nil || v.Damaged {
				t.Fatalf("verify: %+v, %v", v, err)
			}
			a.env.Clock.Advance(10 * time.Minute)
			if err := os.RemoveAll(rig.nowhere.Root()); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(rig.nowhere.Root(), []byte("not a folder"), 0o600); err != nil {
				t.Fatal(err)
			}
			second, err := rig.engine.Run(ctx, kluis.CLIActor)
			if second.Status != kluis.BackupPartial || err == nil {
				t.Fatalf("the second backup: %+v, %v; want partial", second, err)
			}
			failed := second.Copies[1]
			if failed.Status != "failed" || failed.Error == "" {
				t.Fatalf("the second backup's copy without a location: %+v, want failed with an error", failed)
			}

			// Every operator role sees the record.
			for who, acc := range map[string]account{"admin": admin, "support": support, "security": security} {
				p := operatorPage(a, acc).get(t, "/operator/backups")
				wantPage(t, "the operator's backups as "+who, p, 200, "")
				mustContain(t, who, p.body, `href="/operator/backups" aria-current="page"`,
					`data-backup="`+first.ID+`" data-status="ok"`, `data-backup="`+second.ID+`" data-status="partial"`,
					rig.nl.Name(), rig.nowhere.Name(), `data-location="NL"`, "not declared", htmlEscape(failed.Error),
					"partial: not on every target", ">intact<", `id="no-drills"`,
					`id="backup-schedule"`, `id="next-run"`, `id="no-backup-alerts"`)
				if !strings.Contains(between(p.body, `id="last-verified">`, `</dd>`), first.ID) {
					t.Errorf("as %s, the last verification does not name %s", who, first.ID)
				}
				if !strings.Contains(between(p.body, `id="last-good">`, `</dd>`), i18n.EN.DateTime(first.FinishedAt, i18n.UTC)) {
					t.Errorf("as %s, the newest complete backup is not the first one: %s", who, between(p.body, `id="last-good">`, `</dd>`))
				}
			}

			// What the backups hold for the organisation: operator admins.
			holdings := "/operator/orgs/" + o.Slug + "/backups"
			p := operatorPage(a, admin).get(t, holdings)
			wantPage(t, "holdings as admin", p, 200, "")
			if got := holdingsRow.FindAllStringSubmatch(p.body, -1); len(got) != 2 || got[0][1] != second.ID || got[1][1] != first.ID {
				t.Errorf("the admin's holdings rows %v, want the partial and the complete backup, newest first", got)
			}
			mustNotContain(t, "the admin's holdings", p.body, mem.Name, mem.Email, htmlEscape(mem.Name), "Harbour study", "plan.txt", other.Slug)
			mustContain(t, "the organisation's page for an admin", operatorPage(a, admin).get(t, "/operator/orgs/"+o.Slug).body, `id="holdings-link"`)
			for who, acc := range map[string]account{"support": support, "security": security} {
				p := operatorPage(a, acc).get(t, holdings)
				wantPage(t, "holdings as "+who, p, 403, "")
				mustNotContain(t, "holdings as "+who, p.body, `id="holdings"`, first.ID)
			}
			mustNotContain(t, "the organisation's page for support", operatorPage(a, support).get(t, "/operator/orgs/"+o.Slug).body, `id="holdings-link"`)
			if n := countActions(a.auditLog(t, o.Slug, o.Manager.Token))["backup.holdings/denied"]; n != 2 {
				t.Errorf("the organisation's log has %d refused holdings reads, want 2 (support and security)", n)
			}

			// A member, in Dutch and in Amsterdam's time zone: the locations,
			// the newest complete backup (the first), no drill yet, the
			// retention; nothing of targets, errors or what backups hold.
			ams, _ := time.LoadLocation("Europe/Amsterdam")
			member := signInPage(t, a, o.Slug, mem)
			member.lang = "nl"
			member.cookies["kluis_tz"] = &http.Cookie{Name: "kluis_tz", Value: "Europe/Amsterdam"}
			p = member.get(t, "/o/"+o.Slug+"/backups")
			wantPage(t, "the member's backups page", p, 200, "")
			locations := between(p.body, `<ul id="backup-locations" class="plain">`, `</ul>`)
			if locations != "<li>NL</li><li>niet opgegeven</li>" {
				t.Errorf("the member's locations read %q, want NL and not declared", locations)
			}
			mustContain(t, "the member's page", p.body, `href="/o/`+o.Slug+`/backups" aria-current="page"`,
				`id="last-backup"><time datetime="`+first.FinishedAt.UTC().Format(time.RFC3339)+`">`+i18n.NL.DateTime(first.FinishedAt, ams)+`</time>`,
				`id="last-drill">nog niet getest<`, "730 dagen, daarna automatisch verwijderd")
			mustNotContain(t, "the member's page", p.body, rig.nl.Root(), rig.nowhere.Root(), "file://", htmlEscape(failed.Error), failed.Error,
				first.ID, second.ID, `id="holdings"`, "mislukt", "gedeeltelijk")

			// The same through the API, as the OpenAPI document describes it.
			c := checkContract(t, a)
			r = c.valid(t, a, request{method: "GET", path: orgPath(o.Slug, "/backups"), bearer: mem.Token}, 200)
			overview := decodeStrict[backupOverviewAnswer](t, r)
			if strings.Join(overview.Locations, ",") != "NL," || overview.LastBackup == nil || !overview.LastBackup.Equal(first.FinishedAt) ||
				overview.LastDrill != nil || overview.MaxAgeDays != 730 {
				t.Errorf("the API's overview %+v, want NL and an undeclared location, the first backup, no drill, 730 days", overview)
			}
			mustNotContain(t, "the API's overview", string(r.body), rig.nl.Root(), rig.nowhere.Root(), "file://", first.ID)
			wantError(t, "another organisation's manager", c.valid(t, a, request{method: "GET", path: orgPath(o.Slug, "/backups"), bearer: other.Manager.Token}, 404), 404, "not_found")

			// The manager: the same, and what each backup holds for the
			// organisation — counts of its own, never another's.
			mgr := signInPage(t, a, o.Slug, o.Manager)
			p = mgr.get(t, "/o/"+o.Slug+"/backups")
			wantPage(t, "the manager's backups page", p, 200, "")
			if got := holdingsRow.FindAllStringSubmatch(p.body, -1); len(got) != 2 {
				t.Errorf("the manager's holdings rows %v, want two", got)
			}
			mine, err := rig.engine.Holdings(ctx, kluis.CLIActor, kluis.OrgID(o.ID))
			if err != nil || len(mine) != 2 || mine[0].Users != 2 || mine[0].Projects != 1 || mine[0].Files != 1 {
				t.Fatalf("the organisation's holdings %+v, %v; want 2 people, 1 project, 1 file", mine, err)
			}
			row := between(p.body, `<tr data-backup="`+first.ID+`">`, `</tr>`)
			for _, want := range []string{`data-label="People">2<`, `data-label="Projects">1<`, `data-label="Files">1<`} {
				if !strings.Contains(row, want) {
					t.Errorf("the manager's row of the first backup lacks %s: %s", want, row)
				}
			}
			mustNotContain(t, "the manager's page", p.body, rig.nl.Root(), rig.nowhere.Root(), "file://", failed.Error, htmlEscape(failed.Error), "Harbour study", "plan.txt")

			// Another organisation's manager sees their own counts, and the
			// first organisation's page is not theirs.
			otherMgr := signInPage(t, a, other.Slug, other.Manager)
			p = otherMgr.get(t, "/o/"+other.Slug+"/backups")
			row = between(p.body, `<tr data-backup="`+first.ID+`">`, `</tr>`)
			if !strings.Contains(row, `data-label="People">1<`) || !strings.Contains(row, `data-label="Projects">0<`) {
				t.Errorf("the other organisation's row of the first backup: %s, want 1 person and no project", row)
			}
			mustNotContain(t, "the other organisation's page", p.body, o.Slug, htmlEscape(o.Name), mem.Email)
			wantPage(t, "the first organisation's page with the other's session", otherMgr.get(t, "/o/"+o.Slug+"/backups"), 303, "/o/"+o.Slug+"/login")
		})
	}
}
