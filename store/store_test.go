package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/e2e/peers"
	"github.com/fedhub/fedhub/issuer"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/store"
	"github.com/fedhub/fedhub/store/storetest"
	"github.com/fedhub/fedhub/throttle"
)

func TestMain(m *testing.M) {
	code := m.Run()
	peers.StopAll()
	os.Exit(code)
}

// allModels are the tables of every package, as fedhub migrates them.
func allModels() []any {
	var models []any
	models = append(models, linking.Models()...)
	models = append(models, issuer.Models()...)
	models = append(models, throttle.Models()...)
	return models
}

func TestMigrateTwiceIsIdempotent(t *testing.T) {
	ctx := context.Background()
	storetest.ForEachDB(t, allModels(), func(t *testing.T, db *gorm.DB) {
		tables := func() []string {
			t.Helper()
			names, err := db.Migrator().GetTables()
			if err != nil {
				t.Fatalf("list tables: %v", err)
			}
			slices.Sort(names)
			return names
		}
		before := tables()
		for _, m := range allModels() {
			if !db.Migrator().HasTable(m) {
				t.Errorf("table of %T missing after the first migration", m)
			}
		}

		// Rows written before a second migration survive it.
		u := linking.User{ID: linking.NewID(), Username: "Alice", UsernameKey: "alice"}
		if err := db.Create(&u).Error; err != nil {
			t.Fatalf("insert user: %v", err)
		}
		for i := range 2 {
			if err := store.Migrate(ctx, db, allModels()...); err != nil {
				t.Fatalf("migration %d again: %v", i+2, err)
			}
		}
		if after := tables(); !slices.Equal(before, after) {
			t.Errorf("tables changed by migrating again:\nbefore %v\nafter  %v", before, after)
		}
		var got linking.User
		if err := db.Take(&got, "id = ?", u.ID).Error; err != nil {
			t.Fatalf("user written before the second migration: %v", err)
		}
		if got.Username != "Alice" {
			t.Errorf("username = %q, want Alice", got.Username)
		}

		// The indexes are still there and still unique (migrating again did not
		// drop or duplicate them).
		for _, idx := range []struct {
			model any
			name  string
		}{
			{&linking.Link{}, "idx_link_upstream"},
			{&linking.User{}, "UsernameKey"},
			{&issuer.Session{}, "TokenHash"},
		} {
			if !db.Migrator().HasIndex(idx.model, idx.name) {
				t.Errorf("index %s of %T missing after migrating again", idx.name, idx.model)
			}
		}
		dup := linking.User{ID: linking.NewID(), Username: "ALICE", UsernameKey: "alice"}
		if err := db.Create(&dup).Error; !store.IsDuplicate(err) {
			t.Errorf("duplicate username_key after migrating again: got %v, want a duplicate error", err)
		}
	})
}

func TestIsDuplicate(t *testing.T) {
	storetest.ForEachDB(t, allModels(), func(t *testing.T, db *gorm.DB) {
		// A unique index that is not the primary key.
		u1 := linking.User{ID: linking.NewID(), Username: "bob", UsernameKey: "bob"}
		if err := db.Create(&u1).Error; err != nil {
			t.Fatalf("insert: %v", err)
		}
		u2 := linking.User{ID: linking.NewID(), Username: "Bob", UsernameKey: "bob"}
		err := db.Create(&u2).Error
		if !store.IsDuplicate(err) {
			t.Errorf("second user with the same username_key: IsDuplicate(%v) = false", err)
		}
		if store.IsNotFound(err) {
			t.Errorf("IsNotFound(%v) = true for a unique violation", err)
		}
		if wrapped := fmt.Errorf("create user: %w", err); !store.IsDuplicate(wrapped) {
			t.Errorf("IsDuplicate(%v) = false for a wrapped unique violation", wrapped)
		}

		// A primary key.
		f := throttle.Failure{Key: "user:local:bob", Count: 1, LastAt: time.Now().UTC()}
		if err := db.Create(&f).Error; err != nil {
			t.Fatalf("insert failure row: %v", err)
		}
		if err := db.Create(&f).Error; !store.IsDuplicate(err) {
			t.Errorf("same primary key twice: IsDuplicate(%v) = false", err)
		}

		// A composite unique index.
		l := linking.Link{UserID: u1.ID, Connector: "github", Subject: "42"}
		if err := db.Create(&l).Error; err != nil {
			t.Fatalf("insert link: %v", err)
		}
		if err := db.Create(&linking.Link{UserID: u1.ID, Connector: "github", Subject: "42"}).Error; !store.IsDuplicate(err) {
			t.Errorf("same (connector, subject) twice: IsDuplicate(%v) = false", err)
		}

		// Not duplicates.
		if err := db.Create(&linking.Link{UserID: u1.ID, Connector: "gitlab", Subject: "42"}).Error; err != nil {
			t.Errorf("same subject under another connector: %v", err)
		}
		for _, err := range []error{nil, errors.New("unique constraint failed"), gorm.ErrRecordNotFound} {
			if store.IsDuplicate(err) {
				t.Errorf("IsDuplicate(%v) = true", err)
			}
		}
	})
}

