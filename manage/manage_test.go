package manage

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestReadyz(t *testing.T) {
	pass := func(context.Context) error { return nil }
	fail := func(context.Context) error { return errors.New("database is unreachable") }
	upstreams := func(context.Context) any { return []map[string]any{{"id": "corp-ad", "healthy": false}} }
	cases := []struct {
		name   string
		checks []Check
		status int
	}{
		{"every check passes", []Check{{"database", pass}, {"signing_key", pass}}, http.StatusOK},
		{"the database fails", []Check{{"database", fail}, {"signing_key", pass}}, http.StatusServiceUnavailable},
		{"no signing key", []Check{{"database", pass}, {"signing_key", fail}}, http.StatusServiceUnavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := Handler(Options{Metrics: http.NotFoundHandler(), Checks: c.checks, Upstreams: upstreams}, nil)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			var body readiness
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if w.Code != c.status || body.Upstreams == nil {
				t.Errorf("/readyz = %d %s; want %d with the upstreams reported (a down upstream is not fatal)", w.Code, w.Body, c.status)
			}
			for _, ch := range c.checks {
				if err := ch.Run(t.Context()); err != nil && body.Checks[ch.Name] != err.Error() {
					t.Errorf("check %s = %q, want its error", ch.Name, body.Checks[ch.Name])
				}
			}
		})
	}
}

func TestHealthz(t *testing.T) {
	h := Handler(Options{Metrics: http.NotFoundHandler(), Checks: []Check{{"database", func(context.Context) error { return errors.New("down") }}}}, nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if w.Code != http.StatusOK {
		t.Errorf("/healthz = %d, want 200 while the process is up, whatever the database", w.Code)
	}
}

func TestPublicListener(t *testing.T) {
	public := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusAccepted) })
	h := Handler(Options{Metrics: metrics}, public)
	for path, want := range map[string]int{"/metrics": http.StatusAccepted, "/healthz": http.StatusOK, "/authorize": http.StatusTeapot} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != want {
			t.Errorf("%s = %d, want %d", path, w.Code, want)
		}
	}
}

// Profiles are served only when management.profiling is on.
func TestProfiling(t *testing.T) {
	for _, on := range []bool{false, true} {
		h := Handler(Options{Metrics: http.NotFoundHandler(), Profiling: on}, nil)
		for path, want := range map[string]int{"/debug/pprof/": http.StatusOK, "/debug/pprof/heap": http.StatusOK, "/debug/pprof/cmdline": http.StatusOK} {
			if !on {
				want = http.StatusNotFound
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
			if w.Code != want {
				t.Errorf("profiling %v: %s = %d, want %d", on, path, w.Code, want)
			}
		}
	}
}
