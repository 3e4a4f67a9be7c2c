package backup

import (
	"sort"
	"testing"
	"time"
)

// TestIDsSortInTheOrderBackupsWereMade: ids of backups made within one
// second still sort by when they were made (to the millisecond), so that
// "the newest backup" is the one made last; each reads back its second.
func TestIDsSortInTheOrderBackupsWereMade(t *testing.T) {
	start := time.Date(2026, 12, 8, 4, 22, 35, 0, time.UTC)
	var ids []string
	for ms := 0; ms < 1000; ms += 7 {
		ids = append(ids, NewID(start.Add(time.Duration(ms)*time.Millisecond)))
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatalf("ids of one second do not sort in the order they were made: %v", ids[:5])
	}
	for _, id := range ids {
		at, err := IDTime(id)
		if err != nil || !at.Equal(start) {
			t.Fatalf("IDTime(%s) = %v, %v; want %v", id, at, err, start)
		}
	}
	if a, b := NewID(start), NewID(start); a == b && NewID(start) == a {
		t.Errorf("three ids of one millisecond are the same: %s", a)
	}
}
