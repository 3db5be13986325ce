package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/config"
)

// Config configures one LDAP or Active Directory connector: the ldap block
// of a connector of type ldap in the configuration file.
type Config struct {
	// URLs lists the servers in failover order: ldaps://host[:port] or ldap://host[:port]
	// (with StartTLS, or Insecure). SRV instead names a domain whose _ldap._tcp SRV records
	// list them (RFC 2782); the servers found are dialled with ldap:// and need StartTLS or
	// Insecure. Exactly one of the two is set.
	URLs []string `yaml:"urls"`
	SRV  string   `yaml:"srv"`

	StartTLS bool `yaml:"start_tls"`
	// Insecure allows plain ldap:// without StartTLS and turns off certificate verification.
	Insecure bool `yaml:"insecure"`
	// CAFile is a PEM file of the certificate authorities to trust instead of the system pool.
	CAFile string `yaml:"ca_file"`
	// ServerName is the name the certificates must be valid for; default: each server's host.
	ServerName string `yaml:"server_name"`

	// BindDN and BindPassword are the service account that searches the directory; both
	// empty searches anonymously.
	BindDN       string `yaml:"bind_dn"`
	BindPassword string `yaml:"bind_password" config:"secret"`

	// ActiveDirectory switches the defaults and the username forms to Active Directory's.
	ActiveDirectory bool `yaml:"active_directory"`
	// Domain is the NetBIOS domain accepted in DOMAIN\user (case-insensitive). Without it
	// that form is refused.
	Domain string `yaml:"domain"`
	// UPNSuffix is the domain's implicit UPN suffix: user@UPNSuffix also finds an account
	// whose sAMAccountName is user, as Active Directory's own bind does. Any other user@host
	// is looked up by userPrincipalName only.
	UPNSuffix string `yaml:"upn_suffix"`

	UserBase     string `yaml:"user_base"`          // required
	UserFilter   string `yaml:"user_filter"`        // default (objectClass=person); AD (&(objectClass=user)(objectCategory=person))
	UsernameAttr string `yaml:"username_attribute"` // default uid; AD sAMAccountName
	SubjectAttr  string `yaml:"subject_attribute"`  // default entryUUID; AD objectGUID
	EmailAttr    string `yaml:"email_attribute"`    // default mail
	NameAttr     string `yaml:"name_attribute"`     // default cn; AD displayName

	GroupBase       string `yaml:"group_base"`             // default UserBase
	GroupFilter     string `yaml:"group_filter"`           // default (objectClass=groupOfNames); AD (objectClass=group)
	GroupMemberAttr string `yaml:"group_member_attribute"` // default member; memberUid matches the username instead of the DN
	GroupNameAttr   string `yaml:"group_name_attribute"`   // default cn

	// Timeout bounds each dial, bind and search; default 10 s.
	Timeout time.Duration `yaml:"timeout"`
	// PoolSize is the number of service-account connections kept open; default 4.
	PoolSize int `yaml:"pool_size"`
	// Now is the connector's clock (account expiry at re-checks); default time.Now.
	Now func() time.Time `yaml:"-"`
	// Observe, if set, is told of every bind and search: the operation
	// ("bind", "search"), how long it took, and whether the server failed
	// (a wrong password is an answer, not a failure).
	Observe func(operation string, d time.Duration, failed bool) `yaml:"-"`
}

var _ brokers.Settings = (*Config)(nil)

// Open builds the connector (brokers.Settings); it does not connect.
func (cfg *Config) Open(_ context.Context, d brokers.Deps) (any, error) {
	c := *cfg
	c.Now, c.Observe = d.Now, d.Observe
	return New(c, d.Log)
}

const (
	defaultTimeout  = 10 * time.Second
	defaultPoolSize = 4
	// adMatchingRuleInChain is LDAP_MATCHING_RULE_IN_CHAIN: membership through nested groups.
	adMatchingRuleInChain = "1.2.840.113556.1.4.1941"
	// adNotDisabled leaves out accounts with ACCOUNTDISABLE (bit 2) in userAccountControl
	// (LDAP_MATCHING_RULE_BIT_AND).
	adNotDisabled = "(!(userAccountControl:1.2.840.113556.1.4.803:=2))"
)

