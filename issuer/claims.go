package issuer

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/fedhub/fedhub/linking"
)

// standardClaims are the claims an explicit claims request (OIDC Core §5.5)
// may ask for whatever the scope, and the user attribute each is.
var standardClaims = map[string]string{"preferred_username": "username", "name": "name", "email": "email",
	"email_verified": "email_verified"}

// userClaims adds to out u's claims for t: those of the mappers of the
// client's scopes that the grant applies, and for the ID token and userinfo
// those an explicit claims request asks for.
func (cs *clientScopes) userClaims(out map[string]any, u *linking.User, scope, claimsParam string, t target) {
	cs.addClaims(out, u, scope, t)
	var name string
	switch t {
	case toIDToken:
		name = "id_token"
	case toUserinfo:
		name = "userinfo"
	default:
		return
	}
	for _, claim := range requestedClaims(claimsParam, name) {
		if attr, ok := standardClaims[claim]; ok {
			if v, ok := userAttribute(u, attr); ok {
				out[claim] = v
			}
		}
	}
	if _, ok := out["email"]; !ok { // email_verified says nothing without the email
		delete(out, "email_verified")
	}
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
