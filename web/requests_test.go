package web

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

type observed struct {
	route  string
	status int
}

type recorder struct{ got []observed }

func (r *recorder) ObserveRequest(_ *http.Request, route string, status int, _ time.Duration) {
	r.got = append(r.got, observed{route, status})
}

func TestRequests(t *testing.T) {
	cases := []struct {
		name, path, header string
		status             int
		route              string
		keepID             bool
	}{
		{"a route with a parameter", "/users/42?code=SECRET-CODE", "proxy-id-1", http.StatusOK, "/users/:id", true},
		{"an error returned by the handler", "/fail", "", http.StatusTeapot, "/fail", false},
		{"no route", "/nothing/here", "", http.StatusNotFound, unmatched, false},
		{"an unsafe request ID is replaced", "/users/1", "bad id\nlevel=ERROR", http.StatusOK, "/users/:id", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			rec := &recorder{}
			e := echo.New()
			e.Use(Requests(slog.New(slog.NewJSONHandler(&logs, nil)), rec))
			e.GET("/users/:id", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
			e.GET("/fail", func(echo.Context) error { return echo.NewHTTPError(http.StatusTeapot) })
			req := httptest.NewRequest(http.MethodGet, c.path, nil)
			if c.header != "" {
				req.Header.Set("X-Request-ID", c.header)
			}
			w := httptest.NewRecorder()
			e.ServeHTTP(w, req)

			id := w.Header().Get("X-Request-ID")
			if id == "" || (id == c.header) != c.keepID {
				t.Errorf("X-Request-ID = %q (sent %q), want kept: %v", id, c.header, c.keepID)
			}
			if w.Code != c.status || len(rec.got) != 1 || rec.got[0] != (observed{c.route, c.status}) {
				t.Errorf("status %d, observed %+v; want %d at %s", w.Code, rec.got, c.status, c.route)
			}
			var line map[string]any
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
				t.Fatalf("not one JSON line: %v\n%s", err, logs.String())
			}
			if line["route"] != c.route || line["status"] != float64(c.status) || line["request_id"] != id ||
				line["method"] != "GET" || line["ip"] != "192.0.2.1" || line["duration"] == nil {
				t.Errorf("access log line = %v", line)
			}
			if strings.Contains(logs.String(), "SECRET-CODE") {
				t.Errorf("the query reached the log: %s", logs.String())
			}
		})
	}
}
