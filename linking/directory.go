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
	out := make(map[string]Synced, len(rows))
	bySubject := make(map[string]string, len(rows)) // user → subject
	ids := make([]string, 0, len(rows))
	for _, r := range rows {
		out[r.Subject] = Synced{UserID: r.UserID, Subject: r.Subject, Disabled: r.Disabled, DisabledBy: r.DisabledBy,
			Profile: Profile{Email: r.Email, EmailVerified: r.EmailVerified, Name: r.Name}}
		bySubject[r.UserID] = r.Subject
		ids = append(ids, r.UserID)
	}
	if len(ids) == 0 {
		return out, nil
	}
	var roles []UserRole
	if err := db.Where("user_id IN ? AND source = ?", ids, connector).Order("role").Find(&roles).Error; err != nil {
		return nil, fmt.Errorf("synced users of %s: %w", connector, err)
	}
	var groups []UserGroup
	if err := db.Where("user_id IN ? AND source = ?", ids, connector).Order("group_name").Find(&groups).Error; err != nil {
		return nil, fmt.Errorf("synced users of %s: %w", connector, err)
	}
	for _, r := range roles {
		u := out[bySubject[r.UserID]]
		u.Profile.Roles = append(u.Profile.Roles, r.Role)
		out[u.Subject] = u
	}
	for _, g := range groups {
		u := out[bySubject[g.UserID]]
		u.Profile.Groups = append(u.Profile.Groups, g.Group)
		out[u.Subject] = u
	}
	return out, nil
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

// Same says whether a user already has profile p: syncing it would change nothing.
func (p Profile) Same(q Profile) bool {
	return p.Email == q.Email && p.EmailVerified == q.EmailVerified && p.Name == q.Name &&
		slices.Equal(sortedSet(p.Roles), sortedSet(q.Roles)) && slices.Equal(sortedSet(p.Groups), sortedSet(q.Groups))
}

func sortedSet(list []string) []string {
	out := dedupe(list)
	slices.Sort(out)
	return out
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
