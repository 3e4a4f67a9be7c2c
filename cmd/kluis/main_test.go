package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/password"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/areas"
)

// TestMain removes the kluis binary that the end-to-end tests build once.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// fastArgon2 is the environment that keeps password hashing quick in tests
// that are not about hashing.
var fastArgon2 = map[string]string{"KLUIS_ARGON2_MEMORY_KIB": "1024", "KLUIS_ARGON2_TIME": "1"}

// testEnv returns the fast-hashing environment plus the given KEY, VALUE
// pairs.
func testEnv(kv ...string) map[string]string {
	env := map[string]string{}
	for k, v := range fastArgon2 {
		env[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return env
}

// result is what one run of the command line left behind.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// cli runs the command line in-process through run, with the environment
// env (never the process environment) and stdin, and returns the exit code
// main would give and both outputs.
func cli(t testing.TB, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string { return env[k] }
	err := run(ctx, append([]string{"kluis"}, args...), getenv, strings.NewReader(stdin), &stdout, &stderr)
	code := exitCode(err, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// mustCLI is cli for a command that must succeed.
func mustCLI(t testing.TB, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	r := cli(t, env, stdin, args...)
	if r.code != 0 {
		t.Fatalf("kluis %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// checkErrorShape checks the contract's error output: a first line
// "kluis: message" starting lower-case, then at most a "hint:" line.
func checkErrorShape(t testing.TB, stderr string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	first := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "kluis: ") {
			first = i
			break
		}
	}
	if first < 0 {
		t.Fatalf("stderr has no line starting with %q:\n%s", "kluis: ", stderr)
	}
	msg := strings.TrimPrefix(lines[first], "kluis: ")
	if msg == "" || strings.ToLower(msg[:1]) != msg[:1] {
		t.Errorf("error message %q does not start lower-case", msg)
	}
}

// patience bounds every wait for something that must happen: a server to
// listen, a mail to arrive, a process to end, a command to finish. It
// detects a hang; it measures nothing. A wait returns as soon as its
// condition holds, and on a loaded machine (go test -cpu 1, two at once,
// other work beside it) what takes milliseconds alone can take many
// seconds, so the bound is generous.
const patience = 2 * time.Minute

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var listeningLine = regexp.MustCompile(`listening on http://(\S+)`)

// server is a kluis serve running in-process.
type server struct {
	addr   string
	stdout *kluistest.SyncBuffer
	stderr *kluistest.SyncBuffer
	stop   context.CancelFunc
	done   chan error
}

// startServe runs `kluis serve args…` in-process until the test ends or
// shutdown is called, and waits until it answers /readyz.
func startServe(t testing.TB, env map[string]string, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{stdout: &kluistest.SyncBuffer{}, stderr: &kluistest.SyncBuffer{}, stop: cancel, done: make(chan error, 1)}
	getenv := func(k string) string { return env[k] }
	go func() {
		s.done <- run(ctx, append([]string{"kluis", "serve"}, args...), getenv, strings.NewReader(""), s.stdout, s.stderr)
	}()
	t.Cleanup(func() { s.shutdown(t) })
	waitFor(t, patience, "serve to print its address", func() bool {
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("serve ended early: %v\nstderr:\n%s", err, s.stderr)
		default:
		}
		m := listeningLine.FindStringSubmatch(s.stdout.String())
		if m != nil {
			s.addr = m[1]
		}
		return m != nil
	})
	waitReady(t, "http://"+s.addr)
	return s
}

// shutdown cancels the server's context and returns run's error; it fails
// the test if run does not return within patience.
func (s *server) shutdown(t testing.TB) error {
	t.Helper()
	if s.stop == nil {
		return nil
	}
	s.stop()
	s.stop = nil
	select {
	case err := <-s.done:
		return err
	case <-time.After(patience):
		t.Fatalf("serve did not return within %v of its context ending", patience)
		return nil
	}
}

// waitReady polls base/readyz until it answers 200.
func waitReady(t testing.TB, base string) {
	t.Helper()
	waitFor(t, patience, base+"/readyz", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// openStore opens the store of a data folder (and DSN) as kluis does, for
// checks the command line cannot make, such as a login.
func openStore(t testing.TB, dir, dsn string) *areas.Areas {
	t.Helper()
	return openStoreAt(t, dir, dsn, nil)
}

// openStoreAt is openStore on the clock now (nil: the real one), for tests
// that move time.
func openStoreAt(t testing.TB, dir, dsn string, now func() time.Time) *areas.Areas {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, dir, dsn)
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	signer, err := audit.LoadOrCreateSigner(filepath.Join(dir, "keys", "audit-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	witness, err := audit.OpenWitness(filepath.Join(dir, "audit", "witness.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { witness.Close() })
	hasher, err := password.NewHasher(kluistest.FastArgon2, 0)
	if err != nil {
		t.Fatal(err)
	}
	root, err := keys.LoadOrCreateRoot(filepath.Join(dir, "keys", "root"))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keys.OpenStore(ctx, filepath.Join(dir, "keys", "keys.db"), root, now, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	core, err := sqlstore.New(db, sqlstore.Options{Keys: ks, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	st := areas.New(core, areas.Config{Hasher: hasher, Signer: signer, Witness: witness})
	if err := st.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// queryStrings runs a read-only query through a connection of its own and
// returns the first column of every row as text.
func queryStrings(t testing.TB, engine, dir, dsn, query string) []string {
	t.Helper()
	driver, source := "pgx", dsn
	if engine != sqlstore.Postgres {
		driver, source = "sqlite", "file:"+filepath.Join(dir, "kluis.db")+"?_busy_timeout=10000"
	}
	var out []string
	for _, row := range kluistest.QueryRows(t, driver, source, query) {
		out = append(out, string(row[0]))
	}
	return out
}

// outboxMail is one message in the development outbox.
type outboxMail struct {
	name   string      // file name
	raw    string      // the file as written
	header mail.Header // parsed header
	body   string      // the decoded text body
}

// outboxNamePattern is the contract's NAME.eml: a time stamp and a random
// part, never an address.
var outboxNamePattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}\.[0-9]{6}Z-[0-9a-f]{8}\.eml$`)

// readOutbox returns the messages in DATA/outbox not in seen (which it
// updates), oldest first.
func readOutbox(t testing.TB, dataDir string, seen map[string]bool) []outboxMail {
	t.Helper()
	var out []outboxMail
	for _, m := range kluistest.ReadOutbox(t, filepath.Join(dataDir, "outbox"), seen) {
		out = append(out, parseMail(t, m.Name, []byte(m.Raw)))
	}
	return out
}

// waitMail polls the outbox until a message not in seen arrives.
func waitMail(t testing.TB, dataDir string, seen map[string]bool, timeout time.Duration) outboxMail {
	t.Helper()
	var got []outboxMail
	waitFor(t, timeout, "a mail in the outbox", func() bool {
		got = append(got, readOutbox(t, dataDir, seen)...)
		return len(got) > 0
	})
	if len(got) != 1 {
		t.Fatalf("got %d new mails in the outbox, want 1", len(got))
	}
	return got[0]
}

func parseMail(t testing.TB, name string, raw []byte) outboxMail {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("outbox file %s is not an RFC 5322 message: %v", name, err)
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mediaType != "text/plain" || !strings.EqualFold(params["charset"], "utf-8") {
		t.Errorf("outbox file %s: Content-Type %q, want text/plain; charset=utf-8", name, msg.Header.Get("Content-Type"))
	}
	var body io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("outbox file %s: body: %v", name, err)
	}
	return outboxMail{name: name, raw: string(raw), header: msg.Header, body: strings.ReplaceAll(string(b), "\r\n", "\n")}
}

// linkLines returns the lines of a mail body that are http(s) links.
func linkLines(body string) []string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") {
			out = append(out, l)
		}
	}
	return out
}

// tokenOf returns the token in a link's fragment.
func tokenOf(link string) string {
	_, tok, _ := strings.Cut(link, "#")
	return tok
}
