package linking

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
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

// searchFew is the most links a connector may have for Search to fetch its
// users by their links; with more, Search walks users in order and checks
// each for a link, which finds a page after about limit × users ÷ links rows.
// Up to searchHashed links, the check is a lookup in a hash of the
// connector's users that the database builds once; with more, where that
// hash would cost more than the walk, it is a read of the links index per
// user. Either way a page reads a bounded number of rows, whatever the table
// sizes.
var searchFew, searchHashed = 5000, 50000

// Search returns a page of users matching q and whether more follow. Without
// text, users come in username order. With text, users whose upstream
// subject is the text come first, then those whose username starts with it
// (by username), then those whose email does (by email): each part is one
// index range read in its own order, so a page stops after the rows it
// shows instead of sorting every match; the walk reads IDs only, and then
// the page's users (see BenchmarkSearch1M).
func (s *Service) Search(ctx context.Context, q Query) ([]User, bool, error) {
	limit, offset := min(max(q.Limit, 1), 200), max(q.Offset, 0)
	var users []User
	var more bool
	err := serial(ctx, s.db, func(db *gorm.DB) error {
		var err error
		users, more, err = search(db, q, limit, offset)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("search users: %w", err)
	}
	return users, more, nil
}

// serial runs the statements of fn without parallel workers: on PostgreSQL
// in a read-only transaction that forbids them, because a search's walk,
// planned in parallel, spent 70–300 ms starting workers to read a few
// thousand index entries (a one-statement read on SQLite, which has none, and
// where a transaction would take the write lock).
func serial(ctx context.Context, db *gorm.DB, fn func(db *gorm.DB) error) error {
	db = db.WithContext(ctx)
	if db.Dialector.Name() != "postgres" {
		return fn(db)
	}
	return db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec("SET LOCAL max_parallel_workers_per_gather = 0").Error; err != nil {
			return err
		}
		return fn(tx)
	}, &sql.TxOptions{ReadOnly: true})
}

func search(db *gorm.DB, q Query, limit, offset int) ([]User, bool, error) {
	few, linked, err := linkedThrough(db, q.Connector)
	if err != nil {
		return nil, false, err
	}
	text := strings.TrimSpace(q.Text)
	var linkedBy []string
	if text != "" {
		// The subject on its own: inside an OR it would keep the database
		// from reading the username and email indexes in order.
		if err := db.Model(&Link{}).Where("subject = ?", text).Limit(100).Pluck("user_id", &linkedBy).Error; err != nil {
			return nil, false, err
		}
	}
	// The prefix range [key, end): an index range, where LIKE would depend
	// on the database's collation and case rules.
	key := strings.ToLower(text)
	end := key + "\U0010FFFF"
	if few != nil {
		ids := matchFew(few, text != "", key, end, linkedBy)
		return page(db, ids[min(offset, len(ids)):], limit)
	}
	var ids []string
	if text == "" {
		err := linked(db.Model(&User{})).Order("username_key").Offset(offset).Limit(limit+1).Pluck("id", &ids).Error
		if err != nil {
			return nil, false, err
		}
		return page(db, ids, limit)
	}
	if len(linkedBy) > 0 {
		if err := linked(db.Model(&User{}).Where("id IN ?", linkedBy)).Order("username_key").Pluck("id", &ids).Error; err != nil {
			return nil, false, err
		}
	}
	const byName = "username_key >= ? AND username_key < ?"
	parts := []func(*gorm.DB) *gorm.DB{
		func(tx *gorm.DB) *gorm.DB { return tx.Where(byName, key, end).Order("username_key") },
		func(tx *gorm.DB) *gorm.DB { // the users byName found are not found again
			return tx.Where("LOWER(email) >= ? AND LOWER(email) < ?", key, end).Where("NOT ("+byName+")", key, end).
				Order("LOWER(email)").Order("username_key")
		},
	}
	want := offset + limit + 1 + len(ids) // a subject's users may be found again by name
	bySubject := len(ids)
	for _, part := range parts {
		var found []string
		if err := part(linked(db.Model(&User{}))).Limit(want-len(ids)).Pluck("id", &found).Error; err != nil {
			return nil, false, err
		}
		for _, id := range found {
			if !slices.Contains(ids[:bySubject], id) {
				ids = append(ids, id)
			}
		}
		if len(ids) >= want {
			break
		}
	}
	return page(db, ids[min(offset, len(ids)):], limit)
}

