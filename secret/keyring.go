package secret

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// A sealed value is text, so that it fits text and binary columns alike:
//
//	fhs1:<key ID>:<base64url(nonce ‖ AES-256-GCM ciphertext ‖ tag)>
//
// The header ("fhs1:<key ID>:") is the AEAD's additional data: changing the
// version or the key ID breaks the tag as much as changing the ciphertext.
const (
	sealedPrefix = "fhs1:"
	keyIDLen     = 8 // hex digits
	// HeaderLen is the length of a sealed value's header, which names its
	// key: enough to check with Readable which keys a table needs.
	HeaderLen = len(sealedPrefix) + keyIDLen + 1
	keySize   = 32 // AES-256
)

// Keyring seals secrets kept in the database with the operator's current key
// and opens what was sealed with it or a previous one.
type Keyring struct {
	current *sealKey
	byID    map[string]*sealKey
}

type sealKey struct {
	id   string
	aead cipher.AEAD
}

// NewKeyring reads the keys as given in the configuration: each is 32 random
// bytes in base64 (openssl rand -base64 32). With no current key there is no
// keyring (nil, nil): values are then stored as they are.
func NewKeyring(current string, previous ...string) (*Keyring, error) {
	if current == "" {
		if len(previous) > 0 {
			return nil, errors.New("secrets: previous_keys are given but no key: set secrets.key to the new key")
		}
		return nil, nil
	}
	k := &Keyring{byID: map[string]*sealKey{}}
	for i, text := range append([]string{current}, previous...) {
		name := "secrets.key"
		if i > 0 {
			name = fmt.Sprintf("secrets.previous_keys[%d]", i-1)
		}
		sk, err := parseKey(text)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if _, dup := k.byID[sk.id]; dup {
			return nil, fmt.Errorf("%s: key %s is given twice", name, sk.id)
		}
		k.byID[sk.id] = sk
		if i == 0 {
			k.current = sk
		}
	}
	return k, nil
}

// CheckKey says what is wrong with a key as given in the configuration.
func CheckKey(text string) error {
	_, err := parseKey(text)
	return err
}

// parseKey decodes one configured key and makes its cipher.
func parseKey(text string) (*sealKey, error) {
	text = strings.TrimSpace(text)
	var raw []byte
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(text); err == nil {
			raw = b
			break
		}
	}
	switch {
	case raw == nil:
		return nil, errors.New("is not base64: give 32 random bytes in base64 (openssl rand -base64 32)")
	case len(raw) != keySize:
		return nil, fmt.Errorf("is %d bytes, want exactly %d random bytes in base64 (openssl rand -base64 32)", len(raw), keySize)
	case weak(raw):
		return nil, errors.New("is not random (too many repeated bytes): make one with openssl rand -base64 32")
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("make cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("make cipher: %w", err)
	}
	// The key ID is public (it is in every sealed value): a hash of the key,
	// which tells nothing of the key itself.
	sum := sha256.Sum256(append([]byte("fedhub secrets key ID\x00"), raw...))
	return &sealKey{id: hex.EncodeToString(sum[:])[:keyIDLen], aead: aead}, nil
}

// weak catches keys typed by hand (a word, a repeated pattern): 32 random
// bytes have about 30 distinct values, and fewer than 16 happens to random
// keys with a probability far below 2^-60.
func weak(raw []byte) bool {
	seen := map[byte]bool{}
	for _, b := range raw {
		seen[b] = true
	}
	return len(seen) < 16
}

// Seal encrypts plain with the current key. Without a keyring, plain is
// returned as it is.
func (k *Keyring) Seal(plain []byte) ([]byte, error) {
	if k == nil {
		return plain, nil
	}
	header := sealedPrefix + k.current.id + ":"
	nonce := make([]byte, k.current.aead.NonceSize())
	_, _ = rand.Read(nonce) // never fails (crypto/rand docs)
	box := k.current.aead.Seal(nonce, nonce, plain, []byte(header))
	out := make([]byte, 0, len(header)+base64.RawURLEncoding.EncodedLen(len(box)))
	out = append(out, header...)
	return base64.RawURLEncoding.AppendEncode(out, box), nil
}

// Open decrypts a sealed value with the key that sealed it, the current or a
// previous one. A value that was never sealed (stored before a key was set)
// is returned as it is.
func (k *Keyring) Open(stored []byte) ([]byte, error) {
	sk, err := k.keyOf(stored)
	if sk == nil || err != nil {
		return stored, err
	}
	box, err := base64.RawURLEncoding.DecodeString(string(stored[HeaderLen:]))
	if err != nil || len(box) < sk.aead.NonceSize()+sk.aead.Overhead() {
		return nil, fmt.Errorf("open secret sealed with key %s: the value is damaged", sk.id)
	}
	n := sk.aead.NonceSize()
	plain, err := sk.aead.Open(nil, box[:n], box[n:], stored[:HeaderLen])
	if err != nil {
		return nil, fmt.Errorf("open secret sealed with key %s: the value was altered or the key is not the one that sealed it", sk.id)
	}
	return plain, nil
}

// Readable reports, from a stored value's header alone, whether Open has the
// key for it: nil for a value never sealed or sealed with a known key.
func (k *Keyring) Readable(stored []byte) error {
	_, err := k.keyOf(stored)
	return err
}

// Sealed reports whether stored is sealed with the current key, so that
// re-keying leaves it alone.
func (k *Keyring) Sealed(stored []byte) (current bool) {
	sk, err := k.keyOf(stored)
	return err == nil && sk != nil && sk == k.current
}

// Reseal returns stored sealed with the current key, and whether that changed
// it (false: it already was).
func (k *Keyring) Reseal(stored []byte) ([]byte, bool, error) {
	if k == nil {
		return nil, false, errors.New("reseal secret: no key is configured (secrets.key)")
	}
	if k.Sealed(stored) {
		return stored, false, nil
	}
	plain, err := k.Open(stored)
	if err != nil {
		return nil, false, err
	}
	sealed, err := k.Seal(plain)
	return sealed, true, err
}

// keyOf finds the key a stored value was sealed with: nil, nil for a value
// never sealed; an error naming the key ID when there is no such key.
func (k *Keyring) keyOf(stored []byte) (*sealKey, error) {
	if !bytes.HasPrefix(stored, []byte(sealedPrefix)) {
		return nil, nil
	}
	if len(stored) < HeaderLen || stored[HeaderLen-1] != ':' {
		return nil, errors.New("open secret: the sealed value's header is damaged")
	}
	id := string(stored[len(sealedPrefix) : HeaderLen-1])
	if k == nil {
		return nil, fmt.Errorf("a secret in the database is sealed with key %s, but no key is configured: set secrets.key (and secrets.previous_keys)", id)
	}
	sk, ok := k.byID[id]
	if !ok {
		return nil, fmt.Errorf("a secret in the database is sealed with key %s, which is neither secrets.key (%s) nor one of secrets.previous_keys", id, k.current.id)
	}
	return sk, nil
}

// CurrentID is the current key's ID, as sealed values name it.
func (k *Keyring) CurrentID() string { return k.current.id }
