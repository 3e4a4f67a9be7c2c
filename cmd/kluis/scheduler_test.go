package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore/areas"
	"github.com/kluis/kluis/internal/sqlstore/jobs"
)

// testScheduler is the scheduler kluis serve builds, over a test's areas
// (whose clock the test moves), with jobs of the test's own.
func testScheduler(st *areas.Areas, log io.Writer, js ...job) *scheduler {
	a := &app{cfg: &config{JobTick: time.Second}, areas: st, log: slog.New(slog.NewJSONHandler(log, nil)), metrics: httpserver.NewMetrics()}
	return newScheduler(a, js)
}

// tick is one look of the scheduler at its jobs, and the runs it started
// run to their end.
func (s *scheduler) tickAndWait(ctx context.Context) {
	s.claimDue(ctx)
	s.wg.Wait()
}

// metricsText scrapes the scheduler's metrics.
func (s *scheduler) metricsText() string {
	rec := httptest.NewRecorder()
	s.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

func runLines(t *testing.T, env *kluistest.Env, job string) []string {
	t.Helper()
	rs, err := env.Jobs.FindJobRuns(context.Background(), kluis.CLIActor, job, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.Outcome+":"+r.Detail)
	}
	return out
}

// TestSchedulerRecordsFailuresRetriesAndGivesRunsUpWhenItStops (DESIGN §9,
// on the movable clock): a run that fails (an error or a panic) is recorded
// failed with its reason, raises job_failed, counts in the metrics, and is
// retried after the back-off — not at the next tick; the retry succeeds, the
// alert resolves itself and the last success shows in the metrics. A run
// under way when the node stops is recorded abandoned and another node runs
// the job at its next look, without waiting for the lease.
func TestSchedulerRecordsFailuresRetriesAndGivesRunsUpWhenItStops(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		calls := 0
		log := &kluistest.SyncBuffer{}
		s := testScheduler(env.Areas, log,
			job{name: "flaky", schedule: jobs.Every(time.Hour), lease: time.Minute, run: func(context.Context) (string, error) {
				calls++
				if calls == 1 {
					return "", errors.New("disk full")
				}
				return "3 things done", nil
			}},
			job{name: "broken", schedule: jobs.Every(time.Hour), lease: time.Minute, run: func(context.Context) (string, error) {
				panic("nil map for jan@example.org")
			}},
		)
		s.tickAndWait(ctx)
		if got := runLines(t, env, "flaky"); strings.Join(got, "|") != "failed:disk full" {
			t.Fatalf("flaky's runs: %v, want one failed with its reason", got)
		}
		// A panic becomes a crash report (R38); the run's detail, which
		// every operator role reads and the platform chain keeps, names
		// the report and never the panic's words.
		got := runLines(t, env, "broken")
		if len(got) != 1 || !strings.HasPrefix(got[0], "failed:panic: see crash report ") || strings.Contains(got[0], "jan@") {
			t.Fatalf("broken's runs: %v, want one failed naming a crash report", got)
		}
		admin := kluis.Actor{Realm: kluis.RealmOperator, OperatorID: "0190a0a0-0000-7000-8000-0000000000f1", OperatorRole: kluis.OperatorAdmin}
		crash, err := env.Crashes.CrashReport(ctx, admin, strings.TrimPrefix(got[0], "failed:panic: see crash report "))
		if err != nil || crash.Route != "job:broken" || crash.Message != "nil map for [email]" || !strings.Contains(crash.Stack, "goroutine") {
			t.Fatalf("the job's crash report: %+v, %v; want route job:broken, the scrubbed panic and its stack", crash, err)
		}
		m := s.metricsText()
		for _, want := range []string{`kluis_job_runs_total{job="flaky",outcome="failed"} 1`, `kluis_alerts_open{kind="job_failed"} 2`, `kluis_alerts_open{kind="audit_chain_broken"} 0`} {
			if !strings.Contains(m, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		if !strings.Contains(log.String(), `"level":"ERROR","msg":"scheduled job failed; retried after a back-off"`) {
			t.Errorf("no error-level log line for the failure:\n%s", log)
		}

		s.tickAndWait(ctx)
		env.Clock.Advance(9 * time.Minute)
		s.tickAndWait(ctx)
		if got := runLines(t, env, "flaky"); len(got) != 1 {
			t.Fatalf("flaky's runs before the back-off ended: %v, want still one", got)
		}
		env.Clock.Advance(time.Minute + time.Second)
		s.tickAndWait(ctx)
		if got := runLines(t, env, "flaky"); strings.Join(got, "|") != "ok:3 things done|failed:disk full" {
			t.Fatalf("flaky's runs after the back-off: %v, want the retry ok", got)
		}
		alerts, err := env.Jobs.OpenAlerts(ctx, kluis.CLIActor)
		if err != nil || len(alerts) != 1 || alerts[0].Subject != "broken" {
			t.Errorf("open alerts: %+v, %v, want only broken's (flaky's resolved itself)", alerts, err)
		}
		last, _ := env.Jobs.LastSuccesses(ctx)
		want := `kluis_job_last_success_timestamp_seconds{job="flaky"} ` + strconv.FormatFloat(float64(last["flaky"].UnixNano())/1e9, 'g', -1, 64)
		if m := s.metricsText(); !strings.Contains(m, want) || !strings.Contains(m, `kluis_job_runs_total{job="flaky",outcome="ok"} 1`) {
			t.Errorf("metrics lack %s and the ok run:\n%s", want, m)
		}

		// A long run when the node stops: abandoned, and the other node
		// runs the job at its next look.
		started := make(chan struct{}, 1)
		long := job{name: "long", schedule: jobs.Every(time.Hour), lease: time.Hour, run: func(ctx context.Context) (string, error) {
			started <- struct{}{}
			<-ctx.Done()
			return "", ctx.Err()
		}}
		stopping := testScheduler(env.Areas, io.Discard, long)
		nodeCtx, stop := context.WithCancel(ctx)
		stopping.claimDue(nodeCtx)
		<-started
		stop()
		stopping.wg.Wait()
		if got := runLines(t, env, "long"); strings.Join(got, "|") != "abandoned:the node stopped during the run" {
			t.Fatalf("long's runs after its node stopped: %v", got)
		}
		env.Clock.Advance(time.Second)
		other, _ := env.OtherProcess(t, keys.Options{})
		long.run = func(context.Context) (string, error) { return "finished elsewhere", nil }
		testScheduler(other, io.Discard, long).tickAndWait(ctx)
		if got := runLines(t, env, "long"); len(got) != 2 || got[0] != "ok:finished elsewhere" {
			t.Fatalf("long's runs on the other node: %v, want it run at once", got)
		}
	})
}

