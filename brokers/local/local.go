package local

import (
	"context"

	"github.com/fedhub/fedhub/login"
)

// Account is a local account whose password was verified.
type Account struct {
	ID            string
	Username      string
	Email         string
	EmailVerified bool
	Name          string
}

// Accounts verifies local passwords. It returns login.ErrInvalidCredentials
// or login.ErrAccountDisabled for those cases.
type Accounts interface {
	VerifyLocalPassword(ctx context.Context, username, password string) (Account, error)
}

// Connector logs in local accounts; their subject is the local user ID, which
// the local link of every account with a password points at.
type Connector struct {
	accounts Accounts
}

// New returns the local connector.
func New(accounts Accounts) *Connector { return &Connector{accounts: accounts} }

// Login implements brokers.PasswordConnector.
func (c *Connector) Login(ctx context.Context, username, password string) (login.Identity, error) {
	a, err := c.accounts.VerifyLocalPassword(ctx, username, password)
	if err != nil {
		return login.Identity{}, err
	}
	return login.Identity{Subject: a.ID, Username: a.Username, Email: a.Email,
		EmailVerified: a.EmailVerified, Name: a.Name}, nil
}
