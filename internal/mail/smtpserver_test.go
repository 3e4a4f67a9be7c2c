package mail_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/kluistest"
)

// The real SMTP server of these tests is aiosmtpd, from Debian's
// python3-aiosmtpd, run by the system Python.
const systemPython = "/usr/bin/python3"

// requireAiosmtpd skips the test when aiosmtpd is missing, except on CI,
// where it fails.
func requireAiosmtpd(t *testing.T) {
	t.Helper()
	out, err := exec.Command(systemPython, "-c", "import aiosmtpd").CombinedOutput()
	if err == nil {
		return
	}
	msg := "aiosmtpd is needed for the SMTP tests (Debian: apt-get install python3-aiosmtpd): " + err.Error() + ": " + string(out)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen: got error %v, want nil", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startAiosmtpd runs aiosmtpd on 127.0.0.1:port with its Mailbox handler,
// which stores every message it accepts in the maildir at maildir; extra
// adds command-line options (TLS). It returns once the server accepts
// connections and stops it when the test ends.
func startAiosmtpd(t *testing.T, port int, maildir string, extra ...string) {
	t.Helper()
	requireAiosmtpd(t)
	makeMaildir(t, maildir)
	args := []string{"-m", "aiosmtpd", "-n", "-l", "127.0.0.1:" + strconv.Itoa(port), "-c", "aiosmtpd.handlers.Mailbox"}
	args = append(args, extra...)
	args = append(args, maildir)
	startPython(t, port, args...)
}

// startAiosmtpdWithAuth runs an aiosmtpd that accepts AUTH PLAIN (without
// TLS, on loopback) for user and password only; the aiosmtpd command line
// cannot configure authentication, so a short script does.
func startAiosmtpdWithAuth(t *testing.T, port int, maildir, user, password string) {
	t.Helper()
	requireAiosmtpd(t)
	const script = `
import sys, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult

port, maildir, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode(), sys.argv[4].encode()

def authenticate(server, session, envelope, mechanism, data):
    ok = mechanism == "PLAIN" and data.login == user and data.password == password
    # handled=False: aiosmtpd itself answers 235 or 535.
    return AuthResult(success=ok, handled=False)

controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=port,
                        authenticator=authenticate, auth_required=True, auth_require_tls=False)
controller.start()
while True:
    time.sleep(3600)
`
	makeMaildir(t, maildir)
	startPython(t, port, "-c", script, strconv.Itoa(port), maildir, user, password)
}

// makeMaildir creates the folders of a maildir: Python's mailbox module
// creates them only when the maildir itself does not exist yet.
func makeMaildir(t *testing.T, maildir string) {
	t.Helper()
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(maildir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
}

func startPython(t *testing.T, port int, args ...string) {
	t.Helper()
	cmd := exec.Command(systemPython, args...)
	var output kluistest.SyncBuffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting aiosmtpd: got error %v, want nil", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})

	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("aiosmtpd exited early: %s", output.String())
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("aiosmtpd did not listen on %s within 15 s: %v; output: %s", addr, err, output.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readMaildir returns the messages in maildir's "new" folder, oldest first.
func readMaildir(t *testing.T, maildir string) [][]byte {
	t.Helper()
	dir := filepath.Join(maildir, "new")
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("ReadDir(%s): got error %v, want nil", dir, err)
	}
	// Python's maildir names do not zero-pad their microseconds, so the
	// name is no arrival order: the modification time is.
	mtime := func(e os.DirEntry) time.Time {
		info, err := e.Info()
		if err != nil {
			t.Fatalf("stat %s: %v", e.Name(), err)
		}
		return info.ModTime()
	}
	sort.SliceStable(entries, func(i, j int) bool { return mtime(entries[i]).Before(mtime(entries[j])) })
	var msgs [][]byte
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatalf("ReadFile: got error %v, want nil", err)
		}
		msgs = append(msgs, b)
	}
	return msgs
}

// testCertificate writes a self-signed certificate for 127.0.0.1 and its
// key to dir and returns their paths and a pool that trusts it.
func testCertificate(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kluis test SMTP server"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
