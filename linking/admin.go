package linking

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Query finds users for the admin pages.
type Query struct {
	Text      string // a username or email prefix, or an exact upstream subject
	Connector string // only users linked through this connector
	// After is the cursor Search gave with the previous page: the page
	// continues after that page's last row, read from there in index order,
	// at the cost of the first page however deep. Offset skips rows (after
	// the cursor, if any), reading them all: slower for deep pages.
	After  string
	Offset int
	Limit  int
}

// ErrBadCursor is an After that Search did not give for the same text and
// connector.
var ErrBadCursor = errors.New("the cursor is not one this search gave: start again from the first page")

// searchFew is the most links a connector may have for Search to fetch its
// users by their links; with more, Search walks users in order and checks
// each for a link, which finds a page after about limit × users ÷ links rows.
// Up to searchHashed links, the check is a lookup in a hash of the
// connector's users that the database builds once; with more, where that
// hash would cost more than the walk, it is a read of the links index per
// user. Either way a page reads a bounded number of rows, whatever the table
// sizes.
var searchFew, searchHashed = 5000, 50000

// Search returns a page of users matching q and, if more follow, the cursor
// that continues after it (Query.After; "" on the last page). Without text,
// users come in username order. With text, users whose upstream subject is
// the text come first, then those whose username starts with it (by
// username), then those whose email does (by email): each part is one index
// range read in its own order, from the cursor's row on, so a page stops
// after the rows it shows instead of sorting every match; the walk reads
// keys only, and then the page's users (see BenchmarkSearch1M).
func (s *Service) Search(ctx context.Context, q Query) ([]User, string, error) {
	limit, offset := min(max(q.Limit, 1), 200), max(q.Offset, 0)
	var after *candidate
	if q.After != "" {
		c, err := q.open()
		if err != nil {
			return nil, "", fmt.Errorf("search users: %w", err)
		}
		after = &c
	}
	var users []User
	var last *candidate
	err := serial(ctx, s.db, func(db *gorm.DB) error {
		var err error
		users, last, err = search(db, q, limit, offset, after)
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("search users: %w", err)
	}
	if last == nil {
		return users, "", nil
	}
	return users, q.seal(*last), nil
}

// seal makes the cursor of a page that ends at row c: its sort key (the
// email only where it is one), with a checksum of it and of the search (a
// cursor is not secret, but an edited one, or one of another search, would
// page through something else).
func (q Query) seal(c candidate) string {
	if c.Rank != byEmail {
		c.EmailKey = ""
	}
	key, _ := json.Marshal(c) // strings and an int: cannot fail
	return base64.RawURLEncoding.EncodeToString(append(q.sum(key), key...))
}

// open reads q.After, which seal made for the same search.
func (q Query) open() (candidate, error) {
	b, err := base64.RawURLEncoding.DecodeString(q.After)
	var c candidate
	if err != nil || len(b) < sha256.Size/2 || !bytes.Equal(b[:sha256.Size/2], q.sum(b[sha256.Size/2:])) {
		return c, ErrBadCursor
	}
	if err := json.Unmarshal(b[sha256.Size/2:], &c); err != nil {
		return c, fmt.Errorf("%w: %w", ErrBadCursor, err)
	}
	return c, nil
}

// sum is the checksum of a cursor's key for this search.
func (q Query) sum(key []byte) []byte {
	h := sha256.New()
	h.Write([]byte(strings.TrimSpace(q.Text) + "\x00" + q.Connector + "\x00"))
	h.Write(key)
	return h.Sum(nil)[:sha256.Size/2]
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

// The parts of a search's order, a candidate's Rank.
const (
	bySubject = iota
	byUsername
	byEmail
)

// search returns the page of limit users after offset rows that follow after
// (nil: from the first), and the last of them if more follow.
func search(db *gorm.DB, q Query, limit, offset int, after *candidate) ([]User, *candidate, error) {
	few, linked, err := linkedThrough(db, q.Connector)
	if err != nil {
		return nil, nil, err
	}
	text := strings.TrimSpace(q.Text)
	var linkedBy []string
	if text != "" {
		// The subject on its own: inside an OR it would keep the database
		// from reading the username and email indexes in order.
		if err := db.Model(&Link{}).Where("subject = ?", text).Limit(100).Pluck("user_id", &linkedBy).Error; err != nil {
			return nil, nil, err
		}
	}
	// The prefix range [key, end): an index range, where LIKE would depend
	// on the database's collation and case rules.
	key := strings.ToLower(text)
	end := key + "\U0010FFFF"
	if few != nil {
		rows := matchFew(few, text != "", key, end, linkedBy)
		if after != nil {
			rows = rows[sort.Search(len(rows), func(i int) bool { return compareRows(rows[i], *after) > 0 }):]
		}
		return page(db, rows[min(offset, len(rows)):], limit)
	}
	// from keeps the walk of the cursor's part to the rows after it (a row
	// value: one index range); the parts after it are read whole, those
	// before it not at all.
	from := func(rank int, tx *gorm.DB) *gorm.DB {
		switch {
		case after == nil || after.Rank != rank:
			return tx
		case rank == byEmail:
			return tx.Where("(LOWER(email), username_key) > (?, ?)", after.EmailKey, after.UsernameKey)
		}
		return tx.Where("username_key > ?", after.UsernameKey)
	}
	var rows []candidate
	if text == "" {
		err := from(byUsername, linked(db.Model(&User{}))).Select("id", "username_key").Order("username_key").
			Offset(offset).Limit(limit + 1).Scan(&rows).Error
		if err != nil {
			return nil, nil, err
		}
		return page(db, ranked(rows, byUsername), limit)
	}
	if len(linkedBy) > 0 {
		err := linked(db.Model(&User{}).Where("id IN ?", linkedBy)).Select("id", "username_key").Order("username_key").Scan(&rows).Error
		if err != nil {
			return nil, nil, err
		}
	}
	subject := ranked(rows, bySubject) // a subject's users may be found again by name, and are not shown again
	rows = slices.DeleteFunc(slices.Clone(subject), func(c candidate) bool { return after != nil && compareRows(c, *after) <= 0 })
	const byName = "username_key >= ? AND username_key < ?"
	parts := []func(*gorm.DB) *gorm.DB{
		func(tx *gorm.DB) *gorm.DB {
			return from(byUsername, tx).Where(byName, key, end).Select("id", "username_key").Order("username_key")
		},
		func(tx *gorm.DB) *gorm.DB { // the users byName found are not found again
			return from(byEmail, tx).Where("LOWER(email) >= ? AND LOWER(email) < ?", key, end).Where("NOT ("+byName+")", key, end).
				Select("id", "username_key", "LOWER(email) AS email_key").Order("LOWER(email)").Order("username_key")
		},
	}
	want := offset + limit + 1 + len(subject)
	for i, part := range parts {
		if after != nil && after.Rank > byUsername+i {
			continue
		}
		var found []candidate
		if err := part(linked(db.Model(&User{}))).Limit(want - len(rows)).Scan(&found).Error; err != nil {
			return nil, nil, err
		}
		for _, c := range ranked(found, byUsername+i) {
			if !slices.ContainsFunc(subject, func(s candidate) bool { return s.ID == c.ID }) {
				rows = append(rows, c)
			}
		}
		if len(rows) >= want {
			break
		}
	}
	return page(db, rows[min(offset, len(rows)):], limit)
}

// candidate is a user a search may show, with the keys it orders by, as the
// database computes them, and the part of the order it is in: the cursor of
// a page that ends with it.
type candidate struct {
	ID          string `json:"-"`
	UsernameKey string `json:"u"`
	EmailKey    string `json:"e,omitempty"`
	Rank        int    `json:"r" gorm:"-"`
}

// ranked sets the rank of rows.
func ranked(rows []candidate, rank int) []candidate {
	for i := range rows {
		rows[i].Rank = rank
	}
	return rows
}

// compareRows orders rows as a search shows them: by part, then by the keys
// the part's index is in.
func compareRows(a, b candidate) int {
	if a.Rank != b.Rank {
		return a.Rank - b.Rank
	}
	if a.Rank == byEmail {
		if c := strings.Compare(a.EmailKey, b.EmailKey); c != 0 {
			return c
		}
	}
	return strings.Compare(a.UsernameKey, b.UsernameKey)
}

// matchFew orders the candidates that match as the queries of search do:
// linked by the subject, then the username range [key, end) by username,
// then the email range by email and username; without text, all by username.
func matchFew(few []candidate, hasText bool, key, end string, linkedBy []string) []candidate {
	in := func(s string) bool { return s >= key && s < end }
	for i, c := range few {
		switch {
		case !hasText:
			few[i].Rank = byUsername
		case slices.Contains(linkedBy, c.ID):
			few[i].Rank = bySubject
		case in(c.UsernameKey):
			few[i].Rank = byUsername
		case in(c.EmailKey):
			few[i].Rank = byEmail
		default:
			few[i].Rank = -1
		}
	}
	few = slices.DeleteFunc(few, func(c candidate) bool { return c.Rank < 0 })
	slices.SortFunc(few, compareRows)
	return few
}

// page reads the users of the first limit of rows, in that order, and gives
// the last of them if more follow.
func page(db *gorm.DB, rows []candidate, limit int) ([]User, *candidate, error) {
	var last *candidate
	if len(rows) > limit {
		last = &rows[limit-1]
	}
	rows = rows[:min(limit, len(rows))]
	if len(rows) == 0 {
		return nil, nil, nil
	}
	ids := make([]string, len(rows))
	for i, c := range rows {
		ids[i] = c.ID
	}
	var users []User
	if err := db.Where("id IN ?", ids).Find(&users).Error; err != nil {
		return nil, nil, err
	}
	slices.SortFunc(users, func(a, b User) int { return slices.Index(ids, a.ID) - slices.Index(ids, b.ID) })
	return users, last, nil
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
