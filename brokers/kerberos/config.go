package kerberos

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/config"
)

// Config configures one Kerberos connector (`type: kerberos`, the block
// `kerberos:` of a connector in the YAML file).
type Config struct {
	// KeytabFile holds the keys of ServicePrincipal (samba-tool domain
	// exportkeytab, ktpass, ktutil).
	KeytabFile string `yaml:"keytab_file"`
	// ServicePrincipal is the SPN browsers ask tickets for: HTTP/ and the host
	// name in the issuer URL, e.g. HTTP/sso.example.com.
	ServicePrincipal string `yaml:"service_principal"`
	// Realm is the only realm whose tickets and clients are accepted.
	Realm string `yaml:"realm"`
	// ClockSkew is the largest difference allowed between fedhub's clock and
	// the client's and KDC's; default 5m.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// AutoFor lists the client networks (CIDRs) whose browsers are asked for
	// a ticket as soon as the login page opens; others only from the button.
	AutoFor []string `yaml:"auto_for"`
	// ResolveWith names an Active Directory (ldap) connector whose directory
	// finds the principal's account: the identity is then that connector's.
	ResolveWith string `yaml:"resolve_with"`
}

// DefaultClockSkew is Kerberos' customary clock skew.
const DefaultClockSkew = 5 * time.Minute

var (
	_ brokers.Settings         = (*Config)(nil)
	_ config.ConnectorReferrer = (*Config)(nil)
)

// References names the connector resolve_with needs: an Active Directory
// one (type ldap), listed before this one, as config checks.
func (c *Config) References() []config.ConnectorReference {
	if c.ResolveWith == "" {
		return nil
	}
	return []config.ConnectorReference{{Key: "resolve_with", ID: c.ResolveWith, Types: []string{"ldap"}}}
}

// Validate returns every mistake in c, each naming its key in the kerberos
// block (config.ConnectorConfig). New runs it too.
func (c *Config) Validate() error {
	var errs config.Errors
	if c.KeytabFile == "" {
		errs.Add("keytab_file", "is required")
	}
	if c.ServicePrincipal == "" {
		errs.Add("service_principal", "is required")
	} else if svc, host, ok := strings.Cut(c.ServicePrincipal, "/"); !ok || svc == "" || host == "" || strings.Contains(host, "@") {
		errs.Add("service_principal", "must be service/host without a realm, e.g. HTTP/sso.example.com, not %q", c.ServicePrincipal)
	}
	if c.Realm == "" {
		errs.Add("realm", "is required")
	}
	if c.ClockSkew < 0 {
		errs.Add("clock_skew", "must not be negative")
	}
	if _, err := c.networks(); err != nil {
		errs.Add("auto_for", "%v", err)
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// Open builds the connector (brokers.Settings): its keytab is read now, and
// resolve_with must name an Active Directory connector listed before it.
func (c *Config) Open(_ context.Context, d brokers.Deps) (any, error) {
	o := Options{Replays: d.Store, Now: d.Now, Log: d.Log}
	if c.ResolveWith != "" {
		var impl any
		ok := d.Built != nil
		if ok {
			impl, ok = d.Built(c.ResolveWith)
		}
		if o.Resolver, ok = impl.(Resolver); !ok {
			return nil, fmt.Errorf("kerberos: resolve_with: %q is not an ldap connector listed before this one", c.ResolveWith)
		}
	}
	return New(*c, o)
}

// skew is the clock skew in force.
func (c Config) skew() time.Duration {
	if c.ClockSkew == 0 {
		return DefaultClockSkew
	}
	return c.ClockSkew
}

// networks parses AutoFor.
func (c Config) networks() ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(c.AutoFor))
	for _, s := range c.AutoFor {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR such as 10.0.0.0/8", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
