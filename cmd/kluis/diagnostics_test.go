package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/kluistest"
)

// TestEnvironmentComesFromTheFlagTheVariableOrTheDataFoldersLabel (R48):
// --environment (or KLUIS_ENVIRONMENT) names the environment; without it
// the data folder's label (written by the anonymised copy) does, else
// production. A folder labelled anything but production is refused as
// production with a clear error, and a name that is no environment is
// refused at start.
func TestEnvironmentComesFromTheFlagTheVariableOrTheDataFoldersLabel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, label, asked string
		want               kluis.Environment
		wantErr            string
	}{
		{name: "nothing is production", want: kluis.Production},
		{name: "asked for test", asked: "test", want: kluis.Test},
		{name: "asked with spaces", asked: " acceptance ", want: kluis.Acceptance},
		{name: "the label is the default", label: "test\n", want: kluis.Test},
		{name: "another environment than the label's", label: "test", asked: "development", want: kluis.Development},
		{name: "production on a production label", label: "production", asked: "production", want: kluis.Production},
		{name: "production on a test label", label: "test", asked: "production", wantErr: "the data folder is labelled test (an anonymised copy): it cannot be served as production"},
		{name: "no such environment", asked: "staging", wantErr: `"staging" is not an environment`},
		{name: "upper case is no environment", asked: "TEST", wantErr: "is not an environment"},
		{name: "a label that is no environment", label: "prod", wantErr: "names no environment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.label != "" {
				if err := os.WriteFile(filepath.Join(dir, environmentFile), []byte(tc.label), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := resolveEnvironment(dir, tc.asked)
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("got %q, %v; want the error %q", got, err, tc.wantErr)
			case tc.wantErr == "" && (err != nil || got != tc.want):
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestServeRefusesAnUnknownEnvironmentAndALabelledCopyAsProduction (R48):
// kluis serve stops before it listens, with the contract's error lines.
func TestServeRefusesAnUnknownEnvironmentAndALabelledCopyAsProduction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := cli(t, testEnv("KLUIS_DATA", dir, "KLUIS_ADDR", "127.0.0.1:0"), "", "serve", "--environment", "staging")
	if r.code != 2 || !strings.Contains(r.stderr, `kluis: --environment: "staging" is not an environment`) {
		t.Errorf("serve --environment staging: %s; want exit 2 naming the environments", r)
	}
	r = cli(t, testEnv("KLUIS_DATA", dir, "KLUIS_ADDR", "127.0.0.1:0", "KLUIS_ENVIRONMENT", "qa"), "", "serve")
	if r.code != 2 || !strings.Contains(r.stderr, `"qa" is not an environment`) {
		t.Errorf("KLUIS_ENVIRONMENT=qa: %s; want exit 2", r)
	}
	if err := os.WriteFile(filepath.Join(dir, environmentFile), []byte("test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = cli(t, testEnv("KLUIS_DATA", dir, "KLUIS_ADDR", "127.0.0.1:0"), "", "serve", "--environment", "production")
	if r.code != 1 || !strings.Contains(r.stderr, "kluis: the data folder is labelled test (an anonymised copy): it cannot be served as production") ||
		!strings.Contains(r.stderr, "hint: start it with --environment test") {
		t.Errorf("serve --environment production on a test copy: %s", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "kluis.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused start left a database behind: %v", err)
	}
}

// TestCrashExpiryJobDeletesReportsAfterThirtyDays (R38, DESIGN §9, on the
// movable clock): the scheduler's crash_expiry job, under its lease, leaves
// a report alone for 30 days and then deletes it; the run is recorded and
// audited (job.run) with the deletion (crash.expire).
func TestCrashExpiryJobDeletesReportsAfterThirtyDays(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		a := &app{cfg: &config{JobTick: time.Second}, areas: env.Areas}
		var expiry job
		for _, j := range a.scheduledJobs() {
			if j.name == "crash_expiry" {
				expiry = j
			}
		}
		if expiry.run == nil {
			t.Fatal("kluis serve has no crash_expiry job")
		}
		s := testScheduler(env.Areas, &kluistest.SyncBuffer{}, expiry)
		id, err := env.Crashes.RecordCrash(ctx, kluis.CrashInput{Route: "GET /o/{org}/account", Panic: "boom"})
		if err != nil {
			t.Fatal(err)
		}
		s.tickAndWait(ctx)
		env.Clock.Advance(29 * 24 * time.Hour)
		s.tickAndWait(ctx)
		if rows := env.Query(t, `SELECT id FROM crash_reports`); len(rows) != 1 || string(rows[0][0]) != id {
			t.Fatalf("after 29 days: %q, want the report kept", rows)
		}
		env.Clock.Advance(24*time.Hour + time.Minute)
		s.tickAndWait(ctx)
		if rows := env.Query(t, `SELECT id FROM crash_reports`); len(rows) != 0 {
			t.Fatalf("after 30 days: %d reports, want none", len(rows))
		}
		runs := runLines(t, env, "crash_expiry")
		if len(runs) != 3 || runs[0] != "ok:1 crash reports deleted" {
			t.Errorf("crash_expiry's runs: %v, want three, the newest deleting one", runs)
		}
		var expired, jobRuns int
		for _, r := range env.Query(t, `SELECT action FROM audit_events WHERE chain = '`+audit.PlatformChain+`'`) {
			switch string(r[0]) {
			case "crash.expire":
				expired++
			case "job.run":
				jobRuns++
			}
		}
		if expired != 1 || jobRuns < 3 {
			t.Errorf("platform chain: %d crash.expire, %d job.run; want 1 and at least 3", expired, jobRuns)
		}
	})
}

// TestServeFlushesUsageStatisticsAtShutdown (R37): kluis serve counts
// requests by route pattern and stores the counts when it stops (and every
// minute before): the table holds the pattern, never the slug asked for.
func TestServeFlushesUsageStatisticsAtShutdown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, testEnv(), "--addr", "127.0.0.1:0", "--data", dir)
	for range 6 {
		resp, err := http.Get("http://" + s.addr + "/o/no-such-org/login")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if err := s.shutdown(t); err != nil {
		t.Fatal(err)
	}
	rows := queryStrings(t, "sqlite", dir, "", `SELECT feature || '=' || count FROM usage_counts ORDER BY feature`)
	if !slices.Contains(rows, "GET /o/{org}/login=6") {
		t.Errorf("usage_counts: %q, want GET /o/{org}/login=6", rows)
	}
	for _, r := range rows {
		if strings.Contains(r, "no-such-org") || strings.Contains(r, "readyz") {
			t.Errorf("usage_counts holds %q", r)
		}
	}
}
