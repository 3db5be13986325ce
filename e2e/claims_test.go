package e2e

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// The configuration of TestClientScopes: cs-app always gets hr (a user
// attribute nested under hr.login, a hardcoded tenant) and may ask for
// staffing (groups as teams, the roles that start with "adm" as roles), each
// mapper in some tokens only; it may get tokens for the orders API, and
// cs-billing for the billing API.
const (
	csSecret        = "cs-app-secret-0123456789"
	csBillingSecret = "cs-billing-secret-0123456789"
	csOrders        = "https://orders.example.com"
	csBilling       = "https://billing.example.com"
	csScopes        = `client_scopes:
  - name: hr
    description: your employee login
    mappers:
      - type: user_attribute
        attribute: username
        claim: hr.login
        userinfo: false
        introspection: false
      - type: hardcoded
        claim: tenant
        value: acme
        id_token: false
        userinfo: false
  - name: staffing
    mappers:
      - type: group_membership
        claim: teams
        id_token: false
        access_token: false
      - type: role
        claim: roles
        prefix: adm
        access_token: false
        userinfo: false
        introspection: false
apis:
  - id: ` + csOrders + `
    scopes: [orders:read]
  - id: ` + csBilling + `
    scopes: [billing:read]
`
	csClients = `  - id: cs-app
    secret: ${CS_SECRET}
    redirect_uris: [http://127.0.0.1:5555/callback]
    grant_types: [authorization_code, refresh_token, client_credentials]
    default_scopes: [roles, groups, hr]
    optional_scopes: [profile, email, staffing]
    apis: [` + csOrders + `]
  - id: cs-billing
    secret: ${CS_BILLING_SECRET}
    grant_types: [client_credentials]
    apis: [` + csBilling + `]
`
)

// csWhere lists, for a token, the claims that must be there (with their
// values) and those that must not.
type csWhere struct {
	in  map[string]any
	out []string
}

// csCheck checks the claims of the token name against w.
func csCheck(t *testing.T, name string, claims map[string]any, w csWhere) {
	t.Helper()
	for k, want := range w.in {
		if got := claims[k]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %s = %#v, want %#v", name, k, got, want)
		}
	}
	for _, k := range w.out {
		if v, ok := claims[k]; ok {
			t.Errorf("%s: has %s = %#v, want none", name, k, v)
		}
	}
}

// csHR is the hr claim of alice.
var csHR = map[string]any{"login": "alice"}

// csScopeCases are alice's sign-ins to cs-app with and without its optional
// scopes: the claims of each token and of userinfo and introspection.
var csScopeCases = []struct {
	name, scope                             string
	idToken, access, userinfo, introspected csWhere
}{
	{"default scope only", "openid nonsense",
		csWhere{map[string]any{"hr": csHR}, []string{"tenant", "teams", "roles", "email"}},
		csWhere{map[string]any{"hr": csHR, "tenant": "acme"}, []string{"teams", "roles", "email"}},
		csWhere{nil, []string{"hr", "tenant", "teams", "roles"}},
		csWhere{map[string]any{"tenant": "acme"}, []string{"hr", "teams", "roles"}}},
	{"with the optional scope", "openid email staffing",
		csWhere{map[string]any{"hr": csHR, "roles": []any{"admin"}, "email": "alice@example.com"}, []string{"tenant", "teams"}},
		csWhere{map[string]any{"hr": csHR, "tenant": "acme"}, []string{"teams", "roles"}},
		csWhere{map[string]any{"teams": []any{"staff"}, "email": "alice@example.com"}, []string{"hr", "tenant", "roles"}},
		csWhere{map[string]any{"tenant": "acme", "teams": []any{"staff"}}, []string{"hr", "roles"}}},
}

// csWantGranted checks the scope a token response grants: openid, without
// the unknown scope asked for.
func csWantGranted(t *testing.T, scope any) {
	t.Helper()
	granted, _ := scope.(string)
	if strings.Contains(granted, "nonsense") || !strings.Contains(granted, "openid") {
		t.Errorf("granted scope %q: want openid, without the unknown scope", granted)
	}
}

