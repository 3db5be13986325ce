package config_test

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/connectors"
)

// fuzzEnv is the environment the fuzzed files see.
var fuzzEnv = map[string]string{
	"WEB_SECRET": "w3b", "ADMIN_PASSWORD": "adm1n", "MY_APP_SECRET": "s", "DEMO_APP_SECRET": "demo",
	"LDAP_ADMIN_PASSWORD": "ldap", "EMPTY": "", "PORT": "8443", "TTL": "5m", "YES": "true", "COLON": "a: b",
}

// FuzzParse: config.Parse never panics; a refusal is "not valid YAML" or a
// list of problems that each name a key; a configuration it accepts validates
// again, and written back as YAML (secrets as ${ENV} references) it parses to
// the same configuration.
func FuzzParse(f *testing.F) {
	for _, path := range []string{"../README.md", "../deploy/compose/fedhub.yaml"} {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		s := string(data)
		if strings.HasSuffix(path, ".md") { // the configuration reference
			_, after, _ := strings.Cut(s, "## Configuration reference")
			_, s, _ = strings.Cut(after, "```yaml\n")
			s, _, _ = strings.Cut(s, "```")
		}
		f.Add([]byte(s))
	}
	for _, s := range []string{
		"",
		"issuer: https://login.example.com\n",
		"issuer: http://[::1]:8080\nlisten: ${EMPTY:-127.0.0.1}:${PORT}\n",
		"issuer: https://login.example.com\ntokens:\n  access_ttl: ${TTL}\n  code_ttl: 61s\n",
		"issuer: https://login.example.com\nclients:\n  - id: web\n    secret: ${WEB_SECRET}\n    redirect_uris: [https://web.example.com/cb, \"http://127.0.0.1/cb\"]\n    grant_types: [authorization_code, refresh_token]\n",
		"issuer: https://login.example.com\nclients:\n  - id: web\n    secret: literal\n    grant_types: [password]\n",
		"issuer: https://login.example.com\nusers:\n  - username: admin\n    password: ${ADMIN_PASSWORD}\n    roles: [admin]\n  - username: ADMIN\n",
		"issuer: https://login.example.com\nconnectors:\n  - id: corp\n    type: saml\n    saml:\n      idp_metadata_url: https://idp.example.com/metadata\n      attributes: {username: uid, groups: memberOf}\n",
		"issuer: https://login.example.com\nconnectors:\n  - id: up\n    type: oidc\n    enabled: false\n    oidc:\n      issuer: https://accounts.example.com\n      client_id: fedhub\n      client_secret: ${WEB_SECRET}\n      claims: {groups: roles}\n",
		"issuer: https://login.example.com\nconnectors:\n  - id: ad\n    type: ldap\n    mappers:\n      - type: username_template\n        template: \"{{.Username}}\"\n    ldap:\n      urls: [ldaps://dc1.example.com]\n      active_directory: true\n      user_base: dc=example,dc=com\n      timeout: 5s\n      pool_size: 8\n",
		// Shapes a loader must survive.
		"a: &a [1,2]\nb: &b [*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b]\nissuer: *c\n",
		"issuer: https://login.example.com\nstorage: &s {driver: sqlite}\nadmin:\n  <<: *s\n",
		"issuer: https://login.example.com\nissuer: https://evil.example.com\n",
		"issuer: https://login.example.com\n---\nissuer: 1\n",
		"issuer: !!binary aGVsbG8=\n",
		"issuer: https://login.example.com\ntokens: [1, 2]\nclients: {id: x}\n",
		"issuer: https://login.example.com\nbrute_force:\n  failure_factor: 99999999999999999999\n  max_wait: -1h\n",
		"issuer: ${NOPE}\nlisten: ${EMPTY}\nstorage: {dsn: \"${COLON}\"}\n",
		"issuer: https://login.example.com\nclients:\n- {id: web, public: true, redirect_uris: [\"http://127.0.0.1:8080/cb#frag\"], grant_types: [authorization_code]}\n",
		"\xef\xbb\xbfissuer: https://login.example.com\n",
		"issuer: \"https://login.example.com\\u0000\"\n",
		// Errors once named no key: a document that is no mapping, an empty key.
		"0", "[a]", "\"\": 1\n", "?\r?",
	} {
		f.Add([]byte(s))
	}
	lookup := func(name string) (string, bool) {
		v, ok := fuzzEnv[name]
		return v, ok
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse(data, lookup, connectors.Types())
		if err != nil {
			var errs config.Errors
			if !errors.As(err, &errs) {
				if !strings.HasPrefix(err.Error(), "not valid YAML: ") {
					t.Fatalf("error %q (%T) is neither a YAML syntax error nor a list of problems", err, err)
				}
				return
			}
			if len(errs) == 0 {
				t.Fatal("an empty list of problems")
			}
			for _, e := range errs {
				var ke *config.KeyError
				if !errors.As(e, &ke) || ke.Key == "" || ke.Msg == "" {
					t.Fatalf("problem %q (%T) names no key; input:\n%s", e, e, data)
				}
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("an accepted configuration no longer validates: %v", err)
		}
		again, err := config.Parse(data, lookup, connectors.Types())
		if err != nil || !reflect.DeepEqual(again, cfg) {
			t.Fatalf("a second Parse of the same file differs: %v", err)
		}
		roundTrip(t, cfg, lookup)
	})
}

