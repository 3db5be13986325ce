package linking

import (
	"context"
	"fmt"

	"github.com/fedhub/fedhub/store"
	"github.com/fedhub/fedhub/usernames"
)

// LocalAccount returns the ID of the user who signs in locally as username
// (one with a password), or ErrNotFound: the account that a local password
// attempt counts against.
func (s *Service) LocalAccount(ctx context.Context, username string) (string, error) {
	key, err := usernames.Key(username)
	if err != nil {
		return "", ErrNotFound
	}
	var ids []string
	err = s.db.WithContext(ctx).Model(&User{}).Where("username_key = ? AND password_hash <> ''", key).
		Limit(1).Pluck("id", &ids).Error
	if err != nil {
		return "", fmt.Errorf("find local account: %w", err)
	}
	if len(ids) == 0 {
		return "", ErrNotFound
	}
	return ids[0], nil
}

// StuckUsername is a user whose username could not be given its key under
// usernames.Key: it keeps its old key, which no typed username finds any
// more (its links still sign it in).
type StuckUsername struct {
	UserID, Username string
	Reason           string
}

// RekeyUsernames gives the users whose username_key predates usernames.Key
// their key under it: "John  Smith" was "john  smith" and is "john smith".
// Only keys outside printable ASCII without spaces can differ (lower-cased
// printable ASCII is its own key), so only those are read. A username that
// usernames.Key refuses, or whose key another user has, keeps its old key
// and is reported.
func (s *Service) RekeyUsernames(ctx context.Context) ([]StuckUsername, error) {
	db := s.db.WithContext(ctx).Model(&User{})
	if s.db.Dialector.Name() == "postgres" {
		db = db.Where("username_key ~ '[^!-~]'")
	} else {
		db = db.Where("username_key GLOB '*[^!-~]*'")
	}
	var rows []User
	if err := db.Select("id", "username", "username_key").Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("rekey usernames: %w", err)
	}
	var stuck []StuckUsername
	for _, u := range rows {
		key, err := usernames.Key(u.Username)
		if err != nil {
			stuck = append(stuck, StuckUsername{UserID: u.ID, Username: u.Username, Reason: err.Error()})
			continue
		}
		if key == u.UsernameKey {
			continue
		}
		err = s.db.WithContext(ctx).Model(&User{}).Where("id = ? AND username_key = ?", u.ID, u.UsernameKey).
			Update("username_key", key).Error
		if store.IsDuplicate(err) {
			stuck = append(stuck, StuckUsername{UserID: u.ID, Username: u.Username,
				Reason: fmt.Sprintf("another user's username has the same key %q", key)})
			continue
		}
		if err != nil {
			return stuck, fmt.Errorf("rekey username of %s: %w", u.ID, err)
		}
	}
	return stuck, nil
}
