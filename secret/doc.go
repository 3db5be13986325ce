// Package secret makes the random values fedhub hands out — codes, tokens,
// session and flow identifiers — and the hashes it stores instead of them,
// and seals the secrets it must keep readable (signing keys, TOTP keys, SAML
// SP keys) with the operator's key: AES-256-GCM, each value naming the key
// that sealed it, so that keys can be rotated (Keyring).
package secret
