package throttle

import (
	"context"
	"fmt"
)

// Purge deletes the counts whose last failure is older than the reset time:
// Wait ignores them and Failed would start them again at one, so a row per
// address and account tried stays only while it can still matter.
func (l *Limiter) Purge(ctx context.Context) error {
	if err := l.db.WithContext(ctx).Where("last_at < ?", l.now().Add(-resetAfter)).Delete(&Failure{}).Error; err != nil {
		return fmt.Errorf("purge login failures: %w", err)
	}
	return nil
}
