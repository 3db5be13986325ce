package issuer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"gorm.io/gorm"

	"github.com/fedhub/fedhub/secret"
)

// keyReload is how often a node runs its key maintenance (a scheduled
// rotation). A scheduled rotation publishes its key twice that long before the
// key signs, so that every node and JWKS cache has it by then. Between
// reloads, a node asks the database every keyCheck which keys are published —
// one small query, not one per request — so that a rotation made elsewhere,
// and above all an emergency revocation, reaches every node within a second.
// A key ID no node knows yet makes the node reread at once — unless it reread
// within unknownKidReload, which bounds what tokens with made-up key IDs can
// cost (ten reads a second).
const (
	keyReload        = 30 * time.Second
	publishAhead     = 2 * keyReload
	keyCheck         = time.Second / 2
	rotateAhead      = 2 * keyCheck // an operator's rotation: every node checks in between
	unknownKidReload = 100 * time.Millisecond
	clockSkew        = time.Minute // more than nodes' clocks are ever apart
)

// Keys holds the issuer's signing keys, cached from the database.
type Keys struct {
	db        *gorm.DB
	secrets   *secret.Keyring // seals the private keys; nil stores them as they are
	algorithm string
	rotation  time.Duration
	overlap   time.Duration // how long a replaced key stays published
	log       *slog.Logger
	now       func() time.Time

	mu        sync.RWMutex
	loadedAt  time.Time
	checkedAt time.Time     // when the published key IDs were last compared
	checking  atomic.Bool   // one request at a time compares them
	signers   []*signingKey // newest first
	public    jose.JSONWebKeySet
	jwksJSON  []byte // public, encoded once per load: /jwks answers on every RP's key check
}

type signingKey struct {
	id        string
	signsFrom time.Time
	alg       jose.SignatureAlgorithm
	priv      crypto.Signer
	// The protected headers of its tokens, encoded (a JWS's first part), by
	// their typ: typID, typAccess, typLogout.
	headers map[string]string
	sigLen  int // the length of its signatures, to size a token's buffer
}

func newKeys(db *gorm.DB, secrets *secret.Keyring, algorithm string, rotation, overlap time.Duration, log *slog.Logger, now func() time.Time) *Keys {
	return &Keys{db: db, secrets: secrets, algorithm: algorithm, rotation: rotation, overlap: overlap, log: log, now: now}
}

// Rotate makes a new signing key of the configured algorithm that signs once
// every node has seen it (rotateAhead: two key checks), and keeps the
// previous ones published for the overlap period. A token a node signs with
// it then verifies at every other node and in the JWKS every node serves.
// (A compromised key: RotateRevokingPrevious.)
func (k *Keys) Rotate(ctx context.Context) error { return k.rotate(ctx, rotateAhead, false) }

// RotateRevokingPrevious makes a new key that signs at once and stops
// publishing and trusting every previous key now (a key was compromised):
// tokens they signed are refused from then on, on every node within keyCheck.
func (k *Keys) RotateRevokingPrevious(ctx context.Context) error { return k.rotate(ctx, 0, true) }

// rotate makes a new key that signs after ahead; the previous keys stay
// published for the overlap, or, with revoke, not at all.
func (k *Keys) rotate(ctx context.Context, ahead time.Duration, revoke bool) error {
	priv, err := generateKey(k.algorithm)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("rotate keys: %w", err)
	}
	if der, err = k.secrets.Seal(der); err != nil {
		return fmt.Errorf("rotate keys: %w", err)
	}
	now := k.now().UTC()
	until := now.Add(ahead + k.overlap)
	err = k.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		retire := tx.Model(&SigningKey{}).Where("publish_until IS NULL")
		if revoke {
			// Past already, by more than nodes' clocks disagree: a node whose
			// clock lags stops trusting them at once too.
			until = now.Add(-clockSkew)
			retire = tx.Model(&SigningKey{}).Where("publish_until IS NULL OR publish_until > ?", now)
		}
		if err := retire.Update("publish_until", until).Error; err != nil {
			return err
		}
		return tx.Create(&SigningKey{ID: secret.Token(12), Algorithm: k.algorithm, PrivateKey: der, CreatedAt: now,
			SignsFrom: now.Add(ahead)}).Error
	})
	if err != nil {
		return fmt.Errorf("rotate keys: %w", err)
	}
	return k.load(ctx)
}

