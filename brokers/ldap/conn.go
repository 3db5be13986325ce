package ldap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// errClosed is returned once Close was called.
var errClosed = errors.New("ldap: connector closed")

// pooled is a service-account connection; conn is nil for a slot not dialled yet, or whose
// connection broke.
type pooled struct {
	conn   *ldap.Conn
	server string // the URL it is connected to
}

// serverURLs lists the servers to try, in order, with prefer (if listed) first.
func (c *Connector) serverURLs(ctx context.Context, prefer string) ([]string, error) {
	urls := c.cfg.URLs
	if c.cfg.SRV != "" {
		var err error
		if urls, err = c.srvURLs(ctx); err != nil {
			return nil, err
		}
	}
	if i := slices.Index(urls, prefer); i > 0 {
		urls = append([]string{prefer}, slices.Delete(slices.Clone(urls), i, i+1)...)
	}
	return urls, nil
}

// dial connects to the first server that answers, preferring prefer, and binds as dn when
// dn is not empty. Servers that cannot be reached, or that fail during TLS or the bind with a
// network error, are skipped; any answer from a server (a bind refused, say) ends the search.
func (c *Connector) dial(ctx context.Context, prefer, dn, password string) (*ldap.Conn, string, error) {
	urls, err := c.serverURLs(ctx, prefer)
	if err != nil {
		return nil, "", err
	}
	var errs []error
	for _, u := range urls {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		conn, err := c.dialOne(ctx, u)
		if err == nil && dn != "" {
			if err = c.bind(ctx, conn, dn, password); err != nil {
				conn.Close()
			}
		}
		if err == nil {
			return conn, u, nil
		}
		if !isNetworkError(err) {
			return nil, u, err
		}
		c.log.WarnContext(ctx, "ldap: server unreachable, trying the next one", "server", u, "error", err)
		errs = append(errs, fmt.Errorf("%s: %w", u, err))
	}
	return nil, "", fmt.Errorf("ldap: no server reachable: %w", errors.Join(errs...))
}

// dialOne connects to one server, with StartTLS if configured, within the timeout.
func (c *Connector) dialOne(ctx context.Context, rawURL string) (*ldap.Conn, error) {
	d := &net.Dialer{Timeout: c.cfg.Timeout}
	if dl, ok := ctx.Deadline(); ok {
		d.Deadline = dl
	}
	tc := c.tlsFor(rawURL)
	conn, err := ldap.DialURL(rawURL, ldap.DialWithDialer(d), ldap.DialWithTLSConfig(tc))
	if err != nil {
		return nil, err
	}
	conn.SetTimeout(c.cfg.Timeout)
	if c.cfg.StartTLS {
		// The handshake after the StartTLS answer has no timeout of its own: closing the
		// connection ends it.
		err := c.guard(ctx, conn, func() error { return conn.StartTLS(tc) })
		if err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

// bind is a simple bind, never with an empty password (callers check; go-ldap refuses too).
// It asks for the directory's password policy: a bind the policy refused, or let through
// only to change the password, is a *policyError.
func (c *Connector) bind(ctx context.Context, conn *ldap.Conn, dn, password string) error {
	start := time.Now()
	var res *ldap.SimpleBindResult
	err := c.guard(ctx, conn, func() error {
		var err error
		res, err = conn.SimpleBind(&ldap.SimpleBindRequest{Username: dn, Password: password,
			Controls: []ldap.Control{ldap.NewControlBeheraPasswordPolicy()}})
		return err
	})
	c.observe("bind", start, err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials))
	return withPolicy(res, err)
}

// observe reports an operation that began at start to cfg.Observe, if set.
func (c *Connector) observe(operation string, start time.Time, failed bool) {
	if c.cfg.Observe != nil {
		c.cfg.Observe(operation, time.Since(start), failed)
	}
}

// guard runs op on conn and closes conn if ctx ends or the timeout passes first, which makes
// op return. The error then says why.
func (c *Connector) guard(ctx context.Context, conn *ldap.Conn, op func() error) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	err := op()
	if !stop() {
		// ctx ended while op ran: whatever op returned, the connection is gone.
		return ldap.NewError(ldap.ErrorNetwork, fmt.Errorf("ldap: %w", context.Cause(ctx)))
	}
	return err
}

