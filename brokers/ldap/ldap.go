package ldap

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/fedhub/fedhub/login"

	"github.com/go-ldap/ldap/v3"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/usernames"
)

// Connector logs people in against one LDAP directory or Active Directory domain.
type Connector struct {
	cfg Config
	log *slog.Logger
	tls *tls.Config

	pool     chan *pooled // PoolSize slots
	closed   chan struct{}
	mu       sync.Mutex // guards isClosed against release
	isClosed bool

	lookupSRV  func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	srvMu      sync.Mutex
	srvRecords []*net.SRV // the last SRV records found, and when
	srvAt      time.Time
}

var (
	_ brokers.PasswordConnector = (*Connector)(nil)
	_ brokers.HealthChecker     = (*Connector)(nil)
)

// maxUsername bounds what is sent to the directory; no real username comes near it.
const maxUsername = 256

// errAmbiguous is the generic failure for a search that found more than one entry.
var errAmbiguous = errors.New("ldap: the username matches more than one directory entry")

// New checks cfg, fills in its defaults and returns a connector. It does not connect:
// fedhub must start while the directory is unreachable. log may be nil.
func New(cfg Config, log *slog.Logger) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	cfg = cfg.withDefaults()
	tc, err := cfg.baseTLS()
	if err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Insecure {
		log.Warn("ldap: insecure is set: plain LDAP is allowed and TLS certificates are not verified")
	}
	c := &Connector{
		cfg:       cfg,
		log:       log,
		tls:       tc,
		pool:      make(chan *pooled, cfg.PoolSize),
		closed:    make(chan struct{}),
		lookupSRV: net.DefaultResolver.LookupSRV,
	}
	for range cfg.PoolSize {
		c.pool <- &pooled{}
	}
	return c, nil
}

func (c *Connector) now() time.Time { return c.cfg.Now() }

// Health reports whether a server can be reached and the service account can bind, on a
// fresh connection.
func (c *Connector) Health(ctx context.Context) error {
	select {
	case <-c.closed:
		return errClosed
	default:
	}
	if c.cfg.BindDN == "" {
		conn, _, err := c.dial(ctx, "", "", "")
		if err != nil {
			return err
		}
		// An anonymous search of the root DSE proves the server answers.
		err = c.guard(ctx, conn, func() error {
			_, err := c.search(conn, ldap.NewSearchRequest("", ldap.ScopeBaseObject, 0, 1, 0, false,
				"(objectClass=*)", []string{"namingContexts"}, nil))
			return err
		})
		conn.Close()
		return err
	}
	conn, _, err := c.dial(ctx, "", c.cfg.BindDN, c.cfg.BindPassword)
	if err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return fmt.Errorf("ldap: the service account (bind_dn) cannot bind: %w", err)
		}
		return err
	}
	return conn.Close()
}

