package throttle

import (
	"context"
	"testing"
	"time"

	"gorm.io/gorm"
)

// TestBusyCountsTheAddressOnly: an attempt refused unchecked counts for the
// address, like a failure, and for no account.
func TestBusyCountsTheAddressOnly(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		c := &clock{t: t0}
		l := newLimiter(db, c, 1, time.Minute, time.Hour)
		ip := IPKey("192.0.2.1")
		for range 3 {
			if err := l.Busy(context.Background(), ip); err != nil {
				t.Fatal(err)
			}
		}
		fail(t, l, UserKey("local", "alice"), ip, 1)
		if n := count(t, db, ip); n != 4 {
			t.Errorf("address count after 3 busy attempts and a failure = %d, want 4", n)
		}
		var rows int64
		if err := db.Model(&Failure{}).Count(&rows).Error; err != nil || rows != 2 {
			t.Errorf("%d rows (%v), want the address's and alice's", rows, err)
		}
		c.advance(resetAfter + time.Second)
		if err := l.Busy(context.Background(), ip); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, ip); n != 1 {
			t.Errorf("address count of a busy attempt after the reset time = %d, want 1", n)
		}
	})
}
