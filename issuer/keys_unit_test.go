package issuer

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/store"
	"github.com/fedhub/fedhub/store/storetest"
	"github.com/go-jose/go-jose/v4"
)

// A scheduled rotation publishes the new key before it signs, so that every
// node and every cache of the JWKS knows it first; `keys rotate` a second later.
func TestUnitScheduledRotationPublishesFirst(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, "sqlite", Models()...)
	k := newKeys(db, nil, "ES256", time.Hour, time.Hour, slog.New(slog.DiscardHandler), time.Now)
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
	var served jose.JSONWebKeySet // what /jwks serves, encoded once per load
	if err := json.Unmarshal(k.encodedJWKS(), &served); err != nil || len(served.Keys) != 2 {
		t.Fatalf("/jwks serves %s after a scheduled rotation (%v), want the old and the new key", k.encodedJWKS(), err)
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
	// An operator's rotation signs once every node has read it: two key checks later.
	if err := k.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	var rotated SigningKey
	if err := db.Order("created_at DESC").Take(&rotated).Error; err != nil {
		t.Fatal(err)
	}
	if got := k.current().id; got != next.ID || rotated.SignsFrom.Sub(rotated.CreatedAt) != 2*keyCheck {
		t.Fatalf("right after keys rotate the signer is %s (want still %s), and the new key signs %s after it was made (want %s)",
			got, next.ID, rotated.SignsFrom.Sub(rotated.CreatedAt), 2*keyCheck)
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
		k := newKeys(db, nil, alg, time.Hour, time.Hour, slog.New(slog.DiscardHandler), time.Now)
		if err := k.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		raw := k.encodedJWKS() // what /jwks serves
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

// Signing keys are sealed at rest with the operator's key: the database holds
// no PKCS #8 of them, a node without the key (or with another) refuses to
// start instead of rotating, and Reseal seals keys stored before a key was set.
func TestUnitSigningKeysSealed(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, "sqlite", Models()...)
	// A key from before secrets.key was set.
	if err := newKeys(db, nil, "ES256", time.Hour, time.Hour, slog.New(slog.DiscardHandler), time.Now).Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	ring := func(b byte) *secret.Keyring {
		raw := make([]byte, 32)
		for i := range raw {
			raw[i] = b + byte(i)*7
		}
		k, err := secret.NewKeyring(base64.StdEncoding.EncodeToString(raw))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	sealing, other := ring(1), ring(2)
	k := newKeys(db, sealing, "ES256", time.Hour, time.Hour, slog.New(slog.DiscardHandler), time.Now)
	if err := k.Ensure(ctx); err != nil {
		t.Fatalf("a key stored as it was must still load: %v", err)
	}
	if err := k.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if changed, total, err := k.Reseal(ctx); err != nil || changed != 1 || total != 2 {
		t.Fatalf("Reseal = %d of %d, %v; want 1 of 2", changed, total, err)
	}
	var rows []SigningKey
	if err := db.Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		if !sealing.Sealed(row.PrivateKey) {
			t.Errorf("key %s is stored unsealed", row.ID)
		}
		if _, err := x509.ParsePKCS8PrivateKey(row.PrivateKey); err == nil {
			t.Errorf("key %s is stored as PKCS #8", row.ID)
		}
	}
	if err := k.load(ctx); err != nil {
		t.Fatal(err)
	}
	for name, wrong := range map[string]*secret.Keyring{"no key": nil, "another key": other} {
		w := newKeys(db, wrong, "RS256", time.Hour, time.Hour, slog.New(slog.DiscardHandler), time.Now) // another algorithm would rotate at once
		if err := w.Ensure(ctx); err == nil || !strings.Contains(err.Error(), sealing.CurrentID()) {
			t.Errorf("Ensure with %s: %v, want an error naming key %s", name, err, sealing.CurrentID())
		}
	}
	var n int64
	if err := db.Model(&SigningKey{}).Count(&n).Error; err != nil || n != 2 {
		t.Fatalf("%d signing keys after the refused starts, want the 2 there were (%v)", n, err)
	}
}

// After an emergency rotation (keys rotate --revoke-previous) on one node, every
// other node on the database refuses the old keys' tokens and signs with the
// new key within keyCheck of its clock, also one that only signs — without asking the database on every
// request in between.
func TestUnitRevokedKeysReachEveryNode(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, "sqlite", Models()...)
	var mu sync.Mutex
	at := time.Now().UTC()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return at }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); at = at.Add(d) }
	var queries atomic.Int64
	if err := db.Callback().Query().After("gorm:query").Register("count", func(*gorm.DB) { queries.Add(1) }); err != nil {
		t.Fatal(err)
	}
	node := func(now func() time.Time) *Keys {
		k := newKeys(db, nil, "ES256", time.Hour, time.Hour, slog.New(slog.DiscardHandler), now)
		if err := k.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		return k
	}
	a, b, cli, signer := node(clock), node(clock), node(clock), node(clock)
	lagging := node(func() time.Time { return clock().Add(-20 * time.Second) }) // its clock is behind
	const iss = "https://login.example.com"
	old, err := a.sign(ctx, map[string]any{"iss": iss, "sub": "u1"}, typAccess)
	if err != nil {
		t.Fatal(err)
	}
	oldKid := a.current().id

	if err := cli.RotateRevokingPrevious(ctx); err != nil {
		t.Fatal(err)
	}
	newKid := cli.current().id
	if _, err := cli.verify(ctx, old, typAccess, iss); err == nil {
		t.Fatal("the node that revoked still accepts the old key's token")
	}

	// Within keyCheck the other nodes serve from their cache: no query per request.
	advance(keyCheck / 2)
	before := queries.Load()
	for range 50 {
		if _, err := b.verify(ctx, old, typAccess, iss); err != nil {
			t.Fatalf("within keyCheck of its last check, node b already refuses: %v", err)
		}
	}
	if n := queries.Load() - before; n != 0 {
		t.Fatalf("50 verifications within keyCheck sent %d queries, want none", n)
	}

	// Then each node asks once, and the old key is gone everywhere.
	advance(keyCheck / 2)
	before = queries.Load()
	for _, n := range []*Keys{a, b, lagging} {
		for range 20 {
			if _, err := n.verify(ctx, old, typAccess, iss); err == nil {
				t.Fatal("a node still accepts the revoked key's token after keyCheck")
			}
		}
		if got := n.current().id; got != newKid {
			t.Errorf("a node signs with %s, want the new key %s", got, newKid)
		}
		var published jose.JSONWebKeySet
		if err := json.Unmarshal(n.encodedJWKS(), &published); err != nil {
			t.Fatal(err)
		}
		for _, k := range published.Keys {
			if k.KeyID == oldKid {
				t.Errorf("a node still publishes the revoked key %s", oldKid)
			}
		}
	}
	if n := queries.Load() - before; n > 12 {
		t.Errorf("60 verifications on three nodes sent %d queries, want a check and a reload per node", n)
	}
	// A node that only signs (a back-channel logout token) checks too.
	tok, err := signer.sign(ctx, map[string]any{"iss": iss, "sub": "u1"}, typAccess)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.verify(ctx, tok, typAccess, iss); err != nil {
		t.Fatalf("a node that only signs still signs with the revoked key: %v", err)
	}
}
