package config_test

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/connectors"
)

// env is a fake environment for Parse.
func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

var noEnv = env(nil)

// Keys that seal secrets at rest: 32 random bytes each, in base64.
const (
	sealKey      = "P3bWrHiONQezRrrj9GiHFmGLknETk0VK+958pMz7/gY="
	otherSealKey = "IHMu8H32gK5yEV6h7PORoPDju1Id1IBL6J+dnAYMay4="
)

const secretHash = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// keyLine is the form of every error that names its key and line.
var keyLine = regexp.MustCompile(`^line [1-9][0-9]*: [A-Za-z_][A-Za-z0-9_.\[\]]*: \S.*$`)

// errorLines returns the messages of a Parse error, one per problem.
func errorLines(t *testing.T, err error) []string {
	t.Helper()
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %q (%T) is not a config.Errors", err, err)
	}
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Error()
	}
	return out
}

func mustParse(t *testing.T, yaml string, lookup func(string) (string, bool)) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), lookup, connectors.Types())
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror:\n%v", yaml, err)
	}
	return cfg
}

func TestParseValidMinimal(t *testing.T) {
	for _, issuer := range []string{
		"https://login.example.com",
		"https://login.example.com/realms/main",
		"https://login.example.com:8443",
		"http://127.0.0.1:8080",
		"http://[::1]:8080",
		"http://localhost:8080",
	} {
		cfg := mustParse(t, "issuer: "+issuer+"\n", noEnv)
		if cfg.Issuer != issuer {
			t.Errorf("issuer = %q, want %q", cfg.Issuer, issuer)
		}
		if len(cfg.Clients) != 0 || len(cfg.Users) != 0 {
			t.Errorf("clients %v, users %v, want none", cfg.Clients, cfg.Users)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	def := config.Defaults()
	cfg := mustParse(t, "issuer: https://login.example.com\n", noEnv)
	if cfg.Listen != "127.0.0.1:8080" || cfg.Listen != def.Listen {
		t.Errorf("listen = %q, want 127.0.0.1:8080", cfg.Listen)
	}
	if cfg.Storage != (config.Storage{Driver: "sqlite", DSN: "fedhub.db"}) {
		t.Errorf("storage = %+v", cfg.Storage)
	}
	if cfg.Signing != (config.Signing{Algorithm: "RS256", RotationPeriod: 720 * time.Hour}) {
		t.Errorf("signing = %+v", cfg.Signing)
	}
	wantTokens := config.Tokens{AccessTTL: 10 * time.Minute, IDTTL: 10 * time.Minute, RefreshTTL: 720 * time.Hour,
		CodeTTL: 60 * time.Second, SSOIdle: 30 * time.Minute, SSOMax: 10 * time.Hour}
	if cfg.Tokens != wantTokens || cfg.Tokens != def.Tokens {
		t.Errorf("tokens = %+v, want %+v", cfg.Tokens, wantTokens)
	}
	if cfg.BruteForce != (config.BruteForce{FailureFactor: 30, WaitIncrement: time.Minute, MaxWait: 15 * time.Minute}) {
		t.Errorf("brute_force = %+v", cfg.BruteForce)
	}
	if err := def.Validate(); err == nil {
		t.Errorf("Defaults() without an issuer validates")
	}

	// Setting one key of a section keeps the defaults of the others.
	cfg = mustParse(t, `issuer: https://login.example.com
storage:
  driver: postgres
tokens:
  access_ttl: 5m
  code_ttl: 30s
brute_force:
  max_wait: 1h
`, noEnv)
	if cfg.Storage.Driver != "postgres" || cfg.Storage.DSN != "fedhub.db" {
		t.Errorf("storage = %+v, want driver postgres, default dsn", cfg.Storage)
	}
	wantTokens.AccessTTL, wantTokens.CodeTTL = 5*time.Minute, 30*time.Second
	if cfg.Tokens != wantTokens {
		t.Errorf("tokens = %+v, want %+v", cfg.Tokens, wantTokens)
	}
	if cfg.BruteForce != (config.BruteForce{FailureFactor: 30, WaitIncrement: time.Minute, MaxWait: time.Hour}) {
		t.Errorf("brute_force = %+v", cfg.BruteForce)
	}
}

func TestParseFull(t *testing.T) {
	yaml := `issuer: https://login.example.com
listen: 0.0.0.0:9000
storage:
  driver: postgres
  dsn: host=db user=fedhub dbname=fedhub
signing:
  algorithm: EdDSA
  rotation_period: 48h
tokens:
  access_ttl: 5m
  id_ttl: 2m
  refresh_ttl: 24h
  code_ttl: 1s
  sso_idle: 1h
  sso_max: 8h
brute_force:
  failure_factor: 5
  wait_increment: 30s
  max_wait: 10m
clients:
  - id: web
    name: Web App
    secret: ${WEB_SECRET}
    redirect_uris: [https://web.example.com/cb, "http://127.0.0.1/cb"]
    post_logout_redirect_uris: [https://web.example.com/]
    grant_types: [authorization_code, refresh_token, client_credentials, password]
  - id: cli
    public: true
    redirect_uris:
      - http://[::1]/callback
    grant_types: [authorization_code]
  - id: svc
    secret_hash: ` + secretHash + `
    grant_types: [client_credentials]
users:
  - username: admin
    email: admin@example.com
    email_verified: true
    name: The Admin
    password: ${ADMIN_PASSWORD}
    roles: [admin, ops]
    groups: [staff]
  - username: bob
    password_hash: $argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g
`
	cfg := mustParse(t, yaml, env(map[string]string{"WEB_SECRET": "w3b", "ADMIN_PASSWORD": "adm1n"}))
	if cfg.Listen != "0.0.0.0:9000" || cfg.Storage.DSN != "host=db user=fedhub dbname=fedhub" ||
		cfg.Signing.Algorithm != "EdDSA" || cfg.Tokens.CodeTTL != time.Second || cfg.BruteForce.FailureFactor != 5 {
		t.Errorf("top-level values not read: %+v", cfg)
	}
	if len(cfg.Clients) != 3 {
		t.Fatalf("clients = %+v", cfg.Clients)
	}
	web := cfg.Clients[0]
	if web.Secret != "w3b" || web.Name != "Web App" || web.Public ||
		!slices.Equal(web.RedirectURIs, []string{"https://web.example.com/cb", "http://127.0.0.1/cb"}) ||
		len(web.GrantTypes) != 4 {
		t.Errorf("client web = %+v", web)
	}
	if cli := cfg.Clients[1]; !cli.Public || cli.Secret != "" || !slices.Equal(cli.RedirectURIs, []string{"http://[::1]/callback"}) {
		t.Errorf("client cli = %+v", cli)
	}
	if svc := cfg.Clients[2]; svc.SecretHash != secretHash {
		t.Errorf("client svc = %+v", svc)
	}
	if len(cfg.Users) != 2 {
		t.Fatalf("users = %+v", cfg.Users)
	}
	admin := cfg.Users[0]
	if admin.Password != "adm1n" || !admin.EmailVerified || admin.Name != "The Admin" ||
		!slices.Equal(admin.Roles, []string{"admin", "ops"}) || !slices.Equal(admin.Groups, []string{"staff"}) {
		t.Errorf("user admin = %+v", admin)
	}
}

// TestParseReadmeExample parses the configuration reference of the README, so that the
// documented example stays valid.
func TestParseReadmeExample(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(data), "## Configuration reference")
	if !ok {
		t.Fatal(`README.md has no "## Configuration reference" section`)
	}
	_, block, ok := strings.Cut(after, "```yaml\n")
	if !ok {
		t.Fatal("the configuration reference has no ```yaml block")
	}
	block, _, _ = strings.Cut(block, "```")
	cfg := mustParse(t, block, env(map[string]string{"MY_APP_SECRET": "s", "ADMIN_PASSWORD": "p", "FEDHUB_SECRETS_KEY": sealKey}))
	if cfg.Secrets.Key != sealKey {
		t.Errorf("secrets.key = %q, want the variable FEDHUB_SECRETS_KEY", cfg.Secrets.Key)
	}
}

// TestParseEmptyFile: an empty file is the defaults, whose only problem is the missing issuer.
func TestParseEmptyFile(t *testing.T) {
	const want = "issuer: is required: the public URL of fedhub, e.g. https://login.example.com"
	for _, yaml := range []string{"", "\n", "# only a comment\n", "{}\n", "---\n"} {
		cfg, err := config.Parse([]byte(yaml), noEnv, connectors.Types())
		if err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", yaml, cfg)
			continue
		}
		if err.Error() != want {
			t.Errorf("Parse(%q):\n got %q\nwant %q", yaml, err, want)
		}
	}
}

