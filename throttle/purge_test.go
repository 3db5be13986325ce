package throttle

import (
	"context"
	"slices"
	"testing"
	"time"

	"gorm.io/gorm"
)

// TestPurge: a purge deletes exactly the counts whose last failure is older
// than the reset time — those that no longer make anyone wait.
func TestPurge(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		c := &clock{t: t0}
		l := newLimiter(db, c, 1, time.Minute, time.Hour)
		fail(t, l, UserKey("local", "old"), IPKey("192.0.2.1"), 3)
		c.advance(resetAfter - time.Minute)
		fail(t, l, UserKey("local", "recent"), IPKey("192.0.2.2"), 1)
		c.advance(time.Minute + time.Second) // the first two are past the reset time
		fail(t, l, UserKey("local", "now"), IPKey("192.0.2.1"), 1)
		if err := l.Purge(context.Background()); err != nil {
			t.Fatal(err)
		}
		var keys []string
		if err := db.Model(&Failure{}).Order("counter_key").Pluck("counter_key", &keys).Error; err != nil {
			t.Fatal(err)
		}
		want := []string{IPKey("192.0.2.1"), IPKey("192.0.2.2"), UserKey("local", "now"), UserKey("local", "recent")}
		if !slices.Equal(keys, want) {
			t.Errorf("after the purge: %v, want %v", keys, want)
		}
		if n := count(t, db, IPKey("192.0.2.1")); n != 1 {
			t.Errorf("192.0.2.1 failed again after the reset time: count %d, want 1", n)
		}
	})
}
