package issuer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/internal/jsonappend"
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

// size is about the length of r's JSON: enough that appendJSON allocates once.
func (r *tokenResponse) size() int {
	return len(r.AccessToken) + len(r.RefreshToken) + len(r.IDToken) + len(r.Scope) + len(r.IssuedTokenType) + 128
}

// appendJSON appends r as json.Marshal would, its fields in order: the
// token endpoint's answer on every grant, built without reflection.
func (r *tokenResponse) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"access_token":`...)
	dst = jsonappend.String(dst, r.AccessToken)
	dst = append(dst, `,"token_type":`...)
	dst = jsonappend.String(dst, r.TokenType)
	dst = append(dst, `,"expires_in":`...)
	dst = strconv.AppendInt(dst, r.ExpiresIn, 10)
	for _, f := range [...]struct{ name, value string }{{"refresh_token", r.RefreshToken}, {"id_token", r.IDToken},
		{"scope", r.Scope}, {"issued_token_type", r.IssuedTokenType}} {
		if f.value != "" { // omitempty
			dst = append(dst, `,"`...)
			dst = append(dst, f.name...)
			dst = append(dst, `":`...)
			dst = jsonappend.String(dst, f.value)
		}
	}
	return append(dst, '}')
}

// mint issues the tokens of a grant: an access token; a refresh token when
// withRefresh, in place of the one whose hash is spends unless that is ""
// (errSpent when it was spent already: nothing is issued then); an ID token
// when the scope has openid. u is nil for client credentials.
func (iss *Issuer) mint(ctx context.Context, g *Grant, u *linking.User, nonce, scope string, withRefresh bool, spends string) (*tokenResponse, error) {
	now := iss.now()
	cs := iss.scopes.Load().of(g.ClientID)
	access, err := iss.keys.sign(ctx, iss.accessClaims(cs, g, u, scope, now), typAccess)
	if err != nil {
		return nil, err
	}
	resp := &tokenResponse{AccessToken: access, TokenType: "Bearer",
		ExpiresIn: int64(iss.tokens.AccessTTL.Seconds()), Scope: scope}
	if u != nil && hasScope(scope, "openid") {
		if resp.IDToken, err = iss.idToken(ctx, cs, g, u, nonce, scope, access, now); err != nil {
			return nil, err
		}
	}
	if withRefresh { // last: a rotation spends the old token only for tokens that exist
		refresh := secret.Token(32)
		row := &RefreshToken{Hash: secret.Hash(refresh), GrantID: g.ID, ClientID: g.ClientID,
			Scope: scope, ExpiresAt: now.Add(iss.tokens.RefreshTTL)}
		if spends == "" {
			err = iss.db.WithContext(ctx).Create(row).Error
		} else {
			err = iss.rotate(ctx, spends, row, now)
		}
		if err != nil {
			return nil, fmt.Errorf("save refresh token: %w", err)
		}
		resp.RefreshToken = refresh
	}
	return resp, nil
}

// accessClaims are the claims of an access token of grant g for u (nil for
// client credentials), for the client of cs.
func (iss *Issuer) accessClaims(cs *clientScopes, g *Grant, u *linking.User, scope string, now time.Time) map[string]any {
	at := map[string]any{
		"iss": iss.url, "aud": cs.audience(scope, g.Resource, toAccessToken), "client_id": cs.id, "iat": now.Unix(),
		"exp": now.Add(iss.tokens.AccessTTL).Unix(), "jti": secret.Token(16),
	}
	if scope != "" {
		at["scope"] = scope
	}
	if u == nil {
		at["sub"] = g.ClientID
		cs.addClaims(at, nil, scope, toAccessToken)
		return at
	}
	at["sub"] = u.ID
	at["gid"] = g.ID
	at["auth_time"] = g.AuthTime.Unix()
	at["idp"] = g.IDP
	if g.SessionID != "" {
		at["sid"] = g.SessionID
	}
	cs.userClaims(at, u, scope, "", toAccessToken)
	return at
}

// errSpent says that a refresh token was spent already.
var errSpent = errors.New("the refresh token was spent already")

// refreshRow is a refresh token with its grant and the grant's user, as
// refreshSelect reads them.
type refreshRow struct {
	Refresh         RefreshToken `gorm:"embedded;embeddedPrefix:rt_"`
	Grant           Grant        `gorm:"embedded;embeddedPrefix:g_"`
	linking.UserRow `gorm:"embedded"`
}

