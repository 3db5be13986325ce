package e2e

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// TestRelyingParty runs fedhub against a relying party built the way real Go
// applications build one: go-oidc for discovery and ID token verification,
// x/oauth2 for the code flow with PKCE, the refresh and userinfo calls.
func TestRelyingParty(t *testing.T) {
	s := Start(t)
	started := time.Now().Add(-time.Second)
	aliceID := rpUserID(t, s, "alice")
	rp := newGoRP(t, s, rpID, rpSecret)
	b := NewBrowser(t)

	// 1. Code flow with state, nonce and PKCE; the browser logs in as alice.
	tok, idt, claims := rp.login(t, b, "alice", alicePass)
	if idt.Subject != aliceID {
		t.Errorf("ID token sub = %q, want alice's user ID %q", idt.Subject, aliceID)
	}
	if !slices.Equal(idt.Audience, []string{rpID}) {
		t.Errorf("aud = %v, want [%s]", idt.Audience, rpID)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash does not match the access token: %v", err)
	}
	rpCheckAliceClaims(t, claims, aliceID)
	if got := claims["azp"]; got != rpID {
		t.Errorf("azp = %v, want %s", got, rpID)
	}
	if got := claims["amr"]; !rpStrings(got, "pwd") {
		t.Errorf("amr = %v, want [pwd]", got)
	}
	authTime, _ := claims["auth_time"].(float64)
	if at := time.Unix(int64(authTime), 0); at.Before(started.Truncate(time.Second)) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("auth_time = %v, want the time of this login (after %v)", at, started)
	}
	sid, _ := claims["sid"].(string)
	if sid == "" {
		t.Errorf("ID token has no sid: %v", claims)
	}

	t.Run("userinfo", func(t *testing.T) {
		ui, err := rp.provider.UserInfo(t.Context(), oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatalf("userinfo: %v", err)
		}
		if ui.Subject != aliceID || ui.Email != "alice@example.com" || !ui.EmailVerified {
			t.Errorf("userinfo sub/email/email_verified = %q %q %v", ui.Subject, ui.Email, ui.EmailVerified)
		}
		var uc map[string]any
		if err := ui.Claims(&uc); err != nil {
			t.Fatal(err)
		}
		rpCheckAliceClaims(t, uc, aliceID)
	})

	t.Run("refresh rotation and reuse detection", func(t *testing.T) {
		expired := &oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken,
			TokenType: "Bearer", Expiry: time.Now().Add(-time.Hour)}
		tok2, err := rp.conf.TokenSource(t.Context(), expired).Token()
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if tok2.AccessToken == "" || tok2.AccessToken == tok.AccessToken {
			t.Errorf("refresh did not return a new access token")
		}
		if tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken {
			t.Errorf("refresh did not rotate the refresh token")
		}
		if raw, ok := tok2.Extra("id_token").(string); ok {
			idt2, err := rp.verifier.Verify(t.Context(), raw)
			if err != nil {
				t.Errorf("ID token of the refresh does not verify: %v", err)
			} else if idt2.Subject != aliceID {
				t.Errorf("ID token of the refresh has sub %q", idt2.Subject)
			}
		}
		if !rp.introspect(t, tok2.AccessToken).active() {
			t.Errorf("the refreshed access token is not active")
		}
		// The rotated-out refresh token comes back: refused, and the family is revoked.
		rp.refreshFails(t, tok.RefreshToken, "invalid_grant")
		rp.refreshFails(t, tok2.RefreshToken, "invalid_grant")
		if rp.introspect(t, tok2.AccessToken).active() {
			t.Errorf("an access token of the revoked family is still active")
		}
	})

	t.Run("introspect and revoke", func(t *testing.T) {
		tok3, idt3, _ := rp.login(t, b, "", "") // SSO: the browser still has its session
		if idt3.Subject != aliceID {
			t.Fatalf("sub = %q", idt3.Subject)
		}
		in := rp.introspect(t, tok3.AccessToken)
		if !in.active() || in["sub"] != aliceID || in["client_id"] != rpID || in["iss"] != s.URL ||
			in["username"] != "alice" || in["token_type"] != "Bearer" {
			t.Errorf("introspection of a fresh access token = %v", in)
		}
		if exp, _ := in["exp"].(float64); time.Unix(int64(exp), 0).Before(time.Now()) {
			t.Errorf("introspection exp = %v is in the past", in["exp"])
		}
		if scope, _ := in["scope"].(string); !strings.Contains(scope, "openid") {
			t.Errorf("introspection scope = %q", scope)
		}
		rin := rp.introspect(t, tok3.RefreshToken)
		if !rin.active() || rin["token_type"] != "refresh_token" || rin["client_id"] != rpID {
			t.Errorf("introspection of a fresh refresh token = %v", rin)
		}

		rp.revoke(t, tok3.AccessToken)
		if rp.introspect(t, tok3.AccessToken).active() {
			t.Errorf("a revoked access token is still active")
		}
		if _, err := rp.provider.UserInfo(t.Context(), oauth2.StaticTokenSource(tok3)); err == nil {
			t.Errorf("userinfo accepted a revoked access token")
		}
		if !rp.introspect(t, tok3.RefreshToken).active() {
			t.Errorf("revoking the access token also killed the refresh token")
		}
		rp.revoke(t, tok3.RefreshToken)
		if rp.introspect(t, tok3.RefreshToken).active() {
			t.Errorf("a revoked refresh token is still active")
		}
		rp.refreshFails(t, tok3.RefreshToken, "invalid_grant")
	})

	var rp2Tok *oauth2.Token
	t.Run("second RP signs in through SSO", func(t *testing.T) {
		rp2 := newGoRP(t, s, rp2ID, rp2Secret)
		a := rp2.begin()
		resp, _ := b.Get(s.URL + "/authorize?" + a.params.Encode())
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, redirectURI+"?") {
			t.Fatalf("rp2's authorization request answered %d Location %q; want a redirect straight back to the RP (SSO, no password)", resp.StatusCode, loc)
		}
		u, _ := url.Parse(loc)
		var c2 map[string]any
		var idt2 *oidc.IDToken
		rp2Tok, idt2, c2 = rp2.finish(t, a, u.Query())
		if idt2.Subject != aliceID || !slices.Equal(idt2.Audience, []string{rp2ID}) {
			t.Errorf("rp2's ID token sub %q aud %v", idt2.Subject, idt2.Audience)
		}
		if c2["sid"] != sid {
			t.Errorf("rp2's sid = %v, want the SSO session's %v", c2["sid"], sid)
		}
		if c2["auth_time"] != claims["auth_time"] {
			t.Errorf("rp2's auth_time = %v, want the original login's %v", c2["auth_time"], claims["auth_time"])
		}
	})

	t.Run("RP-initiated logout", func(t *testing.T) {
		tok5, _, _ := rp.login(t, b, "", "")
		rawID, _ := tok5.Extra("id_token").(string)
		state := "bye-" + randomSuffix()
		q := url.Values{"id_token_hint": {rawID}, "post_logout_redirect_uri": {logoutURI}, "state": {state}}
		resp, page := b.Get(s.URL + "/logout?" + q.Encode())
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("logout answered %d, want 303:\n%s", resp.StatusCode, page)
		}
		if want := logoutURI + "?state=" + url.QueryEscape(state); resp.Header.Get("Location") != want {
			t.Errorf("logout redirected to %q, want %q", resp.Header.Get("Location"), want)
		}
		// The SSO session is over: prompt=none cannot sign in silently.
		got := rp.silent(t, b)
		if got.Get("error") != "login_required" {
			t.Errorf("prompt=none after logout gave %v, want error=login_required", got)
		}
		// And the grants made in the session are revoked, for both RPs.
		rp.refreshFails(t, tok5.RefreshToken, "invalid_grant")
		if rp2Tok != nil {
			newGoRP(t, s, rp2ID, rp2Secret).refreshFails(t, rp2Tok.RefreshToken, "invalid_grant")
		}
		if rp.introspect(t, tok5.AccessToken).active() {
			t.Errorf("an access token of the ended session is still active")
		}
	})
}

