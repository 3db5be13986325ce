package config_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fedhub/fedhub/config"
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
	if ad.LDAP == nil || !ad.LDAP.ActiveDirectory || ad.LDAP.BindPassword != "pw" || len(ad.Mappers) != 2 || !ad.Sync.Force() {
		t.Errorf("ldap connector = %+v", ad)
	}
	if partner.SAML == nil || !partner.Hidden || partner.SAML.Attributes["email"] != "mail" || !partner.IsEnabled() ||
		partner.Groups != config.GroupsPassthrough || !partner.MultipleIdentities || ad.Groups != "" || ad.MultipleIdentities ||
		!slices.Equal(partner.SAML.MFAContextClasses, []string{"urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract",
			"http://schemas.openid.net/pape/policies/2007/06/multi-factor"}) {
		t.Errorf("saml connector = %+v", partner)
	}
	if up.OIDC == nil || up.IsEnabled() || up.OIDC.Claims["groups"] != "roles" || up.OIDC.MaxAgeWithoutUpstream != 8*time.Hour ||
		up.RecheckInterval != time.Minute || up.UpstreamDown != config.UpstreamFailOpen ||
		!slices.Equal(up.OIDC.MFAACRValues, []string{"gold", "urn:example:loa:3"}) {
		t.Errorf("oidc connector = %+v", up)
	}
}

func TestConnectorErrors(t *testing.T) {
	const head = "issuer: https://login.example.com\nconnectors:\n"
	for _, c := range []struct {
		name, yaml string
		want       []string // "line N: key: part of the message"
	}{
		{"no type", "  - id: x\n", []string{"line 3: connectors[0].type: must be ldap, saml, oidc or kerberos"}},
		{"kerberos resolve_with no ldap connector", "  - id: k\n    type: kerberos\n    kerberos:\n      resolve_with: corp-ad\n",
			[]string{"line 6: connectors[0].kerberos.resolve_with: must be the id of an ldap connector listed before it"}},
		{"reserved id", "  - id: local\n    type: oidc\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n",
			[]string{`line 3: connectors[0].id: "local" is the built-in`}},
		{"id in URLs", "  - id: Corp AD\n    type: oidc\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n",
			[]string{"line 3: connectors[0].id: must be 1-64 lower-case"}},
		{"missing block", "  - id: x\n    type: ldap\n", []string{"line 3: connectors[0].ldap: is required for a connector of type ldap"}},
		{"wrong block", "  - id: x\n    type: oidc\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n    saml: {idp_metadata_file: m.xml}\n",
			[]string{"line 6: connectors[0].saml: does not belong to a connector of type oidc"}},
		{"plain ldap", "  - id: x\n    type: ldap\n    ldap:\n      urls: [ldap://dc.example.com]\n      user_base: dc=x\n",
			[]string{"line 6: connectors[0].ldap.urls[0]: plain LDAP sends passwords in clear"}},
		{"literal bind password", "  - id: x\n    type: ldap\n    ldap:\n      urls: [ldaps://dc.example.com]\n      bind_dn: cn=a\n      bind_password: hunter2\n      user_base: dc=x\n",
			[]string{"line 8: connectors[0].ldap.bind_password: must be a ${ENV} reference"}},
		{"no user base", "  - id: x\n    type: ldap\n    ldap:\n      srv: example.com\n      start_tls: true\n",
			[]string{"line 6: connectors[0].ldap.user_base: is required"}},
		{"saml metadata twice", "  - id: x\n    type: saml\n    saml:\n      idp_metadata_file: m.xml\n      idp_metadata_url: https://idp.example/md\n",
			[]string{"line 7: connectors[0].saml.idp_metadata_url: give exactly one of"}},
		{"oidc over http", "  - id: x\n    type: oidc\n    oidc: {issuer: http://idp.example.com, client_id: c, client_secret: \"${S}\"}\n",
			[]string{"line 5: connectors[0].oidc.issuer: must be the upstream's https issuer URL"}},
		{"literal client secret", "  - id: x\n    type: oidc\n    oidc:\n      issuer: https://a.example\n      client_id: c\n      client_secret: s3cret\n",
			[]string{"line 8: connectors[0].oidc.client_secret: must be a ${ENV} reference"}},
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
		{"saml mfa classes", "  - id: x\n    type: saml\n    saml:\n      idp_metadata_file: m.xml\n      mfa_context_classes:\n        - urn:a\n        - \"\"\n        - urn:a\n        - \"urn:b \"\n",
			[]string{"line 9: connectors[0].saml.mfa_context_classes[1]: must be an AuthnContextClassRef URI",
				`line 10: connectors[0].saml.mfa_context_classes[2]: "urn:a" is listed twice`,
				"line 11: connectors[0].saml.mfa_context_classes[3]: must be an AuthnContextClassRef URI"}},
		{"oidc mfa acr values", "  - id: x\n    type: oidc\n    oidc:\n      issuer: https://a.example\n      client_id: c\n      client_secret: \"${S}\"\n      mfa_acr_values: [gold, \"gold silver\"]\n",
			[]string{"line 9: connectors[0].oidc.mfa_acr_values[1]: must be an acr value"}},
		{"recheck interval too short", "  - id: x\n    type: oidc\n    recheck_interval: 500ms\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n",
			[]string{"line 5: connectors[0].recheck_interval: must be between 1s and 24h"}},
		{"upstream down", "  - id: x\n    type: oidc\n    upstream_down: ignore\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n",
			[]string{"line 5: connectors[0].upstream_down: must be fail_closed"}},
		{"negative max age", "  - id: x\n    type: saml\n    saml:\n      idp_metadata_file: m.xml\n      max_age_without_upstream: -1h\n",
			[]string{"line 7: connectors[0].saml.max_age_without_upstream: must not be negative"}},
		{"duplicate id", "  - id: x\n    type: oidc\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n  - id: x\n    type: oidc\n    oidc: {issuer: https://a.example, client_id: c, client_secret: \"${S}\"}\n",
			[]string{`line 6: connectors[1].id: "x" is used by another connector`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse([]byte(head+c.yaml), env(map[string]string{"S": "secret"}))
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
