package brokers

import (
	"context"
	"errors"
)

// Identity is what a connector proved about a person.
type Identity struct {
	Connector     string
	Subject       string // the upstream's stable subject; email is never an identifier
	Username      string
	Email         string
	EmailVerified bool
	Name          string
	Groups        []string
	Raw           map[string]any // raw claims or attributes, for mappers
}

// PasswordConnector checks a username and password (local accounts, LDAP).
type PasswordConnector interface {
	Login(ctx context.Context, username, password string) (Identity, error)
}

// Errors a connector returns; anything else is logged and shown as a generic failure.
var (
	ErrInvalidCredentials = errors.New("invalid username or password")
	ErrAccountDisabled    = errors.New("account is disabled")
)

// UserError carries a message meant for the person signing in (an expired
// password, a locked account): safe to show, unlike upstream errors.
type UserError struct{ Message string }

func (e *UserError) Error() string { return e.Message }

// Connector is one configured upstream as the login page shows it.
type Connector struct {
	ID     string
	Label  string // the button or form heading, e.g. "Login with Corporate AD"
	Hidden bool   // reachable only through idp_hint
	Impl   any    // implements PasswordConnector (and later the redirect interfaces)
}
