package metrics

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fedhub/fedhub/audit"
)

func TestAudit(t *testing.T) {
	m := New()
	for _, e := range []audit.Event{
		{Type: audit.LoginSucceeded, Connector: "corp-ad", Outcome: "success"},
		{Type: audit.LoginFailed, Connector: "corp-ad", Outcome: "failure"},
		{Type: audit.LoginFailed, Connector: "corp-ad", Outcome: "failure"},
		{Type: audit.FirstLoginDecision, Connector: "partner", Detail: "ENROLL after review"},
		{Type: audit.UserCreated},
	} {
		m.Audit(e)
	}
	cases := []struct {
		got  float64
		want float64
		what string
	}{
		{testutil.ToFloat64(m.logins.WithLabelValues("corp-ad", "success")), 1, "successful logins"},
		{testutil.ToFloat64(m.logins.WithLabelValues("corp-ad", "failure")), 2, "failed logins"},
		{testutil.ToFloat64(m.firstLogins.WithLabelValues("partner", "ENROLL")), 1, "ENROLL decisions"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestObserveRequest(t *testing.T) {
	cases := []struct {
		name, route, grant string
		status             int
		wantGrant, outcome string
	}{
		{"a code exchange", "/token", "authorization_code", 200, "authorization_code", "success"},
		{"a bad refresh", "/token", "refresh_token", 400, "refresh_token", "failure"},
		{"an unknown grant is not a label", "/token", "urn:made-up:" + strings.Repeat("x", 50), 400, "other", "failure"},
		{"a server error", "/token", "password", 500, "password", "error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := New()
			r := httptest.NewRequest(http.MethodPost, "/token", nil)
			r.PostForm = url.Values{"grant_type": {c.grant}}
			m.ObserveRequest(r, c.route, c.status, 5*time.Millisecond)
			if got := testutil.ToFloat64(m.tokens.WithLabelValues(c.wantGrant, c.outcome)); got != 1 {
				t.Errorf("tokens{%s,%s} = %v, want 1", c.wantGrant, c.outcome, got)
			}
			if n := testutil.CollectAndCount(m.tokens); n != 1 {
				t.Errorf("%d token series, want 1", n)
			}
			if n := testutil.CollectAndCount(m.requests); n != 1 {
				t.Errorf("%d request series, want 1", n)
			}
		})
	}
	m := New()
	m.ObserveRequest(httptest.NewRequest(http.MethodGet, "/authorize?code=x", nil), "/authorize", 302, time.Millisecond)
	if n := testutil.CollectAndCount(m.tokens); n != 0 {
		t.Errorf("a request to /authorize counted as %d tokens", n)
	}
}

func TestTransport(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth/token" {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer upstream.Close()
	m := New()
	client := &http.Client{Transport: m.Transport("partner-oidc", OIDCOperation)}
	for _, p := range []string{"/.well-known/openid-configuration", "/oauth/token", "/userinfo"} {
		resp, err := client.Get(upstream.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for op, errs := range map[string]float64{"discovery": 0, "token": 1, "userinfo": 0} {
		if n := testutil.CollectAndCount(m.upstream, "fedhub_upstream_request_duration_seconds"); n != 3 {
			t.Errorf("%d upstream series, want 3", n)
		}
		if got := testutil.ToFloat64(m.upstreamErrors.WithLabelValues("partner-oidc", op)); got != errs {
			t.Errorf("errors of %s = %v, want %v", op, got, errs)
		}
	}
}

func TestKeyAge(t *testing.T) {
	m := New()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	since := time.Time{}
	m.KeyAge(func() time.Time { return since }, func() time.Time { return start.Add(time.Hour) })
	if got := scrape(t, m); !strings.Contains(got, "fedhub_signing_key_age_seconds 0\n") {
		t.Errorf("no key loaded: want age 0 in\n%s", got)
	}
	since = start
	if got := scrape(t, m); !strings.Contains(got, "fedhub_signing_key_age_seconds 3600\n") {
		t.Errorf("want age 3600 in\n%s", got)
	}
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return w.Body.String()
}
