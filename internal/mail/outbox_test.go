package mail_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/mail"
)

var outboxName = regexp.MustCompile(`^\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{8}\.eml$`)

func TestOutboxWritesFiles(t *testing.T) { // CONTRACT "Links and mail", R45
	dir := filepath.Join(t.TempDir(), "outbox") // created by Send
	var logs bytes.Buffer
	o := &mail.Outbox{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))}

	const (
		to   = "ann.de.vries@example.nl"
		body = "Één geheime zin\n"
	)
	var sent [][]byte
	for range 3 {
		msg, _, err := mail.Compose("noreply@kluis.example.org", to, "Uitnodiging", body, testNow)
		if err != nil {
			t.Fatalf("Compose: got error %v, want nil", err)
		}
		if err := o.Send(context.Background(), "noreply@kluis.example.org", []string{to}, msg); err != nil {
			t.Fatalf("Send: got error %v, want nil", err)
		}
		sent = append(sent, msg)
	}

	info, err := os.Stat(dir)
	if err != nil {
		t.Fatalf("Stat(outbox): got error %v, want nil", err)
	}
	if got := info.Mode().Perm(); got != 0o700 {
		t.Errorf("outbox mode: got %o, want 700", got)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("ReadDir: got error %v, want nil", err)
	}
	if len(entries) != len(sent) {
		t.Fatalf("files: got %d, want %d (and no temporary files)", len(entries), len(sent))
	}
	for _, e := range entries {
		if !outboxName.MatchString(e.Name()) {
			t.Errorf("file name: got %q, want a match for %s", e.Name(), outboxName)
		}
		info, err := e.Info()
		if err != nil {
			t.Fatalf("Info: got error %v, want nil", err)
		}
		if got := info.Mode().Perm(); got != 0o600 {
			t.Errorf("file mode of %s: got %o, want 600", e.Name(), got)
		}
		content, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatalf("ReadFile: got error %v, want nil", err)
		}
		found := false
		for _, msg := range sent {
			found = found || bytes.Equal(content, msg)
		}
		if !found {
			t.Errorf("file %s: got content %q, want one of the sent messages", e.Name(), content)
		}
		if !strings.Contains(logs.String(), e.Name()) {
			t.Errorf("logs: got %q, want the path of %s", logs.String(), e.Name())
		}
	}
	for _, secret := range []string{"ann.de.vries", "example.nl", "geheime", "Uitnodiging"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("logs: got %q, want no %q (R45)", logs.String(), secret)
		}
	}
	if !strings.Contains(logs.String(), "mail written to outbox") {
		t.Errorf("logs: got %q, want %q", logs.String(), "mail written to outbox")
	}
}

func TestOutboxRefuses(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		dir     string
		ctx     context.Context
		wantErr error
	}{
		{"no directory", "", context.Background(), nil},
		{"directory is a file", blocker, context.Background(), nil},
		{"cancelled context", t.TempDir(), cancelled, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &mail.Outbox{Dir: tt.dir}
			err := o.Send(tt.ctx, "noreply@kluis.example.org", []string{"ann@example.nl"}, []byte("x"))
			if err == nil {
				t.Fatalf("Send: got nil error, want one")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Send: got error %v, want %v", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "ann@") {
				t.Errorf("error: got %q, want no address in it", err)
			}
		})
	}
}
