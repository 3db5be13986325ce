package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/fedhub/fedhub/config"
)

// Open connects to the configured database.
func Open(ctx context.Context, cfg config.Storage) (*gorm.DB, error) {
	var dialector gorm.Dialector
	switch cfg.Driver {
	case "sqlite":
		dialector = sqlite.New(sqlite.Config{DriverName: sqliteDriver, DSN: sqliteDSN(cfg.DSN)})
	case "postgres":
		dialector = postgres.Open(cfg.DSN)
	default:
		return nil, fmt.Errorf("open store: unknown driver %q", cfg.Driver)
	}
	db, err := gorm.Open(dialector, &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true, // single statements need no explicit transaction
		NowFunc:                func() time.Time { return time.Now().UTC() },
		TranslateError:         true, // unique violations become gorm.ErrDuplicatedKey
	})
	if err != nil {
		return nil, fmt.Errorf("open %s store: %w", cfg.Driver, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("open %s store: %w", cfg.Driver, err)
	}
	open := cmp.Or(cfg.MaxOpenConns, 32)
	if cfg.Driver == "sqlite" {
		// One writer at a time is SQLite's model; WAL lets readers go on meanwhile.
		open = cmp.Or(cfg.MaxOpenConns, 8)
	}
	// As many idle as open: database/sql keeps 2 by default, and closes every
	// other connection a burst opened the moment it is free, so a steady load
	// of 8 requests opened hundreds of PostgreSQL sessions a second.
	sqlDB.SetMaxOpenConns(open)
	sqlDB.SetMaxIdleConns(cmp.Or(cfg.MaxIdleConns, open))
	sqlDB.SetConnMaxLifetime(cmp.Or(cfg.ConnMaxLifetime, time.Hour))
	sqlDB.SetConnMaxIdleTime(cmp.Or(cfg.ConnMaxIdleTime, 5*time.Minute))
	if err := sqlDB.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("open %s store: %w", cfg.Driver, err)
	}
	return db.WithContext(ctx), nil
}

// sqliteDriver is the SQLite driver with what no DSN parameter sets: every
// connection cuts the write-ahead log back to walLimit once a checkpoint has
// copied it into the database. Without it the log keeps the size of its
// largest burst of writes for good (a flood of failed logins left tens of
// MiB behind). Its connections keep their compiled statements (stmtConn).
const sqliteDriver = "sqlite3_fedhub"

// walLimit is the size the write-ahead log is cut back to.
const walLimit = 4 << 20

func init() {
	sql.Register(sqliteDriver, stmtDriver{&sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		_, err := c.Exec(fmt.Sprintf("PRAGMA journal_size_limit = %d", walLimit), nil)
		return err
	}}})
}

// sqliteDSN turns a file path into a DSN with the pragmas fedhub relies on:
// WAL for concurrent readers, a busy timeout instead of immediate "locked"
// errors, enforced foreign keys, and IMMEDIATE transactions so that two
// writers never deadlock upgrading a read lock.
func sqliteDSN(path string) string {
	if strings.HasPrefix(path, "file:") {
		return path
	}
	return "file:" + path + "?_journal_mode=WAL&_busy_timeout=10000&_foreign_keys=on&_txlock=immediate&_synchronous=NORMAL"
}

// Migrate creates or updates the tables of the given models.
func Migrate(ctx context.Context, db *gorm.DB, models ...any) error {
	if err := db.WithContext(ctx).AutoMigrate(models...); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Compact rewrites the given models' tables so that old versions of their
// rows — secrets sealed with a retired key, or not sealed at all — no longer
// sit in the database's files: SQLite rebuilds the whole file (VACUUM) and
// empties its write-ahead log; PostgreSQL rewrites each table (VACUUM FULL,
// which locks it for the moment it takes).
func Compact(ctx context.Context, db *gorm.DB, models ...any) error {
	db = db.WithContext(ctx)
	if db.Dialector.Name() != "postgres" {
		if err := db.Exec("VACUUM").Error; err != nil {
			return fmt.Errorf("compact: %w", err)
		}
		if err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)").Error; err != nil {
			return fmt.Errorf("compact: %w", err)
		}
		return nil
	}
	for _, m := range models {
		stmt := &gorm.Statement{DB: db}
		if err := stmt.Parse(m); err != nil {
			return fmt.Errorf("compact: %w", err)
		}
		if err := db.Exec("VACUUM FULL " + stmt.Quote(stmt.Table)).Error; err != nil {
			return fmt.Errorf("compact %s: %w", stmt.Table, err)
		}
	}
	return nil
}

