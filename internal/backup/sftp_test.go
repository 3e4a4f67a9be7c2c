package backup

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"github.com/kluis/kluis/internal/testservers"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// TestSFTPTargetRefusesIncompleteSettings: an sftp:// target without its
// pinned host key or a usable key file does not open (R30: backups go only
// to the server meant, never with a password).
func TestSFTPTargetRefusesIncompleteSettings(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	testservers.WriteSSHKey(t, key)
	locked := filepath.Join(dir, "locked")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(locked, pem.EncodeToMemory(block), 0o600)
	hostKey := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBwUa/SEbXAeJdHxtfbr0DS6zzuNrOrIOHrfP2QQjsOc"
	good := TargetConfig{SFTPHostKey: hostKey, SFTPKeyFile: key}
	for _, c := range []struct {
		name, url string
		cfg       TargetConfig
		want      string
	}{
		{"no host key", "sftp://backup@example.org/srv/kluis", TargetConfig{SFTPKeyFile: key}, "pinned host key"},
		{"a host key that is no key", "sftp://backup@example.org/srv/kluis", TargetConfig{SFTPHostKey: "ssh-ed25519 not-base64", SFTPKeyFile: key}, "not a public key"},
		{"no key file", "sftp://backup@example.org/srv/kluis", TargetConfig{SFTPHostKey: hostKey}, "private key file"},
		{"a missing key file", "sftp://backup@example.org/srv/kluis", TargetConfig{SFTPHostKey: hostKey, SFTPKeyFile: filepath.Join(dir, "nothing")}, "reading the SFTP key file"},
		{"a key file that holds no key", "sftp://backup@example.org/srv/kluis", TargetConfig{SFTPHostKey: hostKey, SFTPKeyFile: "/etc/hostname"}, "no private key"},
		{"a key under a passphrase", "sftp://backup@example.org/srv/kluis", TargetConfig{SFTPHostKey: hostKey, SFTPKeyFile: locked}, "passphrase"},
		{"no user", "sftp://example.org/srv/kluis", good, "names its user"},
		{"no folder", "sftp://backup@example.org/", good, "names a folder"},
		{"a password", "sftp://backup:hunter2@example.org/srv/kluis", good, "password"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tg, err := OpenTarget(c.url, c.cfg)
			if err == nil {
				tg.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %q, want it to mention %q", err, c.want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "secret passphrase") {
				t.Errorf("the error %q shows a secret", err)
			}
		})
	}
}

// TestSFTPTargetNamesAndPaths: the target's name is its URL without query
// (never a secret); /~/PATH is in the login folder.
func TestSFTPTargetNamesAndPaths(t *testing.T) {
	key := filepath.Join(t.TempDir(), "key")
	testservers.WriteSSHKey(t, key)
	cfg := TargetConfig{SFTPHostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBwUa/SEbXAeJdHxtfbr0DS6zzuNrOrIOHrfP2QQjsOc", SFTPKeyFile: key}
	for _, c := range []struct{ url, name, path string }{
		{"sftp://backup@example.org/srv/kluis?location=NL", "sftp://backup@example.org:22/srv/kluis", "/srv/kluis/b1/x"},
		{"sftp://backup@example.org:2222/srv/kluis/", "sftp://backup@example.org:2222/srv/kluis", "/srv/kluis/b1/x"},
		{"sftp://backup@example.org/~/kluis", "sftp://backup@example.org:22/~/kluis", "kluis/b1/x"},
		{"sftp://backup@example.org/~", "sftp://backup@example.org:22/~", "b1/x"},
		{"sftp://backup@[2001:db8::1]:22/srv", "sftp://backup@[2001:db8::1]:22/srv", "/srv/b1/x"},
	} {
		tg := mustOpenTarget(t, c.url, cfg)
		if tg.Name() != c.name {
			t.Errorf("%s: name %q, want %q", c.url, tg.Name(), c.name)
		}
		if p, _ := tg.(*SFTP).path("b1/x"); p != c.path {
			t.Errorf("%s: path %q, want %q", c.url, p, c.path)
		}
	}
}

// TestSFTPTargetRefusesAnotherHostKey: a server whose host key is not the
// pinned one (another machine in the middle) gets nothing, not even the
// login (R30).
func TestSFTPTargetRefusesAnotherHostKey(t *testing.T) {
	s := startSSHD(t)
	other := testservers.WriteSSHKey(t, filepath.Join(t.TempDir(), "other"))
	cfg := sftpConfig(s)
	cfg.SFTPHostKey = string(ssh.MarshalAuthorizedKey(other))
	tg := mustOpenTarget(t, sftpTarget(s, "backups"), cfg)
	err := tg.Put(context.Background(), "b1/x", strings.NewReader("sealed"))
	if !errors.Is(err, errHostKey) || !strings.Contains(err.Error(), "host key") {
		t.Fatalf("put got %v, want the host key refused", err)
	}
	if _, err := tg.List(context.Background(), ""); !errors.Is(err, errHostKey) {
		t.Errorf("list got %v, want the host key refused", err)
	}
	if _, err := os.Stat(filepath.Join(s.Root, "backups")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the server holds the target's folder (%v), want nothing sent", err)
	}
	if strings.Contains(s.Log(), "Accepted publickey") {
		t.Error("the client logged in to a server whose host key it refused")
	}

	// The pin as ssh-keyscan prints it, with the host first, opens.
	cfg.SFTPHostKey = "[127.0.0.1]:1234 " + s.HostKey + "\n"
	tg = mustOpenTarget(t, sftpTarget(s, "backups"), cfg)
	put(t, tg, "b1/x", "sealed")
}

// TestSFTPTargetRefusesAKeyTheServerDoesNotKnow: logging in takes the
// authorized key; another key is refused and nothing is stored.
func TestSFTPTargetRefusesAKeyTheServerDoesNotKnow(t *testing.T) {
	s := startSSHD(t)
	cfg := sftpConfig(s)
	cfg.SFTPKeyFile = filepath.Join(t.TempDir(), "stranger")
	testservers.WriteSSHKey(t, cfg.SFTPKeyFile)
	tg := mustOpenTarget(t, sftpTarget(s, "backups"), cfg)
	err := tg.Put(context.Background(), "b1/x", strings.NewReader("sealed"))
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("put got %v, want the login refused", err)
	}
	if _, err := os.Stat(filepath.Join(s.Root, "backups")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the server holds the target's folder (%v), want nothing stored", err)
	}
}

