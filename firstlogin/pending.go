package firstlogin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/secret"
)

// pendingTTL is how long a person has for the first-login pages.
const pendingTTL = 15 * time.Minute

// Pending is a first login waiting for the person: bound to the browser
// (BrowserHash) and to one upstream identity, single-use.
type Pending struct {
	TokenHash      string `gorm:"primaryKey;size:64"`
	BrowserHash    string `gorm:"size:64;not null"`
	Connector      string `gorm:"size:64;not null"`
	Subject        string `gorm:"size:512;not null"`
	Upstream       string `gorm:"type:text;not null"` // JSON of Upstream
	LoginRequestID string `gorm:"size:64"`
	Step           string `gorm:"size:16;not null"` // review | reauth | linked
	CandidateID    string `gorm:"size:36"`
	LinkVersion    int    // the candidate's links when the proof was asked for
	CreatedAt      time.Time
	ExpiresAt      time.Time `gorm:"index"`
	UsedAt         *time.Time
}

// Models are the tables this package owns, for store.Migrate.
func Models() []any { return []any{&Pending{}} }

var (
	errPendingNotFound = errors.New("first login not found")
	errPendingExpired  = errors.New("first login expired")
	errPendingUsed     = errors.New("first login already finished")
)

func (s *Service) savePending(ctx context.Context, p *Pending, up Upstream, browser string) (string, error) {
	data, err := json.Marshal(up)
	if err != nil {
		return "", err
	}
	token := secret.Token(32)
	now := time.Now().UTC()
	p.TokenHash, p.BrowserHash, p.Upstream = secret.Hash(token), secret.Hash(browser), string(data)
	p.Connector, p.Subject, p.CreatedAt, p.ExpiresAt = up.Connector, up.Subject, now, now.Add(pendingTTL)
	if err := s.db.WithContext(ctx).Create(p).Error; err != nil {
		return "", fmt.Errorf("save first login: %w", err)
	}
	return token, nil
}

// loadPending returns the pending first login of token for this browser.
func (s *Service) loadPending(ctx context.Context, token, browser string) (*Pending, Upstream, error) {
	if token == "" || browser == "" || len(token) > 128 {
		return nil, Upstream{}, errPendingNotFound
	}
	var p Pending
	err := s.db.WithContext(ctx).Take(&p, "token_hash = ?", secret.Hash(token)).Error
	if errors.Is(err, gorm.ErrRecordNotFound) || (err == nil && p.BrowserHash != secret.Hash(browser)) {
		return nil, Upstream{}, errPendingNotFound
	}
	if err != nil {
		return nil, Upstream{}, fmt.Errorf("load first login: %w", err)
	}
	switch {
	case p.UsedAt != nil:
		return nil, Upstream{}, errPendingUsed
	case time.Now().UTC().After(p.ExpiresAt):
		return nil, Upstream{}, errPendingExpired
	}
	var up Upstream
	if err := json.Unmarshal([]byte(p.Upstream), &up); err != nil {
		return nil, Upstream{}, fmt.Errorf("read first login: %w", err)
	}
	if up.Connector != p.Connector || up.Subject != p.Subject { // bound to this exact identity
		return nil, Upstream{}, errPendingNotFound
	}
	return &p, up, nil
}

// use marks a pending first login used, in tx: it succeeds once.
func use(tx *gorm.DB, p *Pending) error {
	res := tx.Model(&Pending{}).Where("token_hash = ? AND used_at IS NULL", p.TokenHash).Update("used_at", time.Now().UTC())
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected != 1 {
		return errPendingUsed
	}
	return nil
}
