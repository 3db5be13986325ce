// Package login holds what every step of a sign-in shares: the upstream
// Identity a connector proves, the errors a connector returns and the message a
// person may be shown, the Authentication handed to the issuer, and the
// Transaction — the one record of one sign-in, from the application's request
// to the code — with its typed Step and the one place that finds a
// transaction by a hashed token, checks the browser and the expiry, and moves
// it on exactly once.
//
// It is a leaf: it imports no other fedhub package but secret, so the issuer,
// the broker and the first-login steps all speak its types without adapters.
package login
