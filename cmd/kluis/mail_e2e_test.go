package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/kluistest"
)

// The acceptance test of the mail queue (issue 5): a real `kluis serve`
// process delivers through a real SMTP server process on loopback —
// aiosmtpd, from Debian's python3-aiosmtpd, run by the system Python. The
// SMTP server stops, mail queues in the database (not lost, not sent), it
// restarts on the same port, and every message arrives exactly once.

const systemPython = "/usr/bin/python3"

// smtpProcess is aiosmtpd storing what it accepts in a maildir.
type smtpProcess struct {
	cmd    *exec.Cmd
	exited chan struct{}
	output *kluistest.SyncBuffer
}

// startSMTPProcess runs aiosmtpd on 127.0.0.1:port with its Mailbox handler
// and returns once it accepts connections. It is killed when the test ends.
func startSMTPProcess(t *testing.T, port int, maildir string) *smtpProcess {
	t.Helper()
	if out, err := exec.Command(systemPython, "-c", "import aiosmtpd").CombinedOutput(); err != nil {
		msg := "aiosmtpd is needed (Debian: apt-get install python3-aiosmtpd): " + err.Error() + ": " + string(out)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(maildir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	p := &smtpProcess{exited: make(chan struct{}), output: &kluistest.SyncBuffer{}}
	p.cmd = exec.Command(systemPython, "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:"+strconv.Itoa(port), "-c", "aiosmtpd.handlers.Mailbox", maildir)
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start aiosmtpd: %v", err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.stop)
	waitFor(t, patience, "aiosmtpd to listen", func() bool {
		select {
		case <-p.exited:
			t.Fatalf("aiosmtpd ended early: %s", p.output)
		default:
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

// stop kills the SMTP server and waits until it is gone.
func (p *smtpProcess) stop() {
	select {
	case <-p.exited:
	default:
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// maildirMessages returns the messages aiosmtpd stored, by file name.
func maildirMessages(t *testing.T, maildir string) map[string]outboxMail {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(maildir, "new"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]outboxMail{}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(maildir, "new", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = parseMail(t, e.Name(), raw)
	}
	return out
}

// TestMailSurvivesAnSMTPOutageAndArrivesExactlyOnce (issue 5 acceptance,
// R45): invitations and a password-reset mail go through aiosmtpd; with the
// SMTP server stopped, new mail stays in the queue (tried and rescheduled,
// none delivered); once it runs again on the same port every message
// arrives, each exactly once (counted by Message-ID), and the queue is
// empty.
func TestMailSurvivesAnSMTPOutageAndArrivesExactlyOnce(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	maildir := t.TempDir()
	smtp := startSMTPProcess(t, port, maildir)

	dir := t.TempDir()
	// A short first retry (KLUIS_MAIL_RETRY): the test polls instead of
	// waiting 30 s for the worker's next attempt.
	env := processEnv(fmt.Sprintf("KLUIS_SMTP_URL=smtp://127.0.0.1:%d", port), "KLUIS_MAIL_RETRY=1s")
	srv := startServerProcess(t, env, "--addr", "127.0.0.1:0", "--data", dir)
	base := "http://" + srv.addr
	const managerEmail, managerPw = "marie.manager@example.com", "Manager pass 2026!"

	r := runProcess(t, env, "", "org", "create", "acme", "--name", "Acme", "--manager-email", managerEmail, "--data", dir)
	if r.code != 0 {
		t.Fatalf("org create: %s", r)
	}
	link := strings.TrimSpace(r.stdout)
	if got := api(t, "POST", base+"/api/v1/orgs/acme/invitations/accept", "",
		map[string]string{"token": tokenOf(link), "name": "Marie Manager", "password": managerPw}, nil); got != http.StatusOK {
		t.Fatalf("accept the invitation: %d", got)
	}
	var login loginAnswer
	if got := api(t, "POST", base+"/api/v1/orgs/acme/login", "", map[string]string{"email": managerEmail, "password": managerPw}, &login); got != http.StatusOK {
		t.Fatalf("manager login: %d", got)
	}
	invite := func(email string) string {
		t.Helper()
		var out struct {
			User userAnswer `json:"user"`
		}
		if got := api(t, "POST", base+"/api/v1/orgs/acme/users", login.Token, map[string]string{"email": email, "name": "Someone", "role": "member"}, &out); got != http.StatusCreated {
			t.Fatalf("invite %s: %d", email, got)
		}
		return out.User.ID
	}
	queue := func(where string) string {
		return strings.Join(queryStrings(t, "sqlite", dir, "", `SELECT COUNT(*) FROM mail_queue`+where), "")
	}
	arrived := func(n int) {
		t.Helper()
		waitFor(t, patience, fmt.Sprintf("%d messages in the maildir", n), func() bool { return len(maildirMessages(t, maildir)) >= n })
	}

	// With the SMTP server up: the manager's invitation, three more and a
	// password-reset link.
	first := invite("before.0@example.com")
	invite("before.1@example.com")
	invite("before.2@example.com")
	if got := api(t, "POST", base+"/api/v1/orgs/acme/password-reset", "", map[string]string{"email": managerEmail}, nil); got != http.StatusAccepted {
		t.Fatalf("password reset: %d", got)
	}
	arrived(5)
	// A message is in the maildir a moment before kluis reads the server's
	// reply and takes it off the queue; stopped in between, the server
	// would have it sent twice. So it stops once the queue is empty.
	waitFor(t, patience, "the queue to empty", func() bool { return queue("") == "0" })

	// The SMTP server stops; three invitations and a re-sent one queue.
	smtp.stop()
	invite("during.0@example.com")
	invite("during.1@example.com")
	invite("during.2@example.com")
	if got := api(t, "POST", base+"/api/v1/orgs/acme/users/"+first+"/invitation", login.Token, nil, nil); got != http.StatusNoContent {
		t.Fatalf("re-send an invitation: %d", got)
	}
	waitFor(t, patience, "every queued message to have failed once", func() bool {
		return queue(" WHERE attempts >= 1") == "4"
	})
	if got := queue(""); got != "4" {
		t.Errorf("%s messages queued while SMTP is down, want 4", got)
	}
	if got := len(maildirMessages(t, maildir)); got != 5 {
		t.Errorf("%d messages arrived while SMTP was down, want the 5 from before", got)
	}
	if !strings.Contains(srv.stderr.String()+srv.stdout.String(), "mail delivery failed") {
		t.Error("the server did not log the failed delivery")
	}

	// It runs again on the same port: everything arrives, once.
	startSMTPProcess(t, port, maildir)
	arrived(9)
	waitFor(t, patience, "the queue to empty", func() bool { return queue("") == "0" })
	msgs := maildirMessages(t, maildir)
	ids := map[string]int{}
	to := map[string]int{}
	for _, m := range msgs {
		ids[m.header.Get("Message-Id")]++
		to[m.header.Get("To")]++
	}
	if len(msgs) != 9 || len(ids) != 9 {
		t.Errorf("%d messages with %d distinct Message-IDs arrived, want 9 and 9: %v", len(msgs), len(ids), ids)
	}
	for id, n := range ids {
		if id == "" || n != 1 {
			t.Errorf("Message-ID %q arrived %d times, want once", id, n)
		}
	}
	for _, rcpt := range []string{"before.1@example.com", "during.0@example.com", "during.2@example.com"} {
		if n := countTo(to, rcpt); n != 1 {
			t.Errorf("%s got %d messages, want 1", rcpt, n)
		}
	}
	if n := countTo(to, "before.0@example.com"); n != 2 {
		t.Errorf("before.0 got %d messages, want 2 (the invitation and the re-sent one)", n)
	}
	if n := countTo(to, managerEmail); n != 2 {
		t.Errorf("the manager got %d messages, want 2 (the invitation and the reset link)", n)
	}
}

// countTo counts the messages whose To header names address.
func countTo(to map[string]int, address string) int {
	n := 0
	for h, c := range to {
		if strings.Contains(h, address) {
			n += c
		}
	}
	return n
}
