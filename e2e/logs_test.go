package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// lgConfig is the admin API's configuration with JSON logs at the debug
// level: the most a log ever holds.
var lgConfig = aaConfig("", "", "") + "log:\n  format: json\n  level: debug\n"

// TestLogs runs logins and every grant with known secrets, passwords and
// tokens, and reads the log: one JSON object a line, one access line per
// request, the request ID that the audit event and the error page show, and
// none of the secrets.
func TestLogs(t *testing.T) {
	s := Start(t, WithConfig(lgConfig), aaEnv())
	secrets := []string{alicePass, bobPass, rpSecret, pwSecret, aaAutomationKey, aaPassword}

	b := NewBrowser(t)
	params := AuthParams("scope", "openid profile offline_access")
	got := ocAuthorize(t, s, b, params)
	code := ocWantCode(t, s, got, params)
	ts := ocWantTokens(t, ocRedeem(t, s, ocRP, code, redirectURI, ""))
	refreshed := ocWantTokens(t, ocRefresh(t, s, ocRP, ts.Refresh))
	pw := ocWantTokens(t, ocPost(t, s, "/token", &ocPW, url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {bobPass}}))
	admin := aaClientCredentials(t, s, aaAutomation, "fedhub:admin")
	ocUserinfo(t, s, "get", refreshed.Access)
	secrets = append(secrets, code, ts.Access, ts.Refresh, ts.ID, refreshed.Access, refreshed.Refresh, pw.Access, admin.Access)

	// A failed login and an error page, each with a request ID of the caller's.
	lb := NewBrowser(t)
	form := lb.OpenLogin(s, s.URL+"/authorize?"+AuthParams().Encode())
	req, _ := http.NewRequest(http.MethodPost, form.Action, strings.NewReader(url.Values{"req": {form.Req}, "csrf": {form.CSRF},
		"username": {"alice"}, "password": {"Wrong-" + alicePass}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Request-ID", "lg-failed-login-1")
	lgDo(t, lb, req, http.StatusUnauthorized)
	secrets = append(secrets, "Wrong-"+alicePass)

	req, _ = http.NewRequest(http.MethodGet, s.URL+"/authorize?client_id=no-such-client&response_type=code", nil)
	req.Header.Set("X-Request-ID", "lg-error-page-2")
	if page := lgDo(t, lb, req, http.StatusBadRequest); !strings.Contains(page, "quote this ID: <code>lg-error-page-2</code>") {
		t.Errorf("the error page does not quote its request ID:\n%s", page)
	}

	// Support finds the events of the ID a person quotes.
	events := aaAudit(t, s, admin.Access, url.Values{"request_id": {"lg-failed-login-1"}}).Events
	if len(events) != 1 || events[0].Type != "login.failure" || events[0].RequestID != "lg-failed-login-1" {
		t.Errorf("audit events of request lg-failed-login-1 = %+v, want its login.failure", events)
	}

	out := s.Output()
	access := map[string]map[string]any{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("a log line is not JSON (%v):\n%s", err, sc.Text())
		}
		if line["msg"] == "request" {
			id, _ := line["request_id"].(string)
			if _, twice := access[id]; twice || id == "" {
				t.Errorf("request ID %q on two access lines, or none", id)
			}
			access[id] = line
		}
	}
	for id, want := range map[string]struct {
		route  string
		status float64
	}{"lg-failed-login-1": {"/broker/:id/login", 401}, "lg-error-page-2": {"/authorize", 400}} {
		line := access[id]
		if line == nil || line["route"] != want.route || line["status"] != want.status || line["method"] == nil ||
			line["ip"] != "127.0.0.1" || line["duration"] == nil {
			t.Errorf("access line of %s = %v, want route %s status %v", id, line, want.route, want.status)
		}
	}
	if len(access) < 12 {
		t.Errorf("%d access lines, want one per request (at least 12)", len(access))
	}
	for _, secret := range secrets {
		if secret != "" && strings.Contains(out, secret) {
			t.Errorf("the log holds a secret or token (%.12s…)", secret)
		}
	}
}

// lgDo sends req from browser b and wants status; it returns the body.
func lgDo(t testing.TB, b *Browser, req *http.Request, status int) string {
	t.Helper()
	resp, err := b.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != status || resp.Header.Get("X-Request-ID") != req.Header.Get("X-Request-ID") {
		t.Fatalf("%s %s = %d, X-Request-ID %q; want %d, the ID echoed", req.Method, req.URL.Path, resp.StatusCode,
			resp.Header.Get("X-Request-ID"), status)
	}
	return body
}

// TestLogsRequestIDInHandlers: a login through an LDAP connector whose
// server is down fails; the JSON log lines that the connector and the broker
// write while serving it carry the request ID of its access line.
func TestLogsRequestIDInHandlers(t *testing.T) {
	cfg := defaultConfig + `log:
  format: json
connectors:
  - id: corp-ad
    type: ldap
    ldap:
      urls: [ldaps://` + freeAddr(t) + `, ldaps://` + freeAddr(t) + `]
      user_base: dc=example,dc=test
`
	s := Start(t, WithConfig(cfg))
	b := NewBrowser(t)
	form := b.OpenLoginAt(s, "/login?req="+b.OpenLogin(s, s.URL+"/authorize?"+AuthParams().Encode()).Req)
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/broker/corp-ad/login", strings.NewReader(url.Values{"req": {form.Req},
		"csrf": {form.CSRF}, "username": {"alice"}, "password": {"Any-password-1"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Request-ID", "lg-connector-3")
	resp, err := b.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	if resp.StatusCode < 400 {
		t.Fatalf("a login through an unreachable directory answered %d", resp.StatusCode)
	}

	// The access line is written once the answer is out: wait for it.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) &&
		!strings.Contains(s.Output(), `"msg":"request","method":"POST","route":"/broker/:id/login"`); {
		time.Sleep(20 * time.Millisecond)
	}
	lines := map[string]string{} // message → its request_id
	sc := bufio.NewScanner(strings.NewReader(s.Output()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			continue // the harness's own lines
		}
		msg, _ := line["msg"].(string)
		if id, _ := line["request_id"].(string); id == "lg-connector-3" || msg != "request" {
			lines[msg+" "+fmt.Sprint(line["level"])] = fmt.Sprint(line["request_id"])
		}
	}
	for _, want := range []string{
		"request INFO", // the access line
		"ldap: server unreachable, trying the next one WARN", // the connector's
		"login failed INFO", // the broker's
	} {
		if got := lines[want]; got != "lg-connector-3" {
			t.Errorf("the line %q has request_id %q, want lg-connector-3 (lines: %v)", want, got, lines)
		}
	}
}
