package login

import (
	"context"
	"crypto/subtle"
	"encoding/json"
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

// MaxPerBrowser is how many sign-ins one browser keeps: starting one more
// ends its oldest. One browser (a script that keeps its cookie) cannot grow
// the table without bound, and a person has far fewer tabs signing in at once.
const MaxPerBrowser = 20

// Create stores a new transaction for the browser and returns its token. The
// browser's oldest sign-ins beyond MaxPerBrowser end.
func (ts Transactions) Create(ctx context.Context, t *Transaction, browser string) (string, error) {
	token := secret.Token(24)
	now := ts.Now()
	t.ID, t.TokenHash, t.BrowserHash, t.Version = secret.Token(16), secret.Hash(token), secret.Hash(browser), 1
	t.CreatedAt, t.ExpiresAt = now, now.Add(TTL)
	db := ts.db.WithContext(ctx)
	if err := db.Create(t).Error; err != nil {
		return "", fmt.Errorf("save sign-in: %w", err)
	}
	// Older ones beyond the cap: usually none, or the one this pushed out.
	var ids []string
	if err := db.Model(&Transaction{}).Where("browser_hash = ?", t.BrowserHash).Order("created_at DESC, id DESC").
		Limit(MaxPerBrowser+maxTrim).Pluck("id", &ids).Error; err != nil {
		return "", fmt.Errorf("save sign-in: %w", err)
	}
	if len(ids) > MaxPerBrowser {
		if err := db.Where("id IN ?", ids[MaxPerBrowser:]).Delete(&Transaction{}).Error; err != nil {
			return "", fmt.Errorf("save sign-in: %w", err)
		}
	}
	return token, nil
}

// maxTrim is how many of a browser's oldest sign-ins one Create ends at most;
// sign-ins created at once by many nodes are trimmed by the next ones.
const maxTrim = 50

// maxToken bounds what is hashed and looked up.
const maxToken = 128

// Load returns the transaction of token, only to the browser that started it.
func (ts Transactions) Load(ctx context.Context, token, browser string) (*Transaction, error) {
	if token == "" || len(token) > maxToken || browser == "" {
		return nil, ErrNotFound
	}
	t, err := ts.take(ctx, "token_hash = ?", secret.Hash(token))
	switch {
	case err != nil:
		return nil, err
	case !sameBrowser(t, browser):
		return nil, ErrNotFound
	case t.Step == StepDone:
		return nil, ErrDone
	case ts.Now().After(t.ExpiresAt):
		return nil, ErrExpired
	}
	return t, nil
}

// Upstream takes the transaction waiting for connector's answer with state,
// once: an upstream's answer is accepted once. The upstream's callback may
// come without the browser's cookies (a cross-site POST): the browser is
// checked when it continues (Continue).
func (ts Transactions) Upstream(ctx context.Context, connector, state string) (*Transaction, error) {
	if state == "" || len(state) > maxToken*2 {
		return nil, ErrNotFound
	}
	return ts.answer(ctx, UpstreamWaiting, UpstreamAnswered, "state_hash = ? AND connector = ?", secret.Hash(state), connector)
}

// Continue takes the transaction whose upstream answer the browser comes
// back for, once, in the browser that started it.
func (ts Transactions) Continue(ctx context.Context, token, browser string) (*Transaction, error) {
	if token == "" || len(token) > maxToken || browser == "" {
		return nil, ErrNotFound
	}
	t, err := ts.answer(ctx, UpstreamAnswered, UpstreamDone, "continue_hash = ?", secret.Hash(token))
	if err != nil {
		return nil, err
	}
	if !sameBrowser(t, browser) {
		return nil, ErrNotFound
	}
	return t, nil
}

// answer moves the upstream round trip found by where from one state to
// the next: an answer used before is ErrAnswerUsed, even once the sign-in
// has ended.
func (ts Transactions) answer(ctx context.Context, from, to UpstreamStep, where string, args ...any) (*Transaction, error) {
	t, err := ts.take(ctx, where, args...)
	if err != nil {
		return nil, err
	}
	if t.Upstream != from || t.Step == StepDone {
		return nil, ErrAnswerUsed
	}
	if ts.Now().After(t.ExpiresAt) {
		return nil, ErrExpired
	}
	t.Upstream = to
	if err := ts.Save(ctx, t); err != nil {
		return nil, ErrAnswerUsed
	}
	return t, nil
}

// Load's and Continue's browser check.
func sameBrowser(t *Transaction, browser string) bool {
	return subtle.ConstantTimeCompare([]byte(t.BrowserHash), []byte(secret.Hash(browser))) == 1
}

// take loads one transaction.
func (ts Transactions) take(ctx context.Context, where string, args ...any) (*Transaction, error) {
	var t Transaction
	err := ts.db.WithContext(ctx).Where(where, args...).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load sign-in: %w", err)
	}
	return &t, nil
}

// Save writes t if nobody moved it on since it was loaded (ErrStepDone
// otherwise): every step of a sign-in happens once, on every node.
func (ts Transactions) Save(ctx context.Context, t *Transaction) error {
	loaded := t.Version
	t.Version++
	res := ts.db.WithContext(ctx).Model(&Transaction{}).
		Where("id = ? AND version = ?", t.ID, loaded).
		Select("*").Omit("id", "created_at").Updates(t)
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
	t.Connector, t.Upstream, t.StateHash, t.UpstreamData = connector, UpstreamWaiting, secret.Hash(state), data
	t.ContinueHash, t.Identity = "", ""
}

// Rekey gives t a new token, which the browser uses from now on: after an
// upstream round trip the dispatcher knows only the continue token.
func (t *Transaction) Rekey() string {
	token := secret.Token(24)
	t.TokenHash = secret.Hash(token)
	return token
}

// Answered keeps the verified identity and returns the token the browser
// continues with.
func (t *Transaction) Answered(id Identity) (string, error) {
	b, err := json.Marshal(id)
	if err != nil {
		return "", fmt.Errorf("keep upstream identity: %w", err)
	}
	t.Identity = string(b)
	token := secret.Token(32)
	t.ContinueHash = secret.Hash(token)
	return token, nil
}

// Purge deletes transactions that expired before the given time.
func (ts Transactions) Purge(ctx context.Context) error {
	return ts.db.WithContext(ctx).Where("expires_at < ?", ts.Now()).Delete(&Transaction{}).Error
}
