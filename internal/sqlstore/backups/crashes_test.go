package backups_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore/backups"
)

// TestBackupsLeaveCrashReportsOutAndKeepTheStatistics (R38, R37): a crash
// report must be gone 30 days after the crash, and backups live for up to
// two years, so no backup holds one: a restored instance has no crash
// reports, while the anonymous usage counters, which hold nothing
// personal, are restored with the rest.
func TestBackupsLeaveCrashReportsOutAndKeepTheStatistics(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		r := newRig(t, env)
		if _, err := env.Crashes.RecordCrash(ctx, kluis.CrashInput{Route: "GET /o/{org}/account", Panic: "boom"}); err != nil {
			t.Fatal(err)
		}
		day := env.Clock.Now().UTC().Format(time.DateOnly)
		if err := env.Usage.RecordUsage(ctx, []kluis.UsageCount{{Day: day, Feature: "GET /o/{org}/account", Count: 7}}); err != nil {
			t.Fatal(err)
		}
		b, err := r.engine.Run(ctx, kluis.CLIActor)
		if err != nil || b.Status != kluis.BackupOK {
			t.Fatalf("backup: %+v, %v", b, err)
		}
		into := backups.Into{DataDir: filepath.Join(t.TempDir(), "restored")}
		if _, err := backups.RestoreInstance(ctx, r.target, []age.Identity{r.identity}, b.ID, into); err != nil {
			t.Fatalf("restore: %v", err)
		}
		a := restored(t, into.DataDir, "")
		admin := kluis.Actor{Realm: kluis.RealmOperator, OperatorID: "0190a0a0-0000-7000-8000-0000000000b1", OperatorRole: kluis.OperatorAdmin}
		if list, err := a.Crashes.CrashReports(ctx, admin); err != nil || len(list) != 0 {
			t.Errorf("the restored instance's crash reports: %d, %v; want none", len(list), err)
		}
		stats, err := a.Usage.UsageStatistics(ctx, admin, env.Clock.Now(), env.Clock.Now())
		if err != nil || len(stats.Counts) != 1 || stats.Counts[0].Count != 7 {
			t.Errorf("the restored statistics: %+v, %v; want the one counter of 7", stats, err)
		}
	})
}
