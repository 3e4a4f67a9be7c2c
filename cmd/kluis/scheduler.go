package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/sqlstore/jobs"
)

// job is one kind of scheduled work (DESIGN §9): kluis serve runs it on one
// node at a time, when its schedule says it is due, under a lease of its
// own that the node renews every lease/3 while the run goes on. run does
// the work and returns a detail for the record — counts, never personal
// data — or an error: the run is recorded failed and retried after
// jobs.RetryWait. run must stop when its context ends (the node stops, or
// it lost the lease).
type job struct {
	name     string // lower-case letters, digits and underscores: a metrics label
	schedule jobs.Schedule
	lease    time.Duration // longer than a run normally takes; renewed while it runs
	run      func(ctx context.Context) (detail string, err error)
}

// scheduledJobs is every job kluis serve runs. A new job is one more entry
// here; its name becomes the lease's, the record's and the metrics'.
//
// Not here: the mail and SMS workers (queues worked as messages arrive,
// each message under a lease of its own), the audit checkpoints (a few
// seconds apart on every node, and a final one at shutdown: as a job, each
// would add a job.run event to the platform chain it checkpoints, thousands
// a day) and the key work (a queue of key events and re-encryption steps
// left by requests and commands).
func (a *app) scheduledJobs() []job {
	js := []job{
		{name: "audit_verify", schedule: jobs.Every(24 * time.Hour), lease: 30 * time.Minute, run: a.verifyAuditJob},
		{name: "project_purge", schedule: jobs.Every(10 * time.Minute), lease: 30 * time.Minute, run: func(ctx context.Context) (string, error) {
			n, err := a.areas.Projects.PurgeProjects(ctx)
			return fmt.Sprintf("%d projects purged", n), err
		}},
		{name: "chunk_collection", schedule: jobs.Every(time.Hour), lease: time.Hour, run: func(ctx context.Context) (string, error) {
			n, err := a.areas.Projects.CollectChunks(ctx)
			return fmt.Sprintf("%d chunks collected", n), err
		}},
		// Retention (issue 15, R25 R35 R36): inactive people, licence end,
		// audit pruning, expired sessions, invitations, tokens, challenges.
		{name: "retention", schedule: jobs.Every(24 * time.Hour), lease: time.Hour, run: func(ctx context.Context) (string, error) {
			r, err := a.areas.Retention.RunRetention(ctx)
			return fmt.Sprintf("%d notified, %d erased, %d last managers kept, %d organisations terminated, %d purged, %d audit events pruned, %d expired rows purged",
				r.Notified, r.Erased, r.LastManagersKept, r.OrgsTerminated, r.OrgsPurged, r.AuditPruned, r.ExpiredPurged), err
		}},
		{name: "throttle_sweep", schedule: jobs.Every(time.Hour), lease: 10 * time.Minute, run: func(ctx context.Context) (string, error) {
			return "counters and unlock links past their use forgotten", a.areas.Throttle.SweepThrottle(ctx)
		}},
		// issue 15, R34: reminders to managers before a privacy request is due.
		{name: "privacy_reminders", schedule: jobs.Every(time.Hour), lease: 10 * time.Minute, run: func(ctx context.Context) (string, error) {
			n, err := a.areas.PrivacyRequests.RemindPrivacyRequests(ctx)
			return fmt.Sprintf("%d requests reminded, %d notices", n.Requests, n.Notices), err
		}},
		// Crash reports are deleted 30 days after the crash (R38).
		{name: "crash_expiry", schedule: jobs.Every(time.Hour), lease: 10 * time.Minute, run: func(ctx context.Context) (string, error) {
			n, err := a.areas.Crashes.ExpireCrashReports(ctx)
			return fmt.Sprintf("%d crash reports deleted", n), err
		}},
	}
	if a.cfg.SecurityEmail != "" {
		every := a.cfg.DigestEvery
		js = append(js, job{name: "security_digest", schedule: jobs.Every(every), lease: 5 * time.Minute, run: func(ctx context.Context) (string, error) {
			_, err := a.areas.Throttle.SecurityDigest(ctx, every)
			return "digest mailed to the security address", err
		}})
	}
	return append(js, a.backupJobs()...)
}

// verifyAuditJob checks every audit chain with its checkpoints and the
// witness, as `kluis audit verify` does (R25). A broken chain is logged at
// error level and raises the alert audit_chain_broken naming the chain (its
// id, no personal data); the run itself succeeds: it did its check.
func (a *app) verifyAuditJob(ctx context.Context) (string, error) {
	results, err := a.areas.Audit.VerifyChains(ctx)
	if err != nil {
		return "", err
	}
	var broken []string
	for _, r := range results {
		if r.OK {
			continue
		}
		broken = append(broken, r.Chain)
		a.log.Error("audit chain broken", "chain", r.Chain, "seq", r.FirstBrokenSeq, "problem", r.Problem)
		detail := fmt.Sprintf("broken at sequence %d: %s", r.FirstBrokenSeq, r.Problem)
		if _, _, err := a.areas.Jobs.RaiseAlert(ctx, kluis.AlertAuditChainBroken, r.Chain, detail); err != nil {
			return "", err
		}
	}
	if len(broken) == 0 {
		return fmt.Sprintf("%d chains intact", len(results)), nil
	}
	return fmt.Sprintf("%d chains checked, %d broken: %s", len(results), len(broken), strings.Join(broken, ", ")), nil
}

