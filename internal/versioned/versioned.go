package versioned

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
)

// Cache is a node's copy of a value loaded from the database. It is checked
// at most every Every: one read of the version; the value is loaded again
// only when the version moved. While one request checks, the others go on
// with the copy, but never with one older than twice Every: past that, each
// checks itself (a check that hangs does not stretch the bound).
type Cache[T any] struct {
	every   time.Duration
	now     func() time.Time
	version func(ctx context.Context, db *gorm.DB) (int64, error)
	load    func(ctx context.Context, db *gorm.DB) (T, error)

	mu        sync.RWMutex
	value     T
	loaded    bool
	current   int64
	checkedAt time.Time
	checking  atomic.Bool // one request at a time checks while the copy is young
}

// New makes a cache that reads the version with version and the value with
// load.
func New[T any](every time.Duration, now func() time.Time, version func(context.Context, *gorm.DB) (int64, error),
	load func(context.Context, *gorm.DB) (T, error)) *Cache[T] {
	return &Cache[T]{every: every, now: now, version: version, load: load}
}

// Get returns the value, checked within Every, reading through db — the
// caller's transaction when it is in one: a transaction that holds SQLite's
// write lock and waited for another connection of a pool whose other
// connections wait for that lock would hold it until their busy timeout.
func (c *Cache[T]) Get(ctx context.Context, db *gorm.DB) (T, error) {
	now := c.now()
	c.mu.RLock()
	value, loaded, age := c.value, c.loaded, now.Sub(c.checkedAt)
	c.mu.RUnlock()
	if loaded && age >= 0 && age < c.every {
		return value, nil
	}
	if c.checking.CompareAndSwap(false, true) {
		defer c.checking.Store(false)
	} else if loaded && age >= 0 && age < 2*c.every {
		return value, nil
	}
	return c.check(ctx, db, now)
}

// check reads the version and, when it moved, the value. The version is
// read first: a write that lands in between raises it again, and the next
// check loads again.
func (c *Cache[T]) check(ctx context.Context, db *gorm.DB, now time.Time) (T, error) {
	var zero T
	version, err := c.version(ctx, db)
	if err != nil {
		return zero, err
	}
	c.mu.RLock()
	value, same := c.value, c.loaded && version == c.current
	c.mu.RUnlock()
	if !same {
		if value, err = c.load(ctx, db); err != nil {
			return zero, err
		}
	}
	c.mu.Lock()
	c.value, c.loaded, c.current, c.checkedAt = value, true, version, now
	c.mu.Unlock()
	return value, nil
}

// Invalidate makes this node's next request check, once a write is
// committed (before, a request could check, still see the old version and
// trust its copy for Every).
func (c *Cache[T]) Invalidate() {
	c.mu.Lock()
	c.checkedAt = time.Time{}
	c.mu.Unlock()
}
