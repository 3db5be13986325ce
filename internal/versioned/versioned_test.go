package versioned

import (
	"context"
	"testing"
	"time"

	"gorm.io/gorm"
)

// TestCache: the version is read at most every Every and the value loaded
// only when it moved; while one request checks, the others answer from the
// copy — but never from one older than twice Every: a check that hangs does
// not stretch the bound.
func TestCache(t *testing.T) {
	const every = time.Second
	at := time.Date(2030, 5, 17, 9, 30, 0, 0, time.UTC)
	version, reads, loads := int64(1), 0, 0
	c := New(every, func() time.Time { return at },
		func(context.Context, *gorm.DB) (int64, error) { reads++; return version, nil },
		func(context.Context, *gorm.DB) (int64, error) { loads++; return version, nil })
	for _, s := range []struct {
		name         string
		after        time.Duration
		write        bool // another node raises the version
		otherChecks  bool // another request is checking, and hangs
		invalidate   bool
		want         int64
		reads, loads int
	}{
		{"first use loads", 0, false, false, false, 1, 1, 1},
		{"young: no read", every / 2, false, false, false, 1, 1, 1},
		{"due, unchanged: a read, no load", every, false, false, false, 1, 2, 1},
		{"written elsewhere, not due yet", every / 2, true, false, false, 1, 2, 1},
		{"due: loaded again", every / 2, false, false, false, 2, 3, 2},
		{"written, due, another checks: the copy answers", every, true, true, false, 2, 3, 2},
		{"twice Every old: this request checks itself", every, false, true, false, 3, 4, 3},
		{"young again", every / 10, false, true, false, 3, 4, 3},
		{"invalidated after a write here: checks at once", 0, true, false, true, 4, 5, 4},
	} {
		at = at.Add(s.after)
		if s.write {
			version++
		}
		c.checking.Store(s.otherChecks)
		if s.invalidate {
			c.Invalidate()
		}
		got, err := c.Get(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got != s.want || reads != s.reads || loads != s.loads {
			t.Fatalf("%s: got version %d after %d reads and %d loads, want %d, %d, %d",
				s.name, got, reads, loads, s.want, s.reads, s.loads)
		}
	}
}
