package metrics

import (
	"database/sql"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fedhub/fedhub/audit"
)

// Metrics are fedhub's metrics and their registry.
type Metrics struct {
	reg            *prometheus.Registry
	logins         *prometheus.CounterVec
	firstLogins    *prometheus.CounterVec
	tokens         *prometheus.CounterVec
	requests       *prometheus.HistogramVec
	upstream       *prometheus.HistogramVec
	upstreamErrors *prometheus.CounterVec
	lockouts       prometheus.Counter
	rechecks       *prometheus.CounterVec
}

// New registers fedhub's metrics, with the Go runtime's and the process's, in
// a registry of their own.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fedhub_logins_total",
			Help: "Sign-ins by connector and outcome (success, failure)."}, []string{"connector", "outcome"}),
		firstLogins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fedhub_first_login_decisions_total",
			Help: "First-login decisions by connector and decision (ENROLL, LINK, AUTH, DENY)."}, []string{"connector", "decision"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fedhub_tokens_total",
			Help: "Token endpoint requests by grant type and outcome (success, failure, error)."}, []string{"grant_type", "outcome"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fedhub_http_request_duration_seconds",
			Help: "HTTP request latency by route pattern, method and status class.", Buckets: prometheus.DefBuckets},
			[]string{"route", "method", "code"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fedhub_upstream_request_duration_seconds",
			Help:    "Calls to upstream identity providers by connector and operation (ldap bind/search, oidc token/userinfo, saml metadata).",
			Buckets: prometheus.DefBuckets}, []string{"connector", "operation"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fedhub_upstream_errors_total",
			Help: "Upstream calls that failed, by connector and operation."}, []string{"connector", "operation"}),
		lockouts: prometheus.NewCounter(prometheus.CounterOpts{Name: "fedhub_bruteforce_lockouts_total",
			Help: "Attempts refused because the account or the address must wait (brute-force protection)."}),
		rechecks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fedhub_upstream_recheck_failures_total",
			Help: "Re-checks after login that the upstream refused or could not answer, by connector and outcome (refused, unreachable)."},
			[]string{"connector", "outcome"}),
	}
	reg.MustRegister(m.logins, m.firstLogins, m.tokens, m.requests, m.upstream, m.upstreamErrors, m.lockouts, m.rechecks,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Database reports the connection pool of db (go_sql_* metrics).
func (m *Metrics) Database(db *sql.DB) {
	m.reg.MustRegister(collectors.NewDBStatsCollector(db, "fedhub"))
}

// KeyAge reports the age of the key that signs now; since returns when it
// began to sign (zero: no key is loaded, reported as 0).
func (m *Metrics) KeyAge(since func() time.Time, now func() time.Time) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fedhub_signing_key_age_seconds",
		Help: "How long the key that signs now has been signing."}, func() float64 {
		t := since()
		if t.IsZero() {
			return 0
		}
		return now().Sub(t).Seconds()
	}))
}

// Audit counts what an audit event says about logins and first-login
// decisions (audit.Log.Observe calls it for every event written).
func (m *Metrics) Audit(e audit.Event) {
	switch e.Type {
	case audit.LoginSucceeded, audit.LoginFailed:
		m.logins.WithLabelValues(e.Connector, e.Outcome).Inc()
	case audit.FirstLoginDecision:
		decision, _, _ := strings.Cut(e.Detail, " ") // "ENROLL after review": the action only
		m.firstLogins.WithLabelValues(e.Connector, decision).Inc()
	}
}

// tokenRoute is the token endpoint's route, whose requests are also counted by grant.
const tokenRoute = "/token"

// grants are the grant types counted by name; any other counts as "other"
// (a label value from a client must not grow the series without bound).
var grants = []string{"authorization_code", "refresh_token", "client_credentials", "password"}

// ObserveRequest records a request that was answered: route is the matched
// route pattern, never the raw path. r's form is read only as the handler
// left it parsed (the token endpoint's grant type).
func (m *Metrics) ObserveRequest(r *http.Request, route string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, r.Method, statusClass(status)).Observe(d.Seconds())
	if route != tokenRoute {
		return
	}
	grant := "other"
	if g := r.PostForm.Get("grant_type"); g != "" {
		for _, known := range grants {
			if g == known {
				grant = known
			}
		}
	}
	outcome := "success"
	switch {
	case status >= 500:
		outcome = "error"
	case status >= 400:
		outcome = "failure"
	}
	m.tokens.WithLabelValues(grant, outcome).Inc()
}

// statusClasses are the label values of status codes: one per class keeps the
// histogram's series few.
var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

func statusClass(status int) string {
	if status >= 100 && status < 600 {
		return statusClasses[status/100-1]
	}
	return strconv.Itoa(status)
}

// Lockout counts one attempt refused by brute-force protection.
func (m *Metrics) Lockout() { m.lockouts.Inc() }

// Recheck outcomes that are counted.
const (
	RecheckRefused     = "refused"
	RecheckUnreachable = "unreachable"
)

// Recheck counts a re-check after login that did not say yes.
func (m *Metrics) Recheck(connector, outcome string) {
	m.rechecks.WithLabelValues(connector, outcome).Inc()
}

// Upstream records one call to an upstream: its duration and whether it failed.
func (m *Metrics) Upstream(connector, operation string, d time.Duration, failed bool) {
	m.upstream.WithLabelValues(connector, operation).Observe(d.Seconds())
	if failed {
		m.upstreamErrors.WithLabelValues(connector, operation).Inc()
	}
}
