// Package oidc is the connector for an upstream OpenID Provider: fedhub is a
// relying party of the upstream (authorization code flow with PKCE S256) and
// turns the verified ID token, and optionally the userinfo answer, into a
// login.Identity.
//
// The connector implements brokers.RedirectConnector and brokers.HealthChecker.
// It never contacts the upstream while it is being built: discovery happens on
// first use, is cached, and is retried on the next use after a failure, so
// fedhub starts while an upstream is down and picks it up when it returns.
//
// Per login, Begin generates a nonce and a PKCE verifier and keeps them in the
// brokers.Flow (which brokers binds to the browser and makes single-use); the
// flow's State is the OAuth state. Finish checks the state again, exchanges
// the code with the verifier, verifies the ID token with go-oidc (signature,
// issuer, audience, expiry), compares the nonce itself (go-oidc does not) and
// checks at_hash when present. The identity's subject is "issuer|sub", never
// the email; email_verified comes from the upstream's claim.
//
// # Step-up
//
// A flow with ForceAuthn sends prompt=login, one with MaxAge > 0 sends
// max_age. The identity's AuthTime, AMR and ACR come from the ID token's
// auth_time, amr and acr. An upstream that answers a forced login from its
// SSO session (auth_time before the flow began, or none) or a max_age it
// does not honour is refused with ErrNotReauthenticated, within
// AuthTimeSkew. MultiFactor counts amr "mfa" or an acr listed in
// Config.MFAACRValues as several factors. Config.Now is the clock.
//
// Configuration: [Config] is the oidc block of a connector of type oidc in the
// configuration file (brokers.Settings). [Config.Validate] names the keys of
// the block it refuses, for check-config and serve alike, and [New] runs it
// too; [Config.Open] builds the connector from the block and brokers.Deps.
package oidc
