// Package issuer is fedhub's OpenID Provider: clients, signing keys and their
// rotation, authorization requests, codes, tokens, SSO sessions and every
// OIDC/OAuth endpoint. Whatever upstream a person used, the tokens are fedhub's.
//
// Access tokens are JWTs (RFC 9068, typ "at+jwt") so that APIs can verify them
// against the JWKS; userinfo and introspection also check the grant they belong
// to, so revocation takes effect there at once. Refresh tokens, codes and SSO
// session cookies are random values stored only as SHA-256 hashes.
package issuer
