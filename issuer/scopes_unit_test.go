package issuer

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/linking"
)

func TestUnitScopeClaims(t *testing.T) {
	no := false
	cfg := &config.Config{
		ClientScopes: []config.ClientScope{
			{Name: "org", Mappers: []config.ClaimMapper{
				{Type: config.MapperHardcoded, Claim: "org.tenant", Value: "acme"},
				{Type: config.MapperUserAttribute, Attribute: "email", Claim: "org.mail"},
				{Type: config.MapperRole, Claim: "perms", Prefix: "app:"},
				{Type: config.MapperGroupMembership, Claim: "perms", IDToken: &no},
				{Type: config.MapperAudience, Audience: "audit"},
			}},
			{Name: "idaud", Mappers: []config.ClaimMapper{{Type: config.MapperAudience, Audience: "peer", IDToken: new(bool(true)), AccessToken: &no}}},
		},
		APIs: []config.API{{ID: "orders", Scopes: []string{"orders:read"}}, {ID: "billing"}},
		Clients: []config.Client{
			{ID: "app", DefaultScopes: []string{"roles"}, OptionalScopes: []string{"org", "idaud"}, APIs: []string{"orders", "billing"}},
		},
	}
	ss, err := newScopeSet(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cs := ss.of("app")
	u := &linking.User{ID: "u1", Username: "ann", Email: "ann@example.com", Roles: []string{"app:read", "admin"}, Groups: []string{"ops", "app:read"}}
	const roles = `"realm_access":{"roles":["app:read","admin"]}`
	for _, c := range []struct {
		name, scope, resources string
		t                      target
		claims                 string // as JSON
		aud                    any
	}{
		{"default scope only", "openid", "", toAccessToken, `{` + roles + `}`, "app"},
		{"optional scope: nesting, prefix, lists merged, an audience", "openid org", "", toAccessToken,
			`{"org":{"mail":"ann@example.com","tenant":"acme"},"perms":["app:read","ops"],` + roles + `}`, []string{"app", "audit"}},
		{"a target the group mapper skips", "org", "", toIDToken,
			`{"org":{"mail":"ann@example.com","tenant":"acme"},"perms":["app:read"],` + roles + `}`, []string{"app"}},
		{"resources and an API's scope", "orders:read", "billing", toAccessToken, `{` + roles + `}`, []string{"billing", "orders"}},
		{"the ID token's audience is the client's, plus its mappers'", "orders:read idaud", "billing", toIDToken,
			`{` + roles + `}`, []string{"app", "peer"}},
	} {
		got := map[string]any{}
		cs.addClaims(got, u, c.scope, c.t)
		if raw, err := json.Marshal(got); err != nil || string(raw) != c.claims {
			t.Errorf("%s: claims\n got %s (%v)\nwant %s", c.name, raw, err, c.claims)
		}
		if aud := cs.audience(c.scope, c.resources, c.t); !reflect.DeepEqual(aud, c.aud) {
			t.Errorf("%s: aud %#v, want %#v", c.name, aud, c.aud)
		}
	}
}
