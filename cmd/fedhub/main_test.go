package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/store"
	"github.com/labstack/echo/v4"
)

func TestDemoConfigStaysOnLoopback(t *testing.T) {
	for _, c := range []struct{ listen, want string }{
		{"", "127.0.0.1:8080"},
		{"127.0.0.1:9000", "127.0.0.1:9000"},
		{"0.0.0.0:9000", "127.0.0.1:9000"}, // "everywhere" is not what a demo should do
		{":9000", "127.0.0.1:9000"},
	} {
		cfg, err := demoConfig(c.listen)
		if err != nil {
			t.Fatalf("demoConfig(%q): %v", c.listen, err)
		}
		if cfg.Listen != c.want || cfg.Issuer != "http://"+c.want {
			t.Errorf("demoConfig(%q) listens on %s as %s, want %s", c.listen, cfg.Listen, cfg.Issuer, c.want)
		}
	}
	if _, err := demoConfig("nonsense"); err == nil {
		t.Error("demoConfig accepted a listen address without a port")
	}
}

func TestIPExtractorTrustsOnlyConfiguredProxies(t *testing.T) {
	for _, c := range []struct {
		name, remote, xff string
		proxies           []string
		want              string
	}{
		{"no proxies: the connection", "10.1.2.3:4000", "203.0.113.9", nil, "10.1.2.3"},
		{"a configured proxy: its client", "10.1.2.3:4000", "203.0.113.9", []string{"10.0.0.0/8"}, "203.0.113.9"},
		{"a private network is not trusted by itself", "192.168.1.5:4000", "203.0.113.9", []string{"10.0.0.0/8"}, "192.168.1.5"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = c.remote
			r.Header.Set(echo.HeaderXForwardedFor, c.xff)
			if got := ipExtractor(c.proxies)(r); got != c.want {
				t.Fatalf("client IP = %s, want %s", got, c.want)
			}
		})
	}
}

// A database of a fedhub before login.Transaction loses the three tables of
// sign-ins in progress, and nothing else.
func TestMigrateDropsOldSignInTables(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, config.Storage{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "old.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close(db) })
	for _, table := range []string{"auth_requests", "flow_records", "pendings"} {
		if err := db.Exec("CREATE TABLE " + table + " (id TEXT)").Error; err != nil {
			t.Fatal(err)
		}
	}
	for range 2 { // and a second migration finds nothing to drop
		if err := migrate(ctx, db, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
	}
	for _, table := range []string{"auth_requests", "flow_records", "pendings"} {
		if db.Migrator().HasTable(table) {
			t.Errorf("table %s is still there", table)
		}
	}
	if !db.Migrator().HasTable("login_transactions") {
		t.Error("no login_transactions table")
	}
}