// candidate is a user linked through a connector with few links, with the
// keys a search orders by, as the database computes them.
type candidate struct {
	ID, UsernameKey, EmailKey string
}

// matchFew orders the candidates that match as the queries of search do:
// linked by the subject, then the username range [key, end) by username,
// then the email range by email and username; without text, all by username.
func matchFew(few []candidate, hasText bool, key, end string, linkedBy []string) []string {
	in := func(s string) bool { return s >= key && s < end }
	rank := func(c candidate) int {
		switch {
		case !hasText:
			return 1
		case slices.Contains(linkedBy, c.ID):
			return 0
		case in(c.UsernameKey):
			return 1
		case in(c.EmailKey):
			return 2
		}
		return -1
	}
	few = slices.DeleteFunc(few, func(c candidate) bool { return rank(c) < 0 })
	slices.SortFunc(few, func(a, b candidate) int {
		ra, rb := rank(a), rank(b)
		if ra != rb {
			return ra - rb
		}
		if ra == 2 {
			if c := strings.Compare(a.EmailKey, b.EmailKey); c != 0 {
				return c
			}
		}
		return strings.Compare(a.UsernameKey, b.UsernameKey)
	})
	ids := make([]string, len(few))
	for i, c := range few {
		ids[i] = c.ID
	}
	return ids
}

// page reads the users of the first limit of ids, in that order, and says
// whether more follow.
func page(db *gorm.DB, ids []string, limit int) ([]User, bool, error) {
	more := len(ids) > limit
	ids = ids[:min(limit, len(ids))]
	if len(ids) == 0 {
		return nil, false, nil
	}
	var users []User
	if err := db.Where("id IN ?", ids).Find(&users).Error; err != nil {
		return nil, false, err
	}
	slices.SortFunc(users, func(a, b User) int { return slices.Index(ids, a.ID) - slices.Index(ids, b.ID) })
	return users, more, nil
}

// linkedThrough says how a search keeps to the users linked through
// connector ("" for all users). A connector with few links gives them as
// candidates, read by the links and sorted by search itself: however the
// database would plan it, walking the username index for them can read most
// of the table. A connector with more gives a check per user walked in
// order, which finds a page after about limit × users ÷ links rows: up to
// searchHashed links an IN over the connector's users, read once into a hash
// (IS TRUE keeps PostgreSQL from making it a join, which it would run as a
// read of the links index per user: 8 µs each, 5,650 of them for a page of a
// connector with 1 % of 1M users); with more, an EXISTS per user.
func linkedThrough(db *gorm.DB, connector string) ([]candidate, func(*gorm.DB) *gorm.DB, error) {
	if connector == "" {
		return nil, func(tx *gorm.DB) *gorm.DB { return tx }, nil
	}
	var n int
	if err := db.Raw("SELECT COUNT(*) FROM (SELECT 1 FROM links WHERE connector = ? LIMIT ?) AS few", connector, searchHashed+1).Scan(&n).Error; err != nil {
		return nil, nil, err
	}
	if n <= searchFew {
		// Two queries: joined, PostgreSQL would rather read all users than
		// look up this few by their IDs.
		var ids []string
		if err := db.Model(&Link{}).Where("connector = ?", connector).Pluck("user_id", &ids).Error; err != nil {
			return nil, nil, err
		}
		few := make([]candidate, 0, len(ids)) // not nil: no candidates is an empty answer
		if len(ids) == 0 {
			return few, nil, nil
		}
		err := db.Raw("SELECT id, username_key, COALESCE(LOWER(email), '') AS email_key FROM users WHERE id IN ?", ids).Scan(&few).Error
		return few, nil, err
	}
	if n <= searchHashed {
		return nil, func(tx *gorm.DB) *gorm.DB {
			return tx.Where("(users.id IN (SELECT user_id FROM links WHERE connector = ?)) IS TRUE", connector)
		}, nil
	}
	return nil, func(tx *gorm.DB) *gorm.DB {
		return tx.Where("EXISTS (SELECT 1 FROM links WHERE links.user_id = users.id AND links.connector = ?)", connector)
	}, nil
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
