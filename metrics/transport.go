package metrics

import (
	"net/http"
	"strings"
	"time"
)

// Transport times the HTTP calls a connector makes to its upstream, through
// next (nil: http.DefaultTransport).
func (m *Metrics) Transport(connector string, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &transport{m: m, connector: connector, next: next}
}

type transport struct {
	m         *Metrics
	connector string
	next      http.RoundTripper
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	t.m.Upstream(t.connector, operation(r.URL.Path), time.Since(start), err != nil || resp.StatusCode >= 500)
	return resp, err
}

// operation names an upstream call by its endpoint, from a fixed set: the
// paths are the upstream's, and a label must not take arbitrary values.
func operation(path string) string {
	switch {
	case strings.HasSuffix(path, "/.well-known/openid-configuration"):
		return "discovery"
	case strings.HasSuffix(path, "token"):
		return "token"
	case strings.HasSuffix(path, "userinfo"):
		return "userinfo"
	case strings.Contains(path, "jwk") || strings.Contains(path, "certs") || strings.Contains(path, "keys"):
		return "jwks"
	case strings.Contains(path, "metadata") || strings.HasSuffix(path, ".xml"):
		return "metadata"
	}
	return "other"
}
