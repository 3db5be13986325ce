package config

import (
	"time"

	"gopkg.in/yaml.v3"
)

// Connector is one upstream identity provider (or the local accounts).
type Connector struct {
	ID       string   `yaml:"id"`
	Type     string   `yaml:"type"` // ldap | saml | oidc | kerberos
	Name     string   `yaml:"name"`
	Label    string   `yaml:"label"` // the login button, e.g. "Login with Corporate AD"
	Icon     string   `yaml:"icon"`  // an image URL shown on the button
	Hidden   bool     `yaml:"hidden"`
	LinkOnly bool     `yaml:"link_only"`
	Enabled  *bool    `yaml:"enabled"` // default true
	Sync     Sync     `yaml:"sync"`
	Mappers  []Mapper `yaml:"mappers"`
	// Groups is what becomes of the upstream groups no group_to_group mapper
	// maps: drop (default) or passthrough, kept as "<id>:<group>".
	Groups string `yaml:"groups"`
	// MultipleIdentities lets one user link several identities of this
	// connector; by default a user has at most one.
	MultipleIdentities bool `yaml:"multiple_identities"`

	// TrustEmail says the upstream verifies the emails it vouches for, so
	// that email_verified from it may count (for link_automatically).
	TrustEmail bool       `yaml:"trust_email"`
	FirstLogin FirstLogin `yaml:"first_login"`

	// MFA is this connector's second-factor policy (see MFAOff…); with
	// TrustUpstreamMFA an upstream's own multi-factor login satisfies it.
	MFA              string `yaml:"mfa"`
	TrustUpstreamMFA bool   `yaml:"trust_upstream_mfa"`

	// After login, an identity is re-checked with its upstream when tokens are
	// refreshed or the SSO session is reused; the upstream's yes holds for
	// RecheckInterval (default DefaultRecheckInterval). UpstreamDown says what
	// an upstream that cannot answer means: fail_closed (default: nothing is
	// issued until it answers) or fail_open (its last yes counts for one more
	// interval, never longer).
	RecheckInterval time.Duration `yaml:"recheck_interval"`
	UpstreamDown    string        `yaml:"upstream_down"`

	LDAP *LDAP `yaml:"ldap"`
	SAML *SAML `yaml:"saml"`
	OIDC *OIDC `yaml:"oidc"`
	// Kerberos is brokers/kerberos.Config, kept here in the file's schema.
	Kerberos *Kerberos `yaml:"kerberos"`
}

// Sync says how a connector keeps its users' profiles up to date. It is
// written either as the mode alone (`sync: force`, the original form) or as a
// mapping (`sync: {mode: force, import: on, period: 6h}`).
type Sync struct {
	// Mode: import (default: the profile is taken at the first login) or force
	// (the mappers update it at every login).
	Mode string `yaml:"mode"`
	// Import (ldap only) runs a directory sync: every entry the user filter
	// finds is imported and updated, and users whose entries are gone or
	// disabled are disabled.
	Import bool `yaml:"import"`
	// Period is how often serve runs the directory sync; 0: only on demand
	// (the CLI, the admin page).
	Period time.Duration `yaml:"period"`

	scalar bool // written as the mode alone: errors name "sync"
}

// MinSyncPeriod bounds how often a directory is walked: a full walk of a big
// directory takes minutes and loads its servers.
const MinSyncPeriod = 5 * time.Minute

// Force says whether the mappers update the profile at every login.
func (s Sync) Force() bool { return s.Mode == "force" }

// UnmarshalYAML reads either form.
func (s *Sync) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = Sync{Mode: n.Value, scalar: true}
		return nil
	}
	type plain Sync // without this method
	return n.Decode((*plain)(s))
}

// acceptsScalar marks Sync for the schema walker: a single value is its short form.
func (*Sync) acceptsScalar() {}

// IsEnabled reports whether the connector may be used at all.
func (c Connector) IsEnabled() bool { return c.Enabled == nil || *c.Enabled }

// FirstLogin says what happens when an upstream identity has no link yet.
type FirstLogin struct {
	OnNew           string   `yaml:"on_new"`            // create (default) | review_then_create | deny
	MatchExistingBy string   `yaml:"match_existing_by"` // none (default) | email | username
	OnMatch         string   `yaml:"on_match"`          // confirm_and_reauthenticate (default) | link_automatically | deny
	RequiredFields  []string `yaml:"required_fields"`   // on the review page: email, name
}

// Mapper turns upstream claims, attributes and groups into local user data.
type Mapper struct {
	Type string `yaml:"type"` // attribute | group_to_role | group_to_group | hardcoded_role | username_template

	Source   string `yaml:"source"`   // attribute: the upstream claim or attribute
	Target   string `yaml:"target"`   // attribute: username | email | name
	Group    string `yaml:"group"`    // group_to_*: the upstream group
	Role     string `yaml:"role"`     // group_to_role, hardcoded_role
	To       string `yaml:"to"`       // group_to_group: the local group
	Template string `yaml:"template"` // username_template, e.g. "{{.Username}}"
}

