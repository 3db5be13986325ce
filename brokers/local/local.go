package local

import (
	"context"
	"errors"

	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
)

// Connector logs in local accounts; their subject is the local user ID, which
// the local link of every account with a password points at.
type Connector struct {
	users *linking.Service
}

// New returns the local connector over fedhub's users.
func New(users *linking.Service) *Connector { return &Connector{users: users} }

// Login implements brokers.PasswordConnector.
func (c *Connector) Login(ctx context.Context, username, password string) (login.Identity, error) {
	u, err := c.users.VerifyPassword(ctx, username, password)
	switch {
	case errors.Is(err, linking.ErrInvalidCredentials):
		return login.Identity{}, login.ErrInvalidCredentials
	case errors.Is(err, linking.ErrDisabled):
		return login.Identity{}, login.ErrAccountDisabled
	case errors.Is(err, linking.ErrBusy):
		return login.Identity{}, login.ErrBusy
	case err != nil:
		return login.Identity{}, err
	}
	return login.Identity{Subject: u.ID, Username: u.Username, Email: u.Email,
		EmailVerified: u.EmailVerified, Name: u.Name}, nil
}
