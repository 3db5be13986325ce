package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"
)

var connectorID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

func (v *validator) connector(key string, c Connector, ids map[string]bool) {
	switch {
	case !connectorID.MatchString(c.ID):
		v.fail(key+".id", "must be 1-64 lower-case letters, digits, - or _ (it appears in URLs)")
	case c.ID == "local":
		v.fail(key+".id", `"local" is the built-in connector for local accounts`)
	case ids[c.ID]:
		v.fail(key+".id", "%q is used by another connector", c.ID)
	}
	ids[c.ID] = true
	blocks := map[string]bool{"ldap": c.LDAP != nil, "saml": c.SAML != nil, "oidc": c.OIDC != nil, "kerberos": c.Kerberos != nil}
	switch c.Type {
	case "ldap", "saml", "oidc", "kerberos":
		if !blocks[c.Type] {
			v.fail(key+"."+c.Type, "is required for a connector of type %s", c.Type)
		}
		for name, present := range blocks {
			if present && name != c.Type {
				v.fail(key+"."+name, "does not belong to a connector of type %s", c.Type)
			}
		}
	default:
		v.fail(key+".type", "must be ldap, saml, oidc or kerberos, not %q", c.Type)
	}
	v.sync(key+".sync", c)
	if c.RecheckInterval != 0 && (c.RecheckInterval < time.Second || c.RecheckInterval > 24*time.Hour) {
		v.fail(key+".recheck_interval", "must be between 1s and 24h (default %s)", DefaultRecheckInterval)
	}
	if c.UpstreamDown != "" && c.UpstreamDown != UpstreamFailClosed && c.UpstreamDown != UpstreamFailOpen {
		v.fail(key+".upstream_down", "must be fail_closed (nothing is issued while the upstream cannot answer) or fail_open "+
			"(its last yes counts for one more recheck_interval)")
	}
	if (c.OIDC != nil && c.OIDC.MaxAgeWithoutUpstream < 0) || (c.SAML != nil && c.SAML.MaxAgeWithoutUpstream < 0) {
		v.fail(key+"."+c.Type+".max_age_without_upstream", "must not be negative")
	}
	if c.Groups != "" && c.Groups != GroupsDrop && c.Groups != GroupsPassthrough {
		v.fail(key+".groups", "must be drop (upstream groups without a group_to_group mapper are dropped) or passthrough (kept as %s:<group>)", c.ID)
	}
	if c.Icon != "" {
		if u, err := url.Parse(c.Icon); err != nil || (u.Scheme != "https" && !strings.HasPrefix(c.Icon, "/")) {
			v.fail(key+".icon", "must be an https URL or a path on fedhub")
		}
	}
	v.firstLogin(key+".first_login", c)
	v.mfa(key+".mfa", c.MFA)
	for i, m := range c.Mappers {
		v.mapper(fmt.Sprintf("%s.mappers[%d]", key, i), m)
	}
	switch {
	case c.LDAP != nil:
		v.ldap(key+".ldap", c.LDAP)
	case c.SAML != nil:
		v.saml(key+".saml", c.SAML)
	case c.OIDC != nil:
		v.oidc(key+".oidc", c.OIDC)
	}
}

func (v *validator) sync(key string, c Connector) {
	s := c.Sync
	mode := key + ".mode"
	if s.scalar {
		mode = key
	}
	if s.Mode != "" && s.Mode != "import" && s.Mode != "force" {
		v.fail(mode, "must be import (once, at the first login) or force (on every login)")
	}
	if s.Import && c.Type != "ldap" {
		v.fail(key+".import", "a directory sync needs a connector of type ldap")
	}
	switch {
	case s.Period != 0 && !s.Import:
		v.fail(key+".period", "needs import: on (the period is that of the directory sync)")
	case s.Period < 0 || (s.Period > 0 && s.Period < MinSyncPeriod):
		v.fail(key+".period", "must be at least %s (or 0: only on demand)", MinSyncPeriod)
	}
}

func (v *validator) firstLogin(key string, c Connector) {
	f := c.FirstLogin
	if !slices.Contains([]string{"", "create", "review_then_create", "deny"}, f.OnNew) {
		v.fail(key+".on_new", "must be create, review_then_create or deny")
	}
	if !slices.Contains([]string{"", "none", "email", "username"}, f.MatchExistingBy) {
		v.fail(key+".match_existing_by", "must be none, email or username")
	}
	if !slices.Contains([]string{"", "confirm_and_reauthenticate", "link_automatically", "deny"}, f.OnMatch) {
		v.fail(key+".on_match", "must be confirm_and_reauthenticate, link_automatically or deny")
	}
	if f.OnMatch == "link_automatically" && (!c.TrustEmail || f.MatchExistingBy != "email") {
		v.fail(key+".on_match", "link_automatically needs match_existing_by: email and trust_email: true on the connector "+
			"(an email match may otherwise only propose a link)")
	}
	for i, field := range f.RequiredFields {
		if field != "email" && field != "name" {
			v.fail(fmt.Sprintf("%s.required_fields[%d]", key, i), "must be email or name")
		}
	}
}

