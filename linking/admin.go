package linking

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Query finds users for the admin pages.
type Query struct {
	Text      string // a username or email prefix, or an exact upstream subject
	Connector string // only users linked through this connector
	Offset    int
	Limit     int
}

// Search returns a page of users matching q, ordered by username, and whether
// more follow. Each part of the match is an index range scan or lookup, so it
// stays fast on large directories (see BenchmarkSearch100k).
func (s *Service) Search(ctx context.Context, q Query) ([]User, bool, error) {
	limit := min(max(q.Limit, 1), 200)
	db := s.db.WithContext(ctx)
	users := db.Model(&User{})
	// Linked through the connector: EXISTS when the connector links many users
	// (it stops at the first link of each user), an IN list when it links few
	// (the list is short, and EXISTS would scan every user to find them).
	byConnector := "EXISTS (SELECT 1 FROM links WHERE links.user_id = users.id AND links.connector = ?)"
	if text := strings.ToLower(strings.TrimSpace(q.Text)); text != "" {
		// The subject first, on its own: inside an OR, a subquery keeps
		// PostgreSQL from using the username and email indexes.
		var ids []string
		if err := db.Model(&Link{}).Where("subject = ?", strings.TrimSpace(q.Text)).Limit(100).Pluck("user_id", &ids).Error; err != nil {
			return nil, false, fmt.Errorf("search users: %w", err)
		}
		end := text + "\U0010FFFF" // the prefix range [text, text+max)
		match := db.Where("username_key >= ? AND username_key < ?", text, end).
			Or("LOWER(email) >= ? AND LOWER(email) < ?", text, end)
		if len(ids) > 0 {
			match = match.Or("id IN ?", ids)
		}
		users = users.Where(match)
	} else if q.Connector != "" {
		var n int64
		if err := db.Raw("SELECT COUNT(*) FROM (SELECT 1 FROM links WHERE connector = ? LIMIT 1000) AS few", q.Connector).Scan(&n).Error; err != nil {
			return nil, false, fmt.Errorf("search users: %w", err)
		}
		if n < 1000 {
			byConnector = "id IN (SELECT user_id FROM links WHERE connector = ?)"
		}
	}
	if q.Connector != "" {
		users = users.Where(byConnector, q.Connector)
	}
	var out []User
	if err := users.Order("username_key").Offset(max(q.Offset, 0)).Limit(limit + 1).Find(&out).Error; err != nil {
		return nil, false, fmt.Errorf("search users: %w", err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// AdminLink links an upstream identity to a user on an administrator's word
// (ErrConnectorLinked as Link).
func (s *Service) AdminLink(ctx context.Context, userID string, up Upstream) error {
	u, err := s.UserByID(ctx, userID)
	if err != nil {
		return err
	}
	return s.link(ctx, userID, u.LinkVersion, up, false)
}

// MoveLink moves a link to another user. Taking a user's last way to log in,
// or their last usable one (see Removable), needs force. A user who already
// has an identity of the link's connector gets no second one, unless several
// says the connector allows it (ErrConnectorLinked, with or without force).
func (s *Service) MoveLink(ctx context.Context, linkID uint, toUserID string, usable Usable, several Several, force bool) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var link Link
		if err := tx.Take(&link, "id = ?", linkID).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return ErrNotLinked
			}
			return err
		}
		if link.UserID == toUserID {
			return nil
		}
		if link.Connector == LocalConnector {
			return ErrLocalLink
		}
		var to User
		if err := tx.Take(&to, "id = ?", toUserID).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return ErrNotFound
			}
			return err
		}
		var links []Link
		if err := tx.Where("user_id = ?", link.UserID).Find(&links).Error; err != nil {
			return err
		}
		if !force && !Removable(links, linkID, usable) {
			return ErrLastLogin
		}
		if err := secondOf(tx, toUserID, link.Connector, link.Subject, several != nil && several(link.Connector)); err != nil {
			return err
		}
		if err := tx.Model(&Link{}).Where("id = ?", linkID).Update("user_id", toUserID).Error; err != nil {
			return err
		}
		if err := s.revokeIdentity(ctx, tx, link); err != nil { // what its old user got through it
			return err
		}
		return tx.Model(&User{}).Where("id IN ?", []string{link.UserID, toUserID}).
			Update("link_version", gorm.Expr("link_version + 1")).Error
	})
	if err != nil {
		return fmt.Errorf("move link %d: %w", linkID, err)
	}
	return nil
}

