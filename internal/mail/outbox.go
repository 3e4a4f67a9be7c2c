package mail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Outbox is a Sender for development and for installations without an SMTP
// server: it writes every message as an RFC 5322 file Dir/NAME.eml, where
// NAME is a UTC time stamp and a random part, such as
// 20261123T101500.123456Z-0a1b2c3d, never an address (CONTRACT "Links and
// mail"). Files appear
// whole: they are written under a temporary name starting with "." and then
// renamed. The folder is created with mode 0700 and files with mode 0600.
//
// The envelope is not recorded; the message's own headers name sender and
// recipient.
type Outbox struct {
	Dir    string
	Logger *slog.Logger // nil discards log lines
}

// Send writes msg to a new file in o.Dir and logs its path and message id.
func (o *Outbox) Send(ctx context.Context, from string, to []string, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mail: outbox: %w", err)
	}
	if o.Dir == "" {
		return errors.New("mail: outbox: no directory")
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return fmt.Errorf("mail: outbox: %w", err)
	}
	path := filepath.Join(o.Dir, outboxName(time.Now()))
	if err := writeFileAtomic(path, msg); err != nil {
		return fmt.Errorf("mail: outbox: %w", err)
	}
	logger(o.Logger).InfoContext(ctx, "mail written to outbox", "path", path, "message_id", messageIDOf(msg))
	return nil
}

// outboxName returns a file name that sorts by time and never repeats in
// practice: microseconds plus 32 random bits.
func outboxName(now time.Time) string {
	random := make([]byte, 4)
	rand.Read(random)
	return now.UTC().Format("20060102T150405.000000") + "Z-" + hex.EncodeToString(random) + ".eml"
}

// writeFileAtomic writes data to a hidden temporary file next to path,
// syncs it and renames it to path, so readers never see a partial file.
func writeFileAtomic(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*") // not *.eml: readers of the outbox must never see a half-written message
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
