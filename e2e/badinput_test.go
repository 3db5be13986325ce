package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	_ "github.com/mattn/go-sqlite3"
	"golang.org/x/oauth2"
)

// TestBadInput sends malformed, duplicated, oversized, forged and otherwise
// wrong requests. Each must get the right OAuth error (or a clear page, never
// Go error text) and must leave the database exactly as it was.
func TestBadInput(t *testing.T) {
	s := Start(t)
	dbPath := biServerDB(s)
	rp := newGoRP(t, s, rpID, rpSecret)

	// Genuine material to tamper with, made before any snapshot.
	tok, _, _ := rp.login(t, NewBrowser(t), "alice", alicePass)
	idToken, _ := tok.Extra("id_token").(string)
	pwTok := biPasswordGrant(t, s, "bob", bobPass)
	header := rpJWTPart(t, tok.AccessToken, 0)
	if header["alg"] != "RS256" {
		t.Fatalf("access token alg = %v; this test forges RS256 tokens", header["alg"])
	}
	kid, _ := header["kid"].(string)
	tamperedAT, tamperedID := biTamperJWT(t, tok.AccessToken), biTamperJWT(t, idToken)
	foreignAT, foreignID := biForeignJWT(t, tok.AccessToken, kid, "at+jwt"), biForeignJWT(t, idToken, kid, "JWT")
	noneAT := biUnsignedJWT(t, tok.AccessToken, kid)

	// A pending login in a browser of its own.
	lb := NewBrowser(t)
	form := lb.OpenLogin(s, s.URL+"/authorize?"+AuthParams().Encode())
	// in is lb's cookie jar in a subtest: a failed request fails that subtest only.
	in := func(t *testing.T, b *Browser) *Browser { return &Browser{t: t, Client: b.Client} }

	huge := strings.Repeat("a", 100<<10)
	authz := func(extra ...string) string { return s.URL + "/authorize?" + AuthParams(extra...).Encode() }
	basic := [2]string{rpID, rpSecret}
	noAuth := [2]string{}

	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		// The authorization endpoint: errors before the client and its
		// redirect URI are trusted are pages; after, redirects to the RP.
		{"authorize: malformed query", func(t *testing.T) {
			q := AuthParams().Encode() + "&state=%zz"
			biExpectPage(t, biRequest(t, "GET", s.URL+"/authorize?"+q, "", "", noAuth), 400, "not valid")
		}},
		{"authorize: duplicated client_id", func(t *testing.T) {
			q := AuthParams().Encode() + "&client_id=" + rp2ID
			biExpectPage(t, biRequest(t, "GET", s.URL+"/authorize?"+q, "", "", noAuth), 400, "not set up to sign in here")
		}},
		{"authorize: unknown client", func(t *testing.T) {
			biExpectPage(t, biRequest(t, "GET", authz("client_id", "no-such-client"), "", "", noAuth), 400, "not set up to sign in here")
		}},
		{"authorize: oversized client_id", func(t *testing.T) {
			biExpectPage(t, biRequest(t, "GET", authz("client_id", strings.Repeat("c", 300)), "", "", noAuth), 400, "not set up to sign in here")
		}},
		{"authorize: unregistered redirect_uri", func(t *testing.T) {
			biExpectPage(t, biRequest(t, "GET", authz("redirect_uri", "https://evil.example/callback"), "", "", noAuth), 400, "not set up to sign in here")
		}},
		{"authorize: missing redirect_uri", func(t *testing.T) {
			p := AuthParams()
			p.Del("redirect_uri")
			biExpectPage(t, biRequest(t, "GET", s.URL+"/authorize?"+p.Encode(), "", "", noAuth), 400, "not set up to sign in here")
		}},
		{"authorize: duplicated scope", func(t *testing.T) {
			biExpectAuthzError(t, s, s.URL+"/authorize?"+AuthParams().Encode()+"&scope=openid+email", "invalid_request")
		}},
		{"authorize: oversized state", func(t *testing.T) {
			biExpectAuthzError(t, s, authz("state", strings.Repeat("s", 3000)), "invalid_request")
		}},
		{"authorize: oversized nonce", func(t *testing.T) {
			biExpectAuthzError(t, s, authz("nonce", strings.Repeat("n", 3000)), "invalid_request")
		}},
		{"authorize: oversized login_hint", func(t *testing.T) {
			biExpectAuthzError(t, s, authz("login_hint", strings.Repeat("h", 300)), "invalid_request")
		}},
		{"authorize: oversized claims", func(t *testing.T) {
			claims := `{"id_token":{"x":"` + strings.Repeat("x", 5000) + `"}}`
			biExpectAuthzError(t, s, authz("claims", claims), "invalid_request")
		}},
		{"authorize: claims not JSON", func(t *testing.T) {
			biExpectAuthzError(t, s, authz("claims", "{not json"), "invalid_request")
		}},
		{"authorize: malformed code_challenge", func(t *testing.T) {
			biExpectAuthzError(t, s, authz("code_challenge", "short!", "code_challenge_method", "S256"), "invalid_request")
		}},
		{"authorize: plain PKCE", func(t *testing.T) {
			biExpectAuthzError(t, s, authz("code_challenge", strings.Repeat("A", 43), "code_challenge_method", "plain"), "invalid_request")
		}},
		{"authorize: public client without PKCE", func(t *testing.T) {
			biExpectAuthzError(t, s, authz("client_id", publicID), "invalid_request")
		}},
		{"authorize: negative max_age", func(t *testing.T) {
			biExpectAuthzError(t, s, authz("max_age", "-1"), "invalid_request")
		}},
		{"authorize: prompt none with login", func(t *testing.T) {
			biExpectAuthzError(t, s, authz("prompt", "none login"), "invalid_request")
		}},
		{"authorize: missing response_type", func(t *testing.T) {
			p := AuthParams()
			p.Del("response_type")
			biExpectAuthzError(t, s, s.URL+"/authorize?"+p.Encode(), "invalid_request")
		}},
		{"authorize: implicit response_type", func(t *testing.T) {
			biExpectAuthzError(t, s, authz("response_type", "id_token token"), "unsupported_response_type")
		}},
		{"authorize: request object", func(t *testing.T) {
			biExpectAuthzError(t, s, authz("request", "eyJhbGciOiJub25lIn0.e30."), "request_not_supported")
		}},
		{"authorize: client not allowed the code flow", func(t *testing.T) {
			// pw-app has no redirect URI, so this is a page, not a redirect.
			biExpectPage(t, biRequest(t, "GET", authz("client_id", passwordID), "", "", noAuth), 400, "not set up to sign in here")
		}},
		{"authorize: tampered id_token_hint", func(t *testing.T) {
			biExpectAuthzError(t, s, authz("id_token_hint", tamperedID), "invalid_request")
		}},
		{"authorize: id_token_hint signed by a foreign key", func(t *testing.T) {
			biExpectAuthzError(t, s, authz("id_token_hint", foreignID), "invalid_request")
		}},
		{"authorize: oversized query", func(t *testing.T) {
			a := biRequest(t, "GET", authz("state", huge), "", "", noAuth)
			if a.StatusCode != http.StatusRequestHeaderFieldsTooLarge && a.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 431 or 400", a.StatusCode)
			}
		}},
		{"authorize: huge POST body", func(t *testing.T) {
			body := AuthParams().Encode() + "&login_hint=" + huge
			biExpectPage(t, biRequest(t, "POST", s.URL+"/authorize", biFormType, body, noAuth), 400, "not valid")
		}},

		// The token endpoint.
		{"token: duplicated grant_type", func(t *testing.T) {
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/token", biFormType, "grant_type=client_credentials&grant_type=client_credentials", basic), 400, "invalid_request")
		}},
		{"token: duplicated code", func(t *testing.T) {
			body := "grant_type=authorization_code&code=a&code=b&redirect_uri=" + url.QueryEscape(redirectURI)
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/token", biFormType, body, basic), 400, "invalid_request")
		}},
		{"token: missing grant_type", func(t *testing.T) {
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/token", biFormType, "scope=openid", basic), 400, "invalid_request")
		}},
		{"token: unsupported grant_type", func(t *testing.T) {
			body := "grant_type=" + url.QueryEscape("urn:ietf:params:oauth:grant-type:saml2-bearer")
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/token", biFormType, body, basic), 400, "unsupported_grant_type")
		}},
		{"token: malformed form", func(t *testing.T) {
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/token", biFormType, "grant_type=client_credentials&scope=%zz", basic), 400, "invalid_request")
		}},
		{"token: JSON instead of a form", func(t *testing.T) {
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/token", "application/json", `{"grant_type":"client_credentials"}`, basic), 400, "invalid_request")
		}},
		{"token: no content type", func(t *testing.T) {
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/token", "", "grant_type=client_credentials", basic), 400, "invalid_request")
		}},
		{"token: huge body", func(t *testing.T) {
			a := biRequest(t, "POST", s.URL+"/token", biFormType, "grant_type=client_credentials&scope="+huge, basic)
			biExpectOAuthErrorIn(t, a, []int{413, 400}, "invalid_request")
		}},
		{"token: GET", func(t *testing.T) {
			a := biRequest(t, "GET", s.URL+"/token?grant_type=client_credentials", "", "", basic)
			if a.StatusCode != http.StatusMethodNotAllowed && a.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 405 or 400", a.StatusCode)
			}
		}},
		{"token: wrong client secret (Basic)", func(t *testing.T) {
			a := biRequest(t, "POST", s.URL+"/token", biFormType, "grant_type=client_credentials", [2]string{rpID, "wrong-secret"})
			biExpectOAuthError(t, a, 401, "invalid_client")
			if h := a.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Basic") {
				t.Errorf("WWW-Authenticate = %q, want a Basic challenge", h)
			}
		}},
		{"token: wrong client secret (post)", func(t *testing.T) {
			body := url.Values{"grant_type": {"client_credentials"}, "client_id": {rpID}, "client_secret": {"wrong-secret"}}.Encode()
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/token", biFormType, body, noAuth), 401, "invalid_client")
		}},
		{"token: unknown client", func(t *testing.T) {
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/token", biFormType, "grant_type=client_credentials", [2]string{"no-such-client", "x"}), 401, "invalid_client")
		}},
		{"token: Basic and client_secret together", func(t *testing.T) {
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/token", biFormType, "grant_type=client_credentials&client_secret="+rpSecret, basic), 401, "invalid_client")
		}},
		{"token: public client with a secret", func(t *testing.T) {
			body := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {publicID}, "client_secret": {"guess"}}.Encode()
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/token", biFormType, body, noAuth), 401, "invalid_client")
		}},
		{"token: grant type not allowed for the client", func(t *testing.T) {
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/token", biFormType, "grant_type=client_credentials", [2]string{rp2ID, rp2Secret}), 400, "unauthorized_client")
		}},
		{"token: unknown code", func(t *testing.T) {
			body := url.Values{"grant_type": {"authorization_code"}, "code": {"no-such-code"}, "redirect_uri": {redirectURI}}.Encode()
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/token", biFormType, body, basic), 400, "invalid_grant")
		}},
		{"token: missing code", func(t *testing.T) {
			body := url.Values{"grant_type": {"authorization_code"}, "redirect_uri": {redirectURI}}.Encode()
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/token", biFormType, body, basic), 400, "invalid_request")
		}},
		{"token: oversized code", func(t *testing.T) {
			body := url.Values{"grant_type": {"authorization_code"}, "code": {strings.Repeat("c", 60<<10)}, "redirect_uri": {redirectURI}}.Encode()
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/token", biFormType, body, basic), 400, "invalid_grant")
		}},
		{"token: unknown refresh token", func(t *testing.T) {
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/token", biFormType, "grant_type=refresh_token&refresh_token=nope", basic), 400, "invalid_grant")
		}},
		{"token: refresh token of another client", func(t *testing.T) {
			body := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {pwTok.RefreshToken}}.Encode()
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/token", biFormType, body, basic), 400, "invalid_grant")
		}},
		{"token: refresh with a scope beyond the grant", func(t *testing.T) {
			body := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "scope": {"openid admin"}}.Encode()
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/token", biFormType, body, basic), 400, "invalid_scope")
		}},
		{"token: password grant without a password", func(t *testing.T) {
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/token", biFormType, "grant_type=password&username=alice", [2]string{passwordID, pwSecret}), 400, "invalid_request")
		}},

		// Forged and misused JWTs.
		{"userinfo: tampered access token", func(t *testing.T) { biExpectBearerRefused(t, s, tamperedAT) }},
		{"userinfo: access token signed by a foreign key", func(t *testing.T) { biExpectBearerRefused(t, s, foreignAT) }},
		{"userinfo: unsigned access token (alg none)", func(t *testing.T) { biExpectBearerRefused(t, s, noneAT) }},
		{"userinfo: ID token as access token", func(t *testing.T) { biExpectBearerRefused(t, s, idToken) }},
		{"userinfo: no token", func(t *testing.T) {
			a := biRequest(t, "GET", s.URL+"/userinfo", "", "", noAuth)
			biExpectOAuthError(t, a, 401, "invalid_request")
			if h := a.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
				t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", h)
			}
		}},
		{"userinfo: huge POST body", func(t *testing.T) {
			a := biRequest(t, "POST", s.URL+"/userinfo", biFormType, "access_token="+huge, noAuth)
			biExpectOAuthErrorIn(t, a, []int{401, 413, 400}, "")
		}},
		{"introspect: tampered access token", func(t *testing.T) { biExpectInactive(t, rp, tamperedAT) }},
		{"introspect: access token signed by a foreign key", func(t *testing.T) { biExpectInactive(t, rp, foreignAT) }},
		{"introspect: unsigned access token (alg none)", func(t *testing.T) { biExpectInactive(t, rp, noneAT) }},
		{"introspect: wrong client secret", func(t *testing.T) {
			a := biRequest(t, "POST", s.URL+"/introspect", biFormType, "token="+url.QueryEscape(tok.AccessToken), [2]string{rpID, "wrong"})
			biExpectOAuthError(t, a, 401, "invalid_client")
			if h := a.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Basic") {
				t.Errorf("WWW-Authenticate = %q, want a Basic challenge", h)
			}
		}},
		{"introspect: missing token", func(t *testing.T) {
			biExpectOAuthError(t, biRequest(t, "POST", s.URL+"/introspect", biFormType, "", basic), 400, "invalid_request")
		}},
		{"introspect: huge body", func(t *testing.T) {
			a := biRequest(t, "POST", s.URL+"/introspect", biFormType, "token="+huge, basic)
			biExpectOAuthErrorIn(t, a, []int{413, 400}, "invalid_request")
		}},
		{"revoke: tampered access token", func(t *testing.T) {
			a := biRequest(t, "POST", s.URL+"/revoke", biFormType, "token="+url.QueryEscape(tamperedAT), basic)
			if a.StatusCode != http.StatusOK {
				t.Errorf("revoke answered %d %s, want 200 (RFC 7009 §2.2)", a.StatusCode, a.Body)
			}
		}},
		{"revoke: another client's refresh token", func(t *testing.T) {
			a := biRequest(t, "POST", s.URL+"/revoke", biFormType, "token="+url.QueryEscape(pwTok.RefreshToken), basic)
			if a.StatusCode != http.StatusOK {
				t.Errorf("revoke answered %d %s, want 200 (RFC 7009 §2.2)", a.StatusCode, a.Body)
			}
		}},
		{"logout: tampered id_token_hint", func(t *testing.T) {
			q := url.Values{"id_token_hint": {tamperedID}, "post_logout_redirect_uri": {logoutURI}}
			biExpectPage(t, biRequest(t, "GET", s.URL+"/logout?"+q.Encode(), "", "", noAuth), 400, "did not issue")
		}},
		{"logout: id_token_hint signed by a foreign key", func(t *testing.T) {
			q := url.Values{"id_token_hint": {foreignID}, "post_logout_redirect_uri": {logoutURI}}
			biExpectPage(t, biRequest(t, "GET", s.URL+"/logout?"+q.Encode(), "", "", noAuth), 400, "did not issue")
		}},
		{"logout: unregistered post_logout_redirect_uri", func(t *testing.T) {
			q := url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {"https://evil.example/"}}
			biExpectPage(t, biRequest(t, "GET", s.URL+"/logout?"+q.Encode(), "", "", noAuth), 400, "not registered")
		}},

		// The login page and form.
		{"login form: bad CSRF token", func(t *testing.T) {
			resp, page := in(t, lb).PostForm(form.Action, url.Values{"req": {form.Req}, "csrf": {"forged"}, "username": {"alice"}, "password": {alicePass}})
			biExpectPage(t, biAnswer{resp, page}, 403, "The sign-in form has expired")
		}},
		{"login form: missing CSRF token", func(t *testing.T) {
			resp, page := in(t, lb).PostForm(form.Action, url.Values{"req": {form.Req}, "username": {"alice"}, "password": {alicePass}})
			biExpectPage(t, biAnswer{resp, page}, 403, "The sign-in form has expired")
		}},
		{"login form: unknown req id", func(t *testing.T) {
			resp, page := in(t, lb).PostForm(form.Action, url.Values{"req": {"no-such-request"}, "csrf": {form.CSRF}, "username": {"alice"}, "password": {alicePass}})
			biExpectPage(t, biAnswer{resp, page}, 400, "does not know this sign-in")
		}},
		{"login form: another browser", func(t *testing.T) {
			resp, page := NewBrowser(t).Submit(form, "alice", alicePass)
			biExpectPage(t, biAnswer{resp, page}, 400, "does not know this sign-in")
		}},
		{"login form: unknown connector", func(t *testing.T) {
			resp, page := in(t, lb).PostForm(s.URL+"/broker/nope/login", url.Values{"req": {form.Req}, "csrf": {form.CSRF}, "username": {"alice"}, "password": {alicePass}})
			biExpectPage(t, biAnswer{resp, page}, 404, "This sign-in method is not available")
		}},
		{"login form: empty password", func(t *testing.T) {
			resp, page := in(t, lb).Submit(form, "alice", "")
			biExpectPage(t, biAnswer{resp, page}, 401, "Invalid username or password")
		}},
		{"login form: huge body", func(t *testing.T) {
			resp, page := in(t, lb).PostForm(form.Action, url.Values{"req": {form.Req}, "csrf": {form.CSRF}, "username": {huge}})
			biExpectPage(t, biAnswer{resp, page}, 400, "could not be read")
		}},
		{"login page: unknown req id", func(t *testing.T) {
			resp, page := in(t, lb).Get(s.URL + "/login?req=no-such-request")
			biExpectPage(t, biAnswer{resp, page}, 400, "does not know this sign-in")
		}},
		{"login page: no req id", func(t *testing.T) {
			resp, page := in(t, lb).Get(s.URL + "/login")
			biExpectPage(t, biAnswer{resp, page}, 400, "Go back to the application")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := biSnapshotDB(t, dbPath)
			c.run(t)
			before.expectChanged(t, biSnapshotDB(t, dbPath))
		})
	}

	t.Run("login form: wrong password counts a failure and nothing else", func(t *testing.T) {
		before := biSnapshotDB(t, dbPath)
		resp, page := in(t, lb).Submit(form, "alice", "wrong-"+alicePass)
		biExpectPage(t, biAnswer{resp, page}, 401, "Invalid username or password")
		after := biSnapshotDB(t, dbPath)
		before.expectChanged(t, after, append([]string{"failures"}, biAuditTables...)...)
		before.expectAudit(t, after, "login.failure")
	})

	t.Run("token: reused code revokes the grant", func(t *testing.T) {
		b := NewBrowser(t)
		a := rp.begin()
		got := b.Authorize(s, a.params, "alice", alicePass)
		first, _, _ := rp.finish(t, a, got)
		gid, _ := rpJWTPart(t, first.AccessToken, 1)["gid"].(string)
		before := biSnapshotDB(t, dbPath)
		_, err := rp.conf.Exchange(t.Context(), got.Get("code"), oauth2.VerifierOption(a.verifier))
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" || re.Response.StatusCode != 400 {
			t.Fatalf("second redemption = %v, want 400 invalid_grant", err)
		}
		after := biSnapshotDB(t, dbPath)
		before.expectChanged(t, after, append([]string{"grants", "refresh_tokens"}, biAuditTables...)...)
		before.expectAudit(t, after, "grant.revoked")
		var revokedAt sql.NullString
		biQueryDB(t, dbPath, "SELECT revoked_at FROM grants WHERE id = ?", []any{gid}, &revokedAt)
		if !revokedAt.Valid || revokedAt.String == "" {
			t.Errorf("grant %s is not revoked after its code was reused", gid)
		}
		if rp.introspect(t, first.AccessToken).active() || rp.introspect(t, first.RefreshToken).active() {
			t.Errorf("the tokens of the first redemption are still active")
		}
	})

	t.Run("token: expired code", func(t *testing.T) {
		s1 := Start(t, WithConfig(strings.Replace(defaultConfig, "code_ttl: 60s", "code_ttl: 1s", 1)))
		rp1 := newGoRP(t, s1, rpID, rpSecret)
		a := rp1.begin()
		got := NewBrowser(t).Authorize(s1, a.params, "alice", alicePass)
		time.Sleep(2 * time.Second)
		before := biSnapshotDB(t, biServerDB(s1))
		_, err := rp1.conf.Exchange(t.Context(), got.Get("code"), oauth2.VerifierOption(a.verifier))
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" || re.Response.StatusCode != 400 {
			t.Fatalf("redeeming an expired code = %v, want 400 invalid_grant", err)
		}
		before.expectChanged(t, biSnapshotDB(t, biServerDB(s1)))
	})
}

