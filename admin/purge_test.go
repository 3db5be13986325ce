package admin

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/e2e/peers"
	"github.com/fedhub/fedhub/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	peers.StopAll()
	os.Exit(code)
}

// TestPurge: a purge deletes exactly the admin sessions that expired.
func TestPurge(t *testing.T) {
	storetest.ForEachDB(t, Models(), func(t *testing.T, db *gorm.DB) {
		now := time.Now().UTC().Truncate(time.Second)
		for name, expires := range map[string]time.Time{
			"expired-long-ago": now.Add(-24 * time.Hour), "just-expired": now.Add(-time.Second),
			"live": now.Add(time.Hour), "ending-soon": now.Add(time.Minute),
		} {
			s := Session{TokenHash: name, UserID: "u", CSRF: "c", CreatedAt: now.Add(-2 * 24 * time.Hour), ExpiresAt: expires}
			if err := db.Create(&s).Error; err != nil {
				t.Fatal(err)
			}
		}
		if err := (&Service{db: db}).Purge(context.Background()); err != nil {
			t.Fatal(err)
		}
		var left []string
		if err := db.Model(&Session{}).Order("token_hash").Pluck("token_hash", &left).Error; err != nil {
			t.Fatal(err)
		}
		if want := []string{"ending-soon", "live"}; !slices.Equal(left, want) {
			t.Errorf("after the purge: %v, want %v", left, want)
		}
	})
}
