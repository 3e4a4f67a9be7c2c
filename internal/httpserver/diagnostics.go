package httpserver

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kluis/kluis"
)

// Anonymous usage statistics, crash reports and the environment label
// (R37, R38, R48). The middleware (begin) calls into this file at three
// points: every answer gets the environment's header, a recovered panic
// becomes a crash report, and every request that matched a route counts
// its pattern.

// UsageCounter counts requests per route pattern per UTC day in memory and
// flushes the counts to the shared counters (kluis.UsageService): one
// database write per flush, not per request (R37). It only ever sees a
// route's pattern ("GET /o/{org}/projects/{id}"), never the path asked for.
// Counts not yet flushed are lost when the process dies: statistics need
// not be exact.
type UsageCounter struct {
	svc kluis.UsageService
	now func() time.Time
	// routes are the features a request's route may count as: the route
	// table's patterns, and "unmatched". Anything else the counter is
	// handed is a named feature (useFeature) and must be a dotted name.
	routes map[string]bool

	mu     sync.Mutex
	counts map[usageKey]int
}

type usageKey struct{ day, feature string }

// NewUsageCounter returns a counter that flushes to svc; now is the
// store's clock, which decides the day.
func NewUsageCounter(svc kluis.UsageService, now func() time.Time) *UsageCounter {
	u := &UsageCounter{svc: svc, now: now, counts: map[usageKey]int{}, routes: map[string]bool{"unmatched": true}}
	for _, rt := range Routes() {
		u.routes[rt.Method+" "+rt.Pattern] = true
	}
	return u
}

// uncounted are the routes the statistics leave out: probes of load
// balancers and the pages' static files say nothing about use.
var uncounted = map[string]bool{
	"GET /healthz": true, "GET /readyz": true, "GET /static/{file}": true,
}

// count counts one use of feature: a route of the table (a method and
// pattern), "unmatched", or a named feature (a dotted name). Anything else
// is not counted: the features are a closed set. A nil counter counts
// nothing.
func (u *UsageCounter) count(feature string) {
	if u == nil || uncounted[feature] || !kluis.ValidUsageFeature(feature) {
		return
	}
	if strings.Contains(feature, " ") && !u.routes[feature] {
		return
	}
	k := usageKey{day: u.now().UTC().Format("2006-01-02"), feature: feature}
	u.mu.Lock()
	u.counts[k]++
	u.mu.Unlock()
}

// countUse counts the request's route and the named feature its handler
// used, if any.
func (s *server) countUse(st *reqState) {
	s.usage.count(st.route)
	if st.feature != "" {
		s.usage.count(st.feature)
	}
}

// useFeature names a feature the request used, beyond its route, for the
// statistics: a dotted name such as "signin.totp", never a value from the
// request (ValidUsageFeature refuses anything that looks like one).
func useFeature(r *http.Request, name string) { state(r).feature = name }

// Flush adds the counts so far to the shared counters. On failure they are
// kept for the next flush.
func (u *UsageCounter) Flush(ctx context.Context) error {
	u.mu.Lock()
	batch := u.counts
	u.counts = map[usageKey]int{}
	u.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	list := make([]kluis.UsageCount, 0, len(batch))
	for k, n := range batch {
		list = append(list, kluis.UsageCount{Day: k.day, Feature: k.feature, Count: n})
	}
	err := u.svc.RecordUsage(ctx, list)
	if err != nil {
		u.mu.Lock()
		for k, n := range batch {
			u.counts[k] += n
		}
		u.mu.Unlock()
	}
	return err
}

// Run flushes every interval until ctx ends, and once more then.
func (u *UsageCounter) Run(ctx context.Context, every time.Duration, onError func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fin, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := u.Flush(fin); err != nil {
				onError(err)
			}
			return
		case <-t.C:
			if err := u.Flush(ctx); err != nil && ctx.Err() == nil {
				onError(err)
			}
		}
	}
}

// EnvironmentHeader names the environment on every answer of an instance
// outside production (R48).
const EnvironmentHeader = "Kluis-Environment"

// labelEnvironment sets the environment's header outside production.
func (s *server) labelEnvironment(h http.Header) {
	if s.env != "" && s.env != kluis.Production {
		h.Set(EnvironmentHeader, string(s.env))
	}
}

// Environment is the instance's environment outside production, for the
// banner every page shows (R48); "" in production.
func (p *pageData) Environment() string {
	if p.srv == nil || p.srv.env == kluis.Production {
		return ""
	}
	return string(p.srv.env)
}

