package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/backup"
	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore/backups"
)

// backupApp is kluis serve's app over a test's areas with a backup engine
// writing to two local-folder targets; the second can be taken away.
func backupApp(t *testing.T, engine string) (*app, *kluistest.Env, *backup.Dir, *backup.Dir) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	drillFile := filepath.Join(t.TempDir(), "drill.key")
	drill, err := backup.LoadOrCreateDrillIdentity(drillFile)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := backup.OpenDir(t.TempDir(), "NL")
	second, _ := backup.OpenDir(filepath.Join(t.TempDir(), "second"), "DE")
	env := kluistest.NewEnv(t, engine, kluistest.EnvOptions{Backup: backups.Options{
		Targets: []backup.Target{first, second}, Recipients: []age.Recipient{id.Recipient()}, Drill: drill, Backoff: time.Millisecond,
	}})
	c, err := newConfig(func(k string) string {
		if k == "KLUIS_BACKUP_DRILL_IDENTITY" {
			return drillFile
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	c.DataDir, c.Argon2 = env.Dir, kluistest.FastArgon2
	a := &app{cfg: c, areas: env.Areas, keys: env.KeyStore, db: env.DB, log: slog.New(slog.NewJSONHandler(io.Discard, nil)), metrics: httpserver.NewMetrics()}
	return a, env, first, second
}

func openAlerts(t *testing.T, env *kluistest.Env) map[string]string {
	t.Helper()
	as, err := env.Jobs.OpenAlerts(context.Background(), kluis.CLIActor)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, a := range as {
		out[a.Kind+" "+a.Subject] = a.Detail
	}
	return out
}

// The scheduled backup work alerts (R30, R32): a target that is down gets
// no copy while the other does, and raises backup_failed naming it; no good
// backup for 26 hours raises backup_stale; a damaged object fails its
// verification and the restore drill, which is recorded and raises
// drill_failed; each alert settles when the next run succeeds.
func TestBackupJobsAlertOnFailureStalenessAndDamage(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			backupJobsAlert(t, engine)
		})
	}
}

func backupJobsAlert(t *testing.T, engine string) {
	{
		ctx := context.Background()
		a, env, first, second := backupApp(t, engine)
		env.NewOrg(t, "acme")

		if detail, err := a.backupJob(ctx); err != nil {
			t.Fatalf("backup job: %v", err)
		} else if !strings.Contains(detail, "2 targets") {
			t.Errorf("backup job detail %q", detail)
		}
		if got := openAlerts(t, env); len(got) != 0 {
			t.Fatalf("alerts after a good backup: %v", got)
		}

		// The second target goes away: its folder becomes a file.
		os.RemoveAll(second.Root())
		os.WriteFile(second.Root(), []byte("not a folder"), 0o600)
		env.Clock.Advance(24 * time.Hour)
		if _, err := a.backupJob(ctx); err == nil {
			t.Fatal("a backup that missed a target succeeded")
		}
		alerts := openAlerts(t, env)
		if _, ok := alerts[kluis.AlertBackupFailed+" "+second.Name()]; !ok || len(alerts) != 1 {
			t.Fatalf("alerts after a target failed: %v, want backup_failed for %s", alerts, second.Name())
		}
		list, _ := env.Backups.Backups(ctx, kluis.CLIActor, 1)
		if list[0].Status != kluis.BackupPartial || list[0].Copies[0].Status != "ok" || list[0].Copies[1].Status != "failed" {
			t.Fatalf("newest backup %+v, want partial: ok on the first target, failed on the second", list[0])
		}

		// 26 hours without a good backup.
		env.Clock.Advance(27 * time.Hour)
		if _, err := a.backupWatchJob(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok := openAlerts(t, env)[kluis.AlertBackupStale+" backup"]; !ok {
			t.Fatalf("no backup_stale alert after 27 hours: %v", openAlerts(t, env))
		}
		os.Remove(second.Root())
		if _, err := a.backupJob(ctx); err != nil {
			t.Fatalf("backup job with both targets back: %v", err)
		}
		if got := openAlerts(t, env); len(got) != 0 {
			t.Fatalf("alerts after both targets are back: %v", got)
		}

		// A good drill, then a damaged object.
		if detail, err := a.drillJob(false)(ctx); err != nil || !strings.Contains(detail, "ok") {
			t.Fatalf("drill: %q %v", detail, err)
		}
		objs, _ := first.List(ctx, "backups/")
		for _, o := range objs {
			if strings.HasSuffix(o.Name, "/data.age") {
				p := filepath.Join(first.Root(), filepath.FromSlash(o.Name))
				raw, _ := os.ReadFile(p)
				raw[len(raw)-40] ^= 0x20
				os.WriteFile(p, raw, 0o600)
			}
		}
		newest, _ := env.Backups.Backups(ctx, kluis.CLIActor, 1)
		v, err := env.Backups.Verify(ctx, kluis.CLIActor, newest[0].ID)
		if err != nil || !v.Damaged {
			t.Fatalf("verify of the damaged backup: %+v %v", v, err)
		}
		env.Clock.Advance(time.Minute)
		if _, err := a.drillJob(false)(ctx); err == nil {
			t.Fatal("the drill of a damaged backup succeeded")
		}
		drills, _ := env.Backups.Drills(ctx, kluis.CLIActor, 10)
		if len(drills) != 2 || drills[0].Outcome != "failed" || drills[1].Outcome != "ok" || drills[0].Duration <= 0 {
			t.Fatalf("drills %+v, want a failed one after an ok one, with durations", drills)
		}
		if _, ok := openAlerts(t, env)[kluis.AlertDrillFailed+" newest backup"]; !ok {
			t.Fatalf("no drill_failed alert: %v", openAlerts(t, env))
		}
	}
}
