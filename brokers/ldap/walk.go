package ldap

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/fedhub/fedhub/brokers"
)

var _ brokers.DirectoryWalker = (*Connector)(nil)

// pageSize is the size of a page of a directory walk (RFC 2696): Active
// Directory answers at most 1,000 entries a page (MaxPageSize).
const pageSize = 1000

// Walk calls fn with every entry of the user filter, a page at a time, each
// as a login of it would see it: same subject, same groups. On Active
// Directory, since (a Mark of an earlier walk: its scope and highestCommittedUSN) limits the
// walk to the entries whose uSNChanged is higher — unless a group changed
// since, as group memberships live on the groups and do not change a
// member's uSNChanged: then the walk is full. Elsewhere every walk is full.
// Disabled AD accounts are walked too, marked Disabled.
func (c *Connector) Walk(ctx context.Context, since string, fn func([]brokers.DirectoryEntry) error) (brokers.Walked, error) {
	conn, err := c.walkConn(ctx)
	if err != nil {
		return brokers.Walked{}, err
	}
	defer conn.Close()
	walked := brokers.Walked{Full: true}
	filter := c.cfg.UserFilter
	if c.cfg.ActiveDirectory {
		// Read before the walk: what changes during it is walked again next time.
		usn, err := c.highestUSN(ctx, conn)
		if err != nil {
			return brokers.Walked{}, err
		}
		walked.Mark = c.scope() + usn
		// A mark of another scope (user_base, a filter changed since) is no start.
		if usn, err := strconv.ParseUint(strings.TrimPrefix(since, c.scope()), 10, 64); err == nil && strings.HasPrefix(since, c.scope()) {
			changed := "(uSNChanged>=" + strconv.FormatUint(usn+1, 10) + ")"
			groupsChanged, err := c.exists(ctx, conn, c.cfg.GroupBase, "(&"+c.cfg.GroupFilter+changed+")")
			if err != nil {
				return brokers.Walked{}, err
			}
			if !groupsChanged {
				walked.Full = false
				filter = "(&" + filter + changed + ")"
			}
		}
	}
	members, err := c.memberships(ctx, conn)
	if err != nil {
		return brokers.Walked{}, err
	}
	err = c.pages(ctx, conn, c.cfg.UserBase, filter, c.userAttrs(), func(entries []*ldap.Entry) error {
		page := make([]brokers.DirectoryEntry, len(entries))
		for i, e := range entries {
			page[i].Identity = c.identity(e)
			page[i].Identity.Groups = members.of(e)
			if c.cfg.ActiveDirectory {
				uac, _ := strconv.ParseInt(e.GetEqualFoldAttributeValue("userAccountControl"), 10, 64)
				page[i].Disabled = uac&adDisabled != 0
			}
		}
		return fn(page)
	})
	if err != nil {
		return brokers.Walked{}, fmt.Errorf("ldap: walk the users: %w", err)
	}
	return walked, nil
}

// Subjects calls fn with the subject of every entry of the user filter, a page
// at a time, reading nothing else: a cheap listing that shows which entries
// left the directory (deleted, moved out of user_base, out of the filter).
// Active Directory keeps deleted objects in CN=Deleted Objects, readable with
// the Show Deleted control, but only by privileged accounts, and it does not
// show entries that merely moved out of reach: a listing sees both.
func (c *Connector) Subjects(ctx context.Context, fn func([]string) error) error {
	conn, err := c.walkConn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	err = c.pages(ctx, conn, c.cfg.UserBase, c.cfg.UserFilter, []string{c.cfg.SubjectAttr}, func(entries []*ldap.Entry) error {
		page := make([]string, len(entries))
		for i, e := range entries {
			page[i] = c.subject(e)
		}
		return fn(page)
	})
	if err != nil {
		return fmt.Errorf("ldap: list the users: %w", err)
	}
	return nil
}

// walkConn is a connection of its own for a walk, bound as the service
// account: a walk takes long, and must not hold one of the pool's slots.
func (c *Connector) walkConn(ctx context.Context) (*ldap.Conn, error) {
	select {
	case <-c.closed:
		return nil, errClosed
	default:
	}
	conn, _, err := c.dial(ctx, "", c.cfg.BindDN, c.cfg.BindPassword)
	if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		return nil, fmt.Errorf("ldap: the service account (bind_dn) cannot bind: %w", err)
	}
	return conn, err
}

// pages runs a paged search (RFC 2696) and calls fn with each page as it comes.
func (c *Connector) pages(ctx context.Context, conn *ldap.Conn, base, filter string, attrs []string, fn func([]*ldap.Entry) error) error {
	paging := ldap.NewControlPaging(pageSize)
	for {
		req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			filter, attrs, []ldap.Control{paging})
		var res *ldap.SearchResult
		err := c.guard(ctx, conn, func() error {
			var err error
			res, err = c.search(conn, req)
			return err
		})
		if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
			return fmt.Errorf("the directory limits how many entries the service account may read; lift it for bind_dn "+
				"(OpenLDAP: olcLimits size.prtotal=unlimited; Active Directory: MaxPageSize is at least 1000): %w", err)
		}
		if err != nil {
			return err
		}
		if len(res.Entries) > 0 {
			if err := fn(res.Entries); err != nil {
				return err
			}
		}
		next, ok := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if !ok || len(next.Cookie) == 0 {
			return nil
		}
		paging.SetCookie(next.Cookie)
	}
}

