package brokers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/fedhub/fedhub/secret"
)

// ConnectorValue is a row of the ConnectorStore.
type ConnectorValue struct {
	Key       string `gorm:"primaryKey;size:255;column:value_key"`
	Value     []byte
	ExpiresAt *time.Time `gorm:"index"`
}

// Models are the tables this package owns, for store.Migrate.
func Models() []any { return []any{&ConnectorValue{}} }

// dbConnectorStore implements ConnectorStore over the database.
type dbConnectorStore struct {
	db      *gorm.DB
	secrets *secret.Keyring // seals values (they are kept for good: keys)
	prefix  string          // one key space per connector
}

func (s dbConnectorStore) Once(ctx context.Context, key string, until time.Time) (bool, error) {
	until = until.UTC()
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).
		Create(&ConnectorValue{Key: s.prefix + key, ExpiresAt: &until})
	if res.Error != nil {
		return false, fmt.Errorf("replay cache: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

func (s dbConnectorStore) Value(ctx context.Context, key string, create func() ([]byte, error)) ([]byte, error) {
	var row ConnectorValue
	err := s.db.WithContext(ctx).Take(&row, "value_key = ?", s.prefix+key).Error
	if err == nil {
		return s.open(key, row.Value)
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("connector value %s: %w", key, err)
	}
	v, err := create()
	if err != nil {
		return nil, err
	}
	sealed, err := s.secrets.Seal(v)
	if err != nil {
		return nil, fmt.Errorf("connector value %s: %w", key, err)
	}
	if err := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).
		Create(&ConnectorValue{Key: s.prefix + key, Value: sealed}).Error; err != nil {
		return nil, fmt.Errorf("connector value %s: %w", key, err)
	}
	if err := s.db.WithContext(ctx).Take(&row, "value_key = ?", s.prefix+key).Error; err != nil { // the first writer wins
		return nil, fmt.Errorf("connector value %s: %w", key, err)
	}
	return s.open(key, row.Value)
}

func (s dbConnectorStore) open(key string, stored []byte) ([]byte, error) {
	v, err := s.secrets.Open(stored)
	if err != nil {
		return nil, fmt.Errorf("connector value %s: %w", key, err)
	}
	return v, nil
}

// ConnectorValues is every connector's stored values together, for purging
// and re-sealing.
type ConnectorValues struct {
	db      *gorm.DB
	secrets *secret.Keyring
	now     func() time.Time
}

// NewConnectorValues returns the connectors' values over db, sealed with
// secrets, with the clock now.
func NewConnectorValues(db *gorm.DB, secrets *secret.Keyring, now func() time.Time) ConnectorValues {
	return ConnectorValues{db: db, secrets: secrets, now: now}
}

// Reseal seals every kept value with the current key (fedhub secrets rekey)
// and says how many it changed of how many there are.
func (v ConnectorValues) Reseal(ctx context.Context) (changed, total int, err error) {
	var rows []ConnectorValue
	if err := v.db.WithContext(ctx).Where("value IS NOT NULL").Find(&rows).Error; err != nil {
		return 0, 0, fmt.Errorf("reseal connector values: %w", err)
	}
	for _, row := range rows {
		sealed, did, err := v.secrets.Reseal(row.Value)
		if err != nil {
			return changed, len(rows), fmt.Errorf("reseal connector value %s: %w", row.Key, err)
		}
		if !did {
			continue
		}
		if err := v.db.WithContext(ctx).Model(&ConnectorValue{}).Where("value_key = ?", row.Key).
			Update("value", sealed).Error; err != nil {
			return changed, len(rows), fmt.Errorf("reseal connector value %s: %w", row.Key, err)
		}
		changed++
	}
	return changed, len(rows), nil
}

// Purge deletes the values kept until a time now past (the SAML replay
// cache: until an assertion could no longer be accepted, clock skew
// included). Values kept for good (no ExpiresAt: the SP key) stay.
func (v ConnectorValues) Purge(ctx context.Context) error {
	err := v.db.WithContext(ctx).Where("expires_at IS NOT NULL AND expires_at < ?", v.now().UTC()).Delete(&ConnectorValue{}).Error
	if err != nil {
		return fmt.Errorf("purge connector values: %w", err)
	}
	return nil
}
