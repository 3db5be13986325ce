package connectors_test

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/brokers/ldap"
	"github.com/fedhub/fedhub/brokers/oidc"
	"github.com/fedhub/fedhub/brokers/saml"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/connectors"
)

const head = "issuer: https://login.example.com\nconnectors:\n"

func parse(yaml string) (*config.Config, error) {
	return config.Parse([]byte(head+yaml), func(name string) (string, bool) {
		if name == "S" {
			return "secret", true
		}
		return "", false
	}, connectors.Types())
}

// TestBlockErrors: each connector type validates its own block, and the
// loader names the key and the line of every problem.
func TestBlockErrors(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       []string // "line N: key: part of the message"
	}{
		{"ldap URL with a user and a path", "  - id: x\n    type: ldap\n    ldap:\n      urls: [ldaps://user@dc.example.com/ou=people]\n      user_base: dc=x\n",
			[]string{"line 6: connectors[0].ldap.urls[0]: must be ldap://host[:port] or ldaps://host[:port]"}},
		{"plain ldap", "  - id: x\n    type: ldap\n    ldap:\n      urls: [ldap://dc.example.com]\n      user_base: dc=x\n",
			[]string{"line 6: connectors[0].ldap.urls[0]: plain LDAP sends passwords in clear"}},
		{"ldap unknown key", "  - id: x\n    type: ldap\n    ldap:\n      urls: [ldaps://dc.example.com]\n      user_base: dc=x\n      bind_pasword: x\n",
			[]string{"line 8: connectors[0].ldap.bind_pasword: unknown key"}},
		{"ldap value of the wrong kind", "  - id: x\n    type: ldap\n    ldap:\n      urls: [ldaps://dc.example.com]\n      user_base: dc=x\n      pool_size: many\n",
			[]string{`line 8: connectors[0].ldap.pool_size: cannot read "many" as a whole number`}},
		{"literal bind password", "  - id: x\n    type: ldap\n    ldap:\n      urls: [ldaps://dc.example.com]\n      bind_dn: cn=a\n      bind_password: hunter2\n      user_base: dc=x\n",
			[]string{"line 8: connectors[0].ldap.bind_password: must be a ${ENV} reference"}},
		{"no user base", "  - id: x\n    type: ldap\n    ldap:\n      srv: example.com\n      start_tls: true\n",
			[]string{"line 6: connectors[0].ldap.user_base: is required"}},
		{"ldap bad DN", "  - id: x\n    type: ldap\n    ldap:\n      urls: [ldaps://dc.example.com]\n      user_base: not a dn\n",
			[]string{`line 7: connectors[0].ldap.user_base: "not a dn" is not a DN`}},
		{"saml metadata twice", "  - id: x\n    type: saml\n    saml:\n      idp_metadata_file: m.xml\n      idp_metadata_url: https://idp.example/md\n",
			[]string{"line 7: connectors[0].saml.idp_metadata_url: give exactly one of"}},
		{"saml transient NameID", "  - id: x\n    type: saml\n    saml:\n      idp_metadata_url: https://idp.example/md\n      nameid_format: urn:oasis:names:tc:SAML:2.0:nameid-format:transient\n",
			[]string{"line 7: connectors[0].saml.nameid_format: urn:oasis:names:tc:SAML:2.0:nameid-format:transient is not a stable identifier"}},
		{"oidc over http", "  - id: x\n    type: oidc\n    oidc: {issuer: http://idp.example.com, client_id: c, client_secret: \"${S}\"}\n",
			[]string{"line 5: connectors[0].oidc.issuer: must be the upstream's https issuer URL"}},
		{"literal client secret", "  - id: x\n    type: oidc\n    oidc:\n      issuer: https://a.example\n      client_id: c\n      client_secret: s3cret\n",
			[]string{"line 8: connectors[0].oidc.client_secret: must be a ${ENV} reference"}},
		{"saml mfa classes", "  - id: x\n    type: saml\n    saml:\n      idp_metadata_file: m.xml\n      mfa_context_classes:\n        - urn:a\n        - \"\"\n        - urn:a\n        - \"urn:b \"\n",
			[]string{"line 9: connectors[0].saml.mfa_context_classes[1]: must be an AuthnContextClassRef URI",
				`line 10: connectors[0].saml.mfa_context_classes[2]: "urn:a" is listed twice`,
				"line 11: connectors[0].saml.mfa_context_classes[3]: must be an AuthnContextClassRef URI"}},
		{"oidc mfa acr values", "  - id: x\n    type: oidc\n    oidc:\n      issuer: https://a.example\n      client_id: c\n      client_secret: \"${S}\"\n      mfa_acr_values: [gold, \"gold silver\"]\n",
			[]string{"line 9: connectors[0].oidc.mfa_acr_values[1]: must be an acr value"}},
		{"oidc unknown claim", "  - id: x\n    type: oidc\n    oidc:\n      issuer: https://a.example\n      client_id: c\n      client_secret: \"${S}\"\n      claims: {subject: oid}\n",
			[]string{"line 9: connectors[0].oidc.claims.subject: must be one of username, email, name, groups, email_verified"}},
		{"kerberos without keytab, SPN with a realm", "  - id: x\n    type: kerberos\n    kerberos:\n      service_principal: HTTP/sso.example.com@EXAMPLE.COM\n      realm: EXAMPLE.COM\n",
			[]string{"line 6: connectors[0].kerberos.keytab_file: is required",
				"line 6: connectors[0].kerberos.service_principal: must be service/host without a realm"}},
		{"kerberos auto_for not a CIDR", "  - id: x\n    type: kerberos\n    kerberos: {keytab_file: k, service_principal: HTTP/sso.example.com, realm: EXAMPLE.COM, auto_for: [10.0.0.1]}\n",
			[]string{"line 5: connectors[0].kerberos.auto_for: \"10.0.0.1\" is not a CIDR"}},
		{"negative max age", "  - id: x\n    type: saml\n    saml:\n      idp_metadata_file: m.xml\n      max_age_without_upstream: -1h\n",
			[]string{"line 7: connectors[0].saml.max_age_without_upstream: must not be negative"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(c.yaml)
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse = %v, want config.Errors for:\n%s", err, c.yaml)
			}
			got := strings.Split(errs.Error(), "\n")
			if len(got) != len(c.want) {
				t.Errorf("got %d errors, want %d:\n%s", len(got), len(c.want), errs)
			}
			for _, w := range c.want {
				found := false
				for _, g := range got {
					found = found || strings.HasPrefix(g, w)
				}
				if !found {
					t.Errorf("no error starting %q in:\n%s", w, errs)
				}
			}
		})
	}
}

