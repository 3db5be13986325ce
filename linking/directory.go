package linking

import (
	"context"
	"fmt"
	"slices"
)

// Synced is a user linked through a connector, as a directory sync sees it.
type Synced struct {
	UserID     string
	Subject    string
	Disabled   bool
	DisabledBy string
	// Profile is what the connector manages: email, name, and the roles and
	// groups it granted (sorted).
	Profile Profile
	// held are every role and group the user has, whoever granted them.
	heldRoles, heldGroups []string
}

// Current says whether SyncUser with p would change nothing: the user has
// p's email and name, every role and group p grants (a role granted locally
// first keeps its source, see grant), and none the connector granted that p
// no longer does.
func (u Synced) Current(p Profile) bool {
	return u.Profile.Email == p.Email && u.Profile.EmailVerified == p.EmailVerified && u.Profile.Name == p.Name &&
		covers(u.heldRoles, p.Roles) && covers(p.Roles, u.Profile.Roles) &&
		covers(u.heldGroups, p.Groups) && covers(p.Groups, u.Profile.Groups)
}

// covers says whether every (trimmed, non-empty) value of want is in have.
func covers(have, want []string) bool {
	for _, w := range dedupe(want) {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// SyncedUsers returns the users linked through connector by subjects, by subject.
func (s *Service) SyncedUsers(ctx context.Context, connector string, subjects []string) (map[string]Synced, error) {
	db := s.db.WithContext(ctx)
	var rows []struct {
		Subject, UserID, Email, Name, DisabledBy string
		EmailVerified, Disabled                  bool
	}
	err := db.Table("links").Select("links.subject, links.user_id, users.email, users.name, users.email_verified, users.disabled, users.disabled_by").
		Joins("JOIN users ON users.id = links.user_id").Where("links.connector = ? AND links.subject IN ?", connector, subjects).
		Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("synced users of %s: %w", connector, err)
	}
	out := make(map[string]*Synced, len(rows))
	byUser := make(map[string]*Synced, len(rows))
	ids := make([]string, 0, len(rows))
	for _, r := range rows {
		u := &Synced{UserID: r.UserID, Subject: r.Subject, Disabled: r.Disabled, DisabledBy: r.DisabledBy,
			Profile: Profile{Email: r.Email, EmailVerified: r.EmailVerified, Name: r.Name}}
		out[r.Subject], byUser[r.UserID] = u, u
		ids = append(ids, r.UserID)
	}
	if len(ids) > 0 {
		var roles []UserRole
		if err := db.Where("user_id IN ?", ids).Order("role").Find(&roles).Error; err != nil {
			return nil, fmt.Errorf("synced users of %s: %w", connector, err)
		}
		var groups []UserGroup
		if err := db.Where("user_id IN ?", ids).Order("group_name").Find(&groups).Error; err != nil {
			return nil, fmt.Errorf("synced users of %s: %w", connector, err)
		}
		for _, r := range roles {
			u := byUser[r.UserID]
			u.heldRoles = append(u.heldRoles, r.Role)
			if r.Source == connector {
				u.Profile.Roles = append(u.Profile.Roles, r.Role)
			}
		}
		for _, g := range groups {
			u := byUser[g.UserID]
			u.heldGroups = append(u.heldGroups, g.Group)
			if g.Source == connector {
				u.Profile.Groups = append(u.Profile.Groups, g.Group)
			}
		}
	}
	synced := make(map[string]Synced, len(out))
	for subject, u := range out {
		synced[subject] = *u
	}
	return synced, nil
}

// LinkedSubjects returns every user linked through connector, without profiles.
func (s *Service) LinkedSubjects(ctx context.Context, connector string) ([]Synced, error) {
	var rows []struct {
		Subject, UserID, DisabledBy string
		Disabled                    bool
	}
	err := s.db.WithContext(ctx).Table("links").Select("links.subject, links.user_id, users.disabled, users.disabled_by").
		Joins("JOIN users ON users.id = links.user_id").Where("links.connector = ?", connector).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("users linked through %s: %w", connector, err)
	}
	out := make([]Synced, len(rows))
	for i, r := range rows {
		out[i] = Synced{UserID: r.UserID, Subject: r.Subject, Disabled: r.Disabled, DisabledBy: r.DisabledBy}
	}
	return out, nil
}

// DisableFor disables a user on behalf of by, which is not an administrator
// (a directory sync: "sync:<connector>"), and records it: by re-enables only
// the users it disabled itself (EnableFor). A user already disabled stays as
// is, and changed is false.
func (s *Service) DisableFor(ctx context.Context, userID, by string) (changed bool, err error) {
	u, err := s.UserByID(ctx, userID)
	if err != nil || u.Disabled {
		return false, err
	}
	if err := s.SetDisabledByID(ctx, userID, true); err != nil {
		return false, err
	}
	if err := s.db.WithContext(ctx).Model(&User{}).Where("id = ?", userID).Update("disabled_by", by).Error; err != nil {
		return false, fmt.Errorf("disable %s for %s: %w", userID, by, err)
	}
	return true, nil
}

// EnableFor re-enables a user that by disabled (DisableFor), and no one
// since; changed is false for any other user, disabled by an administrator
// or not at all.
func (s *Service) EnableFor(ctx context.Context, userID, by string) (changed bool, err error) {
	u, err := s.UserByID(ctx, userID)
	if err != nil || !u.Disabled || u.DisabledBy != by {
		return false, err
	}
	if err := s.SetDisabledByID(ctx, userID, false); err != nil {
		return false, err
	}
	return true, nil
}
