package jobs

import (
	"fmt"
	"time"
)

// Schedule says when a job is due again after its last successful run.
type Schedule interface {
	// Next is when the job is due again after a successful run that
	// started at last. A job that never succeeded (last zero) is due at
	// once.
	Next(last time.Time) time.Time
	// Period is the usual time between two runs: a failed run is retried
	// after min(Period, MaxRetryWait).
	Period() time.Duration
	// String describes the schedule for people: "every 10m0s", "daily at 02:00 UTC".
	String() string
}

// MaxRetryWait is the longest a failed run waits before it is retried.
const MaxRetryWait = 10 * time.Minute

// RetryWait is how long a job on schedule s waits after a failed run.
func RetryWait(s Schedule) time.Duration { return min(s.Period(), MaxRetryWait) }

// Every is a schedule of one run every d, counted from the start of the
// last successful run. d must be positive.
func Every(d time.Duration) Schedule {
	if d <= 0 {
		panic("jobs: Every needs a positive duration")
	}
	return every(d)
}

type every time.Duration

func (e every) Next(last time.Time) time.Time {
	if last.IsZero() {
		return last
	}
	return last.Add(time.Duration(e))
}

func (e every) Period() time.Duration { return time.Duration(e) }
func (e every) String() string        { return "every " + time.Duration(e).String() }

// DailyAt is a schedule of one run a day at hour:minute UTC: the job is
// due at the first such time after the start of its last successful run
// (and at once when it never succeeded). hour is 0 to 23, minute 0 to 59.
func DailyAt(hour, minute int) Schedule {
	if hour < 0 || hour > 23 || minute < 0 || minute > 59 {
		panic("jobs: DailyAt needs an hour of 0 to 23 and a minute of 0 to 59")
	}
	return daily{hour, minute}
}

type daily struct{ hour, minute int }

func (d daily) Next(last time.Time) time.Time {
	if last.IsZero() {
		return last
	}
	last = last.UTC()
	at := time.Date(last.Year(), last.Month(), last.Day(), d.hour, d.minute, 0, 0, time.UTC)
	if !at.After(last) {
		at = at.AddDate(0, 0, 1)
	}
	return at
}

func (d daily) Period() time.Duration { return 24 * time.Hour }
func (d daily) String() string        { return fmt.Sprintf("daily at %02d:%02d UTC", d.hour, d.minute) }