// csStart starts fedhub with the client scopes, APIs and clients of TestClientScopes.
func csStart(t *testing.T) *Server {
	t.Helper()
	cfg := strings.Replace(defaultConfig, "clients:\n", csScopes+"clients:\n"+csClients, 1)
	return Start(t, WithConfig(cfg), WithEnv("CS_SECRET="+csSecret, "CS_BILLING_SECRET="+csBillingSecret))
}

// TestClientScopes runs client scopes, their mappers and APIs as audiences
// against independent parties: go-oidc and x/oauth2 as the relying party,
// and go-oidc as the resource servers of two APIs, each accepting only the
// access tokens whose aud names it.
func TestClientScopes(t *testing.T) {
	t.Parallel()
	s := csStart(t)
	rp := newGoRP(t, s, "cs-app", csSecret)
	b := NewBrowser(t)
	login := func(t *testing.T, scopes string, opts ...oauth2.AuthCodeOption) (*oauth2.Token, map[string]any) {
		t.Helper()
		rp.conf.Scopes = strings.Fields(scopes)
		a := rp.begin(opts...)
		tok, _, idClaims := rp.finish(t, a, b.Authorize(s, a.params, "alice", alicePass))
		return tok, idClaims
	}
	userinfo := func(t *testing.T, tok *oauth2.Token) map[string]any {
		t.Helper()
		ui, err := rp.provider.UserInfo(t.Context(), oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatalf("userinfo: %v", err)
		}
		var out map[string]any
		if err := ui.Claims(&out); err != nil {
			t.Fatal(err)
		}
		return out
	}

	t.Run("default and optional scopes in their tokens", func(t *testing.T) {
		for _, c := range csScopeCases {
			t.Run(c.name, func(t *testing.T) {
				tok, idClaims := login(t, c.scope)
				csWantGranted(t, tok.Extra("scope"))
				// The built-in default scopes keep today's claims.
				for name, claims := range map[string]map[string]any{"ID token": idClaims, "access token": ocJWTPayload(t, tok.AccessToken)} {
					if !reflect.DeepEqual(claims["groups"], []any{"staff"}) || !reflect.DeepEqual(claims["realm_access"], map[string]any{"roles": []any{"admin"}}) {
						t.Errorf("%s: groups %v, realm_access %v", name, claims["groups"], claims["realm_access"])
					}
				}
				csCheck(t, "ID token", idClaims, c.idToken)
				csCheck(t, "access token", ocJWTPayload(t, tok.AccessToken), c.access)
				csCheck(t, "userinfo", userinfo(t, tok), c.userinfo)
				in := rp.introspect(t, tok.AccessToken)
				if !in.active() {
					t.Fatalf("introspection: %v", in)
				}
				csCheck(t, "introspection", in, c.introspected)
			})
		}
	})

	orders, billing := startResourceServer(t, s, csOrders), startResourceServer(t, s, csBilling)
	t.Run("resource sets the audience", func(t *testing.T) {
		tok, idClaims := login(t, "openid", oauth2.SetAuthURLParam("resource", csOrders))
		if aud := ocJWTPayload(t, tok.AccessToken)["aud"]; aud != csOrders {
			t.Errorf("access token aud = %v, want %s", aud, csOrders)
		}
		if !rpStrings(idClaims["aud"], "cs-app") {
			t.Errorf("ID token aud = %v, want the client", idClaims["aud"])
		}
		wantAPI(t, orders, tok.AccessToken, http.StatusOK)
		wantAPI(t, billing, tok.AccessToken, http.StatusUnauthorized)

		// A refresh may narrow the APIs, not widen them; refused, it leaves the refresh token good.
		status, body := rpClientPost(t, s.URL+"/token", "cs-app", csSecret,
			url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "resource": {csBilling}})
		if status != http.StatusBadRequest || body["error"] != "invalid_target" {
			t.Errorf("refresh for another API answered %d %v, want invalid_target", status, body)
		}
		refreshed, err := rp.conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		wantAPI(t, orders, refreshed.AccessToken, http.StatusOK)
	})
	t.Run("an API the client may not get", func(t *testing.T) {
		rp.conf.Scopes = []string{"openid"}
		a := rp.begin(oauth2.SetAuthURLParam("resource", csBilling))
		got := b.Authorize(s, a.params, "alice", alicePass)
		if got.Get("error") != "invalid_target" || got.Get("state") != a.state {
			t.Errorf("authorization response %v, want invalid_target", got)
		}
	})
	t.Run("client credentials", func(t *testing.T) {
		for _, c := range []struct {
			name, client, secret string
			form                 url.Values
			status               int
			aud                  any
			scope                string
		}{
			{"no resource: the client", "cs-app", csSecret, url.Values{}, http.StatusOK, "cs-app", ""},
			{"resource", "cs-app", csSecret, url.Values{"resource": {csOrders}}, http.StatusOK, csOrders, ""},
			{"an API's scope", "cs-app", csSecret, url.Values{"scope": {"orders:read billing:read"}}, http.StatusOK, csOrders, "orders:read"},
			{"another API", "cs-app", csSecret, url.Values{"resource": {csOrders, csBilling}}, http.StatusBadRequest, nil, ""},
			{"unknown resource", "cs-app", csSecret, url.Values{"resource": {"https://nowhere.example.com"}}, http.StatusBadRequest, nil, ""},
			{"the other client's API", "cs-billing", csBillingSecret, url.Values{"resource": {csBilling}}, http.StatusOK, csBilling, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				c.form.Set("grant_type", "client_credentials")
				status, body := rpClientPost(t, s.URL+"/token", c.client, c.secret, c.form)
				if status != c.status {
					t.Fatalf("token endpoint answered %d %v, want %d", status, body, c.status)
				}
				if status != http.StatusOK {
					if body["error"] != "invalid_target" {
						t.Errorf("error %v, want invalid_target", body["error"])
					}
					return
				}
				if scope, _ := body["scope"].(string); scope != c.scope {
					t.Errorf("scope %q, want %q", scope, c.scope)
				}
				access := body["access_token"].(string)
				claims := ocJWTPayload(t, access)
				if claims["aud"] != c.aud || (c.client == "cs-app" && claims["tenant"] != "acme") {
					t.Errorf("aud %v tenant %v, want aud %v and the hardcoded tenant", claims["aud"], claims["tenant"], c.aud)
				}
				wantAPI(t, orders, access, map[bool]int{true: http.StatusOK, false: http.StatusUnauthorized}[c.aud == csOrders])
				wantAPI(t, billing, access, map[bool]int{true: http.StatusOK, false: http.StatusUnauthorized}[c.aud == csBilling])
			})
		}
	})
	t.Run("discovery", func(t *testing.T) {
		_, d := ocDiscovery(t, s)
		scopes, _ := ocStrings(d["scopes_supported"])
		claims, _ := ocStrings(d["claims_supported"])
		for _, want := range []string{"openid", "profile", "email", "roles", "groups", "hr", "staffing", "orders:read", "billing:read"} {
			if !slices.Contains(scopes, want) {
				t.Errorf("scopes_supported %v lacks %s", scopes, want)
			}
		}
		for _, want := range []string{"realm_access", "groups", "hr", "tenant", "teams", "roles"} {
			if !slices.Contains(claims, want) {
				t.Errorf("claims_supported %v lacks %s", claims, want)
			}
		}
	})
}

// startResourceServer runs an API that accepts an access token the way a
// go-oidc based API does: the signature checked against fedhub's JWKS, the
// issuer and expiry, and its own id among the audiences.
func startResourceServer(t *testing.T, s *Server, apiID string) *httptest.Server {
	t.Helper()
	keys := oidc.NewRemoteKeySet(t.Context(), s.URL+"/jwks")
	verifier := oidc.NewVerifier(s.URL, keys, &oidc.Config{ClientID: apiID})
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if _, err := verifier.Verify(r.Context(), raw); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(api.Close)
	return api
}

// wantAPI calls an API with an access token and checks its answer.
func wantAPI(t *testing.T, api *httptest.Server, token string, want int) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, api.URL, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := api.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != want {
		t.Errorf("the API answered %d %s, want %d", resp.StatusCode, body, want)
	}
}
