// Package secret makes the random values fedhub hands out — codes, tokens,
// session and flow identifiers — and the hashes it stores instead of them.
package secret
