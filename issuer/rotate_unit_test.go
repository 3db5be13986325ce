package issuer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/store/storetest"
)

// TestUnitRotate: of concurrent rotations of one refresh token exactly one
// wins and saves its token; the others, and any later one, get errSpent and
// save nothing, on both databases.
func TestUnitRotate(t *testing.T) {
	storetest.ForEachDB(t, Models(), func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		now := time.Date(2030, 5, 17, 9, 30, 0, 0, time.UTC)
		iss := &Issuer{db: db, now: func() time.Time { return now }}
		later := now.Add(time.Hour)
		if err := db.Create(&RefreshToken{Hash: "old", GrantID: "g", ClientID: "c", Scope: "openid", ExpiresAt: later}).Error; err != nil {
			t.Fatal(err)
		}
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				next := &RefreshToken{Hash: fmt.Sprint("next-", i), GrantID: "g", ClientID: "c", Scope: "openid", ExpiresAt: later}
				errs[i] = iss.rotate(ctx, "old", next, now)
			})
		}
		wg.Wait()
		won := ""
		for i, err := range errs {
			switch {
			case err == nil && won == "":
				won = fmt.Sprint("next-", i)
			case err == nil:
				t.Fatalf("two rotations of one token won: %s and next-%d", won, i)
			case !errors.Is(err, errSpent):
				t.Fatalf("rotation %d: %v", i, err)
			}
		}
		if won == "" {
			t.Fatal("no rotation won")
		}
		if err := iss.rotate(ctx, "old", &RefreshToken{Hash: "late", GrantID: "g", ClientID: "c", ExpiresAt: later}, now); !errors.Is(err, errSpent) {
			t.Fatalf("rotating a spent token: %v, want errSpent", err)
		}
		var rows []RefreshToken
		if err := db.Order("hash").Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 || rows[0].Hash != won || rows[1].Hash != "old" {
			t.Fatalf("tokens after: %+v; want %s and old", rows, won)
		}
		if rows[0].UsedAt != nil || rows[0].GrantID != "g" || rows[0].ClientID != "c" || rows[0].Scope != "openid" || !rows[0].ExpiresAt.Equal(later) {
			t.Fatalf("the new token: %+v", rows[0])
		}
		if rows[1].UsedAt == nil || !rows[1].UsedAt.Equal(now) || rows[1].Scope != "openid" || !rows[1].ExpiresAt.Equal(later) {
			t.Fatalf("the spent token: %+v", rows[1])
		}
	})
}
