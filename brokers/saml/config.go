package saml

import (
	"context"
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

// Config configures one SAML connector: the saml block of a connector of
// type saml in the configuration file, and what Open adds from brokers.Deps.
type Config struct {
	ID      string `yaml:"-"` // connector ID
	BaseURL string `yaml:"-"` // fedhub's issuer URL

	// Exactly one of IDPMetadataURL (https; http only for loopback) and
	// IDPMetadataFile. Metadata from a URL is loaded again every
	// MetadataRefresh (default 1h).
	IDPMetadataURL  string        `yaml:"idp_metadata_url"`
	IDPMetadataFile string        `yaml:"idp_metadata_file"`
	MetadataRefresh time.Duration `yaml:"metadata_refresh"`

	EntityID     string `yaml:"entity_id"`     // default: BaseURL + "/broker/" + ID + "/saml/metadata"
	NameIDFormat string `yaml:"nameid_format"` // default persistent

	SignRequests bool   `yaml:"sign_requests"`
	Binding      string `yaml:"binding"` // "redirect" (default) | "post"

	// Empty: generated once, shared through the store.
	SPKeyFile  string `yaml:"sp_key_file"`
	SPCertFile string `yaml:"sp_cert_file"`

	AllowIDPInitiated bool `yaml:"allow_idp_initiated"`

	// Attributes maps username | email | name | groups | subject |
	// email_verified to a SAML attribute Name or FriendlyName (see the
	// package documentation for the defaults).
	Attributes map[string]string `yaml:"attributes"`

	// MFAContextClasses are the AuthnContextClassRef values by which the IdP
	// says a login used several factors (MultiFactor), e.g.
	// urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract.
	MFAContextClasses []string `yaml:"mfa_context_classes"`

	// MaxAgeWithoutUpstream is how long a login holds for the re-checks
	// after it (Refresh): SAML cannot ask the IdP again; default 24 h.
	MaxAgeWithoutUpstream time.Duration `yaml:"max_age_without_upstream"`

	// Now is the clock for when a flow began; default crewjam's saml.TimeNow,
	// which crewjam's own checks (IssueInstant, NotOnOrAfter) use.
	Now func() time.Time `yaml:"-"`

	// Transport carries the metadata fetches; default http.DefaultTransport.
	Transport http.RoundTripper `yaml:"-"`
}

var _ brokers.Settings = (*Config)(nil)

// Open builds the connector (brokers.Settings). Metadata from a file is read
// now, from a URL on first use.
func (cfg *Config) Open(ctx context.Context, d brokers.Deps) (any, error) {
	c := *cfg
	c.ID, c.BaseURL, c.Transport = d.ID, d.Issuer, d.HTTPTransport(metrics.Metadata)
	return New(ctx, c, d.Store, d.Log)
}

// Validate returns every mistake in cfg's block, each naming its key
// (config.ConnectorConfig). New runs it too.
func (cfg *Config) Validate() error {
	var errs config.Errors
	if (cfg.IDPMetadataURL == "") == (cfg.IDPMetadataFile == "") {
		errs.Add("idp_metadata_url", "give exactly one of idp_metadata_url and idp_metadata_file")
	}
	if cfg.IDPMetadataURL != "" {
		u, err := url.Parse(cfg.IDPMetadataURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && config.IsLoopback(u.Hostname()))) {
			errs.Add("idp_metadata_url", "must be an https URL (http only for loopback)")
		}
	}
	if cfg.MetadataRefresh < 0 {
		errs.Add("metadata_refresh", "must not be negative")
	}
	if cfg.Binding != "" && cfg.Binding != "redirect" && cfg.Binding != "post" {
		errs.Add("binding", "must be redirect or post")
	}
	if (cfg.SPKeyFile == "") != (cfg.SPCertFile == "") {
		errs.Add("sp_cert_file", "give both sp_key_file and sp_cert_file, or neither (fedhub then makes a key)")
	}
	roles := slices.Sorted(maps.Keys(defaultAttributes))
	for _, name := range slices.Sorted(maps.Keys(cfg.Attributes)) {
		if !slices.Contains(roles, name) {
			errs.Add("attributes."+name, "must be one of %s", strings.Join(roles, ", "))
		}
	}
	if nameID := cfg.NameIDFormat; (nameID == NameIDTransient || nameID == nameIDEmail) && strings.TrimSpace(cfg.Attributes["subject"]) == "" {
		errs.Add("nameid_format", "%s is not a stable identifier: use persistent, or set attributes.subject", nameID)
	}
	config.CheckMFAValues(&errs, "mfa_context_classes", cfg.MFAContextClasses, "an AuthnContextClassRef URI")
	if cfg.MaxAgeWithoutUpstream < 0 {
		errs.Add("max_age_without_upstream", "must not be negative")
	}
	return errs.Err()
}
