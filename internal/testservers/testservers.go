// Package testservers starts real servers for tests: OpenSSH's sshd (for
// SFTP) and the Versity S3 Gateway (for S3), each on free loopback ports in
// a temporary folder, stopped when the test ends. Without the server a test
// skips, unless its KLUIS_TEST_* variable names one (as .ci/run does): then
// it fails. The backup targets and the project content store test against
// them.
package testservers

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/crypto/ssh"
)

// FreePorts returns n loopback ports nobody listens on now.
func FreePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// findServer returns the program the variable env names (failing the test
// when it is not there) or the first of fallbacks that exists (skipping the
// test when none does).
func findServer(t *testing.T, env, what string, fallbacks ...string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s=%s names no program: %v", env, p, err)
		}
		return p
	}
	for _, f := range fallbacks {
		if p, err := exec.LookPath(f); err == nil {
			return p
		}
	}
	t.Skipf("skipping: no %s and %s is unset (.ci/run provides it)", what, env)
	return ""
}

// syncBuffer collects a server's log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// process is a server program the test runs; stop ends it and every
// process it started (sshd's sessions run in sessions of their own, so a
// process group is not enough).
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startProcess(t *testing.T, log *syncBuffer, name string, args ...string) *process {
	t.Helper()
	return startProcessEnv(t, log, nil, name, args...)
}

// startProcessEnv is startProcess with the environment env (nil: this
// process's).
func startProcessEnv(t *testing.T, log *syncBuffer, env []string, name string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout = log
	cmd.Stderr = log
	// Should the test binary die, the server goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	return p
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop kills the process and its descendants, by their ids.
func (p *process) stop() {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGSTOP) // no new children meanwhile
	kids := descendants(p.cmd.Process.Pid)
	for _, pid := range kids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	p.cmd.Process.Kill()
	<-p.done
}

// descendants lists the ids of the processes below pid, from /proc.
func descendants(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		id, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], id)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		out = append(out, children[p]...)
		queue = append(queue, children[p]...)
	}
	return out
}

// waitFor polls ready until it says yes, failing the test with the
// server's log after limit. Waiting for a server to start is the one wait
// these tests have.
func waitFor(t *testing.T, what string, limit time.Duration, log *syncBuffer, p *process, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := ready()
		if err == nil {
			return
		}
		if p.exited() {
			t.Fatalf("%s exited: %v\n%s", what, err, log)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v: %v\n%s", what, limit, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SSHD is OpenSSH's sshd on a loopback port, with a host key and one
// authorized login key of its own, serving SFTP with internal-sftp.
type SSHD struct {
	t       *testing.T
	bin     string
	config  string
	Addr    string
	Port    int
	Root    string // a folder for targets, under the test's temporary folder
	HostKey string // the host key in authorized_keys format
	KeyFile string // the private key that logs in
	log     *syncBuffer
	proc    *process
}

// StartSSHD starts sshd for the test (skipping without sshd, unless
// KLUIS_TEST_SSHD names it).
func StartSSHD(t *testing.T) *SSHD {
	t.Helper()
	bin := findServer(t, "KLUIS_TEST_SSHD", "OpenSSH server (Debian package openssh-server)", "/usr/sbin/sshd", "sshd")
	if !filepath.IsAbs(bin) {
		var err error
		if bin, err = filepath.Abs(bin); err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() == 0 {
		// sshd's privilege separation needs its folder.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	} else if os.Getenv("KLUIS_TEST_SSHD") == "" {
		t.Skip("skipping: sshd runs only as root here, and KLUIS_TEST_SSHD is unset")
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hostPub := WriteSSHKey(t, filepath.Join(dir, "host_key"))
	clientPub := WriteSSHKey(t, filepath.Join(dir, "client_key"))
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	port := FreePorts(t, 1)[0]
	config := filepath.Join(dir, "sshd_config")
	conf := fmt.Sprintf(`Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile none
AuthorizedKeysFile %s
AllowUsers %s
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PermitTTY no
AllowTcpForwarding no
X11Forwarding no
Subsystem sftp internal-sftp
LogLevel VERBOSE
`, port, filepath.Join(dir, "host_key"), filepath.Join(dir, "authorized_keys"), me.Username)
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &SSHD{
		t:       t,
		bin:     bin,
		config:  config,
		Addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Port:    port,
		Root:    root,
		HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostPub))),
		KeyFile: filepath.Join(dir, "client_key"),
		log:     &syncBuffer{},
	}
	s.Start()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("sshd's log:\n%s", s.log)
		}
	})
	return s
}

