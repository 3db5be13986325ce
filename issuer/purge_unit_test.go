package issuer

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/store/storetest"
)

// TestUnitPurgeExpired: the issuer's purge deletes exactly the rows nothing
// can use any more — codes, refresh tokens, revoked access tokens, sessions,
// used client assertions, device authorizations and consent requests an hour
// past their expiry, keys no longer published, and grants with no refresh
// token left whose access tokens have all expired.
func TestUnitPurgeExpired(t *testing.T) {
	db := storetest.Open(t, "sqlite", Models()...)
	now := time.Date(2030, 5, 17, 9, 30, 0, 0, time.UTC)
	tokens := config.Tokens{AccessTTL: 10 * time.Minute}
	iss := &Issuer{db: db, tokens: tokens, now: func() time.Time { return now }}
	gone, kept := now.Add(-time.Hour-time.Second), now.Add(-time.Hour+time.Second)
	rows := []any{
		&AuthCode{Hash: "gone", GrantID: "g", ClientID: "c", RedirectURI: "r", UserID: "u", ExpiresAt: gone},
		&AuthCode{Hash: "kept", GrantID: "g", ClientID: "c", RedirectURI: "r", UserID: "u", ExpiresAt: kept},
		&RefreshToken{Hash: "gone", GrantID: "old-refreshed", ClientID: "c", ExpiresAt: gone},
		&RefreshToken{Hash: "kept", GrantID: "old-refreshable", ClientID: "c", ExpiresAt: kept},
		&RevokedAccessToken{JTI: "gone", ExpiresAt: gone},
		&RevokedAccessToken{JTI: "kept", ExpiresAt: kept},
		&Session{ID: "gone", TokenHash: "gone", UserID: "u", ExpiresAt: gone},
		&Session{ID: "kept", TokenHash: "kept", UserID: "u", ExpiresAt: kept},
		&UsedAssertion{ClientID: "c", JTI: "gone", ExpiresAt: gone},
		&UsedAssertion{ClientID: "c", JTI: "kept", ExpiresAt: kept},
		&DeviceAuthorization{ID: "gone", DeviceCodeHash: "gone", UserCodeHash: "gone", ClientID: "c", Status: "pending", ExpiresAt: gone},
		&DeviceAuthorization{ID: "kept", DeviceCodeHash: "kept", UserCodeHash: "kept", ClientID: "c", Status: "pending", ExpiresAt: kept},
		&ConsentRequest{TokenHash: "gone", BrowserHash: "b", SessionID: "s", ClientID: "c", RedirectURI: "r", ExpiresAt: gone},
		&ConsentRequest{TokenHash: "kept", BrowserHash: "b", SessionID: "s", ClientID: "c", RedirectURI: "r", ExpiresAt: kept},
		&Grant{ID: "old", ClientID: "c", CreatedAt: now.Add(-tokens.AccessTTL - time.Hour - time.Second)},
		&Grant{ID: "old-refreshed", ClientID: "c", CreatedAt: now.Add(-48 * time.Hour)}, // its refresh token goes now
		&Grant{ID: "old-refreshable", ClientID: "c", CreatedAt: now.Add(-48 * time.Hour)},
		&Grant{ID: "recent", ClientID: "c", CreatedAt: now.Add(-tokens.AccessTTL - time.Hour + time.Second)},
	}
	for _, r := range rows {
		if err := db.Create(r).Error; err != nil {
			t.Fatal(err)
		}
	}
	if err := iss.purgeExpired(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		model  any
		column string
		want   []string
	}{
		{&AuthCode{}, "hash", []string{"kept"}},
		{&RefreshToken{}, "hash", []string{"kept"}},
		{&RevokedAccessToken{}, "jti", []string{"kept"}},
		{&Session{}, "id", []string{"kept"}},
		{&UsedAssertion{}, "jti", []string{"kept"}},
		{&DeviceAuthorization{}, "id", []string{"kept"}},
		{&ConsentRequest{}, "token_hash", []string{"kept"}},
		{&Grant{}, "id", []string{"old-refreshable", "recent"}},
	} {
		var left []string
		if err := db.Model(c.model).Order(c.column).Pluck(c.column, &left).Error; err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(left, c.want) {
			t.Errorf("%T after the purge: %v, want %v", c.model, left, c.want)
		}
	}
}
