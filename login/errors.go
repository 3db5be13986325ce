package login

import "errors"

// Errors a connector returns; anything else is logged and shown as a generic failure.
var (
	ErrInvalidCredentials = errors.New("invalid username or password")
	ErrAccountDisabled    = errors.New("account is disabled")
)

// ErrBusy is a password that could not be checked because the process
// already checks as many as it may (linking.ErrBusy): the person tries again
// in a few seconds. Pages answer 503 with Retry-After: BusyRetryAfter; the
// attempt counts for the client's address at the brute-force limiter all the
// same (not for the account: no password was tested).
var ErrBusy = &UserError{Message: "Too many sign-ins at once. Try again in a few seconds."}

// BusyRetryAfter is the Retry-After header (in seconds) of an ErrBusy answer.
const BusyRetryAfter = "2"

// UserError carries a message meant for the person signing in (an expired
// password, a locked account): safe to show, unlike upstream errors.
type UserError struct{ Message string }

func (e *UserError) Error() string { return e.Message }

// Message is what the person is told about err; details stay in the log.
func Message(err error) string {
	var ue *UserError
	switch {
	case errors.As(err, &ue):
		return ue.Message
	case errors.Is(err, ErrInvalidCredentials):
		return "Invalid username or password."
	case errors.Is(err, ErrAccountDisabled):
		return "Your account is disabled. Contact your administrator."
	}
	return "Sign-in is not possible right now. Try again in a moment."
}

// After the login, an identity is re-checked with its upstream (on refresh,
// on SSO reuse). ErrUpstreamRefused is the upstream's no — the entry is gone,
// disabled, locked, expired, or its session there ended — and ends what came
// through the identity; ErrUpstreamUnreachable is an upstream that could not
// answer, which refuses only the request at hand (fail closed).
var (
	ErrUpstreamRefused     = errors.New("the upstream no longer vouches for the identity")
	ErrUpstreamUnreachable = errors.New("the upstream could not be asked about the identity")
)

// Errors of a sign-in that cannot go on.
var (
	ErrNotFound   = errors.New("sign-in not found") // or started in another browser
	ErrExpired    = errors.New("sign-in expired")
	ErrDone       = errors.New("sign-in already completed")
	ErrStepDone   = errors.New("sign-in step already completed") // the transaction moved on meanwhile
	ErrAnswerUsed = errors.New("upstream answer already used")
)

// CredentialsError is ErrInvalidCredentials (errors.Is) from a connector that
// found the account the username names: the password was wrong for Account,
// the account's subject at the connector (what Identity.Subject would have
// been). A connector that found no account returns ErrInvalidCredentials
// itself. The brute-force limiter counts failures per account, however the
// username was spelled.
type CredentialsError struct{ Account string }

func (e *CredentialsError) Error() string { return ErrInvalidCredentials.Error() }

// Unwrap makes a CredentialsError an ErrInvalidCredentials.
func (e *CredentialsError) Unwrap() error { return ErrInvalidCredentials }

// AccountOf is the account of a *CredentialsError in err, or "".
func AccountOf(err error) string {
	var ce *CredentialsError
	if errors.As(err, &ce) {
		return ce.Account
	}
	return ""
}
