package login_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/e2e/peers"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	peers.StopAll()
	os.Exit(code)
}

// clock is a settable time, a whole microsecond apart from one call to the next
// (PostgreSQL keeps microseconds), so that sign-ins have an order.
type clock struct{ t time.Time }

func (c *clock) now() time.Time {
	c.t = c.t.Add(time.Microsecond)
	return c.t
}

var t0 = time.Date(2030, 5, 17, 9, 30, 0, 0, time.UTC)

func create(t *testing.T, ts login.Transactions, browser string) string {
	t.Helper()
	token, err := ts.Create(context.Background(), &login.Transaction{Purpose: login.ForClient, Step: login.StepChoose}, browser)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// TestCreateKeepsABrowsersNewest: one browser keeps at most MaxPerBrowser
// sign-ins — the newest; starting one more ends its oldest — and another
// browser's sign-ins are not touched.
func TestCreateKeepsABrowsersNewest(t *testing.T) {
	storetest.ForEachDB(t, login.Models(), func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		ts := login.NewTransactions(db, (&clock{t: t0}).now)
		other := create(t, ts, "other-browser")
		var tokens []string
		for range login.MaxPerBrowser + 5 {
			tokens = append(tokens, create(t, ts, "busy-browser"))
		}
		var n int64
		if err := db.Model(&login.Transaction{}).Count(&n).Error; err != nil || n != login.MaxPerBrowser+1 {
			t.Fatalf("%d sign-ins stored (%v), want %d of the busy browser and 1 of the other", n, err, login.MaxPerBrowser+1)
		}
		for i, token := range tokens {
			_, err := ts.Load(ctx, token, "busy-browser")
			if ended := i < 5; ended != errors.Is(err, login.ErrNotFound) || (!ended && err != nil) {
				t.Errorf("sign-in %d of %d: %v (ended: %v)", i+1, len(tokens), err, ended)
			}
		}
		if _, err := ts.Load(ctx, other, "other-browser"); err != nil {
			t.Errorf("the other browser's sign-in: %v", err)
		}
	})
}

// TestPurge: a purge deletes exactly the sign-ins that expired.
func TestPurge(t *testing.T) {
	storetest.ForEachDB(t, login.Models(), func(t *testing.T, db *gorm.DB) {
		c := &clock{t: t0}
		ts := login.NewTransactions(db, c.now)
		old := create(t, ts, "a")
		c.t = c.t.Add(login.TTL / 2)
		mid := create(t, ts, "b")
		c.t = c.t.Add(login.TTL/2 + time.Second) // the first one expired a second ago
		recent := create(t, ts, "a")
		if err := ts.Purge(context.Background()); err != nil {
			t.Fatal(err)
		}
		var left int64
		if err := db.Model(&login.Transaction{}).Count(&left).Error; err != nil || left != 2 {
			t.Fatalf("%d sign-ins left (%v), want the two that have not expired", left, err)
		}
		for token, browser := range map[string]string{mid: "b", recent: "a"} {
			if _, err := ts.Load(context.Background(), token, browser); err != nil {
				t.Errorf("a sign-in that has not expired: %v", err)
			}
		}
		if _, err := ts.Load(context.Background(), old, "a"); !errors.Is(err, login.ErrNotFound) {
			t.Errorf("the expired sign-in after the purge: %v, want ErrNotFound", err)
		}
	})
}
