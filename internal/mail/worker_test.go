package mail_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/mail"
)

func newClock() *kluistest.Clock { return kluistest.NewClockAt(testNow) }

// memQueue is an in-memory Queue with the semantics the storage package
// promises: due times, leases, attempt counts.
type memQueue struct {
	mu     sync.Mutex
	order  []string
	items  map[string]*memItem
	failed []time.Time // nextAttempt of every MarkFailed
}

type memItem struct {
	q          mail.Queued
	due        time.Time
	leaseUntil time.Time
}

func newMemQueue() *memQueue { return &memQueue{items: map[string]*memItem{}} }

func (m *memQueue) add(q mail.Queued, due time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.order = append(m.order, q.ID)
	m.items[q.ID] = &memItem{q: q, due: due}
}

func (m *memQueue) ClaimDue(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]mail.Queued, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []mail.Queued
	for _, id := range m.order {
		it, ok := m.items[id]
		if !ok || it.due.After(now) || it.leaseUntil.After(now) {
			continue
		}
		if len(out) == limit {
			break
		}
		it.leaseUntil = now.Add(lease)
		out = append(out, it.q)
	}
	return out, nil
}

func (m *memQueue) MarkSent(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.items[id]; !ok {
		return fmt.Errorf("no message %s", id)
	}
	delete(m.items, id)
	return nil
}

func (m *memQueue) MarkFailed(ctx context.Context, id string, next time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[id]
	if !ok {
		return fmt.Errorf("no message %s", id)
	}
	it.q.Attempts++
	it.due = next
	it.leaseUntil = time.Time{}
	m.failed = append(m.failed, next)
	return nil
}

func (m *memQueue) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items)
}

func (m *memQueue) item(id string) memItem {
	m.mu.Lock()
	defer m.mu.Unlock()
	return *m.items[id]
}

// fakeSender records what it sends and fails while err is set.
type fakeSender struct {
	mu     sync.Mutex
	err    error
	sent   map[string]int // message → times sent
	during func(msg []byte)
}

func (s *fakeSender) Send(ctx context.Context, from string, to []string, msg []byte) error {
	if s.during != nil {
		s.during(msg)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if s.sent == nil {
		s.sent = map[string]int{}
	}
	s.sent[string(msg)]++
	return nil
}

func (s *fakeSender) count(msg string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent[msg]
}

func (s *fakeSender) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.sent {
		n += c
	}
	return n
}

func queued(i int) mail.Queued {
	return mail.Queued{
		ID:      fmt.Sprintf("q%03d", i),
		From:    envelopeFrom,
		To:      []string{recipient},
		Message: []byte(fmt.Sprintf("message %d for ann.de.vries: secret body", i)),
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		attempts int
		want     time.Duration
	}{
		{-1, 30 * time.Second},
		{0, 30 * time.Second},
		{1, time.Minute},
		{2, 2 * time.Minute},
		{3, 4 * time.Minute},
		{6, 32 * time.Minute},
		{7, time.Hour},
		{8, time.Hour},
		{63, time.Hour},
		{1000, time.Hour},
	}
	for _, tt := range tests {
		if got := mail.Backoff(tt.attempts); got != tt.want {
			t.Errorf("Backoff(%d): got %v, want %v", tt.attempts, got, tt.want)
		}
	}
}

func TestDeliverDueSendsEverythingOnce(t *testing.T) {
	tests := []struct {
		name  string
		count int
	}{
		{"empty queue", 0},
		{"one message", 1},
		{"exactly one batch", 20},
		{"several batches", 45},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newMemQueue()
			clk := newClock()
			for i := range tt.count {
				q.add(queued(i), clk.Now())
			}
			s := &fakeSender{}
			w := mail.NewWorker(q, s, nil, clk.Now, nil)
			sent, err := w.DeliverDue(context.Background())
			if err != nil {
				t.Fatalf("DeliverDue: got error %v, want nil", err)
			}
			if sent != tt.count {
				t.Errorf("sent: got %d, want %d", sent, tt.count)
			}
			for i := range tt.count {
				if got := s.count(string(queued(i).Message)); got != 1 {
					t.Errorf("message %d sent: got %d times, want 1", i, got)
				}
			}
			if got := q.len(); got != 0 {
				t.Errorf("left in queue: got %d, want 0", got)
			}
		})
	}
}

func TestDeliverDueSkipsMessagesNotDue(t *testing.T) {
	q := newMemQueue()
	clk := newClock()
	q.add(queued(1), clk.Now().Add(time.Minute))
	s := &fakeSender{}
	w := mail.NewWorker(q, s, nil, clk.Now, nil)
	if sent, err := w.DeliverDue(context.Background()); sent != 0 || err != nil {
		t.Fatalf("DeliverDue before due: got %d, %v, want 0, nil", sent, err)
	}
	clk.Advance(time.Minute)
	if sent, err := w.DeliverDue(context.Background()); sent != 1 || err != nil {
		t.Fatalf("DeliverDue when due: got %d, %v, want 1, nil", sent, err)
	}
}

