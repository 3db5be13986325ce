package oidc

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/metrics"
)

// Config configures one upstream OpenID Provider: the oidc block of a
// connector of type oidc in the configuration file, and what Open adds from
// brokers.Deps.
type Config struct {
	ID string `yaml:"-"`
	// Name is how people know the upstream, used in messages such as
	// "<Name> is not reachable right now"; default ID.
	Name string `yaml:"-"`

	Issuer       string   `yaml:"issuer"` // https; http only for loopback
	ClientID     string   `yaml:"client_id"`
	ClientSecret string   `yaml:"client_secret" config:"secret"`
	AuthMethod   string   `yaml:"auth_method"`  // client_secret_basic (default) | client_secret_post
	Scopes       []string `yaml:"scopes"`       // default openid profile email; openid is always sent
	UseUserinfo  bool     `yaml:"use_userinfo"` // also call the userinfo endpoint and merge its claims
	// Claims maps username|email|name|groups|email_verified to claim names;
	// defaults preferred_username, email, name, groups, email_verified.
	Claims map[string]string `yaml:"claims"`
	// MFAACRValues are acr values by which the upstream says a login used
	// several factors (MultiFactor); amr "mfa" always counts.
	MFAACRValues []string `yaml:"mfa_acr_values"`
	// MaxAgeWithoutUpstream is how long a login holds for the re-checks
	// after it once the upstream can no longer be asked: it gave no refresh
	// token and its access token expired (Refresh); default 24 h.
	MaxAgeWithoutUpstream time.Duration `yaml:"max_age_without_upstream"`

	// HTTPClient makes every request to the upstream; default a client with a
	// 10 s timeout.
	HTTPClient *http.Client `yaml:"-"`
	// Now is the connector's clock (when a flow began, auth_time freshness,
	// ID token expiry); default time.Now.
	Now func() time.Time `yaml:"-"`
}

// claimKeys are the keys of Config.Claims.
var claimKeys = []string{"username", "email", "name", "groups", "email_verified"}

// upstreamTimeout bounds each call to the upstream.
const upstreamTimeout = 10 * time.Second

var _ brokers.Settings = (*Config)(nil)

// Open builds the connector (brokers.Settings); it does not contact the
// upstream.
func (cfg *Config) Open(_ context.Context, d brokers.Deps) (any, error) {
	c := *cfg
	c.ID, c.Name, c.Now = d.ID, d.Name, d.Now
	c.HTTPClient = &http.Client{Timeout: upstreamTimeout, Transport: d.HTTPTransport(metrics.OIDCOperation)}
	return New(c, d.Log)
}

// Validate returns every mistake in cfg's block, each naming its key
// (config.ConnectorConfig). New runs it too.
func (cfg *Config) Validate() error {
	var errs config.Errors
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" ||
		(u.Scheme != "https" && !(u.Scheme == "http" && config.IsLoopback(u.Hostname()))) {
		errs.Add("issuer", "must be the upstream's https issuer URL (http only for loopback), without query or fragment")
	}
	if cfg.ClientID == "" {
		errs.Add("client_id", "is required")
	}
	if cfg.ClientSecret == "" {
		errs.Add("client_secret", "is required")
	}
	if cfg.AuthMethod != "" && cfg.AuthMethod != AuthMethodBasic && cfg.AuthMethod != AuthMethodPost {
		errs.Add("auth_method", "must be %s or %s", AuthMethodBasic, AuthMethodPost)
	}
	for i, s := range cfg.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
			errs.Add(fmt.Sprintf("scopes[%d]", i), "%q is not a scope", s)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Claims)) {
		switch {
		case !slices.Contains(claimKeys, k):
			errs.Add("claims."+k, "must be one of %s", strings.Join(claimKeys, ", "))
		case cfg.Claims[k] == "":
			errs.Add("claims."+k, "must name a claim")
		}
	}
	config.CheckMFAValues(&errs, "mfa_acr_values", cfg.MFAACRValues, "an acr value")
	if cfg.MaxAgeWithoutUpstream < 0 {
		errs.Add("max_age_without_upstream", "must not be negative")
	}
	return errs.Err()
}