func TestParseNotYAML(t *testing.T) {
	_, err := config.Parse([]byte("issuer: [unclosed\n"), noEnv, connectors.Types())
	if err == nil || !strings.Contains(err.Error(), "not valid YAML") {
		t.Errorf("Parse of broken YAML: %v, want not valid YAML", err)
	}
}

// problem is one error Parse must report.
type problem struct {
	line int
	key  string
	msg  string // the whole message, or with partial a part of it
}

func (p problem) prefix() string { return fmt.Sprintf("line %d: %s: ", p.line, p.key) }

func TestParseErrors(t *testing.T) {
	const head = "issuer: https://login.example.com\n"
	for _, c := range []struct {
		name    string
		yaml    string
		env     map[string]string
		want    []problem
		partial bool // msg is only part of the message (it comes from the YAML decoder)
	}{
		// Unknown keys.
		{name: "unknown top-level key", yaml: head + "isuer: https://x.example.com\n",
			want: []problem{{2, "isuer", "unknown key"}}},
		{name: "unknown key in a section", yaml: head + "tokens:\n  acess_ttl: 5m\n",
			want: []problem{{3, "tokens.acess_ttl", "unknown key"}}},
		{name: "unknown key in a list item", yaml: head + `clients:
  - id: app
    public: true
    redirect_uri: https://app.example.com/cb
    grant_types: [refresh_token]
`, want: []problem{{5, "clients[0].redirect_uri", "unknown key"}}},
		{name: "unknown key in the second list item", yaml: head + `users:
  - username: a
  - username: b
    pasword: x
`, want: []problem{{5, "users[1].pasword", "unknown key"}}},
		{name: "several unknown keys at once", yaml: head + "lisen: x\nstorage:\n  drvier: sqlite\n",
			want: []problem{{2, "lisen", "unknown key"}, {4, "storage.drvier", "unknown key"}}},

		// Duplicate keys.
		{name: "duplicate top-level key", yaml: head + "listen: 127.0.0.1:8080\nlisten: 0.0.0.0:8080\n",
			want: []problem{{3, "listen", "key appears twice"}}},
		{name: "duplicate key in a list item", yaml: head + `clients:
  - id: app
    public: true
    grant_types: [refresh_token]
    id: other
`, want: []problem{{6, "clients[0].id", "key appears twice"}}},

		// Wrong types and shapes.
		{name: "text for an integer", yaml: head + "brute_force:\n  failure_factor: many\n", partial: true,
			want: []problem{{3, "brute_force.failure_factor", "many"}}},
		{name: "text for a duration", yaml: head + "tokens:\n  access_ttl: soon\n", partial: true,
			want: []problem{{3, "tokens.access_ttl", "soon"}}},
		{name: "text for a boolean", yaml: head + `clients:
  - id: app
    public: maybe
    grant_types: [refresh_token]
`, partial: true, want: []problem{{4, "clients[0].public", "maybe"}}},
		{name: "mapping for a value", yaml: head + "listen:\n  host: 127.0.0.1\n",
			want: []problem{{3, "listen", "expected a single value"}}},
		{name: "value for a mapping", yaml: head + "storage: sqlite\n",
			want: []problem{{2, "storage", "expected a mapping of keys"}}},
		{name: "value for a list", yaml: head + "clients: app\n",
			want: []problem{{2, "clients", "expected a list"}}},
		{name: "alias", yaml: head + "listen: &l 127.0.0.1:8080\nstorage:\n  dsn: *l\n",
			want: []problem{{4, "storage.dsn", "YAML aliases are not supported"}}},

		// Secrets.
		{name: "literal client secret", yaml: head + `clients:
  - id: app
    secret: hunter2
    grant_types: [client_credentials]
`, want: []problem{{4, "clients[0].secret", "must be a ${ENV} reference, never a literal; or give secret_hash (fedhub hash-secret)"}}},
		{name: "client secret with an env reference inside a literal", yaml: head + `clients:
  - id: app
    secret: hunter-${SUFFIX}
    grant_types: [client_credentials]
`, env: map[string]string{"SUFFIX": "2"},
			want: []problem{{4, "clients[0].secret", "must be a ${ENV} reference, never a literal; or give secret_hash (fedhub hash-secret)"}}},
		{name: "literal user password", yaml: head + "users:\n  - username: admin\n    password: hunter2\n",
			want: []problem{{4, "users[0].password", "must be a ${ENV} reference, never a literal; or give password_hash"}}},
		{name: "secret and secret_hash", yaml: head + `clients:
  - id: app
    secret: ${S}
    secret_hash: ` + secretHash + `
    grant_types: [client_credentials]
`, env: map[string]string{"S": "x"},
			want: []problem{{5, "clients[0].secret_hash", "give either secret or secret_hash, not both"}}},
		{name: "malformed secret_hash", yaml: head + `clients:
  - id: app
    secret_hash: sha256:abc
    grant_types: [client_credentials]
`, want: []problem{{4, "clients[0].secret_hash", "must be sha256:<64 hex digits> (fedhub hash-secret)"}}},
		{name: "confidential client without a secret", yaml: head + `clients:
  - id: app
    grant_types: [client_credentials]
`, want: []problem{{3, "clients[0].secret", "a confidential client needs secret or secret_hash (or set public: true, or token_endpoint_auth_method: private_key_jwt)"}}},
		{name: "password_hash that is not argon2id", yaml: head + "users:\n  - username: a\n    password_hash: $2a$10$abc\n",
			want: []problem{{4, "users[0].password_hash", "must be an argon2id hash ($argon2id$…)"}}},

		// Environment variables.
		{name: "unset environment variable", yaml: head + `clients:
  - id: app
    secret: ${APP_SECRET}
    grant_types: [client_credentials]
`, want: []problem{{4, "clients[0].secret", "environment variable APP_SECRET is not set"}}},
		{name: "unset environment variable in the issuer", yaml: "listen: 127.0.0.1:8080\nissuer: ${ISSUER}\n",
			want: []problem{{2, "issuer", "environment variable ISSUER is not set"}}},
		{name: "two unset environment variables", yaml: head + "storage:\n  dsn: ${DIR}/${FILE}\n",
			want: []problem{{3, "storage.dsn", "environment variable DIR is not set"}, {3, "storage.dsn", "environment variable FILE is not set"}}},

		// The issuer.
		{name: "http issuer on a public host", yaml: "issuer: http://login.example.com\n",
			want: []problem{{1, "issuer", "must use https unless it is a loopback address"}}},
		{name: "http issuer on a private address", yaml: "issuer: http://10.0.0.5:8080\n",
			want: []problem{{1, "issuer", "must use https unless it is a loopback address"}}},
		{name: "http issuer on a name starting with localhost", yaml: "issuer: http://localhost.example.com\n",
			want: []problem{{1, "issuer", "must use https unless it is a loopback address"}}},
		{name: "issuer with a trailing slash", yaml: "issuer: https://login.example.com/\n",
			want: []problem{{1, "issuer", "must have no query, fragment or trailing slash (OpenID Connect Discovery §3)"}}},
		{name: "issuer with a query", yaml: "issuer: https://login.example.com?x=1\n",
			want: []problem{{1, "issuer", "must have no query, fragment or trailing slash (OpenID Connect Discovery §3)"}}},
		{name: "relative issuer", yaml: "issuer: login.example.com\n",
			want: []problem{{1, "issuer", "must be an absolute http(s) URL"}}},

		// Other sections.
		{name: "bad listen address", yaml: head + "listen: 8080\n",
			want: []problem{{2, "listen", "must be host:port, e.g. 127.0.0.1:8080"}}},
		{name: "bad management address", yaml: head + "management:\n  listen: 9000\n",
			want: []problem{{3, "management.listen", "must be host:port, e.g. 127.0.0.1:9000"}}},
		{name: "profiles on the public listener", yaml: head + "listen: 127.0.0.1:8080\nmanagement:\n  listen: 127.0.0.1:8080\n  profiling: true\n",
			want: []problem{{5, "management.profiling", "is only for a private management listener; management.listen is the public address"}}},
		{name: "a certificate without its key", yaml: head + "tls:\n  cert_file: /etc/fedhub/tls.crt\n",
			want: []problem{{3, "tls", "needs both cert_file and key_file, or neither"}}},
		{name: "a primary colour that is not a colour", yaml: head + "branding:\n  primary_color: \"red; } body { display: none\"\n",
			want: []problem{{3, "branding.primary_color", "must be a colour such as #0b5cad or #06c"}}},
		{name: "a default locale that is not a language tag", yaml: head + "branding:\n  default_locale: \"de DE\"\n",
			want: []problem{{3, "branding.default_locale", "must be a language tag such as en or de"}}},
		{name: "unknown log format", yaml: head + "log:\n  format: xml\n",
			want: []problem{{3, "log.format", `must be text or json, not "xml"`}}},
		{name: "unknown log level", yaml: head + "log:\n  level: verbose\n",
			want: []problem{{3, "log.level", `must be debug, info, warn or error, not "verbose"`}}},
		{name: "a numeric log level is not one of the four", yaml: head + "log:\n  level: INFO+2\n",
			want: []problem{{3, "log.level", `must be debug, info, warn or error, not "INFO+2"`}}},
		{name: "unknown storage driver", yaml: head + "storage:\n  driver: mysql\n",
			want: []problem{{3, "storage.driver", `must be sqlite or postgres, not "mysql"`}}},
		{name: "bad algorithm", yaml: head + "signing:\n  algorithm: HS256\n",
			want: []problem{{3, "signing.algorithm", `must be RS256, ES256 or EdDSA, not "HS256"`}}},
		{name: "algorithm none", yaml: head + "signing:\n  algorithm: none\n",
			want: []problem{{3, "signing.algorithm", `must be RS256, ES256 or EdDSA, not "none"`}}},
		{name: "code_ttl over 60s", yaml: head + "tokens:\n  code_ttl: 61s\n",
			want: []problem{{3, "tokens.code_ttl", "must be between 1s and 60s (RFC 9700)"}}},
		{name: "code_ttl of minutes", yaml: head + "tokens:\n  code_ttl: 10m\n",
			want: []problem{{3, "tokens.code_ttl", "must be between 1s and 60s (RFC 9700)"}}},
		{name: "code_ttl zero", yaml: head + "tokens:\n  code_ttl: 0s\n",
			want: []problem{{3, "tokens.code_ttl", "must be between 1s and 60s (RFC 9700)"}}},
		{name: "negative duration", yaml: head + "tokens:\n  access_ttl: -5m\n",
			want: []problem{{3, "tokens.access_ttl", "must be a positive duration such as 10m or 24h"}}},
		{name: "failure_factor zero", yaml: head + "brute_force:\n  failure_factor: 0\n",
			want: []problem{{3, "brute_force.failure_factor", "must be at least 1"}}},

		// Clients.
		{name: "public client with a secret", yaml: head + `clients:
  - id: spa
    public: true
    secret: ${SPA_SECRET}
    redirect_uris: [https://spa.example.com/cb]
    grant_types: [authorization_code]
`, env: map[string]string{"SPA_SECRET": "x"},
			want: []problem{{4, "clients[0].public", "a public client has no secret"}}},
		{name: "public client with a secret_hash", yaml: head + `clients:
  - id: spa
    public: true
    secret_hash: ` + secretHash + `
    redirect_uris: [https://spa.example.com/cb]
    grant_types: [authorization_code]
`, want: []problem{{4, "clients[0].public", "a public client has no secret"}}},
		{name: "public client with client_credentials", yaml: head + `clients:
  - id: spa
    public: true
    grant_types: [client_credentials]
`, want: []problem{{5, "clients[0].grant_types[0]", "client_credentials needs a confidential client"}}},
		{name: "unknown grant type", yaml: head + `clients:
  - id: app
    secret_hash: ` + secretHash + `
    redirect_uris: [https://app.example.com/cb]
    grant_types: [authorization_code, implicit]
`, want: []problem{{6, "clients[0].grant_types[1]", `unknown grant type "implicit" (implicit and hybrid flows are not offered)`}}},
		{name: "no grant types", yaml: head + `clients:
  - id: app
    secret_hash: ` + secretHash + `
`, want: []problem{{3, "clients[0].grant_types", "list at least one of authorization_code, refresh_token, client_credentials, password"}}},
		{name: "authorization_code without redirect URIs", yaml: head + `clients:
  - id: app
    secret_hash: ` + secretHash + `
    grant_types: [authorization_code]
`, want: []problem{{3, "clients[0].redirect_uris", "authorization_code needs at least one redirect URI"}}},
		{name: "redirect URI with a fragment", yaml: head + `clients:
  - id: app
    secret_hash: ` + secretHash + `
    redirect_uris:
      - https://app.example.com/cb
      - https://app.example.com/cb#frag
    grant_types: [authorization_code]
`, want: []problem{{7, "clients[0].redirect_uris[1]", "must not contain a fragment"}}},
		{name: "redirect URI with an empty fragment", yaml: head + `clients:
  - id: app
    secret_hash: ` + secretHash + `
    redirect_uris: ["https://app.example.com/cb#"]
    grant_types: [authorization_code]
`, want: []problem{{5, "clients[0].redirect_uris[0]", "must not contain a fragment"}}},
		{name: "post-logout redirect URI with a fragment", yaml: head + `clients:
  - id: app
    secret_hash: ` + secretHash + `
    grant_types: [client_credentials]
    post_logout_redirect_uris: ["https://app.example.com/#bye"]
`, want: []problem{{6, "clients[0].post_logout_redirect_uris[0]", "must not contain a fragment"}}},
		{name: "back-channel logout URI over http on a public host", yaml: head + `clients:
  - id: app
    secret_hash: ` + secretHash + `
    grant_types: [client_credentials]
    backchannel_logout_uri: http://app.example.com/logout
`, want: []problem{{6, "clients[0].backchannel_logout_uri", "http is allowed only for loopback addresses; use https"}}},
		{name: "back-channel logout URI with a fragment", yaml: head + `clients:
  - id: app
    secret_hash: ` + secretHash + `
    grant_types: [client_credentials]
    backchannel_logout_uri: "https://app.example.com/logout#x"
`, want: []problem{{6, "clients[0].backchannel_logout_uri", "must not contain a fragment"}}},
		{name: "private_key_jwt without keys", yaml: head + `clients:
  - id: svc
    token_endpoint_auth_method: private_key_jwt
    grant_types: [client_credentials]
`, want: []problem{{3, "clients[0].jwks", "a private_key_jwt client needs its public keys: give jwks or jwks_uri (one of them)"}}},
		{name: "private_key_jwt with a secret", yaml: head + `clients:
  - id: svc
    secret_hash: ` + secretHash + `
    token_endpoint_auth_method: private_key_jwt
    jwks_uri: https://svc.example.com/jwks
    grant_types: [client_credentials]
`, want: []problem{{4, "clients[0].secret_hash", "a private_key_jwt client has keys, not a secret"}}},
		{name: "private_key_jwt with a private key", yaml: head + `clients:
  - id: svc
    token_endpoint_auth_method: private_key_jwt
    jwks: {"keys": [{"kty": "EC", "crv": "P-256", "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4", "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM", "d": "870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE"}]}
    grant_types: [client_credentials]
`, want: []problem{{5, "clients[0].jwks", "key 0 is a private key: give only the public keys"}}},
		{name: "jwks_uri over http on a public host", yaml: head + `clients:
  - id: svc
    token_endpoint_auth_method: private_key_jwt
    jwks_uri: http://svc.example.com/jwks
    grant_types: [client_credentials]
`, want: []problem{{5, "clients[0].jwks_uri", "must be an https URL (http only for loopback addresses)"}}},
		{name: "jwks for a secret client", yaml: head + `clients:
  - id: svc
    secret_hash: ` + secretHash + `
    jwks_uri: https://svc.example.com/jwks
    grant_types: [client_credentials]
`, want: []problem{{3, "clients[0].token_endpoint_auth_method", "jwks and jwks_uri are for private_key_jwt clients"}}},
		{name: "unknown auth method", yaml: head + `clients:
  - id: svc
    secret_hash: ` + secretHash + `
    token_endpoint_auth_method: client_secret_jwt
    grant_types: [client_credentials]
`, want: []problem{{5, "clients[0].token_endpoint_auth_method", "unknown method \"client_secret_jwt\": client_secret_basic, client_secret_post, private_key_jwt or none"}}},
		{name: "token exchange without audiences", yaml: head + `clients:
  - id: svc
    secret_hash: ` + secretHash + `
    grant_types: [urn:ietf:params:oauth:grant-type:token-exchange]
`, want: []problem{{3, "clients[0].exchange_audiences", "token exchange needs the audiences this client may exchange tokens for"}}},
		{name: "exchange audiences without token exchange", yaml: head + `clients:
  - id: svc
    secret_hash: ` + secretHash + `
    grant_types: [client_credentials]
    exchange_audiences: [api]
`, want: []problem{{6, "clients[0].exchange_audiences", "is only for clients with the grant type urn:ietf:params:oauth:grant-type:token-exchange"}}},
		{name: "token exchange by a public client", yaml: head + `clients:
  - id: spa
    public: true
    redirect_uris: [https://spa.example.com/cb]
    grant_types: [authorization_code, urn:ietf:params:oauth:grant-type:token-exchange]
    exchange_audiences: [api]
`, want: []problem{{6, "clients[0].grant_types[1]", "urn:ietf:params:oauth:grant-type:token-exchange needs a confidential client"}}},
		{name: "http redirect URI on a public host", yaml: head + `clients:
  - id: app
    secret_hash: ` + secretHash + `
    redirect_uris: [http://app.example.com/cb]
    grant_types: [authorization_code]
`, want: []problem{{5, "clients[0].redirect_uris[0]", "http is allowed only for loopback addresses; use https"}}},
		{name: "relative redirect URI", yaml: head + `clients:
  - id: app
    secret_hash: ` + secretHash + `
    redirect_uris: [/cb]
    grant_types: [authorization_code]
`, want: []problem{{5, "clients[0].redirect_uris[0]", "must be an absolute URI"}}},
		{name: "duplicate client IDs", yaml: head + `clients:
  - id: app
    public: true
    grant_types: [refresh_token]
  - id: app
    public: true
    grant_types: [refresh_token]
`, want: []problem{{6, "clients[1].id", `"app" is used by another client`}}},

		// Users.
		{name: "duplicate usernames", yaml: head + "users:\n  - username: alice\n  - username: alice\n",
			want: []problem{{4, "users[1].username", `"alice" is used by another user`}}},
		{name: "duplicate usernames in other case", yaml: head + "users:\n  - username: Alice\n  - username: bob\n  - username: ALICE\n",
			want: []problem{{5, "users[2].username", `"ALICE" is used by another user`}}},
		{name: "duplicate usernames in full width", yaml: head + "users:\n  - username: alice\n  - username: ａｌｉｃｅ\n",
			want: []problem{{4, "users[1].username", `"ａｌｉｃｅ" is used by another user`}}},
		{name: "look-alike username", yaml: head + "users:\n  - username: \"\u0430lice\"\n",
			want: []problem{{3, "users[0].username", "cannot mix letters of different scripts"}}, partial: true},
		{name: "invisible character in a username", yaml: head + "users:\n  - username: \"ali\\u200bce\"\n",
			want: []problem{{3, "users[0].username", "invisible"}}, partial: true},
		{name: "user without a username", yaml: head + "users:\n  - email: a@example.com\n",
			want: []problem{{3, "users[0].username", "is required"}}},

		// The key that seals secrets at rest.
		{name: "literal secrets key", yaml: head + "secrets:\n  key: " + sealKey + "\n",
			want: []problem{{3, "secrets.key", "must be a ${ENV} reference, never a literal"}}},
		{name: "literal previous key", yaml: head + "secrets:\n  key: ${KEY}\n  previous_keys:\n    - ${OLD}\n    - " + sealKey + "\n",
			env:  map[string]string{"KEY": sealKey, "OLD": otherSealKey},
			want: []problem{{6, "secrets.previous_keys[1]", "must be a ${ENV} reference, never a literal"}}},
		{name: "short secrets key", yaml: head + "secrets:\n  key: ${KEY}\n", env: map[string]string{"KEY": "c2hvcnQ="},
			want: []problem{{3, "secrets.key", "is 5 bytes, want exactly 32 random bytes in base64 (openssl rand -base64 32)"}}},
		{name: "a passphrase for the secrets key", yaml: head + "secrets:\n  key: ${KEY}\n", env: map[string]string{"KEY": "correct horse battery staple"},
			partial: true, want: []problem{{3, "secrets.key", "is not base64"}}},
		{name: "previous keys without a key", yaml: head + "secrets:\n  key: ${KEY:-}\n  previous_keys: [\"${OLD}\"]\n",
			env:  map[string]string{"OLD": otherSealKey},
			want: []problem{{3, "secrets.key", "is required with previous_keys: the new key, as a ${ENV} reference"}}},
		{name: "unset secrets key", yaml: head + "secrets:\n  key: ${FEDHUB_SECRETS_KEY}\n",
			want: []problem{{3, "secrets.key", "environment variable FEDHUB_SECRETS_KEY is not set"}}},

		// Client scopes, their mappers and APIs.
		{name: "mapper errors", yaml: head + `client_scopes:
  - name: dept
    mappers:
      - type: user_atribute
        claim: dept
      - type: user_attribute
        attribute: shoe_size
        claim: shoe
      - type: hardcoded
        claim: sub
        value: x
      - type: role
        claim: a..b
      - type: hardcoded
        claim: tenant
      - type: audience
        audience: reports
        userinfo: true
      - type: group_membership
        claim: teams
        prefix: "x"
`, want: []problem{
			{5, "client_scopes[0].mappers[0].type", `unknown mapper type "user_atribute": user_attribute, group_membership, role, hardcoded or audience`},
			{8, "client_scopes[0].mappers[1].attribute", "a user_attribute mapper reads one of id, username, email, email_verified, name; other mappers have none"},
			{11, "client_scopes[0].mappers[2].claim", `"sub" is set by fedhub itself and cannot be mapped`},
			{14, "client_scopes[0].mappers[3].claim", `"a..b" has an empty part between dots`},
			{15, "client_scopes[0].mappers[4].value", "a hardcoded mapper needs its value; other mappers have none"},
			{19, "client_scopes[0].mappers[5].userinfo", "an audience mapper goes into tokens only (id_token, access_token)"},
			{22, "client_scopes[0].mappers[6].prefix", "is for role mappers"},
		}},
		{name: "scope and API names", yaml: head + `client_scopes:
  - name: profile
    mappers: [{type: hardcoded, claim: x, value: 1}]
  - name: dept
apis:
  - id: orders
    scopes: [dept, orders:read]
  - id: orders
clients:
  - id: app
    secret_hash: ` + secretHash + `
    grant_types: [client_credentials]
    default_scopes: [roles, dpt]
    optional_scopes: [orders:read]
    apis: [orders, billing]
`, want: []problem{
			{3, "client_scopes[0].name", `"profile" is the name of another scope`},
			{5, "client_scopes[1].mappers", "list at least one mapper"},
			{8, "apis[0].scopes[0]", `"dept" is the name of another scope`},
			{9, "apis[1].id", `"orders" is used by another API`},
			{14, "clients[0].default_scopes[1]", `unknown scope "dpt": a built-in scope (profile, email, roles, groups) or one of client_scopes`},
			{15, "clients[0].optional_scopes[0]", `unknown scope "orders:read": a built-in scope (profile, email, roles, groups) or one of client_scopes`},
			{16, "clients[0].apis[1]", `unknown API "billing": not in apis`},
		}},

		// Every problem at once.
		{name: "several validation errors", yaml: `issuer: http://login.example.com
signing:
  algorithm: HS512
tokens:
  code_ttl: 2m
users:
  - username: x
    password: literal
`, want: []problem{
			{1, "issuer", "must use https unless it is a loopback address"},
			{3, "signing.algorithm", `must be RS256, ES256 or EdDSA, not "HS512"`},
			{5, "tokens.code_ttl", "must be between 1s and 60s (RFC 9700)"},
			{8, "users[0].password", "must be a ${ENV} reference, never a literal; or give password_hash"},
		}},

		// Groups and roles.
		{name: "nested groups in a cycle", yaml: head + `groups:
  - name: eng
    parent: backend
  - name: backend
    parent: eng
`, want: []problem{{6, "groups[1].parent", "nests the groups in a cycle: backend → eng → backend"}}},
		{name: "composite roles in a cycle", yaml: head + `roles:
  - name: reader
  - name: editor
    includes: [admin]
  - name: admin
    includes: [reader, editor]
`, want: []problem{{7, "roles[2].includes", "makes the composite roles a cycle: admin → editor → admin"}}},
		{name: "a role including itself", yaml: head + "roles:\n  - name: a\n    includes: [a]\n",
			want: []problem{{4, "roles[0].includes", "makes the composite roles a cycle: a → a"}}},
		{name: "unknown parent and roles", yaml: head + `roles:
  - name: reader
    includes: [writer]
groups:
  - name: eng
    parent: engineering
    roles: [reader, deployer]
`, want: []problem{{4, "roles[0].includes[0]", `"writer" is not a role defined under roles`},
			{7, "groups[0].parent", `"engineering" is not a group defined under groups`},
			{8, "groups[0].roles[1]", `"deployer" is not a role defined under roles`}}},
		{name: "duplicate and missing names", yaml: head + `roles:
  - name: reader
  - name: reader
groups:
  - parent: ""
`, want: []problem{{4, "roles[1].name", `"reader" is another role's name too`}, {6, "groups[0].name", "is required"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(c.yaml), env(c.env), connectors.Types())
			if err == nil {
				t.Fatalf("Parse:\n%s\n= %+v, want errors", c.yaml, cfg)
			}
			if cfg != nil {
				t.Errorf("Parse returned a configuration along with the error")
			}
			got := errorLines(t, err)
			for _, msg := range got {
				if !keyLine.MatchString(msg) {
					t.Errorf("error %q is not of the form `line N: key: message`", msg)
				}
			}
			if len(got) != len(c.want) {
				t.Errorf("got %d errors, want %d:\n%s", len(got), len(c.want), strings.Join(got, "\n"))
			}
			for _, p := range c.want {
				found := slices.ContainsFunc(got, func(msg string) bool {
					if c.partial {
						return strings.HasPrefix(msg, p.prefix()) && strings.Contains(msg, p.msg)
					}
					return msg == p.prefix()+p.msg
				})
				if !found {
					want := p.prefix() + p.msg
					if c.partial {
						want = p.prefix() + "…" + p.msg + "…"
					}
					t.Errorf("missing error %q; got:\n%s", want, strings.Join(got, "\n"))
				}
			}
		})
	}
}

