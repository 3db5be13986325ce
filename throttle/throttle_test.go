package throttle

import (
	"context"
	"errors"
	"fmt"
	"os"
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

// t0 is a whole second, so that every database stores it exactly.
var t0 = time.Date(2030, 5, 17, 9, 30, 0, 0, time.UTC)

// clock is a settable time for a Limiter.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newLimiter(db *gorm.DB, c *clock, factor int, inc, max time.Duration) *Limiter {
	return New(db, factor, inc, max, c.now)
}

func forEachDB(t *testing.T, fn func(t *testing.T, db *gorm.DB)) {
	storetest.ForEachDB(t, Models(), fn)
}

func wait(t *testing.T, l *Limiter, userKey, ipKey string) time.Duration {
	t.Helper()
	w, err := l.Wait(context.Background(), userKey, ipKey)
	if err != nil {
		t.Fatalf("Wait(%s, %s): %v", userKey, ipKey, err)
	}
	return w
}

func fail(t *testing.T, l *Limiter, userKey, ipKey string, times int) {
	t.Helper()
	for range times {
		if err := l.Failed(context.Background(), userKey, ipKey); err != nil {
			t.Fatalf("Failed(%s, %s): %v", userKey, ipKey, err)
		}
	}
}

func count(t *testing.T, db *gorm.DB, key string) int {
	t.Helper()
	var f Failure
	err := db.Take(&f, "counter_key = ?", key).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return 0
	}
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return f.Count
}

func TestKeys(t *testing.T) {
	if got := UserKey("local", "alice"); got != "user:local:alice" {
		t.Errorf("UserKey = %q", got)
	}
	if got := IPKey("192.0.2.1"); got != "ip:192.0.2.1" {
		t.Errorf("IPKey = %q", got)
	}
	if UserKey("ldap", "alice") == UserKey("local", "alice") {
		t.Errorf("the same username at two connectors shares a counter")
	}
}

// TestWaitGrowsPerFactor: after every factor failures the wait grows by the increment,
// counted from the last failure, up to the maximum.
func TestWaitGrowsPerFactor(t *testing.T) {
	const factor = 3
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		c := &clock{t: t0}
		l := newLimiter(db, c, factor, time.Minute, 5*time.Minute)
		user, ip := UserKey("local", "alice"), IPKey("192.0.2.1")

		if w := wait(t, l, user, ip); w != 0 {
			t.Fatalf("wait before any failure = %v, want 0", w)
		}
		for n := 1; n <= 30; n++ {
			fail(t, l, user, ip, 1)
			want := min(time.Duration(n/factor)*time.Minute, 5*time.Minute)
			if w := wait(t, l, user, ip); w != want {
				t.Errorf("wait after %d failures = %v, want %v", n, w, want)
			}
		}
		if n := count(t, db, user); n != 30 {
			t.Errorf("user count = %d, want 30", n)
		}

		// The wait runs from the last failure.
		c.advance(90 * time.Second)
		if w := wait(t, l, user, ip); w != 5*time.Minute-90*time.Second {
			t.Errorf("wait 90s after the last failure = %v, want %v", w, 5*time.Minute-90*time.Second)
		}
		c.advance(5*time.Minute - 90*time.Second)
		if w := wait(t, l, user, ip); w > 0 {
			t.Errorf("wait once the maximum has passed = %v, want none", w)
		}
		// Another failure starts a new wait of the capped length.
		fail(t, l, user, ip, 1)
		if w := wait(t, l, user, ip); w != 5*time.Minute {
			t.Errorf("wait after one more failure = %v, want the maximum 5m", w)
		}

		// Counters are per key: another user at another address may go ahead.
		if w := wait(t, l, UserKey("local", "bob"), IPKey("198.51.100.7")); w != 0 {
			t.Errorf("another user at another address waits %v, want 0", w)
		}
	})
}

// TestWaitPerIP: an address is allowed ten times the factor before it waits.
func TestWaitPerIP(t *testing.T) {
	const factor = 2
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		c := &clock{t: t0}
		l := newLimiter(db, c, factor, time.Minute, time.Hour)
		ip := IPKey("203.0.113.9")
		// A different account every time, so that only the address's count matters.
		for n := 1; n <= 3*factor*ipFactorMultiplier; n++ {
			user := UserKey("local", fmt.Sprintf("user%d", n))
			fail(t, l, user, ip, 1)
			want := time.Duration(n/(factor*ipFactorMultiplier)) * time.Minute
			if w := wait(t, l, UserKey("local", "fresh"), ip); w != want {
				t.Fatalf("wait of a fresh user after %d failures from %s = %v, want %v", n, ip, w, want)
			}
			if w := wait(t, l, UserKey("local", "fresh"), IPKey("203.0.113.10")); w != 0 {
				t.Fatalf("another address waits %v after %d failures from %s", w, n, ip)
			}
		}
		if n := count(t, db, ip); n != 3*factor*ipFactorMultiplier {
			t.Errorf("address count = %d, want %d", n, 3*factor*ipFactorMultiplier)
		}

		// The longer of the two waits wins.
		user := UserKey("local", "mallory")
		fail(t, l, user, IPKey("203.0.113.50"), 4*factor) // user: 4 steps
		if w := wait(t, l, user, ip); w != 4*time.Minute {
			t.Errorf("user 4 steps, address 3 steps: wait %v, want 4m", w)
		}
		fail(t, l, UserKey("local", "x"), ip, 2*factor*ipFactorMultiplier) // address: 5 steps
		if w := wait(t, l, user, ip); w != 5*time.Minute {
			t.Errorf("user 4 steps, address 5 steps: wait %v, want 5m", w)
		}
	})
}

