package e2e

import (
	"database/sql"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestTrustedProxies: X-Forwarded-For counts only from configured proxies, so
// that per-IP brute-force counting and the audit log see the real client
// behind a load balancer, and nobody else can choose the address they are counted under.
func TestTrustedProxies(t *testing.T) {
	failedLoginIP := func(t *testing.T, s *Server, xff string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/token", strings.NewReader(url.Values{
			"grant_type": {"password"}, "username": {"bob"}, "password": {"wrong-" + xff}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", xff)
		req.SetBasicAuth(passwordID, pwSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		db, err := sql.Open("sqlite3", "file:"+biServerDB(s)+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var ip string
		if err := db.QueryRow("SELECT ip FROM events WHERE type = 'login.failure' ORDER BY id DESC LIMIT 1").Scan(&ip); err != nil {
			t.Fatal(err)
		}
		return ip
	}
	t.Run("not configured: the connecting address", func(t *testing.T) {
		s := Start(t)
		if ip := failedLoginIP(t, s, "203.0.113.9"); ip != "127.0.0.1" {
			t.Fatalf("a client chose the address it is counted under: %s", ip)
		}
	})
	t.Run("configured: the client behind the proxy", func(t *testing.T) {
		s := Start(t, WithConfig("trusted_proxies: [127.0.0.1/32]\n"+defaultConfig))
		if ip := failedLoginIP(t, s, "203.0.113.9"); ip != "203.0.113.9" {
			t.Fatalf("counted under %s, want the forwarded client", ip)
		}
		// Only the proxy's own entry is believed: what the client wrote before it is not.
		if ip := failedLoginIP(t, s, "198.51.100.1, 203.0.113.10"); ip != "203.0.113.10" {
			t.Fatalf("counted under %s, want the address the trusted proxy saw", ip)
		}
	})
}
