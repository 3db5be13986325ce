package issuer

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/secret"
)

// Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when an SSO
// session ends, every application that got tokens in it and registered a
// backchannel_logout_uri is sent a signed logout token. The notice is written
// in the transaction that ends the session, so that neither a crash nor an
// application that is down loses it; any node delivers it, retrying with
// backoff.

// LogoutNotice is a logout token still to be delivered to an application.
// Delivered or given-up notices are deleted.
type LogoutNotice struct {
	ID        string `gorm:"primaryKey;size:64"`
	ClientID  string `gorm:"size:255;not null"`
	UserID    string `gorm:"size:36;not null"`
	SessionID string `gorm:"size:64;not null"`
	// Attempts counts the deliveries started; NextAt is when the next one is
	// due. A node claims a notice by raising Attempts and moving NextAt to
	// the retry time at once, so a node that stops mid-delivery leaves it
	// due again later.
	Attempts  int
	NextAt    time.Time `gorm:"index"`
	LastError string
	CreatedAt time.Time
}

const (
	// logoutTokenTTL bounds how long a logout token may be accepted; each
	// attempt signs a fresh one.
	logoutTokenTTL = 2 * time.Minute
	// noticeAttempts and the backoff (noticeFirstRetry, doubling, at most
	// noticeMaxRetry) keep trying an application for about an hour.
	noticeAttempts   = 12
	noticeFirstRetry = 2 * time.Second
	noticeMaxRetry   = 15 * time.Minute
	// noticeTimeout bounds one delivery; noticeBatch how many are claimed at
	// once; noticePoll how often a node looks for due notices.
	noticeTimeout = 5 * time.Second
	noticeBatch   = 32
	noticePoll    = time.Second
	// backchannelEvent is the logout token's event (§2.4).
	backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"
)

// retryAfter is how long after its attempt-th start a notice is due again.
func retryAfter(attempt int) time.Duration {
	d := noticeFirstRetry
	for i := 1; i < attempt && d < noticeMaxRetry; i++ {
		d *= 2
	}
	return min(d, noticeMaxRetry)
}

