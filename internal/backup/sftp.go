package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// sftpTimeout bounds dialling, the SSH handshake and a keepalive's answer:
// a target that is down or hangs fails its operation after at most this
// long instead of stalling a backup.
const sftpTimeout = 15 * time.Second

// SFTP is a [Target] on an SSH server's SFTP subsystem
// (sftp://USER@HOST:PORT/PATH). The server's host key is pinned (there is no
// trust on first use) and kluis logs in with a private key file, never a
// password. The connection is made on first use and made again after it
// broke, so a server restarted between two operations costs nothing but the
// operation that was running.
//
// The URL's path is absolute on the server; /~/PATH is PATH in the login
// folder. Objects are files under that folder, written under a temporary
// name in their own folder and renamed into place (an atomic replace with
// the posix-rename@openssh.com extension; otherwise the old file is removed
// first), so an object is whole or absent.
type SFTP struct {
	user, addr string
	base       string // "" is the login folder
	location   string
	config     *ssh.ClientConfig
	timeout    time.Duration

	mu     sync.Mutex // guards cur and closed; held while dialling
	cur    *sftpConn
	closed bool
}

// errHostKey refuses a server whose host key is not the pinned one: it may
// be another machine in the middle.
var errHostKey = errors.New("the SFTP server's host key is not the pinned host key (KLUIS_BACKUP_SFTP_HOSTKEY)")

// sftpConn is one SSH connection with its SFTP session.
type sftpConn struct {
	ssh  *ssh.Client
	sftp *sftp.Client
	dead chan struct{} // closed when the connection has ended
}

func (c *sftpConn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// openSFTP opens an sftp:// target: it checks the URL, the pinned host key
// and the key file, and does not connect.
func openSFTP(u *url.URL, location string, cfg TargetConfig) (Target, error) {
	user := u.User.Username()
	if user == "" || u.Hostname() == "" {
		return nil, errors.New("backup: an sftp:// target names its user and host: sftp://USER@HOST:PORT/PATH")
	}
	port := u.Port()
	if port == "" {
		port = "22"
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	base := path.Clean("/" + u.Path)
	switch {
	case base == "/~":
		base = ""
	case strings.HasPrefix(base, "/~/"):
		base = strings.TrimPrefix(base, "/~/")
	case base == "/":
		return nil, errors.New("backup: an sftp:// target names a folder: sftp://USER@HOST:PORT/PATH (/~/PATH for one in the login folder)")
	}
	pinned, err := parseHostKeys(cfg.SFTPHostKey)
	if err != nil {
		return nil, err
	}
	signer, err := readSSHKey(cfg.SFTPKeyFile)
	if err != nil {
		return nil, err
	}
	t := &SFTP{
		user:     user,
		addr:     addr,
		base:     base,
		location: location,
		timeout:  sftpTimeout,
	}
	var algos []string
	for _, k := range pinned {
		algos = append(algos, hostKeyAlgorithms(k.Type())...)
	}
	t.config = &ssh.ClientConfig{
		User:              user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyAlgorithms: algos,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			for _, k := range pinned {
				if bytes.Equal(k.Marshal(), key.Marshal()) {
					return nil
				}
			}
			return fmt.Errorf("%w: the server offered %s; nothing was sent", errHostKey, ssh.FingerprintSHA256(key))
		},
	}
	return t, nil
}

// parseHostKeys reads the pinned host keys: one or more lines in the
// authorized_keys format ("ssh-ed25519 AAAA…") or as ssh-keyscan prints them
// ("HOST ssh-ed25519 AAAA…").
func parseHostKeys(s string) ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			_, _, k, _, _, err = ssh.ParseKnownHosts([]byte(line))
		}
		if err != nil {
			return nil, errors.New("backup: the pinned SFTP host key (KLUIS_BACKUP_SFTP_HOSTKEY) is not a public key such as \"ssh-ed25519 AAAA…\"")
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("backup: an sftp:// target needs its pinned host key (KLUIS_BACKUP_SFTP_HOSTKEY, as ssh-keyscan -t ed25519 HOST prints it)")
	}
	return keys, nil
}

// hostKeyAlgorithms lists the signature algorithms a host key of type t
// signs with, so the server shows the key that is pinned.
func hostKeyAlgorithms(t string) []string {
	if t == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{t}
}

