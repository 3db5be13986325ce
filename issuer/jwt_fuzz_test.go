package issuer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/store"
)

const fuzzIssuer = "https://login.example.com"

// fuzzKeys are the issuer's keys for the fuzz targets: one of each algorithm,
// the same in every fuzzing process (the coordinator's seeds must verify in
// the workers), with fixed key IDs, in an SQLite database of its own.
func fuzzKeys(tb testing.TB) *Keys {
	tb.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, config.Storage{Driver: "sqlite", DSN: filepath.Join(tb.TempDir(), "keys.db")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close(db) })
	if err := store.Migrate(ctx, db, Models()...); err != nil {
		tb.Fatal(err)
	}
	seed := func(b byte) []byte {
		out := make([]byte, 32)
		for i := range out {
			out[i] = b + byte(i)
		}
		return out
	}
	ec, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed(1))
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UTC()
	for i, k := range []struct {
		id, alg string
		priv    crypto.Signer
	}{
		{"fuzz-rs256", "RS256", deterministicRSA(tb)},
		{"fuzz-es256", "ES256", ec},
		{"fuzz-eddsa", "EdDSA", ed25519.NewKeyFromSeed(seed(2))},
	} {
		der, err := x509.MarshalPKCS8PrivateKey(k.priv)
		if err != nil {
			tb.Fatal(err)
		}
		row := SigningKey{ID: k.id, Algorithm: k.alg, PrivateKey: der, CreatedAt: now.Add(time.Duration(i) * time.Second),
			SignsFrom: now.Add(-time.Hour)}
		if err := db.Create(&row).Error; err != nil {
			tb.Fatal(err)
		}
	}
	k := newKeys(db, nil, "EdDSA", 24*time.Hour, 24*time.Hour, slog.New(slog.DiscardHandler), time.Now)
	if err := k.load(ctx); err != nil {
		tb.Fatal(err)
	}
	return k
}

// deterministicRSA is a 2048-bit RSA key made from a fixed seed (rsa.GenerateKey
// takes no seed since Go 1.26), so that every fuzzing process has the same.
func deterministicRSA(tb testing.TB) *rsa.PrivateKey {
	tb.Helper()
	r := rand.New(rand.NewChaCha8([32]byte{'f', 'e', 'd', 'h', 'u', 'b'}))
	prime := func() *big.Int {
		b := make([]byte, 128)
		for {
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			b[0] |= 0xc0
			b[len(b)-1] |= 1
			p := new(big.Int).SetBytes(b)
			if p.ProbablyPrime(32) {
				return p
			}
		}
	}
	p, q := prime(), prime()
	one := big.NewInt(1)
	e := big.NewInt(65537)
	phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
	d := new(big.Int).ModInverse(e, phi)
	if d == nil {
		tb.Fatal("deterministic RSA: e is not invertible")
	}
	key := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537}, D: d, Primes: []*big.Int{p, q}}
	key.Precompute()
	if err := key.Validate(); err != nil {
		tb.Fatal(err)
	}
	return key
}

