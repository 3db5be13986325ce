package ldap_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/fedhub/fedhub/e2e/peers"
	"github.com/fedhub/fedhub/login"
)

// TestResolvePrincipal: a Kerberos principal finds the same identity as a
// password login of the account (subject: objectGUID); accounts that may not
// sign in are refused, each as what it is.
func TestResolvePrincipal(t *testing.T) {
	s := peers.SambaAD(t)
	c, _ := connector(t, adConfig(s))
	alice := s.Users["alice"]
	byPassword, err := c.Login(ctx(t), "alice", alice.Password, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		principal string
		want      error // nil: alice's identity
		message   bool  // a *login.UserError
	}{
		{principal: "alice@EXAMPLE.TEST"},
		{principal: "alice@example.test"},
		{principal: "disabled@EXAMPLE.TEST", want: login.ErrAccountDisabled},
		{principal: "locked@EXAMPLE.TEST", message: true},
		{principal: "expired@EXAMPLE.TEST", message: true},
		{principal: "nobody@EXAMPLE.TEST", want: login.ErrInvalidCredentials},
		{principal: "HTTP/fedhub.example.test@EXAMPLE.TEST", want: login.ErrInvalidCredentials},
		{principal: "*@EXAMPLE.TEST", want: login.ErrInvalidCredentials},
		{principal: "alice", want: login.ErrInvalidCredentials},
	} {
		t.Run(tc.principal, func(t *testing.T) {
			id, err := c.ResolvePrincipal(ctx(t), tc.principal)
			switch {
			case tc.message:
				if !errors.As(err, new(*login.UserError)) {
					t.Fatalf("ResolvePrincipal = %v, want a message for the person", err)
				}
			case !errors.Is(err, tc.want):
				t.Fatalf("ResolvePrincipal = %v, want %v", err, tc.want)
			case tc.want == nil && (id.Subject != byPassword.Subject || id.Username != byPassword.Username ||
				!slices.Equal(id.Groups, byPassword.Groups)):
				t.Fatalf("identity %+v, want the password login's %+v", id, byPassword)
			}
		})
	}
}
