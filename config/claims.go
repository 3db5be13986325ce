package config

import (
	"fmt"
	"slices"
	"strings"
)

// ClientScope is a named scope: what its mappers put into the tokens of a
// client that has it as a default scope (always) or an optional one (when
// the request asks for it).
type ClientScope struct {
	Name        string        `yaml:"name"`
	Description string        `yaml:"description"` // what it releases, in words, for consent pages
	Mappers     []ClaimMapper `yaml:"mappers"`
}

// ClaimMapper puts one claim (or one audience) into tokens.
type ClaimMapper struct {
	// Type is user_attribute, group_membership, role, hardcoded or audience.
	Type string `yaml:"type"`
	// Claim is where the value goes; dots nest ("realm_access.roles").
	Claim string `yaml:"claim"`
	// Attribute is the user's attribute a user_attribute mapper reads (see UserAttributes).
	Attribute string `yaml:"attribute"`
	// Prefix keeps, for a role mapper, only the roles that start with it.
	Prefix string `yaml:"prefix"`
	// Value is what a hardcoded mapper sets: text, a number, a boolean, a list or a mapping.
	Value any `yaml:"value"`
	// Audience is what an audience mapper adds to the access token's aud.
	Audience string `yaml:"audience"`
	// Where the claim goes. Unset: ID token, access token, userinfo and
	// introspection; an audience mapper only into the access token.
	IDToken       *bool `yaml:"id_token"`
	AccessToken   *bool `yaml:"access_token"`
	Userinfo      *bool `yaml:"userinfo"`
	Introspection *bool `yaml:"introspection"`
}

// API is a resource server: its ID is the audience of the access tokens
// meant for it, asked for with RFC 8707's resource or one of its scopes.
type API struct {
	ID     string   `yaml:"id"`
	Scopes []string `yaml:"scopes"`
}

// Claim mapper types.
const (
	MapperUserAttribute   = "user_attribute"
	MapperGroupMembership = "group_membership"
	MapperRole            = "role"
	MapperHardcoded       = "hardcoded"
	MapperAudience        = "audience"
)

// UserAttributes are what a user_attribute mapper may read.
var UserAttributes = []string{"id", "username", "email", "email_verified", "name"}

// ProtocolScopes are OAuth and OpenID Connect scopes that release no claims
// of their own; every client may ask for them.
var ProtocolScopes = []string{"openid", "offline_access", "address", "phone"}

// BuiltinScopes are the scopes fedhub defines itself. A client without
// default_scopes gets roles and groups always; without optional_scopes, it
// may ask for profile and email.
var BuiltinScopes = []ClientScope{
	{Name: "profile", Description: "your name and username", Mappers: []ClaimMapper{
		builtin(MapperUserAttribute, "name", "name"), builtin(MapperUserAttribute, "username", "preferred_username")}},
	{Name: "email", Description: "your email address", Mappers: []ClaimMapper{
		builtin(MapperUserAttribute, "email", "email"), builtin(MapperUserAttribute, "email_verified", "email_verified")}},
	{Name: "roles", Description: "your roles", Mappers: []ClaimMapper{builtin(MapperRole, "", "realm_access.roles")}},
	{Name: "groups", Description: "your groups", Mappers: []ClaimMapper{builtin(MapperGroupMembership, "", "groups")}},
}

// DefaultScopes and OptionalScopes are a client's when it lists none.
var (
	DefaultScopes  = []string{"roles", "groups"}
	OptionalScopes = []string{"profile", "email"}
)

// builtin is a mapper of a built-in scope: in the ID token, the access token
// and userinfo, as before scopes were configurable; not in introspection.
func builtin(typ, attribute, claim string) ClaimMapper {
	no := false
	return ClaimMapper{Type: typ, Attribute: attribute, Claim: claim, Introspection: &no}
}

// reservedClaims are set by fedhub itself; no mapper may replace them.
var reservedClaims = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "auth_time", "nonce", "acr", "amr",
	"azp", "sid", "at_hash", "client_id", "scope", "gid", "idp", "act", "cnf", "active", "token_type"}

// scopeToken reports whether s can be a scope (RFC 6749 §3.3: no space, quote or backslash).
func scopeToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < 0x21 || r == '"' || r == '\\' || r > 0x7e {
			return false
		}
	}
	return true
}

