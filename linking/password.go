package linking

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// argon2id parameters: OWASP's minimum (m=19 MiB, t=2, p=1).
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
)

// HashPassword returns an argon2id hash in the PHC string format. It takes a
// place in the process's hashing bound (see Hashing), waiting as long as it
// must: its callers are signed-in people, administrators and start-up.
func HashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	release := hashing().await()
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	release()
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

var errBadHash = errors.New("not an argon2id hash")

// phc is a parsed argon2id hash.
type phc struct {
	m, t      uint32
	p         uint8
	salt, key []byte
}

// parseHash reads an argon2id PHC string, refusing anything else.
func parseHash(hash string) (phc, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return phc{}, errBadHash
	}
	var h phc
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version ||
		parts[2] != fmt.Sprintf("v=%d", version) {
		return phc{}, errBadHash
	}
	// Bounded, so that a stored hash cannot make a login allocate without limit.
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &h.m, &h.t, &h.p); err != nil ||
		parts[3] != fmt.Sprintf("m=%d,t=%d,p=%d", h.m, h.t, h.p) ||
		h.m < 8 || h.m > 1<<20 || h.t < 1 || h.t > 64 || h.p < 1 || h.p > 16 {
		return phc{}, errBadHash
	}
	b64 := base64.RawStdEncoding
	var err error
	if h.salt, err = b64.DecodeString(parts[4]); err != nil || len(h.salt) < 8 {
		return phc{}, errBadHash
	}
	if h.key, err = b64.DecodeString(parts[5]); err != nil || len(h.key) == 0 {
		return phc{}, errBadHash
	}
	return h, nil
}

// checkPassword reports whether password matches an argon2id PHC hash. It
// computes only with a place in the hashing bound: ErrBusy when none frees
// up in time.
func checkPassword(hash, password string) (bool, error) {
	h, err := parseHash(hash)
	if err != nil {
		return false, err
	}
	release, err := hashing().enter()
	if err != nil {
		return false, err
	}
	defer release()
	got := argon2.IDKey([]byte(password), h.salt, h.t, h.m, h.p, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(got, h.key) == 1, nil
}

// ValidPasswordHash reports whether hash is a well-formed argon2id hash. It
// only reads it: nothing is computed.
func ValidPasswordHash(hash string) bool {
	_, err := parseHash(hash)
	return err == nil
}
