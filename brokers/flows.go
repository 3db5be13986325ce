package brokers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/secret"
)

// flowTTL is how long an upstream login may take.
const flowTTL = 15 * time.Minute

// FlowRecord is an upstream login in progress. The browser holds a flow cookie
// whose hash is BrowserHash; the upstream holds State. After the upstream's
// answer is verified, the identity waits here for the browser to come back
// with ContinueHash's token on a same-site request that carries the cookie:
// the SAML ACS is a cross-site POST that carries no SameSite=Lax cookie.
type FlowRecord struct {
	StateHash    string `gorm:"primaryKey;size:64"`
	Connector    string `gorm:"size:64;not null"`
	Purpose      string `gorm:"size:128;not null"` // "login:<request>", "reauth:<first login>" or "link:<user>"
	ReturnTo     string `gorm:"size:2048"`         // link: where to send the browser afterwards
	BrowserHash  string `gorm:"size:64;not null"`
	Data         string `gorm:"size:4096"`
	Identity     string `gorm:"type:text"` // JSON, once verified
	ContinueHash string `gorm:"size:64;index"`
	CreatedAt    time.Time
	ExpiresAt    time.Time `gorm:"index"`
	FinishedAt   *time.Time
	ContinuedAt  *time.Time
}

// ConnectorValue is a row of the ConnectorStore.
type ConnectorValue struct {
	Key       string `gorm:"primaryKey;size:255;column:value_key"`
	Value     []byte
	ExpiresAt *time.Time `gorm:"index"`
}

// Models are the tables this package owns, for store.Migrate.
func Models() []any { return []any{&FlowRecord{}, &ConnectorValue{}} }

var (
	errFlowNotFound = errors.New("upstream login not found")
	errFlowExpired  = errors.New("upstream login expired")
	errFlowUsed     = errors.New("upstream login already used")
)

// flows stores FlowRecords.
type flows struct{ db *gorm.DB }

func (f flows) create(ctx context.Context, connector, purpose, returnTo, browser string, flow *Flow) error {
	data, err := json.Marshal(flow.Data)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	rec := FlowRecord{StateHash: secret.Hash(flow.State), Connector: connector, Purpose: purpose, ReturnTo: returnTo,
		BrowserHash: secret.Hash(browser), Data: string(data), CreatedAt: now, ExpiresAt: now.Add(flowTTL)}
	if err := f.db.WithContext(ctx).Create(&rec).Error; err != nil {
		return fmt.Errorf("save upstream login: %w", err)
	}
	return nil
}

// finishing loads the flow of state for the connector's Finish, marking it
// used: the upstream's answer is accepted once.
func (f flows) finishing(ctx context.Context, connector, state string) (*FlowRecord, *Flow, error) {
	if state == "" || len(state) > 256 {
		return nil, nil, errFlowNotFound
	}
	var rec FlowRecord
	err := f.db.WithContext(ctx).Take(&rec, "state_hash = ? AND connector = ?", secret.Hash(state), connector).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil, errFlowNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load upstream login: %w", err)
	}
	now := time.Now().UTC()
	if now.After(rec.ExpiresAt) {
		return nil, nil, errFlowExpired
	}
	res := f.db.WithContext(ctx).Model(&FlowRecord{}).Where("state_hash = ? AND finished_at IS NULL", rec.StateHash).
		Update("finished_at", now)
	if res.Error != nil {
		return nil, nil, fmt.Errorf("use upstream login: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		return nil, nil, errFlowUsed
	}
	flow := &Flow{State: state, Data: map[string]string{}}
	if err := json.Unmarshal([]byte(rec.Data), &flow.Data); err != nil {
		return nil, nil, fmt.Errorf("read upstream login: %w", err)
	}
	return &rec, flow, nil
}

// verified stores the verified identity and returns the token the browser
// continues with.
func (f flows) verified(ctx context.Context, rec *FlowRecord, id login.Identity) (string, error) {
	data, err := json.Marshal(id)
	if err != nil {
		return "", err
	}
	token := secret.Token(32)
	err = f.db.WithContext(ctx).Model(&FlowRecord{}).Where("state_hash = ?", rec.StateHash).
		Updates(map[string]any{"identity": string(data), "continue_hash": secret.Hash(token)}).Error
	if err != nil {
		return "", fmt.Errorf("save upstream identity: %w", err)
	}
	return token, nil
}

// continuing takes the verified identity, once, for the browser that started the flow.
func (f flows) continuing(ctx context.Context, token, browser string) (*FlowRecord, login.Identity, error) {
	if token == "" || browser == "" || len(token) > 256 {
		return nil, login.Identity{}, errFlowNotFound
	}
	var rec FlowRecord
	err := f.db.WithContext(ctx).Take(&rec, "continue_hash = ?", secret.Hash(token)).Error
	if errors.Is(err, gorm.ErrRecordNotFound) || (err == nil && rec.BrowserHash != secret.Hash(browser)) {
		return nil, login.Identity{}, errFlowNotFound
	}
	if err != nil {
		return nil, login.Identity{}, fmt.Errorf("load upstream login: %w", err)
	}
	now := time.Now().UTC()
	if now.After(rec.ExpiresAt) {
		return nil, login.Identity{}, errFlowExpired
	}
	res := f.db.WithContext(ctx).Model(&FlowRecord{}).Where("state_hash = ? AND continued_at IS NULL", rec.StateHash).
		Update("continued_at", now)
	if res.Error != nil {
		return nil, login.Identity{}, fmt.Errorf("use upstream login: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		return nil, login.Identity{}, errFlowUsed
	}
	var id login.Identity
	if err := json.Unmarshal([]byte(rec.Identity), &id); err != nil {
		return nil, login.Identity{}, fmt.Errorf("read upstream identity: %w", err)
	}
	return &rec, id, nil
}

// dbConnectorStore implements ConnectorStore over the database.
type dbConnectorStore struct {
	db     *gorm.DB
	prefix string // one key space per connector
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
		return row.Value, nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("connector value %s: %w", key, err)
	}
	v, err := create()
	if err != nil {
		return nil, err
	}
	if err := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).
		Create(&ConnectorValue{Key: s.prefix + key, Value: v}).Error; err != nil {
		return nil, fmt.Errorf("connector value %s: %w", key, err)
	}
	if err := s.db.WithContext(ctx).Take(&row, "value_key = ?", s.prefix+key).Error; err != nil { // the first writer wins
		return nil, fmt.Errorf("connector value %s: %w", key, err)
	}
	return row.Value, nil
}
