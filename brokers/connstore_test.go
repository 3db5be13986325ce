package brokers_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/e2e/peers"
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
		a, b := brokers.NewConnectorStore(db, "idp-a"), brokers.NewConnectorStore(db, "idp-b")
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
		s := brokers.NewConnectorStore(db, "saml")
		v1, err := s.Value(ctx, "sp-key", func() ([]byte, error) { return []byte("first"), nil })
		if err != nil || string(v1) != "first" {
			t.Fatalf("Value = %q, %v", v1, err)
		}
		v2, err := s.Value(ctx, "sp-key", func() ([]byte, error) { return nil, errors.New("must not be called again") })
		if err != nil || string(v2) != "first" {
			t.Fatalf("second Value = %q, %v; want the stored value", v2, err)
		}
	})
}

// TestConnectorValuesPurge: a purge deletes exactly the values kept until a
// time now past, in every connector's space, and keeps the values kept for
// good; a purged key is new again.
func TestConnectorValuesPurge(t *testing.T) {
	storetest.ForEachDB(t, brokers.Models(), func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		now := time.Date(2030, 5, 17, 9, 30, 0, 0, time.UTC)
		a, b := brokers.NewConnectorStore(db, "idp-a"), brokers.NewConnectorStore(db, "idp-b")
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
		if err := brokers.NewConnectorValues(db, func() time.Time { return now }).Purge(ctx); err != nil {
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