// TestOpen: the registry builds each type's connector from its block and
// the run-time dependencies, without contacting the upstream, and leaves the
// block as it was (a reload compares blocks to decide what to rebuild).
func TestOpen(t *testing.T) {
	const yaml = `  - id: corp
    type: ldap
    ldap: {urls: [ldaps://dc.example.com], user_base: dc=example}
  - id: up
    type: oidc
    oidc: {issuer: https://a.example, client_id: c, client_secret: "${S}"}
  - id: partner
    type: saml
    saml: {idp_metadata_url: https://idp.example/md}
`
	cfg, err := parse(yaml)
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := parse(yaml)
	for i, want := range []any{(*ldap.Connector)(nil), (*oidc.Connector)(nil), (*saml.Connector)(nil)} {
		c := cfg.Connectors[i]
		t.Run(c.Type, func(t *testing.T) {
			impl, err := connectors.Open(context.Background(), c, brokers.Deps{ID: c.ID, Name: c.ID, Issuer: cfg.Issuer,
				Store: &memStore{}, Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatalf("Open = %v", err)
			}
			if reflect.TypeOf(impl) != reflect.TypeOf(want) {
				t.Errorf("Open = %T, want %T", impl, want)
			}
			if !reflect.DeepEqual(c.Settings, fresh.Connectors[i].Settings) {
				t.Errorf("Open changed the block: %+v, was %+v", c.Settings, fresh.Connectors[i].Settings)
			}
		})
	}
	if _, err := connectors.Open(context.Background(), config.Connector{ID: "x", Type: "kerberos"}, brokers.Deps{}); err == nil {
		t.Error("Open built a connector of a type that is not registered")
	}
}

// memStore is a brokers.ConnectorStore in memory.
type memStore struct{ values map[string][]byte }

func (s *memStore) Once(context.Context, string, time.Time) (bool, error) { return true, nil }

func (s *memStore) Value(_ context.Context, key string, create func() ([]byte, error)) ([]byte, error) {
	if v, ok := s.values[key]; ok {
		return v, nil
	}
	v, err := create()
	if err != nil {
		return nil, err
	}
	if s.values == nil {
		s.values = map[string][]byte{}
	}
	s.values[key] = v
	return v, nil
}
