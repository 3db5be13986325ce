package linking

import (
	"context"
	"fmt"
	"strings"

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
			"email": p.Email, "email_verified": p.EmailVerified, "name": p.Name, "updated_at": s.now(),
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

// GrantRole gives a user a role locally (not managed by any connector).
func (s *Service) GrantRole(ctx context.Context, userID, role string) error {
	role = strings.TrimSpace(role)
	if role == "" {
		return fmt.Errorf("grant role: the role is empty")
	}
	if err := grant(s.db.WithContext(ctx), userID, "", []string{role}, nil); err != nil {
		return fmt.Errorf("grant role %s: %w", role, err)
	}
	return nil
}

// RevokeRole takes a role away, whoever granted it.
func (s *Service) RevokeRole(ctx context.Context, userID, role string) error {
	res := s.db.WithContext(ctx).Where("user_id = ? AND role = ?", userID, role).Delete(&UserRole{})
	if res.Error != nil {
		return fmt.Errorf("revoke role %s: %w", role, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("revoke role %s: the user does not have it", role)
	}
	return nil
}

// JoinGroup puts a user in a group locally (not managed by any connector).
func (s *Service) JoinGroup(ctx context.Context, userID, group string) error {
	group = strings.TrimSpace(group)
	if group == "" {
		return fmt.Errorf("join group: the group is empty")
	}
	if err := grant(s.db.WithContext(ctx), userID, "", nil, []string{group}); err != nil {
		return fmt.Errorf("join group %s: %w", group, err)
	}
	return nil
}

// LeaveGroup takes a user out of a group, whoever put them in.
func (s *Service) LeaveGroup(ctx context.Context, userID, group string) error {
	res := s.db.WithContext(ctx).Where("user_id = ? AND group_name = ?", userID, group).Delete(&UserGroup{})
	if res.Error != nil {
		return fmt.Errorf("leave group %s: %w", group, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("leave group %s: %w", group, ErrNotMember)
	}
	return nil
}
