package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/templates"
	"github.com/fedhub/fedhub/web"
)

func TestNewLogger(t *testing.T) {
	cases := []struct {
		format, level string
		json          bool
		lines         int // of one debug, one info and one warn
	}{
		{"text", "info", false, 2},
		{"json", "debug", true, 3},
		{"json", "warn", true, 1},
		{"text", "error", false, 0},
	}
	for _, c := range cases {
		t.Run(c.format+" "+c.level, func(t *testing.T) {
			var out bytes.Buffer
			level := new(slog.LevelVar)
			log := newLogger(&out, config.Log{Format: c.format, Level: c.level}, level)
			log.Debug("d")
			log.Info("i")
			log.Warn("w")
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if out.Len() == 0 {
				lines = nil
			}
			if len(lines) != c.lines {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), c.lines, out.String())
			}
			for _, l := range lines {
				if json.Valid([]byte(l)) != c.json {
					t.Errorf("line %q: JSON %v, want %v", l, !c.json, c.json)
				}
			}
			level.Set(slog.LevelDebug) // a reload
			out.Reset()
			log.Debug("d")
			if out.Len() == 0 {
				t.Errorf("the level set after start is not applied")
			}
		})
	}
}

func TestVersion(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/fedhub/fedhub", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0cf20fc3"}, {Key: "vcs.time", Value: "2026-11-30T20:00:00Z"},
			{Key: "vcs.modified", Value: "true"}}}
	cases := []struct {
		name string
		info *debug.BuildInfo
		ok   bool
		want []string
	}{
		{"stamped", stamped, true, []string{"fedhub v1.4.0\n", "commit: 0cf20fc3 (with uncommitted changes)\n",
			"2026-11-30T20:00:00Z\n", "go: go1.26.8\n"}},
		{"built without VCS", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, true,
			[]string{"fedhub (devel)\n", "commit: unknown\n"}},
		{"no build information", nil, false, []string{"fedhub unknown\n", "go: unknown\n"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := version(c.info, c.ok)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("version = %q, want it to contain %q", got, w)
				}
			}
		})
	}
	for _, arg := range []string{"version", "--version"} {
		var out bytes.Buffer
		if err := run(t.Context(), []string{arg}, nil, &out, &out); err != nil || !strings.HasPrefix(out.String(), "fedhub ") {
			t.Errorf("fedhub %s = %v, %q", arg, err, out.String())
		}
	}
}

func TestNeedRestart(t *testing.T) {
	base := config.Defaults()
	cases := []struct {
		name   string
		change func(*config.Config)
		want   string
	}{
		{"branding, clients, users and the log level reload", func(c *config.Config) {
			c.Branding.ProductName = "Example Login"
			c.Clients = []config.Client{{ID: "new"}}
			c.Users = []config.User{{Username: "u"}}
			c.Log.Level = "debug"
		}, ""},
		{"the listen address", func(c *config.Config) { c.Listen = "127.0.0.1:8081" }, "listen"},
		{"the log format", func(c *config.Config) { c.Log.Format = "json" }, "log"},
		{"connectors reload, tokens do not", func(c *config.Config) {
			c.Connectors = []config.Connector{{ID: "ad"}}
			c.Tokens.AccessTTL *= 2
		}, "tokens"},
		{"a directory sync schedule reloads", func(c *config.Config) {
			c.Connectors = []config.Connector{{ID: "ad", Sync: config.Sync{Import: true, Period: time.Hour}}}
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			changed := config.Defaults()
			c.change(&changed)
			if got := strings.Join(needRestart(&base, &changed), ", "); got != c.want {
				t.Errorf("needRestart = %q, want %q", got, c.want)
			}
		})
	}
}

func TestBackupOnPostgres(t *testing.T) {
	file := filepath.Join(t.TempDir(), "fedhub.yaml")
	cfg := "issuer: http://127.0.0.1:8080\nstorage:\n  driver: postgres\n  dsn: host=192.0.2.1 dbname=fedhub connect_timeout=1\n"
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"backup", "-c", file, "--to", "x.db"}, {"restore", "-c", file, "--from", "x.db"}} {
		err := run(t.Context(), args, nil, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "pg_dump") {
			t.Errorf("fedhub %s on PostgreSQL = %v, want it to name pg_dump", args[0], err)
		}
	}
}

// TestUnexpectedErrorQuotesRequestID: a 500's log line and its error page
// carry the same request ID, so that support finds one from the other.
func TestUnexpectedErrorQuotesRequestID(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&out, nil))
	e := echo.New()
	renderer, err := templates.New()
	if err != nil {
		t.Fatal(err)
	}
	e.Renderer, e.HTTPErrorHandler = renderer, errorHandler(e, log)
	e.Use(web.Requests(log, nil))
	e.GET("/boom", func(echo.Context) error { return errors.New("database exploded") })
	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/boom", nil))
	id := w.Header().Get("X-Request-ID")
	if w.Code != http.StatusInternalServerError || id == "" || !strings.Contains(w.Body.String(), "<code>"+id+"</code>") {
		t.Fatalf("answer %d, X-Request-ID %q, page:\n%s", w.Code, id, w.Body.String())
	}
	if strings.Contains(w.Body.String(), "exploded") {
		t.Errorf("the page shows the error itself:\n%s", w.Body.String())
	}
	var found bool
	for line := range strings.Lines(out.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		found = found || (m["msg"] == "request failed" && m["request_id"] == id && strings.Contains(m["err"].(string), "exploded"))
	}
	if !found {
		t.Errorf("no error line with request_id %s:\n%s", id, out.String())
	}
}
