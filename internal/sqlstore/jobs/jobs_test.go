package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore/jobs"
)

const securityDesk = "security@operator.example"

// platformEvents returns the platform chain's events of action as
// (outcome, details) pairs, oldest first.
func platformEvents(t *testing.T, env *kluistest.Env, action string) []event {
	t.Helper()
	var out []event
	for _, row := range env.Query(t, `SELECT outcome, details, actor FROM audit_events WHERE chain = 'platform' AND action = '`+action+`' ORDER BY seq`) {
		e := event{Outcome: string(row[0]), Actor: string(row[2])}
		if err := json.Unmarshal(row[1], &e.Details); err != nil {
			t.Fatalf("details of %s: %v", action, err)
		}
		out = append(out, e)
	}
	return out
}

type event struct {
	Outcome, Actor string
	Details        map[string]any
}

// runs returns the job's runs as the operator sees them, newest first.
func runs(t *testing.T, env *kluistest.Env, job string) []kluis.JobRun {
	t.Helper()
	rs, err := env.Jobs.FindJobRuns(context.Background(), kluis.CLIActor, job, 100)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func mustClaim(t *testing.T, s *jobs.Service, job, holder string, sched jobs.Schedule, lease time.Duration) jobs.Claimed {
	t.Helper()
	c, err := s.Claim(context.Background(), job, holder, sched, lease)
	if err != nil {
		t.Fatalf("claim %s on %s: %v", job, holder, err)
	}
	return c
}

// TestJobRunsWhenDueOnOneNodeAndRetriesAfterAFailure (DESIGN §9): two
// processes on one database claim a job; only one gets each due run. The
// lease holds the other off while it is renewed, even past its first
// expiry; the schedule counts from the last success's start on the movable
// clock; a failed run is retried after the back-off, not before, raises
// job_failed and the next success resolves it. Every run that ends is one
// job.run event in the platform chain with the job, the outcome and the
// duration.
func TestJobRunsWhenDueOnOneNodeAndRetriesAfterAFailure(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		a := env.Jobs
		other, _ := env.OtherProcess(t, keys.Options{})
		b := other.Jobs
		hourly := jobs.Every(time.Hour)

		first := mustClaim(t, a, "project_purge", "node-a", hourly, 5*time.Minute)
		if first.Run == "" {
			t.Fatal("a job that never ran: not due, want due at once")
		}
		if c := mustClaim(t, b, "project_purge", "node-b", hourly, 5*time.Minute); c.Run != "" {
			t.Fatalf("node B while node A holds the lease: got run %s, want none", c.Run)
		}
		// Node A renews its lease; past the first lease's end node B still waits.
		env.Clock.Advance(4 * time.Minute)
		if held, err := a.Heartbeat(ctx, "project_purge", first.Run, 5*time.Minute); err != nil || !held {
			t.Fatalf("heartbeat: %v, %v, want held", held, err)
		}
		env.Clock.Advance(4 * time.Minute)
		if c := mustClaim(t, b, "project_purge", "node-b", hourly, 5*time.Minute); c.Run != "" {
			t.Fatalf("node B after node A renewed its lease: got run %s, want none", c.Run)
		}
		if rs := runs(t, env, "project_purge"); len(rs) != 1 || rs[0].Outcome != kluis.JobRunning || rs[0].Holder != "node-a" {
			t.Fatalf("runs while A runs: %+v, want one running on node-a", rs)
		}
		env.Clock.Advance(2 * time.Second)
		if err := a.Finish(ctx, first.Run, kluis.JobOK, "2 projects purged"); err != nil {
			t.Fatal(err)
		}
		// Due an hour after the start of the last success: not at 59 minutes.
		env.Clock.Advance(50 * time.Minute)
		if c := mustClaim(t, b, "project_purge", "node-b", hourly, 5*time.Minute); c.Run != "" {
			t.Fatalf("59 minutes after the last success: got run %s, want none", c.Run)
		}
		env.Clock.Advance(2 * time.Minute)
		second := mustClaim(t, b, "project_purge", "node-b", hourly, 5*time.Minute)
		if second.Run == "" {
			t.Fatal("an hour after the last success: not due, want due")
		}
		if c := mustClaim(t, a, "project_purge", "node-a", hourly, 5*time.Minute); c.Run != "" {
			t.Fatalf("node A once node B claimed: got run %s, want none", c.Run)
		}
		if err := b.Finish(ctx, second.Run, kluis.JobFailed, "database unavailable"); err != nil {
			t.Fatal(err)
		}
		alerts, err := a.OpenAlerts(ctx, kluis.CLIActor)
		if err != nil || len(alerts) != 1 || alerts[0].Kind != kluis.AlertJobFailed || alerts[0].Subject != "project_purge" {
			t.Fatalf("open alerts after a failure: %+v, %v, want job_failed about project_purge", alerts, err)
		}
		// Retried after min(period, 10 minutes), not before.
		env.Clock.Advance(9 * time.Minute)
		if c := mustClaim(t, a, "project_purge", "node-a", hourly, 5*time.Minute); c.Run != "" {
			t.Fatalf("9 minutes after a failure: got run %s, want none (back-off)", c.Run)
		}
		env.Clock.Advance(time.Minute + time.Second)
		third := mustClaim(t, a, "project_purge", "node-a", hourly, 5*time.Minute)
		if third.Run == "" {
			t.Fatal("10 minutes after a failure: not retried")
		}
		if err := a.Finish(ctx, third.Run, kluis.JobOK, "0 projects purged"); err != nil {
			t.Fatal(err)
		}
		if alerts, _ := a.OpenAlerts(ctx, kluis.CLIActor); len(alerts) != 0 {
			t.Errorf("open alerts after the job succeeded again: %+v, want none (resolved by itself)", alerts)
		}
		if err := a.Finish(ctx, third.Run, kluis.JobOK, "again"); !errors.Is(err, jobs.ErrNotRunning) {
			t.Errorf("finishing a finished run: %v, want ErrNotRunning", err)
		}

		rs := runs(t, env, "project_purge")
		var got []string
		for _, r := range rs {
			got = append(got, r.Holder+":"+r.Outcome+":"+r.Detail)
			if r.FinishedAt.Before(r.StartedAt) || r.FinishedAt.IsZero() {
				t.Errorf("run %s: started %v, finished %v", r.ID, r.StartedAt, r.FinishedAt)
			}
		}
		want := "node-a:ok:0 projects purged|node-b:failed:database unavailable|node-a:ok:2 projects purged"
		if strings.Join(got, "|") != want {
			t.Errorf("runs newest first: got %s, want %s", strings.Join(got, "|"), want)
		}
		evs := platformEvents(t, env, "job.run")
		if len(evs) != 3 {
			t.Fatalf("job.run events: got %d, want 3 (one per run that ended)", len(evs))
		}
		for i, w := range []struct{ outcome, run string }{{"success", first.Run}, {"failure", second.Run}, {"success", third.Run}} {
			e := evs[i]
			if e.Outcome != w.outcome || e.Actor != "system" || e.Details["job"] != "project_purge" || e.Details["run"] != w.run {
				t.Errorf("job.run %d: %+v, want %s of run %s by system", i, e, w.outcome, w.run)
			}
			if _, ok := e.Details["duration_ms"].(float64); !ok {
				t.Errorf("job.run %d has no duration_ms: %+v", i, e.Details)
			}
		}
		if d := evs[0].Details["duration_ms"].(float64); d != float64((8*time.Minute + 2*time.Second).Milliseconds()) {
			t.Errorf("first run's duration_ms: got %v, want the 8m2s the clock moved", d)
		}
		last, err := a.LastSuccesses(ctx)
		if err != nil || !last["project_purge"].Equal(rs[0].StartedAt) {
			t.Errorf("last success: %v, %v, want the start of the newest run %v", last, err, rs[0].StartedAt)
		}
	})
}