// scopes checks client_scopes and apis; names collects every scope name a
// client may list and apiIDs every API.
func (v *validator) scopes(scopes []ClientScope, apis []API) (names, apiIDs map[string]bool) {
	names, apiIDs = map[string]bool{}, map[string]bool{}
	for _, s := range BuiltinScopes {
		names[s.Name] = true
	}
	apiScopes := map[string]bool{} // an API's scopes come with the API, not in a client's scope lists
	taken := func(name string) bool { return names[name] || apiScopes[name] || slices.Contains(ProtocolScopes, name) }
	for i, s := range scopes {
		key := fmt.Sprintf("client_scopes[%d]", i)
		switch {
		case !scopeToken(s.Name):
			v.fail(key+".name", "is required: a scope name without spaces or quotes")
		case taken(s.Name):
			v.fail(key+".name", "%q is the name of another scope", s.Name)
		}
		names[s.Name] = true
		if len(s.Mappers) == 0 {
			v.fail(key+".mappers", "list at least one mapper")
		}
		for j, m := range s.Mappers {
			v.claimMapper(fmt.Sprintf("%s.mappers[%d]", key, j), m)
		}
	}
	for i, a := range apis {
		key := fmt.Sprintf("apis[%d]", i)
		switch {
		case a.ID == "" || strings.ContainsAny(a.ID, " \t\n"):
			v.fail(key+".id", "is required: the API's audience, a URI or name without spaces")
		case apiIDs[a.ID]:
			v.fail(key+".id", "%q is used by another API", a.ID)
		}
		apiIDs[a.ID] = true
		for j, s := range a.Scopes {
			k := fmt.Sprintf("%s.scopes[%d]", key, j)
			switch {
			case !scopeToken(s):
				v.fail(k, "must be a scope name without spaces or quotes")
			case taken(s):
				v.fail(k, "%q is the name of another scope", s)
			}
			apiScopes[s] = true
		}
	}
	return names, apiIDs
}

func (v *validator) claimMapper(key string, m ClaimMapper) {
	switch m.Type {
	case MapperAudience:
		if m.Audience == "" || strings.ContainsAny(m.Audience, " \t\n") {
			v.fail(key+".audience", "is required: the audience to add, without spaces")
		}
		if m.Claim != "" {
			v.fail(key+".claim", "an audience mapper sets aud, not a claim")
		}
		if isTrue(m.Userinfo) || isTrue(m.Introspection) {
			v.fail(key+".userinfo", "an audience mapper goes into tokens only (id_token, access_token)")
		}
	case MapperUserAttribute, MapperGroupMembership, MapperRole, MapperHardcoded:
		v.claimPath(key+".claim", m.Claim)
	case "":
		v.fail(key+".type", "is required: user_attribute, group_membership, role, hardcoded or audience")
		return
	default:
		v.fail(key+".type", "unknown mapper type %q: user_attribute, group_membership, role, hardcoded or audience", m.Type)
		return
	}
	if (m.Type == MapperUserAttribute) != (m.Attribute != "") || (m.Attribute != "" && !slices.Contains(UserAttributes, m.Attribute)) {
		v.fail(key+".attribute", "a user_attribute mapper reads one of %s; other mappers have none", strings.Join(UserAttributes, ", "))
	}
	if (m.Type == MapperHardcoded) != (m.Value != nil) {
		v.fail(key+".value", "a hardcoded mapper needs its value; other mappers have none")
	}
	if m.Prefix != "" && m.Type != MapperRole {
		v.fail(key+".prefix", "is for role mappers")
	}
	if m.Audience != "" && m.Type != MapperAudience {
		v.fail(key+".audience", "is for audience mappers")
	}
	if m.IDToken != nil && !*m.IDToken && m.AccessToken != nil && !*m.AccessToken &&
		(m.Type == MapperAudience || (m.Userinfo != nil && !*m.Userinfo && m.Introspection != nil && !*m.Introspection)) {
		v.fail(key, "goes nowhere: every one of id_token, access_token, userinfo and introspection is false")
	}
}

func (v *validator) claimPath(key, path string) {
	if path == "" {
		v.fail(key, "is required: the claim to set, e.g. department or realm_access.roles")
		return
	}
	for _, part := range strings.Split(path, ".") {
		if part == "" {
			v.fail(key, "%q has an empty part between dots", path)
			return
		}
	}
	if top, _, _ := strings.Cut(path, "."); slices.Contains(reservedClaims, top) {
		v.fail(key, "%q is set by fedhub itself and cannot be mapped", top)
	}
}

// clientScopes checks a client's default_scopes, optional_scopes and apis.
func (v *validator) clientScopes(key string, cl Client, names, apiIDs map[string]bool) {
	for _, list := range []struct {
		key   string
		names []string
	}{{"default_scopes", cl.DefaultScopes}, {"optional_scopes", cl.OptionalScopes}} {
		for i, s := range list.names {
			if !names[s] {
				v.fail(fmt.Sprintf("%s.%s[%d]", key, list.key, i), "unknown scope %q: a built-in scope (%s) or one of client_scopes",
					s, strings.Join(builtinNames(), ", "))
			}
		}
	}
	for i, a := range cl.APIs {
		if !apiIDs[a] {
			v.fail(fmt.Sprintf("%s.apis[%d]", key, i), "unknown API %q: not in apis", a)
		}
	}
}

func builtinNames() []string {
	out := make([]string, len(BuiltinScopes))
	for i, s := range BuiltinScopes {
		out[i] = s.Name
	}
	return out
}

func isTrue(b *bool) bool { return b != nil && *b }
