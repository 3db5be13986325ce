package brokertest

import (
	"context"
	"sync"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/login"
)

// PasswordConnector is a fake password connector (as LDAP is): Login proves
// the identity set for a username and password. The zero value knows nobody.
type PasswordConnector struct {
	Upstream // its re-checks after login

	mu    sync.Mutex
	users map[string]account // by username
}

type account struct {
	password string
	id       login.Identity
}

var (
	_ brokers.PasswordConnector = (*PasswordConnector)(nil)
	_ brokers.Refresher         = (*PasswordConnector)(nil)
)

// Set makes username and password sign in as id (its Username defaults to
// username), replacing what was set for username before. Setting several
// usernames with one id.Subject makes them spellings of one directory
// entry, as a directory's own matching (case, spaces) or Active Directory's
// DOMAIN\user and user@domain forms do.
func (c *PasswordConnector) Set(username, password string, id login.Identity) {
	if id.Username == "" {
		id.Username = username
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.users == nil {
		c.users = map[string]account{}
	}
	c.users[username] = account{password: password, id: id}
}

// Login implements brokers.PasswordConnector, as a directory does: an unknown
// username is login.ErrInvalidCredentials, a wrong password a
// *login.CredentialsError naming the entry's subject.
func (c *PasswordConnector) Login(_ context.Context, username, password string, admit func(account string) error) (login.Identity, error) {
	c.mu.Lock()
	a, ok := c.users[username]
	c.mu.Unlock()
	if !ok {
		return login.Identity{}, login.ErrInvalidCredentials
	}
	if admit != nil {
		if err := admit(a.id.Subject); err != nil {
			return login.Identity{}, err
		}
	}
	if a.password != password {
		return login.Identity{}, &login.CredentialsError{Account: a.id.Subject}
	}
	return a.id, nil
}
