package throttle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// resetAfter forgets failures this old (Keycloak's "failure reset time").
const resetAfter = 12 * time.Hour

// Failure is the failure count of one key ("user:alice", "ip:192.0.2.1").
type Failure struct {
	Key    string `gorm:"primaryKey;size:320;column:counter_key"`
	Count  int    `gorm:"not null"`
	LastAt time.Time
}

// Models are the tables this package owns, for store.Migrate.
func Models() []any { return []any{&Failure{}} }

// Limiter decides waits: after every Factor failures the wait grows by
// Increment, up to MaxWait.
type Limiter struct {
	db        *gorm.DB
	factor    int
	increment time.Duration
	maxWait   time.Duration
	now       func() time.Time
	lockout   func()
}

// New returns a limiter over db, with the clock now.
func New(db *gorm.DB, factor int, increment, maxWait time.Duration, now func() time.Time) *Limiter {
	return &Limiter{db: db, factor: factor, increment: increment, maxWait: maxWait,
		now: func() time.Time { return now().UTC() }}
}

// OnLockout has fn called whenever Wait makes a caller wait (metrics count
// lockouts); set it before the limiter is used.
func (l *Limiter) OnLockout(fn func()) { l.lockout = fn }

// UserKey and IPKey name the two things that are counted. UserKey is an
// account of a connector: its subject there (the local user ID, a directory
// entry's entryUUID or objectGUID), never the username as typed, so that
// every spelling of a name counts once. A key too long for its column ends
// in a hash of the account.
func UserKey(connector, account string) string {
	key := "user:" + connector + ":" + account
	if len(key) > maxKey {
		sum := sha256.Sum256([]byte(account))
		key = "user:" + connector + ":sha256:" + hex.EncodeToString(sum[:])
	}
	return key
}

// maxKey is the size of the key column.
const maxKey = 320

// IPKey is the key of a client address.
func IPKey(ip string) string { return "ip:" + ip }

// ipFactorMultiplier lets one address (an office behind NAT) fail more often
// than one account before it has to wait.
const ipFactorMultiplier = 10

// Wait returns how long the caller must wait before trying again (0: go ahead).
func (l *Limiter) Wait(ctx context.Context, userKey, ipKey string) (time.Duration, error) {
	var rows []Failure
	if err := l.db.WithContext(ctx).Where("counter_key IN ?", []string{userKey, ipKey}).Find(&rows).Error; err != nil {
		return 0, fmt.Errorf("read login failures: %w", err)
	}
	now := l.now()
	var wait time.Duration
	for _, f := range rows {
		if now.Sub(f.LastAt) > resetAfter {
			continue
		}
		factor := l.factor
		if f.Key == ipKey {
			factor *= ipFactorMultiplier
		}
		if f.Count < factor {
			continue
		}
		w := min(l.increment*time.Duration(f.Count/factor), l.maxWait)
		wait = max(wait, f.LastAt.Add(w).Sub(now))
	}
	if wait > 0 && l.lockout != nil {
		l.lockout()
	}
	return wait, nil
}

// Failed records a failed attempt for each key given ("" is none: an
// attempt at no known account counts for its IP only).
func (l *Limiter) Failed(ctx context.Context, keys ...string) error {
	now := l.now()
	for _, key := range keys {
		if key == "" {
			continue
		}
		err := l.db.WithContext(ctx).Clauses(clause.OnConflict{
			Columns: []clause.Column{{Name: "counter_key"}},
			DoUpdates: clause.Assignments(map[string]any{
				"count":   gorm.Expr("CASE WHEN failures.last_at < ? THEN 1 ELSE failures.count + 1 END", now.Add(-resetAfter)),
				"last_at": now,
			}),
		}).Create(&Failure{Key: key, Count: 1, LastAt: now}).Error
		if err != nil {
			return fmt.Errorf("record login failure: %w", err)
		}
	}
	return nil
}

// Succeeded forgets a user's failures after a good login.
func (l *Limiter) Succeeded(ctx context.Context, userKey string) error {
	if err := l.db.WithContext(ctx).Delete(&Failure{}, "counter_key = ?", userKey).Error; err != nil {
		return fmt.Errorf("reset login failures: %w", err)
	}
	return nil
}