// TestDeliverDueNeverGivesUp: failures reschedule with backoff and keep the
// message; log lines name the id and attempt, never address or content (R45).
func TestDeliverDueNeverGivesUp(t *testing.T) {
	q := newMemQueue()
	clk := newClock()
	q.add(queued(1), clk.Now())
	var logs bytes.Buffer
	s := &fakeSender{err: errors.New("mail: smtp dial: connection refused")}
	w := mail.NewWorker(q, s, slog.New(slog.NewTextHandler(&logs, nil)), clk.Now, nil)

	for attempt := range 10 {
		sent, err := w.DeliverDue(context.Background())
		if sent != 0 || err != nil {
			t.Fatalf("DeliverDue attempt %d: got %d, %v, want 0, nil", attempt+1, sent, err)
		}
		it := q.item("q001")
		if it.q.Attempts != attempt+1 {
			t.Errorf("attempts: got %d, want %d", it.q.Attempts, attempt+1)
		}
		if want := clk.Now().Add(mail.Backoff(attempt)); !it.due.Equal(want) {
			t.Errorf("attempt %d rescheduled at: got %v, want %v", attempt+1, it.due, want)
		}
		// Not due again in the same instant.
		if sent, err := w.DeliverDue(context.Background()); sent != 0 || err != nil {
			t.Fatalf("DeliverDue again: got %d, %v, want 0, nil", sent, err)
		}
		clk.Advance(mail.Backoff(attempt))
	}
	if got := len(q.failed); got != 10 {
		t.Errorf("failures recorded: got %d, want 10", got)
	}

	s.mu.Lock()
	s.err = nil
	s.mu.Unlock()
	if sent, err := w.DeliverDue(context.Background()); sent != 1 || err != nil {
		t.Fatalf("DeliverDue after recovery: got %d, %v, want 1, nil", sent, err)
	}
	if got := q.len(); got != 0 {
		t.Errorf("left in queue: got %d, want 0", got)
	}

	log := logs.String()
	for _, want := range []string{"id=q001", "attempt=1", "attempt=10", "attempt=11", "mail delivered"} {
		if !strings.Contains(log, want) {
			t.Errorf("logs: got %q, want %q in them", log, want)
		}
	}
	for _, secret := range []string{"ann.de.vries", "example.nl", "secret body", "noreply"} {
		if strings.Contains(log, secret) {
			t.Errorf("logs: got %q, want no %q (R45)", log, secret)
		}
	}
}

// TestDeliverDueRespectsLease: no send starts when the lease could run out
// before it ends, so another worker never sends the same message at once.
func TestDeliverDueRespectsLease(t *testing.T) {
	q := newMemQueue()
	clk := newClock()
	for i := range 5 {
		q.add(queued(i), clk.Now())
	}
	s := &fakeSender{}
	s.during = func(msg []byte) {
		for i := range 5 {
			if string(queued(i).Message) == string(msg) {
				if lease := q.item(queued(i).ID).leaseUntil; !lease.After(clk.Now().Add(30 * time.Second)) {
					t.Errorf("send of %s: lease until %v, now %v, want ≥ 30 s left", queued(i).ID, lease, clk.Now())
				}
			}
		}
		clk.Advance(time.Minute) // a slow server
	}
	w := mail.NewWorker(q, s, nil, clk.Now, nil)
	sent, err := w.DeliverDue(context.Background())
	if err != nil {
		t.Fatalf("DeliverDue: got error %v, want nil", err)
	}
	if sent != 5 {
		t.Errorf("sent: got %d, want 5", sent)
	}
	if got := s.total(); got != 5 {
		t.Errorf("sends: got %d, want 5", got)
	}
}

// TestTwoWorkersShareAQueue: two workers (think: two nodes) on one queue
// send every message exactly once.
func TestTwoWorkersShareAQueue(t *testing.T) {
	q := newMemQueue()
	clk := newClock()
	const n = 100
	for i := range n {
		q.add(queued(i), clk.Now())
	}
	s := &fakeSender{during: func([]byte) { time.Sleep(100 * time.Microsecond) }}
	var wg sync.WaitGroup
	total := make([]int, 2)
	for i := range 2 {
		w := mail.NewWorker(q, s, nil, clk.Now, nil)
		wg.Go(func() {
			sent, err := w.DeliverDue(context.Background())
			if err != nil {
				t.Errorf("DeliverDue: got error %v, want nil", err)
			}
			total[i] = sent
		})
	}
	wg.Wait()
	if total[0]+total[1] != n {
		t.Errorf("sent: got %d + %d, want %d in all", total[0], total[1], n)
	}
	for i := range n {
		if got := s.count(string(queued(i).Message)); got != 1 {
			t.Errorf("message %d sent: got %d times, want 1", i, got)
		}
	}
}

