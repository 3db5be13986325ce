package issuer

import (
	"context"
	"errors"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/store/storetest"
)

// A client ID that is not text (NUL, broken UTF-8) is an unknown client on
// every database: PostgreSQL refuses such strings with an error, which
// answered 500 at /token, /introspect and /revoke (found by FuzzTokenEndpoint).
func TestClientIDNotText(t *testing.T) {
	storetest.ForEachDB(t, Models(), func(t *testing.T, db *gorm.DB) {
		iss := &Issuer{db: db, clients: newClientCache(db, time.Now)}
		for _, id := range []string{"\x00", "ok\x00", "\xc3\x28", "\xff"} {
			if _, err := iss.client(context.Background(), id); !errors.Is(err, errUnknownClient) {
				t.Errorf("client(%q) = %v, want errUnknownClient", id, err)
			}
		}
	})
}
