package brokers

import (
	"fmt"
	"slices"
	"strings"
	"text/template"

	"github.com/fedhub/fedhub/login"
)

// Mapper kinds.
const (
	MapAttribute        = "attribute"         // a claim or attribute → username | email | name
	MapGroupToRole      = "group_to_role"     // an upstream group → a local role
	MapGroupToGroup     = "group_to_group"    // an upstream group → a local group
	MapHardcodedRole    = "hardcoded_role"    // every user of the connector gets a role
	MapUsernameTemplate = "username_template" // the local username, from a template
)

// Mapper is one rule of a connector's mapping.
type Mapper struct {
	Kind     string
	Source   string // MapAttribute
	Target   string // MapAttribute: username | email | name
	Group    string // MapGroupTo*
	Role     string // MapGroupToRole, MapHardcodedRole
	To       string // MapGroupToGroup
	Template *template.Template
}

// Mappers are a connector's rules, applied in order.
type Mappers []Mapper

// Profile is the local user data an upstream identity maps to.
type Profile struct {
	Username string
	Email    string
	Name     string
	Roles    []string
	Groups   []string // local groups: only what group_to_group mappers grant, and namespaced passthrough
}

// Apply maps an identity to a local profile. An upstream group becomes a
// local group only through a group_to_group mapper: an upstream's "ops" is
// not the local "ops". The groups no such mapper maps are dropped, or, with
// a passthrough namespace (the connector's ID, `groups: passthrough`), kept
// as "<namespace>:<group>", where they cannot be taken for local groups.
func (ms Mappers) Apply(id login.Identity, passthrough string) (Profile, error) {
	p := Profile{Username: id.Username, Email: id.Email, Name: id.Name}
	mapped := map[string]bool{}
	for _, m := range ms {
		switch m.Kind {
		case MapAttribute:
			v, ok := rawString(id.Raw, m.Source)
			if !ok {
				continue
			}
			switch m.Target {
			case "username":
				p.Username = v
			case "email":
				p.Email = v
			case "name":
				p.Name = v
			}
		case MapGroupToRole:
			if slices.Contains(id.Groups, m.Group) {
				p.Roles = appendNew(p.Roles, m.Role)
			}
		case MapGroupToGroup:
			mapped[m.Group] = true
			if slices.Contains(id.Groups, m.Group) {
				p.Groups = appendNew(p.Groups, m.To)
			}
		case MapHardcodedRole:
			p.Roles = appendNew(p.Roles, m.Role)
		case MapUsernameTemplate:
			var b strings.Builder
			if err := m.Template.Execute(&b, id); err != nil {
				return Profile{}, fmt.Errorf("username template: %w", err)
			}
			p.Username = b.String()
		}
	}
	if passthrough != "" {
		for _, g := range id.Groups {
			if !mapped[g] && strings.TrimSpace(g) != "" {
				p.Groups = appendNew(p.Groups, passthrough+":"+g)
			}
		}
	}
	if strings.TrimSpace(p.Username) == "" {
		return Profile{}, &login.UserError{Message: "Your account has no username fedhub can use. Contact your administrator."}
	}
	return p, nil
}

func rawString(raw map[string]any, key string) (string, bool) {
	switch v := raw[key].(type) {
	case string:
		return v, v != ""
	case []string:
		if len(v) > 0 {
			return v[0], true
		}
	case []any:
		if len(v) > 0 {
			s, ok := v[0].(string)
			return s, ok
		}
	}
	return "", false
}

func appendNew(list []string, v string) []string {
	if v == "" || slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}
