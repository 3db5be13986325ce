package brokers

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/fedhub/fedhub/config"
)

// Settings is what a connector package provides to be configured: the type
// of its block in the configuration file (yaml tags, the keys of the block
// named after the connector type), which validates itself and opens the
// connector. The registry (package connectors) maps a type name to it.
type Settings interface {
	config.ConnectorConfig
	// Open builds the connector from the validated settings. It must not
	// contact the upstream (fedhub starts while one is down), nor change the
	// settings: a reload compares them to decide what to rebuild.
	Open(ctx context.Context, d Deps) (any, error)
}

// Deps are what a connector gets at run time besides its settings.
type Deps struct {
	ID     string // the connector's id, in its URLs
	Name   string // how people know the upstream; the id when not configured
	Issuer string // fedhub's issuer URL
	// Store keeps the connector's own records (a SAML SP key), sealed with
	// the operator's keys.
	Store ConnectorStore
	// Built returns the implementation of a connector listed before this
	// one in the file (a Kerberos connector's resolve_with).
	Built func(id string) (any, bool)
	Log   *slog.Logger
	Now   func() time.Time
	// Observe, if set, is told of each call to an upstream that is not HTTP
	// (LDAP binds and searches): the operation, how long it took, and whether
	// the upstream failed.
	Observe func(operation string, d time.Duration, failed bool)
	// Transport, if set, carries a connector's HTTP calls to its upstream,
	// each call named by operation (from its path) for the metrics.
	Transport func(operation func(path string) string) http.RoundTripper
}

// HTTPTransport is Transport for operation, or http.DefaultTransport.
func (d Deps) HTTPTransport(operation func(path string) string) http.RoundTripper {
	if d.Transport == nil {
		return http.DefaultTransport
	}
	return d.Transport(operation)
}
