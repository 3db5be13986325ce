package saml

import (
	"context"
	"fmt"
	"time"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/login"
)

var _ brokers.Refresher = (*Connector)(nil)

// Refresh implements brokers.Refresher. SAML has no way to ask the IdP about
// a person after the login (no refresh, no userinfo; a passive AuthnRequest
// needs the browser), so the login itself holds, for MaxAgeWithoutUpstream
// after the person authenticated at the IdP: then they sign in again, and the
// IdP decides anew. The trade-off: a person disabled at the IdP keeps
// refreshing tokens here for at most that long.
func (c *Connector) Refresh(_ context.Context, id login.Identity, authAt time.Time) (brokers.Rechecked, error) {
	if age := c.now().Sub(authAt); age > c.cfg.MaxAgeWithoutUpstream {
		return brokers.Rechecked{}, fmt.Errorf("%w: the SAML login is %s old, more than max_age_without_upstream (%s)",
			login.ErrUpstreamRefused, age.Round(time.Second), c.cfg.MaxAgeWithoutUpstream)
	}
	return brokers.Rechecked{Upstream: id.Upstream}, nil
}
