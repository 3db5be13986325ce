package issuer

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/linking"
)

// Client scopes, their mappers and the APIs tokens are meant for, compiled
// from the configuration once (at start-up and on reload) so that a token
// pays only for walking the mappers of its scopes.

// target is where a mapper's claim goes.
type target uint8

const (
	toIDToken target = 1 << iota
	toAccessToken
	toUserinfo
	toIntrospection
)

// claimMapper is a compiled config.ClaimMapper.
type claimMapper struct {
	kind      string
	path      []string // the claim, split at its dots
	in        target
	attribute string
	prefix    string
	value     any // hardcoded: a scalar, or a list or mapping marshalled once (never a map other claims could nest into)
	audience  string
}

type scopeDef struct {
	name        string
	description string // in words, for the consent page
	mappers     []claimMapper
}

// clientScopes is what one client's tokens may carry.
type clientScopes struct {
	id       string
	defaults []*scopeDef
	optional map[string]*scopeDef
	apis     []string          // the APIs it may get
	apiScope map[string]string // a scope of one of those APIs → the API
	// introspected: some mapper of its scopes goes into introspection answers.
	introspected bool
}

// scopeSet is the compiled configuration of every client.
type scopeSet struct {
	clients         map[string]*clientScopes
	defs            map[string]*scopeDef
	apiScopes       map[string][]string // an API → its scopes
	scopesSupported []string
	claimsSupported []string
}

// baseClaims are the claims fedhub sets itself, for claims_supported.
var baseClaims = []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid", "idp",
	"name", "preferred_username", "email", "email_verified", "groups", "realm_access"}

func newScopeSet(cfg *config.Config) (*scopeSet, error) {
	ss := &scopeSet{clients: map[string]*clientScopes{}, defs: map[string]*scopeDef{}, apiScopes: map[string][]string{},
		scopesSupported: []string{"openid", "profile", "email", "offline_access"}, claimsSupported: slices.Clone(baseClaims)}
	for _, s := range append(slices.Clone(config.BuiltinScopes), cfg.ClientScopes...) {
		def := &scopeDef{name: s.Name, description: s.Description}
		for _, m := range s.Mappers {
			cm, err := compileMapper(m)
			if err != nil {
				return nil, fmt.Errorf("client scope %s: %w", s.Name, err)
			}
			def.mappers = append(def.mappers, cm)
			if top, _, _ := strings.Cut(m.Claim, "."); top != "" && !slices.Contains(ss.claimsSupported, top) {
				ss.claimsSupported = append(ss.claimsSupported, top)
			}
		}
		ss.defs[s.Name] = def
		if !slices.Contains(ss.scopesSupported, s.Name) {
			ss.scopesSupported = append(ss.scopesSupported, s.Name)
		}
	}
	for _, a := range cfg.APIs {
		ss.apiScopes[a.ID] = a.Scopes
		ss.scopesSupported = append(ss.scopesSupported, a.Scopes...)
	}
	ss.clients[AdminClientID] = ss.compileClient(config.Client{ID: AdminClientID})
	for _, c := range cfg.Clients {
		ss.clients[c.ID] = ss.compileClient(c)
	}
	return ss, nil
}

func compileMapper(m config.ClaimMapper) (claimMapper, error) {
	on := func(b *bool, def bool) bool {
		if b == nil {
			return def
		}
		return *b
	}
	cm := claimMapper{kind: m.Type, attribute: m.Attribute, prefix: m.Prefix, audience: m.Audience}
	if m.Claim != "" {
		cm.path = strings.Split(m.Claim, ".")
	}
	notAudience := m.Type != config.MapperAudience
	for t, b := range map[target]bool{toIDToken: on(m.IDToken, notAudience), toAccessToken: on(m.AccessToken, true),
		toUserinfo: on(m.Userinfo, notAudience), toIntrospection: on(m.Introspection, notAudience)} {
		if b {
			cm.in |= t
		}
	}
	switch v := m.Value.(type) {
	case nil:
	case string, bool, int, float64:
		cm.value = v
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			return cm, fmt.Errorf("hardcoded value of %s: %w", m.Claim, err)
		}
		cm.value = json.RawMessage(raw)
	}
	return cm, nil
}

func (ss *scopeSet) compileClient(c config.Client) *clientScopes {
	cs := &clientScopes{id: c.ID, optional: map[string]*scopeDef{}, apis: c.APIs, apiScope: map[string]string{}}
	defaults, optional := c.DefaultScopes, c.OptionalScopes
	if defaults == nil {
		defaults = config.DefaultScopes
	}
	if optional == nil {
		optional = config.OptionalScopes
	}
	for _, name := range defaults {
		cs.defaults = append(cs.defaults, ss.defs[name])
	}
	for _, name := range optional {
		cs.optional[name] = ss.defs[name]
	}
	for _, api := range c.APIs {
		for _, s := range ss.apiScopes[api] {
			cs.apiScope[s] = api
		}
	}
	cs.applied(strings.Join(optional, " "), func(d *scopeDef) {
		for _, m := range d.mappers {
			cs.introspected = cs.introspected || m.in&toIntrospection != 0
		}
	})
	return cs
}

