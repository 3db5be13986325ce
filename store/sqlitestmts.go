package store

import (
	"container/list"
	"context"
	"database/sql/driver"
	"strings"
	"sync"

	"github.com/mattn/go-sqlite3"
)

// The SQLite driver prepares, runs and finalizes every statement that is not
// a database/sql prepared statement, and gorm prepares none: compiling the SQL
// again each time was a fifth of a token refresh's CPU. So each connection
// keeps the statements it ran last, compiled. A statement lives on its
// connection: a transaction never needs another one for it, and nothing is
// shared between connections.

// stmtsPerConn bounds the statements a connection keeps: enough for every
// request's hot statements, while the few that differ with each call (an IN
// list's length) only pass through.
const stmtsPerConn = 64

// stmtDriver opens connections that keep their compiled statements.
type stmtDriver struct{ *sqlite3.SQLiteDriver }

func (d stmtDriver) Open(dsn string) (driver.Conn, error) {
	c, err := d.SQLiteDriver.Open(dsn)
	if err != nil {
		return nil, err
	}
	return newStmtConn(c.(*sqlite3.SQLiteConn)), nil
}

// stmtConn is a SQLite connection that reuses its compiled statements.
type stmtConn struct {
	*sqlite3.SQLiteConn
	mu    sync.Mutex
	idle  map[string]*list.Element // of *idleStmt; a statement in use is not here
	order list.List                // the least recently used at the back
}

type idleStmt struct {
	query string
	stmt  *sqlite3.SQLiteStmt
}

func newStmtConn(c *sqlite3.SQLiteConn) *stmtConn {
	return &stmtConn{SQLiteConn: c, idle: make(map[string]*list.Element)}
}

// QueryContext runs a query on a kept statement when it has one. The rows
// give it back when they close (which resets it: it then holds no lock).
func (c *stmtConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	s, err := c.stmt(ctx, query, args)
	switch {
	case err != nil:
		return nil, err
	case s == nil:
		return c.SQLiteConn.QueryContext(ctx, query, args)
	}
	rows, err := s.QueryContext(uninterrupted(ctx), args)
	if err != nil {
		s.Close()
		return nil, err
	}
	return &stmtRows{SQLiteRows: rows.(*sqlite3.SQLiteRows), conn: c, query: query, stmt: s}, nil
}

// ExecContext runs a write on a kept statement when it has one. Only
// INSERT, UPDATE and DELETE without RETURNING are kept: a statement that
// returned a row would stay busy, holding its locks, until its next use.
func (c *stmtConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if !rowless(query) {
		return c.SQLiteConn.ExecContext(ctx, query, args)
	}
	s, err := c.stmt(ctx, query, args)
	switch {
	case err != nil:
		return nil, err
	case s == nil:
		return c.SQLiteConn.ExecContext(ctx, query, args)
	}
	res, err := s.ExecContext(uninterrupted(ctx), args)
	if err != nil { // rare: compiled afresh next time
		s.Close()
		return nil, err
	}
	c.put(query, s)
	return res, nil
}

// BeginTx begins a transaction whose BEGIN runs to completion (see
// uninterrupted); database/sql still rolls it back when ctx ends.
func (c *stmtConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.SQLiteConn.BeginTx(uninterrupted(ctx), opts)
}

// uninterrupted is ctx without its cancellation, for the driver: it runs
// each step of a statement whose context can end in a goroutine of its own,
// to interrupt it then, and the start and hand-over of that goroutine cost
// more than the step (a tenth of a token refresh). So the kept statements,
// the short and repeated ones of requests, run to completion; database/sql
// still checks ctx before each. What the driver runs itself (a backup's
// VACUUM INTO, schema changes, scripts) can take long and stays
// interruptible.
func uninterrupted(ctx context.Context) context.Context {
	return context.WithoutCancel(ctx)
}

// rowless reports whether query is one INSERT, UPDATE or DELETE that returns
// no rows. It runs on every write, so it compares in place: upper-casing a
// copy of the statement was a percent of a token rotation.
func rowless(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n")
	if len(q) < 6 || !(strings.EqualFold(q[:6], "INSERT") || strings.EqualFold(q[:6], "UPDATE") || strings.EqualFold(q[:6], "DELETE")) {
		return false
	}
	const returning = "RETURNING"
	for i := 0; i+len(returning) <= len(q); i++ {
		if q[i]|0x20 == 'r' && strings.EqualFold(q[i:i+len(returning)], returning) {
			return false
		}
	}
	return true
}

// stmt takes the kept statement for query out of the idle ones, or compiles
// it; nil (and no error) when the driver's own path must run query: a script
// of several statements, or arguments that do not match its parameters one
// to one (the driver reports those itself).
func (c *stmtConn) stmt(ctx context.Context, query string, args []driver.NamedValue) (*sqlite3.SQLiteStmt, error) {
	if strings.Contains(query, ";") {
		return nil, nil
	}
	for _, a := range args {
		if a.Name != "" {
			return nil, nil
		}
	}
	c.mu.Lock()
	e, ok := c.idle[query]
	if ok {
		delete(c.idle, query)
		c.order.Remove(e)
	}
	c.mu.Unlock()
	var s *sqlite3.SQLiteStmt
	if ok {
		s = e.Value.(*idleStmt).stmt
	} else {
		ds, err := c.SQLiteConn.PrepareContext(ctx, query)
		if err != nil {
			return nil, err
		}
		s = ds.(*sqlite3.SQLiteStmt)
	}
	if s.NumInput() != len(args) {
		c.put(query, s)
		return nil, nil
	}
	return s, nil
}

// put gives a statement back, reset, to the idle ones; one the connection
// keeps already (a second one, for the same query run while the first was
// busy) is finalized, and so is the least recently used beyond
// stmtsPerConn.
func (c *stmtConn) put(query string, s *sqlite3.SQLiteStmt) {
	c.mu.Lock()
	var drop *sqlite3.SQLiteStmt
	if _, ok := c.idle[query]; ok {
		drop = s
	} else {
		c.idle[query] = c.order.PushFront(&idleStmt{query, s})
		if c.order.Len() > stmtsPerConn {
			old := c.order.Remove(c.order.Back()).(*idleStmt)
			delete(c.idle, old.query)
			drop = old.stmt
		}
	}
	c.mu.Unlock()
	if drop != nil {
		drop.Close()
	}
}

// Close finalizes the kept statements, then closes the connection.
func (c *stmtConn) Close() error {
	c.mu.Lock()
	for e := c.order.Front(); e != nil; e = e.Next() {
		e.Value.(*idleStmt).stmt.Close()
	}
	clear(c.idle)
	c.order.Init()
	c.mu.Unlock()
	return c.SQLiteConn.Close()
}

// stmtRows are a kept statement's rows: closing them gives it back.
type stmtRows struct {
	*sqlite3.SQLiteRows
	conn  *stmtConn
	query string
	stmt  *sqlite3.SQLiteStmt
}

func (r *stmtRows) Close() error {
	if r.stmt == nil {
		return nil
	}
	s := r.stmt
	r.stmt = nil
	if err := r.SQLiteRows.Close(); err != nil {
		s.Close()
		return err
	}
	r.conn.put(r.query, s)
	return nil
}
