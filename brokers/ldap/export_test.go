package ldap

import (
	"context"
	"net"

	"github.com/go-ldap/ldap/v3"
)

// Internals for the tests of package ldap_test.
var (
	OrderSRV   = orderSRV
	FormatGUID = formatGUID
)

// ClassifyBind is what Login returns for the error of a user's bind.
func ClassifyBind(err error) error {
	result, _ := classifyBind(err)
	return result
}

// SetLookupSRV replaces the DNS lookup of SRV records.
func (c *Connector) SetLookupSRV(f func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)) {
	c.lookupSRV = f
}

// Refusal is why the directory no longer lets an entry sign in, or "".
func (c *Connector) Refusal(e *ldap.Entry) string { return c.refusal(e) }
