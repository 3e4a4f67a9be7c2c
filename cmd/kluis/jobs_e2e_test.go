package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/kluistest"
)

// TestDailyAuditCheckRaisesAnAlertOnATamperedChain (R25, R26, DESIGN §9):
// one organisation's chain is tampered with; kluis serve's audit_verify job
// finds it at its first run, logs it at error level, raises
// audit_chain_broken naming that chain (its id) and nothing about the
// intact ones, counts it in the metrics and mails the security address
// without personal data. `kluis jobs` shows the alert and the run; `kluis
// alert resolve` closes it, recorded in the platform chain.
func TestDailyAuditCheckRaisesAnAlertOnATamperedChain(t *testing.T) {
	t.Parallel()
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			s := setupChains(t, engine)
			s.exec(t, `UPDATE audit_events SET action = 'user.delete' WHERE chain = '{acme}' AND seq = 2`)
			const desk = "security@operator.example"
			env := testEnv("KLUIS_DB", s.dsn, "KLUIS_JOB_TICK", "100ms", "KLUIS_SECURITY_EMAIL", desk)
			seen := map[string]bool{}
			readOutbox(t, s.dir, seen) // the invitations of the set-up
			srv := startServe(t, env, "--addr", "127.0.0.1:0", "--data", s.dir, "--metrics-addr", "127.0.0.1:0")

			acme := s.chain["acme"]
			var alertLine string
			waitFor(t, patience, "the audit_chain_broken alert in kluis jobs", func() bool {
				for _, line := range strings.Split(mustCLI(t, env, "", "jobs", "--data", s.dir).stdout, "\n") {
					if strings.HasPrefix(line, "alert\t") {
						alertLine = line
						return true
					}
				}
				return false
			})
			// The alert is raised during the run; the run ends a moment later.
			var r result
			waitFor(t, patience, "the audit_verify run to end", func() bool {
				r = mustCLI(t, env, "", "jobs", "--job", "audit_verify", "--data", s.dir)
				return !strings.Contains(r.stdout, "\trunning\t")
			})
			f := strings.Split(alertLine, "\t")
			if len(f) != 7 || f[2] != "audit_chain_broken" || f[3] != acme || f[4] != "raised 1" || !strings.Contains(f[6], "broken at sequence 2") {
				t.Fatalf("alert line %q, want audit_chain_broken about %s", alertLine, acme)
			}
			if strings.Count(r.stdout, "alert\t") != 1 {
				t.Errorf("kluis jobs lists %d alerts, want only acme's chain:\n%s", strings.Count(r.stdout, "alert\t"), r.stdout)
			}
			if !regexp.MustCompile(`(?m)^run\t\S+\taudit_verify\tok\t\S+\t\S+\t\S+\t4 chains checked, 1 broken: ` + regexp.QuoteMeta(acme) + `$`).MatchString(r.stdout) {
				t.Errorf("kluis jobs --job audit_verify:\n%s\nwant the run ok, naming the broken chain", r.stdout)
			}

			var logged bool
			sc := bufio.NewScanner(strings.NewReader(srv.stderr.String()))
			for sc.Scan() {
				var line struct {
					Level, Msg, Chain string
				}
				if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "audit chain broken" {
					logged = line.Level == "ERROR" && line.Chain == acme
				}
			}
			if !logged {
				t.Errorf("no error-level log line naming %s:\n%s", acme, srv.stderr)
			}
			if strings.Contains(srv.stderr.String(), "manager@acme.example") {
				t.Errorf("the log names a person")
			}

			resp, err := http.Get("http://" + metricsAddr(t, srv.stderr.String()) + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, want := range []string{`kluis_alerts_open{kind="audit_chain_broken"} 1`, `kluis_job_runs_total{job="audit_verify",outcome="ok"} 1`, `kluis_job_last_success_timestamp_seconds{job="audit_verify"}`} {
				if !strings.Contains(string(body), want) {
					t.Errorf("metrics lack %s", want)
				}
			}

			// The security digest (due at the first start) and the alert.
			var m outboxMail
			waitFor(t, patience, "the alert's mail", func() bool {
				for _, got := range readOutbox(t, s.dir, seen) {
					if strings.Contains(got.header.Get("Subject"), "needs attention") {
						m = got
					}
				}
				return m.name != ""
			})
			if !strings.Contains(m.header.Get("To"), desk) {
				t.Fatalf("the alert's mail goes to %q, want the security desk", m.header.Get("To"))
			}
			if !strings.Contains(m.body, "audit_chain_broken") || !strings.Contains(m.body, "kluis jobs") {
				t.Errorf("alert mail %q: want the kind and where to look", m.body)
			}
			for _, never := range []string{acme, strings.TrimPrefix(acme, "org:"), "acme", "manager@", "http", "sequence"} {
				if strings.Contains(m.header.Get("Subject")+m.body, never) {
					t.Errorf("alert mail holds %q:\n%s", never, m.body)
				}
			}

			id := f[5]
			if r := mustCLI(t, env, "", "alert", "resolve", id, "--data", s.dir); r.stdout != id+": resolved\n" {
				t.Errorf("alert resolve: %s", r)
			}
			if r := cli(t, env, "", "alert", "resolve", id, "--data", s.dir); r.code != 1 {
				t.Errorf("resolving it again: %s, want exit 1", r)
			}
			if r := mustCLI(t, env, "", "jobs", "--data", s.dir); strings.Contains(r.stdout, "alert\t") {
				t.Errorf("kluis jobs after the alert was resolved:\n%s", r.stdout)
			}
			resolved := queryStrings(t, engine, s.dir, s.dsn, `SELECT actor FROM audit_events WHERE chain = 'platform' AND action = 'alert.resolved'`)
			if strings.Join(resolved, ",") != "cli" {
				t.Errorf("alert.resolved events by %v, want one by cli", resolved)
			}
		})
	}
}

