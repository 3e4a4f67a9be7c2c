package backup

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

const day = 24 * time.Hour

// TestParseRetention: KLUIS_BACKUP_RETENTION is counts of dailies, weeklies
// and monthlies; anything else is refused, and the maximum age is at most
// two years (R31).
func TestParseRetention(t *testing.T) {
	for _, c := range []struct {
		in     string
		maxAge time.Duration
		want   Retention // zero: an error
	}{
		{"14d,8w,24m", MaxAge, Retention{Daily: 14, Weekly: 8, Monthly: 24, MaxAge: MaxAge}},
		{"24m,14d,8w", MaxAge, Retention{Daily: 14, Weekly: 8, Monthly: 24, MaxAge: MaxAge}},
		{" 7d , 4w ", 90 * day, Retention{Daily: 7, Weekly: 4, MaxAge: 90 * day}},
		{"30d", day, Retention{Daily: 30, MaxAge: day}},
		{"0d,12m", 365 * day, Retention{Monthly: 12, MaxAge: 365 * day}},
		{"14d,,8w", MaxAge, Retention{Daily: 14, Weekly: 8, MaxAge: MaxAge}},
		{"10000d", MaxAge, Retention{Daily: 10000, MaxAge: MaxAge}},
		// Refused.
		{"", MaxAge, Retention{}},
		{"0d,0w,0m", MaxAge, Retention{}},
		{"14", MaxAge, Retention{}},
		{"d", MaxAge, Retention{}},
		{"14x", MaxAge, Retention{}},
		{"14D", MaxAge, Retention{}},
		{"14y", MaxAge, Retention{}},
		{"-1d,8w", MaxAge, Retention{}},
		{"1.5d", MaxAge, Retention{}},
		{"14 d", MaxAge, Retention{}},
		{"14d,7d", MaxAge, Retention{}},
		{"14d;8w", MaxAge, Retention{}},
		{"10001d", MaxAge, Retention{}},
		{"99999999999999999999d", MaxAge, Retention{}},
		{"14é", MaxAge, Retention{}},
		{"14d,8w,24m", 0, Retention{}},
		{"14d,8w,24m", -day, Retention{}},
		{"14d,8w,24m", time.Hour, Retention{}},
		{"14d,8w,24m", MaxAge + time.Second, Retention{}},
		{"14d,8w,24m", 731 * day, Retention{}},
	} {
		got, err := ParseRetention(c.in, c.maxAge)
		if c.want == (Retention{}) {
			if err == nil {
				t.Errorf("ParseRetention(%q, %v) = %+v, want an error", c.in, c.maxAge, got)
			} else if len(err.Error()) > 200 {
				t.Errorf("ParseRetention(%q): the error echoes too much: %q", c.in, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseRetention(%q, %v) = %+v, %v; want %+v", c.in, c.maxAge, got, err, c.want)
		}
	}
	long := strings.Repeat("x", 500)
	if _, err := ParseRetention(long, MaxAge); err == nil || strings.Contains(err.Error(), long[:100]) {
		t.Errorf("a long setting: %v, want an error that does not repeat it whole", err)
	}
}

// TestParseMaxAge: KLUIS_BACKUP_MAX_AGE is days or a duration, from a day
// to the ceiling of 730 days; empty means the ceiling (R31). A number of
// days so large that it wraps around is refused, not read as minutes.
func TestParseMaxAge(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration // 0: an error
	}{
		{"", MaxAge},
		{"730d", MaxAge},
		{"365d", 365 * day},
		{"1d", day},
		{"30d", 30 * day},
		{"17520h", MaxAge},
		{"8760h", 365 * day},
		{"24h", day},
		// Refused.
		{"731d", 0},
		{"17521h", 0},
		{"0d", 0},
		{"0", 0},
		{"-1d", 0},
		{"-24h", 0},
		{"1h", 0},
		{"23h59m", 0},
		{"d", 0},
		{"1.5d", 0},
		{"2y", 0},
		{"730 d", 0},
		{"abc", 0},
		{"213504d", 0}, // 213504 days overflow a Duration to 25 minutes
		{"106752d", 0}, // … or to a negative one
		{"99999999999999999999d", 0},
	} {
		got, err := ParseMaxAge(c.in)
		if c.want == 0 {
			if err == nil {
				t.Errorf("ParseMaxAge(%q) = %v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseMaxAge(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

// expire keeps of times what r keeps at now, as Expire does on a target.
func expire(r Retention, now time.Time, times []time.Time) []time.Time {
	var out []time.Time
	for i, k := range r.Keep(now, times) {
		if k {
			out = append(out, times[i])
		}
	}
	return out
}

// calendarExpectation is what retention must have kept at the end of day
// today, when one backup was taken every day at the same time from first:
// worked out from the calendar, not from Keep's method.
func calendarExpectation(r Retention, first, today, now time.Time) []time.Time {
	set := map[time.Time]bool{}
	add := func(t time.Time) {
		if !t.Before(first) && !t.After(today) && now.Sub(t) <= r.MaxAge {
			set[t] = true
		}
	}
	for k := 0; k < r.Daily; k++ {
		add(today.AddDate(0, 0, -k))
	}
	// The newest backup of an ISO week is its Sunday's, or today's.
	monday := today.AddDate(0, 0, -((int(today.Weekday()) + 6) % 7))
	for k := 0; k < r.Weekly; k++ {
		sunday := monday.AddDate(0, 0, 7*(1-k)-1)
		if sunday.Before(first) {
			break
		}
		add(minTime(today, sunday))
	}
	// The newest backup of a month is its last day's, or today's.
	firstOfMonth := time.Date(today.Year(), today.Month(), 1, today.Hour(), today.Minute(), 0, 0, time.UTC)
	for k := 0; k < r.Monthly; k++ {
		last := firstOfMonth.AddDate(0, 1-k, -1)
		if last.Before(first) {
			break
		}
		add(minTime(today, last))
	}
	add(today)
	out := make([]time.Time, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sortTimes(out)
	return out
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func sortTimes(ts []time.Time) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
}

func dates(ts []time.Time) string {
	var b strings.Builder
	for _, t := range ts {
		b.WriteString(t.Format("2006-01-02T15:04 "))
	}
	return b.String()
}

// TestKeepThreeYearsOfDailyBackups: three years of daily backups, expired
// after each one, leave exactly the dailies of the last 14 days, the
// newest of each of the last 8 ISO weeks and of each of the last 24 months
// — nothing older than the maximum age, and always the newest (R31).
func TestKeepThreeYearsOfDailyBackups(t *testing.T) {
	for _, c := range []struct {
		name string
		r    Retention
		want int // backups kept at the end
	}{
		{"default 14d,8w,24m 730d", DefaultRetention, 0},
		{"14d,8w,24m 365d", Retention{Daily: 14, Weekly: 8, Monthly: 24, MaxAge: 365 * day}, 0},
		{"7d,4w,12m", Retention{Daily: 7, Weekly: 4, Monthly: 12, MaxAge: MaxAge}, 0},
		{"monthlies only", Retention{Monthly: 24, MaxAge: MaxAge}, 24},
		{"weeklies only", Retention{Weekly: 8, MaxAge: MaxAge}, 8},
		{"3 dailies", Retention{Daily: 3, MaxAge: MaxAge}, 3},
		{"30 dailies within 10 days", Retention{Daily: 30, MaxAge: 10 * day}, 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			// 02:00 UTC, the default schedule; three years and a bit from a
			// Wednesday, over a leap day (2028-02-29).
			first := time.Date(2026, 1, 7, 2, 0, 0, 0, time.UTC)
			var kept []time.Time
			last := first.AddDate(3, 0, 3)
			checkpoints := 0
			for today := first; !today.After(last); today = today.AddDate(0, 0, 1) {
				now := today.Add(45 * time.Minute) // Expire runs after the backup
				kept = expire(c.r, now, append(kept, today))
				want := calendarExpectation(c.r, first, today, now)
				if !slices.Equal(kept, want) {
					t.Fatalf("on %s kept\n%s\nwant\n%s", today.Format("2006-01-02"), dates(kept), dates(want))
				}
				if kept[len(kept)-1] != today {
					t.Fatalf("on %s the newest backup is gone", today.Format("2006-01-02"))
				}
				for _, k := range kept {
					if now.Sub(k) > c.r.MaxAge {
						t.Fatalf("on %s a backup of %s survives, older than %v", today.Format("2006-01-02"), k.Format("2006-01-02"), c.r.MaxAge)
					}
				}
				checkpoints++
			}
			if checkpoints < 3*365 {
				t.Fatalf("simulated %d days", checkpoints)
			}
			if c.want != 0 && len(kept) != c.want {
				t.Errorf("kept %d backups at the end, want %d: %s", len(kept), c.want, dates(kept))
			}
			if c.r == DefaultRetention {
				assertDefaultShape(t, kept, last)
			}
		})
	}
}

// assertDefaultShape checks the default rules' end state by counting, apart
// from the calendar expectation.
func assertDefaultShape(t *testing.T, kept []time.Time, today time.Time) {
	t.Helper()
	days, weeks, months := map[string]bool{}, map[string]bool{}, map[string]bool{}
	recent := 0
	for _, k := range kept {
		days[k.Format("2006-01-02")] = true
		y, w := k.ISOWeek()
		weeks[fmt.Sprintf("%d-%02d", y, w)] = true
		months[k.Format("2006-01")] = true
		if today.Sub(k) < 14*day {
			recent++
		}
	}
	if recent != 14 {
		t.Errorf("%d backups of the last 14 days, want 14", recent)
	}
	if len(months) != 24 {
		t.Errorf("backups of %d months, want 24", len(months))
	}
	if len(weeks) < 8 {
		t.Errorf("backups of %d weeks, want at least 8", len(weeks))
	}
	if len(days) != len(kept) {
		t.Errorf("two backups of one day kept: %s", dates(kept))
	}
	if oldest := today.Sub(kept[0]); oldest > MaxAge || oldest < 600*day {
		t.Errorf("the oldest backup is %v old, want the monthly of nearly two years ago", oldest)
	}
	// Every backup kept is the last of its day, and those older than two
	// weeks the last of their ISO week or month.
	for _, k := range kept {
		if today.Sub(k) < 14*day {
			continue
		}
		next := k.AddDate(0, 0, 1)
		_, wk := k.ISOWeek()
		_, wn := next.ISOWeek()
		if wk == wn && k.Month() == next.Month() {
			t.Errorf("%s is kept, but it is the last of neither its week nor its month", k.Format("2006-01-02"))
		}
	}
}

// refKeep is the rules as written, over every backup ever taken: for each
// kind, the newest backup of each of the n newest periods that have
// backups; the newest backup; none older than the maximum age.
func refKeep(r Retention, now time.Time, all []time.Time) map[time.Time]bool {
	keep := map[time.Time]bool{}
	for _, rule := range []struct {
		n   int
		key func(time.Time) string
	}{
		{r.Daily, func(t time.Time) string { return t.UTC().Format("2006-01-02") }},
		{r.Weekly, func(t time.Time) string { y, w := t.UTC().ISOWeek(); return fmt.Sprintf("%d-%02d", y, w) }},
		{r.Monthly, func(t time.Time) string { return t.UTC().Format("2006-01") }},
	} {
		newest := map[string]time.Time{}
		for _, t := range all {
			if n, ok := newest[rule.key(t)]; !ok || t.After(n) {
				newest[rule.key(t)] = t
			}
		}
		var periods []time.Time
		for _, t := range newest {
			periods = append(periods, t)
		}
		sort.Slice(periods, func(i, j int) bool { return periods[i].After(periods[j]) })
		for i := 0; i < rule.n && i < len(periods); i++ {
			keep[periods[i]] = true
		}
	}
	if len(all) > 0 {
		keep[slices.MaxFunc(all, func(a, b time.Time) int { return a.Compare(b) })] = true
	}
	for t := range keep {
		if now.Sub(t) > r.MaxAge {
			delete(keep, t)
		}
	}
	return keep
}

// TestKeepIrregularSchedules: gaps, outages and several backups a day keep
// what the rules say over all backups ever taken, although expiry ran
// after every single one (R31).
func TestKeepIrregularSchedules(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 30, 0, 0, time.UTC)
	amsterdam, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		amsterdam = time.FixedZone("CET", 3600)
	}
	every := func(from time.Time, step time.Duration, n int) []time.Time {
		var out []time.Time
		for i := 0; i < n; i++ {
			out = append(out, from.Add(time.Duration(i)*step))
		}
		return out
	}
	for _, c := range []struct {
		name  string
		r     Retention
		times []time.Time
		after time.Duration // from the last backup to the final check
		check func(t *testing.T, kept []time.Time)
	}{
		{
			name:  "four a day for two months",
			r:     DefaultRetention,
			times: every(start, 6*time.Hour, 4*61),
			check: func(t *testing.T, kept []time.Time) {
				perDay := map[string]int{}
				for _, k := range kept {
					perDay[k.Format("2006-01-02")]++
				}
				for d, n := range perDay {
					if n > 1 {
						t.Errorf("%d backups of %s kept, want only its newest", n, d)
					}
				}
				for _, k := range kept {
					if k.Hour() != 18 {
						t.Errorf("kept %s, not the last backup of its day", k.Format(time.RFC3339))
					}
				}
			},
		},
		{
			name: "outage of two months",
			r:    Retention{Daily: 14, Weekly: 2, MaxAge: MaxAge},
			// Ten days, nothing for 60 days, then six days.
			times: append(every(start, day, 10), every(start.Add(70*day), day, 6)...),
			check: func(t *testing.T, kept []time.Time) {
				// The dailies reach back over the outage: days 2–9 of the
				// first run still count among the 14 days that have
				// backups.
				if len(kept) != 14 || !kept[0].Equal(start.Add(2*day)) {
					t.Errorf("kept %s, want the 14 newest days", dates(kept))
				}
			},
		},
		{
			name:  "outage longer than the maximum age",
			r:     Retention{Daily: 14, Weekly: 8, Monthly: 24, MaxAge: 90 * day},
			times: append(every(start, day, 30), every(start.Add(200*day), day, 3)...),
			check: func(t *testing.T, kept []time.Time) {
				if len(kept) != 3 {
					t.Errorf("kept %s, want only the three young ones", dates(kept))
				}
			},
		},
		{
			name:  "no backup for longer than the maximum age",
			r:     Retention{Daily: 14, Weekly: 8, Monthly: 24, MaxAge: 30 * day},
			times: every(start, day, 20),
			after: 31 * day,
			check: func(t *testing.T, kept []time.Time) {
				// Even the newest goes: nothing is kept beyond the maximum
				// age.
				if len(kept) != 0 {
					t.Errorf("kept %s after 31 days without a backup, want none", dates(kept))
				}
			},
		},
		{
			name:  "hourly for a week, then every ninth day",
			r:     DefaultRetention,
			times: append(every(start, time.Hour, 24*7), every(start.Add(8*day), 9*day, 80)...),
		},
		{
			name:  "every 7 to 10 days for three years",
			r:     DefaultRetention,
			times: cadence(start, []int{7, 8, 9, 10}, 3*365*day),
		},
		{
			name: "local times around midnight",
			r:    Retention{Daily: 3, MaxAge: MaxAge},
			// 00:30 in Amsterdam is the previous day in UTC: the days are
			// UTC days.
			times: every(time.Date(2026, 6, 1, 0, 30, 0, 0, amsterdam), 12*time.Hour, 10),
			check: func(t *testing.T, kept []time.Time) {
				// 00:30 in Amsterdam (22:30 UTC) is the newest of its UTC
				// day; the newest backup, 12:30, is kept as well.
				if len(kept) != 3 {
					t.Fatalf("kept %s, want three", dates(kept))
				}
				for _, k := range kept[:2] {
					if k.In(amsterdam).Hour() != 0 {
						t.Errorf("kept %s, want the 00:30 backups: the newest of their UTC day", k.In(amsterdam).Format(time.RFC3339))
					}
				}
			},
		},
		{
			name:  "same second twice",
			r:     Retention{Daily: 2, MaxAge: MaxAge},
			times: []time.Time{start, start, start.Add(day), start.Add(day)},
			check: func(t *testing.T, kept []time.Time) {
				if len(kept) != 2 {
					t.Errorf("kept %s, want one of each day", dates(kept))
				}
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			var kept []time.Time
			for i, at := range c.times {
				kept = expire(c.r, at.Add(time.Minute), append(kept, at))
				want := refKeep(c.r, at.Add(time.Minute), c.times[:i+1])
				if !sameTimes(kept, want) {
					t.Fatalf("after the backup of %s kept\n%s\nwant\n%s", at.Format(time.RFC3339), dates(kept), dates(setTimes(want)))
				}
				newest := at
				if !slices.ContainsFunc(kept, newest.Equal) {
					t.Fatalf("the newest backup %s is gone", at.Format(time.RFC3339))
				}
			}
			now := c.times[len(c.times)-1].Add(time.Minute + c.after)
			kept = expire(c.r, now, kept)
			for _, k := range kept {
				if now.Sub(k) > c.r.MaxAge {
					t.Errorf("%s survives, older than %v", k.Format(time.RFC3339), c.r.MaxAge)
				}
			}
			if c.check != nil {
				sortTimes(kept)
				c.check(t, kept)
			}
		})
	}
}

// cadence returns backup times from start, the gaps cycling through days,
// for span.
func cadence(start time.Time, days []int, span time.Duration) []time.Time {
	var out []time.Time
	for i, t := 0, start; t.Sub(start) <= span; i++ {
		out = append(out, t)
		t = t.Add(time.Duration(days[i%len(days)]) * day)
	}
	return out
}

func setTimes(m map[time.Time]bool) []time.Time {
	var out []time.Time
	for t := range m {
		out = append(out, t)
	}
	sortTimes(out)
	return out
}

// sameTimes compares kept times (a duplicate counts once: the rules keep one
// of two backups of the same instant) with a set.
func sameTimes(kept []time.Time, want map[time.Time]bool) bool {
	got := map[time.Time]bool{}
	for _, k := range kept {
		if got[k] {
			return false
		}
		got[k] = true
	}
	if len(got) != len(want) {
		return false
	}
	for t := range got {
		if !want[t] {
			return false
		}
	}
	return true
}

// FuzzRetention checks Keep's invariants on any schedule and rules: it never
// keeps a backup older than the maximum age, always keeps the newest young
// one, keeps nothing more than its counts allow, keeps all of what it kept
// when applied again (idempotent), and expiring after every backup ends
// where one expiry over all of them would (R31).
//
//	go test ./internal/backup -run '^$' -fuzz FuzzRetention -fuzztime 30s
func FuzzRetention(f *testing.F) {
	f.Add([]byte{0, 0x05, 0xa0}, uint8(14), uint8(8), uint8(24), uint16(730), uint32(60))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0x10, 0, 0xff}, uint8(2), uint8(0), uint8(1), uint16(30), uint32(0))
	f.Add([]byte{0x38, 0x40, 0x38, 0x40, 0xff, 0xff, 0, 0}, uint8(0), uint8(3), uint8(0), uint16(1), uint32(90000))
	f.Fuzz(func(t *testing.T, gaps []byte, daily, weekly, monthly uint8, maxAgeDays uint16, wait uint32) {
		r := Retention{Daily: int(daily % 20), Weekly: int(weekly % 12), Monthly: int(monthly % 30), MaxAge: time.Duration(1+int(maxAgeDays)%730) * day}
		if len(gaps) > 400 {
			gaps = gaps[:400]
		}
		// Each two bytes are the minutes to the next backup (up to about
		// 45 days; 0 is a second backup of the same instant).
		at := time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)
		var times []time.Time
		for i := 0; i+1 < len(gaps); i += 2 {
			at = at.Add(time.Duration(binary.BigEndian.Uint16(gaps[i:])) * time.Minute)
			times = append(times, at)
		}
		if len(times) == 0 {
			return
		}
		now := at.Add(time.Duration(wait%(800*24*60)) * time.Minute)
		keep := r.Keep(now, times)
		if len(keep) != len(times) {
			t.Fatalf("%d answers for %d backups", len(keep), len(times))
		}
		var kept []time.Time
		newestKept := false
		for i, k := range keep {
			if !k {
				continue
			}
			kept = append(kept, times[i])
			if now.Sub(times[i]) > r.MaxAge {
				t.Fatalf("kept %s at %s, older than %v", times[i], now, r.MaxAge)
			}
			if times[i].Equal(at) {
				newestKept = true
			}
		}
		if now.Sub(at) <= r.MaxAge && !newestKept {
			t.Fatalf("the newest backup %s is young at %s but not kept", at, now)
		}
		if len(kept) > r.Daily+r.Weekly+r.Monthly+1 {
			t.Fatalf("kept %d backups with rules %+v", len(kept), r)
		}
		for i, k := range r.Keep(now, kept) {
			if !k {
				t.Fatalf("applied again, Keep drops %s, which it kept", kept[i])
			}
		}
		// Expiring after every backup, as Expire does, ends in the same
		// place as one expiry at the end.
		var step []time.Time
		for _, b := range times {
			step = expire(r, b, append(step, b))
		}
		step = expire(r, now, step)
		if !slices.Equal(step, kept) {
			t.Fatalf("expiring after every backup keeps\n%s\none expiry at the end\n%s", dates(step), dates(kept))
		}
	})
}
