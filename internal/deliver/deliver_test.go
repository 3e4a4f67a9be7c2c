package deliver_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/deliver"
)

// Run passes at once, again when notified (several notifications before a
// pass merge), keeps going after a failed pass, and ends with its context.
func TestRunPassesWhenWokenAndStops(t *testing.T) {
	w := deliver.NewWaker()
	var passes atomic.Int32
	passed := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- deliver.Run(ctx, w, time.Hour, func(context.Context) (int, error) {
			passes.Add(1)
			passed <- struct{}{}
			return 0, errors.New("the server is down") // logged, not fatal
		}, nil, "test")
	}()
	<-passed // the first pass, at once
	w.Notify()
	w.Notify() // merged with the pending one, never blocks
	<-passed
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run ended with %v, want nil", err)
	}
	if n := passes.Load(); n < 2 || n > 3 {
		t.Errorf("%d passes, want 2 (or 3 when the merged wake-up raced the pass)", n)
	}
	var nilWaker deliver.Waker
	nilWaker.Notify() // ignored
}
