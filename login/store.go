package login

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/secret"
)

// Transactions stores sign-ins. It is the one place that finds a transaction
// by a token's hash, checks the browser and the expiry, and moves it on once.
type Transactions struct {
	db  *gorm.DB
	now func() time.Time
}

// NewTransactions returns the store over db, with the clock now.
func NewTransactions(db *gorm.DB, now func() time.Time) Transactions {
	return Transactions{db: db, now: now}
}

// WithTx is the store inside a database transaction.
func (ts Transactions) WithTx(tx *gorm.DB) Transactions { return Transactions{db: tx, now: ts.now} }

// Now is the store's clock.
func (ts Transactions) Now() time.Time { return ts.now().UTC() }

// Create stores a new transaction for the browser and returns its token.
func (ts Transactions) Create(ctx context.Context, t *Transaction, browser string) (string, error) {
	token := secret.Token(24)
	now := ts.Now()
	t.TokenHash, t.BrowserHash, t.Version = secret.Hash(token), secret.Hash(browser), 1
	t.CreatedAt, t.ExpiresAt = now, now.Add(TTL)
	if err := ts.db.WithContext(ctx).Create(t).Error; err != nil {
		return "", fmt.Errorf("save sign-in: %w", err)
	}
	return token, nil
}

// maxToken bounds what is hashed and looked up.
const maxToken = 128

// Load returns the transaction of token, only to the browser that started it.
func (ts Transactions) Load(ctx context.Context, token, browser string) (*Transaction, error) {
	if token == "" || len(token) > maxToken {
		return nil, ErrNotFound
	}
	return ts.find(ctx, browser, "token_hash = ?", secret.Hash(token))
}

// Upstream takes the transaction waiting for connector's answer with state:
// the state is cleared, so an upstream's answer is accepted once. The
// upstream's callback may come without the browser's cookies (a cross-site
// POST): the browser is checked when it continues (Continue).
func (ts Transactions) Upstream(ctx context.Context, connector, state string) (*Transaction, error) {
	if state == "" || len(state) > maxToken*2 {
		return nil, ErrNotFound
	}
	t, err := ts.find(ctx, "", "state_hash = ? AND connector = ?", secret.Hash(state), connector)
	if err != nil {
		return nil, err
	}
	t.StateHash = ""
	if err := ts.Save(ctx, t); err != nil {
		return nil, err
	}
	return t, nil
}

// Continue takes the transaction whose upstream answer the browser comes
// back for, once, in the browser that started it.
func (ts Transactions) Continue(ctx context.Context, token, browser string) (*Transaction, error) {
	if token == "" || len(token) > maxToken {
		return nil, ErrNotFound
	}
	t, err := ts.find(ctx, browser, "continue_hash = ?", secret.Hash(token))
	if err != nil {
		return nil, err
	}
	t.ContinueHash = ""
	if err := ts.Save(ctx, t); err != nil {
		return nil, err
	}
	return t, nil
}

// find loads one transaction; browser "" skips the browser check.
func (ts Transactions) find(ctx context.Context, browser, where string, args ...any) (*Transaction, error) {
	var t Transaction
	err := ts.db.WithContext(ctx).Where(where, args...).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load sign-in: %w", err)
	}
	if browser != "" && subtle.ConstantTimeCompare([]byte(t.BrowserHash), []byte(secret.Hash(browser))) != 1 {
		return nil, ErrNotFound
	}
	switch {
	case t.Step == StepDone:
		return nil, ErrDone
	case ts.Now().After(t.ExpiresAt):
		return nil, ErrExpired
	}
	return &t, nil
}

// Save writes t if nobody moved it on since it was loaded (ErrStepDone
// otherwise): every step of a sign-in happens once, on every node.
func (ts Transactions) Save(ctx context.Context, t *Transaction) error {
	loaded := t.Version
	t.Version++
	res := ts.db.WithContext(ctx).Model(&Transaction{}).
		Where("token_hash = ? AND version = ?", t.TokenHash, loaded).
		Select("*").Omit("token_hash", "created_at").Updates(t)
	if res.Error != nil {
		t.Version = loaded
		return fmt.Errorf("save sign-in: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		t.Version = loaded
		return ErrStepDone
	}
	return nil
}

// BeginUpstream records an upstream round trip of connector for t: the
// upstream gets state, the connector keeps data.
func (t *Transaction) BeginUpstream(connector, state, data string) {
	t.Connector, t.StateHash, t.UpstreamData, t.ContinueHash, t.Identity = connector, secret.Hash(state), data, "", ""
}

// Answered keeps the verified identity and returns the token the browser
// continues with.
func (t *Transaction) Answered(id Identity) (string, error) {
	if err := t.SetUpstreamIdentity(id); err != nil {
		return "", err
	}
	token := secret.Token(32)
	t.ContinueHash = secret.Hash(token)
	return token, nil
}

// Purge deletes transactions that expired before the given time.
func (ts Transactions) Purge(ctx context.Context) error {
	return ts.db.WithContext(ctx).Where("expires_at < ?", ts.Now()).Delete(&Transaction{}).Error
}