// withDefaults fills in what was left out of a valid cfg.
func (cfg Config) withDefaults() Config {
	def := func(v *string, ldapDefault, adDefault string) {
		*v = strings.TrimSpace(*v)
		if *v == "" {
			*v = ldapDefault
			if cfg.ActiveDirectory {
				*v = adDefault
			}
		}
	}
	def(&cfg.UserFilter, "(objectClass=person)", "(&(objectClass=user)(objectCategory=person))")
	def(&cfg.UsernameAttr, "uid", "sAMAccountName")
	def(&cfg.SubjectAttr, "entryUUID", "objectGUID")
	def(&cfg.EmailAttr, "mail", "mail")
	def(&cfg.NameAttr, "cn", "displayName")
	def(&cfg.GroupFilter, "(objectClass=groupOfNames)", "(objectClass=group)")
	def(&cfg.GroupMemberAttr, "member", "member")
	def(&cfg.GroupNameAttr, "cn", "cn")
	cfg.UserFilter, cfg.GroupFilter = parenthesized(cfg.UserFilter), parenthesized(cfg.GroupFilter)
	cfg.UserBase = strings.TrimSpace(cfg.UserBase)
	cfg.GroupBase = strings.TrimSpace(cfg.GroupBase)
	if cfg.GroupBase == "" {
		cfg.GroupBase = cfg.UserBase
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = defaultPoolSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.UPNSuffix = strings.TrimPrefix(strings.TrimSpace(cfg.UPNSuffix), "@")
	return cfg
}

// parenthesized is a filter as LDAP wants it: "objectClass=person" may be
// written without its parentheses.
func parenthesized(filter string) string {
	if filter != "" && !strings.HasPrefix(filter, "(") {
		return "(" + filter + ")"
	}
	return filter
}

// Validate returns every mistake in cfg, each naming its key in the ldap
// block (config.ConnectorConfig). New runs it too.
func (cfg *Config) Validate() error {
	var errs config.Errors
	switch {
	case len(cfg.URLs) == 0 && cfg.SRV == "":
		errs.Add("urls", "give the servers (urls) or a domain to discover them from (srv)")
	case len(cfg.URLs) > 0 && cfg.SRV != "":
		errs.Add("srv", "give either urls or srv, not both")
	}
	for i, raw := range cfg.URLs {
		key := fmt.Sprintf("urls[%d]", i)
		u, err := url.Parse(raw)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "ldap" && u.Scheme != "ldaps") ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil:
			errs.Add(key, "must be ldap://host[:port] or ldaps://host[:port]: no other scheme, no user, path or query")
		case u.Scheme == "ldap" && !cfg.StartTLS && !cfg.Insecure:
			errs.Add(key, "plain LDAP sends passwords in clear: use ldaps://, start_tls: true, or set insecure: true")
		case u.Scheme == "ldaps" && cfg.StartTLS:
			errs.Add("start_tls", "StartTLS is for ldap:// URLs; ldaps:// is already TLS")
		}
	}
	if cfg.SRV != "" && !cfg.StartTLS && !cfg.Insecure {
		errs.Add("srv", "servers found through DNS are dialled with ldap://: set start_tls (or insecure)")
	}
	switch {
	case cfg.BindDN != "" && cfg.BindPassword == "":
		// A DN without a password would be an unauthenticated bind that servers accept.
		errs.Add("bind_password", "is required with bind_dn (both empty searches anonymously)")
	case cfg.BindDN == "" && cfg.BindPassword != "":
		errs.Add("bind_dn", "is required with bind_password (both empty searches anonymously)")
	}
	if strings.TrimSpace(cfg.UserBase) == "" {
		errs.Add("user_base", "is required: where to search for users, e.g. ou=people,dc=example,dc=com")
	}
	for _, f := range []struct{ key, dn string }{
		{"user_base", cfg.UserBase}, {"group_base", cfg.GroupBase}, {"bind_dn", cfg.BindDN},
	} {
		if dn := strings.TrimSpace(f.dn); dn != "" {
			if _, err := ldap.ParseDN(dn); err != nil {
				errs.Add(f.key, "%q is not a DN: %v", dn, err)
			}
		}
	}
	for _, f := range []struct{ key, filter string }{{"user_filter", cfg.UserFilter}, {"group_filter", cfg.GroupFilter}} {
		if filter := parenthesized(strings.TrimSpace(f.filter)); filter != "" {
			if _, err := ldap.CompileFilter(filter); err != nil {
				errs.Add(f.key, "%q is not an LDAP filter: %v", filter, err)
			}
		}
	}
	for _, f := range []struct{ key, attr string }{
		{"username_attribute", cfg.UsernameAttr}, {"subject_attribute", cfg.SubjectAttr},
		{"email_attribute", cfg.EmailAttr}, {"name_attribute", cfg.NameAttr},
		{"group_member_attribute", cfg.GroupMemberAttr}, {"group_name_attribute", cfg.GroupNameAttr},
	} {
		if a := strings.TrimSpace(f.attr); a != "" && !validAttr(a) {
			errs.Add(f.key, "%q is not an attribute name", a)
		}
	}
	if cfg.Timeout < 0 {
		errs.Add("timeout", "must not be negative")
	}
	if cfg.PoolSize < 0 || cfg.PoolSize > 100 {
		errs.Add("pool_size", "must be between 0 (default) and 100")
	}
	if strings.ContainsAny(cfg.Domain, `\@ `) {
		errs.Add("domain", "%q: the NetBIOS name, e.g. EXAMPLE", cfg.Domain)
	}
	return errs.Err()
}

// validAttr accepts attribute descriptions (RFC 4512 §2.5): a name or an OID, with options.
func validAttr(a string) bool {
	if a == "" {
		return false
	}
	for _, r := range a {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == ';') {
			return false
		}
	}
	return true
}

// baseTLS builds the TLS settings shared by every server; ServerName is set per server.
func (cfg Config) baseTLS() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.Insecure}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// tlsFor returns the TLS settings for the server of rawURL.
func (c *Connector) tlsFor(rawURL string) *tls.Config {
	tc := c.tls.Clone()
	tc.ServerName = c.cfg.ServerName
	if tc.ServerName == "" {
		if u, err := url.Parse(rawURL); err == nil {
			tc.ServerName = u.Hostname()
		}
	}
	return tc
}
