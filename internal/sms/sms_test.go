package sms_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/sms"
)

func TestParseNumberAcceptsOnlyInternationalNumbers(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"+31612345678", "+31612345678"},
		{" +31 6 1234-5678 ", "+31612345678"},
		{"+1 (415) 555.0100", "+14155550100"},
		{"0031612345678", "+31612345678"},
		{"0612345678", ""},        // no country code
		{"+0612345678", ""},       // a country code never starts with 0
		{"+3161234", ""},          // too short
		{"+3161234567890123", ""}, // more than 15 digits
		{"+31 6 1234567a", ""},
		{"", ""},
		{"+", ""},
	} {
		got, err := sms.ParseNumber(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseNumber(%q) = %q, want an error", tt.in, got)
			} else if strings.Contains(err.Error(), strings.TrimSpace(tt.in)) && strings.TrimSpace(tt.in) != "" && tt.in != "+" {
				t.Errorf("ParseNumber(%q): error %q repeats the number", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseNumber(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestMaskKeepsTheCountryAndTheLastTwoDigits(t *testing.T) {
	if got := sms.Mask("+31612345678"); got != "+3********78" {
		t.Errorf("Mask = %q, want +3********78", got)
	}
}

func TestCodesAreSixRandomDigits(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		c := sms.NewCode()
		if len(c) != sms.CodeDigits || strings.Trim(c, "0123456789") != "" {
			t.Fatalf("NewCode() = %q, want six digits", c)
		}
		seen[c] = true
	}
	if len(seen) < 190 {
		t.Errorf("%d different codes in 200, want nearly all different", len(seen))
	}
	if got := sms.CodeText("nl", "123456", "kluis.example"); !strings.Contains(got, "123456") || !strings.HasSuffix(got, "\n\n@kluis.example #123456") {
		t.Errorf("CodeText = %q, want the code and the origin-bound last line", got)
	}
}

// The development outbox writes one private file per message, named
// without the number, and logs nothing of the message.
func TestOutboxWritesOnePrivateFilePerMessage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sms")
	var log bytes.Buffer
	o := &sms.Outbox{Dir: dir, Logger: slog.New(slog.NewTextHandler(&log, nil))}
	for _, text := range []string{"first 111111", "second 222222"} {
		if err := o.Send(context.Background(), "+31612345678", text); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := sms.ReadOutbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].To != "+31612345678" || msgs[0].Text != "first 111111" || msgs[1].Text != "second 222222" {
		t.Fatalf("outbox holds %+v", msgs)
	}
	for _, m := range msgs {
		if strings.Contains(m.Name, "612345678") {
			t.Errorf("file name %q holds the number", m.Name)
		}
		fi, err := os.Stat(filepath.Join(dir, m.Name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", m.Name, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("the outbox folder has mode %v, want 0700", fi.Mode().Perm())
	}
	for _, s := range []string{"612345678", "111111", "first"} {
		if strings.Contains(log.String(), s) {
			t.Errorf("the log holds %q: %s", s, log.String())
		}
	}
}

// gateway is an SMS gateway for the tests: it records what it got and
// answers status.
type gateway struct {
	mu     sync.Mutex
	status int
	got    []struct{ auth, contentType, body string }
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.got = append(g.got, struct{ auth, contentType, body string }{r.Header.Get("Authorization"), r.Header.Get("Content-Type"), string(b)})
	w.WriteHeader(g.status)
	// A gateway's error often quotes the message.
	w.Write([]byte(`{"error":"cannot deliver to +31612345678: ` + string(b) + `"}`))
}

func TestHTTPProviderPostsJSONWithTheBearerToken(t *testing.T) {
	g := &gateway{status: http.StatusAccepted}
	srv := httptest.NewServer(g)
	defer srv.Close()
	p, err := sms.NewHTTPProvider(srv.URL+"/send", "s3cret-token", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Send(context.Background(), "+31612345678", "Your code is 123456"); err != nil {
		t.Fatalf("send: %v", err)
	}
	if len(g.got) != 1 {
		t.Fatalf("the gateway got %d requests, want 1", len(g.got))
	}
	var body map[string]string
	if err := json.Unmarshal([]byte(g.got[0].body), &body); err != nil || len(body) != 2 || body["to"] != "+31612345678" || body["text"] != "Your code is 123456" {
		t.Errorf("the gateway got the body %s, want {to, text}", g.got[0].body)
	}
	if g.got[0].auth != "Bearer s3cret-token" || g.got[0].contentType != "application/json" {
		t.Errorf("the gateway got Authorization %q and Content-Type %q", g.got[0].auth, g.got[0].contentType)
	}
}

func TestHTTPProviderRefusesABadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://gw.example/", "gw.example/send", "https://user:pw@gw.example/send", "http://"} {
		if _, err := sms.NewHTTPProvider(u, "", nil); err == nil {
			t.Errorf("NewHTTPProvider(%q): no error", u)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("NewHTTPProvider(%q): the error %q holds the password", u, err)
		}
	}
}

// memQueue is a Queue in memory.
type memQueue struct {
	msgs   map[string]*sms.Queued
	next   map[string]time.Time
	failed int
}

func (q *memQueue) ClaimDueSMS(_ context.Context, now time.Time, limit int, _ time.Duration) ([]sms.Queued, error) {
	var out []sms.Queued
	for id, m := range q.msgs {
		if !q.next[id].After(now) && len(out) < limit {
			out = append(out, *m)
			q.next[id] = now.Add(time.Hour) // leased
		}
	}
	return out, nil
}

func (q *memQueue) MarkSMSSent(_ context.Context, id string) error { delete(q.msgs, id); return nil }

func (q *memQueue) MarkSMSFailed(_ context.Context, id string, next time.Time) error {
	q.msgs[id].Attempts++
	q.next[id] = next
	q.failed++
	return nil
}

// A gateway that fails (an error status, or no answer) leaves the message
// in the queue for a retry after Backoff; it is delivered once the gateway
// works again. No log line holds the number, the text or the token.
func TestWorkerRetriesAFailedSendAndLogsNothingPersonal(t *testing.T) {
	g := &gateway{status: http.StatusServiceUnavailable}
	srv := httptest.NewServer(g)
	defer srv.Close()
	var log bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := sms.NewHTTPProvider(srv.URL, "s3cret-token", logger)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	q := &memQueue{msgs: map[string]*sms.Queued{"q1": {ID: "q1", To: "+31612345678", Text: "Your code is 654321"}}, next: map[string]time.Time{}}
	w := sms.NewWorker(q, p, logger, func() time.Time { return now }, nil)

	sent, err := w.DeliverDue(context.Background())
	if err != nil || sent != 0 || q.failed != 1 || q.msgs["q1"] == nil {
		t.Fatalf("with the gateway failing: sent %d, err %v, failed %d; want the message kept for a retry", sent, err, q.failed)
	}
	if want := now.Add(sms.Backoff(0)); !q.next["q1"].Equal(want) {
		t.Errorf("next attempt at %v, want %v", q.next["q1"], want)
	}
	if sent, _ := w.DeliverDue(context.Background()); sent != 0 || len(g.got) != 1 {
		t.Errorf("before the retry is due: sent %d, %d requests; want nothing", sent, len(g.got))
	}

	g.mu.Lock()
	g.status = http.StatusOK
	g.mu.Unlock()
	now = now.Add(sms.Backoff(0))
	if sent, err := w.DeliverDue(context.Background()); err != nil || sent != 1 || len(q.msgs) != 0 {
		t.Fatalf("once the gateway works: sent %d, err %v, %d left; want it delivered", sent, err, len(q.msgs))
	}

	// No answer at all: the send fails, nothing is logged but the kind.
	srv.Close()
	q.msgs["q2"] = &sms.Queued{ID: "q2", To: "+31612345678", Text: "Your code is 654321"}
	if sent, err := w.DeliverDue(context.Background()); err != nil || sent != 0 || q.msgs["q2"] == nil {
		t.Fatalf("with the gateway gone: sent %d, err %v", sent, err)
	}
	for _, s := range []string{"612345678", "654321", "s3cret", "Your code"} {
		if strings.Contains(log.String(), s) {
			t.Errorf("the log holds %q:\n%s", s, log.String())
		}
	}
	if !strings.Contains(log.String(), `"id":"q1"`) {
		t.Errorf("the log does not name the failed message by its queue id:\n%s", log.String())
	}
}

func TestHTTPProviderErrorsHoldNothingPersonal(t *testing.T) {
	g := &gateway{status: http.StatusBadRequest}
	srv := httptest.NewServer(g)
	defer srv.Close()
	p, _ := sms.NewHTTPProvider(srv.URL, "s3cret-token", nil)
	err := p.Send(context.Background(), "+31612345678", "Your code is 654321")
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("got %v, want an error naming the status 400", err)
	}
	for _, s := range []string{"612345678", "654321", "s3cret"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("the error %q holds %q", err, s)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Send(ctx, "+31612345678", "x"); err == nil || !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled send: got %v, want context.Canceled", err)
	}
}
