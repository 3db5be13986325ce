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
	mu    sync.Mutex
	users map[string]account // by username
}

type account struct {
	password string
	id       login.Identity
}

var _ brokers.PasswordConnector = (*PasswordConnector)(nil)

// Set makes username and password sign in as id (its Username defaults to
// username), replacing what was set for username before.
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

// Login implements brokers.PasswordConnector: an unknown username or a wrong
// password is login.ErrInvalidCredentials, as with a real directory.
func (c *PasswordConnector) Login(_ context.Context, username, password string) (login.Identity, error) {
	c.mu.Lock()
	a, ok := c.users[username]
	c.mu.Unlock()
	if !ok || a.password != password {
		return login.Identity{}, login.ErrInvalidCredentials
	}
	return a.id, nil
}
