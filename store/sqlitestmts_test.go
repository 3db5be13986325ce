package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestStmtConn: a SQLite connection keeps the statements it ran, and running
// them again — in a transaction, nested while their rows are open, after an
// error, concurrently on every connection — answers as compiling them afresh
// would; a kept statement holds no lock (VACUUM runs) and the bound holds.
func TestStmtConn(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open(sqliteDriver, sqliteDSN(filepath.Join(t.TempDir(), "stmts.db")))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(4)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
	const insert, get = "INSERT INTO kv (k, v) VALUES (?, ?)", "SELECT v FROM kv WHERE k = ?"
	value := func(q sqlQuerier, k string) int {
		t.Helper()
		var v int
		if err := q.QueryRowContext(ctx, get, k).Scan(&v); err != nil {
			t.Fatalf("read %s: %v", k, err)
		}
		return v
	}

	exec(insert, "a", 1)
	if _, err := db.ExecContext(ctx, insert, "a", 2); err == nil {
		t.Fatal("a duplicate key was inserted")
	}
	exec(insert, "b", 2) // the statement works after its error
	if _, err := db.ExecContext(ctx, insert, "c"); err == nil {
		t.Fatal("an insert with too few arguments ran")
	}
	if value(db, "a") != 1 || value(db, "b") != 2 {
		t.Fatal("wrong values")
	}

	// In a transaction, the same query again while its first rows are open.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := tx.QueryContext(ctx, get, "a")
	if err != nil {
		t.Fatal(err)
	}
	if value(tx, "b") != 2 {
		t.Fatal("nested read: wrong value")
	}
	var v int
	if !rows.Next() || rows.Scan(&v) != nil || v != 1 {
		t.Fatalf("outer read: %d, %v", v, rows.Err())
	}
	rows.Close()
	if _, err := tx.ExecContext(ctx, "UPDATE kv SET v = v + 1 WHERE k = ?", "a"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			_, err := db.ExecContext(ctx, insert, fmt.Sprint("n", i), i)
			if err == nil {
				var v int
				err = db.QueryRowContext(ctx, get, fmt.Sprint("n", i)).Scan(&v)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if value(db, "a") != 2 {
		t.Fatal("the transaction's update was lost")
	}
	exec("VACUUM")

	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range stmtsPerConn + 10 {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("UPDATE kv SET v = v WHERE k = 'x%d'", i)); err != nil {
			t.Fatal(err)
		}
	}
	conn.Raw(func(dc any) error {
		if c := dc.(*stmtConn); len(c.idle) != stmtsPerConn || c.order.Len() != stmtsPerConn {
			t.Errorf("a connection keeps %d statements, want %d", len(c.idle), stmtsPerConn)
		}
		return nil
	})
}

type sqlQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// TestRowless: only a single write that returns no rows is kept; a write
// with RETURNING, in any case, would stay busy holding its locks.
func TestRowless(t *testing.T) {
	for _, c := range []struct {
		query string
		want  bool
	}{
		{"INSERT INTO kv (k, v) VALUES (?, ?)", true},
		{"\n\t update kv SET v = 1", true},
		{"Delete FROM kv WHERE k = ?", true},
		{"DELETE FROM kv WHERE k = ? RETURNING v", false},
		{"insert into kv values (?, ?) returning *", false},
		{"UPDATE kv SET v = 1 ReTuRnInG k", false},
		{"SELECT v FROM kv", false},
		{"WITH x AS (SELECT 1) INSERT INTO kv SELECT 'a', 1 FROM x", false},
		{"INSERT", true},
		{"INSER", false},
		{"", false},
	} {
		if got := rowless(c.query); got != c.want {
			t.Errorf("rowless(%q) = %v, want %v", c.query, got, c.want)
		}
	}
}

// TestLongStatementInterrupted: a statement the driver runs itself (here a
// count over a huge generated series; a backup's VACUUM INTO is another)
// still ends when its context does, although kept statements run to
// completion.
func TestLongStatementInterrupted(t *testing.T) {
	db, err := sql.Open(sqliteDriver, sqliteDSN(filepath.Join(t.TempDir(), "long.db")))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	// Many seconds of work if it ran to its end.
	start := time.Now()
	_, err = db.ExecContext(ctx, "SELECT count(*) FROM (WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100000000) SELECT x FROM n)")
	if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took > 2*time.Second {
		t.Fatalf("a long statement whose context ended after 50 ms: %v after %v, want it interrupted at once", err, took)
	}
}