// refreshSelect is the statement that reads a refreshRow by the token's
// hash: one statement, because a refresh reads all three. The columns of
// the token and the grant, prefixed (the user's are not), come from their
// models.
func refreshSelect(db *gorm.DB) (string, error) {
	var cols []string
	for _, t := range []struct {
		model         any
		table, prefix string
	}{{&RefreshToken{}, "r", "rt_"}, {&Grant{}, "grants", "g_"}} {
		stmt := &gorm.Statement{DB: db}
		if err := stmt.Parse(t.model); err != nil {
			return "", fmt.Errorf("refresh token statement: %w", err)
		}
		for _, c := range stmt.Schema.DBNames {
			cols = append(cols, t.table+"."+c+" AS "+t.prefix+c)
		}
	}
	return "SELECT " + strings.Join(cols, ", ") + ", " + linking.UserSelect(db) + `
		FROM refresh_tokens r LEFT JOIN grants ON grants.id = r.grant_id LEFT JOIN users ON users.id = grants.user_id
		WHERE r.hash = ` + firstParam[db.Dialector.Name()], nil
}

// firstParam is each dialect's first bind parameter: the refresh
// statements go to database/sql as they are, without gorm's builder, which
// copies a statement byte by byte on every call to put its parameters in.
var firstParam = map[string]string{"postgres": "$1", "sqlite": "?1"}

// refreshToken reads a refresh token by its hash with its grant and the
// grant's user: nil for a token that does not exist; a grant or user that
// does not is the zero value (an empty ID).
func (iss *Issuer) refreshToken(ctx context.Context, hash string) (*refreshRow, error) {
	rows, err := iss.db.ConnPool.QueryContext(ctx, iss.refreshSQL, hash)
	if err != nil {
		return nil, fmt.Errorf("load refresh token: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("load refresh token: %w", err)
		}
		return nil, nil
	}
	var row refreshRow
	if err := iss.db.WithContext(ctx).ScanRows(rows, &row); err != nil {
		return nil, fmt.Errorf("load refresh token: %w", err)
	}
	return &row, nil
}

// rotateSQL spends a refresh token and saves the next in its place, in one
// statement, per dialect. Both bind now, the spent hash, then the next
// token's hash, grant, client, scope and expiry (?NNN is SQLite's numbered
// parameter).
var rotateSQL = map[string]string{
	"postgres": `WITH spent AS (UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL RETURNING hash)
		INSERT INTO refresh_tokens (hash, grant_id, client_id, scope, expires_at) SELECT $3, $4, $5, $6, $7 FROM spent`,
	// SQLite has no UPDATE in a WITH: this inserts next and the spent token
	// again, whose conflict sets its used_at, both only while it is unspent.
	// A write statement holds SQLite's one write lock from its start: no
	// other can spend the token between this one's read and its writes.
	"sqlite": `INSERT INTO refresh_tokens (hash, grant_id, client_id, scope, expires_at, used_at)
		SELECT ?3, ?4, ?5, ?6, ?7, NULL FROM refresh_tokens WHERE hash = ?2 AND used_at IS NULL
		UNION ALL SELECT hash, grant_id, client_id, scope, expires_at, ?1 FROM refresh_tokens WHERE hash = ?2 AND used_at IS NULL
		ON CONFLICT (hash) DO UPDATE SET used_at = excluded.used_at`,
}

// rotate spends the refresh token whose hash is spent and saves next in its
// place, in one statement: errSpent, and nothing saved, when a concurrent
// refresh (or a revocation) spent it first.
func (iss *Issuer) rotate(ctx context.Context, spent string, next *RefreshToken, now time.Time) error {
	res, err := iss.db.ConnPool.ExecContext(ctx, rotateSQL[iss.db.Dialector.Name()],
		now, spent, next.Hash, next.GrantID, next.ClientID, next.Scope, next.ExpiresAt)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return cmp.Or(err, errSpent)
	}
	return nil
}

func (iss *Issuer) idToken(ctx context.Context, cs *clientScopes, g *Grant, u *linking.User, nonce, scope, accessToken string, now time.Time) (string, error) {
	claims := map[string]any{
		"iss": iss.url, "sub": u.ID, "aud": cs.audience(scope, "", toIDToken), "azp": g.ClientID,
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
	cs.userClaims(claims, u, scope, g.Claims, toIDToken)
	return iss.keys.sign(ctx, claims, typID)
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