// TestSchedulerRenewsTheLeaseWhileARunGoesOn (DESIGN §9): while a run goes
// on its node renews the lease every third of it, so another node does not
// take the job over when the first lease would have ended.
func TestSchedulerRenewsTheLeaseWhileARunGoesOn(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		const lease = 300 * time.Millisecond
		started, release := make(chan struct{}, 1), make(chan struct{})
		held := job{name: "held", schedule: jobs.Every(time.Hour), lease: lease, run: func(context.Context) (string, error) {
			started <- struct{}{}
			<-release
			return "done", nil
		}}
		s := testScheduler(env.Areas, io.Discard, held)
		s.claimDue(ctx)
		<-started
		leaseUntil := func() int64 {
			rows := env.Query(t, `SELECT lease_until FROM job_leases WHERE name = 'held'`)
			n, _ := strconv.ParseInt(string(rows[0][0]), 10, 64)
			return n
		}
		first := leaseUntil()
		env.Clock.Advance(lease - 50*time.Millisecond)
		waitFor(t, patience, "the lease renewed", func() bool { return leaseUntil() > first })
		env.Clock.Advance(100 * time.Millisecond) // past the first lease's end
		other, _ := env.OtherProcess(t, keys.Options{})
		held.run = func(context.Context) (string, error) { return "taken over", nil }
		testScheduler(other, io.Discard, held).tickAndWait(ctx)
		if got := runLines(t, env, "held"); strings.Join(got, "|") != "running:" {
			t.Fatalf("runs after the first lease's end: %v, want only the renewed one, running", got)
		}
		close(release)
		s.wg.Wait()
		if got := runLines(t, env, "held"); strings.Join(got, "|") != "ok:done" {
			t.Fatalf("runs: %v, want the one run ok", got)
		}
	})
}