// TestSFTPTargetThatIsDownFailsFast: a server that is not there, or that
// accepts and never answers, fails the operation loudly and within the
// timeout, naming the target (R30: a backup that did not happen shows).
func TestSFTPTargetThatIsDownFailsFast(t *testing.T) {
	key := filepath.Join(t.TempDir(), "key")
	testservers.WriteSSHKey(t, key)
	cfg := TargetConfig{SFTPHostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBwUa/SEbXAeJdHxtfbr0DS6zzuNrOrIOHrfP2QQjsOc", SFTPKeyFile: key}

	t.Run("nothing listens", func(t *testing.T) {
		port := testservers.FreePorts(t, 1)[0]
		tg := mustOpenTarget(t, "sftp://backup@127.0.0.1:"+strconv.Itoa(port)+"/srv", cfg)
		start := time.Now()
		err := tg.Put(context.Background(), "b1/x", strings.NewReader("sealed"))
		if err == nil || !strings.Contains(err.Error(), tg.Name()) || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("put got %v, want connection refused naming %s", err, tg.Name())
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	})
	t.Run("a server that never answers", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close() // held open, silent
			}
		}()
		tg := mustOpenTarget(t, "sftp://backup@"+l.Addr().String()+"/srv", cfg)
		tg.(*SFTP).timeout = 300 * time.Millisecond
		start := time.Now()
		_, err = tg.List(context.Background(), "")
		if err == nil || !strings.Contains(err.Error(), "handshake") {
			t.Fatalf("list got %v, want the handshake to time out", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("took %v with a timeout of 300ms", d)
		}
		// A cancelled context ends the wait too.
		tg.(*SFTP).timeout = time.Hour
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		if _, err := tg.List(ctx, ""); !errors.Is(err, context.Canceled) {
			t.Errorf("list got %v, want it cancelled", err)
		}
	})
}

// TestSFTPTargetReconnectsAfterARestart: the operation after the server
// restarted works, on a new connection; one while it is down fails.
func TestSFTPTargetReconnectsAfterARestart(t *testing.T) {
	s := startSSHD(t)
	tg := mustOpenTarget(t, sftpTarget(s, "backups"), sftpConfig(s))
	put(t, tg, "b1/x", "first")

	s.Stop()
	s.Start()
	if got := read(t, tg, "b1/x"); got != "first" {
		t.Errorf("read %q after the restart", got)
	}
	put(t, tg, "b1/y", "second")

	s.Stop()
	if err := tg.Put(context.Background(), "b1/z", strings.NewReader("lost")); err == nil {
		t.Fatal("put succeeded while the server was down")
	}
	if _, err := tg.List(context.Background(), ""); err == nil {
		t.Fatal("list succeeded while the server was down")
	}
	s.Start()
	assertList(t, tg, "", "b1/x:5", "b1/y:6")
	put(t, tg, "b1/z", "third")
	if got := read(t, tg, "b1/z"); got != "third" {
		t.Errorf("read %q", got)
	}
}

// TestSFTPTargetPutLeavesNothingBehind: on the server's disk, a Put that
// failed leaves neither the object nor its temporary file, and one that
// succeeded leaves only the object.
func TestSFTPTargetPutLeavesNothingBehind(t *testing.T) {
	s := startSSHD(t)
	tg := mustOpenTarget(t, sftpTarget(s, "backups"), sftpConfig(s))
	if err := tg.Put(context.Background(), "b1/x", failingReader(300<<10)); !errors.Is(err, errReader) {
		t.Fatalf("put got %v, want the reader's error", err)
	}
	assertFiles(t, filepath.Join(s.Root, "backups"), "b1/")
	put(t, tg, "b1/x", "sealed")
	assertFiles(t, filepath.Join(s.Root, "backups"), "b1/", "b1/x")
	if fi, err := os.Stat(filepath.Join(s.Root, "backups", "b1", "x")); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("the object's mode is %v, want -rw-------", fi.Mode())
	}
}

// assertFiles checks the files and folders under root, folders ending in "/".
func assertFiles(t *testing.T, root string, want ...string) {
	t.Helper()
	var got []string
	filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if e.IsDir() {
			rel += "/"
		}
		got = append(got, filepath.ToSlash(rel))
		return nil
	})
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("files %q, want %q", got, want)
	}
}
