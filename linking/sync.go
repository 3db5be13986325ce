package linking

import (
	"context"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Profile is the user data an upstream keeps in sync.
type Profile struct {
	Email         string
	EmailVerified bool
	Name          string
	Roles         []string
	Groups        []string
}

// SyncUser overwrites what a connector manages — email, name, and the roles
// and groups that connector granted — leaving locally granted ones alone.
func (s *Service) SyncUser(ctx context.Context, userID, connector string, p Profile) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		err := tx.Model(&User{}).Where("id = ?", userID).Updates(map[string]any{
			"email": p.Email, "email_verified": p.EmailVerified, "name": p.Name, "updated_at": now(),
		}).Error
		if err != nil {
			return err
		}
		if err := tx.Where("user_id = ? AND source = ?", userID, connector).Delete(&UserRole{}).Error; err != nil {
			return err
		}
		if err := tx.Where("user_id = ? AND source = ?", userID, connector).Delete(&UserGroup{}).Error; err != nil {
			return err
		}
		return grant(tx, userID, connector, p.Roles, p.Groups)
	})
	if err != nil {
		return fmt.Errorf("sync user %s from %s: %w", userID, connector, err)
	}
	return nil
}

// grant adds roles and groups; ones the user already has keep their source.
func grant(tx *gorm.DB, userID, source string, roles, groups []string) error {
	for _, r := range dedupe(roles) {
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&UserRole{UserID: userID, Role: r, Source: source}).Error; err != nil {
			return err
		}
	}
	for _, g := range dedupe(groups) {
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&UserGroup{UserID: userID, Group: g, Source: source}).Error; err != nil {
			return err
		}
	}
	return nil
}