const biFormType = "application/x-www-form-urlencoded"

// biServerDB is the SQLite file of a server started with the default storage.
func biServerDB(s *Server) string { return filepath.Join(filepath.Dir(s.Config), "fedhub.db") }

// biNoRedirects is an HTTP client without cookies that shows every redirect.
var biNoRedirects = &http.Client{Timeout: 30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// biAnswer is a response with its body read.
type biAnswer struct {
	*http.Response
	Body string
}

// biRequest sends a request as given (auth is HTTP Basic id and secret, or
// nothing when empty) and returns the answer.
func biRequest(t testing.TB, method, target, contentType, body string, auth [2]string) biAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth[0] != "" {
		req.SetBasicAuth(url.QueryEscape(auth[0]), url.QueryEscape(auth[1]))
	}
	resp, err := biNoRedirects.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target[:min(len(target), 80)], err)
	}
	return biAnswer{resp, readBody(t, resp)}
}

// biGoErrorText is what must never reach a person: Go errors, stack traces,
// database messages and template slips.
var biGoErrorText = []string{"goroutine ", "panic", "runtime error", ".go:", "sql:", "gorm", "sqlite", "SQLSTATE",
	"record not found", "<nil>", "%!", "map[", "&{", "err=", "Internal Server Error", "invalid memory address"}

