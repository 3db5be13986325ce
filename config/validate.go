package config

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/text/language"

	"github.com/fedhub/fedhub/internal/rolegraph"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/usernames"
)

// colour is a CSS hex colour: nothing else may reach the generated CSS.
var colour = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// Validate checks the decoded configuration and returns every problem found.
func (c *Config) Validate() error {
	v := validator{lines: c.lines, connectorTypes: c.connectorTypes}
	v.issuer(c.Issuer)
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		v.fail("listen", "must be host:port, e.g. 127.0.0.1:8080")
	}
	if _, _, err := net.SplitHostPort(c.Management.Listen); err != nil {
		v.fail("management.listen", "must be host:port, e.g. 127.0.0.1:9000")
	}
	if c.Management.Profiling && c.Management.Listen == c.Listen {
		v.fail("management.profiling", "is only for a private management listener; management.listen is the public address")
	}
	if c.Branding.PrimaryColor != "" && !colour.MatchString(c.Branding.PrimaryColor) {
		v.fail("branding.primary_color", "must be a colour such as #0b5cad or #06c")
	}
	if _, err := language.Parse(c.Branding.DefaultLocale); c.Branding.DefaultLocale != "" && err != nil {
		v.fail("branding.default_locale", "must be a language tag such as en or de")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		v.fail("tls", "needs both cert_file and key_file, or neither")
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		v.fail("log.format", "must be text or json, not %q", c.Log.Format)
	}
	if _, err := c.Log.SlogLevel(); err != nil {
		v.fail("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	for i, p := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil {
			v.fail(fmt.Sprintf("trusted_proxies[%d]", i), "must be a CIDR such as 10.0.0.0/8 or 192.0.2.7/32")
		}
	}
	switch c.Storage.Driver {
	case "sqlite", "postgres":
		if c.Storage.DSN == "" {
			v.fail("storage.dsn", "is required (a file path for sqlite, a connection string for postgres)")
		}
	default:
		v.fail("storage.driver", "must be sqlite or postgres, not %q", c.Storage.Driver)
	}
	s := c.Storage
	for _, f := range []struct {
		key string
		n   int64
	}{{"max_open_conns", int64(s.MaxOpenConns)}, {"max_idle_conns", int64(s.MaxIdleConns)},
		{"conn_max_lifetime", int64(s.ConnMaxLifetime)}, {"conn_max_idle_time", int64(s.ConnMaxIdleTime)}} {
		if f.n < 0 {
			v.fail("storage."+f.key, "must not be negative (0 keeps the default)")
		}
	}
	if s.MaxOpenConns > 0 && s.MaxIdleConns > s.MaxOpenConns {
		v.fail("storage.max_idle_conns", "must not exceed max_open_conns (%d)", s.MaxOpenConns)
	}
	if !slices.Contains([]string{"RS256", "ES256", "EdDSA"}, c.Signing.Algorithm) {
		v.fail("signing.algorithm", "must be RS256, ES256 or EdDSA, not %q", c.Signing.Algorithm)
	}
	v.positive("signing.rotation_period", c.Signing.RotationPeriod > 0)
	t := c.Tokens
	v.positive("tokens.access_ttl", t.AccessTTL > 0)
	v.positive("tokens.id_ttl", t.IDTTL > 0)
	v.positive("tokens.refresh_ttl", t.RefreshTTL > 0)
	v.positive("tokens.sso_idle", t.SSOIdle > 0)
	v.positive("tokens.sso_max", t.SSOMax > 0)
	if t.CodeTTL <= 0 || t.CodeTTL.Seconds() > 60 {
		v.fail("tokens.code_ttl", "must be between 1s and 60s (RFC 9700)")
	}
	if c.BruteForce.FailureFactor < 1 {
		v.fail("brute_force.failure_factor", "must be at least 1")
	}
	v.positive("brute_force.wait_increment", c.BruteForce.WaitIncrement > 0)
	v.positive("brute_force.max_wait", c.BruteForce.MaxWait > 0)
	v.positive("admin.fresh_login_age", c.Admin.FreshLoginAge > 0)
	v.positive("admin.session_ttl", c.Admin.SessionTTL > 0)

	v.secrets(c.Secrets)
	scopeNames, apiIDs := v.scopes(c.ClientScopes, c.APIs)
	ids := map[string]bool{}
	for i, cl := range c.Clients {
		key := fmt.Sprintf("clients[%d]", i)
		v.client(key, cl, ids)
		v.clientScopes(key, cl, scopeNames, apiIDs)
	}
	names := map[string]bool{}
	for i, u := range c.Users {
		v.user(fmt.Sprintf("users[%d]", i), u, names)
	}
	v.definitions(c.Groups, c.Roles)
	connectorIDs := map[string]string{} // the connectors listed so far, by id: their type
	for i, cn := range c.Connectors {
		v.connector(fmt.Sprintf("connectors[%d]", i), cn, connectorIDs)
	}
	if len(v.errs) > 0 {
		return v.errs
	}
	return nil
}

