package ldap

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Config configures one LDAP or Active Directory connector (config.LDAP in the YAML file).
type Config struct {
	// URLs lists the servers in failover order: ldaps://host[:port] or ldap://host[:port]
	// (with StartTLS, or Insecure). SRV instead names a domain whose _ldap._tcp SRV records
	// list them (RFC 2782); the servers found are dialled with ldap:// and need StartTLS or
	// Insecure. Exactly one of the two is set.
	URLs []string
	SRV  string

	StartTLS bool
	// Insecure allows plain ldap:// without StartTLS and turns off certificate verification.
	Insecure bool
	// CAFile is a PEM file of the certificate authorities to trust instead of the system pool.
	CAFile string
	// ServerName is the name the certificates must be valid for; default: each server's host.
	ServerName string

	// BindDN and BindPassword are the service account that searches the directory; both
	// empty searches anonymously.
	BindDN, BindPassword string

	// ActiveDirectory switches the defaults and the username forms to Active Directory's.
	ActiveDirectory bool
	// Domain is the NetBIOS domain accepted in DOMAIN\user (case-insensitive). Without it
	// that form is refused.
	Domain string
	// UPNSuffix is the domain's implicit UPN suffix: user@UPNSuffix also finds an account
	// whose sAMAccountName is user, as Active Directory's own bind does. Any other user@host
	// is looked up by userPrincipalName only.
	UPNSuffix string

	UserBase     string // required
	UserFilter   string // default (objectClass=person); AD (&(objectClass=user)(objectCategory=person))
	UsernameAttr string // default uid; AD sAMAccountName
	SubjectAttr  string // default entryUUID; AD objectGUID
	EmailAttr    string // default mail
	NameAttr     string // default cn; AD displayName

	GroupBase       string // default UserBase
	GroupFilter     string // default (objectClass=groupOfNames); AD (objectClass=group)
	GroupMemberAttr string // default member; memberUid matches the username instead of the DN
	GroupNameAttr   string // default cn

	// Timeout bounds each dial, bind and search; default 10 s.
	Timeout time.Duration
	// PoolSize is the number of service-account connections kept open; default 4.
	PoolSize int
	// Now is the connector's clock (account expiry at re-checks); default time.Now.
	Now func() time.Time
	// Observe, if set, is told of every bind and search: the operation
	// ("bind", "search"), how long it took, and whether the server failed
	// (a wrong password is an answer, not a failure).
	Observe func(operation string, d time.Duration, failed bool)
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

// withDefaults validates cfg and fills in what was left out.
func (cfg Config) withDefaults() (Config, error) {
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

	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	switch {
	case len(cfg.URLs) == 0 && cfg.SRV == "":
		bad("urls or srv is required")
	case len(cfg.URLs) > 0 && cfg.SRV != "":
		bad("urls and srv exclude each other")
	}
	for _, raw := range cfg.URLs {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			bad("url %q: want ldap://host[:port] or ldaps://host[:port]", raw)
			continue
		}
		switch u.Scheme {
		case "ldaps":
			if cfg.StartTLS {
				bad("url %q: start_tls is for ldap:// URLs, ldaps:// is TLS already", raw)
			}
		case "ldap":
			if !cfg.StartTLS && !cfg.Insecure {
				bad("url %q: plain LDAP would send passwords in clear text; use ldaps://, start_tls, or set insecure", raw)
			}
		default:
			bad("url %q: scheme must be ldap or ldaps", raw)
		}
	}
	if cfg.SRV != "" && !cfg.StartTLS && !cfg.Insecure {
		bad("srv: servers found through DNS are dialled with ldap://: set start_tls (or insecure)")
	}
	if cfg.UserBase == "" {
		bad("user_base is required")
	}
	for name, dn := range map[string]string{"user_base": cfg.UserBase, "group_base": cfg.GroupBase, "bind_dn": cfg.BindDN} {
		if dn != "" {
			if _, err := ldap.ParseDN(dn); err != nil {
				bad("%s %q is not a DN: %v", name, dn, err)
			}
		}
	}
	if (cfg.BindDN == "") != (cfg.BindPassword == "") {
		// A DN without a password would be an unauthenticated bind that servers accept.
		bad("bind_dn and bind_password go together (both empty searches anonymously)")
	}
	for name, f := range map[string]*string{"user_filter": &cfg.UserFilter, "group_filter": &cfg.GroupFilter} {
		if !strings.HasPrefix(*f, "(") {
			*f = "(" + *f + ")"
		}
		if _, err := ldap.CompileFilter(*f); err != nil {
			bad("%s %q: %v", name, *f, err)
		}
	}
	for name, a := range map[string]string{
		"username_attribute": cfg.UsernameAttr, "subject_attribute": cfg.SubjectAttr,
		"email_attribute": cfg.EmailAttr, "name_attribute": cfg.NameAttr,
		"group_member_attribute": cfg.GroupMemberAttr, "group_name_attribute": cfg.GroupNameAttr,
	} {
		if !validAttr(a) {
			bad("%s %q is not an attribute name", name, a)
		}
	}
	if cfg.Timeout < 0 {
		bad("timeout must be positive")
	}
	if cfg.PoolSize < 0 {
		bad("pool_size must be positive")
	}
	if strings.ContainsAny(cfg.Domain, `\@ `) {
		bad("domain %q: the NetBIOS name, e.g. EXAMPLE", cfg.Domain)
	}
	cfg.UPNSuffix = strings.TrimPrefix(strings.TrimSpace(cfg.UPNSuffix), "@")
	return cfg, errors.Join(errs...)
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