func TestIsNotFound(t *testing.T) {
	storetest.ForEachDB(t, allModels(), func(t *testing.T, db *gorm.DB) {
		var u linking.User
		err := db.Take(&u, "id = ?", "no-such-user").Error
		if !store.IsNotFound(err) {
			t.Errorf("Take of a missing row: IsNotFound(%v) = false", err)
		}
		if store.IsDuplicate(err) {
			t.Errorf("Take of a missing row: IsDuplicate(%v) = true", err)
		}
		if wrapped := fmt.Errorf("find user: %w", err); !store.IsNotFound(wrapped) {
			t.Errorf("IsNotFound(%v) = false for a wrapped not-found error", wrapped)
		}
		err = db.First(&u, "username_key = ?", "nobody").Error
		if !store.IsNotFound(err) {
			t.Errorf("First of a missing row: IsNotFound(%v) = false", err)
		}

		// Find of no rows is not an error at all.
		var users []linking.User
		if err := db.Find(&users, "username_key = ?", "nobody").Error; err != nil {
			t.Errorf("Find of no rows: %v", err)
		}
		for _, err := range []error{nil, errors.New("record not found"), gorm.ErrDuplicatedKey} {
			if store.IsNotFound(err) {
				t.Errorf("IsNotFound(%v) = true", err)
			}
		}
	})
}

// TestConcurrentWriters runs many writers at once. On SQLite, which has one writer at a time,
// none of them may fail with "database is locked" (busy timeout, immediate transactions); on
// both databases, no write may be lost.
func TestConcurrentWriters(t *testing.T) {
	const (
		writers = 20
		rounds  = 10
	)
	storetest.ForEachDB(t, allModels(), func(t *testing.T, db *gorm.DB) {
		concurrentWriters(t, db, writers, rounds)
	})
}

