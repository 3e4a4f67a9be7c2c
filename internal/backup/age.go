package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
)

// ParseRecipients parses the comma-separated age recipients of
// KLUIS_BACKUP_RECIPIENTS ("age1…" X25519 public keys). Every object a
// target holds is encrypted to all of them: any one of the matching
// identities opens it with the standard age command.
func ParseRecipients(list string) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			return nil, fmt.Errorf("backup: a recipient is not an age public key (age1…): %w", err)
		}
		out = append(out, r)
	}
	return out, nil
}

// LoadIdentities reads age identities (AGE-SECRET-KEY-1…) from a file, as
// age-keygen writes them.
func LoadIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("backup: reading the identity file: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("backup: the identity file holds no age identity: %w", err)
	}
	return ids, nil
}

// LoadOrCreateDrillIdentity reads the drill key at path, creating it (mode
// 0600) when missing. The drill key lets the server itself open its
// backups to verify them and to rehearse restores; it protects nothing the
// server does not already hold. Two processes starting at once on one data
// folder get the same key: it is written whole to a temporary file and
// linked into place, which fails for the second, who then reads the first's.
func LoadOrCreateDrillIdentity(path string) (*age.X25519Identity, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := createDrillIdentity(path); err != nil {
			return nil, err
		}
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("backup: reading the drill key: %w", err)
	}
	ids, err := age.ParseIdentities(strings.NewReader(string(b)))
	if err != nil || len(ids) != 1 {
		return nil, errors.New("backup: the drill key file does not hold one age identity")
	}
	id, ok := ids[0].(*age.X25519Identity)
	if !ok {
		return nil, errors.New("backup: the drill key is not an X25519 age identity")
	}
	return id, nil
}

// createDrillIdentity writes a new drill key to path unless one got there
// first.
func createDrillIdentity(path string) error {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".drill-*.tmp")
	if err != nil {
		return fmt.Errorf("backup: creating the drill key: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = fmt.Fprintf(f, "# kluis backup drill key: opens this server's backups for verification and drills\n# public key: %s\n%s\n", id.Recipient(), id)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: creating the drill key: %w", err)
	}
	if err := os.Link(f.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("backup: creating the drill key: %w", err)
	}
	return nil
}

// Written is what writing one object produced: its name, the SHA-256 of the
// bytes the target holds (the ciphertext) and their size.
type Written struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Encrypt writes the object name to t: write's output, encrypted with age
// to recipients, streamed (memory stays bounded whatever the size). It
// returns the hash and size of what the target holds.
func Encrypt(ctx context.Context, t Target, name string, recipients []age.Recipient, write func(w io.Writer) error) (Written, error) {
	if len(recipients) == 0 {
		return Written{}, errors.New("backup: no age recipients")
	}
	pr, pw := io.Pipe()
	h := sha256.New()
	cnt := &counter{}
	go func() {
		enc, err := age.Encrypt(io.MultiWriter(pw, h, cnt), recipients...)
		if err == nil {
			err = write(enc)
			if cerr := enc.Close(); err == nil {
				err = cerr
			}
		}
		pw.CloseWithError(err)
	}()
	err := t.Put(ctx, name, pr)
	pr.CloseWithError(errors.New("backup: the target stopped reading"))
	if err != nil {
		return Written{}, err
	}
	return Written{Name: name, SHA256: hex.EncodeToString(h.Sum(nil)), Size: cnt.n}, nil
}

// Copy writes the object name to t from r, which is already encrypted (a
// file made by EncryptFile), and checks that the target received exactly
// what was sent.
func Copy(ctx context.Context, t Target, name string, r io.Reader, want Written) (Written, error) {
	h := sha256.New()
	cnt := &counter{}
	if err := t.Put(ctx, name, io.TeeReader(r, io.MultiWriter(h, cnt))); err != nil {
		return Written{}, err
	}
	got := Written{Name: name, SHA256: hex.EncodeToString(h.Sum(nil)), Size: cnt.n}
	if want.SHA256 != "" && (got.SHA256 != want.SHA256 || got.Size != want.Size) {
		return got, fmt.Errorf("backup: %s changed while it was copied", name)
	}
	return got, nil
}