// recordCrash keeps a recovered panic as a crash report (R38): scrubbed
// and sealed by the service. Only the report's id goes to the log.
func (s *server) recordCrash(r *http.Request, st *reqState, p any, stack []byte) {
	if s.crashes == nil {
		st.log.Error("panic", "route", st.route, "panic", kluis.ScrubCrash(fmt.Sprint(p)))
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	id, err := s.crashes.RecordCrash(ctx, kluis.CrashInput{Route: st.route, RequestID: st.id, Panic: p, Stack: stack})
	if err != nil {
		// Not stored: the log is the only trace of the fault, scrubbed.
		st.log.Error("panic", "route", st.route, "panic", kluis.ScrubCrash(fmt.Sprint(p)))
		st.log.Error("the crash report could not be stored", "err", err.Error())
		return
	}
	// The message stays in the sealed report: scrubbing by pattern
	// misses names, so the log gets the route and the report's id only.
	st.log.Error("panic", "route", st.route, "crash_report", id)
}

// statisticsJSON is the answer of GET /api/v1/operator/statistics.
type statisticsJSON struct {
	From    string           `json:"from"`
	To      string           `json:"to"`
	Minimum int              `json:"minimum"`
	Counts  []usageCountJSON `json:"counts"`
}

type usageCountJSON struct {
	Day     string `json:"day"`
	Feature string `json:"feature"`
	Count   int    `json:"count"`
}

// statisticsRange reads ?from= and ?to= (UTC dates, YYYY-MM-DD); absent
// ones are zero (the service's defaults).
func statisticsRange(r *http.Request) (from, to time.Time, err error) {
	bad := map[string]string{}
	for name, dst := range map[string]*time.Time{"from": &from, "to": &to} {
		if v := r.URL.Query().Get(name); v != "" {
			t, perr := time.Parse("2006-01-02", v)
			if perr != nil {
				bad[name] = "must be a date as YYYY-MM-DD"
				continue
			}
			*dst = t
		}
	}
	if len(bad) > 0 {
		return from, to, kluis.Invalid(bad)
	}
	return from, to, nil
}

// handleUsageStatistics answers operator admins the usage counters of a
// range of days, counts below five left out (R37).
func handleUsageStatistics(usage kluis.UsageService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		from, to, err := statisticsRange(r)
		if err != nil {
			return err
		}
		rep, err := usage.UsageStatistics(r.Context(), state(r).actor, from, to)
		if err != nil {
			return err
		}
		out := statisticsJSON{From: rep.From, To: rep.To, Minimum: kluis.UsageSuppressBelow, Counts: []usageCountJSON{}}
		for _, c := range rep.Counts {
			out.Counts = append(out.Counts, usageCountJSON{Day: c.Day, Feature: c.Feature, Count: c.Count})
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// crashJSON is a crash report in the API; a listing leaves out message and
// stack.
type crashJSON struct {
	ID        string    `json:"id"`
	At        time.Time `json:"at"`
	Route     string    `json:"route"`
	RequestID string    `json:"request_id"`
	Message   *string   `json:"message,omitempty"`
	Stack     *string   `json:"stack,omitempty"`
}

func crashAnswer(c kluis.CrashReport, full bool) crashJSON {
	out := crashJSON{ID: c.ID, At: c.At.UTC(), Route: c.Route, RequestID: c.RequestID}
	if full {
		out.Message, out.Stack = &c.Message, &c.Stack
	}
	return out
}

// handleListCrashReports lists the crash reports kept (R38), operator
// admins only.
func handleListCrashReports(crashes kluis.CrashService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		list, err := crashes.CrashReports(r.Context(), state(r).actor)
		if err != nil {
			return err
		}
		out := struct {
			Reports []crashJSON `json:"reports"`
		}{Reports: []crashJSON{}}
		for _, c := range list {
			out.Reports = append(out.Reports, crashAnswer(c, false))
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// handleGetCrashReport opens one crash report, recorded in the platform
// chain as crash.read.
func handleGetCrashReport(crashes kluis.CrashService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		c, err := crashes.CrashReport(r.Context(), state(r).actor, r.PathValue("id"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, crashAnswer(c, true))
		return nil
	}
}

// statisticsPage is what the operator's statistics page shows.
type statisticsPage struct {
	Report  kluis.UsageReport
	Minimum int
}

// handleStatisticsPage shows operator admins the usage counters (R37).
func handleStatisticsPage(usage kluis.UsageService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		from, to, err := statisticsRange(r)
		if err != nil {
			return err
		}
		rep, err := usage.UsageStatistics(r.Context(), state(r).actor, from, to)
		if err != nil {
			return err
		}
		p.title("operator_statistics.title")
		p.Wide = true
		p.Data = statisticsPage{Report: rep, Minimum: kluis.UsageSuppressBelow}
		return renderPage(w, r, p, http.StatusOK, "operator_statistics")
	}
}

// handleCrashReportsPage lists the crash reports kept (R38).
func handleCrashReportsPage(crashes kluis.CrashService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		list, err := crashes.CrashReports(r.Context(), state(r).actor)
		if err != nil {
			return err
		}
		p.title("operator_crashes.title")
		p.Wide = true
		p.Data = list
		return renderPage(w, r, p, http.StatusOK, "operator_crashes")
	}
}

// handleCrashReportPage shows one crash report; the service records the
// reading.
func handleCrashReportPage(crashes kluis.CrashService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		c, err := crashes.CrashReport(r.Context(), state(r).actor, r.PathValue("id"))
		if err != nil {
			return err
		}
		p.title("operator_crash.title")
		p.Wide = true
		p.Data = c
		return renderPage(w, r, p, http.StatusOK, "operator_crash")
	}
}
