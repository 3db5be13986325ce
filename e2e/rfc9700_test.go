package e2e

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRFC9700 checks the OAuth 2.0 Security BCP (RFC 9700) and OAuth 2.1 rules
// the issuer keeps beyond the conformance suite, one subtest per rule of
// ../shared/CONFORMANCE.md. The subtests share one server and run in parallel.
func TestRFC9700(t *testing.T) {
	t.Parallel()
	s := Start(t)
	run := func(name string, f func(t *testing.T)) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t)
		})
	}

	// Redirect URIs match exactly (loopback may vary only the port); never
	// redirect on a bad client_id/redirect_uri pair.
	run("redirect-uri", func(t *testing.T) {
		b := NewBrowser(t)
		ocCodeFlow(t, s, b, ocRP, AuthParams()) // with a session a code would be issued at once
		bad := []url.Values{
			AuthParams("redirect_uri", redirectURI+"/"),
			AuthParams("redirect_uri", redirectURI+"x"),
			AuthParams("redirect_uri", redirectURI+"?x=1"),
			AuthParams("redirect_uri", redirectURI+"#x"),
			AuthParams("redirect_uri", "http://127.0.0.1:5555/CALLBACK"),
			AuthParams("redirect_uri", "HTTP://127.0.0.1:5555/callback"),
			AuthParams("redirect_uri", "http://127.0.0.1:5555/%63allback"),
			AuthParams("redirect_uri", "http://127.0.0.1:5555/callback?"),
			AuthParams("redirect_uri", "http://127.0.0.1:5555/callback/../callback"),
			AuthParams("redirect_uri", "http://127.0.0.1:5555/callback%2F"),
			AuthParams("redirect_uri", "https://127.0.0.1:5555/callback"),
			AuthParams("redirect_uri", "http://localhost:5555/callback"),
			AuthParams("redirect_uri", "http://127.0.0.2:5555/callback"),
			AuthParams("redirect_uri", "http://[::1]:5555/callback"),
			AuthParams("redirect_uri", "http://user@127.0.0.1:5555/callback"),
			AuthParams("redirect_uri", "http://127.0.0.1.attacker.example:5555/callback"),
			AuthParams("redirect_uri", "https://attacker.example/callback"),
			AuthParams("redirect_uri", "http://127.0.0.1:5555/logged-out"), // rp's post-logout URI, not a redirect URI
			AuthParams("redirect_uri", ""),
			AuthParams("client_id", rp2ID, "redirect_uri", "http://127.0.0.1/loopback"), // registered for rp only
			AuthParams("client_id", passwordID),                                         // no redirect URIs at all
			AuthParams("client_id", "no-such-client"),
			AuthParams("client_id", ""),
			// Other errors in the request do not make a bad pair redirect either.
			AuthParams("redirect_uri", "https://attacker.example/callback", "response_type", "token"),
			AuthParams("redirect_uri", "https://attacker.example/callback", "prompt", "none"),
			AuthParams("client_id", "no-such-client", "request", "x"),
		}
		noRedirect := AuthParams()
		noRedirect.Del("redirect_uri")
		bad = append(bad, noRedirect)
		for _, p := range bad {
			resp, body := b.Get(s.URL + "/authorize?" + p.Encode())
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
				t.Errorf("client_id %q redirect_uri %q: answered %d Location %q, want an error page",
					p.Get("client_id"), p.Get("redirect_uri"), resp.StatusCode, resp.Header.Get("Location"))
				continue
			}
			ocWantErrorPage(t, resp, body)
		}
		// A parameter given twice is not an exact match either.
		dup := AuthParams().Encode() + "&redirect_uri=" + url.QueryEscape("https://attacker.example/callback")
		resp, body := b.Get(s.URL + "/authorize?" + dup)
		ocWantErrorPage(t, resp, body)

		// Loopback IP redirect URIs may use any port (RFC 8252 §7.3), and the
		// code is then bound to the URI with that port.
		for _, uri := range []string{"http://127.0.0.1:49152/loopback", "http://127.0.0.1/loopback", "http://127.0.0.1:5556/callback"} {
			p := AuthParams("redirect_uri", uri)
			code := ocWantCode(t, s, ocSilent(t, s, b, p), p)
			if uri == "http://127.0.0.1:49152/loopback" {
				ocWantOAuthError(t, ocRedeem(t, s, ocRP, code, "http://127.0.0.1/loopback", ""), http.StatusBadRequest, "invalid_grant")
				code = ocWantCode(t, s, ocSilent(t, s, b, p), p)
			}
			ocRedeemAndVerify(t, s, ocRP, code, p)
		}
	})

	// PKCE: S256 required for public clients; a code_verifier without a
	// challenge in the authorization request is rejected; plain is refused.
	run("pkce", func(t *testing.T) {
		_, meta := ocDiscovery(t, s)
		if methods, _ := ocStrings(meta["code_challenge_methods_supported"]); !slices.Equal(methods, []string{"S256"}) {
			t.Fatalf("code_challenge_methods_supported = %v, want [S256]", meta["code_challenge_methods_supported"])
		}
		b := NewBrowser(t)
		verifier, challenge := ocPKCE()
		public := func(extra ...string) url.Values {
			return AuthParams(append([]string{"client_id", publicID}, extra...)...)
		}
		// Refused before any login, and with a session as well.
		for _, p := range []url.Values{
			public(),
			public("code_challenge", verifier, "code_challenge_method", "plain"),
			public("code_challenge", challenge), // the default method is plain
			public("code_challenge", challenge, "code_challenge_method", "s256"),
			public("code_challenge", "too-short", "code_challenge_method", "S256"),
			public("code_challenge_method", "S256"),
			AuthParams("code_challenge", verifier, "code_challenge_method", "plain"),
			AuthParams("code_challenge", challenge),
		} {
			ocWantAuthzError(t, s, ocSilent(t, s, b, p), p, "invalid_request")
		}

		p := public("code_challenge", challenge, "code_challenge_method", "S256")
		code := ocWantCode(t, s, ocAuthorize(t, s, b, p), p)
		ocWantOAuthError(t, ocRedeem(t, s, ocPublic, code, redirectURI, ""), http.StatusBadRequest, "invalid_grant")
		code = ocWantCode(t, s, ocSilent(t, s, b, p), p)
		other, _ := ocPKCE()
		ocWantOAuthError(t, ocRedeem(t, s, ocPublic, code, redirectURI, other), http.StatusBadRequest, "invalid_grant")
		code = ocWantCode(t, s, ocSilent(t, s, b, p), p)
		ocWantOAuthError(t, ocRedeem(t, s, ocPublic, code, redirectURI, challenge), http.StatusBadRequest, "invalid_grant")
		code = ocWantCode(t, s, ocSilent(t, s, b, p), p)
		ts := ocWantTokens(t, ocRedeem(t, s, ocPublic, code, redirectURI, verifier))
		if tok := ocVerifyIDToken(t, s, publicID, ts.ID); tok.Nonce != p.Get("nonce") {
			t.Fatalf("ID token nonce = %q", tok.Nonce)
		}

		// A verifier for a request that had no challenge (RFC 9700 §4.8.2).
		q := AuthParams()
		code = ocWantCode(t, s, ocSilent(t, s, b, q), q)
		ocWantOAuthError(t, ocRedeem(t, s, ocRP, code, redirectURI, verifier), http.StatusBadRequest, "invalid_grant")
	})

	// Codes live ≤ 60 s, are bound to client, redirect URI and challenge, and are single-use.
	run("codes", func(t *testing.T) {
		if out, err := ocCheckConfig(t, defaultConfig); err != nil {
			t.Fatalf("the default configuration does not check: %v\n%s", err, out)
		}
		out, err := ocCheckConfig(t, strings.Replace(defaultConfig, "code_ttl: 60s", "code_ttl: 61s", 1))
		if err == nil || !strings.Contains(out, "tokens.code_ttl") {
			t.Fatalf("code_ttl: 61s accepted: %v\n%s", err, out)
		}
		short := Start(t, WithConfig(strings.Replace(defaultConfig, "code_ttl: 60s", "code_ttl: 1s", 1)))
		p := AuthParams()
		code := ocWantCode(t, short, ocAuthorize(t, short, NewBrowser(t), p), p)
		time.Sleep(1500 * time.Millisecond)
		ocWantOAuthError(t, ocRedeem(t, short, ocRP, code, redirectURI, ""), http.StatusBadRequest, "invalid_grant")

		b := NewBrowser(t)
		newCode := func(p url.Values) string {
			t.Helper()
			return ocWantCode(t, s, ocAuthorize(t, s, b, p), p)
		}
		// Bound to the client, which is checked before the code is touched:
		// another client's attempt neither burns the code nor, once it was
		// redeemed, revokes what its own client got.
		p = AuthParams()
		code = newCode(p)
		ocWantOAuthError(t, ocRedeem(t, s, ocRP2, code, redirectURI, ""), http.StatusBadRequest, "invalid_grant")
		ocWantOAuthError(t, ocRedeem(t, s, ocPublic, code, redirectURI, ""), http.StatusBadRequest, "invalid_grant")
		mine, _ := ocRedeemAndVerify(t, s, ocRP, code, p) // still good for its own client
		ocWantOAuthError(t, ocRedeem(t, s, ocRP2, code, redirectURI, ""), http.StatusBadRequest, "invalid_grant")
		ocWantTokens(t, ocRefresh(t, s, ocRP, mine.Refresh))
		// Bound to the redirect URI, even another registered one.
		code = newCode(AuthParams())
		ocWantOAuthError(t, ocRedeem(t, s, ocRP, code, "http://127.0.0.1/loopback", ""), http.StatusBadRequest, "invalid_grant")
		code = newCode(AuthParams())
		ocWantOAuthError(t, ocRedeem(t, s, ocRP, code, "", ""), http.StatusBadRequest, "invalid_grant")
		// Bound to the challenge.
		verifier, challenge := ocPKCE()
		other, _ := ocPKCE()
		pk := AuthParams("code_challenge", challenge, "code_challenge_method", "S256")
		code = newCode(pk)
		ocWantOAuthError(t, ocRedeem(t, s, ocRP, code, redirectURI, other), http.StatusBadRequest, "invalid_grant")
		code = newCode(pk)
		ocWantOAuthError(t, ocRedeem(t, s, ocRP, code, redirectURI, ""), http.StatusBadRequest, "invalid_grant")
		code = newCode(pk)
		ocWantTokens(t, ocRedeem(t, s, ocRP, code, redirectURI, verifier))
		// Single use: the second use fails and revokes what the first issued.
		p = AuthParams()
		code = newCode(p)
		ts, _ := ocRedeemAndVerify(t, s, ocRP, code, p)
		ocWantOAuthError(t, ocRedeem(t, s, ocRP, code, redirectURI, ""), http.StatusBadRequest, "invalid_grant")
		ocWantUserinfoRefused(t, s, ts.Access)
		ocWantOAuthError(t, ocRefresh(t, s, ocRP, ts.Refresh), http.StatusBadRequest, "invalid_grant")
		if a := ocPost(t, s, "/introspect", &ocRP, url.Values{"token": {ts.Access}}); a.Status != http.StatusOK || a.Body["active"] != false {
			t.Fatalf("introspection of a reused code's access token: %d %s", a.Status, a.Raw)
		}
	})

	// Refresh tokens rotate; presenting a rotated one revokes the family; they
	// are bound to their client.
	run("refresh-tokens", func(t *testing.T) {
		b := NewBrowser(t)
		first, tok := ocCodeFlow(t, s, b, ocRP, AuthParams())
		second := ocWantTokens(t, ocRefresh(t, s, ocRP, first.Refresh))
		if second.Refresh == "" || second.Refresh == first.Refresh {
			t.Fatalf("refresh token not rotated: %q, then %q", first.Refresh, second.Refresh)
		}
		third := ocWantTokens(t, ocRefresh(t, s, ocRP, second.Refresh))
		ocWantUserinfo(t, s, third.Access, tok)
		// The rotated first one comes back: the whole family dies.
		ocWantOAuthError(t, ocRefresh(t, s, ocRP, first.Refresh), http.StatusBadRequest, "invalid_grant")
		ocWantOAuthError(t, ocRefresh(t, s, ocRP, third.Refresh), http.StatusBadRequest, "invalid_grant")
		for _, at := range []string{first.Access, second.Access, third.Access} {
			ocWantUserinfoRefused(t, s, at)
		}
		if a := ocPost(t, s, "/introspect", &ocRP, url.Values{"token": {third.Refresh}}); a.Body["active"] != false {
			t.Fatalf("introspection of a revoked family's refresh token: %s", a.Raw)
		}

		// Bound to the client: another client cannot use it (nor burn it).
		p := AuthParams("client_id", rp2ID)
		theirs, _ := ocRedeemAndVerify(t, s, ocRP2, ocWantCode(t, s, ocAuthorize(t, s, b, p), p), p)
		ocWantOAuthError(t, ocRefresh(t, s, ocRP, theirs.Refresh), http.StatusBadRequest, "invalid_grant")
		ocWantOAuthError(t, ocRefresh(t, s, ocRPPost, theirs.Refresh), http.StatusBadRequest, "invalid_grant")
		ocWantOAuthError(t, ocRefresh(t, s, ocPublic, theirs.Refresh), http.StatusBadRequest, "invalid_grant")
		a := ocPost(t, s, "/token", nil, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {theirs.Refresh}})
		ocWantOAuthError(t, a, http.StatusUnauthorized, "invalid_client")
		ocWantTokens(t, ocRefresh(t, s, ocRP2, theirs.Refresh))
	})

	// Introspection (RFC 7662) requires client authentication; revocation
	// (RFC 7009) answers 200 for unknown tokens.
	run("introspection-revocation", func(t *testing.T) {
		b := NewBrowser(t)
		ts, tok := ocCodeFlow(t, s, b, ocRP, AuthParams())
		for _, path := range []string{"/introspect", "/revoke"} {
			form := url.Values{"token": {ts.Access}}
			ocWantOAuthError(t, ocPost(t, s, path, nil, form), http.StatusUnauthorized, "invalid_client")
			ocWantOAuthError(t, ocPost(t, s, path, &ocClient{id: "no-such-client", secret: "x"}, form), http.StatusUnauthorized, "invalid_client")
			a := ocPost(t, s, path, &ocClient{id: rpID, secret: "wrong-secret"}, form)
			ocWantOAuthError(t, a, http.StatusUnauthorized, "invalid_client")
			if !strings.HasPrefix(a.Header.Get("WWW-Authenticate"), "Basic") {
				t.Fatalf("%s: 401 to HTTP Basic without a Basic challenge", path)
			}
		}
		// A public client's client_id proves nothing: it may not scan tokens.
		a := ocPost(t, s, "/introspect", &ocPublic, url.Values{"token": {ts.Access}})
		ocWantOAuthError(t, a, http.StatusUnauthorized, "invalid_client")

		for _, c := range []ocClient{ocRP, ocRPPost} {
			a := ocPost(t, s, "/introspect", &c, url.Values{"token": {ts.Access}})
			if a.Status != http.StatusOK || a.Body["active"] != true || a.str("client_id") != rpID ||
				a.str("sub") != tok.Subject || a.str("iss") != s.URL || !strings.Contains(a.str("scope"), "openid") {
				t.Fatalf("introspection of a live access token: %d %s", a.Status, a.Raw)
			}
			if exp, _ := a.Body["exp"].(float64); int64(exp) <= time.Now().Unix() {
				t.Fatalf("introspection exp = %v", a.Body["exp"])
			}
			ocWantNoStore(t, a.Header)
		}
		a = ocPost(t, s, "/introspect", &ocRP, url.Values{"token": {ts.Refresh}})
		if a.Status != http.StatusOK || a.Body["active"] != true || a.str("client_id") != rpID {
			t.Fatalf("introspection of a live refresh token: %d %s", a.Status, a.Raw)
		}
		for _, token := range []string{"no-such-token", ts.ID} { // an ID token is not an access token
			a := ocPost(t, s, "/introspect", &ocRP, url.Values{"token": {token}})
			if a.Status != http.StatusOK || len(a.Body) != 1 || a.Body["active"] != false {
				t.Fatalf("introspection of %.20s…: %d %s, want exactly {\"active\":false}", token, a.Status, a.Raw)
			}
		}

		// Revocation: 200 for unknown tokens, with or without a hint.
		for _, form := range []url.Values{
			{"token": {"no-such-token"}},
			{"token": {"no-such-token"}, "token_type_hint": {"access_token"}},
			{"token": {"no-such-token"}, "token_type_hint": {"refresh_token"}},
		} {
			if a := ocPost(t, s, "/revoke", &ocRP, form); a.Status != http.StatusOK {
				t.Fatalf("revoking an unknown token: %d %s", a.Status, a.Raw)
			}
		}
		// Another client cannot revoke rp's token.
		ocPost(t, s, "/revoke", &ocRP2, url.Values{"token": {ts.Access}})
		ocWantUserinfo(t, s, ts.Access, tok)
		// rp revokes its access token.
		if a := ocPost(t, s, "/revoke", &ocRP, url.Values{"token": {ts.Access}}); a.Status != http.StatusOK {
			t.Fatalf("revoking an access token: %d %s", a.Status, a.Raw)
		}
		ocWantUserinfoRefused(t, s, ts.Access)
		if a := ocPost(t, s, "/introspect", &ocRP, url.Values{"token": {ts.Access}}); a.Body["active"] != false {
			t.Fatalf("introspection of a revoked access token: %s", a.Raw)
		}
		// Revoking a refresh token revokes the grant, access tokens included.
		next, _ := ocCodeFlow(t, s, b, ocRP, AuthParams())
		if a := ocPost(t, s, "/revoke", &ocRPPost, url.Values{"token": {next.Refresh}, "token_type_hint": {"refresh_token"}}); a.Status != http.StatusOK {
			t.Fatalf("revoking a refresh token: %d %s", a.Status, a.Raw)
		}
		ocWantOAuthError(t, ocRefresh(t, s, ocRP, next.Refresh), http.StatusBadRequest, "invalid_grant")
		ocWantUserinfoRefused(t, s, next.Access)
	})

	// 303, never 307, after a credential POST; Referrer-Policy: no-referrer
	// on pages that carry codes; no CORS on the authorization endpoint.
	run("http-responses", func(t *testing.T) {
		// Pages and redirects that carry codes or login requests: no
		// Referer leaks them, and the authorization endpoint's are not stored.
		wantHeaders := func(what string, resp *http.Response) {
			t.Helper()
			if resp.StatusCode == http.StatusTemporaryRedirect || resp.StatusCode == http.StatusPermanentRedirect {
				t.Errorf("%s: answered %d, which would replay the POST", what, resp.StatusCode)
			}
			if rp := resp.Header.Get("Referrer-Policy"); rp != "no-referrer" {
				t.Errorf("%s: Referrer-Policy = %q, want no-referrer", what, rp)
			}
			if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") && what != "login POST" {
				t.Errorf("%s: Cache-Control = %q, want no-store", what, cc)
			}
		}
		b := NewBrowser(t)
		p := AuthParams()
		resp, _ := b.Get(s.URL + "/authorize?" + p.Encode())
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("GET /authorize answered %d, want 303", resp.StatusCode)
		}
		wantHeaders("GET /authorize", resp)
		f := ocLoginForm(t, s, b, resp.Header.Get("Location"))
		resp, _ = b.Get(s.URL + resp.Header.Get("Location"))
		wantHeaders("login page", resp)
		resp, _ = b.Submit(f, "alice", alicePass) // the credential POST
		wantHeaders("login POST", resp)
		code := ocWantCode(t, s, ocCallback(t, resp, redirectURI), p)
		ts, _ := ocRedeemAndVerify(t, s, ocRP, code, p)

		// The authorization endpoint answers a POST with a 303 too, with or without a session.
		p = AuthParams()
		resp, _ = b.PostForm(s.URL+"/authorize", p)
		wantHeaders("POST /authorize", resp)
		ocWantCode(t, s, ocCallback(t, resp, redirectURI), p)
		p = AuthParams("prompt", "none")
		resp, _ = NewBrowser(t).PostForm(s.URL+"/authorize", p)
		wantHeaders("POST /authorize error", resp)
		ocWantAuthzError(t, s, ocCallback(t, resp, redirectURI), p, "login_required")
		resp, _ = NewBrowser(t).PostForm(s.URL+"/authorize", AuthParams())
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?") {
			t.Fatalf("POST /authorize without a session: %d %q, want a 303 to the login page", resp.StatusCode, resp.Header.Get("Location"))
		}
		p = AuthParams()
		resp, _ = b.Get(s.URL + "/authorize?" + p.Encode())
		wantHeaders("SSO GET /authorize", resp)
		ocWantCode(t, s, ocCallback(t, resp, redirectURI), p)

		// No CORS on the authorization endpoint or the login pages.
		login := NewBrowser(t)
		resp, _ = login.Get(s.URL + "/authorize?" + AuthParams().Encode())
		f = ocLoginForm(t, s, login, resp.Header.Get("Location"))
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodOptions} {
			for _, path := range []string{"/authorize?" + AuthParams().Encode(), "/login?req=" + url.QueryEscape(f.Req), "/broker/local/login"} {
				var body *strings.Reader
				if method == http.MethodPost { // a login attempt without its CSRF token
					body = strings.NewReader(url.Values{"req": {f.Req}}.Encode())
				} else {
					body = strings.NewReader("")
				}
				req, _ := http.NewRequest(method, s.URL+path, body)
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Origin", "https://attacker.example")
				if method == http.MethodOptions {
					req.Header.Set("Access-Control-Request-Method", "POST")
					req.Header.Set("Access-Control-Request-Headers", "content-type")
				}
				resp, err := login.Client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				readBody(t, resp)
				for k := range resp.Header {
					if strings.HasPrefix(k, "Access-Control-") {
						t.Errorf("%s %s answers a cross-origin request with %s: %q", method, path, k, resp.Header.Get(k))
					}
				}
			}
		}

		// Logging out: the confirmation POST answers 303 too.
		resp, page := b.Get(s.URL + "/logout?" + url.Values{"client_id": {rpID}, "post_logout_redirect_uri": {logoutURI}, "state": {"bye"}}.Encode())
		m := hiddenInput.FindStringSubmatch(page)
		if resp.StatusCode != http.StatusOK || m == nil || m[1] != "csrf" {
			t.Fatalf("logout without id_token_hint: %d, want a confirmation page", resp.StatusCode)
		}
		resp, _ = b.PostForm(s.URL+"/logout", url.Values{"csrf": {m[2]}, "confirm": {"yes"}, "client_id": {rpID},
			"post_logout_redirect_uri": {logoutURI}, "state": {"bye"}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != logoutURI+"?state=bye" {
			t.Fatalf("logout POST answered %d Location %q, want a 303 to %s", resp.StatusCode, resp.Header.Get("Location"), logoutURI)
		}
		ocWantUserinfoRefused(t, s, ts.Access) // the session's grants end with it
	})

	// The password grant is off unless a client is explicitly allowed it;
	// implicit and hybrid flows are not offered.
	run("grant-types", func(t *testing.T) {
		password := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePass}, "scope": {"openid"}}
		for _, c := range []ocClient{ocRP, ocRP2, ocPublic} {
			ocWantOAuthError(t, ocPost(t, s, "/token", &c, password), http.StatusBadRequest, "unauthorized_client")
		}
		ts := ocWantTokens(t, ocPost(t, s, "/token", &ocPW, password))
		ocVerifyIDToken(t, s, passwordID, ts.ID)
		for _, grant := range []string{"implicit", "token", "urn:ietf:params:oauth:grant-type:saml2-bearer"} {
			a := ocPost(t, s, "/token", &ocRP, url.Values{"grant_type": {grant}})
			ocWantOAuthError(t, a, http.StatusBadRequest, "unsupported_grant_type")
		}
		// Offered, but only to the clients configured for them.
		for _, grant := range []string{"urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:token-exchange"} {
			a := ocPost(t, s, "/token", &ocRP, url.Values{"grant_type": {grant}})
			ocWantOAuthError(t, a, http.StatusBadRequest, "unauthorized_client")
		}

		_, meta := ocDiscovery(t, s)
		if rt, _ := ocStrings(meta["response_types_supported"]); !slices.Equal(rt, []string{"code"}) {
			t.Fatalf("response_types_supported = %v, want [code]", meta["response_types_supported"])
		}
		if gt, _ := ocStrings(meta["grant_types_supported"]); slices.Contains(gt, "implicit") {
			t.Fatalf("grant_types_supported = %v offers implicit", gt)
		}
		if rm, ok := meta["response_modes_supported"]; ok {
			if modes, _ := ocStrings(rm); !slices.Equal(modes, []string{"query"}) {
				t.Fatalf("response_modes_supported = %v, want [query]", rm)
			}
		}
		// With or without a session, no token ever comes out of the authorization endpoint.
		b := NewBrowser(t)
		for _, session := range []bool{false, true} {
			if session {
				ocCodeFlow(t, s, b, ocRP, AuthParams())
			}
			for _, rt := range []string{"token", "id_token", "id_token token", "code id_token", "code token", "code id_token token"} {
				p := AuthParams("response_type", rt)
				resp, _ := b.Get(s.URL + "/authorize?" + p.Encode())
				if strings.Contains(resp.Header.Get("Location"), "#") {
					t.Fatalf("response_type %q: Location %q has a fragment", rt, resp.Header.Get("Location"))
				}
				ocWantAuthzError(t, s, ocCallback(t, resp, redirectURI), p, "unsupported_response_type")
			}
			p := AuthParams("response_mode", "fragment")
			ocWantAuthzError(t, s, ocSilent(t, s, b, p), p, "invalid_request")
		}
		// Nor can a client be configured for them.
		cfg := strings.Replace(defaultConfig, "grant_types: [authorization_code, refresh_token]", "grant_types: [authorization_code, implicit]", 1)
		if out, err := ocCheckConfig(t, cfg); err == nil || !strings.Contains(out, "implicit") {
			t.Fatalf("a client with the implicit grant was accepted: %v\n%s", err, out)
		}
	})
}
