package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// wantPageHeaders checks SECURITY.md's rules for pages: no framing, a strict CSP.
func wantPageHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("%s: Content-Security-Policy %q lacks frame-ancestors 'none'", what, csp)
	}
	if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("%s: X-Frame-Options %q, X-Content-Type-Options %q, Referrer-Policy %q",
			what, h.Get("X-Frame-Options"), h.Get("X-Content-Type-Options"), h.Get("Referrer-Policy"))
	}
}

// TestPagesAndCookies: every kind of page carries the security headers, and
// behind an https issuer (TLS ends at a load balancer) every cookie is
// __Host-, Secure, HttpOnly and SameSite=Lax.
func TestPagesAndCookies(t *testing.T) {
	https := strings.Replace(defaultConfig, "issuer: %[1]s", "issuer: https://login.example.test", 1)
	s := Start(t, WithConfig(https))
	b := NewBrowser(t)

	// The browser talks plain HTTP to the node; record the cookies it is sent.
	var cookies []*http.Cookie
	get := func(path string) (*http.Response, string) {
		resp, body := b.Get(s.URL + path)
		cookies = append(cookies, resp.Cookies()...)
		return resp, body
	}
	resp, _ := get("/authorize?" + AuthParams().Encode())
	loginPath := resp.Header.Get("Location")
	for _, path := range []string{"/", loginPath, "/login?req=unknown", "/authorize?client_id=nobody", "/logout",
		"/first-login/review?t=unknown", "/account/link/nothing", "/no-such-page", "/static/fedhub.css"} {
		resp, _ := get(path)
		wantPageHeaders(t, path, resp.Header)
	}
	// A login sets the session cookie (the jar keeps __Host- cookies only for https, so post by hand).
	_, page := b.Get(s.URL + loginPath)
	form := url.Values{"username": {"alice"}, "password": {alicePass}}
	for _, m := range hiddenInput.FindAllStringSubmatch(page, -1) {
		form.Set(m[1], m[2])
	}
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/broker/local/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	resp, err := b.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login answered %d", resp.StatusCode)
	}
	wantPageHeaders(t, "the login POST", resp.Header)
	cookies = append(cookies, resp.Cookies()...)

	names := map[string]bool{}
	for _, c := range cookies {
		names[c.Name] = true
		if !strings.HasPrefix(c.Name, "__Host-") || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode ||
			c.Path != "/" || c.Domain != "" {
			t.Errorf("cookie %s: Secure %v HttpOnly %v SameSite %v Path %q Domain %q", c.Name, c.Secure, c.HttpOnly, c.SameSite, c.Path, c.Domain)
		}
	}
	for _, want := range []string{"__Host-fedhub_browser", "__Host-fedhub_session"} {
		if !names[want] {
			t.Errorf("no %s cookie was set (got %v)", want, names)
		}
	}
}

// TestSecretsNotLogged: passwords and client secrets, right or wrong, never
// reach the log.
func TestSecretsNotLogged(t *testing.T) {
	s := Start(t)
	b := NewBrowser(t)
	wrong := "Wrong-Passw0rd-Canary-4711"
	f := b.OpenLogin(s, s.URL+"/authorize?"+AuthParams().Encode())
	b.Submit(f, "alice", wrong)
	f = b.OpenLogin(s, s.URL+"/authorize?"+AuthParams().Encode())
	b.Submit(f, "alice", alicePass)
	ocPost(t, s, "/token", &ocClient{id: rpID, secret: "Wrong-Secret-Canary-0815"}, url.Values{"grant_type": {"client_credentials"}})
	ocPost(t, s, "/token", &ocClient{id: passwordID, secret: pwSecret}, url.Values{
		"grant_type": {"password"}, "username": {"bob"}, "password": {bobPass}})
	out := s.Output()
	for _, secret := range []string{wrong, alicePass, bobPass, "Wrong-Secret-Canary-0815", pwSecret, rpSecret} {
		if strings.Contains(out, secret) {
			t.Errorf("the log contains a secret (%.6s…):\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "login failed") { // the log was written, and read
		t.Fatalf("the log has no failed login:\n%s", out)
	}
}