// scope names what a walk covers, in its marks: an incremental walk starts
// only from a mark of the same bases and filters.
func (c *Connector) scope() string {
	h := fnv.New64a()
	for _, v := range []string{c.cfg.UserBase, c.cfg.UserFilter, c.cfg.GroupBase, c.cfg.GroupFilter, c.cfg.GroupMemberAttr} {
		h.Write([]byte(strings.ToLower(v) + "\x00"))
	}
	return strconv.FormatUint(h.Sum64(), 16) + ":"
}

// highestUSN reads the root DSE's highestCommittedUSN (Active Directory).
func (c *Connector) highestUSN(ctx context.Context, conn *ldap.Conn) (string, error) {
	var res *ldap.SearchResult
	err := c.guard(ctx, conn, func() error {
		var err error
		res, err = c.search(conn, ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
			"(objectClass=*)", []string{"highestCommittedUSN"}, nil))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("ldap: read highestCommittedUSN: %w", err)
	}
	if len(res.Entries) == 0 {
		return "", fmt.Errorf("ldap: read highestCommittedUSN: no root DSE")
	}
	usn := res.Entries[0].GetAttributeValue("highestCommittedUSN")
	if _, err := strconv.ParseUint(usn, 10, 64); err != nil {
		return "", fmt.Errorf("ldap: highestCommittedUSN %q is not a number", usn)
	}
	return usn, nil
}

// exists says whether filter finds at least one entry under base.
func (c *Connector) exists(ctx context.Context, conn *ldap.Conn, base, filter string) (bool, error) {
	var res *ldap.SearchResult
	err := c.guard(ctx, conn, func() error {
		var err error
		res, err = c.search(conn, ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 1, 0, false,
			filter, []string{"1.1"}, nil))
		return err
	})
	if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("ldap: search %s: %w", filter, err)
	}
	return len(res.Entries) > 0, nil
}

// membership is every group of the group filter, read once for a walk instead
// of one group search per user.
type membership struct {
	byUID   bool             // members are named by uid (memberUid), not by DN
	nested  bool             // groups in groups count (Active Directory)
	names   []string         // group name by index
	dns     []string         // group DN (normalised) by index, for nesting
	byValue map[string][]int // a member value (a normalised DN, or a uid) → its groups
}

// memberships reads every group with its members.
func (c *Connector) memberships(ctx context.Context, conn *ldap.Conn) (*membership, error) {
	m := &membership{byUID: strings.EqualFold(c.cfg.GroupMemberAttr, "memberUid"), nested: c.cfg.ActiveDirectory,
		byValue: map[string][]int{}}
	err := c.pages(ctx, conn, c.cfg.GroupBase, c.cfg.GroupFilter, []string{c.cfg.GroupNameAttr, c.cfg.GroupMemberAttr}, func(groups []*ldap.Entry) error {
		for _, g := range groups {
			i := len(m.names)
			m.names = append(m.names, cmp.Or(g.GetEqualFoldAttributeValue(c.cfg.GroupNameAttr), g.DN))
			m.dns = append(m.dns, normDN(g.DN))
			for _, v := range g.GetEqualFoldAttributeValues(c.cfg.GroupMemberAttr) {
				if !m.byUID {
					v = normDN(v)
				}
				m.byValue[v] = append(m.byValue[v], i)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ldap: read the groups: %w", err)
	}
	return m, nil
}

// of returns the names of e's groups, sorted, as Login's group search finds
// them: on Active Directory nested groups too (what LDAP_MATCHING_RULE_IN_CHAIN
// resolves, through groups of the group filter).
func (m *membership) of(e *ldap.Entry) []string {
	key := normDN(e.DN)
	if m.byUID {
		key = e.GetEqualFoldAttributeValue("uid")
	}
	seen := map[int]bool{}
	queue := slices.Clone(m.byValue[key])
	for len(queue) > 0 {
		g := queue[0]
		queue = queue[1:]
		if seen[g] {
			continue
		}
		seen[g] = true
		if m.nested {
			queue = append(queue, m.byValue[m.dns[g]]...)
		}
	}
	var names []string
	for g := range seen {
		names = append(names, m.names[g])
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// normDN is a DN in one spelling, so that member values match entries' DNs.
func normDN(dn string) string {
	if parsed, err := ldap.ParseDN(dn); err == nil {
		dn = parsed.String()
	}
	return strings.ToLower(dn)
}
