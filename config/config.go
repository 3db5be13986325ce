package config

import (
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Config is the whole configuration file.
type Config struct {
	Issuer string `yaml:"issuer"`
	Listen string `yaml:"listen"`
	// TrustedProxies are the load balancers (CIDRs) whose X-Forwarded-For
	// fedhub believes; without them it sees only the connecting address.
	TrustedProxies []string   `yaml:"trusted_proxies"`
	Storage        Storage    `yaml:"storage"`
	Signing        Signing    `yaml:"signing"`
	Tokens         Tokens     `yaml:"tokens"`
	BruteForce     BruteForce `yaml:"brute_force"`
	Admin          Admin      `yaml:"admin"`
	Clients        []Client   `yaml:"clients"`
	// ClientScopes are named scopes whose mappers put claims into tokens;
	// APIs are the resource servers tokens may be meant for (aud).
	ClientScopes []ClientScope `yaml:"client_scopes"`
	APIs         []API         `yaml:"apis"`
	Users        []User        `yaml:"users"`
	Groups       []Group       `yaml:"groups"`
	Roles        []Role        `yaml:"roles"`
	Connectors   []Connector   `yaml:"connectors"`
	Passkeys     Passkeys      `yaml:"passkeys"`
	Secrets      Secrets       `yaml:"secrets"`
	Management   Management    `yaml:"management"`
	Log          Log           `yaml:"log"`
	TLS          TLS           `yaml:"tls"`
	Branding     Branding      `yaml:"branding"`

	lines          map[string]int // key path → line, for errors found after parsing
	connectorTypes []string       // the connector types it may configure (Parse), sorted
}

// Management configures the listener of /healthz, /readyz and /metrics.
type Management struct {
	// Listen is its own address, private by default; the same address as
	// listen serves them on the public listener, which only an operator who
	// wants that should configure.
	Listen string `yaml:"listen"`
	// Profiling serves Go's runtime profiles (net/http/pprof) under
	// /debug/pprof/ on this listener: off by default, and never on the
	// public listener, since a CPU profile costs what it samples.
	Profiling bool `yaml:"profiling"`
}

// TLS makes the public listener serve https itself (TLS 1.2 and newer), from
// files that may be replaced while fedhub runs. Without it fedhub serves http,
// for a reverse proxy in front to terminate TLS.
type TLS struct {
	CertFile string `yaml:"cert_file"` // PEM: the certificate, then its chain
	KeyFile  string `yaml:"key_file"`  // PEM: its private key
}

// Branding makes the pages an organisation's own without forking.
type Branding struct {
	ProductName  string `yaml:"product_name"`  // in titles and headings; default fedhub
	ThemeDir     string `yaml:"theme_dir"`     // html/ pages that replace the built-in ones, static/ files under /static/
	PrimaryColor string `yaml:"primary_color"` // the buttons' colour, #rgb or #rrggbb
	// DefaultLocale is the page language when neither the login's ui_locales nor
	// Accept-Language names one there is a catalog for (built in: en, de); default en
	DefaultLocale string `yaml:"default_locale"`
}

// Log configures fedhub's log on standard error.
type Log struct {
	Format string `yaml:"format"` // text | json
	Level  string `yaml:"level"`  // debug | info | warn | error
}

// Passkeys configures WebAuthn. Passkeys need a domain name in the issuer
// URL (their RP ID): with an IP address they are not offered.
type Passkeys struct {
	// Passwordless offers "Sign in with a passkey" on the login page: a
	// discoverable passkey of a local account, with user verification, is
	// both factors at once.
	Passwordless bool `yaml:"passwordless"`
}

// Secrets holds the operator's keys that seal the secrets fedhub keeps in
// the database (signing keys, TOTP keys, SAML SP keys). Without a key they
// are stored as they are.
type Secrets struct {
	Key          string   `yaml:"key"`           // the key that seals; only as a ${ENV} reference
	PreviousKeys []string `yaml:"previous_keys"` // keys that still open, during a rotation; each a ${ENV} reference
}

// Storage selects the database.
type Storage struct {
	Driver string `yaml:"driver"` // sqlite | postgres
	DSN    string `yaml:"dsn"`    // a file path for sqlite, a DSN or URL for postgres

	// The connection pool; zero keeps the driver's default (store.Open):
	// PostgreSQL 32 open, SQLite 8; as many kept idle as may be open, so
	// steady load reuses its connections instead of opening new ones.
	MaxOpenConns    int           `yaml:"max_open_conns"`
	MaxIdleConns    int           `yaml:"max_idle_conns"`
	ConnMaxLifetime time.Duration `yaml:"conn_max_lifetime"`  // default 1h
	ConnMaxIdleTime time.Duration `yaml:"conn_max_idle_time"` // default 5m
}

// Signing configures the issuer's signing keys.
type Signing struct {
	Algorithm      string        `yaml:"algorithm"`       // RS256 | ES256 | EdDSA
	RotationPeriod time.Duration `yaml:"rotation_period"` // a new key after this long
}

// Tokens holds the lifetimes of everything the issuer hands out.
type Tokens struct {
	AccessTTL  time.Duration `yaml:"access_ttl"`
	IDTTL      time.Duration `yaml:"id_ttl"`
	RefreshTTL time.Duration `yaml:"refresh_ttl"`
	CodeTTL    time.Duration `yaml:"code_ttl"`
	SSOIdle    time.Duration `yaml:"sso_idle"`
	SSOMax     time.Duration `yaml:"sso_max"`
}

// BruteForce configures failure counting on password forms and the password grant.
type BruteForce struct {
	FailureFactor int           `yaml:"failure_factor"` // failures before the first wait
	WaitIncrement time.Duration `yaml:"wait_increment"`
	MaxWait       time.Duration `yaml:"max_wait"`
}

// Admin configures the admin pages.
type Admin struct {
	FreshLoginAge time.Duration `yaml:"fresh_login_age"` // destructive actions need a login younger than this
	SessionTTL    time.Duration `yaml:"session_ttl"`
}

// Client is an OAuth client (a relying party) of fedhub's issuer.
type Client struct {
	ID         string `yaml:"id"`
	Name       string `yaml:"name"`
	Secret     string `yaml:"secret"`      // only as a ${ENV} reference
	SecretHash string `yaml:"secret_hash"` // sha256:<hex>, see HashClientSecret
	Public     bool   `yaml:"public"`
	// AuthMethod is how the client authenticates at the token, introspection
	// and revocation endpoints: "" (client_secret_basic or client_secret_post,
	// with its secret), one of those two alone, private_key_jwt (a JWT signed
	// with one of its keys: JWKS or JWKSURI) or none (public clients).
	AuthMethod             string         `yaml:"token_endpoint_auth_method"`
	JWKS                   map[string]any `yaml:"jwks"`     // its public keys, a JWK Set written in YAML or JSON
	JWKSURI                string         `yaml:"jwks_uri"` // or where it publishes them (https)
	RedirectURIs           []string       `yaml:"redirect_uris"`
	PostLogoutRedirectURIs []string       `yaml:"post_logout_redirect_uris"`
	// BackchannelLogoutURI receives a signed logout token whenever an SSO
	// session this client got tokens in ends (OpenID Connect Back-Channel
	// Logout 1.0).
	BackchannelLogoutURI string `yaml:"backchannel_logout_uri"`
	// ExchangeAudiences are the APIs (audiences) this client may exchange a
	// user's access token for (grant type token exchange).
	ExchangeAudiences []string `yaml:"exchange_audiences"`
	GrantTypes        []string `yaml:"grant_types"`
	Scopes            []string `yaml:"scopes"` // scopes beyond OpenID Connect's that it may get, e.g. fedhub:admin
	// DefaultScopes release their claims in every token of this client;
	// OptionalScopes when the request asks for them. Unset: DefaultScopes
	// and OptionalScopes of this package.
	DefaultScopes  []string `yaml:"default_scopes"`
	OptionalScopes []string `yaml:"optional_scopes"`
	// APIs are the APIs (their IDs) this client may get access tokens for.
	APIs []string `yaml:"apis"`
	MFA  string   `yaml:"mfa"` // this application's second-factor policy (see MFAOff…)
	// ThirdParty: an application not run by the organisation; people are
	// asked to allow it the scopes it asks for (remembered, revocable at
	// /account).
	ThirdParty bool `yaml:"third_party"`
}

// Client authentication methods (token_endpoint_auth_method).
const (
	AuthSecretBasic = "client_secret_basic"
	AuthSecretPost  = "client_secret_post"
	AuthPrivateKey  = "private_key_jwt"
	AuthNone        = "none"
)

// Second-factor policies, of a connector, a client or (set by an admin) a
// user. The strictest of the connector's and the client's applies; a user's
// own policy, when an admin set one, replaces both.
const (
	MFAOff      = "off"      // never asked, even when the person has a factor
	MFAOptional = "optional" // asked when the person has a factor (the default)
	MFARequired = "required" // asked; a person without one enrols during the sign-in
)

// MFAPolicies are the valid policies ("" is the default, optional).
var MFAPolicies = []string{"", MFAOff, MFAOptional, MFARequired}

// User is a bootstrap user, created when missing and never overwritten.
type User struct {
	Username      string   `yaml:"username"`
	Email         string   `yaml:"email"`
	EmailVerified bool     `yaml:"email_verified"`
	Name          string   `yaml:"name"`
	Password      string   `yaml:"password"`      // only as a ${ENV} reference
	PasswordHash  string   `yaml:"password_hash"` // $argon2id$…
	Roles         []string `yaml:"roles"`
	Groups        []string `yaml:"groups"`
}

// Group is a group definition: its members get its roles and its ancestors'
// roles. Users join it through users[].groups, upstream mappers, directory
// syncs or the admin API.
type Group struct {
	Name   string   `yaml:"name"`
	Parent string   `yaml:"parent"` // the group it nests under; "" at the top
	Roles  []string `yaml:"roles"`  // defined roles (roles[])
}

// Role is a role definition; Includes make it a composite: whoever has it
// has the included roles too.
type Role struct {
	Name        string   `yaml:"name"`
	Description string   `yaml:"description"`
	Includes    []string `yaml:"includes"`
}

// Grant types a client may be allowed.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	GrantPassword          = "password"
	// GrantTokenExchange (RFC 8693): a service exchanges a user's access
	// token for one meant for another API (exchange_audiences).
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	// GrantDeviceCode (RFC 8628): a CLI or device shows a code that the
	// person approves at /device in a browser.
	GrantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"
)