// holderOf returns the job holder a kluis serve process logged at start.
func holderOf(t *testing.T, log string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var line struct{ Msg, Holder string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "scheduler started" {
			return line.Holder
		}
	}
	t.Fatalf("no scheduler started line in:\n%s", log)
	return ""
}

// TestScheduledJobsRunOnceAcrossNodesAndMoveOnWhenANodeDies (DESIGN §7, §9,
// R30): two `kluis serve` processes on one PostgreSQL, with one backup
// target, looking for due jobs every 100 ms. Every job runs exactly once
// across both at start; made due again five times (its last success moved
// a day back, as the clock would move it), audit_verify and the backup run
// exactly once more each time though both nodes race for them: one backup
// per round, no more. Then node A is killed with SIGKILL, and the backup
// job's lease row is left as a death in the middle of a backup leaves it —
// a run still running, the lease held by A for a few more seconds. Node B
// does not touch the job before A's lease expires; then it marks A's run
// abandoned (also in the platform chain) and makes the backup itself.
func TestScheduledJobsRunOnceAcrossNodesAndMoveOnWhenANodeDies(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dsn := kluistest.PostgresDSN(t)
	env, _, _ := backupEnv(t, processEnv("KLUIS_DB="+dsn, "KLUIS_KEYS_DB="+kluistest.PostgresDSN(t), "KLUIS_JOB_TICK=100ms"))
	nodeA := startServerProcess(t, env, "--addr", "127.0.0.1:0", "--data", dir)
	nodeB := startServerProcess(t, env, "--addr", "127.0.0.1:0", "--data", dir)
	holderA, holderB := holderOf(t, nodeA.stderr.String()), holderOf(t, nodeB.stderr.String())
	query := func(q string) []string { return queryStrings(t, "postgres", dir, dsn, q) }
	count := func(q string) int {
		n, err := strconv.Atoi(query(q)[0])
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	jobNames := []string{"audit_verify", "project_purge", "chunk_collection", "throttle_sweep", "backup", "backup_watch", "backup_drill", "backup_drill_oldest", "retention", "privacy_reminders", "crash_expiry"}
	raced := map[string]bool{"audit_verify": true, "backup": true} // made due again each round
	var seen string
	waitFor(t, patience, "every job's first run", func() bool {
		if ran := strings.Join(query(`SELECT job || ' ' || outcome || ' ' || detail FROM job_runs ORDER BY started_at`), "; "); ran != seen {
			seen = ran
			t.Logf("runs so far: %s", ran)
		}
		return count(`SELECT COUNT(DISTINCT job) FROM job_runs WHERE outcome = 'ok'`) == len(jobNames)
	})
	backupRuns := func() int { return count(`SELECT COUNT(*) FROM job_runs WHERE job = 'backup'`) }
	backups := func() int { return count(`SELECT COUNT(*) FROM backups`) }
	for round := 1; round <= 5; round++ {
		// Due again for both nodes at once, as a day later.
		kluistest.RawExec(t, "postgres", dir, dsn, `UPDATE job_leases SET last_run_at = last_run_at - 86400000000 WHERE name IN ('audit_verify', 'backup')`)
		waitFor(t, patience, "audit_verify and the backup due again", func() bool {
			return count(`SELECT COUNT(*) FROM job_runs WHERE job = 'audit_verify' AND outcome = 'ok'`) == round+1 &&
				count(`SELECT COUNT(*) FROM job_runs WHERE job = 'backup' AND outcome = 'ok'`) == round+1
		})
	}
	// Ten more looks of each node: nothing more runs.
	time.Sleep(time.Second)
	for _, job := range jobNames {
		want := 1
		if raced[job] {
			want = 6
		}
		if got := count(`SELECT COUNT(*) FROM job_runs WHERE job = '` + job + `'`); got != want {
			t.Errorf("%s ran %d times, want %d", job, got, want)
		}
		if got := count(`SELECT COUNT(*) FROM audit_events WHERE chain = 'platform' AND action = 'job.run' AND target = 'job:` + job + `'`); got != want {
			t.Errorf("%s: %d job.run events, want %d", job, got, want)
		}
	}
	holders := query(`SELECT DISTINCT holder FROM job_runs`)
	for _, h := range holders {
		if h != holderA && h != holderB {
			t.Errorf("a run by %q, neither node (%s, %s)", h, holderA, holderB)
		}
	}
	t.Logf("runs by %v", holders)
	if got := backups(); got != 6 {
		t.Errorf("%d backups, want one per run: 6", got)
	}

	// Node A dies in the middle of a backup.
	if err := nodeA.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-nodeA.exited
	const deadRun = "01a00000-0000-7000-8000-0000000000d1"
	before, madeBefore := backupRuns(), backups()
	kluistest.RawExec(t, "postgres", dir, dsn, `INSERT INTO job_runs (id, job, holder, started_at, outcome, detail)
		VALUES ('`+deadRun+`', 'backup', '`+holderA+`', (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, 'running', '')`)
	kluistest.RawExec(t, "postgres", dir, dsn, `UPDATE job_leases SET holder = '`+holderA+`', run_id = '`+deadRun+`',
		lease_until = (extract(epoch FROM clock_timestamp()) * 1000000)::bigint + 2000000, last_run_at = last_run_at - 86400000000
		WHERE name = 'backup'`)
	leaseEnd, _ := strconv.ParseInt(query(`SELECT lease_until FROM job_leases WHERE name = 'backup'`)[0], 10, 64)

	waitFor(t, patience, "node B to take the backup over", func() bool {
		return count(`SELECT COUNT(*) FROM job_runs WHERE job = 'backup' AND outcome = 'ok' AND holder = '`+holderB+`' AND started_at >= `+strconv.FormatInt(leaseEnd, 10)) == 1
	})
	if got := backupRuns(); got != before+2 {
		t.Errorf("backup runs: %d, want %d (the dead one and node B's)", got, before+2)
	}
	if got := backups(); got != madeBefore+1 {
		t.Errorf("%d backups after node B took over, want %d", got, madeBefore+1)
	}
	if got := query(`SELECT outcome || ' ' || CAST(finished_at >= ` + strconv.FormatInt(leaseEnd, 10) + ` AS TEXT) FROM job_runs WHERE id = '` + deadRun + `'`); strings.Join(got, "") != "abandoned true" {
		t.Errorf("the dead node's run: %v, want abandoned after its lease's end", got)
	}
	if got := count(`SELECT COUNT(*) FROM job_runs WHERE job = 'backup' AND started_at >= ` + strconv.FormatInt(leaseEnd-2000000, 10) + ` AND started_at < ` + strconv.FormatInt(leaseEnd, 10) + ` AND id <> '` + deadRun + `'`); got != 0 {
		t.Errorf("%d runs began while the dead node's lease ran, want none", got)
	}
	abandoned := query(`SELECT details FROM audit_events WHERE chain = 'platform' AND action = 'job.run' AND outcome = 'failure' AND target = 'job:backup'`)
	if len(abandoned) != 1 || !strings.Contains(abandoned[0], `"outcome":"abandoned"`) || !strings.Contains(abandoned[0], holderA) {
		t.Errorf("job.run failures in the platform chain: %v, want node A's abandoned run", abandoned)
	}
	if !strings.Contains(nodeB.stderr.String(), "abandoned by its node") {
		t.Errorf("node B did not log the takeover:\n%s", nodeB.stderr)
	}
	if code := nodeB.terminate(t, 15*time.Second); code != 0 {
		t.Errorf("node B exited %d after SIGTERM\nstderr:\n%s", code, nodeB.stderr)
	}
	if r := runProcess(t, env, "", "audit", "verify", "--data", dir); r.code != 0 {
		t.Errorf("audit verify after it all: %s", r)
	}
}
