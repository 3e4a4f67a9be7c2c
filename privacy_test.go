package kluis_test

import (
	"testing"
	"time"

	"github.com/kluis/kluis"
)

// R34, GDPR Art. 12(3): a request is due one calendar month after it was
// received, at the end of the day bearing the same date, or of the last day
// of a shorter month.
func TestPrivacyRequestDueIsOneCalendarMonthLaterAtTheEndOfTheDay(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct{ received, due string }{
		{"2026-01-15T10:00:00Z", "2026-02-15T23:59:59.999999Z"},
		{"2026-01-31T08:30:00Z", "2026-02-28T23:59:59.999999Z"},
		{"2028-01-31T08:30:00Z", "2028-02-29T23:59:59.999999Z"}, // a leap year
		{"2026-03-31T00:00:00Z", "2026-04-30T23:59:59.999999Z"},
		{"2026-12-08T23:59:59Z", "2027-01-08T23:59:59.999999Z"},
		{"2026-12-31T12:00:00Z", "2027-01-31T23:59:59.999999Z"},
		{"2026-06-01T01:00:00+02:00", "2026-06-30T23:59:59.999999Z"}, // 31 May in UTC
	} {
		if got := kluis.PrivacyRequestDue(at(c.received)); !got.Equal(at(c.due)) {
			t.Errorf("received %s: due %s, want %s", c.received, got.Format(time.RFC3339Nano), c.due)
		}
	}
	// Extended by two further months (Art. 12(3)): three months in all.
	if got, want := kluis.PrivacyRequestDueIn(at("2026-01-31T08:30:00Z"), 3), at("2026-04-30T23:59:59.999999Z"); !got.Equal(want) {
		t.Errorf("extended: due %s, want %s", got, want)
	}
	if got, want := kluis.PrivacyRequestDueIn(at("2026-11-30T08:30:00Z"), 3), at("2027-02-28T23:59:59.999999Z"); !got.Equal(want) {
		t.Errorf("extended over the year's end: due %s, want %s", got, want)
	}
}

// R34: the register reminds managers a week before the due date, a day
// before, and once overdue; never before, and nothing for a request due
// later than a week.
func TestReminderDueStagesStartOnTheirMomentNotBefore(t *testing.T) {
	due := time.Date(2026, 2, 15, 23, 59, 59, 999999000, time.UTC)
	week, day := due.Add(-7*24*time.Hour), due.Add(-24*time.Hour)
	for _, c := range []struct {
		now  time.Time
		want int
	}{
		{due.AddDate(0, 0, -20), kluis.ReminderNone},
		{week.Add(-time.Microsecond), kluis.ReminderNone},
		{week, kluis.ReminderWeek},
		{day.Add(-time.Microsecond), kluis.ReminderWeek},
		{day, kluis.ReminderDay},
		{due, kluis.ReminderDay},
		{due.Add(time.Microsecond), kluis.ReminderOverdue},
	} {
		if got := kluis.ReminderDue(due, c.now); got != c.want {
			t.Errorf("at %s: stage %d, want %d", c.now.Format(time.RFC3339Nano), got, c.want)
		}
	}
}

// R34: handling a request is checked before it reaches the store: known
// statuses, an outcome of bounded length without control characters, and
// something to change; the privacy settings need an https authority.
func TestPrivacyInputsRefuseWhatTheRegisterCannotHold(t *testing.T) {
	bad := kluis.PrivacyRequestStatus("closed")
	long := string(make([]rune, kluis.MaxOutcomeLength+1))
	ctl := "done\x00"
	for name, u := range map[string]kluis.PrivacyRequestUpdate{
		"nothing":        {},
		"unknown status": {Status: &bad},
		"long outcome":   {Outcome: &long},
		"control":        {Outcome: &ctl},
	} {
		if err := u.Normalize().Validate(); kluis.ErrorCode(err) != kluis.EInvalid {
			t.Errorf("%s: got %v, want invalid_input", name, err)
		}
	}
	if err := (kluis.PrivacyRequestInput{Type: "deletion"}).Validate(); kluis.ErrorCode(err) != kluis.EInvalid {
		t.Errorf("unknown type: got %v, want invalid_input", err)
	}
	for _, u := range []string{"http://autoriteitpersoonsgegevens.nl", "javascript:alert(1)", "", "https://user@example.org"} {
		s := kluis.DefaultPrivacySettings()
		s.AuthorityURL = u
		if err := s.Normalize().Validate(); kluis.ErrorCode(err) != kluis.EInvalid {
			t.Errorf("authority %q: got %v, want invalid_input", u, err)
		}
	}
	if err := kluis.DefaultPrivacySettings().Validate(); err != nil {
		t.Errorf("the defaults: %v", err)
	}
}
