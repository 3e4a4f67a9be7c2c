package mail_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/mail"
)

const (
	envelopeFrom = "noreply@kluis.example.org"
	recipient    = "ann.de.vries@example.nl"
)

// composeTest builds a notice the way kluis does: Render, then Compose.
func composeTest(t *testing.T) []byte {
	t.Helper()
	subject, body, err := mail.Render(mail.Invitation, "nl", mail.Data{OrgName: "Zorggroep Één", Link: testLink})
	if err != nil {
		t.Fatalf("Render: got error %v, want nil", err)
	}
	msg, _, err := mail.Compose("kluis <"+envelopeFrom+">", recipient, subject, body, time.Now())
	if err != nil {
		t.Fatalf("Compose: got error %v, want nil", err)
	}
	return msg
}

// checkArrivedIntact compares a maildir message with what was sent: the
// same bytes, apart from LF line endings and the X-Peer, X-MailFrom and
// X-RcptTo headers aiosmtpd adds, which must name the envelope.
func checkArrivedIntact(t *testing.T, got, sent []byte, rcpts ...string) {
	t.Helper()
	head, body, ok := bytes.Cut(got, []byte("\n\n"))
	if !ok {
		t.Fatalf("stored message: got %q, want a header and a body", got)
	}
	var kept []string
	trace := map[string]string{}
	for _, line := range strings.Split(string(head), "\n") {
		name, value, _ := strings.Cut(line, ": ")
		switch name {
		case "X-Peer", "X-MailFrom", "X-RcptTo":
			trace[name] = value
		default:
			kept = append(kept, line)
		}
	}
	stripped := strings.Join(kept, "\n") + "\n\n" + string(body)
	want := strings.ReplaceAll(string(sent), "\r\n", "\n")
	if stripped != want {
		t.Errorf("stored message:\ngot  %q\nwant %q", stripped, want)
	}
	if got := trace["X-MailFrom"]; got != envelopeFrom {
		t.Errorf("envelope sender: got %q, want %q", got, envelopeFrom)
	}
	if got, want := trace["X-RcptTo"], strings.Join(rcpts, ", "); got != want {
		t.Errorf("envelope recipients: got %q, want %q", got, want)
	}
}

func TestSMTPDeliversToRealServer(t *testing.T) { // R45 messages arrive as composed
	tests := []struct {
		name      string
		url       string // %d is the port
		rcpts     []string
		wantRcpts []string
	}{
		{"loopback, plain as the server offers no STARTTLS", "smtp://127.0.0.1:%d", []string{recipient}, []string{recipient}},
		{"loopback, tls=none", "smtp://127.0.0.1:%d?tls=none", []string{recipient}, []string{recipient}},
		{"localhost, two recipients", "smtp://localhost:%d", []string{recipient, "Bob <bob@example.nl>"},
			[]string{recipient, "bob@example.nl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := freePort(t)
			maildir := t.TempDir()
			startAiosmtpd(t, port, maildir)
			var logs bytes.Buffer
			s, err := mail.NewSMTP(fmt.Sprintf(tt.url, port), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			if err != nil {
				t.Fatalf("NewSMTP: got error %v, want nil", err)
			}
			msg := composeTest(t)
			if err := s.Send(context.Background(), envelopeFrom, tt.rcpts, msg); err != nil {
				t.Fatalf("Send: got error %v, want nil", err)
			}
			got := readMaildir(t, maildir)
			if len(got) != 1 {
				t.Fatalf("messages in maildir: got %d, want 1", len(got))
			}
			checkArrivedIntact(t, got[0], msg, tt.wantRcpts...)
			if !strings.Contains(logs.String(), "message_id=") {
				t.Errorf("logs: got %q, want the message id", logs.String())
			}
			for _, secret := range []string{"ann.de.vries", "bob@", "Zorggroep", "invite"} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("logs: got %q, want no %q (R45)", logs.String(), secret)
				}
			}
		})
	}
}