type validator struct {
	lines          map[string]int
	connectorTypes []string
	errs           Errors
}

func (v *validator) fail(key, format string, args ...any) {
	line := v.lines[key]
	for k := key; line == 0 && strings.Contains(k, "."); { // fall back to the enclosing key
		k = k[:strings.LastIndex(k, ".")]
		line = v.lines[k]
	}
	v.errs = append(v.errs, &KeyError{Key: key, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) positive(key string, ok bool) {
	if !ok {
		v.fail(key, "must be a positive duration such as 10m or 24h")
	}
}

func (v *validator) issuer(issuer string) {
	u, err := url.Parse(issuer)
	switch {
	case issuer == "":
		v.fail("issuer", "is required: the public URL of fedhub, e.g. https://login.example.com")
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		v.fail("issuer", "must be an absolute http(s) URL")
	case u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(u.Path, "/"):
		v.fail("issuer", "must have no query, fragment or trailing slash (OpenID Connect Discovery §3)")
	case u.Scheme == "http" && !IsLoopback(u.Hostname()):
		v.fail("issuer", "must use https unless it is a loopback address")
	}
}

// fromEnv reports whether the whole value at key was a ${ENV} reference.
func (v *validator) fromEnv(key string) bool {
	if v.lines == nil { // built in code (demo mode), not read from a file
		return true
	}
	_, ok := v.lines[key+"#env"]
	return ok
}

func (v *validator) secrets(s Secrets) {
	if s.Key == "" && len(s.PreviousKeys) > 0 {
		v.fail("secrets.key", "is required with previous_keys: the new key, as a ${ENV} reference")
	}
	v.secretKey("secrets.key", s.Key)
	for i, k := range s.PreviousKeys {
		v.secretKey(fmt.Sprintf("secrets.previous_keys[%d]", i), k)
	}
}

func (v *validator) secretKey(key, value string) {
	switch {
	case value == "" && key == "secrets.key": // no key: secrets are stored as they are
	case !v.fromEnv(key):
		v.fail(key, "must be a ${ENV} reference, never a literal")
	default:
		if err := secret.CheckKey(value); err != nil {
			v.fail(key, "%v", err)
		}
	}
}

func (v *validator) client(key string, cl Client, ids map[string]bool) {
	switch {
	case cl.ID == "":
		v.fail(key+".id", "is required")
	case ids[cl.ID]:
		v.fail(key+".id", "%q is used by another client", cl.ID)
	}
	ids[cl.ID] = true
	if cl.Secret != "" && !v.fromEnv(key+".secret") {
		v.fail(key+".secret", "must be a ${ENV} reference, never a literal; or give secret_hash (fedhub hash-secret)")
	}
	if cl.Secret != "" && cl.SecretHash != "" {
		v.fail(key+".secret_hash", "give either secret or secret_hash, not both")
	}
	if cl.SecretHash != "" && !validSecretHash(cl.SecretHash) {
		v.fail(key+".secret_hash", "must be sha256:<64 hex digits> (fedhub hash-secret)")
	}
	hasSecret := cl.Secret != "" || cl.SecretHash != ""
	hasKeys := len(cl.JWKS) > 0 || cl.JWKSURI != ""
	switch {
	case cl.Public && hasSecret:
		v.fail(key+".public", "a public client has no secret")
	case cl.Public && cl.AuthMethod != "" && cl.AuthMethod != AuthNone:
		v.fail(key+".token_endpoint_auth_method", "a public client authenticates with none")
	case cl.AuthMethod == AuthNone && !cl.Public:
		v.fail(key+".token_endpoint_auth_method", "none is for public clients (set public: true)")
	case cl.AuthMethod == AuthPrivateKey:
		if hasSecret {
			k := key + ".secret"
			if cl.SecretHash != "" {
				k = key + ".secret_hash"
			}
			v.fail(k, "a private_key_jwt client has keys, not a secret")
		}
		if (len(cl.JWKS) == 0) == (cl.JWKSURI == "") { // neither, or both
			v.fail(key+".jwks", "a private_key_jwt client needs its public keys: give jwks or jwks_uri (one of them)")
		}
	case !slices.Contains([]string{"", AuthSecretBasic, AuthSecretPost, AuthNone}, cl.AuthMethod):
		v.fail(key+".token_endpoint_auth_method", "unknown method %q: client_secret_basic, client_secret_post, private_key_jwt or none", cl.AuthMethod)
	case !cl.Public && !hasSecret:
		v.fail(key+".secret", "a confidential client needs secret or secret_hash (or set public: true, or token_endpoint_auth_method: private_key_jwt)")
	}
	if hasKeys && cl.AuthMethod != AuthPrivateKey {
		v.fail(key+".token_endpoint_auth_method", "jwks and jwks_uri are for private_key_jwt clients")
	}
	if len(cl.JWKS) > 0 {
		if _, err := ClientKeys(cl.JWKS); err != nil {
			v.fail(key+".jwks", "%v", err)
		}
	}
	if u, err := url.Parse(cl.JWKSURI); cl.JWKSURI != "" && (err != nil || !u.IsAbs() ||
		(u.Scheme != "https" && !(u.Scheme == "http" && IsLoopback(u.Hostname())))) {
		v.fail(key+".jwks_uri", "must be an https URL (http only for loopback addresses)")
	}
	v.mfa(key+".mfa", cl.MFA)
	if len(cl.GrantTypes) == 0 {
		v.fail(key+".grant_types", "list at least one of authorization_code, refresh_token, client_credentials, password")
	}
	for i, g := range cl.GrantTypes {
		if !slices.Contains([]string{GrantAuthorizationCode, GrantRefreshToken, GrantClientCredentials, GrantPassword, GrantTokenExchange, GrantDeviceCode}, g) {
			v.fail(fmt.Sprintf("%s.grant_types[%d]", key, i), "unknown grant type %q (implicit and hybrid flows are not offered)", g)
		}
		if cl.Public && (g == GrantClientCredentials || g == GrantPassword || g == GrantTokenExchange) {
			v.fail(fmt.Sprintf("%s.grant_types[%d]", key, i), "%s needs a confidential client", g)
		}
	}
	if exchanges := slices.Contains(cl.GrantTypes, GrantTokenExchange); exchanges != (len(cl.ExchangeAudiences) > 0) {
		if exchanges {
			v.fail(key+".exchange_audiences", "token exchange needs the audiences this client may exchange tokens for")
		} else {
			v.fail(key+".exchange_audiences", "is only for clients with the grant type %s", GrantTokenExchange)
		}
	}
	if slices.Contains(cl.GrantTypes, GrantAuthorizationCode) && len(cl.RedirectURIs) == 0 {
		v.fail(key+".redirect_uris", "authorization_code needs at least one redirect URI")
	}
	for i, u := range cl.RedirectURIs {
		if msg := checkRedirectURI(u); msg != "" {
			v.fail(fmt.Sprintf("%s.redirect_uris[%d]", key, i), "%s", msg)
		}
	}
	for i, u := range cl.PostLogoutRedirectURIs {
		if msg := checkRedirectURI(u); msg != "" {
			v.fail(fmt.Sprintf("%s.post_logout_redirect_uris[%d]", key, i), "%s", msg)
		}
	}
	if u := cl.BackchannelLogoutURI; u != "" {
		if msg := checkRedirectURI(u); msg != "" {
			v.fail(key+".backchannel_logout_uri", "%s", msg)
		}
	}
}

func checkRedirectURI(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil || !u.IsAbs():
		return "must be an absolute URI"
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "must not contain a fragment"
	case u.Scheme == "http" && !IsLoopback(u.Hostname()):
		return "http is allowed only for loopback addresses; use https"
	}
	return ""
}

func (v *validator) user(key string, u User, names map[string]bool) {
	_, name, err := usernames.New(u.Username)
	switch {
	case u.Username == "":
		v.fail(key+".username", "is required")
	case err != nil:
		v.fail(key+".username", "%q: %v", u.Username, err)
	case names[name]:
		v.fail(key+".username", "%q is used by another user", u.Username)
	}
	names[name] = true
	if u.Password != "" && !v.fromEnv(key+".password") {
		v.fail(key+".password", "must be a ${ENV} reference, never a literal; or give password_hash")
	}
	if u.Password != "" && u.PasswordHash != "" {
		v.fail(key+".password_hash", "give either password or password_hash, not both")
	}
	if u.PasswordHash != "" && !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
		v.fail(key+".password_hash", "must be an argon2id hash ($argon2id$…)")
	}
}

