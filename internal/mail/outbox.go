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

	"github.com/kluis/kluis/internal/secretfile"
)

// Outbox is a Sender for development and for installations without an SMTP
// server: it writes every message as an RFC 5322 file Dir/NAME.eml, where
// NAME is a UTC time stamp and a random part, such as
// 20261123T101500.123456Z-0a1b2c3d, never an address (CONTRACT "Links and
// mail"). Files appear
// whole: they are written under a temporary name starting with "." and then
// linked into place (secretfile.Create). The folder is created with mode
// 0700 and files with mode 0600.
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
	if err := secretfile.Create(path, msg); err != nil {
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

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
