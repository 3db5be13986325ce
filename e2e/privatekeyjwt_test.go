package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/client"
	"golang.org/x/oauth2"
)

// pkjClient is a service that authenticates with private_key_jwt: its
// assertions are built by zitadel's client library, an implementation
// independent of fedhub's.
type pkjClient struct {
	id     string
	kid    string
	key    *rsa.PrivateKey
	signer jose.Signer
	jwks   string // its public keys, a JWK Set in JSON
}

func newPKJClient(t testing.TB, id, kid string) pkjClient {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	signer, err := client.NewSignerFromPrivateKeyByte(pemKey, kid)
	if err != nil {
		t.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return pkjClient{id: id, kid: kid, key: key, signer: signer, jwks: string(set)}
}

// config is the client's configuration block with its keys inline; extra
// adds lines (grant_types…).
func (c pkjClient) config(extra string) string {
	return "  - id: " + c.id + "\n    token_endpoint_auth_method: private_key_jwt\n    jwks: " + c.jwks + "\n" + extra
}

// assertion is a fresh client assertion for aud.
func (c pkjClient) assertion(t testing.TB, aud string) string {
	t.Helper()
	a, err := client.SignedJWTProfileAssertion(c.id, []string{aud}, time.Minute, c.signer)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// post sends form to path with the client assertion.
func (c pkjClient) post(t testing.TB, s *Server, path, assertion string, form url.Values) ocAnswer {
	t.Helper()
	form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
	form.Set("client_assertion", assertion)
	return ocPost(t, s, path, nil, form)
}

// TestPrivateKeyJWT: services authenticate with a JWT signed by their key,
// configured inline or published at a jwks_uri, at the token, introspection
// and revocation endpoints and in the code flow; a replayed assertion, one for
// another audience, one signed by another key and a secret for such a client
// are refused with invalid_client.
func TestPrivateKeyJWT(t *testing.T) {
	t.Parallel()
	inline := newPKJClient(t, "pkj-inline", "k1")
	published := newPKJClient(t, "pkj-published", "k2")
	stranger := newPKJClient(t, "pkj-inline", "k1") // the same kid, another key
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	jwksSrv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(published.jwks))
	})}
	go func() { _ = jwksSrv.Serve(ln) }()
	t.Cleanup(func() { _ = jwksSrv.Close() })
	clients := inline.config("    redirect_uris: ["+redirectURI+"]\n    grant_types: [client_credentials, authorization_code, refresh_token]\n") +
		"  - id: pkj-published\n    token_endpoint_auth_method: private_key_jwt\n" +
		"    jwks_uri: http://" + ln.Addr().String() + "/jwks\n    grant_types: [client_credentials]\n"
	s := Start(t, WithConfig(strings.Replace(defaultConfig, "clients:\n", "clients:\n"+clients, 1)))
	_, disc := ocDiscovery(t, s)
	if methods, _ := ocStrings(disc["token_endpoint_auth_methods_supported"]); !strings.Contains(strings.Join(methods, " "), "private_key_jwt") {
		t.Fatalf("discovery token_endpoint_auth_methods_supported = %v, want private_key_jwt among them", methods)
	}
	cc := url.Values{"grant_type": {"client_credentials"}}

	t.Run("client credentials, inline keys; the assertion again is refused", func(t *testing.T) {
		a := inline.assertion(t, s.URL)
		tok := ocWantTokens(t, inline.post(t, s, "/token", a, url.Values{"grant_type": {"client_credentials"}}))
		if sub := ocJWTPayload(t, tok.Access)["sub"]; sub != "pkj-inline" {
			t.Fatalf("access token sub = %v, want pkj-inline", sub)
		}
		ocWantOAuthError(t, inline.post(t, s, "/token", a, url.Values{"grant_type": {"client_credentials"}}),
			http.StatusUnauthorized, "invalid_client")
	})
	t.Run("published keys, aud the token endpoint", func(t *testing.T) {
		ocWantTokens(t, published.post(t, s, "/token", published.assertion(t, s.URL+"/token"), url.Values{"grant_type": {"client_credentials"}}))
	})
	for name, a := range map[string]string{
		"another audience":   inline.assertion(t, "https://other.example.com"),
		"another key":        stranger.assertion(t, s.URL),
		"another's keys":     published.assertion(t, s.URL) + "x",
		"not a JWT":          "not-a-jwt",
		"the other client's": published.assertion(t, "https://other.example.com"),
	} {
		t.Run("refused: "+name, func(t *testing.T) {
			ocWantOAuthError(t, inline.post(t, s, "/token", a, url.Values{"grant_type": {"client_credentials"}}),
				http.StatusUnauthorized, "invalid_client")
		})
	}
	t.Run("refused: a secret", func(t *testing.T) {
		ocWantOAuthError(t, ocPost(t, s, "/token", &ocClient{id: "pkj-inline", secret: "guess"}, cc), http.StatusUnauthorized, "invalid_client")
	})

	t.Run("code flow, refresh, introspection and revocation", func(t *testing.T) {
		verifier, challenge := ocPKCE()
		params := AuthParams("client_id", "pkj-inline", "code_challenge", challenge, "code_challenge_method", "S256")
		code := ocWantCode(t, s, ocAuthorizeAs(t, s, NewBrowser(t), params, "alice", alicePass), params)
		conf := oauth2.Config{ClientID: "pkj-inline", RedirectURL: redirectURI,
			Endpoint: oauth2.Endpoint{TokenURL: s.URL + "/token", AuthStyle: oauth2.AuthStyleInParams}}
		withAssertion := func() []oauth2.AuthCodeOption {
			return []oauth2.AuthCodeOption{
				oauth2.SetAuthURLParam("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
				oauth2.SetAuthURLParam("client_assertion", inline.assertion(t, s.URL))}
		}
		tok, err := conf.Exchange(t.Context(), code, append(withAssertion(), oauth2.VerifierOption(verifier))...)
		if err != nil {
			t.Fatalf("code exchange with a client assertion: %v", err)
		}
		ocVerifyIDToken(t, s, "pkj-inline", tok.Extra("id_token").(string))
		refreshed := ocWantTokens(t, inline.post(t, s, "/token", inline.assertion(t, s.URL),
			url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}))
		intro := inline.post(t, s, "/introspect", inline.assertion(t, s.URL+"/introspect"), url.Values{"token": {refreshed.Access}})
		if intro.Status != http.StatusOK || intro.Body["active"] != true {
			t.Fatalf("introspection with a client assertion: %d %v", intro.Status, intro.Body)
		}
		if rev := inline.post(t, s, "/revoke", inline.assertion(t, s.URL), url.Values{"token": {refreshed.Refresh}}); rev.Status != http.StatusOK {
			t.Fatalf("revocation with a client assertion: %d %v", rev.Status, rev.Body)
		}
		ocWantOAuthError(t, inline.post(t, s, "/token", inline.assertion(t, s.URL),
			url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshed.Refresh}}), http.StatusBadRequest, "invalid_grant")
	})
}