// biExpectPage checks that an answer is an HTML page with this status, saying
// want, and free of Go error text.
func biExpectPage(t testing.TB, a biAnswer, status int, want string) {
	t.Helper()
	resp, body := a.Response, a.Body
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d; body:\n%s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q, want an HTML page", ct)
	}
	if resp.Header.Get("Location") != "" {
		t.Errorf("the page also redirects to %q", resp.Header.Get("Location"))
	}
	if !strings.Contains(body, want) {
		t.Errorf("page does not say %q:\n%s", want, body)
	}
	for _, bad := range biGoErrorText {
		if strings.Contains(body, bad) {
			t.Errorf("page contains %q:\n%s", bad, body)
		}
	}
}

// biExpectOAuthError checks a JSON error answer (RFC 6749 §5.2).
func biExpectOAuthError(t testing.TB, a biAnswer, status int, code string) {
	t.Helper()
	biExpectOAuthErrorIn(t, a, []int{status}, code)
}

// biExpectOAuthErrorIn is biExpectOAuthError with a choice of statuses; an empty
// code accepts any error code.
func biExpectOAuthErrorIn(t testing.TB, a biAnswer, statuses []int, code string) {
	t.Helper()
	resp, body := a.Response, a.Body
	if !slices.Contains(statuses, resp.StatusCode) {
		t.Errorf("status %d, want one of %v; body: %s", resp.StatusCode, statuses, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want JSON", ct)
	}
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error answer is not JSON: %q", body)
	}
	if e.Error == "" || (code != "" && e.Error != code) {
		t.Errorf("error = %q (%s), want %q", e.Error, e.Description, code)
	}
	for _, bad := range biGoErrorText {
		if strings.Contains(e.Description, bad) {
			t.Errorf("error_description contains %q: %s", bad, e.Description)
		}
	}
}

