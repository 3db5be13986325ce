// Package passkey owns people's WebAuthn credentials — passkeys and security keys — and the
// WebAuthn ceremonies that register them and log in with them, on top of
// github.com/go-webauthn/webauthn. It renders no HTML: the login dispatcher and the /account
// pages call it and pass the browser's JSON through both ways.
//
// Every ceremony is a Begin and a Finish. Begin returns the options JSON for the browser
// (navigator.credentials.create or .get) and stores the challenge in the database, so that
// any node can finish it. A challenge is bound to the caller's binding (a login transaction
// ID, a session ID; only its hash is stored), lives five minutes and is single-use: Finish
// deletes it when it loads it, whatever the outcome, so a second Finish with the same
// binding — a replayed response included — fails with [ErrChallenge]. A new Begin of the
// same kind with the same binding replaces the earlier challenge.
//
// Finish checks what the WebAuthn specification asks of a relying party: the challenge, the
// origin (one of [Config.Origins]), the RP ID hash, user presence (and user verification
// where required), the signature and the sign counter. A counter that did not grow (unless
// the authenticator keeps none, always 0) marks the credential [Credential.CloneWarning] and
// refuses that login.
//
// The user handle given to authenticators is the user's ID, so a discoverable credential
// says whose it is; a user ID is therefore at most 64 bytes, the limit WebAuthn sets on user
// handles.
package passkey