// Close releases the database's connections.
func Close(db *gorm.DB) error {
	sqlDB, err := db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// IsDuplicate reports whether err is a unique-constraint violation.
func IsDuplicate(err error) bool {
	return errors.Is(err, gorm.ErrDuplicatedKey)
}

// IsNotFound reports whether err says that no row matched.
func IsNotFound(err error) bool {
	return errors.Is(err, gorm.ErrRecordNotFound)
}

// Exclusive runs fn while no other fedhub node runs an Exclusive of the same
// name: on PostgreSQL under a session advisory lock, so that nodes starting
// together migrate, bootstrap and make the first signing key one at a time.
// SQLite is one node's database, so there it simply runs fn.
func Exclusive(ctx context.Context, db *gorm.DB, name string, fn func() error) error {
	if db.Dialector.Name() != "postgres" {
		return fn()
	}
	key := int64(fnv64(name))
	return db.WithContext(ctx).Connection(func(conn *gorm.DB) error {
		if err := conn.Exec("SELECT pg_advisory_lock(?)", key).Error; err != nil {
			return fmt.Errorf("lock %s: %w", name, err)
		}
		defer conn.Exec("SELECT pg_advisory_unlock(?)", key)
		return fn()
	})
}

// fnv64 is a stable number for a lock's name.
func fnv64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// bulkCacheKiB is SQLite's page cache while Bulk runs: big enough for the
// indexes a million-row import scatters its writes over (the default 2 MiB
// makes every insert a read from disk).
const bulkCacheKiB = 256 << 10

// Bulk runs fn in a transaction meant for writing many rows: on SQLite with
// a page cache of bulkCacheKiB for the transaction's connection, given back
// to the default afterwards; on PostgreSQL committed synchronously, so that
// Settle can mark the rows visible to all at once. (On a server that commits
// asynchronously, VACUUM cannot do so until the commit is on disk, which an
// idle server's WAL writer may take seconds to do: a 1M-user import left
// every page of users unmarked, and index-only scans read them all.)
func Bulk(ctx context.Context, db *gorm.DB, fn func(tx *gorm.DB) error) error {
	return db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if tx.Dialector.Name() == "postgres" {
			if err := tx.Exec("SET LOCAL synchronous_commit = on").Error; err != nil {
				return fmt.Errorf("bulk: %w", err)
			}
			return fn(tx)
		}
		if tx.Dialector.Name() != "sqlite" {
			return fn(tx)
		}
		var old int
		if err := tx.Raw("PRAGMA cache_size").Scan(&old).Error; err != nil {
			return fmt.Errorf("bulk: %w", err)
		}
		if err := tx.Exec(fmt.Sprintf("PRAGMA cache_size = -%d", bulkCacheKiB)).Error; err != nil {
			return fmt.Errorf("bulk: %w", err)
		}
		err := fn(tx)
		if rerr := tx.Exec(fmt.Sprintf("PRAGMA cache_size = %d", old)).Error; rerr != nil && err == nil {
			err = fmt.Errorf("bulk: %w", rerr)
		}
		return err
	})
}

// Settle brings PostgreSQL's statistics and visibility map of the given
// models' tables up to date after a bulk write, as autovacuum would a while
// later: until then the planner guesses their sizes, and index-only scans
// read the table anyway. SQLite needs nothing: fedhub keeps no statistics
// there (no ANALYZE), so its plans do not depend on them.
func Settle(ctx context.Context, db *gorm.DB, models ...any) error {
	db = db.WithContext(ctx)
	if db.Dialector.Name() != "postgres" {
		return nil
	}
	tables := make([]string, len(models))
	for i, m := range models {
		stmt := &gorm.Statement{DB: db}
		if err := stmt.Parse(m); err != nil {
			return fmt.Errorf("settle: %w", err)
		}
		tables[i] = stmt.Quote(stmt.Table)
	}
	// VACUUM first, ANALYZE after: an ANALYZE's commit, asynchronous on such a
	// server, holds back the hint bits of the transactions committed just
	// before it (the import's), and a VACUUM after it leaves their pages
	// unmarked (VACUUM (ANALYZE) users, links left every page of links so).
	for _, cmd := range []string{"VACUUM ", "ANALYZE "} {
		if err := db.Exec(cmd + strings.Join(tables, ", ")).Error; err != nil {
			return fmt.Errorf("settle: %w", err)
		}
	}
	return nil
}
