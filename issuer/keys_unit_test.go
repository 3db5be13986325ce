package issuer

import (
	"context"
	"encoding/json"
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
	k := newKeys(db, "ES256", time.Hour, time.Hour, time.Now)
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

// The JWKS publishes public keys only (SECURITY.md): no private member of any
// algorithm's JWK (RFC 7518 §6) ever appears in it.
func TestUnitJWKSHasNoPrivateMaterial(t *testing.T) {
	ctx := context.Background()
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		db, err := store.Open(ctx, config.Storage{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), alg+".db")})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Migrate(ctx, db, Models()...); err != nil {
			t.Fatal(err)
		}
		k := newKeys(db, alg, time.Hour, time.Hour, time.Now)
		if err := k.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(k.JWKS())
		if err != nil {
			t.Fatal(err)
		}
		var set struct{ Keys []map[string]any }
		if err := json.Unmarshal(raw, &set); err != nil || len(set.Keys) != 1 {
			t.Fatalf("%s: JWKS %s", alg, raw)
		}
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
			if _, ok := set.Keys[0][private]; ok {
				t.Errorf("%s: the JWKS publishes the private member %q", alg, private)
			}
		}
		store.Close(db)
	}
}