// Login checks username and password against the directory. It returns
// login.ErrInvalidCredentials (a *login.CredentialsError naming the entry's subject when
// the username found one), login.ErrAccountDisabled or a *login.UserError for what the
// person should be told, another error (logged by the caller, shown as a generic failure)
// when the directory could not answer, and admit's error when admit refuses the entry
// found: then its password is not tried.
func (c *Connector) Login(ctx context.Context, username, password string, admit func(account string) error) (login.Identity, error) {
	// RFC 4513 §5.1.2: a simple bind with a DN and no password is an unauthenticated bind,
	// which servers answer with success. Refuse it before any network I/O.
	if password == "" {
		return login.Identity{}, login.ErrInvalidCredentials
	}
	filter, ok := c.userFilter(username)
	if !ok {
		c.log.DebugContext(ctx, "ldap: username refused before the search", "username", username)
		return login.Identity{}, login.ErrInvalidCredentials
	}

	var entry *ldap.Entry
	var server string
	err := c.withService(ctx, func(conn *ldap.Conn, srv string) error {
		server = srv
		var err error
		entry, err = c.findUser(conn, filter)
		return err
	})
	if errors.Is(err, login.ErrInvalidCredentials) {
		c.log.InfoContext(ctx, "ldap: login failed: no such user", "username", username)
		return login.Identity{}, err
	}
	if errors.Is(err, errAmbiguous) {
		c.log.ErrorContext(ctx, "ldap: login failed: the user search found more than one entry; fix user_filter or username_attribute",
			"username", username, "filter", filter)
		return login.Identity{}, err
	}
	if err != nil {
		c.log.ErrorContext(ctx, "ldap: login failed: user search", "username", username, "error", err)
		return login.Identity{}, fmt.Errorf("ldap: user search: %w", err)
	}

	// Failures count against the entry, whichever form of its name was typed (uid, AD's
	// DOMAIN\user and user@domain, other cases and spacings).
	account := c.subject(entry)
	if admit != nil {
		if err := admit(account); err != nil {
			return login.Identity{}, err
		}
	}

	// The password is checked on a connection of its own: a pooled connection must stay
	// bound as the service account. The server that found the entry is tried first, as it
	// surely knows it.
	conn, _, err := c.dial(ctx, server, entry.DN, password)
	if err == nil {
		conn.Close()
	} else {
		result, detail := classifyBind(err)
		if result == nil {
			c.log.ErrorContext(ctx, "ldap: login failed: bind", "username", username, "dn", entry.DN, "error", err)
			return login.Identity{}, fmt.Errorf("ldap: bind: %w", err)
		}
		c.log.InfoContext(ctx, "ldap: login failed: bind refused", append([]any{"username", username, "dn", entry.DN}, detail...)...)
		if result == login.ErrInvalidCredentials {
			result = &login.CredentialsError{Account: account}
		}
		return login.Identity{}, result
	}

	id := c.identity(entry) // its Subject is account
	err = c.withService(ctx, func(conn *ldap.Conn, _ string) error {
		var err error
		id.Groups, err = c.groups(conn, entry)
		return err
	})
	if err != nil {
		c.log.ErrorContext(ctx, "ldap: login failed: group search", "username", username, "dn", entry.DN, "error", err)
		return login.Identity{}, fmt.Errorf("ldap: group search: %w", err)
	}
	return id, nil
}

