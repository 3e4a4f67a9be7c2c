package kluis

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Anonymous usage statistics, crash reports and the environment label
// (R37, R38, R48).
//
// Usage statistics are counters per feature per day and nothing else: a
// feature is a route's pattern ("GET /o/{org}/projects/{id}", never the
// path a request asked for, which holds slugs and ids) and a day is a UTC
// date. No person, address, organisation, session or request is recorded,
// so nothing needs anonymising later (R37); counts below
// UsageSuppressBelow are left out of everything that shows them, so a rare
// feature does not single anyone out. They are kluis's own: no third-party
// analytics, no script from anywhere else.
//
// A crash report is a recovered panic: its message and stack, the route's
// pattern, the request id and the time. It may still hold personal data
// after scrubbing (ScrubCrash), so it is sealed under the platform key,
// readable by operator admins only (every reading audited), and deleted
// CrashReportDays after the crash (R38).

// UsageSuppressBelow is the smallest count statistics show: a feature used
// fewer times on a day is left out.
const UsageSuppressBelow = 5

// UsageCount is how often a feature was used on one day.
type UsageCount struct {
	Day     string // the UTC date, YYYY-MM-DD
	Feature string // a route's method and pattern, or a named feature ("signin.totp")
	Count   int
}

// UsageReport is the statistics of a range of days, counts below
// UsageSuppressBelow left out.
type UsageReport struct {
	From, To string // UTC dates, inclusive
	Counts   []UsageCount
}

// UsageService keeps the usage counters (R37), in the database that every
// node shares.
type UsageService interface {
	// RecordUsage adds counts to the day's counters. kluis's own request
	// counter only (it batches in memory and flushes). A feature that is
	// not a route pattern or a named feature, or that looks like it holds
	// an identifier (ValidUsageFeature), is invalid_input and nothing is
	// added.
	RecordUsage(ctx context.Context, counts []UsageCount) error
	// UsageStatistics returns the counters of the days from to to (UTC
	// dates, inclusive, at most UsageMaxDays; a zero to is today, a zero
	// from UsageDefaultDays before to), counts below UsageSuppressBelow
	// left out, by day and feature. Operator admins (CanReadStatistics).
	// Errors: forbidden, invalid_input.
	UsageStatistics(ctx context.Context, actor Actor, from, to time.Time) (UsageReport, error)
}

// UsageMaxDays bounds the range of one statistics query; UsageDefaultDays
// is the range when none is asked for.
const (
	UsageMaxDays     = 366
	UsageDefaultDays = 30
)

// CanReadStatistics: operator admins (and the command line) read the usage
// statistics (R37). They hold no personal data, but they are the
// operator's, not the organisations'.
func CanReadStatistics(a Actor) bool { return a.HasOperatorRole(OperatorAdmin) || a.CLI }

// usageFeature is what a feature may look like: a method and a route
// pattern, or a dotted name.
var usageFeature = regexp.MustCompile(`^(?:[A-Z]{3,7} /[A-Za-z0-9/{}.$_-]*|[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+|unmatched)$`)

// identifierLike finds what must never be in a feature: a UUID, a long run
// of digits or hex, an e-mail address, an IP address.
var identifierLike = regexp.MustCompile(`(?i)[0-9a-f]{8}-[0-9a-f]{4}-|[0-9]{4,}|[0-9a-f]{12,}|@|\d+\.\d+\.\d+\.\d+|:[0-9a-f]*:`)

// ValidUsageFeature reports whether feature may be counted: a method and a
// route pattern, or a dotted name, of at most 200 bytes, with nothing in it
// that looks like an identifier. It is the store's second line of defence;
// the first is that the counter only ever sees routes' patterns.
func ValidUsageFeature(feature string) bool {
	return len(feature) <= 200 && usageFeature.MatchString(feature) && !identifierLike.MatchString(feature)
}

// CrashReportDays is how long a crash report is kept (R38).
const CrashReportDays = 30

// CrashReport is one recovered panic. Message and Stack are scrubbed
// (ScrubCrash) before they are sealed; a listing leaves them empty.
type CrashReport struct {
	ID        string
	At        time.Time
	Route     string // the route's pattern ("GET /o/{org}/projects/{id}"), or "job:NAME" for a scheduled job
	RequestID string // the request's X-Request-Id, as in the log; "" for a job
	Message   string
	Stack     string
}

// CrashInput is a panic as it was recovered, before scrubbing.
type CrashInput struct {
	Route     string
	RequestID string
	Panic     any
	Stack     []byte
}

