package linking

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/fedhub/fedhub/store"
	"github.com/fedhub/fedhub/usernames"
)

// ImportUser is one user of a bulk import, with the upstream identities
// linked to it.
type ImportUser struct {
	Line          int // where the user was read, for errors
	Username      string
	Email         string
	EmailVerified bool
	Name          string
	PasswordHash  string // argon2id, as CreateUser takes it; it comes with a local link
	Links         []ImportLink
}

// ImportLink is an upstream identity of an imported user.
type ImportLink struct {
	Connector, Subject string
	Username, Email    string // as the upstream knows them
}

// importBatchSize is how many users one INSERT writes: 13 columns × 500 stays
// under SQLite's 32766 parameters, and so do their links.
const importBatchSize = 500

// Import creates the users src yields, and their links, all or nothing: in
// one transaction, so that a refused user (a bad username or password hash,
// a username or upstream identity taken, in the database or earlier in src)
// or an error of src leaves the database as it was. The error names the
// user's line. It returns how many users it created. On PostgreSQL the
// tables are then vacuumed and analysed (store.Settle).
func (s *Service) Import(ctx context.Context, src iter.Seq2[ImportUser, error]) (int, error) {
	n := 0
	err := store.Bulk(ctx, s.db, func(tx *gorm.DB) error {
		b := newImportBatch(s.now())
		for iu, err := range src {
			if err != nil {
				return err
			}
			if err := b.add(iu); err != nil {
				return fmt.Errorf("line %d: %w", iu.Line, err)
			}
			if len(b.users) == importBatchSize {
				if err := b.write(tx); err != nil {
					return err
				}
				n += importBatchSize
				b = newImportBatch(b.now)
			}
		}
		n += len(b.users)
		return b.write(tx)
	})
	if err != nil {
		return 0, fmt.Errorf("import users: %w", err)
	}
	if err := store.Settle(ctx, s.db, &User{}, &Link{}); err != nil {
		return n, fmt.Errorf("import users: %d imported, then: %w", n, err)
	}
	return n, nil
}

// importBatch is the users of one INSERT, checked against each other
// before they are checked against the database.
type importBatch struct {
	now      time.Time
	users    []User
	links    []Link
	lines    []int             // lines[i] is where users[i] was read
	keys     map[string]int    // username key → line
	upstream map[[2]string]int // (connector, subject) → line
}

func newImportBatch(now time.Time) *importBatch {
	return &importBatch{now: now, keys: map[string]int{}, upstream: map[[2]string]int{}}
}

// add checks one user on its own and against the batch.
func (b *importBatch) add(iu ImportUser) error {
	username, key, err := usernames.New(iu.Username)
	if err != nil {
		return fmt.Errorf("username %q: %w", iu.Username, err)
	}
	if line, ok := b.keys[key]; ok {
		return fmt.Errorf("username %q: %w (line %d)", username, ErrUsernameTaken, line)
	}
	if iu.PasswordHash != "" && !ValidPasswordHash(iu.PasswordHash) {
		return errors.New("password_hash is not an argon2id hash")
	}
	u := User{ID: NewID(), Username: username, UsernameKey: key, Email: strings.TrimSpace(iu.Email),
		EmailVerified: iu.EmailVerified, Name: iu.Name, PasswordHash: iu.PasswordHash, CreatedAt: b.now, UpdatedAt: b.now}
	links := make([]Link, 0, len(iu.Links)+1)
	if u.PasswordHash != "" {
		links = append(links, Link{UserID: u.ID, Connector: LocalConnector, Subject: u.ID, Username: username, CreatedAt: b.now})
	}
	for _, l := range iu.Links {
		switch {
		case l.Connector == "" || l.Subject == "":
			return errors.New("a link needs a connector and a subject")
		case l.Connector == LocalConnector:
			return errors.New("a local password is given as password_hash, not as a link")
		}
		up := [2]string{l.Connector, l.Subject}
		if line, ok := b.upstream[up]; ok {
			return fmt.Errorf("%s subject %q: %w (line %d)", l.Connector, l.Subject, ErrAlreadyLinked, line)
		}
		b.upstream[up] = iu.Line
		links = append(links, Link{UserID: u.ID, Connector: l.Connector, Subject: l.Subject, Username: l.Username,
			Email: strings.TrimSpace(l.Email), CreatedAt: b.now})
	}
	b.keys[key] = iu.Line
	b.users = append(b.users, u)
	b.lines = append(b.lines, iu.Line)
	b.links = append(b.links, links...)
	return nil
}

// write inserts the batch. A row that a unique index refuses — a username
// or an upstream identity that the database, or an earlier batch, has — is
// skipped by the database rather than aborting the transaction, so that the
// transaction can still ask which and name its line; the import fails then
// anyway. Checking every batch beforehand instead cost a query per batch that
// PostgreSQL, which has no statistics of tables filled in the same
// transaction, answered by reading the whole table; a savepoint per batch
// made SQLite copy every page it changed.
func (b *importBatch) write(tx *gorm.DB) error {
	if len(b.users) == 0 {
		return nil
	}
	skip := tx.Clauses(clause.OnConflict{DoNothing: true})
	for _, rows := range []any{b.users, b.links} {
		res := skip.CreateInBatches(rows, importBatchSize)
		if res.Error != nil {
			return fmt.Errorf("lines %d to %d: %w", b.lines[0], b.lines[len(b.lines)-1], res.Error)
		}
		if int(res.RowsAffected) < reflect.ValueOf(rows).Len() {
			if err := b.taken(tx); err != nil {
				return err
			}
			return fmt.Errorf("lines %d to %d: a username or upstream identity is taken", b.lines[0], b.lines[len(b.lines)-1])
		}
	}
	return nil
}

// taken names the line of a user of the batch whose username or upstream
// identity another user has: the database skipped that row.
func (b *importBatch) taken(tx *gorm.DB) error {
	mine := make(map[string]bool, len(b.users))
	keys := make([]string, len(b.users))
	for i, u := range b.users {
		mine[u.ID], keys[i] = true, u.UsernameKey
	}
	var users []User
	if err := tx.Select("id", "username_key").Where("username_key IN ?", keys).Find(&users).Error; err != nil {
		return err
	}
	for _, u := range users {
		if !mine[u.ID] {
			return fmt.Errorf("line %d: username %q: %w", b.keys[u.UsernameKey], u.UsernameKey, ErrUsernameTaken)
		}
	}
	subjects := make([]string, 0, len(b.upstream))
	for up := range b.upstream {
		subjects = append(subjects, up[1])
	}
	var linked []Link
	if len(subjects) > 0 {
		if err := tx.Select("user_id", "connector", "subject").Where("subject IN ?", subjects).Find(&linked).Error; err != nil {
			return err
		}
	}
	for _, l := range linked {
		if line, ok := b.upstream[[2]string{l.Connector, l.Subject}]; ok && !mine[l.UserID] {
			return fmt.Errorf("line %d: %s subject %q: %w", line, l.Connector, l.Subject, ErrAlreadyLinked)
		}
	}
	return nil
}
