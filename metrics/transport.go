package metrics

import (
	"net/http"
	"strings"
	"time"
)

// Transport times the HTTP calls a connector makes to its upstream, each
// named by operation from its URL path, through http.DefaultTransport.
func (m *Metrics) Transport(connector string, operation func(path string) string) http.RoundTripper {
	return &transport{m: m, connector: connector, operation: operation, next: http.DefaultTransport}
}

type transport struct {
	m         *Metrics
	connector string
	operation func(path string) string
	next      http.RoundTripper
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	t.m.Upstream(t.connector, t.operation(r.URL.Path), time.Since(start), err != nil || resp.StatusCode >= 500)
	return resp, err
}

// OIDCOperation names a call to an OpenID Provider by its endpoint, from a
// fixed set: the paths are the upstream's, and a label must not take
// arbitrary values.
func OIDCOperation(path string) string {
	switch {
	case strings.HasSuffix(path, "/.well-known/openid-configuration"):
		return "discovery"
	case strings.HasSuffix(path, "token"):
		return "token"
	case strings.HasSuffix(path, "userinfo"):
		return "userinfo"
	case strings.Contains(path, "jwk") || strings.Contains(path, "certs") || strings.Contains(path, "keys"):
		return "jwks"
	}
	return "other"
}

// Metadata names every call "metadata": the only calls a SAML connector makes.
func Metadata(string) string { return "metadata" }