// definitions checks groups and roles: names given once, parents and roles
// defined, no cycle of nesting or of composites.
func (v *validator) definitions(groups []Group, roles []Role) {
	groupAt, roleAt := map[string]int{}, map[string]int{}
	for i, r := range roles {
		v.definitionName(fmt.Sprintf("roles[%d]", i), "role", r.Name, roleAt, i)
	}
	for i, g := range groups {
		v.definitionName(fmt.Sprintf("groups[%d]", i), "group", g.Name, groupAt, i)
	}
	parents, includes := map[string][]string{}, map[string][]string{}
	for i, g := range groups {
		key := fmt.Sprintf("groups[%d]", i)
		if _, ok := groupAt[g.Parent]; g.Parent != "" && !ok {
			v.fail(key+".parent", "%q is not a group defined under groups", g.Parent)
		} else if g.Parent != "" {
			parents[g.Name] = []string{g.Parent}
		}
		for j, r := range g.Roles {
			if _, ok := roleAt[r]; !ok {
				v.fail(fmt.Sprintf("%s.roles[%d]", key, j), "%q is not a role defined under roles", r)
			}
		}
	}
	for i, r := range roles {
		for j, inc := range r.Includes {
			if _, ok := roleAt[inc]; !ok {
				v.fail(fmt.Sprintf("roles[%d].includes[%d]", i, j), "%q is not a role defined under roles", inc)
			} else {
				includes[r.Name] = append(includes[r.Name], inc)
			}
		}
	}
	if c := rolegraph.Cycle(parents); c != nil {
		v.fail(fmt.Sprintf("groups[%d].parent", groupAt[c[0]]), "nests the groups in a cycle: %s", strings.Join(c, " → "))
	}
	if c := rolegraph.Cycle(includes); c != nil {
		v.fail(fmt.Sprintf("roles[%d].includes", roleAt[c[0]]), "makes the composite roles a cycle: %s", strings.Join(c, " → "))
	}
}

