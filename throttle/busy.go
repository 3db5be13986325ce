package throttle

import (
	"context"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Busy records an attempt that was refused unchecked because the process was
// busy (too many password checks at once). It counts for the client address
// only: it tested no password, and counting it for the account would let a
// flood lock out everyone whose attempts it crowded out.
func (l *Limiter) Busy(ctx context.Context, ipKey string) error {
	now := l.now()
	err := l.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns: []clause.Column{{Name: "counter_key"}},
		DoUpdates: clause.Assignments(map[string]any{
			"count":   gorm.Expr("CASE WHEN failures.last_at < ? THEN 1 ELSE failures.count + 1 END", now.Add(-resetAfter)),
			"last_at": now,
		}),
	}).Create(&Failure{Key: ipKey, Count: 1, LastAt: now}).Error
	if err != nil {
		return fmt.Errorf("record busy login: %w", err)
	}
	return nil
}