// readSSHKey reads the private key SFTP targets log in with. A key under a
// passphrase is refused: nobody is there to type it.
func readSSHKey(file string) (ssh.Signer, error) {
	if file == "" {
		return nil, errors.New("backup: an sftp:// target needs a private key file to log in with (KLUIS_BACKUP_SFTP_KEY_FILE)")
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("backup: reading the SFTP key file (KLUIS_BACKUP_SFTP_KEY_FILE): %w", err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		return nil, errors.New("backup: the SFTP key file (KLUIS_BACKUP_SFTP_KEY_FILE) is protected by a passphrase; kluis needs a key without one")
	}
	if err != nil {
		return nil, errors.New("backup: the SFTP key file (KLUIS_BACKUP_SFTP_KEY_FILE) holds no private key kluis can read (OpenSSH or PEM format)")
	}
	return signer, nil
}

// Name implements [Target].
func (t *SFTP) Name() string {
	p := t.base
	if !strings.HasPrefix(p, "/") {
		p = "/~/" + p
	}
	return "sftp://" + t.user + "@" + t.addr + strings.TrimSuffix(p, "/")
}

// Location implements [Target].
func (t *SFTP) Location() string { return t.location }

func (t *SFTP) path(name string) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	if t.base == "" {
		return name, nil
	}
	return path.Join(t.base, name), nil
}

// conn returns the live connection, dialling one when there is none; fresh
// says it was dialled for this call.
func (t *SFTP) conn(ctx context.Context) (c *sftpConn, fresh bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, false, errors.New("the target is closed")
	}
	if t.cur != nil && !t.cur.isDead() {
		return t.cur, false, nil
	}
	if t.cur != nil {
		t.cur.ssh.Close()
		t.cur = nil
	}
	c, err = t.dial(ctx)
	if err != nil {
		return nil, false, err
	}
	t.cur = c
	return c, true, nil
}

// dial connects, checks the host key, logs in and starts the SFTP session,
// all within t.timeout.
func (t *SFTP) dial(ctx context.Context) (*sftpConn, error) {
	d := net.Dialer{Timeout: t.timeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	nc.SetDeadline(time.Now().Add(t.timeout))
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	sc, chans, reqs, err := ssh.NewClientConn(nc, t.addr, t.config)
	if err != nil {
		nc.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, fmt.Errorf("SSH handshake: %w", err)
	}
	client := ssh.NewClient(sc, chans, reqs)
	// Concurrent writes keep a long link busy; a failed Put removes its
	// temporary file, so the holes they may leave never matter.
	s, err := sftp.NewClient(client, sftp.UseConcurrentWrites(true))
	if err != nil {
		client.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, fmt.Errorf("starting SFTP: %w", err)
	}
	if !stop() {
		client.Close()
		return nil, ctx.Err()
	}
	nc.SetDeadline(time.Time{})
	c := &sftpConn{ssh: client, sftp: s, dead: make(chan struct{})}
	go func() {
		client.Wait()
		close(c.dead)
	}()
	go c.keepAlive(t.timeout)
	return c, nil
}

// keepAlive asks the server for a sign of life every interval and closes
// the connection when none comes within interval, so an operation on a
// server that vanished fails instead of waiting forever.
func (c *sftpConn) keepAlive(interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-c.dead:
			return
		case <-tick.C:
		}
		answer := make(chan error, 1)
		go func() {
			_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
			answer <- err
		}()
		timer := time.NewTimer(interval)
		select {
		case err := <-answer:
			timer.Stop()
			if err != nil {
				c.ssh.Close()
				return
			}
		case <-timer.C:
			c.ssh.Close()
			return
		case <-c.dead:
			timer.Stop()
			return
		}
	}
}

// drop forgets c when it is the current connection.
func (t *SFTP) drop(c *sftpConn) {
	c.ssh.Close()
	t.mu.Lock()
	if t.cur == c {
		t.cur = nil
	}
	t.mu.Unlock()
}

