package ldap

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/fedhub/fedhub/login"
)

// ResolvePrincipal finds the account of a Kerberos principal (user@REALM,
// whose ticket the Kerberos connector verified), for the Kerberos connector's
// resolve_with: on Active Directory by userPrincipalName, else by
// sAMAccountName (the username attribute elsewhere). The identity is the one a
// password login of the account gives, the same subject (objectGUID)
// included. An account that may not sign in is refused as at a re-check:
// disabled is login.ErrAccountDisabled, locked or expired a *login.UserError;
// none is login.ErrInvalidCredentials.
func (c *Connector) ResolvePrincipal(ctx context.Context, principal string) (login.Identity, error) {
	at := strings.LastIndexByte(principal, '@')
	if at <= 0 || strings.Contains(principal[:at], "/") || len(principal) > maxUsername { // service principals are nobody
		return login.Identity{}, login.ErrInvalidCredentials
	}
	eq := func(attr, value string) string { return "(" + attr + "=" + ldap.EscapeFilter(value) + ")" }
	var filters []string
	if c.cfg.ActiveDirectory {
		filters = append(filters, "(&"+c.cfg.UserFilter+eq("userPrincipalName", principal)+")")
	}
	filters = append(filters, "(&"+c.cfg.UserFilter+eq(c.cfg.UsernameAttr, principal[:at])+")")
	extra := []string{ppolicyLocked}
	if c.cfg.ActiveDirectory {
		extra = append(extra, adComputedUAC, "accountExpires")
	}
	var entry *ldap.Entry
	var groups []string
	err := c.withService(ctx, func(conn *ldap.Conn, _ string) error {
		var err error
		for _, f := range filters {
			if entry, err = c.findUser(conn, f, extra...); !errors.Is(err, login.ErrInvalidCredentials) {
				break
			}
		}
		if err != nil {
			return err
		}
		groups, err = c.groups(conn, entry)
		return err
	})
	if errors.Is(err, login.ErrInvalidCredentials) {
		c.log.Info("ldap: Kerberos principal not found", "principal", principal)
		return login.Identity{}, err
	}
	if err != nil {
		return login.Identity{}, fmt.Errorf("ldap: find Kerberos principal: %w", err)
	}
	switch c.refusal(entry) {
	case "disabled":
		return login.Identity{}, login.ErrAccountDisabled
	case "locked":
		return login.Identity{}, &login.UserError{Message: msgLocked}
	case "expired":
		return login.Identity{}, &login.UserError{Message: msgAccountExpired}
	}
	id := c.identity(entry)
	id.Groups = groups
	return id, nil
}
