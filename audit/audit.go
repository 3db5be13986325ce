package audit

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"
)

// Event types.
const (
	LoginSucceeded = "login.success"
	LoginFailed    = "login.failure"
	Logout         = "logout"
	TokenRevoked   = "token.revoked"
	GrantRevoked   = "grant.revoked"
	UserDisabled   = "user.disabled"
	UserEnabled    = "user.enabled"
	UserCreated    = "user.created"
	PasswordSet    = "user.password_set"
	KeysRotated    = "keys.rotated"

	FirstLoginDecision = "first_login.decision"
	Linked             = "link.created"
	Unlinked           = "link.removed"
)

// Event is one audit record.
type Event struct {
	ID        uint      `gorm:"primaryKey"`
	Time      time.Time `gorm:"index;not null"`
	Type      string    `gorm:"size:64;index;not null"`
	Actor     string    `gorm:"size:255"` // who did it: a user ID, a client ID, "cli"
	UserID    string    `gorm:"size:36;index"`
	Connector string    `gorm:"size:64"`
	ClientID  string    `gorm:"size:255"`
	IP        string    `gorm:"size:64"`
	Outcome   string    `gorm:"size:16;not null"` // success | failure
	Detail    string    `gorm:"size:1024"`        // never a secret
}

// Models are the tables this package owns, for store.Migrate.
func Models() []any { return []any{&Event{}} }

// Log writes events.
type Log struct {
	db  *gorm.DB
	log *slog.Logger
}

// New returns an audit log over db.
func New(db *gorm.DB, log *slog.Logger) *Log { return &Log{db: db, log: log} }

// Record writes an event. A failure to write is logged and returned: callers on
// a login path decide whether to go on.
func (l *Log) Record(ctx context.Context, e Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if e.Outcome == "" {
		e.Outcome = "success"
	}
	if err := l.db.WithContext(ctx).Create(&e).Error; err != nil {
		l.log.Error("audit event not written", "type", e.Type, "err", err)
		return fmt.Errorf("write audit event: %w", err)
	}
	return nil
}

// Recent returns the newest events, newest first.
func (l *Log) Recent(ctx context.Context, limit int) ([]Event, error) {
	var events []Event
	if err := l.db.WithContext(ctx).Order("id DESC").Limit(limit).Find(&events).Error; err != nil {
		return nil, fmt.Errorf("read audit events: %w", err)
	}
	return events, nil
}
