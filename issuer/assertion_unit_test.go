package issuer

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"gorm.io/gorm"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/store/storetest"
)

// pkjKey is a client's signing key.
type pkjKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv any
	pub  any
}

func newPKJKey(t *testing.T, kid string) pkjKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pkjKey{kid: kid, alg: jose.ES256, priv: k, pub: &k.PublicKey}
}

// set is the JWK Set publishing keys, as a client writes it.
func pkjSet(t *testing.T, keys ...pkjKey) map[string]any {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.pub, KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
	}
	raw, _ := json.Marshal(set)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// assertion signs claims with k, as a client library would.
func (k pkjKey) assertion(t *testing.T, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// pkjIssuer is a node of an issuer with a private_key_jwt client "svc" whose
// keys are inline, one "pub" whose keys are at jwksURI, and a secret client "sec".
func pkjIssuer(t *testing.T, db *gorm.DB, now func() time.Time, key pkjKey, jwksURI string) *Issuer {
	t.Helper()
	cfg := config.Defaults()
	cfg.Issuer = "https://id.example.com"
	cfg.Signing.Algorithm = "EdDSA"
	cc := []string{config.GrantClientCredentials}
	cfg.Clients = []config.Client{
		{ID: "svc", AuthMethod: config.AuthPrivateKey, JWKS: pkjSet(t, key), GrantTypes: cc},
		{ID: "pub", AuthMethod: config.AuthPrivateKey, JWKSURI: jwksURI, GrantTypes: cc},
		{ID: "sec", Secret: "sec-secret", GrantTypes: cc},
	}
	iss, err := New(context.Background(), &cfg, db, nil, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), now)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// authn authenticates form (and Basic credentials, when user is given) at /token.
func authn(iss *Issuer, form url.Values, user, pass string) (*Client, error) {
	r := httptest.NewRequest(http.MethodPost, "https://id.example.com/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		r.SetBasicAuth(user, pass)
	}
	return iss.authenticateClient(r, form)
}

func assertionForm(raw string) url.Values {
	return url.Values{"client_assertion_type": {assertionType}, "client_assertion": {raw}}
}

// TestUnitPrivateKeyJWT: a client assertion is accepted when signed by the
// client's key, for this issuer, short-lived and new; every other one is
// refused, on both databases.
func TestUnitPrivateKeyJWT(t *testing.T) {
	storetest.ForEachDB(t, Models(), func(t *testing.T, db *gorm.DB) {
		now := time.Date(2030, 5, 17, 9, 30, 0, 0, time.UTC)
		key, other := newPKJKey(t, "k1"), newPKJKey(t, "k1")
		iss := pkjIssuer(t, db, func() time.Time { return now }, key, "http://127.0.0.1:1/unused")
		jti := 0
		claims := func(change func(map[string]any)) map[string]any {
			jti++
			c := map[string]any{"iss": "svc", "sub": "svc", "aud": "https://id.example.com", "jti": "j" + string(rune('a'+jti)),
				"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
			if change != nil {
				change(c)
			}
			return c
		}
		good := key.assertion(t, claims(nil))
		_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
		hs, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, nil)
		hsRaw, _ := jwt.Signed(hs).Claims(claims(nil)).Serialize()
		cases := []struct {
			name       string
			form       url.Values
			user, pass string
			ok         bool
		}{
			{"signed by the client's key, aud the issuer", assertionForm(good), "", "", true},
			{"the same assertion again", assertionForm(good), "", "", false},
			{"aud the token endpoint", assertionForm(key.assertion(t, claims(func(c map[string]any) {
				c["aud"] = []string{"https://id.example.com/token"}
			}))), "", "", true},
			{"with client_id", func() url.Values {
				f := assertionForm(key.assertion(t, claims(nil)))
				f.Set("client_id", "svc")
				return f
			}(), "", "", true},
			{"client_id of another client", func() url.Values {
				f := assertionForm(key.assertion(t, claims(nil)))
				f.Set("client_id", "sec")
				return f
			}(), "", "", false},
			{"aud another server", assertionForm(key.assertion(t, claims(func(c map[string]any) { c["aud"] = "https://other.example.com" }))), "", "", false},
			{"aud the introspection endpoint at /token", assertionForm(key.assertion(t, claims(func(c map[string]any) {
				c["aud"] = "https://id.example.com/introspect"
			}))), "", "", false},
			{"expired", assertionForm(key.assertion(t, claims(func(c map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }))), "", "", false},
			{"within the leeway", assertionForm(key.assertion(t, claims(func(c map[string]any) { c["exp"] = now.Add(-10 * time.Second).Unix() }))), "", "", true},
			{"no exp", assertionForm(key.assertion(t, claims(func(c map[string]any) { delete(c, "exp") }))), "", "", false},
			{"exp two hours away", assertionForm(key.assertion(t, claims(func(c map[string]any) { c["exp"] = now.Add(2 * time.Hour).Unix() }))), "", "", false},
			{"not yet valid", assertionForm(key.assertion(t, claims(func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute).Unix() }))), "", "", false},
			{"no jti", assertionForm(key.assertion(t, claims(func(c map[string]any) { delete(c, "jti") }))), "", "", false},
			{"iss another client", assertionForm(key.assertion(t, claims(func(c map[string]any) { c["iss"] = "sec" }))), "", "", false},
			{"signed by another key with the same kid", assertionForm(other.assertion(t, claims(nil))), "", "", false},
			{"EdDSA key not the client's", assertionForm(pkjKey{kid: "k1", alg: jose.EdDSA, priv: edPriv}.assertion(t, claims(nil))), "", "", false},
			{"HS256", assertionForm(hsRaw), "", "", false},
			{"alg none", assertionForm(pkjUnsigned(claims(nil))), "", "", false},
			{"wrong assertion type", func() url.Values {
				f := assertionForm(key.assertion(t, claims(nil)))
				f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
				return f
			}(), "", "", false},
			{"assertion and Basic", assertionForm(key.assertion(t, claims(nil))), "svc", "x", false},
			{"assertion and client_secret", func() url.Values {
				f := assertionForm(key.assertion(t, claims(nil)))
				f.Set("client_secret", "x")
				return f
			}(), "", "", false},
			{"a secret client's assertion", assertionForm(key.assertion(t, claims(func(c map[string]any) { c["iss"], c["sub"] = "sec", "sec" }))), "", "", false},
			{"a private_key_jwt client's secret", url.Values{"client_id": {"svc"}, "client_secret": {""}}, "", "", false},
			{"a secret client's secret still works", url.Values{}, "sec", "sec-secret", true},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				got, err := authn(iss, c.form, c.user, c.pass)
				var ae clientAuthError
				switch {
				case c.ok && err != nil:
					t.Fatalf("refused: %v", err)
				case !c.ok && !errors.As(err, &ae):
					t.Fatalf("accepted as %v (err %v), want a client authentication error", got, err)
				}
			})
		}

		t.Run("replayed at another node", func(t *testing.T) {
			other := pkjIssuer(t, db, func() time.Time { return now }, key, "http://127.0.0.1:1/unused")
			raw := key.assertion(t, claims(nil))
			if _, err := authn(iss, assertionForm(raw), "", ""); err != nil {
				t.Fatal(err)
			}
			if _, err := authn(other, assertionForm(raw), "", ""); err == nil {
				t.Fatal("another node accepted an assertion used at the first")
			}
		})
	})
}

