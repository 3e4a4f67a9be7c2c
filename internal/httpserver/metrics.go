package httpserver

import (
	"net/http"
	"strconv"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are kluis's Prometheus metrics, on a registry of their own and
// served on a separate listen address. Labels never hold personal data: the
// route is the pattern, not the path.
type Metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	logins   *prometheus.CounterVec
	appends  *prometheus.CounterVec
	unwraps  *prometheus.CounterVec
	throttle *prometheus.CounterVec
	jobRuns  *prometheus.CounterVec
	jobOK    *prometheus.GaugeVec
	alerts   *prometheus.GaugeVec
}

// NewMetrics creates the metrics with Go and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kluis_http_requests_total", Help: "HTTP requests by method, route pattern and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kluis_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kluis_logins_total", Help: "Login attempts by realm and outcome.",
		}, []string{"realm", "outcome"}),
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kluis_audit_appends_total", Help: "Audit events appended, by chain kind (platform, org).",
		}, []string{"chain"}),
		unwraps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kluis_key_unwraps_total",
			Help: "Keys unwrapped by the key store (R28), by organisation id (empty for the platform key) and key kind.",
		}, []string{"org", "kind"}),
		throttle: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kluis_throttle_events_total",
			Help: "Brute-force protection (R18, R26): locks and address blocks started, alarms raised, requests refused (kind).",
		}, []string{"kind"}),
		jobRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kluis_job_runs_total", Help: "Runs of scheduled jobs this node ended (or found abandoned), by job and outcome (ok, failed, abandoned).",
		}, []string{"job", "outcome"}),
		jobOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kluis_job_last_success_timestamp_seconds", Help: "When the last successful run of each scheduled job started (Unix seconds), on any node.",
		}, []string{"job"}),
		alerts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kluis_alerts_open", Help: "Open alerts for the operator, by kind (audit_chain_broken, job_failed, backup_failed, …).",
		}, []string{"kind"}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.logins, m.appends, m.unwraps, m.throttle, m.jobRuns, m.jobOK, m.alerts,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

func (m *Metrics) observeRequest(method, route string, status int, d time.Duration) {
	// Any method name reaches the server; only the standard ones become
	// label values, so a client cannot grow the series without end.
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		method = "other"
	}
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route).Observe(d.Seconds())
}

// AuditAppended counts appended audit events (the storage's observer).
func (m *Metrics) AuditAppended(chainKind string, n int) {
	m.appends.WithLabelValues(chainKind).Add(float64(n))
}

// KeyUnwrapped counts one unwrap of a key of organisation org: Metrics is
// the key store's keys.Observer, given to keys.OpenStore.
func (m *Metrics) KeyUnwrapped(org string, kind keys.Kind) {
	m.unwraps.WithLabelValues(org, string(kind)).Inc()
}

// Login counts a login attempt (the storage's observer).
func (m *Metrics) Login(realm kluis.Realm, outcome string) {
	m.logins.WithLabelValues(string(realm), outcome).Inc()
}

// Throttled counts a lock, block, alarm or throttled refusal (the storage's observer).
func (m *Metrics) Throttled(kind string) {
	m.throttle.WithLabelValues(kind).Inc()
}

// JobRan counts a run of a scheduled job that ended with outcome on this
// node, or that this node found abandoned.
func (m *Metrics) JobRan(job, outcome string) {
	m.jobRuns.WithLabelValues(job, outcome).Inc()
}

// JobSucceeded sets when the last successful run of job started.
func (m *Metrics) JobSucceeded(job string, at time.Time) {
	m.jobOK.WithLabelValues(job).Set(float64(at.UnixNano()) / 1e9)
}

// AlertsOpen sets how many alerts of kind are open.
func (m *Metrics) AlertsOpen(kind string, n int) {
	m.alerts.WithLabelValues(kind).Set(float64(n))
}