// roundTrip writes cfg as YAML, with every secret as a ${ENV} reference to its
// value, and checks that it parses to what it was written from.
func roundTrip(t *testing.T, cfg *config.Config, lookup func(string) (string, bool)) {
	cp := *cfg
	env := map[string]string{}
	ref := func(v *string) {
		if *v != "" {
			name := fmt.Sprintf("FUZZ_SECRET_%d", len(env))
			env[name] = *v
			*v = "${" + name + "}"
		}
	}
	cp.Clients = append([]config.Client(nil), cfg.Clients...)
	for i := range cp.Clients {
		ref(&cp.Clients[i].Secret)
	}
	cp.Users = append([]config.User(nil), cfg.Users...)
	for i := range cp.Users {
		ref(&cp.Users[i].Password)
	}
	cp.Connectors = append([]config.Connector(nil), cfg.Connectors...)
	for i, c := range cp.Connectors {
		if c.Settings == nil {
			continue
		}
		block := reflect.New(reflect.TypeOf(c.Settings).Elem())
		block.Elem().Set(reflect.ValueOf(c.Settings).Elem())
		for j := range block.Elem().NumField() {
			if block.Elem().Type().Field(j).Tag.Get("config") == "secret" {
				ref(block.Elem().Field(j).Addr().Interface().(*string))
			}
		}
		cp.Connectors[i].Settings = block.Interface().(config.ConnectorConfig)
	}
	out, err := yaml.Marshal(encode(t, &cp))
	if err != nil {
		t.Fatalf("marshal the accepted configuration: %v", err)
	}
	if strings.Count(string(out), "${") != len(env) {
		// A value holds "${" of its own (an expanded default, say): written
		// back it would be expanded again. There is no escape for it.
		return
	}
	back, err := config.Parse(out, func(name string) (string, bool) {
		if v, ok := env[name]; ok {
			return v, true
		}
		return lookup(name)
	}, connectors.Types())
	if err != nil {
		t.Fatalf("the accepted configuration, written back, is refused: %v\n%s", err, out)
	}
	// Compared as YAML: a list or map left out and an empty one are the same.
	want, _ := yaml.Marshal(encode(t, cfg))
	got, _ := yaml.Marshal(encode(t, back))
	if string(got) != string(want) {
		t.Fatalf("written back and parsed again, the configuration changed:\nwritten:\n%s\nread back:\n%s", want, got)
	}
}

// encode is cfg as YAML, each connector's block under the key of its type.
func encode(t *testing.T, cfg *config.Config) *yaml.Node {
	var doc yaml.Node
	if err := doc.Encode(cfg); err != nil {
		t.Fatalf("marshal the accepted configuration: %v", err)
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value != "connectors" {
			continue
		}
		for j, c := range cfg.Connectors {
			var block yaml.Node
			if err := block.Encode(c.Settings); err != nil {
				t.Fatalf("marshal the %s block: %v", c.Type, err)
			}
			n := doc.Content[i+1].Content[j]
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: c.Type}, &block)
		}
	}
	dropNulls(&doc) // an absent key is left out, not written as null
	return &doc
}

// dropNulls removes the keys whose value is null from every mapping.
func dropNulls(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		var kept []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if v := n.Content[i+1]; v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
				continue
			}
			kept = append(kept, n.Content[i], n.Content[i+1])
		}
		n.Content = kept
	}
	for _, c := range n.Content {
		dropNulls(c)
	}
}