func TestSMTPStartTLS(t *testing.T) {
	requireAiosmtpd(t)
	certFile, keyFile, pool := testCertificate(t, t.TempDir())
	port := freePort(t)
	maildir := t.TempDir()
	// This server refuses mail before STARTTLS.
	startAiosmtpd(t, port, maildir, "--tlscert", certFile, "--tlskey", keyFile)

	tests := []struct {
		name     string
		url      string
		trust    bool
		wantSent bool
	}{
		{"loopback uses STARTTLS when offered", "smtp://127.0.0.1:%d", true, true},
		{"tls=starttls", "smtp://127.0.0.1:%d?tls=starttls", true, true},
		{"untrusted certificate fails, no fallback to plain", "smtp://127.0.0.1:%d", false, false},
		{"tls=none is refused by the server", "smtp://127.0.0.1:%d?tls=none", true, false},
	}
	delivered := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := mail.NewSMTP(fmt.Sprintf(tt.url, port), nil)
			if err != nil {
				t.Fatalf("NewSMTP: got error %v, want nil", err)
			}
			if tt.trust {
				mail.SetRootCAs(s, pool)
			}
			msg := composeTest(t)
			err = s.Send(context.Background(), envelopeFrom, []string{recipient}, msg)
			if (err == nil) != tt.wantSent {
				t.Fatalf("Send: got error %v, want sent: %v", err, tt.wantSent)
			}
			if err != nil {
				checkErrorReveals(t, err)
				return
			}
			delivered++
			got := readMaildir(t, maildir)
			if len(got) != delivered {
				t.Fatalf("messages in maildir: got %d, want %d", len(got), delivered)
			}
			checkArrivedIntact(t, got[delivered-1], msg, recipient)
		})
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	requireAiosmtpd(t)
	certFile, keyFile, pool := testCertificate(t, t.TempDir())
	port := freePort(t)
	maildir := t.TempDir()
	startAiosmtpd(t, port, maildir, "--smtpscert", certFile, "--smtpskey", keyFile)

	s, err := mail.NewSMTP(fmt.Sprintf("smtps://127.0.0.1:%d", port), nil)
	if err != nil {
		t.Fatalf("NewSMTP: got error %v, want nil", err)
	}
	msg := composeTest(t)
	err = s.Send(context.Background(), envelopeFrom, []string{recipient}, msg)
	if err == nil {
		t.Fatalf("Send with an untrusted certificate: got nil error, want one")
	}
	checkErrorReveals(t, err)

	mail.SetRootCAs(s, pool)
	if err := s.Send(context.Background(), envelopeFrom, []string{recipient}, msg); err != nil {
		t.Fatalf("Send: got error %v, want nil", err)
	}
	got := readMaildir(t, maildir)
	if len(got) != 1 {
		t.Fatalf("messages in maildir: got %d, want 1", len(got))
	}
	checkArrivedIntact(t, got[0], msg, recipient)
}

func TestSMTPAuthPlain(t *testing.T) {
	const (
		user     = "kluis"
		password = "s3cret p@ss"
	)
	port := freePort(t)
	maildir := t.TempDir()
	startAiosmtpdWithAuth(t, port, maildir, user, password)

	tests := []struct {
		name     string
		userinfo string
		wantSent bool
	}{
		{"right password", "kluis:s3cret%20p%40ss@", true},
		{"wrong password", "kluis:wrong%20p%40ss@", false},
		{"no credentials", "", false},
	}
	delivered := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := mail.NewSMTP(fmt.Sprintf("smtp://%s127.0.0.1:%d", tt.userinfo, port), nil)
			if err != nil {
				t.Fatalf("NewSMTP: got error %v, want nil", err)
			}
			msg := composeTest(t)
			err = s.Send(context.Background(), envelopeFrom, []string{recipient}, msg)
			if (err == nil) != tt.wantSent {
				t.Fatalf("Send: got error %v, want sent: %v", err, tt.wantSent)
			}
			if err != nil {
				checkErrorReveals(t, err)
				for _, secret := range []string{"s3cret", "wrong p"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error: got %q, want no password", err)
					}
				}
				return
			}
			delivered++
			if got := readMaildir(t, maildir); len(got) != delivered {
				t.Fatalf("messages in maildir: got %d, want %d", len(got), delivered)
			}
		})
	}
}

func TestSMTPRequiredStartTLSNotOffered(t *testing.T) {
	port := freePort(t)
	maildir := t.TempDir()
	startAiosmtpd(t, port, maildir)
	s, err := mail.NewSMTP(fmt.Sprintf("smtp://127.0.0.1:%d?tls=starttls", port), nil)
	if err != nil {
		t.Fatalf("NewSMTP: got error %v, want nil", err)
	}
	err = s.Send(context.Background(), envelopeFrom, []string{recipient}, composeTest(t))
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("Send: got error %v, want one about STARTTLS", err)
	}
	if got := readMaildir(t, maildir); len(got) != 0 {
		t.Errorf("messages in maildir: got %d, want 0", len(got))
	}
}

