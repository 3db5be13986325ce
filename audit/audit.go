package audit

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/requestid"
)

// Event types.
const (
	LoginSucceeded = "login.success"
	LoginFailed    = "login.failure"
	Logout         = "logout"
	// LogoutNoticeFailed: an application's back-channel logout URI did not
	// take the logout token, however often it was tried.
	LogoutNoticeFailed = "logout.notice_failed"
	TokenRevoked       = "token.revoked"
	TokenExchanged     = "token.exchanged"
	DeviceAnswered     = "device.answered"  // a person approved or refused a device's sign-in
	ConsentAnswered    = "consent.answered" // a person allowed or refused a third-party application
	ConsentRevoked     = "consent.revoked"
	GrantRevoked       = "grant.revoked"
	UserDisabled       = "user.disabled"
	UserEnabled        = "user.enabled"
	UserCreated        = "user.created"
	PasswordSet        = "user.password_set"
	KeysRotated        = "keys.rotated"
	SecretsResealed    = "secrets.resealed"

	FirstLoginDecision = "first_login.decision"
	Linked             = "link.created"
	FactorAdded        = "factor.added"
	FactorRemoved      = "factor.removed"
	FactorsReset       = "factor.reset"
	PasswordChanged    = "password.changed"
	MFAPolicySet       = "user.mfa_policy_set" // an administrator set a user's own second-factor policy
	Unlinked           = "link.removed"
	LinkMoved          = "link.moved"
	UsersMerged        = "user.merged"
	UsersImported      = "user.imported" // fedhub users import; Detail has how many, from which file
	SessionsRevoked    = "sessions.revoked"
	SecretRotated      = "client.secret_rotated"
	ClientDisabled     = "client.disabled" // removed from the configuration
	ClientEnabled      = "client.enabled"  // back in the configuration
	RoleGranted        = "user.role_granted"
	RoleRevoked        = "user.role_revoked"
	// UpstreamRefused: a re-check after login found that the upstream no
	// longer vouches for an identity; what came through it was ended.
	UpstreamRefused = "identity.upstream_refused"
	DirectorySynced = "directory.synced" // a directory sync ran; Detail has its counts
)

// Event is one audit record.
type Event struct {
	ID        uint      `gorm:"primaryKey" json:"id"`
	Time      time.Time `gorm:"index;not null" json:"time"`
	Type      string    `gorm:"size:64;index;not null" json:"type"`
	Actor     string    `gorm:"size:255" json:"actor"` // who did it: a user ID, a client ID, "cli"
	UserID    string    `gorm:"size:36;index" json:"user_id,omitempty"`
	Connector string    `gorm:"size:64;index" json:"connector,omitempty"`
	ClientID  string    `gorm:"size:255" json:"client_id,omitempty"`
	IP        string    `gorm:"size:64" json:"ip,omitempty"`
	Outcome   string    `gorm:"size:16;not null" json:"outcome"`           // success | failure
	Detail    string    `gorm:"size:1024" json:"detail,omitempty"`         // never a secret
	RequestID string    `gorm:"size:64;index" json:"request_id,omitempty"` // the request that caused it, as logged and shown on error pages
}

// Models are the tables this package owns, for store.Migrate.
func Models() []any { return []any{&Event{}} }

// Log writes events.
type Log struct {
	db      *gorm.DB
	log     *slog.Logger
	now     func() time.Time
	observe func(Event)
}

// New returns an audit log over db, with the clock now.
func New(db *gorm.DB, log *slog.Logger, now func() time.Time) *Log {
	return &Log{db: db, log: log, now: now}
}

// Observe has fn called with every event written (metrics count logins from
// them); set it before the log is used.
func (l *Log) Observe(fn func(Event)) { l.observe = fn }

// Record writes an event. A failure to write is logged and returned: callers on
// a login path decide whether to go on.
func (l *Log) Record(ctx context.Context, e Event) error {
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	if e.Outcome == "" {
		e.Outcome = "success"
	}
	if e.RequestID == "" {
		e.RequestID = requestid.From(ctx)
	}
	if err := l.db.WithContext(ctx).Create(&e).Error; err != nil {
		l.log.ErrorContext(ctx, "audit event not written", "type", e.Type, "err", err)
		return fmt.Errorf("write audit event: %w", err)
	}
	if l.observe != nil {
		l.observe(e)
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

// Filter selects audit events; zero fields match everything.
type Filter struct {
	UserID    string
	Connector string
	Type      string
	RequestID string // the ID a person quoted from an error page
	Since     time.Time
	Until     time.Time
	Offset    int
	Limit     int
}

// Find returns the events that match f, newest first, and whether more follow.
func (l *Log) Find(ctx context.Context, f Filter) ([]Event, bool, error) {
	db := l.db.WithContext(ctx).Model(&Event{})
	if f.UserID != "" {
		db = db.Where("user_id = ?", f.UserID)
	}
	if f.Connector != "" {
		db = db.Where("connector = ?", f.Connector)
	}
	if f.Type != "" {
		db = db.Where("type = ?", f.Type)
	}
	if f.RequestID != "" {
		db = db.Where("request_id = ?", f.RequestID)
	}
	if !f.Since.IsZero() {
		db = db.Where("time >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		db = db.Where("time < ?", f.Until.UTC())
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var events []Event
	if err := db.Order("id DESC").Offset(max(f.Offset, 0)).Limit(limit + 1).Find(&events).Error; err != nil {
		return nil, false, fmt.Errorf("read audit events: %w", err)
	}
	more := len(events) > limit
	if more {
		events = events[:limit]
	}
	return events, more, nil
}

// WriteCSV writes events as CSV with a header row. Fields that a spreadsheet
// would run as a formula are quoted with a leading apostrophe (CSV injection).
func WriteCSV(w io.Writer, events []Event) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"id", "time", "type", "outcome", "actor", "user_id", "connector", "client_id", "ip", "detail"}); err != nil {
		return err
	}
	for _, e := range events {
		row := []string{strconv.FormatUint(uint64(e.ID), 10), e.Time.UTC().Format(time.RFC3339), e.Type, e.Outcome,
			e.Actor, e.UserID, e.Connector, e.ClientID, e.IP, e.Detail}
		for i, v := range row {
			if v != "" && strings.ContainsAny(v[:1], "=+-@\t\r") {
				row[i] = "'" + v
			}
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// Counts returns how many events of a type each connector had since a time
// (logins per connector, for the admin page).
func (l *Log) Counts(ctx context.Context, typ string, since time.Time) (map[string]int64, error) {
	var rows []struct {
		Connector string
		N         int64
	}
	err := l.db.WithContext(ctx).Model(&Event{}).Select("connector, COUNT(*) AS n").
		Where("type = ? AND time >= ?", typ, since.UTC()).Group("connector").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("count audit events: %w", err)
	}
	out := map[string]int64{}
	for _, r := range rows {
		out[r.Connector] = r.N
	}
	return out, nil
}
