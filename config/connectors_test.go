package config_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fedhub/fedhub/brokers/ldap"
	"github.com/fedhub/fedhub/brokers/oidc"
	"github.com/fedhub/fedhub/brokers/saml"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/connectors"
)

// TestSyncForms reads both forms of sync: the mode alone (as before) and the
// mapping with the directory sync's switches.
func TestSyncForms(t *testing.T) {
	for _, c := range []struct {
		name, sync string
		want       config.Sync
	}{
		{"absent", "", config.Sync{}},
		{"scalar", "    sync: force\n", config.Sync{Mode: "force"}},
		{"mapping", "    sync:\n      mode: force\n      import: on\n      period: 6h\n", config.Sync{Mode: "force", Import: true, Period: 6 * time.Hour}},
		{"flow mapping", "    sync: {import: true}\n", config.Sync{Import: true}},
		{"off", "    sync: {mode: import, import: off}\n", config.Sync{Mode: "import"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := mustParse(t, "issuer: https://login.example.com\nconnectors:\n  - id: corp\n    type: ldap\n"+c.sync+
				"    ldap: {urls: [ldaps://dc.example.com], user_base: dc=example}\n", env(nil))
			got := cfg.Connectors[0].Sync
			if got.Mode != c.want.Mode || got.Import != c.want.Import || got.Period != c.want.Period {
				t.Errorf("sync = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestConnectorsValid(t *testing.T) {
	cfg := mustParse(t, `issuer: https://login.example.com
connectors:
  - id: corp-ad
    type: ldap
    name: Corporate AD
    label: Login with Corporate AD
    sync: force
    mappers:
      - {type: group_to_role, group: Domain Admins, role: admin}
      - {type: username_template, template: "{{.Username}}"}
    ldap:
      urls: [ldaps://dc1.example.com, ldaps://dc2.example.com]
      bind_dn: cn=svc,dc=example,dc=com
      bind_password: ${BIND}
      active_directory: true
      user_base: dc=example,dc=com
      timeout: 5s
  - id: partner
    type: saml
    hidden: true
    groups: passthrough
    multiple_identities: true
    saml:
      idp_metadata_url: https://idp.partner.example/metadata
      attributes: {email: mail}
      mfa_context_classes:
        - urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract
        - http://schemas.openid.net/pape/policies/2007/06/multi-factor
  - id: upstream
    type: oidc
    enabled: false
    oidc:
      issuer: https://accounts.example.com
      client_id: fedhub
      client_secret: ${UPSTREAM_SECRET}
      claims: {groups: roles}
      mfa_acr_values: [gold, "urn:example:loa:3"]
      max_age_without_upstream: 8h
    recheck_interval: 1m
    upstream_down: fail_open
`, env(map[string]string{"BIND": "pw", "UPSTREAM_SECRET": "s"}))
	if len(cfg.Connectors) != 3 {
		t.Fatalf("connectors = %+v", cfg.Connectors)
	}
	ad, partner, up := cfg.Connectors[0], cfg.Connectors[1], cfg.Connectors[2]
	l, _ := ad.Settings.(*ldap.Config)
	if l == nil || !l.ActiveDirectory || l.BindPassword != "pw" || l.Timeout != 5*time.Second || len(ad.Mappers) != 2 || !ad.Sync.Force() {
		t.Errorf("ldap connector = %+v, block %+v", ad, l)
	}
	s, _ := partner.Settings.(*saml.Config)
	if s == nil || !partner.Hidden || s.Attributes["email"] != "mail" || !partner.IsEnabled() ||
		partner.Groups != config.GroupsPassthrough || !partner.MultipleIdentities || ad.Groups != "" || ad.MultipleIdentities ||
		!slices.Equal(s.MFAContextClasses, []string{"urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
			"http://schemas.openid.net/pape/policies/2007/06/multi-factor"}) {
		t.Errorf("saml connector = %+v, block %+v", partner, s)
	}
	o, _ := up.Settings.(*oidc.Config)
	if o == nil || up.IsEnabled() || o.Claims["groups"] != "roles" || o.MaxAgeWithoutUpstream != 8*time.Hour ||
		up.RecheckInterval != time.Minute || up.UpstreamDown != config.UpstreamFailOpen || o.ClientSecret != "s" ||
		!slices.Equal(o.MFAACRValues, []string{"gold", "urn:example:loa:3"}) {
		t.Errorf("oidc connector = %+v, block %+v", up, o)
	}
}

func TestConnectorErrors(t *testing.T) {
	const head = "issuer: https://login.example.com\nconnectors:\n"
	for _, c := range []struct {
		name, yaml string
		want       []string // "line N: key: part of the message"
	}{
		{"no type", "  - id: x\n", []string{`line 3: connectors[0].type: must be kerberos, ldap, oidc or saml, not ""`}},
		{"reserved id", "  - id: local\n    type: oidc\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n",
			[]string{`line 3: connectors[0].id: "local" is the built-in`}},
		{"id in URLs", "  - id: Corp AD\n    type: oidc\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n",
			[]string{"line 3: connectors[0].id: must be 1-64 lower-case"}},
		{"missing block", "  - id: x\n    type: ldap\n", []string{"line 3: connectors[0].ldap: is required for a connector of type ldap"}},
		{"wrong block", "  - id: x\n    type: oidc\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n    saml: {idp_metadata_file: m.xml}\n",
			[]string{"line 6: connectors[0].saml: does not belong to a connector of type oidc"}},
		{"unknown mapper", "  - id: x\n    type: oidc\n    mappers: [{type: magic}]\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n",
			[]string{"line 5: connectors[0].mappers[0].type: must be attribute, group_to_role"}},
		{"bad template", "  - id: x\n    type: oidc\n    mappers:\n      - type: username_template\n        template: \"{{.Username\"\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n",
			[]string{"line 7: connectors[0].mappers[0].template: is not a valid template"}},
		{"bad groups", "  - id: x\n    type: oidc\n    groups: keep\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n",
			[]string{"line 5: connectors[0].groups: must be drop"}},
		{"bad sync", "  - id: x\n    type: oidc\n    sync: always\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n",
			[]string{"line 5: connectors[0].sync: must be import"}},
		{"bad sync mode", "  - id: x\n    type: oidc\n    sync:\n      mode: always\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n",
			[]string{"line 6: connectors[0].sync.mode: must be import"}},
		{"import not ldap", "  - id: x\n    type: oidc\n    sync: {import: on}\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n",
			[]string{"line 5: connectors[0].sync.import: a directory sync needs a connector of type ldap"}},
		{"sync period too short", "  - id: x\n    type: ldap\n    sync:\n      import: on\n      period: 1m\n    ldap: {urls: [ldaps://dc.example.com], user_base: dc=x}\n",
			[]string{"line 7: connectors[0].sync.period: must be at least 5m0s"}},
		{"sync period without import", "  - id: x\n    type: ldap\n    sync: {period: 1h}\n    ldap: {urls: [ldaps://dc.example.com], user_base: dc=x}\n",
			[]string{"line 5: connectors[0].sync.period: needs import: on"}},
		{"sync unknown key", "  - id: x\n    type: ldap\n    sync: {imports: on}\n    ldap: {urls: [ldaps://dc.example.com], user_base: dc=x}\n",
			[]string{"line 5: connectors[0].sync.imports: unknown key"}},
		{"sync import not a switch", "  - id: x\n    type: ldap\n    sync: {import: sometimes}\n    ldap: {urls: [ldaps://dc.example.com], user_base: dc=x}\n",
			[]string{`line 5: connectors[0].sync.import: cannot read "sometimes" as true or false`}},
		{"recheck interval too short", "  - id: x\n    type: oidc\n    recheck_interval: 500ms\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n",
			[]string{"line 5: connectors[0].recheck_interval: must be between 1s and 24h"}},
		{"upstream down", "  - id: x\n    type: oidc\n    upstream_down: ignore\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n",
			[]string{"line 5: connectors[0].upstream_down: must be fail_closed"}},
		{"duplicate id", "  - id: x\n    type: oidc\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n  - id: x\n    type: oidc\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n",
			[]string{`line 6: connectors[1].id: "x" is used by another connector`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse([]byte(head+c.yaml), env(map[string]string{"S": "secret"}), connectors.Types())
			if err == nil {
				t.Fatalf("no error for:\n%s", c.yaml)
			}
			got := errorLines(t, err)
			if len(got) != len(c.want) {
				t.Errorf("got %d errors, want %d:\n%s", len(got), len(c.want), strings.Join(got, "\n"))
			}
			for _, w := range c.want {
				found := false
				for _, g := range got {
					found = found || strings.HasPrefix(g, w)
				}
				if !found {
					t.Errorf("no error starting %q in:\n%s", w, strings.Join(got, "\n"))
				}
			}
		})
	}
}

// fakeBlock is a connector type of the tests' own: what config does with any
// registered type's block, without a real connector.
type fakeBlock struct {
	Realm    string            `yaml:"realm"`
	Password string            `yaml:"password" config:"secret"`
	Hosts    []string          `yaml:"hosts"`
	Options  map[string]string `yaml:"options"`
}

func (b *fakeBlock) Validate() error {
	var errs config.Errors
	switch b.Realm {
	case "":
		errs.Add("realm", "is required")
	case "whole":
		errs.Add("", "is refused as a whole")
	case "plain":
		return errors.New("a plain error")
	}
	for i, h := range b.Hosts {
		if strings.Contains(h, "/") {
			errs.Add(fmt.Sprintf("hosts[%d]", i), "must be a host name")
		}
	}
	return errs.Err()
}

// TestConnectorTypeBlock: the block named after a registered type is walked
// against the type's struct (strict keys, ${ENV}, lines), decoded into
// Settings and validated by it, its errors named and placed by the loader.
func TestConnectorTypeBlock(t *testing.T) {
	types := config.ConnectorTypes{"fake": func() config.ConnectorConfig { return &fakeBlock{} }}
	const head = "issuer: https://login.example.com\nconnectors:\n  - id: x\n    type: fake\n"
	lookup := env(map[string]string{"PW": "pw", "REALM": "EXAMPLE"})
	cfg, err := config.Parse([]byte(head+"    fake:\n      realm: ${REALM}\n      password: ${PW}\n      hosts: [kdc1, kdc2]\n"), lookup, types)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := cfg.Connectors[0].Settings.(*fakeBlock); b == nil || b.Realm != "EXAMPLE" || b.Password != "pw" || len(b.Hosts) != 2 {
		t.Errorf("block = %+v", cfg.Connectors[0].Settings)
	}
	for _, c := range []struct {
		name, yaml string
		want       []string
	}{
		{"errors of Validate", "    fake:\n      hosts: [kdc1, kdc/2]\n",
			[]string{"line 6: connectors[0].fake.realm: is required", "line 6: connectors[0].fake.hosts[1]: must be a host name"}},
		{"a problem of the whole block", "    fake:\n      realm: whole\n", []string{"line 6: connectors[0].fake: is refused as a whole"}},
		{"an error that names no key", "    fake:\n      realm: plain\n", []string{"line 6: connectors[0].fake: a plain error"}},
		{"unknown key", "    fake:\n      realm: R\n      ream: R\n", []string{"line 7: connectors[0].fake.ream: unknown key"}},
		{"unset variable", "    fake:\n      realm: ${NOPE}\n", []string{"line 6: connectors[0].fake.realm: environment variable NOPE is not set"}},
		{"literal secret", "    fake:\n      realm: R\n      password: pw\n", []string{"line 7: connectors[0].fake.password: must be a ${ENV} reference, never a literal"}},
		{"not a mapping", "    fake: yes\n", []string{"line 5: connectors[0].fake: expected a mapping of keys"}},
		{"no block", "    name: X\n", []string{"line 3: connectors[0].fake: is required for a connector of type fake"}},
		{"unregistered type", "    fake: {realm: R}\n    other: {}\n", []string{"line 6: connectors[0].other: unknown key"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse([]byte(head+c.yaml), lookup, types)
			if err == nil {
				t.Fatalf("no error for:\n%s", c.yaml)
			}
			if got := errorLines(t, err); !slices.Equal(got, c.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}
