package connectors

import (
	"context"
	"fmt"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/brokers/kerberos"
	"github.com/fedhub/fedhub/brokers/ldap"
	"github.com/fedhub/fedhub/brokers/oidc"
	"github.com/fedhub/fedhub/brokers/saml"
	"github.com/fedhub/fedhub/config"
)

// registry maps a connector type, the value of type: and the key of its
// block, to a new block of it.
var registry = map[string]func() brokers.Settings{
	"kerberos": settings[kerberos.Config],
	"ldap":     settings[ldap.Config],
	"oidc":     settings[oidc.Config],
	"saml":     settings[saml.Config],
}

// settings is a new, empty block of type T.
func settings[T any, P interface {
	*T
	brokers.Settings
}]() brokers.Settings {
	return P(new(T))
}

// Types are the registered connector types, as config reads them.
func Types() config.ConnectorTypes {
	out := config.ConnectorTypes{}
	for name, newSettings := range registry {
		out[name] = func() config.ConnectorConfig { return newSettings() }
	}
	return out
}

// LoadFile reads and validates a configuration file with the registered
// connector types: what check-config and serve both run.
func LoadFile(path string) (*config.Config, error) {
	return config.LoadFile(path, Types())
}

// Open builds the connector c configures, from its validated block.
func Open(ctx context.Context, c config.Connector, d brokers.Deps) (any, error) {
	s, ok := c.Settings.(brokers.Settings)
	if !ok {
		return nil, fmt.Errorf("connector type %q is not registered", c.Type)
	}
	return s.Open(ctx, d)
}