// signWith signs claims with one particular key, as Keys.sign does with the current one.
func signWith(tb testing.TB, sk *signingKey, claims map[string]any, typ string) string {
	tb.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := sk.sign(payload, typ)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// FuzzVerifyJWT: only tokens the issuer signed verify. Whatever the input,
// Keys.verify accepts it as a token of type typ only when its claims are
// exactly those of a token the issuer signed with that type and its own
// issuer (a re-encoding of the signature may pass; altered claims, another
// type, another issuer, another key or algorithm may not).
func FuzzVerifyJWT(f *testing.F) {
	k := fuzzKeys(f)
	ctx := context.Background()
	b64 := base64.RawURLEncoding.EncodeToString

	idClaims := map[string]any{"iss": fuzzIssuer, "sub": "00000000-0000-4000-8000-000000000001", "aud": []string{"app"},
		"azp": "app", "iat": 1_700_000_000, "exp": 1_700_000_600, "auth_time": 1_700_000_000, "nonce": "n-0S6_WzA2Mj",
		"sid": "s1", "preferred_username": "alice"}
	atClaims := map[string]any{"iss": fuzzIssuer, "sub": "00000000-0000-4000-8000-000000000001", "aud": "app",
		"client_id": "app", "iat": 1_700_000_000, "exp": 1_700_000_600, "jti": "jti-1", "scope": "openid profile", "gid": "g1"}
	ccClaims := map[string]any{"iss": fuzzIssuer, "sub": "svc", "aud": "svc", "client_id": "svc", "iat": 1, "exp": 2, "jti": "jti-2"}

	// What the issuer signed, by type: the claims verify may return.
	signed := map[string][]tokenClaims{}
	decode := func(claims map[string]any) tokenClaims {
		raw, _ := json.Marshal(claims)
		var c tokenClaims
		if err := json.Unmarshal(raw, &c); err != nil {
			f.Fatal(err)
		}
		return c
	}
	var tokens []string
	var rsID, rsAT string // an ID token and an access token of the RS256 key
	for _, sk := range k.signers {
		for _, tc := range []struct {
			claims map[string]any
			typ    string
		}{{idClaims, typID}, {atClaims, typAccess}, {ccClaims, typAccess}} {
			tok := signWith(f, sk, tc.claims, tc.typ)
			// The control: what the issuer signed verifies.
			if _, err := k.verify(ctx, tok, tc.typ, fuzzIssuer); err != nil {
				f.Fatalf("a token of key %s does not verify: %v", sk.id, err)
			}
			tokens = append(tokens, tok)
			if sk.alg == "RS256" && tc.typ == typID {
				rsID = tok
			} else if sk.alg == "RS256" && rsAT == "" {
				rsAT = tok
			}
			signed[tc.typ] = append(signed[tc.typ], decode(tc.claims))
		}
		// Signed by this key, but for another issuer: never accepted.
		evil := map[string]any{"iss": "https://evil.example", "sub": "admin", "aud": "app"}
		tokens = append(tokens, signWith(f, sk, evil, typID), signWith(f, sk, evil, typAccess))
	}
	for _, tok := range tokens {
		f.Add(tok)
	}

	// Attack shapes, made from a real access token and ID token.
	at, id := rsAT, rsID
	atParts, idParts := strings.Split(at, "."), strings.Split(id, ".")
	header := func(h map[string]any) string { raw, _ := json.Marshal(h); return b64(raw) }
	evilPayload := b64([]byte(`{"iss":"` + fuzzIssuer + `","sub":"admin","aud":"app","exp":9999999999}`))
	rsaJWK, _ := k.lookup("fuzz-rs256")
	rsaPub, _ := x509.MarshalPKIXPublicKey(rsaJWK.Key)
	hs := func(secret []byte, h, p string) string {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(h + "." + p))
		return h + "." + p + "." + b64(m.Sum(nil))
	}
	hsHeader := header(map[string]any{"alg": "HS256", "typ": typAccess, "kid": "fuzz-rs256"})
	jwkJSON, _ := json.Marshal(rsaJWK)
	for _, s := range []string{
		// alg none, with and without a signature part.
		header(map[string]any{"alg": "none", "typ": typAccess, "kid": "fuzz-rs256"}) + "." + evilPayload + ".",
		header(map[string]any{"alg": "none", "typ": typAccess}) + "." + atParts[1] + ".",
		// HS256 keyed with the public key (algorithm confusion).
		hs(rsaPub, hsHeader, evilPayload),
		hs(jwkJSON, hsHeader, evilPayload),
		hs([]byte(""), hsHeader, atParts[1]),
		// Another key's ID, another type, the payload of another token.
		header(map[string]any{"alg": "RS256", "typ": typAccess, "kid": "fuzz-es256"}) + "." + atParts[1] + "." + atParts[2],
		header(map[string]any{"alg": "RS256", "typ": typID, "kid": "fuzz-rs256"}) + "." + atParts[1] + "." + atParts[2],
		atParts[0] + "." + idParts[1] + "." + atParts[2],
		atParts[0] + "." + evilPayload + "." + atParts[2],
		// An embedded key, a kid that is not ours, critical headers.
		header(map[string]any{"alg": "RS256", "typ": typAccess, "kid": "nope", "jwk": json.RawMessage(jwkJSON)}) + "." + atParts[1] + "." + atParts[2],
		header(map[string]any{"alg": "RS256", "typ": typAccess, "kid": "fuzz-rs256", "crit": []string{"exp"}, "exp": 1}) + "." + atParts[1] + "." + atParts[2],
		// JSON serialisations: typ in the unprotected header, two signatures.
		`{"payload":"` + atParts[1] + `","protected":"` + atParts[0] + `","header":{"typ":"JWT"},"signature":"` + atParts[2] + `"}`,
		`{"payload":"` + atParts[1] + `","signatures":[{"protected":"` + atParts[0] + `","signature":"` + atParts[2] + `"},{"protected":"` + idParts[0] + `","signature":"` + idParts[2] + `"}]}`,
		`{"payload":"` + idParts[1] + `","protected":"` + atParts[0] + `","signature":"` + atParts[2] + `"}`,
		// Padding, whitespace, a cut signature, an oversized token.
		at + "=", " " + at, at[:len(at)-2], at + "." + atParts[2], strings.Repeat("A", 17*1024),
		"", ".", "..", "e30.e30.", "eyJhbGciOiJSUzI1NiJ9",
	} {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, token string) {
		for _, typ := range []string{typID, typAccess} {
			c, err := k.verify(ctx, token, typ, fuzzIssuer)
			if err != nil {
				continue
			}
			ok := false
			for _, s := range signed[typ] {
				ok = ok || reflect.DeepEqual(*c, s)
			}
			if !ok {
				t.Fatalf("verified as %s with claims %+v, which the issuer never signed as %s:\n%q", typ, *c, typ, token)
			}
		}
	})
}
