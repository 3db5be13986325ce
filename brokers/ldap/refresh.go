package ldap

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/login"
)

var _ brokers.Refresher = (*Connector)(nil)

// Active Directory's account state, beyond userAccountControl's ACCOUNTDISABLE.
const (
	// adComputedUAC is computed by the DC at read time: lockout and password
	// expiry follow the domain's policy, which a stored attribute cannot show.
	adComputedUAC = "msDS-User-Account-Control-Computed"
	adLockout     = 0x10 // UF_LOCKOUT
	adDisabled    = 0x2  // ACCOUNTDISABLE
	// adNever is accountExpires' "never" besides 0.
	adNever = 0x7FFFFFFFFFFFFFFF
	// ppolicyLocked is OpenLDAP ppolicy's operational attribute of a locked account.
	ppolicyLocked = "pwdAccountLockedTime"
)

// Refresh implements brokers.Refresher: it finds the entry again by its
// stable subject (objectGUID, entryUUID — never the username, which may now
// name someone else) under user_base and through user_filter. Gone, moved
// out of the filter, disabled, locked or expired is the directory's no. The
// entry's current profile and groups come back for the connector's sync.
func (c *Connector) Refresh(ctx context.Context, id login.Identity, _ time.Time) (brokers.Rechecked, error) {
	filter, base, scope, err := c.subjectSearch(id.Subject)
	if err != nil {
		return brokers.Rechecked{}, err
	}
	attrs := append(c.userAttrs(), ppolicyLocked)
	if c.cfg.ActiveDirectory {
		attrs = append(attrs, adComputedUAC, "accountExpires")
	}
	var entry *ldap.Entry
	var groups []string
	err = c.withService(ctx, func(conn *ldap.Conn, _ string) error {
		res, err := c.search(conn, ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 2, 0, false, filter, attrs, nil))
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) { // a DN subject whose entry is gone
			return nil
		}
		if err != nil {
			return err
		}
		if len(res.Entries) != 1 {
			return nil
		}
		entry = res.Entries[0]
		groups, err = c.groups(conn, entry)
		return err
	})
	if err != nil {
		return brokers.Rechecked{}, fmt.Errorf("ldap: re-check: %w", err)
	}
	if entry == nil {
		return brokers.Rechecked{}, fmt.Errorf("%w: the directory entry is gone or no longer matches user_filter", login.ErrUpstreamRefused)
	}
	if why := c.refusal(entry); why != "" {
		return brokers.Rechecked{}, fmt.Errorf("%w: the directory account is %s", login.ErrUpstreamRefused, why)
	}
	cur := c.identity(entry)
	cur.Groups = groups
	return brokers.Rechecked{Current: &cur}, nil
}

// subjectSearch is the search that finds the entry of a subject.
func (c *Connector) subjectSearch(subject string) (filter, base string, scope int, err error) {
	byAttr := func(value string) (string, string, int, error) {
		return "(&" + c.cfg.UserFilter + "(" + c.cfg.SubjectAttr + "=" + ldap.EscapeFilter(value) + "))", c.cfg.UserBase, ldap.ScopeWholeSubtree, nil
	}
	if strings.EqualFold(c.cfg.SubjectAttr, "objectGUID") {
		if raw, ok := parseGUID(subject); ok {
			return byAttr(string(raw))
		}
	} else if !strings.Contains(subject, "=") { // an entryUUID, never a DN
		return byAttr(subject)
	}
	// An entry without the subject attribute was linked by its DN.
	dn, err := ldap.ParseDN(subject)
	userBase, berr := ldap.ParseDN(c.cfg.UserBase)
	if err != nil || berr != nil || !(userBase.AncestorOfFold(dn) || userBase.EqualFold(dn)) {
		return "", "", 0, fmt.Errorf("%w: the subject %q is not an entry under user_base", login.ErrUpstreamRefused, subject)
	}
	return c.cfg.UserFilter, subject, ldap.ScopeBaseObject, nil
}

// refusal says why the directory no longer lets the entry sign in, or "".
func (c *Connector) refusal(e *ldap.Entry) string {
	if e.GetEqualFoldAttributeValue(ppolicyLocked) != "" {
		return "locked"
	}
	if !c.cfg.ActiveDirectory {
		return ""
	}
	uac, _ := strconv.ParseInt(e.GetEqualFoldAttributeValue("userAccountControl"), 10, 64)
	computed, _ := strconv.ParseInt(e.GetEqualFoldAttributeValue(adComputedUAC), 10, 64)
	switch {
	case uac&adDisabled != 0:
		return "disabled"
	case computed&adLockout != 0:
		return "locked"
	}
	if v, err := strconv.ParseInt(e.GetEqualFoldAttributeValue("accountExpires"), 10, 64); err == nil && v != 0 && v != adNever &&
		fileTime(v).Before(c.now()) {
		return "expired"
	}
	return ""
}

// fileTime converts a Windows FILETIME (100 ns since 1601-01-01 UTC).
func fileTime(v int64) time.Time {
	const epochDiff = 116444736000000000 // 1601 to 1970 in 100 ns
	return time.Unix(0, 0).Add(time.Duration(v-epochDiff) * 100).UTC()
}

// parseGUID is formatGUID's inverse: the 16 bytes of an objectGUID string.
func parseGUID(s string) ([]byte, bool) {
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 || len(s) != 36 {
		return nil, false
	}
	binary.LittleEndian.PutUint32(b[0:4], binary.BigEndian.Uint32(b[0:4]))
	binary.LittleEndian.PutUint16(b[4:6], binary.BigEndian.Uint16(b[4:6]))
	binary.LittleEndian.PutUint16(b[6:8], binary.BigEndian.Uint16(b[6:8]))
	return b, true
}
