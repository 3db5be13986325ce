package e2e

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/zitadel/oidc/v3/pkg/client/tokenexchange"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// The clients of TestTokenExchange: web signs people in and calls the orders
// API, which calls billing on the user's behalf.
const (
	teWebSecret    = "te-web-secret-0123456789"
	teOrdersSecret = "te-orders-secret-0123456789"
	teClients      = `  - id: te-web
    secret: ${TE_WEB_SECRET}
    redirect_uris: [http://127.0.0.1:5555/callback]
    grant_types: [authorization_code, refresh_token, urn:ietf:params:oauth:grant-type:token-exchange]
    exchange_audiences: [te-orders, "https://reports.example.com"]
  - id: te-orders
    secret: ${TE_ORDERS_SECRET}
    grant_types: [urn:ietf:params:oauth:grant-type:token-exchange]
    exchange_audiences: [te-billing]
`
)

// teSignIn signs alice in to te-web: her tokens.
func teSignIn(t *testing.T, s *Server) ocTokens {
	t.Helper()
	verifier, challenge := ocPKCE()
	params := AuthParams("client_id", "te-web", "scope", "openid profile offline_access",
		"code_challenge", challenge, "code_challenge_method", "S256")
	code := ocWantCode(t, s, ocAuthorizeAs(t, s, NewBrowser(t), params, "alice", alicePass), params)
	return ocWantTokens(t, ocRedeem(t, s, ocClient{id: "te-web", secret: teWebSecret}, code, redirectURI, verifier))
}

