package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fedhub/fedhub/e2e/peers"
)

// TestManagement checks the management listener: /metrics counts what a real
// login and token requests did, /healthz answers, /readyz turns unready when
// the database is gone, and none of them is on the public listener.
func TestManagement(t *testing.T) {
	t.Run("metrics move with a login", testMetricsAfterLogin)
	t.Run("not on the public listener", testManagementNotPublic)
	t.Run("profiles only when configured", testProfiling)
	t.Run("readyz without a database", testReadyzDatabaseGone)
	t.Run("readyz without the SQLite file", testReadyzFileGone)
}

// opScrape returns the value of every series on the management listener's
// /metrics, by its name and labels as exposed.
func opScrape(t testing.TB, s *Server) map[string]float64 {
	t.Helper()
	resp, err := http.Get(s.Mgmt + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics = %d:\n%s", resp.StatusCode, body)
	}
	out := map[string]float64{}
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(strings.TrimSpace(line[i+1:]), 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

func testMetricsAfterLogin(t *testing.T) {
	s := Start(t)
	before := opScrape(t, s)
	ocCodeFlow(t, s, NewBrowser(t), ocRP, AuthParams())
	b := NewBrowser(t)
	if resp, _ := b.Submit(b.OpenLogin(s, s.URL+"/authorize?"+AuthParams().Encode()), "alice", "wrong-password"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a wrong password answered %d, want 401", resp.StatusCode)
	}
	after := opScrape(t, s)
	for _, c := range []struct {
		series string
		moved  float64
	}{
		{`fedhub_logins_total{connector="local",outcome="success"}`, 1},
		{`fedhub_logins_total{connector="local",outcome="failure"}`, 1},
		{`fedhub_tokens_total{grant_type="authorization_code",outcome="success"}`, 1},
		{`fedhub_http_request_duration_seconds_count{code="3xx",method="GET",route="/authorize"}`, 2},
		{`fedhub_http_request_duration_seconds_count{code="2xx",method="POST",route="/token"}`, 1},
	} {
		if got := after[c.series] - before[c.series]; got != c.moved {
			t.Errorf("%s moved by %v, want %v", c.series, got, c.moved)
		}
	}
	for series := range after {
		if strings.Contains(series, "route=") && !strings.Contains(series, `route="/`) && !strings.Contains(series, `route="unmatched"`) {
			t.Errorf("a route label that is not a route pattern: %s", series)
		}
		if strings.Contains(series, "code=") && strings.Contains(series, `route="/login"`) && strings.Contains(series, "req=") {
			t.Errorf("a raw path in a label: %s", series)
		}
	}
	for _, name := range []string{"fedhub_signing_key_age_seconds", `go_sql_open_connections{db_name="fedhub"}`, "fedhub_bruteforce_lockouts_total"} {
		if _, ok := after[name]; !ok {
			t.Errorf("no %s in /metrics", name)
		}
	}
}

func testManagementNotPublic(t *testing.T) {
	s := Start(t)
	for _, p := range []string{"/metrics", "/healthz", "/readyz"} {
		resp, err := http.Get(s.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("public %s = %d, want 404", p, resp.StatusCode)
		}
	}
	resp, err := http.Get(s.Mgmt + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz = %d %s", resp.StatusCode, body)
	}
}

// opReadyz returns /readyz's status and body.
func opReadyz(t testing.TB, s *Server) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(s.Mgmt + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(readBody(t, resp)), &body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// opWantUnready polls /readyz until it says the database check failed.
func opWantUnready(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body := opReadyz(t, s)
		checks, _ := body["checks"].(map[string]any)
		if status == http.StatusServiceUnavailable && body["status"] == "unready" && checks["database"] != "ok" && checks["signing_key"] == "ok" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %v with the database gone, want 503 naming the database", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func testReadyzFileGone(t *testing.T) {
	s := Start(t)
	if status, body := opReadyz(t, s); status != http.StatusOK {
		t.Fatalf("/readyz = %d %v, want ready", status, body)
	}
	if err := os.Rename(filepath.Join(filepath.Dir(s.Config), "fedhub.db"), filepath.Join(t.TempDir(), "moved.db")); err != nil {
		t.Fatal(err)
	}
	opWantUnready(t, s)
}

func testReadyzDatabaseGone(t *testing.T) {
	dsn := peers.Postgres(t)
	cfg := strings.Replace(defaultConfig, "  driver: sqlite\n  dsn: %[3]s\n", "  driver: postgres\n  dsn: ${OP_PG_DSN}\n", 1)
	s := Start(t, WithConfig(cfg), WithEnv("OP_PG_DSN="+dsn))
	if status, body := opReadyz(t, s); status != http.StatusOK || body["status"] != "ready" {
		t.Fatalf("/readyz = %d %v, want ready", status, body)
	}
	peers.CutOff(t, dsn)
	opWantUnready(t, s)
	resp, err := http.Get(s.Mgmt + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	if readBody(t, resp); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz = %d without a database, want 200: the process is up", resp.StatusCode)
	}
}

// opWantCounted wants every series on s's /metrics with a count above 0:
// on a fresh server, what one login through a connector moves.
func opWantCounted(t testing.TB, s *Server, series ...string) {
	t.Helper()
	got := opScrape(t, s)
	for _, name := range series {
		if got[name] <= 0 {
			t.Errorf("%s = %v after a login, want it counted", name, got[name])
		}
	}
}

// testProfiling: Go's profiles are on the management listener with
// management.profiling, and nowhere without it; a CPU profile samples.
func testProfiling(t *testing.T) {
	plain := Start(t)
	on := Start(t, WithConfig(defaultConfig+"management:\n  profiling: true\n"))
	for _, c := range []struct {
		base string
		want int
	}{{plain.Mgmt, http.StatusNotFound}, {plain.URL, http.StatusNotFound}, {on.URL, http.StatusNotFound}, {on.Mgmt, http.StatusOK}} {
		resp, err := http.Get(c.base + "/debug/pprof/profile?seconds=1")
		if err != nil {
			t.Fatal(err)
		}
		body := readBody(t, resp)
		if resp.StatusCode != c.want {
			t.Errorf("%s/debug/pprof/profile = %d, want %d", c.base, resp.StatusCode, c.want)
		}
		// A CPU profile is gzip-compressed protobuf.
		if c.want == http.StatusOK && !strings.HasPrefix(body, "\x1f\x8b") {
			t.Errorf("%s/debug/pprof/profile is not a profile: %.40q", c.base, body)
		}
	}
}