// isNetworkError reports whether err means the connection, not the server's answer, failed.
func isNetworkError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return ldap.IsErrorWithCode(err, ldap.ErrorNetwork) || errors.As(err, &ne) || errors.As(err, &oe) ||
		errors.Is(err, context.DeadlineExceeded)
}

// withService runs op on a pooled service-account connection. The pool holds PoolSize slots,
// which also bounds how many run at once. A pooled connection that turns out to be broken is
// replaced by a fresh one (with failover) and op runs once more.
func (c *Connector) withService(ctx context.Context, op func(conn *ldap.Conn, server string) error) error {
	var p *pooled
	select {
	case p = <-c.pool:
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-c.closed:
		return errClosed
	}
	defer func() { c.release(p) }()
	select {
	case <-c.closed:
		return errClosed
	default:
	}

	for attempt := 0; ; attempt++ {
		fresh := false
		if p.conn != nil && p.conn.IsClosing() {
			p.conn.Close()
			p.conn = nil
		}
		if p.conn == nil {
			conn, server, err := c.dial(ctx, "", c.cfg.BindDN, c.cfg.BindPassword)
			if err != nil {
				if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
					return fmt.Errorf("ldap: the service account (bind_dn) cannot bind: %w", err)
				}
				return err
			}
			p.conn, p.server, fresh = conn, server, true
		}
		err := c.guard(ctx, p.conn, func() error { return op(p.conn, p.server) })
		if err == nil || !isNetworkError(err) {
			return err
		}
		// The connection is unusable now.
		p.conn.Close()
		p.conn = nil
		if fresh || attempt > 0 || ctx.Err() != nil {
			return err
		}
		c.log.DebugContext(ctx, "ldap: pooled connection broken, dialling again", "error", err)
	}
}

// release puts p back into the pool, closing its connection when the connector is closed.
func (c *Connector) release(p *pooled) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed && p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
	c.pool <- p // never blocks: there are as many slots as capacity
}

// Close closes the idle service-account connections; those in use are closed when they
// come back. Login and Health fail afterwards.
func (c *Connector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.isClosed {
		return nil
	}
	c.isClosed = true
	close(c.closed)
	var idle []*pooled
	for len(idle) < cap(c.pool) {
		select {
		case p := <-c.pool:
			if p.conn != nil {
				p.conn.Close()
				p.conn = nil
			}
			idle = append(idle, p)
		default:
			// The others are in use; release closes them.
			for _, p := range idle {
				c.pool <- p
			}
			return nil
		}
	}
	for _, p := range idle {
		c.pool <- p
	}
	return nil
}

// search runs req on conn, with the connector's timeout as the server's time limit too.
func (c *Connector) search(conn *ldap.Conn, req *ldap.SearchRequest) (*ldap.SearchResult, error) {
	req.TimeLimit = max(1, int(c.cfg.Timeout/time.Second))
	req.DerefAliases = ldap.NeverDerefAliases
	start := time.Now()
	res, err := conn.Search(req)
	c.observe("search", start, err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject))
	return res, err
}

// searchPaged is search in pages, for answers that may pass a server's size limit (Active
// Directory's MaxPageSize is 1000).
func (c *Connector) searchPaged(conn *ldap.Conn, req *ldap.SearchRequest) (*ldap.SearchResult, error) {
	req.TimeLimit = max(1, int(c.cfg.Timeout/time.Second))
	req.DerefAliases = ldap.NeverDerefAliases
	start := time.Now()
	res, err := conn.SearchWithPaging(req, 500)
	c.observe("search", start, err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject))
	return res, err
}