// checkErrorReveals fails when err names an address (R45).
func checkErrorReveals(t *testing.T, err error) {
	t.Helper()
	for _, secret := range []string{"ann.de.vries", "example.nl", "noreply@"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error: got %q, want no address in it (R45)", err)
		}
	}
}

// TestSMTPHonoursContext uses a server that accepts connections and never
// answers: Send must return when the context ends.
func TestSMTPHonoursContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, conn)
		}
	}()
	s, err := mail.NewSMTP("smtp://"+l.Addr().String(), nil)
	if err != nil {
		t.Fatalf("NewSMTP: got error %v, want nil", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Send(ctx, envelopeFrom, []string{recipient}, []byte("x"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send: got error %v, want %v", err, context.DeadlineExceeded)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Send took %v, want it to stop soon after the deadline", elapsed)
	}
}

func TestSMTPRefusesBadEnvelope(t *testing.T) {
	s, err := mail.NewSMTP("smtp://127.0.0.1:1", nil)
	if err != nil {
		t.Fatalf("NewSMTP: got error %v, want nil", err)
	}
	tests := []struct {
		name string
		from string
		to   []string
	}{
		{"no recipients", envelopeFrom, nil},
		{"invalid recipient", envelopeFrom, []string{recipient, "ann.de.vries at example.nl"}},
		{"line break in recipient", envelopeFrom, []string{recipient + "\r\nRCPT TO:<eve@evil.example>"}},
		{"invalid sender", "noreply at kluis", []string{recipient}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Send(context.Background(), tt.from, tt.to, []byte("x"))
			if err == nil {
				t.Fatalf("Send: got nil error, want one")
			}
			checkErrorReveals(t, err)
			if strings.Contains(err.Error(), "ann.de.vries") || strings.Contains(err.Error(), "noreply") {
				t.Errorf("error: got %q, want no address", err)
			}
		})
	}
}

func TestNewSMTP(t *testing.T) {
	tests := []struct {
		url        string
		wantErr    bool
		wantString string
	}{
		{"smtp://mail.example.org", false, "smtp://mail.example.org"},
		{"smtp://mail.example.org:25?tls=starttls", false, "smtp://mail.example.org:25?tls=starttls"},
		{"smtps://kluis:hunter2@mail.example.org", false, "smtps://kluis:xxxxx@mail.example.org"},
		{"smtp://kluis:hunter2@127.0.0.1:2525?tls=none", false, "smtp://kluis:xxxxx@127.0.0.1:2525?tls=none"},
		{"smtp://[::1]:2525?tls=none", false, "smtp://[::1]:2525?tls=none"},
		{"smtp://localhost?tls=none", false, "smtp://localhost?tls=none"},
		{"smtp://mail.example.org?tls=none", true, ""},
		{"smtp://10.0.0.5?tls=none", true, ""},
		{"smtp://mail.example.org?tls=maybe", true, ""},
		{"smtp://mail.example.org?starttls=optional", true, ""},
		{"smtps://mail.example.org?tls=starttls", true, ""},
		{"http://mail.example.org", true, ""},
		{"mail.example.org:587", true, ""},
		{"smtp://", true, ""},
		{"smtp://kluis:hunter2@", true, ""},
		{"smtp://mail.example.org:0", true, ""},
		{"smtp://mail.example.org:70000", true, ""},
		{"smtp://mail.example.org/path", true, ""},
		{"smtp://kluis:hunter2@mail.example.org:bad", true, ""},
		{"smtp://kluis:hunter2@mail.example.org/%zz", true, ""},
		{"smtp://kluis:hunter2@mail.example.org?tls=none", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			s, err := mail.NewSMTP(tt.url, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewSMTP: got error %v, want error: %v", err, tt.wantErr)
			}
			if err != nil {
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error: got %q, want no password", err)
				}
				return
			}
			var logs bytes.Buffer
			slog.New(slog.NewJSONHandler(&logs, nil)).Info("configured", "smtp", s)
			for _, shown := range []string{s.String(), fmt.Sprint(s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), logs.String()} {
				if strings.Contains(shown, "hunter2") {
					t.Errorf("shown: got %q, want the password redacted", shown)
				}
			}
			if got := s.String(); got != tt.wantString {
				t.Errorf("String: got %q, want %q", got, tt.wantString)
			}
		})
	}
}
