package sqlstore

import (
	"maps"
	"testing"
)

// A savepoint rolled back twice to the same saved heads (a refusal whose
// own record then fails) finds them as they were saved both times: what
// the first restore put back is not the saved copy itself.
func TestHeadsRestoreTwiceToTheSameSave(t *testing.T) {
	h := &headCache{m: map[string]chainHead{"org:a": {seq: 4, stored: 4}}}
	saved := h.save()
	h.m["org:a"] = chainHead{seq: 5, stored: 4}
	h.restore(saved)
	h.m["org:b"] = chainHead{seq: 1}
	h.m["org:a"] = chainHead{seq: 6, stored: 4}
	h.restore(saved)
	want := map[string]chainHead{"org:a": {seq: 4, stored: 4}}
	if !maps.Equal(h.m, want) {
		t.Fatalf("heads after the second restore: %v, want %v", h.m, want)
	}
}