func TestDeliverDueStopsWhenContextEnds(t *testing.T) {
	q := newMemQueue()
	clk := newClock()
	q.add(queued(1), clk.Now())
	ctx, cancel := context.WithCancel(context.Background())
	s := &fakeSender{}
	s.during = func([]byte) {
		cancel()
		s.mu.Lock()
		s.err = context.Canceled
		s.mu.Unlock()
	}
	w := mail.NewWorker(q, s, nil, clk.Now, nil)
	sent, err := w.DeliverDue(ctx)
	if sent != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("DeliverDue: got %d, %v, want 0, %v", sent, err, context.Canceled)
	}
	// An interrupted send is no failed attempt: the message keeps its count
	// and comes back when the lease ends.
	if it := q.item("q001"); it.q.Attempts != 0 {
		t.Errorf("attempts: got %d, want 0", it.q.Attempts)
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name   string
		poll   time.Duration
		notify bool
	}{
		{"delivers on Notify", time.Hour, true},
		{"delivers on Poll", 10 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newMemQueue()
			clk := newClock()
			delivered := make(chan struct{}, 10)
			s := &fakeSender{during: func([]byte) { delivered <- struct{}{} }}
			w := mail.NewWorker(q, s, nil, clk.Now, nil)
			w.Poll = tt.poll
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- w.Run(ctx) }()

			// Let the first pass find nothing, then queue a message.
			time.Sleep(20 * time.Millisecond)
			q.add(queued(1), clk.Now())
			if tt.notify {
				w.Notify()
				w.Notify() // never blocks
			}
			select {
			case <-delivered:
			case <-time.After(5 * time.Second):
				t.Fatalf("message not delivered within 5 s")
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: got error %v, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("Run did not return within 5 s of cancellation")
			}
		})
	}
}

// TestWorkerRetriesUntilServerRuns: a message queued while the SMTP server
// is down is rescheduled, and arrives exactly once when the server is up.
func TestWorkerRetriesUntilServerRuns(t *testing.T) {
	requireAiosmtpd(t)
	port := freePort(t)
	maildir := t.TempDir()
	s, err := mail.NewSMTP(fmt.Sprintf("smtp://127.0.0.1:%d", port), nil)
	if err != nil {
		t.Fatalf("NewSMTP: got error %v, want nil", err)
	}
	q := newMemQueue()
	clk := newClock()
	msg := composeTest(t)
	q.add(mail.Queued{ID: "q1", From: envelopeFrom, To: []string{recipient}, Message: msg}, clk.Now())
	var logs bytes.Buffer
	w := mail.NewWorker(q, s, slog.New(slog.NewTextHandler(&logs, nil)), clk.Now, nil)

	sent, err := w.DeliverDue(context.Background())
	if sent != 0 || err != nil {
		t.Fatalf("DeliverDue with the server down: got %d, %v, want 0, nil", sent, err)
	}
	if it := q.item("q1"); it.q.Attempts != 1 || !it.due.Equal(clk.Now().Add(30*time.Second)) {
		t.Fatalf("after failure: got attempts %d due %v, want 1 and %v", it.q.Attempts, it.due, clk.Now().Add(30*time.Second))
	}

	startAiosmtpd(t, port, maildir)
	if sent, err := w.DeliverDue(context.Background()); sent != 0 || err != nil {
		t.Fatalf("DeliverDue before the retry is due: got %d, %v, want 0, nil", sent, err)
	}
	clk.Advance(30 * time.Second)
	if sent, err := w.DeliverDue(context.Background()); sent != 1 || err != nil {
		t.Fatalf("DeliverDue when due: got %d, %v, want 1, nil", sent, err)
	}
	if sent, err := w.DeliverDue(context.Background()); sent != 0 || err != nil {
		t.Fatalf("DeliverDue afterwards: got %d, %v, want 0, nil", sent, err)
	}
	got := readMaildir(t, maildir)
	if len(got) != 1 {
		t.Fatalf("messages in maildir: got %d, want exactly 1", len(got))
	}
	checkArrivedIntact(t, got[0], msg, recipient)
	for _, secret := range []string{"ann.de.vries", "example.nl", "Zorggroep"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("logs: got %q, want no %q (R45)", logs.String(), secret)
		}
	}
}

// Personal data never reaches the log: an SMTP error that quotes the
// recipient is logged with the address replaced.
func TestDeliveryErrorsAreLoggedWithoutAddresses(t *testing.T) {
	for in, want := range map[string]string{
		"550 5.1.1 <bob.smith+x@example.org>: Recipient address rejected": "550 5.1.1 <[address]>: Recipient address rejected",
		"dial tcp 192.0.2.1:25: connection refused":                       "dial tcp 192.0.2.1:25: connection refused",
		"RCPT TO:jan@voorbeeld.nl failed; also (ann@x.test)":              "RCPT TO:[address] failed; also ([address])",
	} {
		if got := mail.RedactAddresses(in); got != want {
			t.Errorf("redact %q:\n got %q\nwant %q", in, got, want)
		}
	}
}