// ErrDamaged means an object does not hold what the backup recorded: its
// hash or size differ, or age refuses it (a changed or truncated
// ciphertext).
var ErrDamaged = errors.New("backup: damaged object")

// Decrypt opens the object name of t with identities and checks, as it is
// read, that it is the object recorded in want (its hash and size; want
// with an empty hash checks nothing). The hash is checked at the end of the
// stream: the returned reader's last Read returns ErrDamaged for a
// different object, and age's own authentication refuses a changed
// ciphertext earlier.
func Decrypt(ctx context.Context, t Target, name string, identities []age.Identity, want Written) (io.ReadCloser, error) {
	rc, err := t.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	cr := &checkReader{r: rc, h: sha256.New(), want: want, name: name}
	plain, err := age.Decrypt(cr, identities...)
	if err != nil {
		rc.Close()
		if errors.Is(err, ErrDamaged) {
			return nil, err
		}
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return nil, fmt.Errorf("backup: %s: none of the identities given opens it", name)
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrDamaged, name, err)
	}
	return &plainReader{r: plain, c: rc, check: cr, name: name}, nil
}

// Check reads the object name of t to its end without decrypting it and
// reports ErrDamaged unless its hash and size are want's.
func Check(ctx context.Context, t Target, name string, want Written) error {
	rc, err := t.Open(ctx, name)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx, rc})
	if err != nil {
		return err
	}
	if n != want.Size || hex.EncodeToString(h.Sum(nil)) != want.SHA256 {
		return fmt.Errorf("%w: %s", ErrDamaged, name)
	}
	return nil
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// checkReader hashes the ciphertext as age reads it.
type checkReader struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	want Written
	name string
	eof  bool
}

func (c *checkReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	if err == io.EOF {
		c.eof = true
		if c.want.SHA256 != "" && (c.n != c.want.Size || hex.EncodeToString(c.h.Sum(nil)) != c.want.SHA256) {
			return n, fmt.Errorf("%w: %s", ErrDamaged, c.name)
		}
	}
	return n, err
}

// plainReader is the decrypted stream; at its end it makes sure the whole
// ciphertext was read and matched.
type plainReader struct {
	r     io.Reader
	c     io.Closer
	check *checkReader
	name  string
}

func (p *plainReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if err == io.EOF && !p.check.eof {
		// age stops at its last chunk; read what may follow it.
		var rest [1]byte
		if m, rerr := p.check.Read(rest[:]); m > 0 {
			return n, fmt.Errorf("%w: %s: bytes after the end of the encrypted stream", ErrDamaged, p.name)
		} else if rerr != nil && rerr != io.EOF {
			return n, rerr
		}
	}
	if err != nil && err != io.EOF && !errors.Is(err, ErrDamaged) {
		return n, fmt.Errorf("%w: %s: %v", ErrDamaged, p.name, err)
	}
	return n, err
}

func (p *plainReader) Close() error { return p.c.Close() }

// EncryptFile writes write's output, encrypted with age to recipients, to
// a new file at path (mode 0600), and returns its hash and size: a run's
// streams are encrypted once and copied to every target.
func EncryptFile(path string, recipients []age.Recipient, write func(w io.Writer) error) (Written, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Written{}, err
	}
	h := sha256.New()
	cnt := &counter{}
	enc, err := age.Encrypt(io.MultiWriter(f, h, cnt), recipients...)
	if err == nil {
		err = write(enc)
		if cerr := enc.Close(); err == nil {
			err = cerr
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return Written{}, err
	}
	return Written{SHA256: hex.EncodeToString(h.Sum(nil)), Size: cnt.n}, nil
}

// EncryptBytes encrypts b with age to recipients in memory (a chunk, at
// most a few MiB).
func EncryptBytes(b []byte, recipients []age.Recipient) ([]byte, string, error) {
	var buf bytes.Buffer
	buf.Grow(len(b) + len(b)/64*16 + 1024)
	enc, err := age.Encrypt(&buf, recipients...)
	if err != nil {
		return nil, "", err
	}
	if _, err := enc.Write(b); err != nil {
		return nil, "", err
	}
	if err := enc.Close(); err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), hex.EncodeToString(sum[:]), nil
}
