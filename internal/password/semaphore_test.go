package password

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// TestSemaphoreHonoursContext checks the memory guard: when every slot is
// taken, Hash and Verify wait, and give up when their context ends.
func TestSemaphoreHonoursContext(t *testing.T) {
	h, err := NewHasher(Params{Memory: 1024, Time: 1, Threads: 1}, 1)
	if err != nil {
		t.Fatalf("NewHasher: got error %v, want nil", err)
	}
	encoded, err := h.Hash(context.Background(), "secret")
	if err != nil {
		t.Fatalf("Hash: got error %v, want nil", err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name     string
		occupied bool
		ctx      func() (context.Context, context.CancelFunc)
		want     error
	}{
		{"cancelled context with a free slot", false, func() (context.Context, context.CancelFunc) {
			return cancelled, func() {}
		}, context.Canceled},
		{"deadline passes while every slot is taken", true, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancelled while every slot is taken", true, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.occupied {
				h.sem <- struct{}{}
				defer h.release()
			}
			ctx, cancel := tt.ctx()
			defer cancel()
			if _, err := h.Hash(ctx, "secret"); !errors.Is(err, tt.want) {
				t.Errorf("Hash: got error %v, want %v", err, tt.want)
			}
			ctx, cancel = tt.ctx()
			defer cancel()
			ok, _, err := h.Verify(ctx, "secret", encoded)
			if ok || !errors.Is(err, tt.want) {
				t.Errorf("Verify: got ok=%v err=%v, want false, %v", ok, err, tt.want)
			}
		})
	}

	// The slot is free again: work resumes.
	ok, _, err := h.Verify(context.Background(), "secret", encoded)
	if !ok || err != nil {
		t.Errorf("Verify after release: got ok=%v err=%v, want true, nil", ok, err)
	}
}

func TestNewHasherConcurrencyLimit(t *testing.T) {
	tests := []struct {
		maxConcurrent int
		want          int
	}{
		{1, 1},
		{5, 5},
		{0, runtime.NumCPU()},
		{-1, runtime.NumCPU()},
	}
	for _, tt := range tests {
		h, err := NewHasher(Params{Memory: 1024, Time: 1, Threads: 1}, tt.maxConcurrent)
		if err != nil {
			t.Fatalf("NewHasher: got error %v, want nil", err)
		}
		if got := cap(h.sem); got != tt.want {
			t.Errorf("NewHasher(_, %d) slots: got %d, want %d", tt.maxConcurrent, got, tt.want)
		}
	}
}
