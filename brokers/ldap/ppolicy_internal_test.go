package ldap

import (
	"errors"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// TestWithPolicy: a bind's outcome with the password policy control, as
// OpenLDAP's ppolicy sends it; the real server's answers are
// TestPasswordPolicyOpenLDAP's.
func TestWithPolicy(t *testing.T) {
	refused := ldap.NewError(ldap.LDAPResultInvalidCredentials, errors.New(""))
	network := ldap.NewError(ldap.ErrorNetwork, errors.New("reset"))
	control := func(code int8, grace int64) *ldap.SimpleBindResult {
		c := ldap.NewControlBeheraPasswordPolicy()
		c.Error, c.Grace = code, grace
		return &ldap.SimpleBindResult{Controls: []ldap.Control{c}}
	}
	for _, tc := range []struct {
		name   string
		res    *ldap.SimpleBindResult
		err    error
		policy int8 // the *policyError's code, or -1 for err itself
	}{
		{"no answer", nil, network, -1},
		{"no control: a directory without the policy", &ldap.SimpleBindResult{}, refused, -1},
		{"no control, bound", &ldap.SimpleBindResult{}, nil, -1},
		{"control without an error, bound", control(-1, -1), nil, -1},
		{"grace sign-in of an expired password", control(-1, 2), nil, -1},
		{"wrong password", control(-1, -1), refused, -1},
		{"locked", control(policyAccountLocked, -1), refused, policyAccountLocked},
		{"expired", control(policyPasswordExpired, -1), refused, policyPasswordExpired},
		{"bound only to change the password", control(policyChangeAfterReset, -1), nil, policyChangeAfterReset},
		{"a network error wins", control(policyAccountLocked, -1), network, -1},
	} {
		got := withPolicy(tc.res, tc.err)
		var pe *policyError
		switch {
		case tc.policy < 0 && got != tc.err:
			t.Errorf("%s: %v, want the bind's own %v", tc.name, got, tc.err)
		case tc.policy >= 0 && (!errors.As(got, &pe) || pe.code != tc.policy || !errors.Is(got, tc.err) && tc.err != nil):
			t.Errorf("%s: %#v, want a policy error %d wrapping %v", tc.name, got, tc.policy, tc.err)
		}
	}
}
