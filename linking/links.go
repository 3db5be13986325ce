package linking

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/store"
)

// Upstream is what linking needs to know of an upstream identity.
type Upstream struct {
	Connector string
	Subject   string // the upstream's stable subject, never an email
	Username  string
	Email     string
	// Several says its connector lets one user link several of its
	// identities (multiple_identities); by default a user has at most one.
	Several bool
}

// ErrConnectorLinked says a user already has another identity of the
// connector, which allows one per user: a second one would make another
// person's logins there come out as this user.
var ErrConnectorLinked = errors.New("the user already has an identity of this connector")

// Several says whether a connector lets one user link several of its
// identities. Linking does not know connectors: the callers pass it in.
type Several func(connector string) bool

// secondOf refuses a link of (connector, subject) to a user who already has
// another identity of that connector, unless several are allowed.
func secondOf(tx *gorm.DB, userID, connector, subject string, several bool) error {
	if several {
		return nil
	}
	var n int64
	if err := tx.Model(&Link{}).Where("user_id = ? AND connector = ? AND subject <> ?", userID, connector, subject).
		Count(&n).Error; err != nil {
		return err
	}
	if n > 0 {
		return ErrConnectorLinked
	}
	return nil
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
	t := s.now()
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
		txs := s.WithTx(tx)
		u, err := txs.CreateUser(ctx, nu)
		if err != nil {
			return err
		}
		t := s.now()
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

// UsersByVerifiedEmail returns the users with this email, case-insensitively,
// whose email is verified. An unverified email is only what someone typed: it
// never makes its account a candidate for another person's identity.
func (s *Service) UsersByVerifiedEmail(ctx context.Context, email string) ([]User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return nil, nil
	}
	var users []User
	if err := s.db.WithContext(ctx).Where("LOWER(email) = ? AND email_verified = ?", email, true).Limit(10).Find(&users).Error; err != nil {
		return nil, fmt.Errorf("find users by email: %w", err)
	}
	return users, nil
}

// Link attaches an upstream identity to a user whose links are still at
// version (what the caller saw when it asked for proof of control). It fails
// with ErrAlreadyLinked when the identity belongs to someone, with
// ErrConnectorLinked when the user has another identity of its connector
// (unless up.Several), and with ErrLinksChanged when the user's links changed
// in between.
func (s *Service) Link(ctx context.Context, userID string, version int, up Upstream) error {
	return s.link(ctx, userID, version, up, true)
}

// link links; loggedIn says the person is logging in through the identity right now.
func (s *Service) link(ctx context.Context, userID string, version int, up Upstream, loggedIn bool) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&User{}).Where("id = ? AND link_version = ?", userID, version).
			Update("link_version", gorm.Expr("link_version + 1"))
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return ErrLinksChanged
		}
		// After the version's update, which serialises the user's links.
		if err := secondOf(tx, userID, up.Connector, up.Subject, up.Several); err != nil {
			return err
		}
		link := Link{UserID: userID, Connector: up.Connector, Subject: up.Subject, Username: up.Username, Email: up.Email}
		if loggedIn {
			t := s.now()
			link.LastLoginAt = &t
		}
		if err := tx.Create(&link).Error; err != nil {
			if store.IsDuplicate(err) {
				return ErrAlreadyLinked
			}
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("link %s to user %s: %w", up.Connector, userID, err)
	}
	return nil
}

// Usable says whether a connector is a way to log in now: it is enabled and
// not link-only. Linking does not know connectors: brokers does, and the
// callers pass it in. The local password's connector is LocalConnector.
type Usable func(connector string) bool

// Removable says whether a user whose links are links may lose the link
// linkID and still log in: it is never their last link, nor their last
// usable one (a link-only or disabled connector is not a way in, however
// many of them remain). A nil usable counts every connector as usable.
func Removable(links []Link, linkID uint, usable Usable) bool {
	if usable == nil {
		usable = func(string) bool { return true }
	}
	var removed *Link
	others, usableOthers := 0, 0
	for i, l := range links {
		if l.ID == linkID {
			removed = &links[i]
			continue
		}
		others++
		if usable(l.Connector) {
			usableOthers++
		}
	}
	return removed != nil && others > 0 && (usableOthers > 0 || !usable(removed.Connector))
}

// Unlink removes a link, but never a user's last way to log in, nor their
// last usable one (see Removable; a local password counts as one) unless
// force says an administrator overrides that.
func (s *Service) Unlink(ctx context.Context, userID string, linkID uint, usable Usable, force bool) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var links []Link
		if err := tx.Where("user_id = ?", userID).Find(&links).Error; err != nil {
			return err
		}
		i := slices.IndexFunc(links, func(l Link) bool { return l.ID == linkID })
		if i < 0 {
			return ErrNotLinked
		}
		if !force && !Removable(links, linkID, usable) {
			return ErrLastLogin
		}
		if err := tx.Delete(&Link{}, "id = ? AND user_id = ?", linkID, userID).Error; err != nil {
			return err
		}
		if err := s.revokeIdentity(ctx, tx, links[i]); err != nil {
			return err
		}
		return tx.Model(&User{}).Where("id = ?", userID).Update("link_version", gorm.Expr("link_version + 1")).Error
	})
	if err != nil {
		return fmt.Errorf("unlink: %w", err)
	}
	return nil
}
