package issuer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"gorm.io/gorm/clause"

	"github.com/fedhub/fedhub/config"
)

// private_key_jwt (RFC 7523 §2.2, OpenID Connect Core §9): the client proves
// who it is with a short-lived JWT signed by one of its keys. Each assertion
// is good once, on every node: its jti is recorded until it expires.

// assertionType is the client_assertion_type of a JWT assertion.
const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

const (
	// maxAssertionLife bounds how far ahead an assertion may expire, as its
	// jti is kept that long (client libraries such as zitadel's sign them for
	// an hour).
	maxAssertionLife = time.Hour
	// assertionLeeway absorbs clock skew between the client and fedhub.
	assertionLeeway = 30 * time.Second
	// clientKeysTTL is how long keys fetched from a jwks_uri are used;
	// clientKeysRefetch how soon an unknown kid may fetch them again.
	clientKeysTTL     = 5 * time.Minute
	clientKeysRefetch = 10 * time.Second
	clientKeysMaxSize = 256 << 10
)

// assertionAlgorithms are the signatures a client's assertion may have: no
// MAC (client_secret_jwt is not offered), never none.
var assertionAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384,
	jose.PS512, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

func assertionAlgorithmNames() []string {
	out := make([]string, len(assertionAlgorithms))
	for i, a := range assertionAlgorithms {
		out[i] = string(a)
	}
	return out
}

// UsedAssertion is a client assertion's jti, kept until the assertion
// expires so that it cannot be presented twice.
type UsedAssertion struct {
	ClientID  string    `gorm:"primaryKey;size:255"`
	JTI       string    `gorm:"column:jti;primaryKey;size:255"`
	ExpiresAt time.Time `gorm:"index"`
}

// assertionClient reads, without trusting it yet, which client an assertion
// says it comes from.
func assertionClient(raw string) (string, error) {
	tok, err := jwt.ParseSigned(raw, assertionAlgorithms)
	if err != nil {
		return "", errors.New("client_assertion is not a signed JWT")
	}
	var c jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil || c.Subject == "" {
		return "", errors.New("client_assertion names no client (sub)")
	}
	return c.Subject, nil
}

// checkAssertion verifies a client assertion of c presented at endpoint (an
// absolute URL of this issuer) and records its jti.
func (iss *Issuer) checkAssertion(ctx context.Context, c *Client, raw, endpoint string) error {
	tok, err := jwt.ParseSigned(raw, assertionAlgorithms)
	if err != nil || len(tok.Headers) != 1 {
		return errors.New("not a signed JWT")
	}
	keys, err := iss.clientKeys.of(ctx, c, tok.Headers[0].KeyID)
	if err != nil {
		return err
	}
	var cl jwt.Claims
	verified := false
	for _, k := range keys {
		if tok.Claims(k.Key, &cl) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return errors.New("the signature matches none of the client's keys")
	}
	now := iss.now()
	if cl.Expiry == nil {
		return errors.New("exp is required")
	}
	if err := cl.ValidateWithLeeway(jwt.Expected{Issuer: c.ID, Subject: c.ID, Time: now}, assertionLeeway); err != nil {
		return err
	}
	exp := cl.Expiry.Time()
	switch {
	case !slices.ContainsFunc(cl.Audience, func(a string) bool { return a == iss.url || a == endpoint }):
		return fmt.Errorf("aud must be the issuer %s or the endpoint %s", iss.url, endpoint)
	case exp.After(now.Add(maxAssertionLife)):
		return fmt.Errorf("exp is more than %v away: make assertions short-lived", maxAssertionLife)
	case cl.ID == "" || len(cl.ID) > 255:
		return errors.New("jti is required (at most 255 characters)")
	}
	used := UsedAssertion{ClientID: c.ID, JTI: cl.ID, ExpiresAt: exp.Add(assertionLeeway).UTC()}
	res := iss.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&used)
	if res.Error != nil {
		return fmt.Errorf("record jti: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return errors.New("replayed: this jti was used before")
	}
	return nil
}

// clientKeySets holds the keys of private_key_jwt clients: inline sets as
// configured, published ones fetched from their jwks_uri and kept a while.
type clientKeySets struct {
	http *http.Client
	now  func() time.Time
	mu   sync.Mutex
	uris map[string]fetchedKeys
}

type fetchedKeys struct {
	keys    jose.JSONWebKeySet
	fetched time.Time
	err     error
}

func newClientKeySets(now func() time.Time) *clientKeySets {
	return &clientKeySets{http: &http.Client{Timeout: 5 * time.Second}, now: now, uris: map[string]fetchedKeys{}}
}

// of returns the keys of c that may have signed with kid ("" when the
// assertion names none).
func (s *clientKeySets) of(ctx context.Context, c *Client, kid string) ([]jose.JSONWebKey, error) {
	if c.JWKS != "" {
		var set map[string]any
		if err := json.Unmarshal([]byte(c.JWKS), &set); err != nil {
			return nil, fmt.Errorf("the client's keys: %w", err)
		}
		keys, err := config.ClientKeys(set)
		if err != nil {
			return nil, fmt.Errorf("the client's keys: %w", err)
		}
		return pick(keys, kid), nil
	}
	if c.JWKSURI == "" {
		return nil, errors.New("the client has no keys")
	}
	s.mu.Lock()
	f, ok := s.uris[c.JWKSURI]
	s.mu.Unlock()
	now := s.now()
	stale := !ok || now.Sub(f.fetched) > clientKeysTTL
	if stale || (len(pick(f.keys, kid)) == 0 && now.Sub(f.fetched) > clientKeysRefetch) {
		keys, err := s.fetch(ctx, c.JWKSURI)
		f = fetchedKeys{keys: keys, fetched: now, err: err}
		s.mu.Lock()
		s.uris[c.JWKSURI] = f
		s.mu.Unlock()
	}
	if f.err != nil {
		return nil, f.err
	}
	return pick(f.keys, kid), nil
}

// fetch reads a client's published keys.
func (s *clientKeySets) fetch(ctx context.Context, uri string) (jose.JSONWebKeySet, error) {
	var keys jose.JSONWebKeySet
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return keys, fmt.Errorf("the client's jwks_uri: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return keys, fmt.Errorf("fetch the client's keys: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return keys, fmt.Errorf("fetch the client's keys: %s answered %s", uri, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, clientKeysMaxSize))
	if err != nil {
		return keys, fmt.Errorf("fetch the client's keys: %w", err)
	}
	var set map[string]any
	if err := json.Unmarshal(body, &set); err != nil {
		return keys, fmt.Errorf("the client's keys at %s: %w", uri, err)
	}
	if keys, err = config.ClientKeys(set); err != nil {
		return keys, fmt.Errorf("the client's keys at %s: %w", uri, err)
	}
	return keys, nil
}

// pick keeps the keys of set that kid names (all of them for no kid).
func pick(set jose.JSONWebKeySet, kid string) []jose.JSONWebKey {
	if kid == "" {
		return set.Keys
	}
	return set.Key(kid)
}
