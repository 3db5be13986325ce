package issuer

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/store/storetest"
)

// A change of clients on one node — an admin's secret rotation, a removal from
// the configuration at a start — is seen by that node's next request and by
// every other node on the database within clientCheck of its clock, while in
// between the other nodes answer from memory without a query per request.
func TestClientChangesReachEveryNode(t *testing.T) {
	svc := config.Client{ID: "svc", Secret: "svc-secret", GrantTypes: []string{config.GrantClientCredentials}}
	other := config.Client{ID: "other", Secret: "other-secret", GrantTypes: []string{config.GrantClientCredentials}}
	for _, c := range []struct {
		name string
		// change makes the change on node a, or on a node that starts, and
		// returns that node and svc's secret from then on ("": none works).
		change func(t *testing.T, a *Issuer, start func(...config.Client) *Issuer) (*Issuer, string)
	}{
		{"secret rotated by an admin", func(t *testing.T, a *Issuer, _ func(...config.Client) *Issuer) (*Issuer, string) {
			s, err := a.RotateClientSecret(context.Background(), "svc")
			if err != nil {
				t.Fatal(err)
			}
			return a, s
		}},
		{"removed from the configuration", func(t *testing.T, _ *Issuer, start func(...config.Client) *Issuer) (*Issuer, string) {
			return start(other), "" // its file no longer has svc
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			storetest.ForEachDB(t, append(Models(), audit.Models()...), func(t *testing.T, db *gorm.DB) {
				var mu sync.Mutex
				at := time.Now().UTC()
				clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return at }
				advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); at = at.Add(d) }
				var queries atomic.Int64
				if err := db.Callback().Query().After("gorm:query").Register("count", func(*gorm.DB) { queries.Add(1) }); err != nil {
					t.Fatal(err)
				}
				log := slog.New(slog.DiscardHandler)
				start := func(clients ...config.Client) *Issuer {
					cfg := config.Defaults()
					cfg.Issuer = "https://id.example.com"
					cfg.Signing.Algorithm = "EdDSA"
					cfg.Clients = clients
					iss, err := New(context.Background(), &cfg, db, nil, nil, audit.New(db, log, clock), log, clock)
					if err != nil {
						t.Fatal(err)
					}
					return iss
				}
				works := func(iss *Issuer, secret string) bool {
					r := httptest.NewRequest("POST", "/token", nil)
					r.SetBasicAuth("svc", secret)
					_, err := iss.authenticateClient(r, url.Values{})
					return err == nil
				}
				a, b := start(svc, other), start(svc, other)
				if !works(a, "svc-secret") || !works(b, "svc-secret") {
					t.Fatal("the configured secret does not work")
				}

				changed, secret := c.change(t, a, start)
				if works(changed, "svc-secret") {
					t.Error("on the node that made the change, the old secret still works")
				}
				if secret != "" && !works(changed, secret) {
					t.Error("on the node that made the change, the new secret does not work")
				}

				// Within clientCheck node b answers from memory: no query per request.
				advance(clientCheck / 2)
				before := queries.Load()
				for range 50 {
					if !works(b, "svc-secret") {
						t.Fatal("within clientCheck of its last check, node b already refuses the old secret")
					}
				}
				if n := queries.Load() - before; n != 0 {
					t.Errorf("50 requests within clientCheck sent %d queries, want none", n)
				}

				// Then it checks once, and sees the change.
				advance(clientCheck / 2)
				before = queries.Load()
				for range 20 {
					if works(b, "svc-secret") {
						t.Fatal("after clientCheck, node b still accepts the old secret")
					}
				}
				if secret != "" && !works(b, secret) {
					t.Error("after clientCheck, node b refuses the new secret")
				}
				if n := queries.Load() - before; n > 2 {
					t.Errorf("21 requests after clientCheck sent %d queries, want a check and a reload", n)
				}
			})
		})
	}
}
