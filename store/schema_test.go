package store_test

import (
	"context"
	"errors"
	"testing"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/store"
	"github.com/fedhub/fedhub/store/storetest"
	"github.com/fedhub/fedhub/throttle"
)

// TestMigrateSchema: a database migrates once per schema — the models and
// the steps — and a start on an up-to-date database changes nothing.
func TestMigrateSchema(t *testing.T) {
	storetest.ForEachDB(t, nil, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		var ran []string
		step := func(name string) store.Step {
			return store.Step{Name: name, Run: func(context.Context, *gorm.DB) error { ran = append(ran, name); return nil }}
		}
		for _, c := range []struct {
			name    string
			models  []any
			steps   []store.Step
			migrate bool
			ran     int
		}{
			{"a new database", linking.Models(), []store.Step{step("a")}, true, 1},
			{"the same schema", linking.Models(), []store.Step{step("a")}, false, 1},
			{"another model", append(linking.Models(), throttle.Models()...), []store.Step{step("a")}, true, 2},
			{"another step", append(linking.Models(), throttle.Models()...), []store.Step{step("a"), step("b")}, true, 4},
			{"the same again", append(linking.Models(), throttle.Models()...), []store.Step{step("a"), step("b")}, false, 4},
		} {
			migrated, err := store.MigrateSchema(ctx, db, c.models, c.steps)
			if err != nil || migrated != c.migrate || len(ran) != c.ran {
				t.Fatalf("%s: migrated %v, %v, steps run %v; want migrated %v and %d steps run", c.name, migrated, err, ran, c.migrate, c.ran)
			}
		}
		if !db.Migrator().HasTable(&linking.User{}) || !db.Migrator().HasIndex(&linking.Link{}, "idx_link_connector_user") {
			t.Error("the models' tables or indexes are missing")
		}
		failing := []store.Step{{Name: "fails", Run: func(context.Context, *gorm.DB) error { return errors.New("no") }}}
		for range 2 { // a failed migration is not recorded: the next start tries again
			if _, err := store.MigrateSchema(ctx, db, linking.Models(), failing); err == nil {
				t.Fatal("a failing step passed")
			}
		}
	})
}

// TestBulk: rows written in Bulk are there after it, none when it fails, and
// the connection's SQLite page cache is back to what it was.
func TestBulk(t *testing.T) {
	storetest.ForEachDB(t, throttle.Models(), func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		sqlDB, err := db.DB()
		if err != nil {
			t.Fatal(err)
		}
		sqlDB.SetMaxOpenConns(1) // the cache size is the connection's: see that same connection again
		cache := func() (n int) {
			if db.Dialector.Name() == "sqlite" {
				if err := db.Raw("PRAGMA cache_size").Scan(&n).Error; err != nil {
					t.Fatal(err)
				}
			}
			return n
		}
		count := func() (n int64) {
			if err := db.Model(&throttle.Failure{}).Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := cache()
		write := func(key string, fail error) error {
			return store.Bulk(ctx, db, func(tx *gorm.DB) error {
				if err := tx.Create(&throttle.Failure{Key: key}).Error; err != nil {
					return err
				}
				return fail
			})
		}
		if err := write("a", nil); err != nil || count() != 1 {
			t.Fatalf("Bulk = %v with %d rows, want 1 row", err, count())
		}
		if err := write("b", errors.New("refused")); err == nil || count() != 1 {
			t.Fatalf("a failing Bulk = %v with %d rows, want its row gone", err, count())
		}
		if after := cache(); after != before {
			t.Errorf("cache_size = %d after Bulk, want %d as before", after, before)
		}
	})
}
