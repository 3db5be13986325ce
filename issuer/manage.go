package issuer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/secret"
)

// What the admin UI and API manage through the issuer.

// AccessToken is a verified access token.
type AccessToken struct {
	Subject  string // a user ID, or the client ID for client credentials
	ClientID string
	Scope    string
	ForUser  bool
	Expiry   time.Time
}

// ErrInvalidToken says a bearer token is not a live access token of this issuer.
var ErrInvalidToken = errors.New("invalid access token")

// VerifyAccessToken checks an access token as userinfo does: signature, type,
// issuer, expiry, and that neither it nor its grant was revoked.
func (iss *Issuer) VerifyAccessToken(ctx context.Context, token string) (*AccessToken, error) {
	c, _, err := iss.accessToken(ctx, token)
	if errors.Is(err, errBadToken) {
		return nil, ErrInvalidToken
	}
	if err != nil {
		return nil, err
	}
	return &AccessToken{Subject: c.Subject, ClientID: c.ClientID, Scope: c.Scope, ForUser: c.GrantID != "",
		Expiry: unixTime(c.Expiry)}, nil
}

// Clients lists the clients, secrets left out by the caller's choice of fields.
func (iss *Issuer) Clients(ctx context.Context) ([]Client, error) {
	var out []Client
	if err := iss.db.WithContext(ctx).Order("id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	return out, nil
}

// RotateClientSecret gives a confidential client a new random secret and
// returns it: the only time it is ever shown. From then on the database's
// secret wins over the configuration's.
func (iss *Issuer) RotateClientSecret(ctx context.Context, clientID string) (string, error) {
	c, err := iss.client(ctx, clientID)
	if err != nil {
		return "", fmt.Errorf("rotate secret of %s: %w", clientID, err)
	}
	if c.Public {
		return "", fmt.Errorf("rotate secret of %s: a public client has no secret", clientID)
	}
	secret := secret.Token(32)
	now := iss.now()
	err = iss.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		err := tx.Model(&Client{}).Where("id = ?", clientID).
			Updates(map[string]any{"secret_hash": HashClientSecret(secret), "secret_rotated_at": now}).Error
		if err != nil {
			return err
		}
		return iss.clients.bump(ctx, tx)
	})
	iss.clients.Invalidate()
	if err != nil {
		return "", fmt.Errorf("rotate secret of %s: %w", clientID, err)
	}
	return secret, nil
}

// Sessions lists a user's live SSO sessions, newest first.
func (iss *Issuer) Sessions(ctx context.Context, userID string) ([]Session, error) {
	var out []Session
	now := iss.now()
	err := iss.db.WithContext(ctx).Where("user_id = ? AND ended_at IS NULL AND expires_at > ? AND last_seen_at > ?",
		userID, now, now.Add(-iss.tokens.SSOIdle)).Order("created_at DESC").Find(&out).Error
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}
