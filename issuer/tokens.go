package issuer

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm/clause"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/store"
)

// tokenResponse is the token endpoint's success answer (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
	// IssuedTokenType answers a token exchange (RFC 8693 §2.2.1).
	IssuedTokenType string `json:"issued_token_type,omitempty"`
}

// mint issues the tokens of a grant: an access token; a refresh token when
// withRefresh; an ID token when the scope has openid. u is nil for client credentials.
func (iss *Issuer) mint(ctx context.Context, g *Grant, u *linking.User, nonce, scope string, withRefresh bool) (*tokenResponse, error) {
	iss.keys.fresh(ctx) // never sign with a key revoked on another node
	now := iss.now()
	access, err := iss.keys.sign(iss.accessClaims(g, u, scope, now), typAccess)
	if err != nil {
		return nil, err
	}
	resp := &tokenResponse{AccessToken: access, TokenType: "Bearer",
		ExpiresIn: int64(iss.tokens.AccessTTL.Seconds()), Scope: scope}
	if withRefresh {
		refresh := secret.Token(32)
		row := RefreshToken{Hash: secret.Hash(refresh), GrantID: g.ID, ClientID: g.ClientID,
			Scope: scope, ExpiresAt: now.Add(iss.tokens.RefreshTTL)}
		if err := iss.db.WithContext(ctx).Create(&row).Error; err != nil {
			return nil, fmt.Errorf("save refresh token: %w", err)
		}
		resp.RefreshToken = refresh
	}
	if u != nil && hasScope(scope, "openid") {
		if resp.IDToken, err = iss.idToken(g, u, nonce, scope, access, now); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// accessClaims are the claims of an access token of grant g for u (nil for
// client credentials), for its client.
func (iss *Issuer) accessClaims(g *Grant, u *linking.User, scope string, now time.Time) map[string]any {
	at := map[string]any{
		"iss": iss.url, "aud": g.ClientID, "client_id": g.ClientID, "iat": now.Unix(),
		"exp": now.Add(iss.tokens.AccessTTL).Unix(), "jti": secret.Token(16),
	}
	if scope != "" {
		at["scope"] = scope
	}
	if u == nil {
		at["sub"] = g.ClientID
		return at
	}
	at["sub"] = u.ID
	at["gid"] = g.ID
	at["auth_time"] = g.AuthTime.Unix()
	at["idp"] = g.IDP
	if g.SessionID != "" {
		at["sid"] = g.SessionID
	}
	for k, v := range userClaims(u, scope, "", "") {
		at[k] = v
	}
	return at
}

func (iss *Issuer) idToken(g *Grant, u *linking.User, nonce, scope, accessToken string, now time.Time) (string, error) {
	claims := map[string]any{
		"iss": iss.url, "sub": u.ID, "aud": []string{g.ClientID}, "azp": g.ClientID,
		"iat": now.Unix(), "exp": now.Add(iss.tokens.IDTTL).Unix(), "auth_time": g.AuthTime.Unix(),
		"at_hash": halfHash(accessToken, iss.keys.current().alg), "idp": g.IDP,
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	if g.SessionID != "" {
		claims["sid"] = g.SessionID
	}
	if g.AMR != "" {
		claims["amr"] = strings.Fields(g.AMR)
	}
	if g.ACR != "" {
		claims["acr"] = g.ACR
	}
	for k, v := range userClaims(u, scope, g.Claims, "id_token") {
		claims[k] = v
	}
	return iss.keys.sign(claims, typID)
}

// revokeGrant revokes a grant and with it every token of its family. It also
// works for a grant that does not exist yet (a code reused before its first
// redemption finished): the revoked row then makes that redemption fail.
func (iss *Issuer) revokeGrant(ctx context.Context, grantID, clientID string) error {
	now := iss.now()
	row := Grant{ID: grantID, ClientID: clientID, RevokedAt: &now, CreatedAt: now}
	err := iss.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "id"}},
		DoUpdates: clause.Assignments(map[string]any{"revoked_at": now}),
	}).Create(&row).Error
	if err != nil {
		return fmt.Errorf("revoke grant: %w", err)
	}
	if err := iss.db.WithContext(ctx).Model(&RefreshToken{}).Where("grant_id = ? AND used_at IS NULL", grantID).
		Update("used_at", now).Error; err != nil {
		return fmt.Errorf("revoke grant: %w", err)
	}
	return iss.audit.Record(ctx, audit.Event{Type: audit.GrantRevoked, Actor: clientID, ClientID: clientID, Detail: "grant " + grantID})
}

// grantActive reports whether a grant exists and is not revoked.
func (iss *Issuer) grantActive(ctx context.Context, id string) (*Grant, bool, error) {
	var g Grant
	err := iss.db.WithContext(ctx).Take(&g, "id = ?", id).Error
	if err != nil {
		if store.IsNotFound(err) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("load grant: %w", err)
	}
	return &g, g.RevokedAt == nil, nil
}