// endSessions ends the live sessions that match where and writes the logout
// notices for them, in tx.
func (iss *Issuer) endSessions(tx *gorm.DB, where string, args ...any) error {
	var ids []string
	if err := tx.Model(&Session{}).Where("ended_at IS NULL").Where(where, args...).Pluck("id", &ids).Error; err != nil {
		return fmt.Errorf("find sessions to end: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	if err := tx.Model(&Session{}).Where("id IN ?", ids).Update("ended_at", iss.now()).Error; err != nil {
		return fmt.Errorf("end sessions: %w", err)
	}
	return iss.noticeLogouts(tx, ids)
}

// noticeLogouts writes a notice for every application with a back-channel
// logout URI that got tokens in one of sessions.
func (iss *Issuer) noticeLogouts(tx *gorm.DB, sessions []string) error {
	var targets []struct{ ClientID, UserID, SessionID string }
	err := tx.Table("grants").Distinct("grants.client_id", "grants.user_id", "grants.session_id").
		Joins("JOIN clients ON clients.id = grants.client_id").
		Where("grants.session_id IN ? AND clients.backchannel_logout_uri <> '' AND clients.removed_at IS NULL", sessions).
		Scan(&targets).Error
	if err != nil {
		return fmt.Errorf("find applications to notify of the logout: %w", err)
	}
	now := iss.now()
	for _, t := range targets {
		n := LogoutNotice{ID: secret.Token(16), ClientID: t.ClientID, UserID: t.UserID, SessionID: t.SessionID,
			NextAt: now, CreatedAt: now}
		if err := tx.Create(&n).Error; err != nil {
			return fmt.Errorf("write logout notice: %w", err)
		}
	}
	return nil
}

// DeliverLogouts sends due logout notices until ctx ends.
func (iss *Issuer) DeliverLogouts(ctx context.Context, client *http.Client) {
	tick := time.NewTicker(noticePoll)
	defer tick.Stop()
	for {
		if err := iss.deliverDue(ctx, client); err != nil && ctx.Err() == nil {
			iss.log.ErrorContext(ctx, "back-channel logout: delivery pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// deliverDue claims the notices that are due and delivers each once.
func (iss *Issuer) deliverDue(ctx context.Context, client *http.Client) error {
	now := iss.now()
	var due []LogoutNotice
	if err := iss.db.WithContext(ctx).Where("next_at <= ?", now).Order("next_at").Limit(noticeBatch).Find(&due).Error; err != nil {
		return fmt.Errorf("find due logout notices: %w", err)
	}
	for _, n := range due {
		claim := iss.db.WithContext(ctx).Model(&LogoutNotice{}).Where("id = ? AND attempts = ?", n.ID, n.Attempts).
			Updates(map[string]any{"attempts": n.Attempts + 1, "next_at": now.Add(retryAfter(n.Attempts + 1))})
		if claim.Error != nil {
			return fmt.Errorf("claim logout notice: %w", claim.Error)
		}
		if claim.RowsAffected == 0 {
			continue // another node has it
		}
		n.Attempts++
		if err := iss.deliver(ctx, client, n); err != nil {
			iss.log.WarnContext(ctx, "back-channel logout: delivery failed", "client", n.ClientID, "attempt", n.Attempts, "err", err)
			if err := iss.noticeFailed(ctx, n, err); err != nil {
				return err
			}
			continue
		}
		if err := iss.db.WithContext(ctx).Delete(&LogoutNotice{}, "id = ?", n.ID).Error; err != nil {
			return fmt.Errorf("delete delivered logout notice: %w", err)
		}
	}
	return nil
}

// noticeFailed records a failed attempt; after the last one the notice is
// dropped and the failure audited.
func (iss *Issuer) noticeFailed(ctx context.Context, n LogoutNotice, why error) error {
	db := iss.db.WithContext(ctx)
	if n.Attempts < noticeAttempts {
		return db.Model(&LogoutNotice{}).Where("id = ?", n.ID).Update("last_error", why.Error()).Error
	}
	if err := db.Delete(&LogoutNotice{}, "id = ?", n.ID).Error; err != nil {
		return fmt.Errorf("drop logout notice: %w", err)
	}
	return iss.audit.Record(ctx, audit.Event{Type: audit.LogoutNoticeFailed, Actor: "fedhub", UserID: n.UserID,
		ClientID: n.ClientID, Outcome: "failure",
		Detail: fmt.Sprintf("session %s: gave up after %d attempts: %v", n.SessionID, n.Attempts, why)})
}

// deliver signs a logout token for n and posts it to the application's
// back-channel logout URI; a client that no longer has one is done.
func (iss *Issuer) deliver(ctx context.Context, client *http.Client, n LogoutNotice) error {
	c, err := iss.client(ctx, n.ClientID)
	if err != nil || c.BackchannelLogoutURI == "" {
		return nil // removed, or no longer listening: nothing to tell
	}
	now := iss.now()
	token, err := iss.keys.sign(ctx, map[string]any{
		"iss": iss.url, "aud": n.ClientID, "sub": n.UserID, "sid": n.SessionID,
		"iat": now.Unix(), "exp": now.Add(logoutTokenTTL).Unix(), "jti": secret.Token(16),
		"events": map[string]any{backchannelEvent: map[string]any{}},
	}, typLogout)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, noticeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BackchannelLogoutURI,
		strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	if err != nil {
		return fmt.Errorf("logout request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("post logout token: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the application answered %s", resp.Status)
	}
	return nil
}

// NoticeClient is the HTTP client logout notices go out with: it follows no
// redirects (§2.8: the application answers at the URI it registered).
func NoticeClient() *http.Client {
	return &http.Client{Timeout: noticeTimeout, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}