// Ensure makes a key when there is none, or the newest is older than the
// rotation period or of another algorithm than configured.
func (k *Keys) Ensure(ctx context.Context) error {
	var newest SigningKey
	err := k.db.WithContext(ctx).Order("created_at DESC").Take(&newest).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("load signing key: %w", err)
	}
	if err == nil {
		// A key that cannot be opened (a wrong secrets.key) stops here, before
		// a rotation would retire the keys in use.
		if err := k.secrets.Readable(newest.PrivateKey); err != nil {
			return fmt.Errorf("signing key %s: %w", newest.ID, err)
		}
	}
	switch {
	case err != nil || newest.Algorithm != k.algorithm: // no key yet, or another algorithm: now
		return k.rotate(ctx, 0, false)
	case time.Since(newest.CreatedAt) > k.rotation: // on schedule: published first, signing later
		return k.rotate(ctx, publishAhead, false)
	}
	return k.load(ctx)
}

// published selects the keys published at now.
func (k *Keys) published(ctx context.Context, now time.Time) *gorm.DB {
	return k.db.WithContext(ctx).Model(&SigningKey{}).Where("publish_until IS NULL OR publish_until > ?", now.UTC())
}

// load reads the published keys; each may sign from its SignsFrom on.
func (k *Keys) load(ctx context.Context) error {
	now := k.now()
	var rows []SigningKey
	err := k.published(ctx, now).Order("created_at DESC").Find(&rows).Error
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	if len(rows) == 0 {
		return errors.New("load signing keys: there is no signing key")
	}
	var set jose.JSONWebKeySet
	var signers []*signingKey
	for _, row := range rows {
		der, err := k.secrets.Open(row.PrivateKey)
		if err != nil {
			return fmt.Errorf("signing key %s: %w", row.ID, err)
		}
		priv, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return fmt.Errorf("parse signing key %s: %w", row.ID, err)
		}
		alg := jose.SignatureAlgorithm(row.Algorithm)
		pub := priv.(crypto.Signer).Public()
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: pub, KeyID: row.ID, Algorithm: string(alg), Use: "sig"})
		sk, err := newSigningKey(row.ID, alg, priv)
		if err != nil {
			return err
		}
		sk.signsFrom = row.SignsFrom
		signers = append(signers, sk)
	}
	encoded, err := json.Marshal(set)
	if err != nil {
		return fmt.Errorf("encode the published keys: %w", err)
	}
	k.mu.Lock()
	k.signers, k.public, k.jwksJSON, k.loadedAt, k.checkedAt = signers, set, encoded, now, now
	k.mu.Unlock()
	return nil
}

// fresh rereads the keys when the published ones are no longer those loaded,
// asking the database at most every keyCheck; while one request asks, the
// others go on with the cached keys. When the database cannot be asked, the
// cached keys serve (it may be briefly unavailable).
func (k *Keys) fresh(ctx context.Context) {
	now := k.now()
	k.mu.RLock()
	due := now.Sub(k.checkedAt) >= keyCheck
	k.mu.RUnlock()
	if !due || !k.checking.CompareAndSwap(false, true) {
		return
	}
	defer k.checking.Store(false)
	var ids []string
	if err := k.published(ctx, now).Order("id").Pluck("id", &ids).Error; err != nil {
		k.log.Warn("checking the signing keys failed; the cached ones serve", "err", err)
		return
	}
	k.mu.Lock()
	k.checkedAt = now
	same := len(ids) == len(k.public.Keys)
	for _, key := range k.public.Keys {
		same = same && slices.Contains(ids, key.KeyID)
	}
	k.mu.Unlock()
	if same {
		return
	}
	if err := k.load(ctx); err != nil {
		k.log.Warn("rereading the signing keys failed; the cached ones serve", "err", err)
	}
}

