package issuer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/fedhub/fedhub/internal/jsonappend"
	"github.com/go-jose/go-jose/v4"
)

// Header "typ" values that keep ID tokens, access tokens (RFC 9068 §4) and
// logout tokens (Back-Channel Logout 1.0 §2.4) apart.
const (
	typID     = "JWT"
	typAccess = "at+jwt"
	typLogout = "logout+jwt"
)

var errBadToken = errors.New("token is not valid")

// sign serialises claims as a JWT signed with the current key.
func (k *Keys) sign(ctx context.Context, claims map[string]any, typ string) (string, error) {
	k.fresh(ctx) // never sign with a key revoked on another node
	payload, err := jsonappend.Object(make([]byte, 0, 384), claims)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return k.current().sign(payload, typ)
}

// sign makes a JWS of payload in compact serialisation: the key's header for
// typ, the payload and the signature, each base64url-encoded, built in one
// buffer (go-jose's signer made a dozen copies and maps of them per token).
func (sk *signingKey) sign(payload []byte, typ string) (string, error) {
	header, ok := sk.headers[typ]
	if !ok {
		return "", fmt.Errorf("sign token: no header for typ %q", typ)
	}
	enc := base64.RawURLEncoding
	jws := make([]byte, 0, len(header)+enc.EncodedLen(len(payload))+enc.EncodedLen(sk.sigLen)+2)
	jws = append(jws, header...)
	jws = append(jws, '.')
	jws = enc.AppendEncode(jws, payload)
	sig, err := sk.signature(jws)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	jws = append(jws, '.')
	return string(enc.AppendEncode(jws, sig)), nil
}

// signature signs a JWS's signing input as RFC 7518 §3 (RS256, ES256) and
// RFC 8037 (EdDSA) say.
func (sk *signingKey) signature(input []byte) ([]byte, error) {
	if priv, ok := sk.priv.(ed25519.PrivateKey); ok {
		return ed25519.Sign(priv, input), nil
	}
	digest := sha256.Sum256(input)
	priv, ok := sk.priv.(*ecdsa.PrivateKey)
	if !ok {
		return sk.priv.Sign(rand.Reader, digest[:], crypto.SHA256) // RSASSA-PKCS1-v1_5
	}
	r, s, err := ecdsa.Sign(rand.Reader, priv, digest[:])
	if err != nil {
		return nil, err
	}
	sig := make([]byte, 64) // r and s, 32 bytes each on P-256
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return sig, nil
}

// tokenClaims are the registered claims fedhub checks when it reads its own tokens.
type tokenClaims struct {
	Issuer    string          `json:"iss"`
	Subject   string          `json:"sub"`
	Audience  json.RawMessage `json:"aud"`
	Expiry    int64           `json:"exp"`
	IssuedAt  int64           `json:"iat"`
	JTI       string          `json:"jti"`
	ClientID  string          `json:"client_id"`
	Scope     string          `json:"scope"`
	GrantID   string          `json:"gid"`
	SessionID string          `json:"sid"`
	Act       json.RawMessage `json:"act"` // who acts for the subject (token exchange)
	Username  string          `json:"preferred_username"`
}

func (c tokenClaims) audiences() []string {
	var one string
	if json.Unmarshal(c.Audience, &one) == nil {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(c.Audience, &many)
	return many
}

// verify checks a JWT's signature against the published keys, its "typ" header
// and its issuer. It does not check expiry: callers decide (an id_token_hint may
// have expired; an access token may not).
func (k *Keys) verify(ctx context.Context, token, typ, issuer string) (*tokenClaims, error) {
	if len(token) > 16*1024 {
		return nil, errBadToken
	}
	k.fresh(ctx) // a key revoked on another node is refused here too
	jws, err := jose.ParseSigned(token, k.algorithms())
	if err != nil || len(jws.Signatures) != 1 {
		return nil, errBadToken
	}
	h := jws.Signatures[0].Header
	if got, _ := h.ExtraHeaders[jose.HeaderType].(string); got != typ {
		return nil, errBadToken
	}
	key, ok := k.lookup(h.KeyID)
	if !ok { // perhaps another node just rotated
		if err := k.refresh(ctx, unknownKidReload); err == nil {
			key, ok = k.lookup(h.KeyID)
		}
	}
	if !ok || key.Algorithm != h.Algorithm {
		return nil, errBadToken
	}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return nil, errBadToken
	}
	var c tokenClaims
	if err := json.Unmarshal(payload, &c); err != nil || c.Issuer != issuer {
		return nil, errBadToken
	}
	return &c, nil
}

func (c *tokenClaims) expired(now time.Time) bool {
	return now.Unix() >= c.Expiry
}

// halfHash is at_hash (OIDC Core §3.1.3.6) for SHA-256 based algorithms and EdDSA.
func halfHash(token string, alg jose.SignatureAlgorithm) string {
	if alg == jose.EdDSA { // Ed25519 hashes with SHA-512 (OIDC Core errata / common practice)
		sum := sha512.Sum512([]byte(token))
		return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
	}
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}