// TestOneOfManyClaimersWins (DESIGN §9): eight claimers on two processes
// at the same moment: exactly one run begins.
func TestOneOfManyClaimersWins(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		other, _ := env.OtherProcess(t, keys.Options{})
		services := []*jobs.Service{env.Jobs, other.Jobs}
		var mu sync.Mutex
		var won []string
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				c, err := services[i%2].Claim(context.Background(), "audit_verify", "node-"+string(rune('a'+i)), jobs.Every(24*time.Hour), time.Minute)
				if err != nil {
					t.Errorf("claimer %d: %v", i, err)
				}
				if c.Run != "" {
					mu.Lock()
					won = append(won, c.Run)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(won) != 1 {
			t.Fatalf("runs begun by 8 claimers at once: %d, want exactly 1", len(won))
		}
		if rs := runs(t, env, "audit_verify"); len(rs) != 1 {
			t.Errorf("rows: %d, want 1", len(rs))
		}
	})
}

// TestAbandonedRunIsTakenOverAfterItsLeaseExpires (DESIGN §9): a node dies
// mid-run (it neither renews nor finishes). Until its lease expires nobody
// else runs the job; then the next claimer marks the run abandoned — in
// job_runs and as job.run in the platform chain — and runs the job itself.
// The dead node, should it wake, has lost the lease and cannot finish. A
// node that stops gracefully gives its run up as abandoned and the job runs
// elsewhere at once.
func TestAbandonedRunIsTakenOverAfterItsLeaseExpires(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		other, _ := env.OtherProcess(t, keys.Options{})
		daily := jobs.Every(24 * time.Hour)
		dead := mustClaim(t, env.Jobs, "audit_verify", "node-a", daily, 5*time.Minute)
		env.Clock.Advance(4*time.Minute + 59*time.Second)
		if c := mustClaim(t, other.Jobs, "audit_verify", "node-b", daily, 5*time.Minute); c.Run != "" {
			t.Fatalf("before the dead node's lease expired: got run %s, want none", c.Run)
		}
		env.Clock.Advance(2 * time.Second)
		took := mustClaim(t, other.Jobs, "audit_verify", "node-b", daily, 5*time.Minute)
		if took.Run == "" || took.Abandoned != dead.Run {
			t.Fatalf("after the lease expired: %+v, want a run that took over %s", took, dead.Run)
		}
		if held, err := env.Jobs.Heartbeat(ctx, "audit_verify", dead.Run, 5*time.Minute); err != nil || held {
			t.Errorf("the dead node's heartbeat: %v, %v, want the lease lost", held, err)
		}
		if err := env.Jobs.Finish(ctx, dead.Run, kluis.JobOK, "late"); !errors.Is(err, jobs.ErrNotRunning) {
			t.Errorf("the dead node's finish: %v, want ErrNotRunning", err)
		}
		rs := runs(t, env, "audit_verify")
		if len(rs) != 2 || rs[0].ID != took.Run || rs[0].Outcome != kluis.JobRunning || rs[1].ID != dead.Run || rs[1].Outcome != kluis.JobAbandoned {
			t.Fatalf("runs: %+v, want node-b's running and node-a's abandoned", rs)
		}
		evs := platformEvents(t, env, "job.run")
		if len(evs) != 1 || evs[0].Outcome != "failure" || evs[0].Details["outcome"] != kluis.JobAbandoned || evs[0].Details["holder"] != "node-a" {
			t.Fatalf("job.run events: %+v, want node-a's abandoned run", evs)
		}

		// Node B stops gracefully: the job runs on node A at once.
		if err := other.Jobs.Finish(ctx, took.Run, kluis.JobAbandoned, "the node stopped during the run"); err != nil {
			t.Fatal(err)
		}
		if c := mustClaim(t, env.Jobs, "audit_verify", "node-a", daily, 5*time.Minute); c.Run == "" || c.Abandoned != "" {
			t.Fatalf("after a graceful stop: %+v, want a run at once, nothing to take over", c)
		}
	})
}