// CrashService keeps crash reports (R38).
type CrashService interface {
	// RecordCrash scrubs a recovered panic, seals it under the platform key
	// and stores it; it returns the report's id. The server's panic
	// recovery and the scheduler only.
	RecordCrash(ctx context.Context, c CrashInput) (string, error)
	// CrashReports lists the reports kept, newest first, without message
	// and stack. Operator admins (CanReadCrashReports). Errors: forbidden.
	CrashReports(ctx context.Context, actor Actor) ([]CrashReport, error)
	// CrashReport opens one report; each reading is recorded in the
	// platform chain as crash.read. Operator admins. Errors: forbidden,
	// not_found.
	CrashReport(ctx context.Context, actor Actor, id string) (CrashReport, error)
	// ExpireCrashReports deletes the reports older than CrashReportDays and
	// returns how many; the deletion is recorded as crash.expire. The
	// scheduler only.
	ExpireCrashReports(ctx context.Context) (int, error)
}

// CanReadCrashReports: operator admins read crash reports, which may hold
// personal data despite the scrubbing (R38); no other role does.
func CanReadCrashReports(a Actor) bool { return a.HasOperatorRole(OperatorAdmin) }

// The patterns ScrubCrash removes, in order. Query strings first (they may
// hold anything), then key=value secrets, then addresses, ids, tokens and
// phone numbers. A scrub with keep set replaces only the matches keep
// refuses.
var crashScrubs = []struct {
	re   *regexp.Regexp
	with string
	keep func(string) bool
}{
	{re: regexp.MustCompile(`\?[^\s"'<>)]*`), with: "?[query]"},
	{re: regexp.MustCompile(`(?i)\b(bearer|basic)\s+[^\s"',;]+`), with: "$1 [token]"},
	{re: regexp.MustCompile(`(?i)\b(password|passwd|secret|token|authorization|cookie|api[_-]?key|session)(["']?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s,;&]+)`), with: "$1$2[redacted]"},
	{re: regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*`), with: "[email]"},
	{re: regexp.MustCompile(`kluis_pat_[A-Za-z0-9_-]+`), with: "[token]"},
	{re: regexp.MustCompile(`\b(?:\d{1,3}\.){3}\d{1,3}\b`), with: "[address]"},
	// IPv6: hex groups with "::", or with five colons or more (a time of
	// day, "03:22:05", stays).
	{re: regexp.MustCompile(`(?i)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}`), with: "[address]", keep: func(m string) bool {
		return !strings.Contains(m, "::") && strings.Count(m, ":") < 5
	}},
	{re: regexp.MustCompile(`(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`), with: "[id]"},
	// Tokens: base64url or hex runs of 20 characters or more that mix
	// digits and letters (ordinary words and Go names rarely do).
	{re: regexp.MustCompile(`[A-Za-z0-9_-]{20,}`), with: "[token]", keep: func(m string) bool { return !tokenLike(m) }},
	{re: regexp.MustCompile(`\+\d[\d -]{7,}\d|\b0\d{9}\b`), with: "[number]"},
}

// ScrubCrash removes from a panic's message or stack what looks like
// personal data or a secret: query strings, key=value secrets, e-mail and
// IP addresses, UUIDs, tokens and phone numbers. It is a best effort by
// pattern; that is why reports are sealed as well.
func ScrubCrash(s string) string {
	for _, sc := range crashScrubs {
		if sc.keep == nil {
			s = sc.re.ReplaceAllString(s, sc.with)
			continue
		}
		s = sc.re.ReplaceAllStringFunc(s, func(m string) string {
			if sc.keep(m) {
				return m
			}
			return sc.with
		})
	}
	return s
}

// tokenLike tells a secret-looking run from a long name in a stack: a
// token mixes digits and letters, or upper and lower case at length 32 or
// more without underscores ("handleFinishPasskeyRegistration" is 31).
func tokenLike(m string) bool {
	var digit, upper, lower bool
	for _, r := range m {
		switch {
		case r >= '0' && r <= '9':
			digit = true
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= 'a' && r <= 'z':
			lower = true
		}
	}
	return digit && (upper || lower) || upper && lower && !strings.Contains(m, "_") && len(m) >= 32
}

// Environment is what an instance is for (R48): production, or one of the
// environments that hold anonymised data. Outside production every page
// shows the label and every API answer carries it.
type Environment string

// The environments.
const (
	Production  Environment = "production"
	Acceptance  Environment = "acceptance"
	Test        Environment = "test"
	Development Environment = "development"
)

// Environments are the valid environments, production first.
var Environments = []Environment{Production, Acceptance, Test, Development}

// ParseEnvironment reads an environment's name; anything but the four
// names (lower-case, surrounding space ignored) is an error.
func ParseEnvironment(s string) (Environment, error) {
	e := Environment(strings.TrimSpace(s))
	for _, v := range Environments {
		if e == v {
			return e, nil
		}
	}
	return "", fmt.Errorf("%q is not an environment: want production, acceptance, test or development", strings.TrimSpace(s))
}
