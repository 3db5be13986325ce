package peers_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/fedhub/fedhub/e2e/peers"
)

func TestMain(m *testing.M) {
	code := m.Run()
	peers.StopAll()
	os.Exit(code)
}

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	a, b := peers.Postgres(t), peers.Postgres(t)
	if a == b {
		t.Fatalf("two calls gave the same DSN %q", a)
	}
	names := map[string]bool{}
	for _, dsn := range []string{a, b} {
		db := open(t, dsn)
		var name string
		if err := db.QueryRowContext(ctx, "SELECT current_database()").Scan(&name); err != nil {
			t.Fatalf("current_database: %v", err)
		}
		names[name] = true

		// Both databases start empty: the same table can be created in each.
		if _, err := db.ExecContext(ctx, "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL)"); err != nil {
			t.Fatalf("%s: create table: %v", name, err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO users (name) VALUES ($1)", "alice"); err != nil {
			t.Fatalf("%s: insert: %v", name, err)
		}
		var got string
		if err := db.QueryRowContext(ctx, "SELECT name FROM users WHERE id = 1").Scan(&got); err != nil {
			t.Fatalf("%s: select: %v", name, err)
		}
		if got != "alice" {
			t.Errorf("%s: got name %q, want alice", name, got)
		}
	}
	if len(names) != 2 {
		t.Errorf("two calls gave databases %v, want two different ones", names)
	}
}

func TestPostgresDropsDatabase(t *testing.T) {
	peers.SkipShort(t) // the subtest alone would skip
	var dsn string
	t.Run("use", func(t *testing.T) {
		// A connection left open must not stop the drop: registered first, this Close runs
		// after the drop.
		var db *sql.DB
		t.Cleanup(func() {
			if db != nil {
				db.Close()
			}
		})
		dsn = peers.Postgres(t)
		var err error
		if db, err = sql.Open("pgx", dsn); err != nil {
			t.Fatal(err)
		}
		if err := db.Ping(); err != nil {
			t.Fatal(err)
		}
	})
	err := open(t, dsn).Ping()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name
		t.Errorf("connecting after the test: got %v, want database does not exist", err)
	}
}