// TestSchedules: every-duration counts from the last success's start;
// daily-at is the first HH:MM UTC after it; a job that never succeeded is
// due at once; a failure waits min(period, 10 minutes).
func TestSchedules(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name  string
		sched jobs.Schedule
		last  time.Time
		want  time.Time
		retry time.Duration
	}{
		{"every hour, never ran", jobs.Every(time.Hour), time.Time{}, time.Time{}, 10 * time.Minute},
		{"every hour", jobs.Every(time.Hour), at("2026-03-01T10:20:00Z"), at("2026-03-01T11:20:00Z"), 10 * time.Minute},
		{"every 5 seconds", jobs.Every(5 * time.Second), at("2026-03-01T10:20:00Z"), at("2026-03-01T10:20:05Z"), 5 * time.Second},
		{"daily 02:00, never ran", jobs.DailyAt(2, 0), time.Time{}, time.Time{}, 10 * time.Minute},
		{"daily 02:00 after the 02:00 run", jobs.DailyAt(2, 0), at("2026-03-01T02:00:03Z"), at("2026-03-02T02:00:00Z"), 10 * time.Minute},
		{"daily 02:00 after a run at 01:59", jobs.DailyAt(2, 0), at("2026-03-01T01:59:00Z"), at("2026-03-01T02:00:00Z"), 10 * time.Minute},
		{"daily 02:00 exactly at 02:00", jobs.DailyAt(2, 0), at("2026-03-01T02:00:00Z"), at("2026-03-02T02:00:00Z"), 10 * time.Minute},
		{"daily 23:30 across a month", jobs.DailyAt(23, 30), at("2026-02-28T23:45:00Z"), at("2026-03-01T23:30:00Z"), 10 * time.Minute},
		{"daily in UTC whatever the zone", jobs.DailyAt(2, 0), at("2026-03-01T03:30:00+02:00"), at("2026-03-01T02:00:00Z"), 10 * time.Minute},
	}
	for _, tt := range tests {
		if got := tt.sched.Next(tt.last); !got.Equal(tt.want) {
			t.Errorf("%s: next after %v: got %v, want %v", tt.name, tt.last, got, tt.want)
		}
		if got := jobs.RetryWait(tt.sched); got != tt.retry {
			t.Errorf("%s: retry after %v, want %v", tt.name, got, tt.retry)
		}
	}
}

