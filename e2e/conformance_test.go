package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestConformance checks what the OpenID Foundation's conformance suite checks
// of an OpenID Provider in its Basic and Config plans: one subtest per module,
// named after it (see ../shared/CONFORMANCE.md). The subtests share one
// server, each with its own browser, and run in parallel.
func TestConformance(t *testing.T) {
	t.Parallel()
	s := Start(t)
	run := func(module string, f func(t *testing.T)) {
		t.Helper()
		t.Run(module, func(t *testing.T) {
			t.Parallel()
			f(t)
		})
	}

	// First, and its first use before t.Parallel, so that the 30 s wait
	// overlaps everything else.
	t.Run("oidcc-codereuse-30seconds", func(t *testing.T) {
		b := NewBrowser(t)
		p := AuthParams()
		code := ocWantCode(t, s, ocAuthorize(t, s, b, p), p)
		ts, tok := ocRedeemAndVerify(t, s, ocRP, code, p)
		used := time.Now()
		ocWantUserinfo(t, s, ts.Access, tok)
		t.Parallel()
		time.Sleep(time.Until(used.Add(30 * time.Second)))
		ocWantOAuthError(t, ocRedeem(t, s, ocRP, code, redirectURI, ""), http.StatusBadRequest, "invalid_grant")
		// The reuse revokes what the first use issued.
		ocWantUserinfoRefused(t, s, ts.Access)
		if ts.Refresh != "" {
			ocWantOAuthError(t, ocRefresh(t, s, ocRP, ts.Refresh), http.StatusBadRequest, "invalid_grant")
		}
	})

	serverFlow := func(t *testing.T, c ocClient) {
		b := NewBrowser(t)
		p := AuthParams()
		code := ocWantCode(t, s, ocAuthorize(t, s, b, p), p)
		ts := ocWantTokens(t, ocRedeem(t, s, c, code, redirectURI, ""))
		tok := ocVerifyIDToken(t, s, c.id, ts.ID)
		if tok.Issuer != s.URL {
			t.Fatalf("ID token iss = %q, want %q", tok.Issuer, s.URL)
		}
		if tok.Nonce != p.Get("nonce") {
			t.Fatalf("ID token nonce = %q, want %q", tok.Nonce, p.Get("nonce"))
		}
		if err := tok.VerifyAccessToken(ts.Access); err != nil {
			t.Fatalf("at_hash: %v", err)
		}
	}
	run("oidcc-server", func(t *testing.T) { serverFlow(t, ocRP) })
	run("oidcc-server-client-secret-post", func(t *testing.T) { serverFlow(t, ocRPPost) })

	run("oidcc-response-type-missing", func(t *testing.T) {
		b := NewBrowser(t)
		p := AuthParams()
		p.Del("response_type")
		resp, body := b.Get(s.URL + "/authorize?" + p.Encode())
		if resp.StatusCode == http.StatusBadRequest {
			ocWantErrorPage(t, resp, body)
			return
		}
		ocWantAuthzError(t, s, ocCallback(t, resp, redirectURI), p, "unsupported_response_type", "invalid_request")
	})

	run("oidcc-idtoken-signature", func(t *testing.T) {
		ts, _ := ocCodeFlow(t, s, NewBrowser(t), ocRP, AuthParams())
		jws, err := jose.ParseSigned(ts.ID, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			t.Fatalf("ID token is not an RS256 JWS (header %v): %v", ocJWTHeader(t, ts.ID), err)
		}
		h := jws.Signatures[0].Header
		if h.Algorithm != string(jose.RS256) || h.KeyID == "" {
			t.Fatalf("ID token header alg %q kid %q, want RS256 and a kid", h.Algorithm, h.KeyID)
		}
		set := ocJWKS(t, s)
		keys := set.Key(h.KeyID)
		if len(keys) != 1 {
			t.Fatalf("the JWKS has %d keys with kid %q, want 1", len(keys), h.KeyID)
		}
		if keys[0].Algorithm != string(jose.RS256) || keys[0].Use != "sig" || !keys[0].IsPublic() {
			t.Fatalf("JWK %q: alg %q use %q public %v", h.KeyID, keys[0].Algorithm, keys[0].Use, keys[0].IsPublic())
		}
		if _, err := jws.Verify(keys[0].Key); err != nil {
			t.Fatalf("ID token signature: %v", err)
		}
	})

	run("oidcc-idtoken-unsigned", func(t *testing.T) {
		_, meta := ocDiscovery(t, s)
		for _, k := range []string{"id_token_signing_alg_values_supported", "userinfo_signing_alg_values_supported"} {
			algs, ok := ocStrings(meta[k])
			if k == "id_token_signing_alg_values_supported" && (!ok || len(algs) == 0) {
				t.Fatalf("%s = %v", k, meta[k])
			}
			if slices.ContainsFunc(algs, func(a string) bool { return strings.EqualFold(a, "none") }) {
				t.Fatalf("%s advertises none: %v", k, algs)
			}
		}
		for _, key := range ocJWKS(t, s).Keys {
			if strings.EqualFold(key.Algorithm, "none") {
				t.Fatalf("JWKS publishes an alg none key %q", key.KeyID)
			}
		}
		b := NewBrowser(t)
		ts, tok := ocCodeFlow(t, s, b, ocRP, AuthParams())
		for _, raw := range []string{ts.ID, ts.Access} {
			if alg, _ := ocJWTHeader(t, raw)["alg"].(string); alg == "" || strings.EqualFold(alg, "none") {
				t.Fatalf("token signed with alg %q", alg)
			}
		}
		// Unsigned copies of real tokens must be worth nothing.
		p := AuthParams("prompt", "none", "id_token_hint", ocUnsignedJWT("JWT", tok.Claims))
		ocWantAuthzError(t, s, ocSilent(t, s, b, p), p, "invalid_request", "login_required")
		ocWantUserinfoRefused(t, s, ocUnsignedJWT("at+jwt", ocJWTPayload(t, ts.Access)))
	})

	for _, m := range []struct{ module, how string }{
		{"oidcc-userinfo-get", "get"},
		{"oidcc-userinfo-post-header", "post-header"},
		{"oidcc-userinfo-post-body", "post-body"},
	} {
		run(m.module, func(t *testing.T) {
			ts, tok := ocCodeFlow(t, s, NewBrowser(t), ocRP, AuthParams("scope", "openid profile email"))
			status, _, claims := ocUserinfo(t, s, m.how, ts.Access)
			if status != http.StatusOK {
				t.Fatalf("userinfo by %s answered %d", m.how, status)
			}
			if claims["sub"] != tok.Subject || claims["name"] != "Alice Example" || claims["email"] != "alice@example.com" {
				t.Fatalf("userinfo by %s = %v (ID token sub %q)", m.how, claims, tok.Subject)
			}
		})
	}

	run("oidcc-ensure-request-without-nonce-succeeds-for-code-flow", func(t *testing.T) {
		p := AuthParams()
		p.Del("nonce")
		_, tok := ocCodeFlow(t, s, NewBrowser(t), ocRP, p)
		if _, ok := tok.Claims["nonce"]; ok {
			t.Fatalf("ID token has a nonce nobody sent: %v", tok.Claims["nonce"])
		}
	})

	alice := map[string]any{"name": "Alice Example", "preferred_username": "alice",
		"email": "alice@example.com", "email_verified": true}
	for _, m := range []struct {
		module, scope string
		want, absent  []string
	}{
		{"oidcc-scope-profile", "openid profile", []string{"name", "preferred_username"}, []string{"email", "email_verified"}},
		{"oidcc-scope-email", "openid email", []string{"email", "email_verified"}, []string{"name", "preferred_username"}},
		{"oidcc-scope-address", "openid address", nil, []string{"name", "preferred_username", "email", "email_verified"}},
		{"oidcc-scope-phone", "openid phone", nil, []string{"name", "preferred_username", "email", "email_verified"}},
		{"oidcc-scope-all", "openid profile email address phone", []string{"name", "preferred_username", "email", "email_verified"}, nil},
	} {
		run(m.module, func(t *testing.T) {
			ts, tok := ocCodeFlow(t, s, NewBrowser(t), ocRP, AuthParams("scope", m.scope))
			claims := ocWantUserinfo(t, s, ts.Access, tok)
			for _, k := range m.want {
				if claims[k] != alice[k] {
					t.Errorf("scope %q: userinfo %s = %v, want %v", m.scope, k, claims[k], alice[k])
				}
			}
			// alice has no address or phone: nothing may be made up for them.
			for _, k := range append(m.absent, "address", "phone_number", "phone_number_verified") {
				if v, ok := claims[k]; ok {
					t.Errorf("scope %q: userinfo releases %s = %v", m.scope, k, v)
				}
			}
		})
	}

	run("oidcc-alternate-happy-flow", func(t *testing.T) {
		b := NewBrowser(t)
		p := AuthParams("scope", "email openid profile")
		// openid not first in scope, and the parameters in an unusual order.
		q := "nonce=" + url.QueryEscape(p.Get("nonce")) + "&scope=" + url.QueryEscape(p.Get("scope")) +
			"&state=" + url.QueryEscape(p.Get("state")) + "&redirect_uri=" + url.QueryEscape(redirectURI) +
			"&response_type=code&client_id=" + rpID
		code := ocWantCode(t, s, ocAuthorizeRaw(t, s, b, q, redirectURI, "alice", alicePass), p)
		ts, tok := ocRedeemAndVerify(t, s, ocRP, code, p)
		claims := ocWantUserinfo(t, s, ts.Access, tok)
		if claims["name"] != "Alice Example" || claims["email"] != "alice@example.com" {
			t.Fatalf("userinfo = %v, want profile and email claims", claims)
		}
	})

	run("oidcc-display-page", func(t *testing.T) {
		ocCodeFlow(t, s, NewBrowser(t), ocRP, AuthParams("display", "page"))
	})
	run("oidcc-display-popup", func(t *testing.T) {
		ocCodeFlow(t, s, NewBrowser(t), ocRP, AuthParams("display", "popup"))
	})

	run("oidcc-prompt-login", func(t *testing.T) {
		b := NewBrowser(t)
		_, first := ocCodeFlow(t, s, b, ocRP, AuthParams())
		time.Sleep(1100 * time.Millisecond) // auth_time counts whole seconds
		p := AuthParams("prompt", "login")
		_, second := ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, ocForcedLogin(t, s, b, p), p), p)
		if second.Subject != first.Subject {
			t.Fatalf("sub changed: %q, then %q", first.Subject, second.Subject)
		}
		if second.authTime(t) <= first.authTime(t) {
			t.Fatalf("auth_time after prompt=login = %d, not later than the first login's %d", second.authTime(t), first.authTime(t))
		}
	})

	run("oidcc-prompt-none-not-logged-in", func(t *testing.T) {
		p := AuthParams("prompt", "none")
		ocWantAuthzError(t, s, ocSilent(t, s, NewBrowser(t), p), p, "login_required", "interaction_required")
	})

	run("oidcc-prompt-none-logged-in", func(t *testing.T) {
		b := NewBrowser(t)
		_, first := ocCodeFlow(t, s, b, ocRP, AuthParams())
		time.Sleep(1100 * time.Millisecond) // so that an auth_time of "now" would show
		p := AuthParams("prompt", "none")
		_, second := ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, ocSilent(t, s, b, p), p), p)
		if second.Subject != first.Subject || second.authTime(t) != first.authTime(t) {
			t.Fatalf("silent login: sub %q auth_time %d, first login: sub %q auth_time %d",
				second.Subject, second.authTime(t), first.Subject, first.authTime(t))
		}
	})

	run("oidcc-max-age-1", func(t *testing.T) {
		b := NewBrowser(t)
		_, first := ocCodeFlow(t, s, b, ocRP, AuthParams())
		time.Sleep(1500 * time.Millisecond)
		p := AuthParams("max_age", "1")
		_, second := ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, ocForcedLogin(t, s, b, p), p), p)
		if second.Subject != first.Subject {
			t.Fatalf("sub changed: %q, then %q", first.Subject, second.Subject)
		}
		if second.authTime(t) <= first.authTime(t) {
			t.Fatalf("auth_time after max_age=1 = %d, not later than the first login's %d", second.authTime(t), first.authTime(t))
		}
	})

	run("oidcc-max-age-10000", func(t *testing.T) {
		b := NewBrowser(t)
		_, first := ocCodeFlow(t, s, b, ocRP, AuthParams())
		time.Sleep(1100 * time.Millisecond) // so that an auth_time of "now" would show
		p := AuthParams("max_age", "10000")
		_, second := ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, ocSilent(t, s, b, p), p), p)
		if second.Subject != first.Subject || second.authTime(t) != first.authTime(t) {
			t.Fatalf("max_age=10000: sub %q auth_time %d, first login: sub %q auth_time %d",
				second.Subject, second.authTime(t), first.Subject, first.authTime(t))
		}
	})

	run("oidcc-ensure-request-with-unknown-parameter-succeeds", func(t *testing.T) {
		ocCodeFlow(t, s, NewBrowser(t), ocRP, AuthParams("extra", "foobar"))
	})

	run("oidcc-id-token-hint", func(t *testing.T) {
		b := NewBrowser(t)
		_, first := ocCodeFlow(t, s, b, ocRP, AuthParams())
		p := AuthParams("prompt", "none", "id_token_hint", first.Raw)
		_, second := ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, ocSilent(t, s, b, p), p), p)
		if second.Subject != first.Subject {
			t.Fatalf("sub with id_token_hint = %q, want %q", second.Subject, first.Subject)
		}
	})

	run("oidcc-login-hint", func(t *testing.T) {
		b := NewBrowser(t)
		p := AuthParams("login_hint", "bob", "scope", "openid profile")
		resp, _ := b.Get(s.URL + "/authorize?" + p.Encode())
		f := ocLoginForm(t, s, b, resp.Header.Get("Location"))
		input := regexp.MustCompile(`<input[^>]*\bname="username"[^>]*>`).FindString(f.Page)
		if !strings.Contains(input, `value="bob"`) {
			t.Fatalf("username field %q is not pre-filled with the login_hint", input)
		}
		resp, _ = b.Submit(f, "bob", bobPass)
		ts, tok := ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, ocCallback(t, resp, redirectURI), p), p)
		if claims := ocWantUserinfo(t, s, ts.Access, tok); claims["preferred_username"] != "bob" {
			t.Fatalf("userinfo = %v, want bob", claims)
		}
	})
	run("oidcc-ui-locales", func(t *testing.T) {
		ocCodeFlow(t, s, NewBrowser(t), ocRP, AuthParams("ui_locales", "se en-US"))
	})
	run("oidcc-claims-locales", func(t *testing.T) {
		ocCodeFlow(t, s, NewBrowser(t), ocRP, AuthParams("claims_locales", "se en-US"))
	})

	run("oidcc-ensure-request-with-acr-values-succeeds", func(t *testing.T) {
		_, tok := ocCodeFlow(t, s, NewBrowser(t), ocRP, AuthParams("acr_values", "1 2"))
		if acr := tok.str("acr"); acr != "1" { // "1": a fresh password login
			t.Fatalf("ID token acr = %v, want \"1\"", tok.Claims["acr"])
		}
	})

	run("oidcc-codereuse", func(t *testing.T) {
		p := AuthParams()
		code := ocWantCode(t, s, ocAuthorize(t, s, NewBrowser(t), p), p)
		ocRedeemAndVerify(t, s, ocRP, code, p)
		ocWantOAuthError(t, ocRedeem(t, s, ocRP, code, redirectURI, ""), http.StatusBadRequest, "invalid_grant")
	})

	run("oidcc-ensure-registered-redirect-uri", func(t *testing.T) {
		b := NewBrowser(t)
		ocCodeFlow(t, s, b, ocRP, AuthParams()) // with a session a code would be issued at once
		for _, uri := range []string{"https://attacker.example/callback", redirectURI + "/unregistered"} {
			resp, body := b.Get(s.URL + "/authorize?" + AuthParams("redirect_uri", uri).Encode())
			ocWantErrorPage(t, resp, body)
		}
	})

	run("oidcc-ensure-post-request-succeeds", func(t *testing.T) {
		b := NewBrowser(t)
		p := AuthParams()
		resp, _ := b.PostForm(s.URL+"/authorize", p)
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("POST /authorize answered %d", resp.StatusCode)
		}
		resp, _ = b.Submit(ocLoginForm(t, s, b, resp.Header.Get("Location")), "alice", alicePass)
		ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, ocCallback(t, resp, redirectURI), p), p)
	})

	// Request objects: processed correctly, or refused with the OIDC Core
	// §3.1.2.6 error — never silently ignored. The object carries its own
	// nonce, so a processed one shows in the ID token.
	requestObject := func(p url.Values) string {
		claims := map[string]any{"iss": rpID, "aud": s.URL}
		for k := range p {
			claims[k] = p.Get(k)
		}
		claims["nonce"] = "object-" + randomSuffix()
		return ocUnsignedJWT("oauth-authz-req+jwt", claims)
	}
	// objectRequest is what the RP asked for through the request object.
	objectRequest := func(t *testing.T, obj string) url.Values {
		n, _ := ocJWTPayload(t, obj)["nonce"].(string)
		return url.Values{"redirect_uri": {redirectURI}, "nonce": {n}}
	}
	run("oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported", func(t *testing.T) {
		_, meta := ocDiscovery(t, s)
		p := AuthParams()
		obj := requestObject(p)
		p.Del("nonce")
		p.Set("request", obj)
		got := ocAuthorize(t, s, NewBrowser(t), p)
		if meta["request_parameter_supported"] != true {
			ocWantAuthzError(t, s, got, p, "request_not_supported")
			return
		}
		ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, got, p), objectRequest(t, obj))
	})
	run("oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported", func(t *testing.T) {
		_, meta := ocDiscovery(t, s)
		p := AuthParams()
		obj := requestObject(p)
		var fetched atomic.Int32
		ro := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fetched.Add(1)
			w.Header().Set("Content-Type", "application/oauth-authz-req+jwt")
			_, _ = w.Write([]byte(obj))
		}))
		defer ro.Close()
		p.Del("nonce")
		p.Set("request_uri", ro.URL+"/request.jwt")
		got := ocAuthorize(t, s, NewBrowser(t), p)
		if meta["request_uri_parameter_supported"] == false { // OIDC Discovery: true when absent
			ocWantAuthzError(t, s, got, p, "request_uri_not_supported")
			if fetched.Load() != 0 {
				t.Fatal("fedhub fetched a request_uri it says it does not support")
			}
			return
		}
		ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, got, p), objectRequest(t, obj))
	})
	run("oidcc-ensure-request-object-with-redirect-uri", func(t *testing.T) {
		_, meta := ocDiscovery(t, s)
		b := NewBrowser(t)
		ocCodeFlow(t, s, b, ocRP, AuthParams()) // with a session a code would be issued at once
		// The object's redirect_uri is registered, the query's is not: the
		// object's wins, or the request is refused — without a redirect to
		// the query's, since fedhub cannot have checked it.
		p := AuthParams()
		obj := requestObject(p)
		p.Set("redirect_uri", "https://attacker.example/callback")
		p.Set("request", obj)
		resp, body := b.Get(s.URL + "/authorize?" + p.Encode())
		if meta["request_parameter_supported"] != true {
			ocWantErrorPage(t, resp, body)
			// With both redirect URIs registered, the answer is the error.
			p.Set("redirect_uri", redirectURI)
			ocWantAuthzError(t, s, ocSilent(t, s, b, p), p, "request_not_supported")
			return
		}
		got := ocCallback(t, resp, redirectURI)
		ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, got, p), objectRequest(t, obj))
	})

	run("oidcc-claims-essential", func(t *testing.T) {
		p := AuthParams("claims", `{"userinfo":{"name":{"essential":true}}}`)
		ts, tok := ocCodeFlow(t, s, NewBrowser(t), ocRP, p)
		if claims := ocWantUserinfo(t, s, ts.Access, tok); claims["name"] != "Alice Example" {
			t.Fatalf("userinfo = %v, want the essential name claim", claims)
		}
	})

	run("oidcc-refresh-token", func(t *testing.T) {
		b := NewBrowser(t)
		p := AuthParams("scope", "openid offline_access", "prompt", "consent")
		code := ocWantCode(t, s, ocAuthorize(t, s, b, p), p)
		first, firstID := ocRedeemAndVerify(t, s, ocRP, code, p)
		if first.Refresh == "" {
			t.Fatal("no refresh token")
		}
		for name, tok := range map[string]string{"code": code, "access token": first.Access, "refresh token": first.Refresh} {
			if !ocVSChar(tok) {
				t.Errorf("%s %q has characters outside RFC 6749 A.17", name, tok)
			}
			if bits := ocEntropyBits(tok); bits < 128 {
				t.Errorf("%s %q carries about %.0f bits of entropy, want ≥ 128", name, tok, bits)
			}
		}
		next := ocWantTokens(t, ocRefresh(t, s, ocRP, first.Refresh))
		if next.Access == first.Access {
			t.Fatal("refresh returned the same access token")
		}
		if !ocVSChar(next.Refresh) || ocEntropyBits(next.Refresh) < 128 {
			t.Fatalf("rotated refresh token %q", next.Refresh)
		}
		if next.ID != "" { // OIDC Core §12.2
			nextID := ocVerifyIDToken(t, s, rpID, next.ID)
			if nextID.Issuer != firstID.Issuer || nextID.Subject != firstID.Subject ||
				!slices.Equal(nextID.Audience, firstID.Audience) || nextID.authTime(t) != firstID.authTime(t) ||
				nextID.str("azp") != firstID.str("azp") {
				t.Fatalf("refreshed ID token %v differs from the first %v", nextID.Claims, firstID.Claims)
			}
			if n, ok := nextID.Claims["nonce"]; ok && n != firstID.Nonce {
				t.Fatalf("refreshed ID token nonce %v", n)
			}
		}
		ocWantUserinfo(t, s, next.Access, firstID)

		// Client B's refresh token presented by client A.
		p2 := AuthParams("client_id", rp2ID)
		code2 := ocWantCode(t, s, ocAuthorize(t, s, b, p2), p2)
		other, _ := ocRedeemAndVerify(t, s, ocRP2, code2, p2)
		if other.Refresh == "" {
			t.Fatal("rp2 got no refresh token")
		}
		ocWantOAuthError(t, ocRefresh(t, s, ocRP, other.Refresh), http.StatusBadRequest, "invalid_grant")
	})

	run("oidcc-ensure-request-with-valid-pkce-succeeds", func(t *testing.T) {
		verifier, challenge := ocPKCE()
		p := AuthParams("code_challenge", challenge, "code_challenge_method", "S256")
		code := ocWantCode(t, s, ocAuthorize(t, s, NewBrowser(t), p), p)
		ts := ocWantTokens(t, ocRedeem(t, s, ocRP, code, redirectURI, verifier))
		if tok := ocVerifyIDToken(t, s, rpID, ts.ID); tok.Nonce != p.Get("nonce") {
			t.Fatalf("ID token nonce = %q", tok.Nonce)
		}
	})

	// fedhub's own rows, for what it offers beyond the Basic plan: the
	// refusals each newer parameter and grant keeps, on the plain clients.
	run("fedhub-unknown-scope-dropped", func(t *testing.T) {
		p := AuthParams("scope", "openid no-such-scope")
		code := ocWantCode(t, s, ocAuthorize(t, s, NewBrowser(t), p), p)
		ts := ocWantTokens(t, ocRedeem(t, s, ocRP, code, redirectURI, ""))
		if ocVerifyIDToken(t, s, rpID, ts.ID); slices.Contains(strings.Fields(ts.Scope), "no-such-scope") {
			t.Fatalf("granted scope %q keeps a scope nobody defined", ts.Scope)
		}
	})
	run("fedhub-resource-not-allowed", func(t *testing.T) {
		p := AuthParams("resource", "https://api.example.com/")
		ocWantAuthzError(t, s, ocAuthorize(t, s, NewBrowser(t), p), p, "invalid_target")
		a := ocPost(t, s, "/token", &ocRP, url.Values{"grant_type": {"client_credentials"}, "resource": {"https://api.example.com/"}})
		ocWantOAuthError(t, a, http.StatusBadRequest, "invalid_target")
	})
	run("fedhub-client-assertion-for-a-secret-client", func(t *testing.T) {
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: key}, nil)
		if err != nil {
			t.Fatal(err)
		}
		assertion, err := jwt.Signed(signer).Claims(map[string]any{"iss": rpID, "sub": rpID, "aud": s.URL,
			"jti": randomSuffix(), "exp": time.Now().Add(time.Minute).Unix()}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		a := ocPost(t, s, "/token", nil, url.Values{"grant_type": {"client_credentials"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}})
		ocWantOAuthError(t, a, http.StatusUnauthorized, "invalid_client")
	})
	run("fedhub-grants-not-configured", func(t *testing.T) {
		for _, form := range []url.Values{
			{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {"x"},
				"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "audience": {"api"}},
			{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {"x"}},
		} {
			ocWantOAuthError(t, ocPost(t, s, "/token", &ocRP, form), http.StatusBadRequest, "unauthorized_client")
		}
		ocWantOAuthError(t, ocPost(t, s, "/device_authorization", &ocRP, url.Values{"scope": {"openid"}}),
			http.StatusBadRequest, "unauthorized_client")
	})

	run("oidcc-discovery-endpoint-verification", func(t *testing.T) {
		resp, meta := ocDiscovery(t, s)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("discovery answered %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if meta["issuer"] != s.URL {
			t.Fatalf("issuer = %v, want %q", meta["issuer"], s.URL)
		}
		for _, k := range []string{"authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"} {
			v, _ := meta[k].(string)
			u, err := url.Parse(v)
			if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" {
				t.Errorf("%s = %v, want an absolute URL", k, meta[k])
			}
		}
		if meta["jwks_uri"] != s.URL+"/jwks" {
			t.Fatalf("jwks_uri = %v", meta["jwks_uri"])
		}
		set := ocJWKS(t, s)
		if len(set.Keys) == 0 {
			t.Fatal("the JWKS is empty")
		}
		kids := map[string]bool{}
		for _, k := range set.Keys {
			if !k.Valid() || !k.IsPublic() || k.KeyID == "" || kids[k.KeyID] || (k.Use != "" && k.Use != "sig") {
				t.Errorf("JWK %q: valid %v public %v use %q (or its kid repeats)", k.KeyID, k.Valid(), k.IsPublic(), k.Use)
			}
			kids[k.KeyID] = true
		}
		want := func(k string, must []string, allowed ...string) []string {
			t.Helper()
			vals, ok := ocStrings(meta[k])
			if !ok || len(vals) == 0 {
				t.Errorf("%s = %v, want a non-empty array of strings", k, meta[k])
			}
			for _, m := range must {
				if !slices.Contains(vals, m) {
					t.Errorf("%s = %v lacks %q", k, vals, m)
				}
			}
			for _, v := range vals {
				if len(allowed) > 0 && !slices.Contains(allowed, v) {
					t.Errorf("%s has unexpected value %q", k, v)
				}
			}
			return vals
		}
		want("scopes_supported", []string{"openid"})
		want("response_types_supported", []string{"code"}, "code", "id_token", "id_token token", "code id_token", "code token", "code id_token token")
		want("subject_types_supported", nil, "public", "pairwise")
		want("id_token_signing_alg_values_supported", []string{"RS256"}, "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
			"ES256", "ES384", "ES512", "EdDSA")
		want("grant_types_supported", []string{"authorization_code"}, "authorization_code", "implicit", "refresh_token",
			"client_credentials", "password", "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:jwt-bearer",
			"urn:ietf:params:oauth:grant-type:token-exchange") // the grant types IANA registers
		want("claims_supported", []string{"sub", "iss", "auth_time", "name", "email"})
		want("ui_locales_supported", []string{"en", "de"}) // the shipped catalogs
		if _, ok := ocStrings(meta["code_challenge_methods_supported"]); !ok {
			t.Errorf("code_challenge_methods_supported = %v, want an array", meta["code_challenge_methods_supported"])
		}
		if meta["authorization_response_iss_parameter_supported"] != true {
			t.Errorf("authorization_response_iss_parameter_supported = %v, want true", meta["authorization_response_iss_parameter_supported"])
		}
	})
}
