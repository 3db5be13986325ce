package linking

import (
	"context"

	"gorm.io/gorm"
)

// Revoker ends what came through identities — SSO sessions, grants and their
// tokens — inside the caller's database transaction, so that an identity
// unlinked, moved or disabled can never be used a moment longer than its
// link. The issuer implements it; linking calls it, never the reverse.
type Revoker interface {
	// RevokeIdentity ends what user got by signing in through the upstream
	// identity (connector, subject).
	RevokeIdentity(ctx context.Context, tx *gorm.DB, userID, connector, subject string) error
	// RevokeUser ends everything of user.
	RevokeUser(ctx context.Context, tx *gorm.DB, userID string) error
}

// RevokeWith sets who ends sessions and grants when links and users change
// (the issuer, which is built after this service). Without one, nothing is
// revoked: only tests of this package run so.
func (s *Service) RevokeWith(r Revoker) { s.revoker = r }

func (s *Service) revokeIdentity(ctx context.Context, tx *gorm.DB, l Link) error {
	if s.revoker == nil {
		return nil
	}
	return s.revoker.RevokeIdentity(ctx, tx, l.UserID, l.Connector, l.Subject)
}

func (s *Service) revokeUser(ctx context.Context, tx *gorm.DB, userID string) error {
	if s.revoker == nil {
		return nil
	}
	return s.revoker.RevokeUser(ctx, tx, userID)
}
