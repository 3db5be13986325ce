package issuer

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/fedhub/fedhub/linking"
)

// Which scope releases which claims (OIDC Core §5.4). Groups and roles always
// travel: they are what downstream apps authorise on.
var scopeClaims = map[string][]string{
	"profile": {"name", "preferred_username"},
	"email":   {"email", "email_verified"},
}

// userClaims are the user's claims that the scopes, or an explicit claims
// request for this target ("id_token" or "userinfo"), release.
func userClaims(u *linking.User, scope, claimsParam, target string) map[string]any {
	all := map[string]any{
		"preferred_username": u.Username,
		"name":               u.Name,
		"email":              u.Email,
		"email_verified":     u.EmailVerified,
	}
	out := map[string]any{
		"groups":       nonNil(u.Groups),
		"realm_access": map[string]any{"roles": nonNil(u.Roles)},
	}
	release := func(name string) {
		if v, ok := all[name]; ok && v != "" {
			out[name] = v
		}
	}
	for _, s := range strings.Fields(scope) {
		for _, name := range scopeClaims[s] {
			release(name)
		}
	}
	for _, name := range requestedClaims(claimsParam, target) {
		release(name)
	}
	if _, ok := out["email"]; !ok {
		delete(out, "email_verified")
	}
	return out
}

// requestedClaims lists the claim names the "claims" parameter asks for in target.
func requestedClaims(claimsParam, target string) []string {
	if claimsParam == "" {
		return nil
	}
	var req map[string]map[string]json.RawMessage
	if json.Unmarshal([]byte(claimsParam), &req) != nil {
		return nil
	}
	names := make([]string, 0, len(req[target]))
	for name := range req[target] {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func hasScope(scope, want string) bool {
	return slices.Contains(strings.Fields(scope), want)
}

// subsetScope reports whether every scope in requested is in granted.
func subsetScope(requested, granted string) bool {
	g := strings.Fields(granted)
	for _, s := range strings.Fields(requested) {
		if !slices.Contains(g, s) {
			return false
		}
	}
	return true
}