// biExpectAuthzError checks that an authorization request is sent back to the
// RP's redirect URI with this error code and the issuer.
func biExpectAuthzError(t testing.TB, s *Server, authorizeURL, code string) {
	t.Helper()
	a := biRequest(t, "GET", authorizeURL, "", "", [2]string{})
	resp, body := a.Response, a.Body
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, redirectURI+"?") {
		t.Fatalf("answered %d Location %q, want a 303 to the RP; body:\n%s", resp.StatusCode, loc, body)
	}
	u, _ := url.Parse(loc)
	q := u.Query()
	if q.Get("error") != code {
		t.Errorf("error = %q (%s), want %q", q.Get("error"), q.Get("error_description"), code)
	}
	if q.Get("iss") != s.URL {
		t.Errorf("iss = %q, want %q", q.Get("iss"), s.URL)
	}
	if q.Has("code") {
		t.Errorf("an error redirect carries a code")
	}
}

func biExpectBearerRefused(t testing.TB, s *Server, token string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", s.URL+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := biNoRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	biExpectOAuthError(t, biAnswer{resp, readBody(t, resp)}, 401, "invalid_token")
	if h := resp.Header.Get("WWW-Authenticate"); !strings.Contains(h, `error="invalid_token"`) {
		t.Errorf("WWW-Authenticate = %q, want Bearer error=\"invalid_token\"", h)
	}
}

