package ldap

import (
	"context"
	"net"
)

// Internals for the tests of package ldap_test.
var (
	OrderSRV   = orderSRV
	FormatGUID = formatGUID
)

// ClassifyBind is what Login returns for the error of a user's bind.
func ClassifyBind(err error) error {
	result, _, _ := classifyBind(err)
	return result
}

// SetLookupSRV replaces the DNS lookup of SRV records.
func (c *Connector) SetLookupSRV(f func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)) {
	c.lookupSRV = f
}