// TestDailyJobIsDueAtItsTime: a job scheduled daily at 02:00 UTC that ran
// is not due a second before the next 02:00 and is due at it, on the
// movable clock.
func TestDailyJobIsDueAtItsTime(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		daily := jobs.DailyAt(2, 0)
		c := mustClaim(t, env.Jobs, "backup", "node-a", daily, time.Hour)
		if c.Run == "" {
			t.Fatal("never ran: not due")
		}
		if err := env.Jobs.Finish(ctx, c.Run, kluis.JobOK, "1 backup"); err != nil {
			t.Fatal(err)
		}
		start := env.Clock.Now()
		next := daily.Next(start)
		env.Clock.Advance(next.Sub(start) - time.Second)
		if c := mustClaim(t, env.Jobs, "backup", "node-a", daily, time.Hour); c.Run != "" {
			t.Fatal("a second before 02:00: due, want not")
		}
		env.Clock.Advance(time.Second)
		if c := mustClaim(t, env.Jobs, "backup", "node-a", daily, time.Hour); c.Run == "" {
			t.Fatal("at 02:00: not due")
		}
	})
}

// TestAlertIsRaisedOnceMailedWithoutPersonalDataAndResolvedByOperators
// (R25, R26, R8): raising an open alert again updates it instead of adding
// one; only its opening is audited (alert.raised) and mailed to the
// security address, and the mail names the kind only — not the subject,
// not the detail. Admins and security staff resolve (alert.resolved by
// them); support and managers are refused, recorded. Raised again after
// that, it opens anew and is mailed again.
func TestAlertIsRaisedOnceMailedWithoutPersonalDataAndResolvedByOperators(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, manager := env.NewOrg(t, "alerted")
		env.Mail(t)
		chain := "org:" + string(o.ID)
		first, opened, err := env.Jobs.RaiseAlert(ctx, kluis.AlertAuditChainBroken, chain, "broken at sequence 3: hash mismatch")
		if err != nil || !opened {
			t.Fatalf("raise: %v, %v", opened, err)
		}
		env.Clock.Advance(time.Hour)
		again, opened, err := env.Jobs.RaiseAlert(ctx, kluis.AlertAuditChainBroken, chain, "broken at sequence 4: hash mismatch")
		if err != nil || opened || again.ID != first.ID || again.Raised != 2 {
			t.Fatalf("raise again: %+v, %v, %v, want the same alert raised twice", again, opened, err)
		}
		if _, opened, err := env.Jobs.RaiseAlert(ctx, kluis.AlertAuditChainBroken, "platform", "broken at sequence 9: head missing"); err != nil || !opened {
			t.Fatalf("another subject: %v, %v, want a new alert", opened, err)
		}
		if _, _, err := env.Jobs.RaiseAlert(ctx, "something_else", "x", ""); err == nil {
			t.Error("an unknown kind: raised, want an error")
		}
		open, err := env.Jobs.OpenAlerts(ctx, kluis.CLIActor)
		if err != nil || len(open) != 2 {
			t.Fatalf("open alerts: %+v, %v, want 2", open, err)
		}
		got := open[1] // the most recently raised first: platform, then the org's
		if got.ID != first.ID || got.Detail != "broken at sequence 4: hash mismatch" || !got.At.Equal(env.Clock.Now().Truncate(time.Microsecond)) || !got.OpenedAt.Equal(first.OpenedAt) || got.Raised != 2 {
			t.Errorf("the org's alert: %+v, want the second raise's time and detail, opened at the first", got)
		}
		if n := len(platformEvents(t, env, "alert.raised")); n != 2 {
			t.Errorf("alert.raised events: %d, want 2 (openings only)", n)
		}
		counts, err := env.Jobs.OpenAlertCounts(ctx)
		if err != nil || counts[kluis.AlertAuditChainBroken] != 2 || counts[kluis.AlertBackupFailed] != 0 || len(counts) != len(kluis.AlertKinds) {
			t.Errorf("open alert counts: %v, %v", counts, err)
		}
		mails := env.Mail(t)
		if len(mails) != 2 {
			t.Fatalf("mails: %d, want 2 (one per alert that opened)", len(mails))
		}
		for _, m := range mails {
			if !strings.Contains(m, "To: <"+securityDesk+">") || !strings.Contains(m, "audit_chain_broken") || !strings.Contains(m, "kluis jobs") {
				t.Errorf("alert mail %q: want it to the security desk, naming the kind and kluis jobs", m)
			}
			for _, never := range []string{string(o.ID), "alerted", "boss", "hash mismatch", "sequence", "http"} {
				if strings.Contains(m, never) {
					t.Errorf("alert mail holds %q:\n%s", never, m)
				}
			}
		}

		op := func(r kluis.OperatorRole) kluis.Actor {
			return kluis.Actor{Realm: kluis.RealmOperator, OperatorID: "01a00000-0000-7000-8000-00000000000a", OperatorRole: r}
		}
		for _, a := range []kluis.Actor{op(kluis.OperatorSupport), manager} {
			if err := env.Jobs.ResolveAlert(ctx, a, first.ID); kluis.ErrorCode(err) != kluis.EForbidden {
				t.Errorf("resolve as %s: %v, want forbidden", a.AuditName(), err)
			}
		}
		if _, err := env.Jobs.OpenAlerts(ctx, manager); kluis.ErrorCode(err) != kluis.EForbidden {
			t.Errorf("a manager lists alerts: %v, want forbidden", err)
		}
		if _, err := env.Jobs.OpenAlerts(ctx, op(kluis.OperatorSupport)); err != nil {
			t.Errorf("support lists alerts: %v", err)
		}
		if err := env.Jobs.ResolveAlert(ctx, op(kluis.OperatorSecurity), first.ID); err != nil {
			t.Fatalf("resolve as security: %v", err)
		}
		if err := env.Jobs.ResolveAlert(ctx, op(kluis.OperatorAdmin), first.ID); kluis.ErrorCode(err) != kluis.ENotFound {
			t.Errorf("resolve a resolved alert: %v, want not_found", err)
		}
		resolved := platformEvents(t, env, "alert.resolved")
		if len(resolved) != 1 || resolved[0].Actor != "operator:01a00000-0000-7000-8000-00000000000a" || resolved[0].Details["subject"] != chain {
			t.Errorf("alert.resolved: %+v, want one by the security operator", resolved)
		}
		if n := len(platformEvents(t, env, "alert.resolve")); n != 2 {
			t.Errorf("refused resolutions recorded: %d, want 2", n)
		}
		if _, opened, err := env.Jobs.RaiseAlert(ctx, kluis.AlertAuditChainBroken, chain, "still broken"); err != nil || !opened {
			t.Errorf("raised after it was resolved: %v, %v, want a new alert", opened, err)
		}
		if n := len(env.Mail(t)); n != 1 {
			t.Errorf("mails after it opened anew: %d, want 1", n)
		}
	}, kluistest.EnvOptions{SecurityEmail: securityDesk})
}