// Reseal seals every signing key with the current key (fedhub secrets rekey)
// and says how many it changed of how many there are.
func (k *Keys) Reseal(ctx context.Context) (changed, total int, err error) {
	var rows []SigningKey
	if err := k.db.WithContext(ctx).Find(&rows).Error; err != nil {
		return 0, 0, fmt.Errorf("reseal signing keys: %w", err)
	}
	for _, row := range rows {
		sealed, did, err := k.secrets.Reseal(row.PrivateKey)
		if err != nil {
			return changed, len(rows), fmt.Errorf("reseal signing key %s: %w", row.ID, err)
		}
		if !did {
			continue
		}
		if err := k.db.WithContext(ctx).Model(&SigningKey{}).Where("id = ?", row.ID).
			Update("private_key", sealed).Error; err != nil {
			return changed, len(rows), fmt.Errorf("reseal signing key %s: %w", row.ID, err)
		}
		changed++
	}
	return changed, len(rows), nil
}

func newSigningKey(id string, alg jose.SignatureAlgorithm, priv any) (*signingKey, error) {
	sk := &signingKey{id: id, alg: alg, headers: map[string]string{}}
	var ok bool
	switch p := priv.(type) {
	case *rsa.PrivateKey:
		ok, sk.sigLen = alg == jose.RS256, p.Size()
	case *ecdsa.PrivateKey:
		ok, sk.sigLen = alg == jose.ES256 && p.Curve == elliptic.P256(), 64
	case ed25519.PrivateKey:
		ok, sk.sigLen = alg == jose.EdDSA, ed25519.SignatureSize
	}
	if !ok {
		return nil, fmt.Errorf("signer for key %s: a %T cannot sign %s", id, priv, alg)
	}
	sk.priv = priv.(crypto.Signer)
	for _, typ := range []string{typID, typAccess, typLogout} {
		header, err := json.Marshal(struct {
			Alg jose.SignatureAlgorithm `json:"alg"`
			Kid string                  `json:"kid"`
			Typ string                  `json:"typ"`
		}{alg, id, typ})
		if err != nil {
			return nil, fmt.Errorf("signer for key %s: %w", id, err)
		}
		sk.headers[typ] = base64.RawURLEncoding.EncodeToString(header)
	}
	return sk, nil
}

// refresh rereads the keys when the cache is older than maxAge; a failed
// reread keeps the cached keys (the database may be briefly unavailable) and
// is logged by the caller.
func (k *Keys) refresh(ctx context.Context, maxAge time.Duration) error {
	k.mu.RLock()
	stale := k.now().Sub(k.loadedAt) > maxAge
	k.mu.RUnlock()
	if !stale {
		return nil
	}
	return k.load(ctx)
}

// current is the newest key allowed to sign now.
func (k *Keys) current() *signingKey {
	now := k.now().UTC()
	k.mu.RLock()
	defer k.mu.RUnlock()
	for _, sk := range k.signers {
		if !now.Before(sk.signsFrom) {
			return sk
		}
	}
	return k.signers[len(k.signers)-1] // only keys still waiting: the oldest of them
}

// SigningSince is when the key that signs now began to sign; zero when no
// key is loaded (readiness and the key-age metric).
func (k *Keys) SigningSince() time.Time {
	k.mu.RLock()
	empty := len(k.signers) == 0
	k.mu.RUnlock()
	if empty {
		return time.Time{}
	}
	return k.current().signsFrom
}

// encodedJWKS returns the public keys as /jwks serves them.
func (k *Keys) encodedJWKS() []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.jwksJSON
}

// lookup returns the public key with this kid.
func (k *Keys) lookup(kid string) (jose.JSONWebKey, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	for _, key := range k.public.Keys {
		if key.KeyID == kid {
			return key, true
		}
	}
	return jose.JSONWebKey{}, false
}

func (k *Keys) algorithms() []jose.SignatureAlgorithm {
	k.mu.RLock()
	defer k.mu.RUnlock()
	seen := map[jose.SignatureAlgorithm]bool{}
	var out []jose.SignatureAlgorithm
	for _, key := range k.public.Keys {
		alg := jose.SignatureAlgorithm(key.Algorithm)
		if !seen[alg] {
			seen[alg] = true
			out = append(out, alg)
		}
	}
	return out
}

func generateKey(algorithm string) (crypto.Signer, error) {
	switch algorithm {
	case "RS256":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("unsupported signing algorithm %q", algorithm)
}
