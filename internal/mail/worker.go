package mail

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/kluis/kluis/internal/deliver"
)

// Sender delivers a composed message to the recipients of its envelope.
//
// Implementations must keep recipient addresses, message content and
// credentials out of their errors and log lines: the Worker logs the errors.
type Sender interface {
	// Send delivers msg from the envelope sender from to the envelope
	// recipients to. It returns once the message is handed over for good,
	// or an error; it honours ctx.
	Send(ctx context.Context, from string, to []string, msg []byte) error
}

// Both senders of this package fit.
var (
	_ Sender = (*Outbox)(nil)
	_ Sender = (*SMTP)(nil)
)

// Queued is a message waiting in the mail queue.
type Queued struct {
	ID       string // queue id; the only name log lines use
	From     string // envelope sender
	To       []string
	Message  []byte // as built by Compose
	Attempts int    // failed delivery attempts so far
}

// Queue is the persistent mail queue, shared by every node (implemented by
// the storage package). Messages stay in it until a Sender took them.
type Queue interface {
	// ClaimDue returns up to limit messages that are due at now and not
	// leased, and leases them until now+lease, so that no other worker,
	// on this node or another, sends them meanwhile.
	ClaimDue(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Queued, error)
	// MarkSent deletes a delivered message.
	MarkSent(ctx context.Context, id string) error
	// MarkFailed records a failed attempt (Attempts+1), ends the lease and
	// makes the message due again at nextAttempt.
	MarkFailed(ctx context.Context, id string, nextAttempt time.Time) error
}

// Delivery batches: claimed together, leased together.
const (
	batchSize = 20
	lease     = 2 * time.Minute
	// leaseMargin is the lease time a send may need at most (smtpTimeout
	// plus slack): no send starts with less than this left, so no message
	// is sent after its lease could have passed to another worker.
	leaseMargin = smtpTimeout + 5*time.Second
)

// Worker delivers queued messages with retries: a message that cannot be
// sent is rescheduled with a growing delay (see Backoff) and never dropped.
// Several workers, on one node or many, may serve the same Queue. Build it
// with NewWorker: a Worker made otherwise ignores Notify.
type Worker struct {
	Queue  Queue
	Sender Sender
	Logger *slog.Logger     // nil discards log lines
	Now    func() time.Time // nil means time.Now
	Poll   time.Duration    // how often Run looks for due messages; default 1s
	// FirstRetry is the wait after a first failed attempt, doubled after
	// each further one up to an hour; 0 means 30 s (see Backoff).
	FirstRetry time.Duration

	wake deliver.Waker
}

// NewWorker returns a Worker that moves messages from q to s, woken by wake
// when a message is queued (the store is given wake.Notify at its own
// construction). logger, now and wake may be nil (no logging, time.Now, a
// waker of its own).
func NewWorker(q Queue, s Sender, logger *slog.Logger, now func() time.Time, wake deliver.Waker) *Worker {
	if wake == nil {
		wake = deliver.NewWaker()
	}
	return &Worker{
		Queue:  q,
		Sender: s,
		Logger: logger,
		Now:    now,
		Poll:   time.Second,
		wake:   wake,
	}
}

// Backoff returns how long to wait before the next attempt after a message
// failed attempts+1 times: 30 s·2^attempts, capped at one hour.
func Backoff(attempts int) time.Duration { return BackoffFrom(30*time.Second, attempts) }

// BackoffFrom is Backoff with another first wait: first·2^attempts, capped
// at one hour.
func BackoffFrom(first time.Duration, attempts int) time.Duration {
	const limit = time.Hour
	if attempts < 0 {
		attempts = 0
	}
	if first <= 0 {
		first = 30 * time.Second
	}
	for ; attempts > 0 && first < limit; attempts-- {
		first *= 2
	}
	return min(first, limit)
}

// DeliverDue sends the messages that are due until none is left, in leased
// batches of 20, and returns how many it sent. A message the Sender refuses
// is rescheduled with Backoff and does not make DeliverDue fail; log lines
// name only the queue id and the attempt. The error is a queue error, or the
// context's error when ctx ends; a message whose send ctx interrupted keeps
// its attempt count and becomes due again when its lease runs out.
func (w *Worker) DeliverDue(ctx context.Context) (sent int, err error) {
	log := logger(w.Logger)
	seen := make(map[string]bool)
	for {
		if err := ctx.Err(); err != nil {
			return sent, err
		}
		claimed := w.now()
		batch, err := w.Queue.ClaimDue(ctx, claimed, batchSize, lease)
		if err != nil {
			return sent, fmt.Errorf("mail: claiming due messages: %w", err)
		}
		fresh := 0
		for _, q := range batch {
			if w.now().Sub(claimed) > lease-leaseMargin {
				// The rest is claimed again once the lease runs out.
				break
			}
			if seen[q.ID] {
				continue // a queue that hands out a message twice in one pass
			}
			seen[q.ID] = true
			fresh++
			attempt := q.Attempts + 1
			sendErr := w.Sender.Send(ctx, q.From, q.To, q.Message)
			if sendErr != nil && ctx.Err() != nil {
				return sent, ctx.Err()
			}
			if sendErr != nil {
				next := w.now().Add(BackoffFrom(w.FirstRetry, q.Attempts))
				// SMTP replies often quote the recipient's address: never logged.
				log.WarnContext(ctx, "mail delivery failed", "id", q.ID, "attempt", attempt, "next_attempt", next, "error", redactAddresses(sendErr.Error()))
				if err := w.Queue.MarkFailed(ctx, q.ID, next); err != nil {
					return sent, fmt.Errorf("mail: rescheduling message %s: %w", q.ID, err)
				}
				continue
			}
			sent++
			log.InfoContext(ctx, "mail delivered", "id", q.ID, "attempt", attempt)
			if err := w.Queue.MarkSent(ctx, q.ID); err != nil {
				return sent, fmt.Errorf("mail: marking message %s sent: %w", q.ID, err)
			}
		}
		if fresh == 0 {
			return sent, nil
		}
	}
}

// addressLike matches anything shaped like an e-mail address.
var addressLike = regexp.MustCompile(`[^\s<>"'(),;:\[\]]+@[^\s<>"'(),;:\[\]]+`)

// redactAddresses replaces e-mail addresses in a text (an SMTP error, say).
func redactAddresses(s string) string { return addressLike.ReplaceAllString(s, "[address]") }

// Notify wakes a running Run to deliver now, typically right after a
// message was queued. It never blocks.
func (w *Worker) Notify() { w.wake.Notify() }

// Run delivers due messages when notified and every Poll until ctx ends,
// then returns nil. Errors of a pass are logged, and the next pass retries.
func (w *Worker) Run(ctx context.Context) error {
	return deliver.Run(ctx, w.wake, w.Poll, w.DeliverDue, logger(w.Logger), "mail")
}

func (w *Worker) now() time.Time {
	if w.Now == nil {
		return time.Now()
	}
	return w.Now()
}
