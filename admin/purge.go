package admin

import (
	"context"
	"fmt"
	"time"
)

// Purge deletes the admin sessions that expired: nothing lets them in any
// more (requireAdminPage checks the expiry).
func (s *Service) Purge(ctx context.Context) error {
	if err := s.db.WithContext(ctx).Where("expires_at < ?", time.Now().UTC()).Delete(&Session{}).Error; err != nil {
		return fmt.Errorf("purge admin sessions: %w", err)
	}
	return nil
}