// Start starts sshd (again) and waits until it greets.
func (s *SSHD) Start() {
	s.t.Helper()
	s.proc = startProcess(s.t, s.log, s.bin, "-D", "-e", "-f", s.config)
	waitFor(s.t, "sshd", 20*time.Second, s.log, s.proc, func() error {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		banner := make([]byte, 4)
		if _, err := c.Read(banner); err != nil || string(banner) != "SSH-" {
			return fmt.Errorf("no SSH banner: %q %v", banner, err)
		}
		return nil
	})
}

// Log is what sshd has logged so far.
func (s *SSHD) Log() string { return s.log.String() }

// Stop ends sshd and every session it serves, as a restart of the server
// machine would.
func (s *SSHD) Stop() { s.proc.stop() }

// URL is the sftp:// URL of the folder dir under Root.
func (s *SSHD) URL(dir string) string {
	me, _ := user.Current()
	return "sftp://" + me.Username + "@" + s.Addr + filepath.ToSlash(filepath.Join(s.Root, dir))
}

// WriteSSHKey writes a new Ed25519 private key in OpenSSH's format to file
// and returns its public key.
func WriteSSHKey(t *testing.T, file string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sshPub
}

// S3 is the Versity S3 Gateway (versitygw, Apache-2.0) over a folder
// of the local file system, with root keys that are new for every test. It
// checks AWS signatures and keeps objects and multipart uploads as S3 does.
type S3 struct {
	t         *testing.T
	bin       string
	args      []string
	env       []string
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	log       *syncBuffer
	proc      *process
}

// StartS3 starts versitygw for the test (skipping without it, unless
// KLUIS_TEST_VERSITYGW names it).
func StartS3(t *testing.T) *S3 {
	t.Helper()
	bin := findServer(t, "KLUIS_TEST_VERSITYGW", "S3 server (versitygw)", "versitygw")
	data := t.TempDir()
	port := strconv.Itoa(FreePorts(t, 1)[0])
	w := &S3{
		t:   t,
		bin: bin,
		args: []string{"--port", "127.0.0.1:" + port, "--region", "eu-west-1", "--quiet",
			"posix", data},
		Endpoint:  "http://127.0.0.1:" + port,
		AccessKey: randomHex(t, 10),
		SecretKey: randomHex(t, 20),
		log:       &syncBuffer{},
	}
	// The keys go by environment, not on a command line others can read.
	w.env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+w.AccessKey, "ROOT_SECRET_ACCESS_KEY="+w.SecretKey)
	w.Start()
	t.Cleanup(func() {
		w.Stop()
		if t.Failed() {
			t.Logf("versitygw's log:\n%s", w.log)
		}
	})
	return w
}

// Start starts the server (again, on the same folder) and waits until it
// answers with the keys.
func (w *S3) Start() {
	w.t.Helper()
	w.proc = startProcessEnv(w.t, w.log, w.env, w.bin, w.args...)
	c := w.Client()
	waitFor(w.t, "versitygw", 30*time.Second, w.log, w.proc, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.ListBuckets(ctx)
		return err
	})
}

// Stop ends the server.
func (w *S3) Stop() { w.proc.stop() }

// Client is an S3 client with the server's keys, for looking behind a
// target's back.
func (w *S3) Client() *minio.Client {
	w.t.Helper()
	c, err := minio.New(strings.TrimPrefix(w.Endpoint, "http://"), &minio.Options{
		Creds:      credentials.NewStaticV4(w.AccessKey, w.SecretKey, ""),
		Region:     "eu-west-1",
		MaxRetries: 1,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

// URL is the s3:// URL of prefix in bucket on this server.
func (w *S3) URL(bucket, prefix string) string {
	return "s3://" + bucket + "/" + prefix + "?endpoint=" + w.Endpoint + "&region=eu-west-1"
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