// TestUnitPrivateKeyJWTPublishedKeys: keys from a jwks_uri are fetched once,
// reused, and fetched again when an assertion names a kid not seen yet (the
// client rotated), but not more often than clientKeysRefetch.
func TestUnitPrivateKeyJWTPublishedKeys(t *testing.T) {
	db := storetest.Open(t, storetest.Drivers[0], Models()...)
	now := time.Date(2030, 5, 17, 9, 30, 0, 0, time.UTC)
	k1, k2 := newPKJKey(t, "k1"), newPKJKey(t, "k2")
	var mu sync.Mutex
	published, fetches := []pkjKey{k1}, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fetches++
		_ = json.NewEncoder(w).Encode(pkjSet(t, published...))
	}))
	defer srv.Close()
	iss := pkjIssuer(t, db, func() time.Time { return now }, k1, srv.URL)
	n := 0
	sign := func(k pkjKey) url.Values {
		n++
		return assertionForm(k.assertion(t, map[string]any{"iss": "pub", "sub": "pub", "aud": "https://id.example.com",
			"jti": strings.Repeat("x", n), "exp": now.Add(time.Minute).Unix()}))
	}
	steps := []struct {
		name    string
		advance time.Duration
		key     pkjKey
		publish []pkjKey
		ok      bool
		fetches int
	}{
		{"first use fetches", 0, k1, nil, true, 1},
		{"second use reuses", time.Second, k1, nil, true, 1},
		{"rotated: unknown kid too soon after a fetch", time.Second, k2, []pkjKey{k1, k2}, false, 1},
		{"unknown kid fetches again", clientKeysRefetch, k2, nil, true, 2},
		{"old key dropped, but cached", time.Second, k1, []pkjKey{k2}, true, 2},
		{"cache expired", clientKeysTTL, k1, nil, false, 3},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		if s.publish != nil {
			mu.Lock()
			published = s.publish
			mu.Unlock()
		}
		_, err := authn(iss, sign(s.key), "", "")
		mu.Lock()
		got := fetches
		mu.Unlock()
		if (err == nil) != s.ok || got != s.fetches {
			t.Fatalf("%s: err %v, %d fetches; want ok %v, %d fetches", s.name, err, got, s.ok, s.fetches)
		}
	}
}

// pkjUnsigned is an alg=none JWT.
func pkjUnsigned(claims map[string]any) string {
	p, _ := json.Marshal(claims)
	return "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(p) + "."
}
