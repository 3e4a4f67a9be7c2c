package backup

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// MaxAge is the longest any backup is kept, and the ceiling of
// KLUIS_BACKUP_MAX_AGE: two years (R31).
const MaxAge = 730 * 24 * time.Hour

// KeysMaxAge is how long a key store backup is kept by default: a key
// destroyed by an erasure is gone from every key backup that much later.
const KeysMaxAge = 30 * 24 * time.Hour

// Retention says which backups to keep: the newest backup of each of the
// last Daily days, Weekly ISO weeks and Monthly months that have backups,
// and never one older than MaxAge. The newest backup is always kept while
// it is younger than MaxAge.
type Retention struct {
	Daily, Weekly, Monthly int
	MaxAge                 time.Duration
}

// DefaultRetention keeps 14 dailies, 8 weeklies and 24 monthlies, at most
// two years.
var DefaultRetention = Retention{Daily: 14, Weekly: 8, Monthly: 24, MaxAge: MaxAge}

// ParseRetention parses KLUIS_BACKUP_RETENTION ("14d,8w,24m"; a part left
// out keeps none of that kind) with maxAge as the hard limit.
func ParseRetention(s string, maxAge time.Duration) (Retention, error) {
	if maxAge < minMaxAge || maxAge > MaxAge {
		return Retention{}, fmt.Errorf("backup: the maximum age must be from 1 day to %dd", int(MaxAge.Hours()/24))
	}
	r := Retention{MaxAge: maxAge}
	seen := map[byte]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		unit := part[len(part)-1]
		n, err := strconv.Atoi(part[:len(part)-1])
		if err != nil || n < 0 || n > 10000 || seen[unit] {
			return Retention{}, fmt.Errorf("backup: retention %q: use counts like 14d,8w,24m", truncate(s))
		}
		seen[unit] = true
		switch unit {
		case 'd':
			r.Daily = n
		case 'w':
			r.Weekly = n
		case 'm':
			r.Monthly = n
		default:
			return Retention{}, fmt.Errorf("backup: retention %q: use counts like 14d,8w,24m", truncate(s))
		}
	}
	if r.Daily+r.Weekly+r.Monthly == 0 {
		return Retention{}, errors.New("backup: retention keeps nothing")
	}
	return r, nil
}

// minMaxAge is the shortest maximum age: backups run daily, and a shorter
// one would leave hours without any backup at all.
const minMaxAge = 24 * time.Hour

// ParseMaxAge parses KLUIS_BACKUP_MAX_AGE: a number of days ("730d") or a
// Go duration; from one day to two years.
func ParseMaxAge(s string) (time.Duration, error) {
	if s == "" {
		return MaxAge, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		// Bounded before multiplying: a huge count must not wrap around
		// to a small duration.
		if err != nil || n < 0 || n > int(MaxAge/(24*time.Hour))+1 {
			return 0, fmt.Errorf("backup: maximum age %q: use days like 730d, at most %dd", truncate(s), int(MaxAge.Hours()/24))
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("backup: maximum age %q: use days like 730d", truncate(s))
		}
	}
	if d < minMaxAge || d > MaxAge {
		return 0, fmt.Errorf("backup: the maximum age must be from 1 day to %dd", int(MaxAge.Hours()/24))
	}
	return d, nil
}

// Keep reports, for each time of times (backups' times, in any order),
// whether retention keeps that backup at now.
func (r Retention) Keep(now time.Time, times []time.Time) []bool {
	keep := make([]bool, len(times))
	order := make([]int, len(times))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return times[order[a]].After(times[order[b]]) })
	young := func(i int) bool { return now.Sub(times[i]) <= r.MaxAge }
	bucket := func(n int, key func(time.Time) string) {
		seen := map[string]bool{}
		for _, i := range order {
			if len(seen) >= n {
				return
			}
			k := key(times[i].UTC())
			if !seen[k] {
				seen[k] = true
				keep[i] = true
			}
		}
	}
	bucket(r.Daily, func(t time.Time) string { return t.Format("2006-01-02") })
	bucket(r.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-%02d", y, w) })
	bucket(r.Monthly, func(t time.Time) string { return t.Format("2006-01") })
	if len(order) > 0 {
		keep[order[0]] = true
	}
	for i := range keep {
		if keep[i] && !young(i) {
			keep[i] = false
		}
	}
	return keep
}