// rpCheckAliceClaims checks the claims alice's ID token and userinfo carry for
// scope "openid profile email".
func rpCheckAliceClaims(t *testing.T, c map[string]any, aliceID string) {
	t.Helper()
	want := map[string]any{"sub": aliceID, "preferred_username": "alice", "name": "Alice Example",
		"email": "alice@example.com", "email_verified": true}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("claim %s = %#v, want %#v", k, c[k], v)
		}
	}
	if !rpStrings(c["groups"], "staff") {
		t.Errorf("groups = %#v, want [staff]", c["groups"])
	}
	ra, _ := c["realm_access"].(map[string]any)
	if !rpStrings(ra["roles"], "admin") {
		t.Errorf("realm_access = %#v, want {roles: [admin]}", c["realm_access"])
	}
	if _, isID := c["aud"]; isID && c["idp"] != "local" {
		t.Errorf("idp = %#v, want local", c["idp"])
	}
}

// rpStrings reports whether a decoded JSON value is exactly this list of strings.
func rpStrings(v any, want ...string) bool {
	list, ok := v.([]any)
	if !ok || len(list) != len(want) {
		return false
	}
	for i := range list {
		if list[i] != want[i] {
			return false
		}
	}
	return true
}

// goRP is a confidential relying party of a test server.
type goRP struct {
	s        *Server
	id       string
	secret   string
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	conf     oauth2.Config
}

func newGoRP(t testing.TB, s *Server, clientID, secret string) *goRP {
	t.Helper()
	provider, err := oidc.NewProvider(t.Context(), s.URL)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	ep := provider.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInHeader // no auto-detection retries: one request per call
	return &goRP{
		s: s, id: clientID, secret: secret, provider: provider,
		verifier: provider.Verifier(&oidc.Config{ClientID: clientID}),
		conf: oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: ep, RedirectURL: redirectURI,
			Scopes: []string{oidc.ScopeOpenID, "profile", "email"}},
	}
}

