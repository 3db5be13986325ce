package brokers

import (
	"errors"
	"slices"
	"testing"
	"text/template"

	"github.com/fedhub/fedhub/login"
)

func TestMappersApply(t *testing.T) {
	id := login.Identity{Username: "alice", Email: "alice@corp.example", Name: "Alice",
		Groups: []string{"Domain Admins", "Engineering"},
		Raw:    map[string]any{"department": "R&D", "mails": []any{"a@corp.example", "b@corp.example"}, "empty": ""}}
	tmpl := template.Must(template.New("u").Option("missingkey=error").Parse("corp-{{.Username}}"))
	for _, c := range []struct {
		name    string
		mappers Mappers
		want    Profile
	}{
		{"none: the identity as it is, without its groups", nil,
			Profile{Username: "alice", Email: "alice@corp.example", Name: "Alice"}},
		{"attribute to name", Mappers{{Kind: MapAttribute, Source: "department", Target: "name"}},
			Profile{Username: "alice", Email: "alice@corp.example", Name: "R&D"}},
		{"first value of a list", Mappers{{Kind: MapAttribute, Source: "mails", Target: "email"}},
			Profile{Username: "alice", Email: "a@corp.example", Name: "Alice"}},
		{"missing or empty attribute changes nothing", Mappers{{Kind: MapAttribute, Source: "empty", Target: "name"}, {Kind: MapAttribute, Source: "nope", Target: "email"}},
			Profile{Username: "alice", Email: "alice@corp.example", Name: "Alice"}},
		{"group to role", Mappers{{Kind: MapGroupToRole, Group: "Domain Admins", Role: "admin"}, {Kind: MapGroupToRole, Group: "Sales", Role: "seller"}},
			Profile{Username: "alice", Email: "alice@corp.example", Name: "Alice", Roles: []string{"admin"}}},
		{"group to group: the only way to a local group", Mappers{{Kind: MapGroupToGroup, Group: "Engineering", To: "eng"}},
			Profile{Username: "alice", Email: "alice@corp.example", Name: "Alice", Groups: []string{"eng"}}},
		{"two upstream groups to one local group, once", Mappers{{Kind: MapGroupToGroup, Group: "Engineering", To: "eng"}, {Kind: MapGroupToGroup, Group: "Domain Admins", To: "eng"}},
			Profile{Username: "alice", Email: "alice@corp.example", Name: "Alice", Groups: []string{"eng"}}},
		{"a mapper of a group the identity lacks", Mappers{{Kind: MapGroupToGroup, Group: "Sales", To: "sales"}},
			Profile{Username: "alice", Email: "alice@corp.example", Name: "Alice"}},
		{"hardcoded role, once", Mappers{{Kind: MapHardcodedRole, Role: "employee"}, {Kind: MapHardcodedRole, Role: "employee"}},
			Profile{Username: "alice", Email: "alice@corp.example", Name: "Alice", Roles: []string{"employee"}}},
		{"username template", Mappers{{Kind: MapUsernameTemplate, Template: tmpl}},
			Profile{Username: "corp-alice", Email: "alice@corp.example", Name: "Alice"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.mappers.Apply(id, "")
			if err != nil {
				t.Fatal(err)
			}
			if got.Username != c.want.Username || got.Email != c.want.Email || got.Name != c.want.Name ||
				!slices.Equal(got.Roles, c.want.Roles) || !slices.Equal(got.Groups, c.want.Groups) {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
	if !slices.Equal(id.Groups, []string{"Domain Admins", "Engineering"}) {
		t.Fatalf("Apply changed the identity's groups: %v", id.Groups)
	}
}

func TestMappersNoUsername(t *testing.T) {
	_, err := Mappers(nil).Apply(login.Identity{Subject: "x"}, "")
	var ue *login.UserError
	if !errors.As(err, &ue) {
		t.Fatalf("an identity without a username gave %v, want a UserError", err)
	}
}

// TestMappersGroupsPassthrough: with `groups: passthrough`, the groups no
// group_to_group mapper maps are kept under the connector's namespace, never
// as local groups; the mapped ones become their local groups only.
func TestMappersGroupsPassthrough(t *testing.T) {
	id := login.Identity{Username: "pat", Groups: []string{"ops", "Engineering", "admin", "", "ops"}}
	ms := Mappers{{Kind: MapGroupToGroup, Group: "Engineering", To: "eng"}, {Kind: MapGroupToRole, Group: "admin", Role: "auditor"}}
	got, err := ms.Apply(id, "partner")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"eng", "partner:ops", "partner:admin"}; !slices.Equal(got.Groups, want) {
		t.Fatalf("groups = %q, want %q", got.Groups, want)
	}
	if !slices.Equal(got.Roles, []string{"auditor"}) {
		t.Fatalf("roles = %q", got.Roles)
	}
	// Dropped by default: an upstream's "ops" is never the local "ops".
	if got, err = ms.Apply(id, ""); err != nil || !slices.Equal(got.Groups, []string{"eng"}) {
		t.Fatalf("groups = %q, %v; want only the mapped eng", got.Groups, err)
	}
}

// TestConnectorProfileGroups: a connector's profile drops unmapped groups
// unless it passes them through, namespaced with its ID.
func TestConnectorProfileGroups(t *testing.T) {
	id := login.Identity{Username: "pat", Groups: []string{"ops"}}
	c := Connector{ID: "partner"}
	if p, err := c.profile(id); err != nil || len(p.Groups) != 0 {
		t.Fatalf("default: groups %q, %v; want none", p.Groups, err)
	}
	c.GroupsPassthrough = true
	if p, err := c.profile(id); err != nil || !slices.Equal(p.Groups, []string{"partner:ops"}) {
		t.Fatalf("passthrough: groups %q, %v; want partner:ops", p.Groups, err)
	}
}
