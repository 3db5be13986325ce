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

// Login implements brokers.PasswordConnector. The account is the user with a
// password whose username has the same key (usernames.Key) as username.
func (c *Connector) Login(ctx context.Context, username, password string, admit func(account string) error) (login.Identity, error) {
	account, err := c.users.LocalAccount(ctx, username)
	switch {
	case errors.Is(err, linking.ErrNotFound):
		account = "" // VerifyPassword still takes the time of a check
	case err != nil:
		return login.Identity{}, err
	case admit != nil:
		if err := admit(account); err != nil {
			return login.Identity{}, err
		}
	}
	u, err := c.users.VerifyPassword(ctx, username, password)
	switch {
	case errors.Is(err, linking.ErrInvalidCredentials):
		if account == "" {
			return login.Identity{}, login.ErrInvalidCredentials
		}
		return login.Identity{}, &login.CredentialsError{Account: account}
	case errors.Is(err, linking.ErrDisabled):
		return login.Identity{}, login.ErrAccountDisabled
	case errors.Is(err, linking.ErrBusy):
		return login.Identity{}, login.ErrBusy
	case err != nil:
		return login.Identity{}, err
	case u.ID != account:
		// The username changed hands between the two reads: the person tries again.
		return login.Identity{}, login.ErrInvalidCredentials
	}
	return login.Identity{Subject: u.ID, Username: u.Username, Email: u.Email,
		EmailVerified: u.EmailVerified, Name: u.Name}, nil
}
