package brokers_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/e2e/peers"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	peers.StopAll()
	os.Exit(code)
}

// The replay cache is what makes a SAML assertion single-use across nodes.
func TestConnectorStoreOnce(t *testing.T) {
	storetest.ForEachDB(t, brokers.Models(), func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		a, b := brokers.NewConnectorStore(db, "idp-a", nil), brokers.NewConnectorStore(db, "idp-b", nil)
		until := time.Now().Add(time.Hour)
		var firsts atomic.Int32
		var wg sync.WaitGroup
		for range 20 { // twenty nodes see the same assertion at once
			wg.Go(func() {
				first, err := a.Once(ctx, "assertion-1", until)
				if err != nil {
					t.Error(err)
				}
				if first {
					firsts.Add(1)
				}
			})
		}
		wg.Wait()
		if firsts.Load() != 1 {
			t.Fatalf("%d callers were told they were first, want exactly 1", firsts.Load())
		}
		if first, err := b.Once(ctx, "assertion-1", until); err != nil || !first {
			t.Fatalf("another connector's key space: first=%v err=%v, want first", first, err)
		}
	})
}

func TestConnectorStoreValue(t *testing.T) {
	storetest.ForEachDB(t, brokers.Models(), func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		keys := keyring(t)
		s := brokers.NewConnectorStore(db, "saml", keys)
		v1, err := s.Value(ctx, "sp-key", func() ([]byte, error) { return []byte("first"), nil })
		if err != nil || string(v1) != "first" {
			t.Fatalf("Value = %q, %v", v1, err)
		}
		v2, err := s.Value(ctx, "sp-key", func() ([]byte, error) { return nil, errors.New("must not be called again") })
		if err != nil || string(v2) != "first" {
			t.Fatalf("second Value = %q, %v; want the stored value", v2, err)
		}
		if stored := storedValue(t, db, "saml:sp-key"); !keys.Sealed(stored) || bytes.Contains(stored, []byte("first")) {
			t.Fatalf("the value is stored as %q, want it sealed", stored)
		}
		_, err = brokers.NewConnectorStore(db, "saml", nil).Value(ctx, "sp-key", nil)
		if err == nil || !strings.Contains(err.Error(), keys.CurrentID()) {
			t.Fatalf("Value without the key: %v, want an error naming key %s", err, keys.CurrentID())
		}
	})
}

// TestConnectorValuesReseal: values kept before a key was set are sealed by
// Reseal, once, and stay readable.
func TestConnectorValuesReseal(t *testing.T) {
	storetest.ForEachDB(t, brokers.Models(), func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		plain := brokers.NewConnectorStore(db, "saml", nil)
		if _, err := plain.Value(ctx, "sp-key", func() ([]byte, error) { return []byte("PRIVATE KEY"), nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := plain.Once(ctx, "assertion", time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		keys := keyring(t)
		values := brokers.NewConnectorValues(db, keys, time.Now)
		if changed, total, err := values.Reseal(ctx); err != nil || changed != 1 || total != 1 {
			t.Fatalf("Reseal = %d of %d, %v; want 1 of 1 (the replay cache has no values)", changed, total, err)
		}
		if changed, total, err := values.Reseal(ctx); err != nil || changed != 0 || total != 1 {
			t.Fatalf("Reseal again = %d of %d, %v; want 0 of 1", changed, total, err)
		}
		if stored := storedValue(t, db, "saml:sp-key"); !keys.Sealed(stored) || bytes.Contains(stored, []byte("PRIVATE KEY")) {
			t.Fatalf("after Reseal the value is stored as %q", stored)
		}
		v, err := brokers.NewConnectorStore(db, "saml", keys).Value(ctx, "sp-key", nil)
		if err != nil || string(v) != "PRIVATE KEY" {
			t.Fatalf("Value after Reseal = %q, %v", v, err)
		}
	})
}

func keyring(t *testing.T) *secret.Keyring {
	t.Helper()
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	k, err := secret.NewKeyring(base64.StdEncoding.EncodeToString(b))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func storedValue(t *testing.T, db *gorm.DB, key string) []byte {
	t.Helper()
	var row brokers.ConnectorValue
	if err := db.Take(&row, "value_key = ?", key).Error; err != nil {
		t.Fatal(err)
	}
	return row.Value
}

// TestConnectorValuesPurge: a purge deletes exactly the values kept until a
// time now past, in every connector's space, and keeps the values kept for
// good; a purged key is new again.
func TestConnectorValuesPurge(t *testing.T) {
	storetest.ForEachDB(t, brokers.Models(), func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		now := time.Date(2030, 5, 17, 9, 30, 0, 0, time.UTC)
		a, b := brokers.NewConnectorStore(db, "idp-a", nil), brokers.NewConnectorStore(db, "idp-b", nil)
		for _, c := range []struct {
			store brokers.ConnectorStore
			key   string
			until time.Time
		}{
			{a, "expired", now.Add(-time.Second)},
			{b, "expired", now.Add(-time.Hour)},
			{a, "live", now.Add(time.Second)},
			{b, "live", now.Add(time.Hour)},
		} {
			if first, err := c.store.Once(ctx, c.key, c.until); err != nil || !first {
				t.Fatalf("Once(%s): %v %v", c.key, first, err)
			}
		}
		if _, err := a.Value(ctx, "sp-key", func() ([]byte, error) { return []byte("key"), nil }); err != nil {
			t.Fatal(err)
		}
		if err := brokers.NewConnectorValues(db, nil, func() time.Time { return now }).Purge(ctx); err != nil {
			t.Fatal(err)
		}
		var keys []string
		if err := db.Model(&brokers.ConnectorValue{}).Order("value_key").Pluck("value_key", &keys).Error; err != nil {
			t.Fatal(err)
		}
		if want := []string{"idp-a:live", "idp-a:sp-key", "idp-b:live"}; !slices.Equal(keys, want) {
			t.Errorf("after the purge: %v, want %v", keys, want)
		}
		if first, err := a.Once(ctx, "live", now.Add(time.Hour)); err != nil || first {
			t.Errorf("a live key after the purge: first=%v %v, want a replay", first, err)
		}
	})
}
