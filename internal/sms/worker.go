package sms

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/kluis/kluis/internal/deliver"
)

// Queued is a message waiting in the SMS queue.
type Queued struct {
	ID       string // queue id; the only name log lines use
	To       string // E.164
	Text     string
	Attempts int // failed delivery attempts so far
}

// Queue is the persistent SMS queue, shared by every node (implemented by
// the storage package). Messages stay in it until a Sender took them or
// their code lapsed.
type Queue interface {
	// ClaimDueSMS returns up to limit messages that are due at now and not
	// leased, and leases them until now+lease, so that no other worker
	// sends them meanwhile. Lapsed messages are dropped, never returned.
	ClaimDueSMS(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Queued, error)
	// MarkSMSSent deletes a delivered message.
	MarkSMSSent(ctx context.Context, id string) error
	// MarkSMSFailed records a failed attempt, ends the lease and makes the
	// message due again at nextAttempt.
	MarkSMSFailed(ctx context.Context, id string, nextAttempt time.Time) error
}

const (
	batchSize = 20
	lease     = time.Minute
	// leaseMargin is the lease time one send may need at most.
	leaseMargin = HTTPTimeout + 5*time.Second
)

// Backoff returns how long to wait before the next attempt after a message
// failed attempts+1 times: 5 s·2^attempts, capped at one minute. Codes live
// minutes, so retries come soon.
func Backoff(attempts int) time.Duration {
	if attempts < 0 {
		attempts = 0
	}
	if attempts >= 4 {
		return time.Minute
	}
	return min(5*time.Second<<attempts, time.Minute)
}

// Worker delivers queued messages with retries. Several workers, on one
// node or many, may serve the same Queue. Build it with NewWorker.
type Worker struct {
	Queue  Queue
	Sender Sender
	Logger *slog.Logger     // nil discards log lines
	Now    func() time.Time // nil means time.Now
	Poll   time.Duration    // how often Run looks for due messages; default 1s

	wake deliver.Waker
}

// NewWorker returns a Worker that moves messages from q to s. logger and
// now may be nil.
//
// wake wakes it when a message is queued (the store is given wake.Notify at
// its own construction); nil gives it a waker of its own.
func NewWorker(q Queue, s Sender, logger *slog.Logger, now func() time.Time, wake deliver.Waker) *Worker {
	if wake == nil {
		wake = deliver.NewWaker()
	}
	return &Worker{Queue: q, Sender: s, Logger: logger, Now: now, Poll: time.Second, wake: wake}
}

// DeliverDue sends the messages that are due until none is left and
// returns how many it sent. A message the Sender refuses is rescheduled
// with Backoff; log lines name only the queue id and the attempt. The
// error is a queue error, or the context's.
func (w *Worker) DeliverDue(ctx context.Context) (sent int, err error) {
	log := logger(w.Logger)
	seen := make(map[string]bool)
	for {
		if err := ctx.Err(); err != nil {
			return sent, err
		}
		claimed := w.now()
		batch, err := w.Queue.ClaimDueSMS(ctx, claimed, batchSize, lease)
		if err != nil {
			return sent, fmt.Errorf("sms: claiming due messages: %w", err)
		}
		fresh := 0
		for _, q := range batch {
			if w.now().Sub(claimed) > lease-leaseMargin {
				break // the rest is claimed again once the lease runs out
			}
			if seen[q.ID] {
				continue
			}
			seen[q.ID] = true
			fresh++
			attempt := q.Attempts + 1
			sendErr := w.Sender.Send(ctx, q.To, q.Text)
			if sendErr != nil && ctx.Err() != nil {
				return sent, ctx.Err()
			}
			if sendErr != nil {
				next := w.now().Add(Backoff(q.Attempts))
				log.WarnContext(ctx, "sms delivery failed", "id", q.ID, "attempt", attempt, "next_attempt", next, "error", sendErr.Error())
				if err := w.Queue.MarkSMSFailed(ctx, q.ID, next); err != nil {
					return sent, fmt.Errorf("sms: rescheduling message %s: %w", q.ID, err)
				}
				continue
			}
			sent++
			log.InfoContext(ctx, "sms delivered", "id", q.ID, "attempt", attempt)
			if err := w.Queue.MarkSMSSent(ctx, q.ID); err != nil {
				return sent, fmt.Errorf("sms: marking message %s sent: %w", q.ID, err)
			}
		}
		if fresh == 0 {
			return sent, nil
		}
	}
}

// Notify wakes a running Run to deliver now, typically right after a
// message was queued. It never blocks.
func (w *Worker) Notify() { w.wake.Notify() }

// Run delivers due messages when notified and every Poll until ctx ends,
// then returns nil. Errors of a pass are logged, and the next pass retries.
func (w *Worker) Run(ctx context.Context) error {
	return deliver.Run(ctx, w.wake, w.Poll, w.DeliverDue, logger(w.Logger), "sms")
}

func (w *Worker) now() time.Time {
	if w.Now == nil {
		return time.Now()
	}
	return w.Now()
}
