package issuer

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/linking"
)

func TestUnitMatchURI(t *testing.T) {
	registered := []string{
		"https://app.example.com/cb",
		"https://app.example.com:8443/cb?tenant=a",
		"http://127.0.0.1:8080/callback",
		"http://127.0.0.1/no-port",
		"http://[::1]:9000/cb",
		"http://localhost:7000/cb",
		"https://127.0.0.1:8443/tls",
		"com.example.app:/oauth2redirect",
	}
	for _, c := range []struct {
		name string
		uri  string
		want bool
	}{
		// Exact matches.
		{"exact https", "https://app.example.com/cb", true},
		{"exact https with port and query", "https://app.example.com:8443/cb?tenant=a", true},
		{"exact loopback", "http://127.0.0.1:8080/callback", true},
		{"exact localhost", "http://localhost:7000/cb", true},
		{"exact private-use scheme", "com.example.app:/oauth2redirect", true},

		// Loopback IPs over http may use any port (RFC 8252 §7.3).
		{"IPv4 loopback, other port", "http://127.0.0.1:51234/callback", true},
		{"IPv4 loopback, port added", "http://127.0.0.1:3000/no-port", true},
		{"IPv4 loopback, port left out", "http://127.0.0.1/callback", true},
		{"IPv6 loopback, other port", "http://[::1]:61000/cb", true},

		// …but nothing else may differ.
		{"IPv4 loopback, other path", "http://127.0.0.1:51234/other", false},
		{"IPv4 loopback, path with a trailing slash", "http://127.0.0.1:51234/callback/", false},
		{"IPv4 loopback, query added", "http://127.0.0.1:51234/callback?x=1", false},
		{"IPv4 loopback, fragment added", "http://127.0.0.1:51234/callback#x", false},
		{"IPv4 loopback, user info added", "http://evil@127.0.0.1:51234/callback", false},
		{"other loopback address", "http://127.0.0.2:8080/callback", false},
		{"IPv4 loopback for an IPv6 registration", "http://127.0.0.1:9000/cb", false},
		{"IPv6 loopback for an IPv4 registration", "http://[::1]:8080/callback", false},
		{"https on a loopback IP, other port", "https://127.0.0.1:9443/tls", false},
		{"https for an http loopback registration", "https://127.0.0.1:8080/callback", false},
		{"localhost, other port", "http://localhost:7001/cb", false},
		{"localhost for a loopback IP registration", "http://localhost:8080/callback", false},
		{"https host, other port", "https://app.example.com:444/cb", false},
		{"https host, other path", "https://app.example.com/cb2", false},
		{"https host, query added", "https://app.example.com/cb?x=1", false},
		{"https host, other query", "https://app.example.com:8443/cb?tenant=b", false},
		{"https host, query left out", "https://app.example.com:8443/cb", false},
		{"https host, fragment added", "https://app.example.com/cb#x", false},
		{"https host, other case", "https://APP.example.com/cb", false},
		{"http for an https registration", "http://app.example.com/cb", false},
		{"prefix of a registration", "https://app.example.com/c", false},
		{"registration as a prefix", "https://app.example.com/cb/evil", false},
		{"empty", "", false},
		{"not a URL", "%zz", false},
	} {
		if got := matchURI(registered, c.uri); got != c.want {
			t.Errorf("%s: matchURI(%q) = %v, want %v", c.name, c.uri, got, c.want)
		}
	}
	if matchURI(nil, "http://127.0.0.1:8080/callback") {
		t.Errorf("matchURI with nothing registered = true")
	}
	c := &Client{RedirectURIs: registered}
	if !c.redirectAllowed("http://127.0.0.1:1/callback") || c.redirectAllowed("https://evil.example.com/cb") {
		t.Errorf("redirectAllowed does not follow matchURI")
	}
}

