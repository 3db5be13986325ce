package config

import (
	"time"

	"gopkg.in/yaml.v3"
)

// Connector is one upstream identity provider (or the local accounts).
type Connector struct {
	ID       string   `yaml:"id"`
	Type     string   `yaml:"type"` // a key of ConnectorTypes: ldap | saml | oidc
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

	// Settings is the block named after the type (ldap:, saml:, oidc:…),
	// decoded into the type's own configuration (see ConnectorTypes).
	Settings ConnectorConfig `yaml:"-"`

	misplaced []string // blocks of other connector types, refused by Validate
}

// ConnectorConfig is a connector type's block. Validate returns every
// problem as an Errors of *KeyError whose Key is relative to the block
// ("urls[0]"); the loader prefixes it with the connector's key and adds the
// line. A string field tagged `config:"secret"` must be written as a ${ENV}
// reference.
type ConnectorConfig interface {
	Validate() error
}

// ConnectorReferrer is a block that names other connectors of the file (a
// Kerberos connector's resolve_with): each must be listed before it, with
// one of the types allowed, which Validate checks with the other connectors
// in view.
type ConnectorReferrer interface {
	References() []ConnectorReference
}

// ConnectorReference is one connector a block names: at Key (relative to
// the block), the connector ID, which must be of one of Types.
type ConnectorReference struct {
	Key   string
	ID    string
	Types []string
}

// ConnectorTypes maps a connector type (the value of type:, and the key of
// its block) to a new, empty block of it.
type ConnectorTypes map[string]func() ConnectorConfig

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