// Defaults are the values of every key the file leaves out.
func Defaults() Config {
	return Config{
		Listen:  "127.0.0.1:8080",
		Storage: Storage{Driver: "sqlite", DSN: "fedhub.db"},
		Signing: Signing{Algorithm: "RS256", RotationPeriod: 30 * 24 * time.Hour},
		Tokens: Tokens{
			AccessTTL:  10 * time.Minute,
			IDTTL:      10 * time.Minute,
			RefreshTTL: 30 * 24 * time.Hour,
			CodeTTL:    60 * time.Second,
			SSOIdle:    30 * time.Minute,
			SSOMax:     10 * time.Hour,
		},
		BruteForce: BruteForce{FailureFactor: 30, WaitIncrement: time.Minute, MaxWait: 15 * time.Minute},
		Admin:      Admin{FreshLoginAge: 5 * time.Minute, SessionTTL: 8 * time.Hour},
		Management: Management{Listen: "127.0.0.1:9000"},
		Log:        Log{Format: "text", Level: "info"},
	}
}

// SlogLevel is the configured level as log/slog's.
func (l Log) SlogLevel() (slog.Level, error) {
	var level slog.Level
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, l.Level) {
		return level, fmt.Errorf("unknown log level %q", l.Level)
	}
	return level, level.UnmarshalText([]byte(l.Level))
}