func TestParseEnv(t *testing.T) {
	t.Run("reference is replaced", func(t *testing.T) {
		cfg := mustParse(t, `issuer: ${ISSUER}
storage:
  driver: postgres
  dsn: "host=${DB_HOST} dbname=fedhub"
clients:
  - id: app
    secret: ${APP_SECRET}
    grant_types: [client_credentials]
users:
  - username: admin
    password: '${ADMIN_PASSWORD}'
`, env(map[string]string{"ISSUER": "https://id.example.org", "DB_HOST": "db.internal",
			"APP_SECRET": "s3cr3t", "ADMIN_PASSWORD": "pw"}))
		if cfg.Issuer != "https://id.example.org" || cfg.Storage.DSN != "host=db.internal dbname=fedhub" ||
			cfg.Clients[0].Secret != "s3cr3t" || cfg.Users[0].Password != "pw" {
			t.Errorf("expanded config = %+v", cfg)
		}
	})

	t.Run("default", func(t *testing.T) {
		yaml := "issuer: https://login.example.com\nlisten: ${LISTEN:-127.0.0.1:9090}\nstorage:\n  dsn: ${DATA:-/var/lib/fedhub}/fedhub.db\n"
		cfg := mustParse(t, yaml, noEnv)
		if cfg.Listen != "127.0.0.1:9090" || cfg.Storage.DSN != "/var/lib/fedhub/fedhub.db" {
			t.Errorf("unset: listen %q, dsn %q; want the defaults", cfg.Listen, cfg.Storage.DSN)
		}
		cfg = mustParse(t, yaml, env(map[string]string{"LISTEN": "0.0.0.0:80", "DATA": "/srv"}))
		if cfg.Listen != "0.0.0.0:80" || cfg.Storage.DSN != "/srv/fedhub.db" {
			t.Errorf("set: listen %q, dsn %q; want the variables' values", cfg.Listen, cfg.Storage.DSN)
		}
		cfg = mustParse(t, "issuer: ${ISSUER:-}\n", env(map[string]string{"ISSUER": "https://a.example"}))
		if cfg.Issuer != "https://a.example" {
			t.Errorf("empty default, set variable: issuer %q", cfg.Issuer)
		}
	})

	// A variable's value is data, never YAML: characters YAML gives a meaning to stay in the string.
	t.Run("value stays a string", func(t *testing.T) {
		for _, v := range []string{
			"My App: prod # 1", "a: b", "# not a comment", "x #y", "[a, b]", "{a: b}", "- item",
			"&anchor", "*alias", "!!int", "'single'", `"double"`, "|", "> folded", "line 1\nline 2",
			"true", "false", "null", "~", "0123", "1e3", "0x1F", "12:30", "", " padded ", "${NOT_AGAIN}",
		} {
			yaml := `issuer: https://login.example.com
clients:
  - id: app
    name: ${APP_NAME}
    secret: ${APP_SECRET}
    grant_types: [client_credentials]
users:
  - username: u
    name: "${APP_NAME}"
`
			cfg, err := config.Parse([]byte(yaml), env(map[string]string{"APP_NAME": v, "APP_SECRET": v + "!"}), connectors.Types())
			if err != nil {
				t.Errorf("value %q: %v", v, err)
				continue
			}
			if cfg.Clients[0].Name != v || cfg.Users[0].Name != v {
				t.Errorf("value %q: client name %q, user name %q", v, cfg.Clients[0].Name, cfg.Users[0].Name)
			}
			if cfg.Clients[0].Secret != v+"!" {
				t.Errorf("value %q: secret %q, want %q", v+"!", cfg.Clients[0].Secret, v+"!")
			}
		}
	})

	// Values of other types are read as that type.
	t.Run("typed values", func(t *testing.T) {
		cfg := mustParse(t, `issuer: https://login.example.com
tokens:
  access_ttl: ${ACCESS_TTL}
brute_force:
  failure_factor: ${FACTOR}
clients:
  - id: app
    public: ${PUBLIC}
    grant_types: [refresh_token]
users:
  - username: u
    email_verified: ${VERIFIED}
`, env(map[string]string{"ACCESS_TTL": "90s", "FACTOR": "7", "PUBLIC": "true", "VERIFIED": "true"}))
		if cfg.Tokens.AccessTTL != 90*time.Second {
			t.Errorf("access_ttl = %v, want 90s", cfg.Tokens.AccessTTL)
		}
		if cfg.BruteForce.FailureFactor != 7 {
			t.Errorf("failure_factor = %d, want 7", cfg.BruteForce.FailureFactor)
		}
		if !cfg.Clients[0].Public || !cfg.Users[0].EmailVerified {
			t.Errorf("public = %v, email_verified = %v; want true, true", cfg.Clients[0].Public, cfg.Users[0].EmailVerified)
		}
	})

	t.Run("line numbers survive expansion", func(t *testing.T) {
		_, err := config.Parse([]byte(`issuer: https://login.example.com
clients:
  - id: app
    name: ${MULTI}
    grant_types: [client_credentials]
    secret: hunter2
`), env(map[string]string{"MULTI": "a\nb\nc\nd"}), connectors.Types())
		got := errorLines(t, err)
		want := "line 6: clients[0].secret: must be a ${ENV} reference, never a literal; or give secret_hash (fedhub hash-secret)"
		if !slices.Contains(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	})

	t.Run("looks up only what is referenced", func(t *testing.T) {
		var asked []string
		lookup := func(name string) (string, bool) {
			asked = append(asked, name)
			return "x", true
		}
		mustParse(t, "issuer: https://login.example.com\n# ${IN_A_COMMENT}\nstorage:\n  dsn: ${A}-${B:-b}\n", lookup)
		if !slices.Equal(asked, []string{"A", "B"}) {
			t.Errorf("looked up %q, want [A B]", asked)
		}
	})
}

func TestKeyError(t *testing.T) {
	if got := (&config.KeyError{Key: "a.b", Line: 7, Msg: "bad"}).Error(); got != "line 7: a.b: bad" {
		t.Errorf("with a line: %q", got)
	}
	if got := (&config.KeyError{Key: "issuer", Msg: "is required"}).Error(); got != "issuer: is required" {
		t.Errorf("without a line: %q", got)
	}
	errs := config.Errors{errors.New("one"), errors.New("two")}
	if errs.Error() != "one\ntwo" {
		t.Errorf("Errors = %q", errs.Error())
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "127.0.0.1": true, "127.1.2.3": true, "::1": true, "fedhub.localhost": true,
		"localhost.example.com": false, "localhost.": false, "evil-localhost": false, "10.0.0.1": false, "0.0.0.0": false, "::": false,
		"example.com": false, "": false, "[::1]": false,
	} {
		if got := config.IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/fedhub.yaml"
	if err := os.WriteFile(path, []byte("issuer: https://login.example.com\nlisten: bad\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.LoadFile(path, connectors.Types())
	if err == nil || !strings.Contains(err.Error(), path+":\nline 2: listen: must be host:port") {
		t.Errorf("LoadFile error = %v, want the path and the key's line", err)
	}
	if _, err := config.LoadFile(dir+"/missing.yaml", connectors.Types()); err == nil {
		t.Errorf("LoadFile of a missing file: no error")
	}
}
