// Package mfa owns a person's second factors: TOTP keys (RFC 6238, as authenticator apps
// show them) and the recovery codes that stand in for a lost key. It has no pages of its
// own; the login dispatcher and the account pages call it.
//
// What it guarantees:
//   - A TOTP code is accepted for one time step of one factor only once, on every node: the
//     step is recorded by inserting a row that a unique key (factor, step) lets exist only
//     once, so of two nodes checking the same code at the same moment exactly one wins. The
//     code that confirmed a key is spent too, so it cannot be replayed at login.
//   - Codes are checked one step (30 s) either side of now, and only against the user's
//     current factors: the codes of a removed or reset factor are refused.
//   - Recovery codes are random (60 bits each), shown once, stored only as SHA-256 hashes and
//     used up by deleting their row, so each works once.
//   - A malformed code is refused before the database is asked.
//
// What it leaves to its callers (see SECURITY.md, "Second factors and step-up"):
//   - the brute-force limit of the second-factor step (a six-digit code falls to enough
//     guesses), e.g. with package throttle;
//   - a fresh re-authentication before adding or removing a factor, and auditing an admin's
//     Reset and ending that user's sessions;
//   - calling Purge now and then, which bounds the table of spent time steps.
package mfa
