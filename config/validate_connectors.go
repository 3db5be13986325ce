package config

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"text/template"
	"time"
)

// connectorID reports whether id is 1-64 lower-case letters, digits, - or _,
// the first a letter or digit. A regexp's {0,63} would compile at start into
// a program of 63 copies.
func connectorID(id string) bool {
	const first = "abcdefghijklmnopqrstuvwxyz0123456789"
	return id != "" && len(id) <= 64 && strings.ContainsRune(first, rune(id[0])) && strings.Trim(id, first+"_-") == ""
}

func (v *validator) connector(key string, c Connector, before map[string]string) {
	_, taken := before[c.ID]
	switch {
	case !connectorID(c.ID):
		v.fail(key+".id", "must be 1-64 lower-case letters, digits, - or _ (it appears in URLs)")
	case c.ID == "local":
		v.fail(key+".id", `"local" is the built-in connector for local accounts`)
	case taken:
		v.fail(key+".id", "%q is used by another connector", c.ID)
	}
	v.connectorType(key, c, before)
	if !taken {
		before[c.ID] = c.Type
	}
	v.sync(key+".sync", c)
	if c.RecheckInterval != 0 && (c.RecheckInterval < time.Second || c.RecheckInterval > 24*time.Hour) {
		v.fail(key+".recheck_interval", "must be between 1s and 24h (default %s)", DefaultRecheckInterval)
	}
	if c.UpstreamDown != "" && c.UpstreamDown != UpstreamFailClosed && c.UpstreamDown != UpstreamFailOpen {
		v.fail(key+".upstream_down", "must be fail_closed (nothing is issued while the upstream cannot answer) or fail_open "+
			"(its last yes counts for one more recheck_interval)")
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
}

// connectorType checks the type and hands its block to it; the connectors
// the block names must be among those listed before it.
func (v *validator) connectorType(key string, c Connector, before map[string]string) {
	if !slices.Contains(v.connectorTypes, c.Type) {
		v.fail(key+".type", "must be %s, not %q", oneOf(v.connectorTypes), c.Type)
		return
	}
	for _, name := range c.misplaced {
		v.fail(key+"."+name, "does not belong to a connector of type %s", c.Type)
	}
	if c.Settings == nil {
		v.fail(key+"."+c.Type, "is required for a connector of type %s", c.Type)
		return
	}
	block := key + "." + c.Type
	v.secretFields(block, c.Settings)
	if err := c.Settings.Validate(); err != nil {
		var errs Errors
		if !errors.As(err, &errs) {
			errs = Errors{err}
		}
		for _, err := range errs {
			var ke *KeyError
			switch {
			case !errors.As(err, &ke):
				v.fail(block, "%v", err)
			case ke.Key == "": // the block as a whole
				v.fail(block, "%s", ke.Msg)
			default:
				v.fail(block+"."+ke.Key, "%s", ke.Msg)
			}
		}
	}
	if r, ok := c.Settings.(ConnectorReferrer); ok {
		for _, ref := range r.References() {
			typ, listed := before[ref.ID]
			switch {
			case !listed:
				v.fail(block+"."+ref.Key, "%q is not a connector listed before this one", ref.ID)
			case !slices.Contains(ref.Types, typ):
				v.fail(block+"."+ref.Key, "%q is a connector of type %s; it must be %s", ref.ID, typ, oneOf(ref.Types))
			}
		}
	}
}

// secretFields refuses a literal in a block's string fields tagged
// `config:"secret"`: they are written as ${ENV} references.
func (v *validator) secretFields(key string, block ConnectorConfig) {
	s := reflect.Indirect(reflect.ValueOf(block))
	for i := range s.NumField() {
		f := s.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.Tag.Get("config") == "secret" && s.Field(i).String() != "" && !v.fromEnv(key+"."+name) {
			v.fail(key+"."+name, "must be a ${ENV} reference, never a literal")
		}
	}
}

// oneOf lists choices as "a, b or c".
func oneOf(choices []string) string {
	if len(choices) < 2 {
		return strings.Join(choices, "")
	}
	return strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
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

// CheckMFAValues checks a list of values by which an upstream says a login
// used several factors: what they are (e.g. "an acr value"), each once.
func CheckMFAValues(errs *Errors, key string, values []string, what string) {
	seen := map[string]bool{}
	for i, s := range values {
		k := fmt.Sprintf("%s[%d]", key, i)
		switch {
		case s == "" || strings.TrimSpace(s) != s || strings.ContainsAny(s, " \t\r\n"):
			errs.Add(k, "must be %s, without spaces", what)
		case seen[s]:
			errs.Add(k, "%q is listed twice", s)
		}
		seen[s] = true
	}
}

func (v *validator) mfa(key, policy string) {
	if !slices.Contains(MFAPolicies, policy) {
		v.fail(key, "must be off, optional or required")
	}
}