// do runs op on a live connection. When the connection turns out to be
// broken, it is dropped; an operation on a connection made earlier is tried
// once more on a new one when retry says nothing was consumed yet.
func (t *SFTP) do(ctx context.Context, retry func() bool, op func(*sftp.Client) error) error {
	for attempt := 0; ; attempt++ {
		c, fresh, err := t.conn(ctx)
		if err != nil {
			return err
		}
		// A cancelled operation ends by closing its connection: the SFTP
		// client has no other way to stop waiting for an answer.
		stop := context.AfterFunc(ctx, func() { c.ssh.Close() })
		err = op(c.sftp)
		closed := !stop()
		if err == nil {
			return nil
		}
		if closed {
			t.drop(c)
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if !c.isDead() && !connLost(err) {
			return err
		}
		t.drop(c)
		if fresh || attempt > 0 || !retry() {
			return fmt.Errorf("connection lost: %w", err)
		}
	}
}

func connLost(err error) bool {
	return errors.Is(err, sftp.ErrSSHFxConnectionLost) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

func always() bool { return true }

// Put implements [Target].
func (t *SFTP) Put(ctx context.Context, name string, r io.Reader) error {
	p, err := t.path(name)
	if err != nil {
		return err
	}
	cr := &countingReader{r: ctxReader{ctx, r}}
	err = t.do(ctx, func() bool { return cr.n == 0 }, func(c *sftp.Client) error {
		return sftpPut(c, p, cr)
	})
	if err != nil {
		return fmt.Errorf("backup: %s: put %s: %w", t.Name(), name, err)
	}
	return nil
}

func sftpPut(c *sftp.Client, p string, r io.Reader) error {
	folder := path.Dir(p)
	if folder != "." {
		if err := c.MkdirAll(folder); err != nil {
			return err
		}
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := path.Join(folder, "."+path.Base(p)+"."+hex.EncodeToString(rnd[:])+".tmp")
	f, err := c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return err
	}
	f.Chmod(0o600) // best effort: not every server keeps modes
	_, err = f.ReadFromWithConcurrency(r, 0)
	if err == nil {
		err = f.Sync()
		if errors.Is(err, fs.ErrInvalid) || isUnsupported(err) {
			err = nil // the server cannot fsync; the rename still keeps objects whole
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if _, ok := c.HasExtension("posix-rename@openssh.com"); ok {
			err = c.PosixRename(tmp, p)
		} else {
			// Plain SFTP rename refuses to replace: remove the old
			// object first (for a moment there is none).
			if rerr := c.Remove(p); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = rerr
			} else {
				err = c.Rename(tmp, p)
			}
		}
	}
	if err != nil {
		c.Remove(tmp) // best effort: on a lost connection it stays, hidden from List
		return err
	}
	return nil
}

func isUnsupported(err error) bool {
	var st *sftp.StatusError
	return errors.As(err, &st) && st.FxCode() == sftp.ErrSSHFxOpUnsupported
}

// Open implements [Target]. The returned reader uses the connection that was
// live when Open was called; closing it early stops the transfer.
func (t *SFTP) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	p, err := t.path(name)
	if err != nil {
		return nil, err
	}
	var f *sftp.File
	err = t.do(ctx, always, func(c *sftp.Client) error {
		var err error
		f, err = c.Open(p)
		if err != nil {
			return err
		}
		// A folder opens too, but it is no object.
		if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
			f.Close()
			if err != nil {
				return err
			}
			return fs.ErrNotExist
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s on %s", ErrNotExist, name, t.Name())
	}
	if err != nil {
		return nil, fmt.Errorf("backup: %s: open %s: %w", t.Name(), name, err)
	}
	// Plain Reads ask for one packet at a time; WriteTo keeps many in
	// flight, which a long link needs to be fast.
	pr, pw := io.Pipe()
	go func() {
		_, err := f.WriteTo(pw)
		f.Close()
		pw.CloseWithError(err)
	}()
	return pr, nil
}

// List implements [Target]. Hidden files (a Put's temporary files among
// them) are not objects.
func (t *SFTP) List(ctx context.Context, prefix string) ([]Object, error) {
	start := ""
	// Walk from the deepest folder the prefix names completely.
	if i := strings.LastIndex(prefix, "/"); i > 0 {
		if err := CheckName(prefix[:i]); err != nil {
			return nil, err
		}
		start = prefix[:i]
	}
	var out []Object
	err := t.do(ctx, always, func(c *sftp.Client) error {
		out = out[:0]
		return t.walk(ctx, c, start, prefix, &out)
	})
	if err != nil {
		return nil, fmt.Errorf("backup: %s: list: %w", t.Name(), err)
	}
	return out, nil
}

// walk adds the objects in folder rel (an object name, "" for the base)
// whose names start with prefix to out.
func (t *SFTP) walk(ctx context.Context, c *sftp.Client, rel, prefix string, out *[]Object) error {
	dir := t.base
	if rel != "" {
		dir = path.Join(t.base, rel)
	}
	if dir == "" {
		dir = "."
	}
	entries, err := c.ReadDirContext(ctx, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		if fi, serr := c.Stat(dir); serr == nil && !fi.IsDir() {
			return nil // the prefix names an object, not a folder
		}
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		name := e.Name()
		if rel != "" {
			name = rel + "/" + name
		}
		if CheckName(name) != nil {
			continue
		}
		switch {
		case e.IsDir():
			// Descend only where names can still match the prefix.
			if strings.HasPrefix(name+"/", prefix) || strings.HasPrefix(prefix, name+"/") {
				if err := t.walk(ctx, c, name, prefix, out); err != nil {
					return err
				}
			}
		case e.Mode().IsRegular() && strings.HasPrefix(name, prefix):
			*out = append(*out, Object{Name: name, Size: e.Size()})
		}
	}
	return nil
}

// Delete implements [Target].
func (t *SFTP) Delete(ctx context.Context, name string) error {
	p, err := t.path(name)
	if err != nil {
		return err
	}
	err = t.do(ctx, always, func(c *sftp.Client) error {
		err := c.Remove(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("backup: %s: delete %s: %w", t.Name(), name, err)
	}
	return nil
}

// Close implements [Target]: it ends the connection; later operations fail.
func (t *SFTP) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	if t.cur != nil {
		t.cur.sftp.Close()
		t.cur.ssh.Close()
		t.cur = nil
	}
	return nil
}

// countingReader counts the bytes read through it, so an operation knows
// whether it may start again.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
