package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// Step is a migration step beyond what the models say: dropping what a
// model no longer has, rewriting values. Steps run in order after the
// models' tables are made, and must be harmless when there is nothing to do.
type Step struct {
	Name string // in the schema's fingerprint: a new step makes every database migrate once
	Run  func(ctx context.Context, db *gorm.DB) error
}

// schemaState is the one row saying which schema the database was last
// migrated to.
type schemaState struct {
	ID          int    `gorm:"primaryKey;autoIncrement:false"`
	Fingerprint string `gorm:"size:64;not null"`
	MigratedAt  time.Time
}

func (schemaState) TableName() string { return "fedhub_schema" }

// MigrateSchema brings the database to the schema of models and steps and
// reports whether it had to: a database already migrated to exactly that
// schema (its fingerprint) costs one query, where AutoMigrate asks the
// database about every table, column and index — most of what a start did.
func MigrateSchema(ctx context.Context, db *gorm.DB, models []any, steps []Step) (bool, error) {
	db = db.WithContext(ctx)
	fp := fingerprint(db, models, steps)
	var current []string
	if db.Migrator().HasTable(&schemaState{}) {
		if err := db.Model(&schemaState{}).Where("id = 1").Pluck("fingerprint", &current).Error; err != nil {
			return false, fmt.Errorf("migrate: %w", err)
		}
	}
	if len(current) == 1 && current[0] == fp {
		return false, nil
	}
	if err := Migrate(ctx, db, append([]any{&schemaState{}}, models...)...); err != nil {
		return false, err
	}
	for _, s := range steps {
		if err := s.Run(ctx, db); err != nil {
			return false, fmt.Errorf("migrate: %s: %w", s.Name, err)
		}
	}
	row := schemaState{ID: 1, Fingerprint: fp, MigratedAt: time.Now().UTC()}
	if err := db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&row).Error; err != nil {
		return false, fmt.Errorf("migrate: %w", err)
	}
	return true, nil
}

// fingerprint identifies a schema: every model's table and its fields, an
// embedded struct's too, with their columns, Go types and tags (all that
// AutoMigrate reads), and the steps' names. It reads the models' types
// itself rather than through gorm's parsed schemas, which gorm keeps once
// made: an up-to-date database needs none of them.
func fingerprint(db *gorm.DB, models []any, steps []Step) string {
	h := sha256.New()
	for _, m := range models {
		t := reflect.TypeOf(m)
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		table := db.NamingStrategy.TableName(t.Name())
		if tn, ok := m.(schema.Tabler); ok {
			table = tn.TableName()
		}
		fmt.Fprintf(h, "table %s\n", table)
		hashFields(h, db.NamingStrategy, table, t)
	}
	for _, s := range steps {
		fmt.Fprintf(h, "step %s\n", s.Name)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hashFields writes t's fields to w, and those of the structs it embeds
// (anonymous, or tagged embedded) after each.
func hashFields(w io.Writer, namer schema.Namer, table string, t reflect.Type) {
	for f := range t.Fields() {
		fmt.Fprintf(w, "%s %s %s %q\n", f.Name, namer.ColumnName(table, f.Name), f.Type, f.Tag)
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && (f.Anonymous || strings.Contains(f.Tag.Get("gorm"), "embedded")) {
			hashFields(w, namer, table, ft)
		}
	}
}
