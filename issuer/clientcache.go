package issuer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Every token, authorization, introspection and revocation request reads its
// client. Clients change rarely — at start-up from the configuration, by an
// admin's secret rotation, by a removal — so each node keeps them all in
// memory and asks the database every clientCheck whether they changed: one
// read of a version number that every write of a client raises. A change made
// on this node is seen by its next request; one made on another node (or by
// the CLI) within clientCheck, as a revoked key is. While one request checks,
// the others go on with the cache, but never with one older than clientStale:
// past that, each asks the database itself.
const (
	clientCheck = keyCheck
	clientStale = 2 * clientCheck
)

// ClientVersion is the clients' version: a single row whose number rises with
// every write of a client, so that nodes notice a change with one small read.
type ClientVersion struct {
	ID      int `gorm:"primaryKey;autoIncrement:false"`
	Version int64
}

// clientVersionID is the ID of the single ClientVersion row.
const clientVersionID = 1

// clientCache holds the clients that are not removed, by ID.
type clientCache struct {
	db  *gorm.DB
	now func() time.Time

	mu        sync.RWMutex
	byID      map[string]*Client // nil until loaded
	version   int64
	checkedAt time.Time
	checking  atomic.Bool // one request at a time checks while the cache is young
}

func newClientCache(db *gorm.DB, now func() time.Time) *clientCache {
	return &clientCache{db: db, now: now}
}

// get returns the client with this ID, or nil when there is none or it was
// removed. The client is shared: callers only read it.
func (cc *clientCache) get(ctx context.Context, id string) (*Client, error) {
	if err := cc.fresh(ctx); err != nil {
		return nil, err
	}
	cc.mu.RLock()
	defer cc.mu.RUnlock()
	return cc.byID[id], nil
}

// fresh makes sure the cache was checked against the database within
// clientCheck (or clientStale, while another request checks).
func (cc *clientCache) fresh(ctx context.Context) error {
	now := cc.now()
	cc.mu.RLock()
	loaded, age := cc.byID != nil, now.Sub(cc.checkedAt)
	cc.mu.RUnlock()
	if loaded && age >= 0 && age < clientCheck {
		return nil
	}
	if cc.checking.CompareAndSwap(false, true) {
		defer cc.checking.Store(false)
	} else if loaded && age >= 0 && age < clientStale {
		return nil
	}
	return cc.check(ctx, now)
}

// check reads the version and, when it moved, every client. The version is
// read first: a write that lands in between raises it again, and the next
// check reloads.
func (cc *clientCache) check(ctx context.Context, now time.Time) error {
	version, err := cc.readVersion(ctx)
	if err != nil {
		return err
	}
	cc.mu.RLock()
	same := cc.byID != nil && version == cc.version
	cc.mu.RUnlock()
	if same {
		cc.mu.Lock()
		cc.checkedAt = now
		cc.mu.Unlock()
		return nil
	}
	var rows []Client
	if err := cc.db.WithContext(ctx).Where("removed_at IS NULL").Find(&rows).Error; err != nil {
		return fmt.Errorf("load clients: %w", err)
	}
	byID := make(map[string]*Client, len(rows))
	for i := range rows {
		byID[rows[i].ID] = &rows[i]
	}
	cc.mu.Lock()
	cc.byID, cc.version, cc.checkedAt = byID, version, now
	cc.mu.Unlock()
	return nil
}

func (cc *clientCache) readVersion(ctx context.Context) (int64, error) {
	var versions []int64
	err := cc.db.WithContext(ctx).Model(&ClientVersion{}).Where("id = ?", clientVersionID).Pluck("version", &versions).Error
	if err != nil {
		return 0, fmt.Errorf("check clients: %w", err)
	}
	if len(versions) == 0 { // no client was ever written
		return 0, nil
	}
	return versions[0], nil
}

// bump raises the version, after a write of clients or in its transaction
// (db is then the transaction).
func (cc *clientCache) bump(ctx context.Context, db *gorm.DB) error {
	err := db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "id"}},
		DoUpdates: clause.Assignments(map[string]any{"version": gorm.Expr("client_versions.version + 1")}),
	}).Create(&ClientVersion{ID: clientVersionID, Version: 1}).Error
	if err != nil {
		return fmt.Errorf("record a change of clients: %w", err)
	}
	return nil
}

// invalidate makes this node's next request check, once a write of clients
// is committed (before, a request could check, still see the old version
// and trust its cache for clientCheck).
func (cc *clientCache) invalidate() {
	cc.mu.Lock()
	cc.checkedAt = time.Time{}
	cc.mu.Unlock()
}
