package mail_test

import (
	"bytes"
	"io"
	"mime"
	"mime/quotedprintable"
	netmail "net/mail"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/mail"
)

var testNow = time.Date(2026, 11, 23, 10, 15, 0, 0, time.UTC)

// parseComposed reads msg back with net/mail and decodes its body.
func parseComposed(t *testing.T, msg []byte) (netmail.Header, string) {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("net/mail.ReadMessage: got error %v, want nil", err)
	}
	var r io.Reader
	switch cte := m.Header.Get("Content-Transfer-Encoding"); cte {
	case "quoted-printable":
		r = quotedprintable.NewReader(m.Body)
	case "7bit", "8bit":
		r = m.Body
	default:
		t.Fatalf("Content-Transfer-Encoding: got %q, want 7bit, 8bit or quoted-printable", cte)
	}
	body, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("body: got error %v, want nil", err)
	}
	return m.Header, string(body)
}

func TestComposeRoundTrips(t *testing.T) {
	tests := []struct {
		name    string
		from    string
		to      string
		subject string
		body    string
		wantTo  string
	}{
		{"ASCII", "kluis <noreply@kluis.example.org>", "ann@example.nl", "Invitation to join Acme on kluis",
			"You have been invited.\n\n" + testLink + "\n", "<ann@example.nl>"},
		{"Dutch diacritics", "noreply@kluis.example.org", "ann@example.nl", "Één uitnodiging voor Café Noël",
			"Één twee drie: ĳs, café, naïef.\nEen regel met spaties aan het eind   \n", "<ann@example.nl>"},
		{"display name of recipient is dropped (R3, R40)", "noreply@kluis.example.org", "Ann de Vries <ann@example.nl>", "Notice",
			"text\n", "<ann@example.nl>"},
		{"long lines and equals signs", "noreply@kluis.example.org", "ann@example.nl", strings.Repeat("é", 100),
			strings.Repeat("a=b ", 60) + "\n" + testLink + "?x=1&y=2\n", "<ann@example.nl>"},
		{"body without final newline", "noreply@kluis.example.org", "ann@example.nl", "Notice", "text", "<ann@example.nl>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, id, err := mail.Compose(tt.from, tt.to, tt.subject, tt.body, testNow)
			if err != nil {
				t.Fatalf("Compose: got error %v, want nil", err)
			}
			if bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\n")) {
				t.Errorf("message: got a bare LF in %q, want CRLF line endings only", msg)
			}
			for _, line := range strings.Split(string(msg), "\r\n") {
				if len(line) > 998 {
					t.Errorf("line length: got %d, want ≤ 998", len(line))
				}
			}
			if !regexp.MustCompile(`^<[0-9a-f]{32}@kluis\.example\.org>$`).MatchString(id) {
				t.Errorf("message id: got %q, want <32 hex@kluis.example.org>", id)
			}
			if strings.Contains(tt.body, testLink+"\n") && !bytes.Contains(msg, []byte("\r\n"+testLink+"\r\n")) {
				t.Errorf("raw message: the link is not whole on a line of its own")
			}
			h, body := parseComposed(t, msg)
			wantBody := strings.ReplaceAll(tt.body, "\n", "\r\n")
			if !strings.HasSuffix(wantBody, "\r\n") {
				wantBody += "\r\n"
			}
			dec := new(mime.WordDecoder)
			subject, err := dec.DecodeHeader(h.Get("Subject"))
			if err != nil {
				t.Fatalf("Subject: got error %v, want nil", err)
			}
			from, err := h.AddressList("From")
			if err != nil || len(from) != 1 {
				t.Fatalf("From: got %v, %v, want one address", from, err)
			}
			wantFrom, _ := netmail.ParseAddress(tt.from)
			date, err := h.Date()
			if err != nil {
				t.Fatalf("Date: got error %v, want nil", err)
			}
			checks := []struct{ field, got, want string }{
				{"body", body, wantBody},
				{"Subject", subject, tt.subject},
				{"From", from[0].String(), wantFrom.String()},
				{"To", h.Get("To"), tt.wantTo},
				{"Message-ID", h.Get("Message-ID"), id},
				{"Date", date.UTC().Format(time.RFC3339), testNow.Format(time.RFC3339)},
				{"MIME-Version", h.Get("MIME-Version"), "1.0"},
				{"Content-Type", h.Get("Content-Type"), "text/plain; charset=utf-8"},
				{"Auto-Submitted", h.Get("Auto-Submitted"), "auto-generated"},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s: got %q, want %q", c.field, c.got, c.want)
				}
			}
		})
	}
}

func TestComposeUniqueMessageIDs(t *testing.T) {
	_, first, err := mail.Compose("noreply@kluis.example.org", "ann@example.nl", "s", "b", testNow)
	if err != nil {
		t.Fatalf("Compose: got error %v, want nil", err)
	}
	_, second, err := mail.Compose("noreply@kluis.example.org", "ann@example.nl", "s", "b", testNow)
	if err != nil {
		t.Fatalf("Compose: got error %v, want nil", err)
	}
	if first == second {
		t.Errorf("message ids: got %q twice, want different ids", first)
	}
}

func TestComposeRefusesInjectionAndBadAddresses(t *testing.T) {
	const (
		from = "noreply@kluis.example.org"
		to   = "ann@example.nl"
	)
	tests := []struct {
		name                    string
		from, to, subject, body string
	}{
		{"LF in subject", from, to, "Hello\nBcc: eve@evil.example", "b"},
		{"CRLF in subject", from, to, "Hello\r\nBcc: eve@evil.example", "b"},
		{"CR in subject", from, to, "Hello\rBcc: eve@evil.example", "b"},
		{"LF in recipient", from, "ann@example.nl\nBcc: eve@evil.example", "s", "b"},
		{"CRLF in sender", "noreply@kluis.example.org\r\nBcc: eve@evil.example", to, "s", "b"},
		{"recipient without @", from, "ann.example.nl", "s", "b"},
		{"two recipients", from, "ann@example.nl, eve@evil.example", "s", "b"},
		{"empty recipient", from, "", "s", "b"},
		{"invalid sender", "noreply at kluis", to, "s", "b"},
		{"subject too long", from, to, strings.Repeat("s", 901), "b"},
		{"invalid UTF-8 body", from, to, "s", "\xff\xfe"},
		{"invalid UTF-8 subject", from, to, "\xff", "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, id, err := mail.Compose(tt.from, tt.to, tt.subject, tt.body, testNow)
			if err == nil {
				t.Fatalf("Compose: got message %q, want an error", msg)
			}
			if msg != nil || id != "" {
				t.Errorf("Compose: got %q, %q, want nothing with the error", msg, id)
			}
			for _, addr := range []string{"ann", "eve", "noreply"} {
				if strings.Contains(err.Error(), addr) {
					t.Errorf("error: got %q, want no address in it (R45)", err)
				}
			}
		})
	}
}