// goRPAttempt is one authorization request and what the RP remembers of it.
type goRPAttempt struct {
	params                 url.Values // the authorization request's query
	state, nonce, verifier string
}

func (rp *goRP) begin(opts ...oauth2.AuthCodeOption) goRPAttempt {
	a := goRPAttempt{state: "st-" + randomSuffix(), nonce: "n-" + randomSuffix(), verifier: oauth2.GenerateVerifier()}
	opts = append([]oauth2.AuthCodeOption{oidc.Nonce(a.nonce), oauth2.S256ChallengeOption(a.verifier)}, opts...)
	u, _ := url.Parse(rp.conf.AuthCodeURL(a.state, opts...))
	a.params = u.Query()
	return a
}

// finish checks the RP's callback parameters, redeems the code and verifies
// the ID token (nonce included: go-oidc leaves that to the RP). It returns the
// tokens, the verified ID token and its claims.
func (rp *goRP) finish(t testing.TB, a goRPAttempt, got url.Values) (*oauth2.Token, *oidc.IDToken, map[string]any) {
	t.Helper()
	if got.Get("error") != "" {
		t.Fatalf("authorization failed: %v", got)
	}
	if got.Get("state") != a.state {
		t.Fatalf("callback state = %q, want %q", got.Get("state"), a.state)
	}
	if got.Get("iss") != rp.s.URL {
		t.Fatalf("callback iss = %q, want %q (RFC 9207)", got.Get("iss"), rp.s.URL)
	}
	tok, err := rp.conf.Exchange(t.Context(), got.Get("code"), oauth2.VerifierOption(a.verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" || !strings.EqualFold(tok.TokenType, "Bearer") {
		t.Fatalf("token response lacks a bearer access token or a refresh token: %+v", tok)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		t.Fatal("token response has no id_token")
	}
	idt, err := rp.verifier.Verify(t.Context(), raw)
	if err != nil {
		t.Fatalf("ID token does not verify: %v", err)
	}
	if idt.Nonce != a.nonce {
		t.Fatalf("ID token nonce = %q, want %q", idt.Nonce, a.nonce)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	return tok, idt, claims
}

// login runs the whole code flow in browser b (username and password are only
// used when the browser has no SSO session).
func (rp *goRP) login(t testing.TB, b *Browser, username, password string) (*oauth2.Token, *oidc.IDToken, map[string]any) {
	t.Helper()
	a := rp.begin()
	return rp.finish(t, a, b.Authorize(rp.s, a.params, username, password))
}

// silent makes a prompt=none request and returns what the RP receives.
func (rp *goRP) silent(t testing.TB, b *Browser) url.Values {
	t.Helper()
	a := rp.begin(oauth2.SetAuthURLParam("prompt", "none"))
	resp, _ := b.Get(rp.s.URL + "/authorize?" + a.params.Encode())
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, redirectURI+"?") {
		t.Fatalf("prompt=none answered %d Location %q, want a redirect to the RP", resp.StatusCode, loc)
	}
	u, _ := url.Parse(loc)
	return u.Query()
}

// refreshFails asserts that refreshing with this refresh token fails with code.
func (rp *goRP) refreshFails(t testing.TB, refreshToken, code string) {
	t.Helper()
	_, err := rp.conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != code {
		t.Errorf("refresh = %v, want error %s", err, code)
	}
}

// goRPIntrospection is an RFC 7662 answer.
type goRPIntrospection map[string]any

func (in goRPIntrospection) active() bool { return in["active"] == true }

func (rp *goRP) introspect(t testing.TB, token string) goRPIntrospection {
	t.Helper()
	status, body := rpClientPost(t, rp.s.URL+"/introspect", rp.id, rp.secret, url.Values{"token": {token}})
	if status != http.StatusOK {
		t.Fatalf("introspect answered %d: %v", status, body)
	}
	return body
}

func (rp *goRP) revoke(t testing.TB, token string) {
	t.Helper()
	if status, body := rpClientPost(t, rp.s.URL+"/revoke", rp.id, rp.secret, url.Values{"token": {token}}); status != http.StatusOK {
		t.Fatalf("revoke answered %d: %v", status, body)
	}
}

// rpClientPost posts a form to a token-style endpoint with HTTP Basic client
// authentication (none when id is empty) and decodes the JSON answer, if any.
func rpClientPost(t testing.TB, endpoint, id, secret string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	var out map[string]any
	if strings.TrimSpace(body) != "" {
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatalf("%s answered %d with a body that is not JSON: %q", endpoint, resp.StatusCode, body)
		}
	}
	return resp.StatusCode, out
}

// rpJWTPart decodes the header (0) or payload (1) of a compact JWT.
func rpJWTPart(t testing.TB, token string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// rpUserID returns a user's ID as `fedhub users list` shows it.
func rpUserID(t testing.TB, s *Server, username string) string {
	t.Helper()
	out, err := s.CLI(t, "", "users", "list")
	if err != nil {
		t.Fatalf("users list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[1] == username {
			return f[0]
		}
	}
	t.Fatalf("users list does not show %s:\n%s", username, out)
	return ""
}