// LDAP configures an LDAP or Active Directory connector.
type LDAP struct {
	URLs            []string      `yaml:"urls"` // tried in order: ldaps://… or ldap://… (with start_tls)
	SRV             string        `yaml:"srv"`  // a domain whose _ldap._tcp SRV records list the servers
	StartTLS        bool          `yaml:"start_tls"`
	Insecure        bool          `yaml:"insecure"` // plain LDAP, or TLS without verification
	CAFile          string        `yaml:"ca_file"`
	ServerName      string        `yaml:"server_name"`
	BindDN          string        `yaml:"bind_dn"`
	BindPassword    string        `yaml:"bind_password"`
	ActiveDirectory bool          `yaml:"active_directory"`
	Domain          string        `yaml:"domain"`     // AD NetBIOS domain, for DOMAIN\user
	UPNSuffix       string        `yaml:"upn_suffix"` // AD, for user@suffix
	UserBase        string        `yaml:"user_base"`
	UserFilter      string        `yaml:"user_filter"`
	UsernameAttr    string        `yaml:"username_attribute"`
	SubjectAttr     string        `yaml:"subject_attribute"` // default entryUUID, objectGUID on AD
	EmailAttr       string        `yaml:"email_attribute"`
	NameAttr        string        `yaml:"name_attribute"`
	GroupBase       string        `yaml:"group_base"`
	GroupFilter     string        `yaml:"group_filter"`
	GroupMemberAttr string        `yaml:"group_member_attribute"`
	GroupNameAttr   string        `yaml:"group_name_attribute"`
	Timeout         time.Duration `yaml:"timeout"`
	PoolSize        int           `yaml:"pool_size"`
}

// SAML configures a SAML 2.0 connector where fedhub is the service provider.
type SAML struct {
	IDPMetadataURL    string            `yaml:"idp_metadata_url"`
	IDPMetadataFile   string            `yaml:"idp_metadata_file"`
	MetadataRefresh   time.Duration     `yaml:"metadata_refresh"`
	EntityID          string            `yaml:"entity_id"` // default: the metadata URL
	NameIDFormat      string            `yaml:"nameid_format"`
	SignRequests      bool              `yaml:"sign_requests"`
	Binding           string            `yaml:"binding"` // redirect (default) | post
	SPKeyFile         string            `yaml:"sp_key_file"`
	SPCertFile        string            `yaml:"sp_cert_file"`
	AllowIDPInitiated bool              `yaml:"allow_idp_initiated"`
	Attributes        map[string]string `yaml:"attributes"` // username|email|name|groups → attribute name
	// MFAContextClasses are the AuthnContextClassRef values by which the IdP
	// says a login used several factors, e.g.
	// urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract.
	MFAContextClasses []string `yaml:"mfa_context_classes"`
	// MaxAgeWithoutUpstream bounds how long a SAML login keeps refreshing
	// tokens: SAML has no way to ask the IdP again, so after this long
	// (default 24h) the person signs in again.
	MaxAgeWithoutUpstream time.Duration `yaml:"max_age_without_upstream"`
}

// OIDC configures an upstream OpenID Provider.
type OIDC struct {
	Issuer       string            `yaml:"issuer"`
	ClientID     string            `yaml:"client_id"`
	ClientSecret string            `yaml:"client_secret"`
	AuthMethod   string            `yaml:"auth_method"` // client_secret_basic (default) | client_secret_post
	Scopes       []string          `yaml:"scopes"`
	UseUserinfo  bool              `yaml:"use_userinfo"`
	Claims       map[string]string `yaml:"claims"` // username|email|name|groups → claim name
	// MFAACRValues are acr values by which the upstream says a login used
	// several factors; amr "mfa" always counts.
	MFAACRValues []string `yaml:"mfa_acr_values"`
	// MaxAgeWithoutUpstream bounds how long a login keeps refreshing tokens
	// when the upstream gave no refresh token and its access token has
	// expired, so that it cannot be asked (default 24h).
	MaxAgeWithoutUpstream time.Duration `yaml:"max_age_without_upstream"`
}

// Kerberos configures a Kerberos (SPNEGO) connector: see brokers/kerberos.Config,
// which checks it.
type Kerberos struct {
	KeytabFile       string        `yaml:"keytab_file"`
	ServicePrincipal string        `yaml:"service_principal"` // HTTP/<the issuer's host>
	Realm            string        `yaml:"realm"`
	ClockSkew        time.Duration `yaml:"clock_skew"`   // default 5m
	AutoFor          []string      `yaml:"auto_for"`     // CIDRs tried without a click
	ResolveWith      string        `yaml:"resolve_with"` // an ldap connector's id
}

// Re-checks after login (see Connector.RecheckInterval).
const (
	DefaultRecheckInterval = 5 * time.Minute
	UpstreamFailClosed     = "fail_closed"
	UpstreamFailOpen       = "fail_open"
)

// What becomes of upstream groups that no group_to_group mapper maps.
const (
	GroupsDrop        = "drop"        // dropped (the default)
	GroupsPassthrough = "passthrough" // kept as "<connector-id>:<group>"
)
