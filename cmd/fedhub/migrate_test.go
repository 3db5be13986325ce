package main

import (
	"context"
	"log/slog"
	"testing"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/mfa"
	"github.com/fedhub/fedhub/store/storetest"
)

// TestMigrateDropsTOTPKeyIndex: a database from before TOTP keys were sealed
// has a unique index over (user, key); sealed keys are never equal, so
// migrate drops it (mfa.ConfirmTOTP checks instead), and a second run finds
// nothing to do.
func TestMigrateDropsTOTPKeyIndex(t *testing.T) {
	const old = "idx_mfa_factors_user_secret"
	storetest.ForEachDB(t, mfa.Models(), func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		if err := db.Exec("CREATE UNIQUE INDEX " + old + " ON mfa_factors (user_id, secret)").Error; err != nil {
			t.Fatal(err)
		}
		if !db.Migrator().HasIndex(&mfa.Factor{}, old) {
			t.Fatalf("the old index %s was not made", old)
		}
		for range 2 {
			if err := migrate(ctx, db, slog.New(slog.DiscardHandler)); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			if db.Migrator().HasIndex(&mfa.Factor{}, old) {
				t.Fatalf("after migrate the index %s is still there", old)
			}
		}
	})
}
