// Package deliver is the loop that the mail and SMS workers share: a pass
// over a queue when woken (a message was just queued) and on a timer (a
// retry came due), until the context ends.
package deliver

import (
	"context"
	"log/slog"
	"time"
)

// Waker wakes a running loop without blocking; a wake-up while one is
// pending is merged with it.
type Waker chan struct{}

// NewWaker returns a Waker.
func NewWaker() Waker { return make(Waker, 1) }

// Notify wakes the loop. It never blocks. A nil Waker ignores it.
func (w Waker) Notify() {
	select {
	case w <- struct{}{}:
	default:
	}
}

// Run calls pass at once, then whenever w is notified and every poll
// (default a second), until ctx ends; then it returns nil. A pass's error
// is logged as "<what> queue pass failed"; the next pass retries.
func Run(ctx context.Context, w Waker, poll time.Duration, pass func(context.Context) (int, error), log *slog.Logger, what string) error {
	if poll <= 0 {
		poll = time.Second
	}
	timer := time.NewTimer(poll)
	defer timer.Stop()
	for {
		if _, err := pass(ctx); err != nil && ctx.Err() == nil && log != nil {
			log.ErrorContext(ctx, what+" queue pass failed", "error", err)
		}
		timer.Reset(poll)
		select {
		case <-ctx.Done():
			return nil
		case <-w:
		case <-timer.C:
		}
	}
}
