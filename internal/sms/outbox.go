package sms

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kluis/kluis/internal/secretfile"
)

// Outbox is a Sender for development and tests: it writes every message as
// a file Dir/NAME.sms, where NAME is a UTC time stamp and a random part
// (never the number). The file holds "To: NUMBER", an empty line and the
// text. Files appear whole (written under a hidden temporary name, then
// linked into place by secretfile.Create); the folder is created with mode 0700
// and files with mode 0600.
// Only the file's name is logged.
type Outbox struct {
	Dir    string
	Logger *slog.Logger // nil discards log lines
}

// Send writes the message to a new file in o.Dir.
func (o *Outbox) Send(ctx context.Context, to, text string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sms: outbox: %w", err)
	}
	if o.Dir == "" {
		return errors.New("sms: outbox: no directory")
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return fmt.Errorf("sms: outbox: %w", err)
	}
	path := filepath.Join(o.Dir, outboxName(time.Now()))
	if err := secretfile.Create(path, []byte("To: "+to+"\n\n"+text+"\n")); err != nil {
		return fmt.Errorf("sms: outbox: %w", err)
	}
	logger(o.Logger).InfoContext(ctx, "sms written to outbox", "file", filepath.Base(path))
	return nil
}

// OutboxMessage is one message file of an Outbox.
type OutboxMessage struct {
	Name string // the file name, NAME.sms
	To   string
	Text string
}

// ReadOutbox returns the messages in dir, oldest first.
func ReadOutbox(dir string) ([]OutboxMessage, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []OutboxMessage
	for _, e := range entries { // ReadDir sorts by name: by time
		if e.IsDir() || filepath.Ext(e.Name()) != ".sms" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		var m OutboxMessage
		m.Name = e.Name()
		head, text, ok := strings.Cut(string(b), "\n\n")
		if !ok {
			return nil, fmt.Errorf("sms: outbox file %s is not a message", e.Name())
		}
		m.To = strings.TrimPrefix(head, "To: ")
		m.Text = strings.TrimSuffix(text, "\n")
		out = append(out, m)
	}
	return out, nil
}

// outboxName returns a file name that sorts by time and never repeats in
// practice: microseconds plus 32 random bits.
func outboxName(now time.Time) string {
	random := make([]byte, 4)
	rand.Read(random)
	return now.UTC().Format("20060102T150405.000000") + "Z-" + hex.EncodeToString(random) + ".sms"
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
