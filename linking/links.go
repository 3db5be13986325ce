package linking

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/store"
)

// Upstream is what linking needs to know of an upstream identity.
type Upstream struct {
	Connector string
	Subject   string // the upstream's stable subject, never an email
	Username  string
	Email     string
}

// LinkedUser returns the user an upstream identity is linked to and records the
// login on the link. It returns ErrNotLinked when there is no link.
func (s *Service) LinkedUser(ctx context.Context, connector, subject string) (*User, error) {
	var link Link
	err := s.db.WithContext(ctx).Where("connector = ? AND subject = ?", connector, subject).Take(&link).Error
	if store.IsNotFound(err) {
		return nil, ErrNotLinked
	}
	if err != nil {
		return nil, fmt.Errorf("find link: %w", err)
	}
	t := now()
	if err := s.db.WithContext(ctx).Model(&Link{}).Where("id = ?", link.ID).Update("last_login_at", t).Error; err != nil {
		return nil, fmt.Errorf("touch link: %w", err)
	}
	return s.UserByID(ctx, link.UserID)
}

// CreateLinkedUser creates a user from an upstream identity and links them, in
// one transaction. If the identity got linked meanwhile (a concurrent first
// login), it returns the user it is linked to instead: never two users.
func (s *Service) CreateLinkedUser(ctx context.Context, up Upstream, nu NewUser) (*User, error) {
	var created *User
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		txs := &Service{db: tx, dummyHash: s.dummyHash}
		u, err := txs.CreateUser(ctx, nu)
		if err != nil {
			return err
		}
		t := now()
		link := Link{UserID: u.ID, Connector: up.Connector, Subject: up.Subject,
			Username: up.Username, Email: up.Email, LastLoginAt: &t}
		if err := tx.Create(&link).Error; err != nil {
			return err
		}
		created = u
		return nil
	})
	if store.IsDuplicate(err) || errors.Is(err, ErrUsernameTaken) {
		// A concurrent first login of the same identity may have won, on the
		// link or on the username: then its user is the answer.
		if u, lerr := s.LinkedUser(ctx, up.Connector, up.Subject); lerr == nil {
			return u, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create linked user: %w", err)
	}
	return created, nil
}

// Links returns the upstream identities linked to a user.
func (s *Service) Links(ctx context.Context, userID string) ([]Link, error) {
	var links []Link
	if err := s.db.WithContext(ctx).Where("user_id = ?", userID).Order("id").Find(&links).Error; err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	return links, nil
}
