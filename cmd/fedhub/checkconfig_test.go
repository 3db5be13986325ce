package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// krbBlock is a valid Kerberos block but for resolve_with.
const krbBlock = "      keytab_file: /etc/fedhub/http.keytab\n      service_principal: HTTP/login.example.com\n      realm: EXAMPLE.COM\n"

// TestCheckConfigAgreesWithServe: check-config and serve load the same way,
// so a connector block that one refuses the other refuses with the same
// message, naming the key and the line. The ldaps URL, and a resolve_with
// naming no ldap connector, once passed check-config and were refused by
// serve.
func TestCheckConfigAgreesWithServe(t *testing.T) {
	const head = "issuer: https://login.example.com\nstorage: {driver: sqlite, dsn: %DB%}\nconnectors:\n  - id: corp\n"
	for _, c := range []struct {
		name, block, want string
	}{
		{"ldaps URL with a user and a path", "    type: ldap\n    ldap:\n      urls: [ldaps://user@dc.example.com/ou=people]\n      user_base: dc=example,dc=com\n",
			"line 7: connectors[0].ldap.urls[0]: must be ldap://host[:port] or ldaps://host[:port]"},
		{"SAML transient NameID without a subject", "    type: saml\n    saml:\n      idp_metadata_url: https://idp.example/md\n      nameid_format: urn:oasis:names:tc:SAML:2.0:nameid-format:transient\n",
			"line 8: connectors[0].saml.nameid_format: urn:oasis:names:tc:SAML:2.0:nameid-format:transient is not a stable identifier"},
		{"OIDC scope with a space", "    type: oidc\n    oidc:\n      issuer: https://idp.example\n      client_id: c\n      client_secret: ${CHECKCONFIG_SECRET}\n      scopes: [\"a b\"]\n",
			`line 10: connectors[0].oidc.scopes[0]: "a b" is not a scope`},
		{"Kerberos resolving with a connector that is not there", "    type: kerberos\n    kerberos:\n" + krbBlock + "      resolve_with: corp-ad\n",
			`line 10: connectors[0].kerberos.resolve_with: "corp-ad" is not a connector listed before this one`},
		{"Kerberos resolving with an OIDC connector", "    type: oidc\n    oidc:\n      issuer: https://idp.example\n      client_id: c\n      client_secret: ${CHECKCONFIG_SECRET}\n" +
			"  - id: krb\n    type: kerberos\n    kerberos:\n" + krbBlock + "      resolve_with: corp\n",
			`line 16: connectors[1].kerberos.resolve_with: "corp" is a connector of type oidc; it must be ldap`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("CHECKCONFIG_SECRET", "s3cret")
			dir := t.TempDir()
			file := filepath.Join(dir, "fedhub.yaml")
			yaml := strings.Replace(head, "%DB%", filepath.Join(dir, "fedhub.db"), 1) + c.block
			if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			checked := checkConfig([]string{"-c", file}, io.Discard)
			served := serve(context.Background(), []string{"-c", file}, io.Discard, io.Discard)
			if checked == nil || served == nil {
				t.Fatalf("check-config = %v, serve = %v; want both to refuse:\n%s", checked, served, yaml)
			}
			if !strings.Contains(checked.Error(), c.want) {
				t.Errorf("check-config = %v, want %q", checked, c.want)
			}
			if checked.Error() != served.Error() {
				t.Errorf("check-config and serve disagree:\ncheck-config: %v\nserve:        %v", checked, served)
			}
		})
	}
}