// definitionName checks the name of a group or role at index i; at records
// where each name is.
func (v *validator) definitionName(key, what, name string, at map[string]int, i int) {
	switch _, dup := at[name]; {
	case strings.TrimSpace(name) == "":
		v.fail(key+".name", "is required")
	case name != strings.TrimSpace(name):
		v.fail(key+".name", "%q has spaces around it", name)
	case dup:
		v.fail(key+".name", "%q is another %s's name too", name, what)
	default:
		at[name] = i
	}
}

// IsLoopback reports whether host is localhost, a name under .localhost
// (which resolves to the loopback by RFC 6761) or a loopback IP.
func IsLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") { // RFC 6761 §6.3: always the loopback
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validSecretHash(h string) bool {
	hexPart, ok := strings.CutPrefix(h, "sha256:")
	if !ok || len(hexPart) != 64 {
		return false
	}
	_, err := hex.DecodeString(hexPart)
	return err == nil
}

// ClientKeys reads a client's JWK Set as written in the configuration: public
// signing keys only.
func ClientKeys(set map[string]any) (jose.JSONWebKeySet, error) {
	var keys jose.JSONWebKeySet
	raw, err := json.Marshal(set)
	if err == nil {
		err = json.Unmarshal(raw, &keys)
	}
	if err != nil {
		return keys, fmt.Errorf("is not a JWK Set: %w", err)
	}
	if len(keys.Keys) == 0 {
		return keys, errors.New("holds no keys")
	}
	for i, k := range keys.Keys {
		switch {
		case !k.IsPublic():
			return keys, fmt.Errorf("key %d is a private key: give only the public keys", i)
		case k.Use != "" && k.Use != "sig":
			return keys, fmt.Errorf("key %d is not for signatures (use %q)", i, k.Use)
		}
	}
	return keys, nil
}