func (v *validator) mapper(key string, m Mapper) {
	need := func(field, value string) {
		if value == "" {
			v.fail(key+"."+field, "is required for a %s mapper", m.Type)
		}
	}
	switch m.Type {
	case "attribute":
		need("source", m.Source)
		if !slices.Contains([]string{"username", "email", "name"}, m.Target) {
			v.fail(key+".target", "must be username, email or name")
		}
	case "group_to_role":
		need("group", m.Group)
		need("role", m.Role)
	case "group_to_group":
		need("group", m.Group)
		need("to", m.To)
	case "hardcoded_role":
		need("role", m.Role)
	case "username_template":
		need("template", m.Template)
		if _, err := template.New("username").Option("missingkey=error").Parse(m.Template); err != nil {
			v.fail(key+".template", "is not a valid template: %v", err)
		}
	default:
		v.fail(key+".type", "must be attribute, group_to_role, group_to_group, hardcoded_role or username_template")
	}
}

func (v *validator) ldap(key string, l *LDAP) {
	switch {
	case len(l.URLs) == 0 && l.SRV == "":
		v.fail(key+".urls", "give the servers (urls) or a domain to discover them from (srv)")
	case len(l.URLs) > 0 && l.SRV != "":
		v.fail(key+".srv", "give either urls or srv, not both")
	}
	for i, raw := range l.URLs {
		u, err := url.Parse(raw)
		k := fmt.Sprintf("%s.urls[%d]", key, i)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "ldap" && u.Scheme != "ldaps"):
			v.fail(k, "must be ldap://host[:port] or ldaps://host[:port]")
		case u.Scheme == "ldap" && !l.StartTLS && !l.Insecure:
			v.fail(k, "plain LDAP sends passwords in clear: use ldaps://, start_tls: true, or set insecure: true")
		case u.Scheme == "ldaps" && l.StartTLS:
			v.fail(key+".start_tls", "StartTLS is for ldap:// URLs; ldaps:// is already TLS")
		}
	}
	if l.BindPassword != "" && !v.fromEnv(key+".bind_password") {
		v.fail(key+".bind_password", "must be a ${ENV} reference, never a literal")
	}
	if l.BindDN != "" && l.BindPassword == "" {
		v.fail(key+".bind_password", "is required with bind_dn")
	}
	if l.UserBase == "" {
		v.fail(key+".user_base", "is required: where to search for users, e.g. ou=people,dc=example,dc=com")
	}
	if l.Timeout < 0 {
		v.fail(key+".timeout", "must not be negative")
	}
	if l.PoolSize < 0 || l.PoolSize > 100 {
		v.fail(key+".pool_size", "must be between 0 (default) and 100")
	}
}

func (v *validator) saml(key string, s *SAML) {
	if (s.IDPMetadataURL == "") == (s.IDPMetadataFile == "") {
		v.fail(key+".idp_metadata_url", "give exactly one of idp_metadata_url and idp_metadata_file")
	}
	if s.IDPMetadataURL != "" {
		if u, err := url.Parse(s.IDPMetadataURL); err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && IsLoopback(u.Hostname()))) {
			v.fail(key+".idp_metadata_url", "must be an https URL (http only for loopback)")
		}
	}
	if s.Binding != "" && s.Binding != "redirect" && s.Binding != "post" {
		v.fail(key+".binding", "must be redirect or post")
	}
	if (s.SPKeyFile == "") != (s.SPCertFile == "") {
		v.fail(key+".sp_cert_file", "give both sp_key_file and sp_cert_file, or neither (fedhub then makes a key)")
	}
	if s.MetadataRefresh < 0 {
		v.fail(key+".metadata_refresh", "must not be negative")
	}
	for name := range s.Attributes {
		if !slices.Contains([]string{"username", "email", "name", "groups", "subject", "email_verified"}, name) {
			v.fail(key+".attributes."+name, "must be one of username, email, name, groups, subject, email_verified")
		}
	}
	v.mfaValues(key+".mfa_context_classes", s.MFAContextClasses, "an AuthnContextClassRef URI")
}

// mfaValues checks a list of values an upstream uses to say a login used
// several factors.
func (v *validator) mfaValues(key string, values []string, what string) {
	seen := map[string]bool{}
	for i, s := range values {
		k := fmt.Sprintf("%s[%d]", key, i)
		switch {
		case s == "" || strings.TrimSpace(s) != s || strings.ContainsAny(s, " \t\r\n"):
			v.fail(k, "must be %s, without spaces", what)
		case seen[s]:
			v.fail(k, "%q is listed twice", s)
		}
		seen[s] = true
	}
}

func (v *validator) oidc(key string, o *OIDC) {
	u, err := url.Parse(o.Issuer)
	if o.Issuer == "" || err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && IsLoopback(u.Hostname()))) {
		v.fail(key+".issuer", "must be the upstream's https issuer URL (http only for loopback)")
	}
	if o.ClientID == "" {
		v.fail(key+".client_id", "is required")
	}
	if o.ClientSecret == "" {
		v.fail(key+".client_secret", "is required")
	} else if !v.fromEnv(key + ".client_secret") {
		v.fail(key+".client_secret", "must be a ${ENV} reference, never a literal")
	}
	if o.AuthMethod != "" && o.AuthMethod != "client_secret_basic" && o.AuthMethod != "client_secret_post" {
		v.fail(key+".auth_method", "must be client_secret_basic or client_secret_post")
	}
	for name := range o.Claims {
		if !slices.Contains([]string{"username", "email", "name", "groups", "email_verified"}, name) {
			v.fail(key+".claims."+name, "must be one of username, email, name, groups, email_verified")
		}
	}
	v.mfaValues(key+".mfa_acr_values", o.MFAACRValues, "an acr value")
}

func (v *validator) mfa(key, policy string) {
	if !slices.Contains(MFAPolicies, policy) {
		v.fail(key, "must be off, optional or required")
	}
}
