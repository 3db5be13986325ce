package issuer

import (
	"context"
	"slices"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/store/storetest"
)

// TestUnitRevoke: each way of ending access ends exactly the sessions, grants
// and refresh tokens it should, on both databases. Alice has a session and a
// grant through corp/a, a session and a grant through the local password, a
// grant from before subjects were recorded through corp, and a grant outside
// any session; bob has one through corp/a too (a moved identity's new user).
func TestUnitRevoke(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name     string
		revoke   func(iss *Issuer) error
		sessions []string // left live
		grants   []string // left live, their refresh tokens too
	}{
		{"identity", func(iss *Issuer) error {
			return iss.db.Transaction(func(tx *gorm.DB) error { return iss.RevokeIdentity(ctx, tx, "alice", "corp", "a") })
		}, []string{"s-bob", "s-local"}, []string{"g-bob", "g-local"}},
		{"user", func(iss *Issuer) error {
			return iss.db.Transaction(func(tx *gorm.DB) error { return iss.RevokeUser(ctx, tx, "alice") })
		}, []string{"s-bob"}, []string{"g-bob"}},
		{"other sessions", func(iss *Issuer) error { return iss.EndOtherSessions(ctx, "alice", "s-local") },
			[]string{"s-bob", "s-local"}, []string{"g-bob", "g-local"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			storetest.ForEachDB(t, Models(), func(t *testing.T, db *gorm.DB) {
				now := time.Date(2030, 5, 17, 9, 30, 0, 0, time.UTC)
				iss := &Issuer{db: db, now: func() time.Time { return now }}
				later := now.Add(time.Hour)
				for _, r := range []any{
					&Session{ID: "s-corp", TokenHash: "1", UserID: "alice", IDP: "corp", Subject: "a", ExpiresAt: later},
					&Session{ID: "s-local", TokenHash: "2", UserID: "alice", IDP: "local", Subject: "alice", ExpiresAt: later},
					&Session{ID: "s-bob", TokenHash: "3", UserID: "bob", IDP: "corp", Subject: "a", ExpiresAt: later},
					&Grant{ID: "g-corp", ClientID: "c", UserID: "alice", SessionID: "s-corp", IDP: "corp", Subject: "a"},
					&Grant{ID: "g-local", ClientID: "c", UserID: "alice", SessionID: "s-local", IDP: "local", Subject: "alice"},
					&Grant{ID: "g-legacy", ClientID: "c", UserID: "alice", IDP: "corp"},
					&Grant{ID: "g-bob", ClientID: "c", UserID: "bob", SessionID: "s-bob", IDP: "corp", Subject: "a"},
				} {
					if err := db.Create(r).Error; err != nil {
						t.Fatal(err)
					}
				}
				for _, g := range []string{"g-corp", "g-local", "g-legacy", "g-bob"} {
					if err := db.Create(&RefreshToken{Hash: "rt-" + g, GrantID: g, ClientID: "c", ExpiresAt: later}).Error; err != nil {
						t.Fatal(err)
					}
				}
				if err := c.revoke(iss); err != nil {
					t.Fatal(err)
				}
				var sessions, grants, tokens []string
				db.Model(&Session{}).Where("ended_at IS NULL").Order("id").Pluck("id", &sessions)
				db.Model(&Grant{}).Where("revoked_at IS NULL").Order("id").Pluck("id", &grants)
				db.Model(&RefreshToken{}).Where("used_at IS NULL").Order("grant_id").Pluck("grant_id", &tokens)
				if !slices.Equal(sessions, c.sessions) || !slices.Equal(grants, c.grants) || !slices.Equal(tokens, c.grants) {
					t.Fatalf("live after: sessions %v, grants %v, refresh tokens of %v; want sessions %v, grants and tokens %v",
						sessions, grants, tokens, c.sessions, c.grants)
				}
			})
		})
	}
}
