package issuer

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/store"
)

// A scheduled rotation publishes the new key before it signs, so that every
// node and every cache of the JWKS knows it first; `keys rotate` signs at once.
func TestUnitScheduledRotationPublishesFirst(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, config.Storage{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "keys.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close(db) })
	if err := store.Migrate(ctx, db, Models()...); err != nil {
		t.Fatal(err)
	}
	k := newKeys(db, "ES256", time.Hour, time.Hour)
	if err := k.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	first := k.current().id

	// The key grows old: the next Ensure rotates on schedule.
	if err := db.Model(&SigningKey{}).Where("id = ?", first).Update("created_at", time.Now().Add(-2*time.Hour)).Error; err != nil {
		t.Fatal(err)
	}
	if err := k.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(k.JWKS().Keys); n != 2 {
		t.Fatalf("JWKS has %d keys after a scheduled rotation, want the old and the new", n)
	}
	if got := k.current().id; got != first {
		t.Fatalf("the new key %s signs at once; the old one must sign until every node has the new one", got)
	}
	var next SigningKey
	if err := db.Order("created_at DESC").Take(&next).Error; err != nil {
		t.Fatal(err)
	}
	if wait := time.Until(next.SignsFrom); wait < publishAhead-time.Minute/2 || wait > publishAhead {
		t.Fatalf("the new key signs in %v, want about %v", wait, publishAhead)
	}
	// Its time comes: it signs.
	if err := db.Model(&SigningKey{}).Where("id = ?", next.ID).Update("signs_from", time.Now().Add(-time.Second)).Error; err != nil {
		t.Fatal(err)
	}
	if err := k.load(ctx); err != nil {
		t.Fatal(err)
	}
	if got := k.current().id; got != next.ID {
		t.Fatalf("after its SignsFrom the signer is %s, want %s", got, next.ID)
	}
	// An operator's rotation signs at once.
	if err := k.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if got := k.current().id; got == next.ID || got == first {
		t.Fatalf("after keys rotate the signer is still %s", got)
	}
}