// scheduler runs the jobs that are due. It looks every tick (real time);
// whether a job is due, and every time it records, comes from the store's
// clock, which tests move. Each run goes in a goroutine of its own, so a
// long job (a backup) holds up no other; a job runs at most once at a time
// on a node, and on one node at a time across nodes (its lease).
type scheduler struct {
	jobs    []job
	svc     *jobs.Service
	holder  string
	tick    time.Duration
	log     *slog.Logger
	metrics *httpserver.Metrics
	crashes kluis.CrashService // a run's panic becomes a crash report (R38)

	mu      sync.Mutex
	running map[string]bool
	wg      sync.WaitGroup
}

func newScheduler(a *app, js []job) *scheduler {
	return &scheduler{jobs: js, svc: a.areas.Jobs, holder: newHolder(), tick: a.cfg.JobTick, log: a.log, metrics: a.metrics, running: map[string]bool{}, crashes: a.areas.Crashes}
}

// newHolder names this process in job leases and runs: the host's name and
// a random part, so two nodes on one host differ.
func newHolder() string {
	var b [4]byte
	rand.Read(b[:])
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "kluis"
	}
	return host + "-" + hex.EncodeToString(b[:])
}

// Run looks for due jobs at once and then every tick until ctx ends; then
// it waits for the runs under way, whose contexts end with ctx: each is
// recorded abandoned, so another node takes the job over at once.
func (s *scheduler) Run(ctx context.Context) {
	names := make([]string, len(s.jobs))
	for i, j := range s.jobs {
		names[i] = j.name
	}
	s.log.Info("scheduler started", "holder", s.holder, "tick", s.tick.String(), "jobs", strings.Join(names, ","))
	t := time.NewTicker(s.tick)
	defer t.Stop()
	for {
		s.claimDue(ctx)
		select {
		case <-ctx.Done():
			s.wg.Wait()
			return
		case <-t.C:
		}
	}
}

// claimDue claims every job that is due and not running here, and starts
// its run; then it brings the gauges up to date.
func (s *scheduler) claimDue(ctx context.Context) {
	for _, j := range s.jobs {
		if ctx.Err() != nil {
			return
		}
		if !s.begin(j.name) {
			continue
		}
		c, err := s.svc.Claim(ctx, j.name, s.holder, j.schedule, j.lease)
		if err != nil && ctx.Err() == nil {
			s.log.Error("claiming a scheduled job failed; tried again next tick", "job", j.name, "err", err.Error())
		}
		if c.Abandoned != "" {
			s.log.Warn("a run of a scheduled job was abandoned by its node; running the job here", "job", j.name, "run", c.Abandoned)
			s.metrics.JobRan(j.name, kluis.JobAbandoned)
		}
		if c.Run == "" {
			s.end(j.name)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.end(j.name)
			s.runJob(ctx, j, c.Run)
		}()
	}
	s.refreshGauges(ctx)
}

// begin marks name running on this node, unless it is already.
func (s *scheduler) begin(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[name] {
		return false
	}
	s.running[name] = true
	return true
}

func (s *scheduler) end(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, name)
}

// runJob runs one claimed run, renewing its lease every lease/3, and
// records how it ended.
func (s *scheduler) runJob(ctx context.Context, j job, run string) {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lost bool
	beat := make(chan struct{})
	go func() {
		defer close(beat)
		t := time.NewTicker(max(j.lease/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			held, err := s.svc.Heartbeat(runCtx, j.name, run, j.lease)
			switch {
			case err != nil && runCtx.Err() == nil:
				s.log.Warn("renewing a scheduled job's lease failed; tried again", "job", j.name, "run", run, "err", err.Error())
			case err == nil && !held:
				s.log.Error("a scheduled job lost its lease to another node; its run is stopped", "job", j.name, "run", run)
				lost = true
				cancel()
				return
			}
		}
	}()
	start := time.Now()
	detail, err := s.call(runCtx, j)
	cancel()
	<-beat
	outcome := kluis.JobOK
	switch {
	case err == nil:
	case ctx.Err() != nil:
		outcome, detail = kluis.JobAbandoned, "the node stopped during the run"
	case lost:
		outcome, detail = kluis.JobAbandoned, "the run lost its lease to another node"
	default:
		outcome, detail = kluis.JobFailed, err.Error()
	}
	fin, done := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer done()
	if ferr := s.svc.Finish(fin, run, outcome, detail); ferr != nil {
		s.log.Error("recording the end of a scheduled job's run failed", "job", j.name, "run", run, "outcome", outcome, "err", ferr.Error())
	} else {
		s.metrics.JobRan(j.name, outcome)
	}
	attrs := []any{"job", j.name, "run", run, "outcome", outcome, "duration", time.Since(start).Round(time.Millisecond).String(), "detail", detail}
	switch outcome {
	case kluis.JobOK:
		s.log.Info("scheduled job ran", attrs...)
	case kluis.JobFailed:
		s.log.Error("scheduled job failed; retried after a back-off", attrs...)
	default:
		s.log.Warn("scheduled job stopped before its end", attrs...)
	}
	s.refreshGauges(fin)
}

// call runs the job, turning a panic into its error: one broken job must
// not take down the server.
func (s *scheduler) call(ctx context.Context, j job) (detail string, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = s.jobPanic(ctx, j.name, v) // a crash report (R38)
		}
	}()
	return j.run(ctx)
}

// refreshGauges reads the last successes and the open alerts from the
// database, so every node reports the same.
func (s *scheduler) refreshGauges(ctx context.Context) {
	if last, err := s.svc.LastSuccesses(ctx); err == nil {
		for name, at := range last {
			s.metrics.JobSucceeded(name, at)
		}
	}
	if open, err := s.svc.OpenAlertCounts(ctx); err == nil {
		for kind, n := range open {
			s.metrics.AlertsOpen(kind, n)
		}
	}
}