func TestUnitCheckPKCE(t *testing.T) {
	// RFC 7636 Appendix B.
	const (
		verifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
		challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
	)
	for _, c := range []struct {
		name                string
		challenge, verifier string
		ok                  bool
	}{
		{"no PKCE at all", "", "", true},
		{"RFC 7636 vector", challenge, verifier, true},
		{"verifier without challenge", "", verifier, false},
		{"challenge without verifier", challenge, "", false},
		{"wrong verifier", challenge, verifier[:len(verifier)-1] + "l", false},
		{"verifier cut short", challenge, verifier[:42], false},
		{"verifier with a suffix", challenge, verifier + "x", false},
		{"plain method: verifier equal to the challenge", challenge, challenge, false},
		{"challenge with padding", challenge + "=", verifier, false},
		{"challenge in standard base64", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM", verifier, false},
		{"challenge in hex", "13d31e961a1ad8ec2f16b10c4c982e0876a878ad6df144566ee1894acb70f9c3", verifier, false},
		{"lower-cased challenge", strings.ToLower(challenge), verifier, false},
	} {
		err := checkPKCE(c.challenge, c.verifier)
		if c.ok {
			if err != nil {
				t.Errorf("%s: checkPKCE = %v, want nil", c.name, err)
			}
			continue
		}
		var oe *oauthError
		if !errors.As(err, &oe) || oe.code != "invalid_grant" || oe.status != http.StatusBadRequest {
			t.Errorf("%s: checkPKCE = %#v, want a 400 invalid_grant", c.name, err)
		}
	}
}

func TestUnitHalfHash(t *testing.T) {
	// OpenID Connect Core 1.0, Appendix A.3: an access token and its at_hash (RS256).
	const token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.ES256} {
		if got := halfHash(token, alg); got != "77QmUPtjPfzWtF2AnpK9RQ" {
			t.Errorf("halfHash(%s) = %q, want 77QmUPtjPfzWtF2AnpK9RQ", alg, got)
		}
	}
	// Ed25519 hashes with SHA-512: the left half is 32 bytes (computed independently with
	// Python's hashlib).
	if got := halfHash(token, jose.EdDSA); got != "q7nS86GgvvFaZkzALLWqJYaJIKw2wCDAVfCAsm5CrBM" {
		t.Errorf("halfHash(EdDSA) = %q, want q7nS86GgvvFaZkzALLWqJYaJIKw2wCDAVfCAsm5CrBM", got)
	}
	if halfHash("a", jose.RS256) == halfHash("b", jose.RS256) {
		t.Errorf("halfHash ignores its input")
	}
}

func TestUnitSubsetScope(t *testing.T) {
	for _, c := range []struct {
		requested, granted string
		want               bool
	}{
		{"", "", true},
		{"", "openid profile", true},
		{"openid", "openid profile", true},
		{"profile openid", "openid profile", true},
		{"openid profile", "openid profile", true},
		{"  openid   profile ", "openid\tprofile", true},
		{"openid openid", "openid", true},
		{"openid email", "openid profile", false},
		{"email", "", false},
		{"OpenID", "openid", false},
		{"open", "openid", false},
		{"openid profile", "openid profile_extra", false},
	} {
		if got := subsetScope(c.requested, c.granted); got != c.want {
			t.Errorf("subsetScope(%q, %q) = %v, want %v", c.requested, c.granted, got, c.want)
		}
	}
}

