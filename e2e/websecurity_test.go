package e2e

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
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

// TestLogoutHintOfAnotherSession: an id_token_hint signs the browser out
// without asking only when it was issued in this browser's session (its sub
// and its sid). Any other valid ID token — another user's, or the same user's
// from another browser — gets the confirmation page and ends nothing.
func TestLogoutHintOfAnotherSession(t *testing.T) {
	s := Start(t)
	aliceBr, otherAliceBr, bobBr := NewBrowser(t), NewBrowser(t), NewBrowser(t)
	alice, _ := ocCodeFlow(t, s, aliceBr, ocRP, AuthParams())
	otherAlice, _ := ocCodeFlow(t, s, otherAliceBr, ocRP, AuthParams())
	p := AuthParams()
	bob, _ := ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, ocAuthorizeAs(t, s, bobBr, p, "bob", bobPass), p), p)

	stillSignedIn := func(b *Browser, who string) {
		t.Helper()
		p := AuthParams("prompt", "none")
		if got := ocSilent(t, s, b, p); got.Get("code") == "" {
			t.Fatalf("%s: prompt=none answered %v, want a code (the session is gone)", who, got)
		}
	}
	confirmForm := regexp.MustCompile(`name="([a-z_]+)" value="([^"]*)"`)
	var confirm url.Values
	for _, c := range []struct{ name, hint string }{{"bob's ID token", bob.ID}, {"alice's ID token of another session", otherAlice.ID}} {
		q := url.Values{"id_token_hint": {c.hint}, "post_logout_redirect_uri": {logoutURI}, "state": {"bye"}}
		resp, page := aliceBr.Get(s.URL + "/logout?" + q.Encode())
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" || !strings.Contains(page, `id="confirm-logout"`) {
			t.Fatalf("logout with %s as the hint answered %d Location %q, want the confirmation page:\n%s",
				c.name, resp.StatusCode, resp.Header.Get("Location"), page)
		}
		stillSignedIn(aliceBr, "alice, after a hint of "+c.name)
		if confirm == nil {
			confirm = url.Values{}
			for _, m := range confirmForm.FindAllStringSubmatch(page, -1) {
				confirm.Set(m[1], html.UnescapeString(m[2]))
			}
		}
	}
	ocWantUserinfo(t, s, alice.Access, ocVerifyIDToken(t, s, rpID, alice.ID))
	// The page asks, and the person's answer signs them out (back to the hint's client).
	resp, _ := aliceBr.PostForm(s.URL+"/logout", confirm)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != logoutURI+"?state=bye" {
		t.Fatalf("confirming answered %d Location %q (form %v)", resp.StatusCode, resp.Header.Get("Location"), confirm)
	}
	ocWantUserinfoRefused(t, s, alice.Access)
	stillSignedIn(otherAliceBr, "alice in her other browser")
	stillSignedIn(bobBr, "bob")

	// The session's own ID token signs out at once.
	q := url.Values{"id_token_hint": {bob.ID}, "post_logout_redirect_uri": {logoutURI}, "state": {"bye"}}
	resp, page := bobBr.Get(s.URL + "/logout?" + q.Encode())
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != logoutURI+"?state=bye" {
		t.Fatalf("logout with the session's own ID token answered %d Location %q:\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	p = AuthParams("prompt", "none")
	ocWantAuthzError(t, s, ocSilent(t, s, bobBr, p), p, "login_required")
}