// TestJobRunsAreListedNewestFirstForOperators (R8): every operator role
// and the command line list the runs, of one job or all, limited; a
// manager may not.
func TestJobRunsAreListedNewestFirstForOperators(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		_, manager := env.NewOrg(t, "runs")
		for _, job := range []string{"project_purge", "chunk_collection", "project_purge"} {
			id, err := env.Jobs.Begin(ctx, job, "node-a")
			if err != nil {
				t.Fatal(err)
			}
			if err := env.Jobs.Finish(ctx, id, kluis.JobOK, ""); err != nil {
				t.Fatal(err)
			}
			env.Clock.Advance(time.Minute)
		}
		all := runs(t, env, "")
		if len(all) != 3 || all[0].Job != "project_purge" || all[1].Job != "chunk_collection" || !all[0].StartedAt.After(all[2].StartedAt) {
			t.Fatalf("all runs: %+v, want 3 newest first", all)
		}
		for _, r := range kluis.OperatorRoles {
			a := kluis.Actor{Realm: kluis.RealmOperator, OperatorID: "01a00000-0000-7000-8000-00000000000a", OperatorRole: r}
			rs, err := env.Jobs.FindJobRuns(ctx, a, "project_purge", 1)
			if err != nil || len(rs) != 1 || rs[0].ID != all[0].ID {
				t.Errorf("%s: %+v, %v, want the newest project_purge run", r, rs, err)
			}
		}
		if _, err := env.Jobs.FindJobRuns(ctx, manager, "", 10); kluis.ErrorCode(err) != kluis.EForbidden {
			t.Errorf("a manager lists runs: %v, want forbidden", err)
		}
		if _, err := env.Jobs.FindJobRuns(ctx, kluis.CLIActor, "", 1001); kluis.ErrorCode(err) != kluis.EInvalid {
			t.Errorf("limit 1001: %v, want invalid_input", err)
		}
		// A run begun by hand moves no schedule: the job is still due.
		if c := mustClaim(t, env.Jobs, "project_purge", "node-a", jobs.Every(time.Hour), time.Minute); c.Run == "" {
			t.Error("after runs begun by hand: not due, want due (they move no schedule)")
		}
	})
}
