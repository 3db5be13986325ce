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
		{"none: the identity as it is", nil,
			Profile{Username: "alice", Email: "alice@corp.example", Name: "Alice", Groups: []string{"Domain Admins", "Engineering"}}},
		{"attribute to name", Mappers{{Kind: MapAttribute, Source: "department", Target: "name"}},
			Profile{Username: "alice", Email: "alice@corp.example", Name: "R&D", Groups: []string{"Domain Admins", "Engineering"}}},
		{"first value of a list", Mappers{{Kind: MapAttribute, Source: "mails", Target: "email"}},
			Profile{Username: "alice", Email: "a@corp.example", Name: "Alice", Groups: []string{"Domain Admins", "Engineering"}}},
		{"missing or empty attribute changes nothing", Mappers{{Kind: MapAttribute, Source: "empty", Target: "name"}, {Kind: MapAttribute, Source: "nope", Target: "email"}},
			Profile{Username: "alice", Email: "alice@corp.example", Name: "Alice", Groups: []string{"Domain Admins", "Engineering"}}},
		{"group to role", Mappers{{Kind: MapGroupToRole, Group: "Domain Admins", Role: "admin"}, {Kind: MapGroupToRole, Group: "Sales", Role: "seller"}},
			Profile{Username: "alice", Email: "alice@corp.example", Name: "Alice", Roles: []string{"admin"}, Groups: []string{"Domain Admins", "Engineering"}}},
		{"group to group renames", Mappers{{Kind: MapGroupToGroup, Group: "Engineering", To: "eng"}},
			Profile{Username: "alice", Email: "alice@corp.example", Name: "Alice", Groups: []string{"Domain Admins", "eng"}}},
		{"hardcoded role, once", Mappers{{Kind: MapHardcodedRole, Role: "employee"}, {Kind: MapHardcodedRole, Role: "employee"}},
			Profile{Username: "alice", Email: "alice@corp.example", Name: "Alice", Roles: []string{"employee"}, Groups: []string{"Domain Admins", "Engineering"}}},
		{"username template", Mappers{{Kind: MapUsernameTemplate, Template: tmpl}},
			Profile{Username: "corp-alice", Email: "alice@corp.example", Name: "Alice", Groups: []string{"Domain Admins", "Engineering"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.mappers.Apply(id)
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
	_, err := Mappers(nil).Apply(login.Identity{Subject: "x"})
	var ue *login.UserError
	if !errors.As(err, &ue) {
		t.Fatalf("an identity without a username gave %v, want a UserError", err)
	}
}