// of is the compiled configuration of a client; one the file no longer has
// (its tokens are refused anyway) gets the defaults.
func (ss *scopeSet) of(clientID string) *clientScopes {
	if cs, ok := ss.clients[clientID]; ok {
		return cs
	}
	return ss.compileClient(config.Client{ID: clientID})
}

// mayAsk reports whether the client may be granted scope s beyond OpenID Connect's own.
func (cs *clientScopes) mayAsk(s string) bool {
	if _, ok := cs.optional[s]; ok {
		return true
	}
	if _, ok := cs.apiScope[s]; ok {
		return true
	}
	return slices.ContainsFunc(cs.defaults, func(d *scopeDef) bool { return d.name == s })
}

// applied calls fn with each scope whose claims a token of the granted scope carries.
func (cs *clientScopes) applied(scope string, fn func(*scopeDef)) {
	for _, d := range cs.defaults {
		fn(d)
	}
	for s := range strings.FieldsSeq(scope) {
		if d, ok := cs.optional[s]; ok && !slices.Contains(cs.defaults, d) {
			fn(d)
		}
	}
}

// addClaims writes into out the claims of the granted scope's mappers for t;
// u is nil for a client's own token, which gets no user's claims.
func (cs *clientScopes) addClaims(out map[string]any, u *linking.User, scope string, t target) {
	cs.applied(scope, func(d *scopeDef) {
		for i := range d.mappers {
			m := &d.mappers[i]
			if m.in&t == 0 || m.kind == config.MapperAudience {
				continue
			}
			if v, ok := m.claim(u); ok {
				setClaim(out, m.path, v)
			}
		}
	})
}

// claim is the mapper's value for u, or false when it has none.
func (m *claimMapper) claim(u *linking.User) (any, bool) {
	if m.kind == config.MapperHardcoded {
		return m.value, true
	}
	if u == nil {
		return nil, false
	}
	switch m.kind {
	case config.MapperGroupMembership:
		return nonNil(u.Groups), true
	case config.MapperRole:
		if m.prefix == "" {
			return nonNil(u.Roles), true
		}
		roles := []string{}
		for _, r := range u.Roles {
			if strings.HasPrefix(r, m.prefix) {
				roles = append(roles, r)
			}
		}
		return roles, true
	}
	return userAttribute(u, m.attribute)
}

// userAttribute is one of config.UserAttributes; an empty one is left out,
// and email_verified means nothing without an email.
func userAttribute(u *linking.User, name string) (any, bool) {
	var s string
	switch name {
	case "id":
		s = u.ID
	case "username":
		s = u.Username
	case "email":
		s = u.Email
	case "name":
		s = u.Name
	case "email_verified":
		return u.EmailVerified, u.Email != ""
	}
	return s, s != ""
}

// setClaim sets the claim at path, making the objects on the way; two lists
// for one claim are merged.
func setClaim(out map[string]any, path []string, v any) {
	for _, p := range path[:len(path)-1] {
		next, ok := out[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			out[p] = next
		}
		out = next
	}
	last := path[len(path)-1]
	if prev, ok := out[last].([]string); ok {
		if add, ok := v.([]string); ok {
			merged := slices.Clone(prev)
			for _, s := range add {
				if !slices.Contains(merged, s) {
					merged = append(merged, s)
				}
			}
			v = merged
		}
	}
	out[last] = v
}

// audience is the aud of a token for t: the resources (APIs) asked for and
// those of the granted API scopes, or else the client; then what audience
// mappers add. One audience is a string, as before audiences were configurable.
func (cs *clientScopes) audience(scope, resources string, t target) any {
	var aud []string
	add := func(a string) {
		if !slices.Contains(aud, a) {
			aud = append(aud, a)
		}
	}
	if t == toAccessToken {
		for r := range strings.FieldsSeq(resources) {
			add(r)
		}
		for s := range strings.FieldsSeq(scope) {
			if api, ok := cs.apiScope[s]; ok {
				add(api)
			}
		}
	}
	if len(aud) == 0 {
		aud = []string{cs.id}
	}
	cs.applied(scope, func(d *scopeDef) {
		for _, m := range d.mappers {
			if m.kind == config.MapperAudience && m.in&t != 0 {
				add(m.audience)
			}
		}
	})
	if len(aud) == 1 && t == toAccessToken {
		return aud[0]
	}
	return aud
}

// resources checks RFC 8707 resource parameters: each must be an API the
// client may get and, when within is not nil, one of those (the grant's).
// It returns them space-separated.
func (cs *clientScopes) resources(asked []string, within *string) (string, *oauthError) {
	for _, r := range asked {
		if !slices.Contains(cs.apis, r) || (within != nil && !slices.Contains(strings.Fields(*within), r)) {
			return "", &oauthError{http.StatusBadRequest, "invalid_target", "this client may not get tokens for " + r, false}
		}
	}
	if len(asked) == 0 && within != nil {
		return *within, nil
	}
	return strings.Join(asked, " "), nil
}
