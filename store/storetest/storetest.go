package storetest

import (
	"context"
	"path/filepath"
	"testing"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/e2e/peers"
	"github.com/fedhub/fedhub/store"
)

// Drivers are the names of the subtests ForEachDB runs, one per supported database.
var Drivers = []string{"sqlite", "postgres"}

// ForEachDB runs fn once per supported database, as the subtests "sqlite" and "postgres",
// each on a fresh, empty database migrated with models. The databases are closed (and the
// PostgreSQL one dropped) when the subtest ends.
func ForEachDB(t *testing.T, models []any, fn func(t *testing.T, db *gorm.DB)) {
	t.Helper()
	for _, driver := range Drivers {
		t.Run(driver, func(t *testing.T) {
			fn(t, Open(t, driver, models...))
		})
	}
}

// Open returns a fresh, empty database of the given driver ("sqlite" or "postgres"),
// migrated with models and closed when t ends.
func Open(t testing.TB, driver string, models ...any) *gorm.DB {
	t.Helper()
	cfg := config.Storage{Driver: driver}
	switch driver {
	case "sqlite":
		cfg.DSN = filepath.Join(t.TempDir(), "fedhub.db")
	case "postgres":
		cfg.DSN = peers.Postgres(t)
	default:
		t.Fatalf("storetest: unknown driver %q", driver)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	// Registered after TempDir and peers.Postgres, so it runs before they remove the
	// file or drop the database.
	t.Cleanup(func() {
		if err := store.Close(db); err != nil {
			t.Errorf("storetest: close %s store: %v", driver, err)
		}
	})
	if err := store.Migrate(ctx, db, models...); err != nil {
		t.Fatalf("storetest: %s: %v", driver, err)
	}
	return db
}
