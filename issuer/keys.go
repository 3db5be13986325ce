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
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"gorm.io/gorm"

	"github.com/fedhub/fedhub/secret"
)

// keyReload is how often a node rereads the key table, so that a rotation made
// by another node (or by `fedhub keys rotate`) is picked up. A scheduled
// rotation publishes its key twice that long before the key signs, so that
// every node has it by then; a key ID no node knows yet (`keys rotate`) makes
// the node reread at once — unless it reread within unknownKidReload, which
// bounds what tokens with made-up key IDs can cost (ten reads a second).
const (
	keyReload        = 30 * time.Second
	publishAhead     = 2 * keyReload
	unknownKidReload = 100 * time.Millisecond
)

// Keys holds the issuer's signing keys, cached from the database.
type Keys struct {
	db        *gorm.DB
	secrets   *secret.Keyring // seals the private keys; nil stores them as they are
	algorithm string
	rotation  time.Duration
	overlap   time.Duration // how long a replaced key stays published
	now       func() time.Time

	mu       sync.RWMutex
	loadedAt time.Time
	signers  []*signingKey // newest first
	public   jose.JSONWebKeySet
}

type signingKey struct {
	id        string
	signsFrom time.Time
	alg       jose.SignatureAlgorithm
	signer    jose.Signer // typ JWT
	atSign    jose.Signer // typ at+jwt (RFC 9068)
}

func newKeys(db *gorm.DB, secrets *secret.Keyring, algorithm string, rotation, overlap time.Duration, now func() time.Time) *Keys {
	return &Keys{db: db, secrets: secrets, algorithm: algorithm, rotation: rotation, overlap: overlap, now: now}
}

// Rotate makes a new signing key of the configured algorithm that signs at
// once (an operator's rotation: a key may be compromised) and keeps the
// previous ones published for the overlap period.
func (k *Keys) Rotate(ctx context.Context) error { return k.rotate(ctx, 0) }

// rotate makes a new key that signs after ahead.
func (k *Keys) rotate(ctx context.Context, ahead time.Duration) error {
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
		if err := tx.Model(&SigningKey{}).Where("publish_until IS NULL").Update("publish_until", until).Error; err != nil {
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
		return k.rotate(ctx, 0)
	case time.Since(newest.CreatedAt) > k.rotation: // on schedule: published first, signing later
		return k.rotate(ctx, publishAhead)
	}
	return k.load(ctx)
}

// load reads the published keys; each may sign from its SignsFrom on.
func (k *Keys) load(ctx context.Context) error {
	var rows []SigningKey
	err := k.db.WithContext(ctx).
		Where("publish_until IS NULL OR publish_until > ?", k.now().UTC()).
		Order("created_at DESC").Find(&rows).Error
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
	k.mu.Lock()
	k.signers, k.public, k.loadedAt = signers, set, k.now()
	k.mu.Unlock()
	return nil
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
	key := jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: priv, KeyID: id}}
	signer, err := jose.NewSigner(key, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("signer for key %s: %w", id, err)
	}
	atSign, err := jose.NewSigner(key, (&jose.SignerOptions{}).WithType("at+jwt"))
	if err != nil {
		return nil, fmt.Errorf("signer for key %s: %w", id, err)
	}
	return &signingKey{id: id, alg: alg, signer: signer, atSign: atSign}, nil
}

// refresh rereads the keys when the cache is older than maxAge; a failed
// reread keeps the cached keys (the database may be briefly unavailable) and
// is logged by the caller.
func (k *Keys) refresh(ctx context.Context, maxAge time.Duration) error {
	k.mu.RLock()
	stale := time.Since(k.loadedAt) > maxAge
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

// JWKS returns the public keys.
func (k *Keys) JWKS() jose.JSONWebKeySet {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.public
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
