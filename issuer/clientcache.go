package issuer

import (
	"context"
	"fmt"
	"time"

	"github.com/fedhub/fedhub/internal/versioned"
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
// the others go on with the cache, but never with one twice as old: past
// that, each asks the database itself (versioned.Cache).
const clientCheck = keyCheck

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
	db *gorm.DB
	*versioned.Cache[map[string]*Client]
}

func newClientCache(db *gorm.DB, now func() time.Time) *clientCache {
	return &clientCache{db: db, Cache: versioned.New(clientCheck, now, readClientVersion, loadClients)}
}

// get returns the client with this ID, or nil when there is none or it was
// removed. The client is shared: callers only read it.
func (cc *clientCache) get(ctx context.Context, id string) (*Client, error) {
	byID, err := cc.Get(ctx, cc.db)
	if err != nil {
		return nil, err
	}
	return byID[id], nil
}

func loadClients(ctx context.Context, db *gorm.DB) (map[string]*Client, error) {
	var rows []Client
	if err := db.WithContext(ctx).Where("removed_at IS NULL").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("load clients: %w", err)
	}
	byID := make(map[string]*Client, len(rows))
	for i := range rows {
		byID[rows[i].ID] = &rows[i]
	}
	return byID, nil
}

func readClientVersion(ctx context.Context, db *gorm.DB) (int64, error) {
	var versions []int64
	err := db.WithContext(ctx).Model(&ClientVersion{}).Where("id = ?", clientVersionID).Pluck("version", &versions).Error
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
