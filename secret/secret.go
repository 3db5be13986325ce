package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// Token returns n random bytes, base64url-encoded: 8n bits of entropy in RFC
// 6749 A.17 characters only.
func Token(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand docs)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Hash is what is stored of a token: its SHA-256, in hex. Tokens are random
// and long, so a fast hash suffices.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
