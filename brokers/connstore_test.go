package brokers_test

import (
	"context"
	"errors"
	"os"
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