func biExpectInactive(t testing.TB, rp *goRP, token string) {
	t.Helper()
	if in := rp.introspect(t, token); in.active() || len(in) != 1 {
		t.Errorf("introspection = %v, want exactly {active: false}", in)
	}
}

// biPasswordGrant gets tokens for a user with the pw-app client.
func biPasswordGrant(t testing.TB, s *Server, username, password string) *oauth2.Token {
	t.Helper()
	conf := oauth2.Config{ClientID: passwordID, ClientSecret: pwSecret,
		Endpoint: oauth2.Endpoint{TokenURL: s.URL + "/token", AuthStyle: oauth2.AuthStyleInHeader},
		Scopes:   []string{"openid", "profile"}}
	tok, err := conf.PasswordCredentialsToken(t.Context(), username, password)
	if err != nil {
		t.Fatalf("password grant for %s: %v", username, err)
	}
	return tok
}

// biTamperJWT changes the subject of a JWT and keeps its signature.
func biTamperJWT(t testing.TB, token string) string {
	t.Helper()
	claims := rpJWTPart(t, token, 1)
	claims["sub"] = "00000000-0000-4000-8000-000000000000"
	payload, _ := json.Marshal(claims)
	parts := strings.Split(token, ".")
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
}

// biForeignJWT signs a JWT's claims with a key of our own that claims the
// issuer's kid.
func biForeignJWT(t testing.TB, token, kid, typ string) string {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: priv, KeyID: kid}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(rpJWTPart(t, token, 1))
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// biUnsignedJWT is a JWT's claims with alg "none".
func biUnsignedJWT(t testing.TB, token, kid string) string {
	t.Helper()
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "at+jwt", "kid": kid})
	p, _ := json.Marshal(rpJWTPart(t, token, 1))
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
}