// userFilter builds the search filter for what the person typed, in fedhub's one
// normalisation of usernames with its case kept (usernames.Display: trimmed, one space
// between parts, full-width letters as ASCII; the directory's matching rules ignore case
// themselves); ok is false for a username that cannot name anyone.
func (c *Connector) userFilter(username string) (filter string, ok bool) {
	u, err := usernames.Display(username)
	if err != nil || len(u) > maxUsername {
		return "", false
	}
	eq := func(attr, value string) string { return "(" + attr + "=" + ldap.EscapeFilter(value) + ")" }
	if !c.cfg.ActiveDirectory {
		return "(&" + c.cfg.UserFilter + eq(c.cfg.UsernameAttr, u) + ")", true
	}
	var match string
	if domain, user, found := strings.Cut(u, `\`); found {
		// The down-level logon name DOMAIN\user, for our domain only.
		if c.cfg.Domain == "" || !strings.EqualFold(domain, c.cfg.Domain) || user == "" {
			return "", false
		}
		match = eq(c.cfg.UsernameAttr, user)
	} else if at := strings.LastIndexByte(u, '@'); at >= 0 {
		match = eq("userPrincipalName", u)
		if at > 0 && c.cfg.UPNSuffix != "" && strings.EqualFold(u[at+1:], c.cfg.UPNSuffix) {
			match = "(|" + match + eq(c.cfg.UsernameAttr, u[:at]) + ")"
		}
	} else {
		match = eq(c.cfg.UsernameAttr, u)
	}
	return "(&" + c.cfg.UserFilter + match + adNotDisabled + ")", true
}

// userAttrs are the attributes read from a user's entry, all of them in Identity.Raw.
func (c *Connector) userAttrs() []string {
	attrs := []string{c.cfg.UsernameAttr, c.cfg.SubjectAttr, c.cfg.EmailAttr, c.cfg.NameAttr, "givenName", "sn"}
	if c.cfg.ActiveDirectory {
		attrs = append(attrs, "sAMAccountName", "userPrincipalName", "userAccountControl")
	}
	if strings.EqualFold(c.cfg.GroupMemberAttr, "memberUid") {
		attrs = append(attrs, "uid")
	}
	var out []string
	for _, a := range attrs {
		if !slices.ContainsFunc(out, func(b string) bool { return strings.EqualFold(a, b) }) {
			out = append(out, a)
		}
	}
	return out
}

// findUser searches for exactly one entry, reading userAttrs and extra: none is
// login.ErrInvalidCredentials, more than one errAmbiguous. Referrals in the answer are
// ignored, never followed.
func (c *Connector) findUser(conn *ldap.Conn, filter string, extra ...string) (*ldap.Entry, error) {
	req := ldap.NewSearchRequest(c.cfg.UserBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, 0, false, filter, append(c.userAttrs(), extra...), nil)
	res, err := c.search(conn, req)
	if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return nil, errAmbiguous
	}
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return nil, fmt.Errorf("user_base %q does not exist: %w", c.cfg.UserBase, err)
	}
	if err != nil {
		return nil, err
	}
	if len(res.Referrals) > 0 {
		c.log.Debug("ldap: user search returned referrals, not followed", "referrals", res.Referrals)
	}
	switch len(res.Entries) {
	case 0:
		return nil, login.ErrInvalidCredentials
	case 1:
		return res.Entries[0], nil
	default:
		return nil, errAmbiguous
	}
}

// groups returns the names of the groups the entry belongs to, sorted.
func (c *Connector) groups(conn *ldap.Conn, entry *ldap.Entry) ([]string, error) {
	var member string
	switch {
	case c.cfg.ActiveDirectory:
		// Nested groups too, resolved by the server.
		member = "(" + c.cfg.GroupMemberAttr + ":" + adMatchingRuleInChain + ":=" + ldap.EscapeFilter(entry.DN) + ")"
	case strings.EqualFold(c.cfg.GroupMemberAttr, "memberUid"):
		// posixGroup names members by username, not DN.
		uid := entry.GetEqualFoldAttributeValue("uid")
		if uid == "" {
			return nil, nil
		}
		member = "(" + c.cfg.GroupMemberAttr + "=" + ldap.EscapeFilter(uid) + ")"
	default:
		member = "(" + c.cfg.GroupMemberAttr + "=" + ldap.EscapeFilter(entry.DN) + ")"
	}
	req := ldap.NewSearchRequest(c.cfg.GroupBase, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, "(&"+c.cfg.GroupFilter+member+")", []string{c.cfg.GroupNameAttr}, nil)
	res, err := c.searchPaged(conn, req)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, g := range res.Entries {
		names = append(names, cmp.Or(g.GetEqualFoldAttributeValue(c.cfg.GroupNameAttr), g.DN))
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// identity builds the identity from the user's entry.
func (c *Connector) identity(e *ldap.Entry) login.Identity {
	raw := map[string]any{"dn": e.DN}
	for _, a := range e.Attributes {
		vals := make([]string, len(a.ByteValues))
		for i, b := range a.ByteValues {
			if s, ok := formatGUID(b); ok && strings.EqualFold(a.Name, "objectGUID") {
				vals[i] = s
			} else if utf8.Valid(b) {
				vals[i] = string(b)
			} else {
				vals[i] = base64.StdEncoding.EncodeToString(b) // binary: objectSid, photos…
			}
		}
		if len(vals) == 1 {
			raw[a.Name] = vals[0]
		} else {
			raw[a.Name] = vals
		}
	}
	return login.Identity{
		Subject:  c.subject(e),
		Username: cmp.Or(e.GetEqualFoldAttributeValue(c.cfg.UsernameAttr), e.DN),
		Email:    e.GetEqualFoldAttributeValue(c.cfg.EmailAttr),
		Name:     e.GetEqualFoldAttributeValue(c.cfg.NameAttr),
		Raw:      raw,
	}
}

// subject is the entry's stable identifier: objectGUID as a GUID string, else the value of
// SubjectAttr (entryUUID), else the DN.
func (c *Connector) subject(e *ldap.Entry) string {
	if strings.EqualFold(c.cfg.SubjectAttr, "objectGUID") {
		if s, ok := formatGUID(e.GetEqualFoldRawAttributeValue(c.cfg.SubjectAttr)); ok {
			return s
		}
	} else if v := e.GetEqualFoldAttributeValue(c.cfg.SubjectAttr); v != "" {
		return v
	}
	c.log.Debug("ldap: entry has no subject attribute, using its DN as subject", "attribute", c.cfg.SubjectAttr, "dn", e.DN)
	return e.DN
}