// concurrentWriters has writers goroutines write rounds times each, in three ways, and checks
// that every write succeeded and none was lost.
func concurrentWriters(t *testing.T, db *gorm.DB, writers, rounds int) {
	t.Helper()
	ctx := context.Background()
	start := make(chan struct{})
	errs := make(chan error, writers*rounds*3)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			<-start
			for r := range rounds {
				// A transaction that reads before it writes: the case where two
				// deferred SQLite transactions deadlock upgrading their read locks.
				err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
					var n int64
					if err := tx.Model(&linking.User{}).Count(&n).Error; err != nil {
						return err
					}
					name := fmt.Sprintf("user-%02d-%02d", w, r)
					u := linking.User{ID: linking.NewID(), Username: name, UsernameKey: name}
					if err := tx.Create(&u).Error; err != nil {
						return err
					}
					return tx.Create(&linking.UserRole{UserID: u.ID, Role: "reader"}).Error
				})
				if err != nil {
					errs <- fmt.Errorf("writer %d, round %d: transaction: %w", w, r, err)
				}
				// A single statement outside any transaction.
				err = db.WithContext(ctx).Create(&throttle.Failure{
					Key: fmt.Sprintf("ip:%d.%d", w, r), Count: 1, LastAt: time.Now().UTC()}).Error
				if err != nil {
					errs <- fmt.Errorf("writer %d, round %d: insert: %w", w, r, err)
				}
				// An upsert of one row everybody writes.
				err = throttle.New(db, 1, time.Second, time.Minute, time.Now).Failed(ctx, "user:local:shared", "ip:shared")
				if err != nil {
					errs <- fmt.Errorf("writer %d, round %d: upsert: %w", w, r, err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	locked := 0
	for err := range errs {
		if strings.Contains(err.Error(), "locked") || strings.Contains(err.Error(), "busy") {
			locked++
		}
		t.Error(err)
	}
	if locked > 0 {
		t.Errorf("%d writes failed because the database was locked", locked)
	}

	count := func(model any, query string, args ...any) int64 {
		t.Helper()
		var n int64
		if err := db.Model(model).Where(query, args...).Count(&n).Error; err != nil {
			t.Fatalf("count %T: %v", model, err)
		}
		return n
	}
	want := int64(writers * rounds)
	if n := count(&linking.User{}, "1 = 1"); n != want {
		t.Errorf("%d users, want %d", n, want)
	}
	if n := count(&linking.UserRole{}, "role = ?", "reader"); n != want {
		t.Errorf("%d roles, want %d", n, want)
	}
	if n := count(&throttle.Failure{}, "counter_key NOT LIKE ?", "%shared"); n != want {
		t.Errorf("%d failure rows, want %d", n, want)
	}
	var shared throttle.Failure
	if err := db.Take(&shared, "counter_key = ?", "user:local:shared").Error; err != nil {
		t.Fatalf("shared counter: %v", err)
	}
	if int64(shared.Count) != want {
		t.Errorf("shared counter = %d after %d concurrent increments (lost updates)", shared.Count, want)
	}
}

func TestSQLitePragmas(t *testing.T) {
	db := storetest.Open(t, "sqlite")
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	// Every connection of the pool must have them, not only the first: hold several at once.
	ctx := context.Background()
	for i := range 4 {
		conn, err := sqlDB.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for _, p := range []struct{ pragma, want string }{
			{"journal_mode", "wal"},
			{"busy_timeout", "10000"},
			{"foreign_keys", "1"},
			{"synchronous", "1"}, // NORMAL
			{"journal_size_limit", "4194304"},
		} {
			var got string
			if err := conn.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(&got); err != nil {
				t.Fatalf("connection %d: PRAGMA %s: %v", i, p.pragma, err)
			}
			if got != p.want {
				t.Errorf("connection %d: PRAGMA %s = %s, want %s", i, p.pragma, got, p.want)
			}
		}
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := store.Open(ctx, config.Storage{Driver: "mysql", DSN: "x"}); err == nil ||
		!strings.Contains(err.Error(), `unknown driver "mysql"`) {
		t.Errorf("unknown driver: got %v, want an error naming it", err)
	}
	dir := filepath.Join(t.TempDir(), "missing", "dir", "fedhub.db")
	if db, err := store.Open(ctx, config.Storage{Driver: "sqlite", DSN: dir}); err == nil {
		store.Close(db)
		t.Errorf("sqlite file in a missing folder: no error")
	}
}

// TestPoolKeepsItsConnections: a steady load reuses the pool's connections
// instead of opening a new one for most requests (database/sql keeps two
// idle by default), on both databases; the configured bound holds.
func TestPoolKeepsItsConnections(t *testing.T) {
	storetest.ForEachDB(t, allModels(), func(t *testing.T, db *gorm.DB) {
		sqlDB, err := db.DB()
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 200 {
					var n int64
					if err := db.WithContext(ctx).Model(&linking.User{}).Count(&n).Error; err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		st := sqlDB.Stats()
		if st.MaxIdleClosed != 0 || st.OpenConnections > 8 || st.MaxOpenConnections < 8 {
			t.Fatalf("after 1,600 queries from 8 goroutines: %d connections open (bound %d), %d closed for want of idle room, want 0",
				st.OpenConnections, st.MaxOpenConnections, st.MaxIdleClosed)
		}
	})
}

func TestPoolConfigured(t *testing.T) {
	db, err := store.Open(context.Background(), config.Storage{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "f.db"),
		MaxOpenConns: 3, MaxIdleConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close(db)
	sqlDB, _ := db.DB()
	if got := sqlDB.Stats().MaxOpenConnections; got != 3 {
		t.Fatalf("max open connections %d, want the configured 3", got)
	}
}

// TestCompact: after a secret is rewritten, Compact leaves no old version of
// it in SQLite's files (database and write-ahead log); on PostgreSQL it
// rewrites the table and the new value stays.
func TestCompact(t *testing.T) {
	ctx := context.Background()
	storetest.ForEachDB(t, allModels(), func(t *testing.T, db *gorm.DB) {
		old := []byte("OLD-SECRET-" + strings.Repeat("0123456789", 20))
		if err := db.Create(&issuer.SigningKey{ID: "k1", Algorithm: "ES256", PrivateKey: old}).Error; err != nil {
			t.Fatal(err)
		}
		if err := db.Model(&issuer.SigningKey{}).Where("id = ?", "k1").Update("private_key", []byte("new")).Error; err != nil {
			t.Fatal(err)
		}
		if err := store.Compact(ctx, db, &issuer.SigningKey{}); err != nil {
			t.Fatalf("Compact: %v", err)
		}
		var row issuer.SigningKey
		if err := db.Take(&row, "id = ?", "k1").Error; err != nil || string(row.PrivateKey) != "new" {
			t.Fatalf("after Compact the row is %q, %v", row.PrivateKey, err)
		}
		if db.Dialector.Name() != "sqlite" {
			return
		}
		var file string
		if err := db.Raw("SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file).Error; err != nil || file == "" {
			t.Fatalf("database file %q: %v", file, err)
		}
		for _, f := range []string{file, file + "-wal"} {
			data, err := os.ReadFile(f)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			if strings.Contains(string(data), "OLD-SECRET-") {
				t.Errorf("%s still holds the old value after Compact", filepath.Base(f))
			}
		}
	})
}

// TestSettleMarksRowsVisible: right after a bulk write, on a server that
// commits asynchronously (as the tests' does), Settle leaves every page of
// both tables marked visible to all, which index-only scans need.
func TestSettleMarksRowsVisible(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, "postgres", linking.Models()...)
	var async string
	if err := db.Raw("SHOW synchronous_commit").Scan(&async).Error; err != nil || async != "off" {
		t.Fatalf("synchronous_commit is %q (%v): the test needs a server that commits asynchronously", async, err)
	}
	err := store.Bulk(ctx, db, func(tx *gorm.DB) error {
		if err := tx.Exec(`INSERT INTO users (id, username, username_key, created_at, updated_at)
			SELECT 'u' || i, 'user' || i, 'user' || i, now(), now() FROM generate_series(1, 20000) AS i`).Error; err != nil {
			return err
		}
		return tx.Exec(`INSERT INTO links (user_id, connector, subject, created_at)
			SELECT 'u' || i, 'corp', 's' || i, now() FROM generate_series(1, 20000) AS i`).Error
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Settle(ctx, db, &linking.User{}, &linking.Link{}); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"users", "links"} {
		var rel struct{ Relallvisible, Relpages int64 }
		if err := db.Raw("SELECT relallvisible, relpages FROM pg_class WHERE relname = ?", table).Scan(&rel).Error; err != nil {
			t.Fatal(err)
		}
		if rel.Relpages == 0 || rel.Relallvisible != rel.Relpages {
			t.Errorf("after Settle %d of the %d pages of %s are visible to all", rel.Relallvisible, rel.Relpages, table)
		}
	}
}
