package manage

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"time"
)

// Check is one readiness condition; the instance is ready when every check
// passes.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
}

// Options are what the endpoints report.
type Options struct {
	Metrics http.Handler // /metrics
	Checks  []Check      // /readyz: each one must pass
	// Upstreams reports the upstreams' health in /readyz without deciding it:
	// an instance whose LDAP server is down still serves every other login.
	Upstreams func(ctx context.Context) any
	// Profiling serves Go's runtime profiles under /debug/pprof/.
	Profiling bool
}

// readyTimeout bounds /readyz: probes (Kubernetes, compose) time out too.
const readyTimeout = 3 * time.Second

// Handler serves the management endpoints, and everything else through
// public when it is not nil (management.listen is the public address).
func Handler(o Options, public http.Handler) http.Handler {
	mux := http.NewServeMux()
	if public != nil {
		mux.Handle("/", public)
	}
	mux.Handle("GET /metrics", o.Metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		status, body := ready(ctx, o)
		writeJSON(w, status, body)
	})
	if o.Profiling {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index) // and each profile by name: heap, goroutine, allocs…
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// readiness is the /readyz answer.
type readiness struct {
	Status    string            `json:"status"` // ready | unready
	Checks    map[string]string `json:"checks"` // name → ok or the error
	Upstreams any               `json:"upstreams,omitempty"`
}

func ready(ctx context.Context, o Options) (int, readiness) {
	status, out := http.StatusOK, readiness{Status: "ready", Checks: map[string]string{}}
	for _, c := range o.Checks {
		out.Checks[c.Name] = "ok"
		if err := c.Run(ctx); err != nil {
			status, out.Status, out.Checks[c.Name] = http.StatusServiceUnavailable, "unready", err.Error()
		}
	}
	if o.Upstreams != nil {
		out.Upstreams = o.Upstreams(ctx)
	}
	return status, out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away: nothing to do
}