// Merge moves everything of user from — links, roles and groups — to user
// into and deletes from; one user remains. A local password of from is
// dropped: into keeps its own. Two identities of one connector on the merged
// user are refused (ErrConnectorLinked) unless several says the connector
// allows them.
func (s *Service) Merge(ctx context.Context, intoID, fromID string, several Several) error {
	if intoID == fromID {
		return errors.New("merge: a user cannot be merged into itself")
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, id := range []string{intoID, fromID} {
			if err := tx.Take(&User{}, "id = ?", id).Error; err != nil {
				if errors.Is(err, gorm.ErrRecordNotFound) {
					return ErrNotFound
				}
				return err
			}
		}
		if err := tx.Where("user_id = ? AND connector = ?", fromID, LocalConnector).Delete(&Link{}).Error; err != nil {
			return err
		}
		var moving []Link
		if err := tx.Where("user_id = ?", fromID).Find(&moving).Error; err != nil {
			return err
		}
		for _, l := range moving {
			if err := secondOf(tx, intoID, l.Connector, l.Subject, several != nil && several(l.Connector)); err != nil {
				return fmt.Errorf("%s: %w", l.Connector, err)
			}
		}
		if err := tx.Model(&Link{}).Where("user_id = ?", fromID).Update("user_id", intoID).Error; err != nil {
			return err
		}
		var roles []UserRole
		var groups []UserGroup
		if err := tx.Where("user_id = ?", fromID).Find(&roles).Error; err != nil {
			return err
		}
		if err := tx.Where("user_id = ?", fromID).Find(&groups).Error; err != nil {
			return err
		}
		for _, r := range roles {
			r.UserID = intoID
			if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&r).Error; err != nil {
				return err
			}
		}
		for _, g := range groups {
			g.UserID = intoID
			if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&g).Error; err != nil {
				return err
			}
		}
		for _, m := range []any{&UserRole{}, &UserGroup{}} {
			if err := tx.Where("user_id = ?", fromID).Delete(m).Error; err != nil {
				return err
			}
		}
		if err := s.revokeUser(ctx, tx, fromID); err != nil { // its tokens describe a user that goes away
			return err
		}
		if err := tx.Delete(&User{}, "id = ?", fromID).Error; err != nil {
			return err
		}
		return tx.Model(&User{}).Where("id = ?", intoID).Update("link_version", gorm.Expr("link_version + 1")).Error
	})
	if err != nil {
		return fmt.Errorf("merge %s into %s: %w", fromID, intoID, err)
	}
	return nil
}

// SetDisabledByID disables or re-enables a user, on an administrator's word:
// no directory sync undoes it (DisabledBy is cleared). Disabling ends their
// sessions and grants in the same transaction.
func (s *Service) SetDisabledByID(ctx context.Context, userID string, disabled bool) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&User{}).Where("id = ?", userID).Updates(map[string]any{"disabled": disabled, "disabled_by": ""})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		if !disabled {
			return nil
		}
		return s.revokeUser(ctx, tx, userID)
	})
	if err != nil {
		return fmt.Errorf("set disabled: %w", err)
	}
	return nil
}

// SetMFAPolicy sets (or, with "", clears) a user's own second-factor policy.
func (s *Service) SetMFAPolicy(ctx context.Context, userID, policy string) error {
	res := s.db.WithContext(ctx).Model(&User{}).Where("id = ?", userID).Update("mfa", policy)
	if res.Error != nil {
		return fmt.Errorf("set second-factor policy: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("set second-factor policy: %w", ErrNotFound)
	}
	return nil
}