// TestSucceededResetsUserOnly: a good login forgets the account's failures, not the address's.
func TestSucceededResetsUserOnly(t *testing.T) {
	const factor = 2
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		c := &clock{t: t0}
		l := newLimiter(db, c, factor, time.Minute, time.Hour)
		alice, bob, ip := UserKey("local", "alice"), UserKey("local", "bob"), IPKey("192.0.2.1")

		fail(t, l, alice, ip, factor*ipFactorMultiplier) // alice: 10 steps, address: 1 step
		fail(t, l, bob, IPKey("192.0.2.2"), factor)      // bob: 1 step elsewhere
		if w := wait(t, l, alice, ip); w != time.Duration(ipFactorMultiplier)*time.Minute {
			t.Fatalf("wait before success = %v", w)
		}

		if err := l.Succeeded(ctx, alice); err != nil {
			t.Fatalf("Succeeded: %v", err)
		}
		if n := count(t, db, alice); n != 0 {
			t.Errorf("alice's count after success = %d, want 0", n)
		}
		if n := count(t, db, ip); n != factor*ipFactorMultiplier {
			t.Errorf("address count after alice's success = %d, want %d (untouched)", n, factor*ipFactorMultiplier)
		}
		if n := count(t, db, bob); n != factor {
			t.Errorf("bob's count after alice's success = %d, want %d (untouched)", n, factor)
		}
		// The address still has its own wait.
		if w := wait(t, l, alice, ip); w != time.Minute {
			t.Errorf("wait after success from the same address = %v, want the address's 1m", w)
		}
		if w := wait(t, l, alice, IPKey("192.0.2.3")); w != 0 {
			t.Errorf("wait after success from another address = %v, want 0", w)
		}
		if w := wait(t, l, bob, IPKey("192.0.2.3")); w != time.Minute {
			t.Errorf("bob's wait after alice's success = %v, want 1m", w)
		}
		// Succeeding without failures, or twice, is fine.
		for _, key := range []string{alice, UserKey("local", "nobody")} {
			if err := l.Succeeded(ctx, key); err != nil {
				t.Errorf("Succeeded(%s): %v", key, err)
			}
		}
		// Counting starts again from zero.
		fail(t, l, alice, IPKey("192.0.2.3"), 1)
		if n := count(t, db, alice); n != 1 {
			t.Errorf("alice's count after a new failure = %d, want 1", n)
		}
	})
}

// TestOldFailuresReset: failures older than 12 hours are forgotten, by Wait and by Failed.
func TestOldFailuresReset(t *testing.T) {
	const factor = 3
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		c := &clock{t: t0}
		// A maximum longer than the reset time, so that only the reset can end the wait.
		l := newLimiter(db, c, factor, 24*time.Hour, 48*time.Hour)
		user, ip := UserKey("local", "alice"), IPKey("192.0.2.1")

		fail(t, l, user, ip, factor)
		if w := wait(t, l, user, ip); w != 24*time.Hour {
			t.Fatalf("wait = %v, want 24h", w)
		}
		c.advance(resetAfter)
		if w := wait(t, l, user, ip); w != 12*time.Hour {
			t.Errorf("wait exactly 12h after the last failure = %v, want 12h (not reset yet)", w)
		}
		c.advance(time.Second)
		if w := wait(t, l, user, ip); w != 0 {
			t.Errorf("wait 12h1s after the last failure = %v, want 0 (reset)", w)
		}

		// The next failure counts from 1 again, for both keys.
		fail(t, l, user, ip, 1)
		if n := count(t, db, user); n != 1 {
			t.Errorf("user count after a failure following a 12h pause = %d, want 1", n)
		}
		if n := count(t, db, ip); n != 1 {
			t.Errorf("address count after a failure following a 12h pause = %d, want 1", n)
		}
		if w := wait(t, l, user, ip); w != 0 {
			t.Errorf("wait after 1 fresh failure = %v, want 0", w)
		}

		// Failures less than 12h apart keep counting: 11h between each.
		for n := 2; n <= factor; n++ {
			c.advance(11 * time.Hour)
			fail(t, l, user, ip, 1)
			if got := count(t, db, user); got != n {
				t.Errorf("user count after failure %d, 11h after the previous = %d, want %d", n, got, n)
			}
		}
		if w := wait(t, l, user, ip); w != 24*time.Hour {
			t.Errorf("wait after %d failures 11h apart = %v, want 24h", factor, w)
		}
	})
}