// TestTokenExchange: a service exchanges a user's access token for one meant
// for another API (RFC 8693), through zitadel's token-exchange client: the
// new token names the user, the API as audience and the service as actor,
// nesting earlier actors, and an API named by resource; another audience or
// resource, a wider scope, a token not issued to the service, a revoked one
// and an expired one are refused.
func TestTokenExchange(t *testing.T) {
	t.Parallel()
	cfg := strings.Replace(defaultConfig, "clients:\n", "clients:\n"+teClients, 1)
	cfg = strings.Replace(cfg, "tokens:\n", "tokens:\n  access_ttl: 4s\n", 1)
	s := Start(t, WithConfig(cfg), WithEnv("TE_WEB_SECRET="+teWebSecret, "TE_ORDERS_SECRET="+teOrdersSecret))
	web := ocClient{id: "te-web", secret: teWebSecret}
	exchanger := func(t *testing.T, id, secret string) tokenexchange.TokenExchanger {
		te, err := tokenexchange.NewTokenExchangerClientCredentials(t.Context(), s.URL, id, secret)
		if err != nil {
			t.Fatal(err)
		}
		return te
	}
	webTE, ordersTE := exchanger(t, "te-web", teWebSecret), exchanger(t, "te-orders", teOrdersSecret)
	exchange := func(t *testing.T, te tokenexchange.TokenExchanger, subject, audience, scope string) (*oidc.TokenExchangeResponse, error) {
		t.Helper()
		return tokenexchange.ExchangeToken(t.Context(), te, subject, oidc.AccessTokenType, "", "", nil,
			[]string{audience}, strings.Fields(scope), oidc.AccessTokenType)
	}
	wantRefused := func(t *testing.T, err error, code string) {
		t.Helper()
		var oe *oidc.Error
		if !errors.As(err, &oe) || string(oe.ErrorType) != code {
			t.Fatalf("got %v, want the error %s", err, code)
		}
	}
	aliceID := ocJWTPayload(t, teSignIn(t, s).Access)["sub"]

	t.Run("delegation chain", func(t *testing.T) {
		user := teSignIn(t, s)
		toOrders, err := exchange(t, webTE, user.Access, "te-orders", "")
		if err != nil {
			t.Fatalf("web exchanging for orders: %v", err)
		}
		if toOrders.IssuedTokenType != oidc.AccessTokenType || toOrders.TokenType != "Bearer" {
			t.Fatalf("issued_token_type %q, token_type %q", toOrders.IssuedTokenType, toOrders.TokenType)
		}
		toBilling, err := exchange(t, ordersTE, toOrders.AccessToken, "te-billing", "openid")
		if err != nil {
			t.Fatalf("orders exchanging for billing: %v", err)
		}
		if _, err := gooidc.NewRemoteKeySet(t.Context(), s.URL+"/jwks").VerifySignature(t.Context(), toBilling.AccessToken); err != nil {
			t.Fatalf("the exchanged token's signature does not verify against the JWKS: %v", err)
		}
		c := ocJWTPayload(t, toBilling.AccessToken)
		act, _ := c["act"].(map[string]any)
		prior, _ := act["act"].(map[string]any)
		if c["sub"] != aliceID || !rpStrings(c["aud"], "te-billing") || c["scope"] != "openid" || c["client_id"] != "te-orders" ||
			act["sub"] != "te-orders" || prior["sub"] != "te-web" {
			t.Fatalf("exchanged token claims %v: want alice, aud te-billing, scope openid, act te-orders after te-web", c)
		}
		if exp, orig := c["exp"].(float64), ocJWTPayload(t, user.Access)["exp"].(float64); exp > orig {
			t.Fatalf("the exchanged token lives longer (exp %v) than the user's (%v)", exp, orig)
		}
		if status, _, ui := ocUserinfo(t, s, "get", toBilling.AccessToken); status != http.StatusOK || ui["sub"] != aliceID {
			t.Fatalf("userinfo with the exchanged token: %d %v", status, ui)
		}

		t.Run("refused", func(t *testing.T) {
			_, err := exchange(t, ordersTE, toOrders.AccessToken, "te-payroll", "")
			wantRefused(t, err, "invalid_target")
			_, err = exchange(t, webTE, user.Access, "te-orders", "openid profile email")
			wantRefused(t, err, "invalid_scope")
			_, err = exchange(t, ordersTE, user.Access, "te-billing", "") // issued to web, not to orders
			wantRefused(t, err, "invalid_grant")
			_, err = exchange(t, ordersTE, toOrders.AccessToken+"x", "te-billing", "")
			wantRefused(t, err, "invalid_grant")
		})
		t.Run("the user's grant revoked", func(t *testing.T) {
			if a := ocPost(t, s, "/revoke", &web, url.Values{"token": {user.Refresh}}); a.Status != http.StatusOK {
				t.Fatalf("revoke: %d %s", a.Status, a.Raw)
			}
			_, err := exchange(t, ordersTE, toOrders.AccessToken, "te-billing", "")
			wantRefused(t, err, "invalid_grant")
			if status, _, _ := ocUserinfo(t, s, "get", toBilling.AccessToken); status != http.StatusUnauthorized {
				t.Fatalf("userinfo with a token exchanged from a revoked grant answered %d, want 401", status)
			}
		})
	})
	t.Run("resource names the API", func(t *testing.T) {
		user := teSignIn(t, s)
		byResource := func(resource string) (*oidc.TokenExchangeResponse, error) {
			return tokenexchange.ExchangeToken(t.Context(), webTE, user.Access, oidc.AccessTokenType, "", "", []string{resource},
				nil, nil, oidc.AccessTokenType)
		}
		got, err := byResource("https://reports.example.com")
		if err != nil {
			t.Fatalf("exchanging for a resource: %v", err)
		}
		if c := ocJWTPayload(t, got.AccessToken); !rpStrings(c["aud"], "https://reports.example.com") || c["sub"] != aliceID {
			t.Fatalf("exchanged token claims %v: want alice, aud https://reports.example.com", c)
		}
		// Another API, and one the client may exchange for but whose name is
		// no URI: as a resource it must be one.
		for _, resource := range []string{"https://payroll.example.com", "te-orders"} {
			_, err := byResource(resource)
			wantRefused(t, err, "invalid_target")
		}
	})
	t.Run("expired subject token", func(t *testing.T) {
		user := teSignIn(t, s)
		time.Sleep(5 * time.Second) // access_ttl is 4s here
		_, err := exchange(t, webTE, user.Access, "te-orders", "")
		wantRefused(t, err, "invalid_grant")
	})
	t.Run("a client without the grant type", func(t *testing.T) {
		_, err := exchange(t, exchanger(t, rpID, rpSecret), teSignIn(t, s).Access, "te-orders", "")
		wantRefused(t, err, "unauthorized_client")
	})
}
