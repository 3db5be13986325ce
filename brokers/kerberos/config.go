package kerberos

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
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

// Validate checks c; its errors name the YAML key at fault.
func (c Config) Validate() error {
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.KeytabFile == "" {
		fail("keytab_file", "is required")
	}
	if c.ServicePrincipal == "" {
		fail("service_principal", "is required")
	} else if svc, host, ok := strings.Cut(c.ServicePrincipal, "/"); !ok || svc == "" || host == "" || strings.Contains(host, "@") {
		fail("service_principal", "must be service/host without a realm, e.g. HTTP/sso.example.com, not %q", c.ServicePrincipal)
	}
	if c.Realm == "" {
		fail("realm", "is required")
	}
	if c.ClockSkew < 0 {
		fail("clock_skew", "must not be negative")
	}
	if _, err := c.networks(); err != nil {
		fail("auto_for", "%v", err)
	}
	return errors.Join(errs...)
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