func TestUnitUserClaims(t *testing.T) {
	full := &linking.User{
		ID: "00000000-0000-4000-8000-000000000001", Username: "alice", Name: "Alice Liddell",
		Email: "alice@example.com", EmailVerified: true,
		Roles: []string{"admin"}, Groups: []string{"ops", "dev"},
	}
	base := func(u *linking.User) map[string]any {
		return map[string]any{"groups": u.Groups, "realm_access": map[string]any{"roles": u.Roles}}
	}
	with := func(m map[string]any, kv ...any) map[string]any {
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	bare := &linking.User{ID: "00000000-0000-4000-8000-000000000002", Username: "bob"}
	bareBase := func() map[string]any {
		return map[string]any{"groups": []string{}, "realm_access": map[string]any{"roles": []string{}}}
	}
	unverified := &linking.User{ID: "3", Username: "carol", Email: "carol@example.com", Roles: []string{"r"}, Groups: []string{"g"}}
	defaults := defaultScopes(t)
	targets := map[string]target{"id_token": toIDToken, "userinfo": toUserinfo, "": toAccessToken}

	for _, c := range []struct {
		name                 string
		user                 *linking.User
		scope, claims, where string
		want                 map[string]any
	}{
		{"openid only", full, "openid", "", "id_token", base(full)},
		{"no scope", full, "", "", "", base(full)},
		{"profile", full, "openid profile", "", "id_token",
			with(base(full), "name", "Alice Liddell", "preferred_username", "alice")},
		{"email", full, "openid email", "", "userinfo",
			with(base(full), "email", "alice@example.com", "email_verified", true)},
		{"profile and email", full, "openid profile email", "", "",
			with(base(full), "name", "Alice Liddell", "preferred_username", "alice", "email", "alice@example.com", "email_verified", true)},
		{"unknown scopes release nothing", full, "openid address phone offline_access custom", "", "", base(full)},
		{"scope names are case-sensitive", full, "openid Profile EMAIL", "", "", base(full)},
		{"unverified email", unverified, "openid email", "", "",
			with(base(unverified), "email", "carol@example.com", "email_verified", false)},
		{"no email: no email_verified either", bare, "openid email", "", "", bareBase()},
		{"no name: no name claim", bare, "openid profile", "", "", with(bareBase(), "preferred_username", "bob")},
		{"nil roles and groups are empty lists", bare, "openid", "", "", bareBase()},

		// The claims request parameter (OIDC Core §5.5), per target.
		{"claims parameter for the ID token", full, "openid", `{"id_token":{"email":null,"name":{"essential":true}}}`, "id_token",
			with(base(full), "email", "alice@example.com", "name", "Alice Liddell")},
		{"claims parameter for another target", full, "openid", `{"userinfo":{"email":null}}`, "id_token", base(full)},
		{"claims parameter for userinfo", full, "openid", `{"userinfo":{"email_verified":null,"email":null}}`, "userinfo",
			with(base(full), "email", "alice@example.com", "email_verified", true)},
		{"claims parameter: email_verified alone", full, "openid", `{"userinfo":{"email_verified":null}}`, "userinfo", base(full)},
		{"claims parameter: unknown claims ignored", full, "openid", `{"id_token":{"address":null,"sub":null,"phone_number":null}}`, "id_token", base(full)},
		{"claims parameter: not JSON", full, "openid", `{"id_token":`, "id_token", base(full)},
		{"claims parameter: target is not an object", full, "openid", `{"id_token":"email"}`, "id_token", base(full)},
	} {
		got := map[string]any{}
		defaults.of("rp").userClaims(got, c.user, c.scope, c.claims, targets[c.where])
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: userClaims(scope %q, claims %q, %q)\n got %#v\nwant %#v", c.name, c.scope, c.claims, c.where, got, c.want)
		}
		if g, ok := got["groups"].([]string); !ok || g == nil {
			t.Errorf("%s: groups = %#v, want a non-nil list (JSON [] rather than null)", c.name, got["groups"])
		}
	}
}

// defaultScopes are the scopes of a configuration that defines none.
func defaultScopes(t *testing.T) *scopeSet {
	ss, err := newScopeSet(&config.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

func TestUnitGrantable(t *testing.T) {
	iss := &Issuer{}
	iss.scopes.Store(defaultScopes(t))
	c := &Client{Scopes: []string{AdminScope, "reports"}}
	plain := &Client{}
	admin, nobody := func() bool { return true }, func() bool { return false }
	for _, tc := range []struct {
		name      string
		client    *Client
		isAdmin   func() bool
		requested string
		want      string
	}{
		{"standard scopes for everyone", plain, nobody, "openid profile email openid", "openid profile email"},
		{"unknown scopes dropped", plain, admin, "openid reports " + AdminScope, "openid"},
		{"a configured scope", c, nobody, "openid reports", "openid reports"},
		{"admin scope for an admin", c, admin, "openid " + AdminScope, "openid " + AdminScope},
		{"admin scope refused to a non-admin", c, nobody, "openid " + AdminScope, "openid"},
		{"admin scope for a client's own grant", c, nil, AdminScope, AdminScope},
	} {
		if got := iss.grantable(tc.client, tc.isAdmin, tc.requested); got != tc.want {
			t.Errorf("%s: grantable = %q, want %q", tc.name, got, tc.want)
		}
	}
	asked := false
	iss.grantable(c, func() bool { asked = true; return true }, "openid profile reports")
	if asked {
		t.Error("an ordinary login read the user: only the admin scope needs its roles")
	}
}