// biSnapshot is every row of every table of a SQLite database, for comparing.
type biSnapshot map[string][]string // table → sorted rows

// biSnapshotDB reads the whole database read-only.
func biSnapshotDB(t testing.TB, path string) biSnapshot {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tables []string
	rows, err := db.QueryContext(t.Context(), "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
	if err != nil {
		t.Fatalf("snapshot %s: %v", path, err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	snap := biSnapshot{}
	for _, table := range tables {
		snap[table] = biTableRows(t, db, table)
	}
	if len(snap) == 0 {
		t.Fatalf("snapshot %s: no tables", path)
	}
	return snap
}

func biTableRows(t testing.TB, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), `SELECT * FROM "`+strings.ReplaceAll(table, `"`, `""`)+`"`)
	if err != nil {
		t.Fatalf("snapshot table %s: %v", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for i, v := range vals {
			if raw, ok := v.([]byte); ok {
				v = "x'" + hex.EncodeToString(raw) + "'"
			}
			if ts, ok := v.(time.Time); ok {
				v = ts.UTC().Format(time.RFC3339Nano)
			}
			fmt.Fprintf(&b, "%s=%v;", cols[i], v)
		}
		out = append(out, b.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// sum is a table's row count and checksum.
func (s biSnapshot) sum(table string) string {
	rows, ok := s[table]
	if !ok {
		return "absent"
	}
	h := sha256.Sum256([]byte(strings.Join(rows, "\n")))
	return fmt.Sprintf("%d rows, sha256 %x", len(rows), h[:8])
}

// expectChanged checks that exactly the named tables differ between s and after.
func (s biSnapshot) expectChanged(t testing.TB, after biSnapshot, tables ...string) {
	t.Helper()
	all := map[string]bool{}
	for k := range s {
		all[k] = true
	}
	for k := range after {
		all[k] = true
	}
	names := make([]string, 0, len(all))
	for k := range all {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, table := range names {
		changed := s.sum(table) != after.sum(table)
		want := slices.Contains(tables, table)
		switch {
		case changed && !want:
			t.Errorf("table %s changed (%s → %s):%s", table, s.sum(table), after.sum(table), biRowDiff(s[table], after[table]))
		case !changed && want:
			t.Errorf("table %s did not change (%s), but it should have", table, s.sum(table))
		}
	}
}

// biAuditTables change whenever fedhub records an audit event: the events
// table and SQLite's AUTOINCREMENT bookkeeping.
var biAuditTables = []string{"events", "sqlite_sequence"}

// expectAudit checks that exactly one audit event of this type was added.
func (s biSnapshot) expectAudit(t testing.TB, after biSnapshot, typ string) {
	t.Helper()
	var added []string
	for _, r := range after["events"] {
		if !slices.Contains(s["events"], r) {
			added = append(added, r)
		}
	}
	if len(added) != 1 || !strings.Contains(added[0], ";type="+typ+";") {
		t.Errorf("audit events added = %q, want one %s event", added, typ)
	}
}

// biRowDiff lists the rows only in before (-) and only in after (+).
func biRowDiff(before, after []string) string {
	var b strings.Builder
	for _, r := range before {
		if !slices.Contains(after, r) {
			b.WriteString("\n  - " + r)
		}
	}
	for _, r := range after {
		if !slices.Contains(before, r) {
			b.WriteString("\n  + " + r)
		}
	}
	return b.String()
}

// biQueryDB runs one read-only query that returns one row.
func biQueryDB(t testing.TB, path, query string, args []any, dest ...any) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRowContext(t.Context(), query, args...).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// Authorization parameters that are not text (NUL, broken UTF-8) are an
// invalid request, never a row PostgreSQL would refuse with a 500.
func TestAuthorizeParamsNotText(t *testing.T) {
	s := Start(t)
	for _, p := range [][2]string{{"state", "a\x00b"}, {"nonce", "\xff"}, {"login_hint", "al\x00ice"}} {
		resp, _ := NewBrowser(t).Get(s.URL + "/authorize?" + AuthParams(p[0], p[1]).Encode())
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || resp.StatusCode != http.StatusSeeOther || loc.Query().Get("error") != "invalid_request" {
			t.Errorf("%s=%q answered %d %q, want a redirect with invalid_request", p[0], p[1], resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}
