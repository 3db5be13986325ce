package linking

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/store"
	"github.com/fedhub/fedhub/usernames"
)

// Errors callers tell apart.
var (
	ErrNotFound           = errors.New("user not found")
	ErrUsernameTaken      = errors.New("username is taken")
	ErrInvalidCredentials = errors.New("invalid username or password")
	ErrDisabled           = errors.New("account is disabled")
	ErrNotLinked          = errors.New("upstream identity is not linked")
	ErrAlreadyLinked      = errors.New("upstream identity is linked to another user")
	ErrLinksChanged       = errors.New("the user's links changed meanwhile")
	ErrLastLogin          = errors.New("this is the user's last way to log in")
	ErrLocalLink          = errors.New("a local password belongs to its account and cannot move")
	ErrNotMember          = errors.New("the user is not in that group")
)

// Service is the users-and-links API; other packages never touch these tables.
type Service struct {
	db      *gorm.DB
	now     func() time.Time
	revoker Revoker
	defs    *definitionsCache // the groups and roles, shared by every copy of the service
}

// New returns the service over db (already migrated with Models), with the
// clock now. It is cheap: first logins make one inside their database
// transactions (WithTx).
func New(db *gorm.DB, now func() time.Time) *Service {
	utc := func() time.Time { return now().UTC() }
	return &Service{db: db, now: utc, defs: newDefinitionsCache(utc)}
}

// WithTx is the service inside a database transaction.
func (s *Service) WithTx(tx *gorm.DB) *Service {
	return &Service{db: tx, now: s.now, revoker: s.revoker, defs: s.defs}
}

// dummyHash is verified against when a username does not exist, so that a
// login takes as long for an unknown user as for a wrong password. It is
// computed once per process, the first time it is needed.
var dummyHash = sync.OnceValue(func() string {
	h, err := HashPassword("fedhub-dummy-password")
	if err != nil {
		panic(err) // only fails when crypto/rand does
	}
	return h
})

// NewUser describes a user to create. Give Password or PasswordHash (or neither,
// for a user who only signs in through upstream identity providers).
type NewUser struct {
	Username      string
	Email         string
	EmailVerified bool
	Name          string
	Password      string
	PasswordHash  string
	Roles         []string
	Groups        []string
	Source        string // the connector that grants Roles and Groups; "" for local
}

// CreateUser creates a user, its roles and groups and, with a password, its
// local link — all or nothing.
func (s *Service) CreateUser(ctx context.Context, nu NewUser) (*User, error) {
	username, key, err := usernames.New(nu.Username)
	if err != nil {
		return nil, fmt.Errorf("create user %q: %w", nu.Username, err)
	}
	hash := nu.PasswordHash
	if nu.Password != "" {
		var err error
		if hash, err = HashPassword(nu.Password); err != nil {
			return nil, fmt.Errorf("create user: %w", err)
		}
	} else if hash != "" && !ValidPasswordHash(hash) {
		return nil, errors.New("create user: password hash is not argon2id")
	}
	u := &User{
		ID: NewID(), Username: username, UsernameKey: key,
		Email: strings.TrimSpace(nu.Email), EmailVerified: nu.EmailVerified, Name: nu.Name,
		PasswordHash: hash, Roles: nu.Roles, Groups: nu.Groups,
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(u).Error; err != nil {
			if store.IsDuplicate(err) {
				return ErrUsernameTaken
			}
			return err
		}
		if err := grant(tx, u.ID, nu.Source, nu.Roles, nu.Groups); err != nil {
			return err
		}
		if hash != "" {
			return tx.Create(&Link{UserID: u.ID, Connector: LocalConnector, Subject: u.ID, Username: u.Username}).Error
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create user %q: %w", username, err)
	}
	return u, nil
}

// UserByID returns a user with its roles and groups.
func (s *Service) UserByID(ctx context.Context, id string) (*User, error) {
	return s.findUser(ctx, "users.id = ?", id)
}

// UserByUsername returns a user by username, under its key (usernames.Key):
// case, width and spacing do not matter.
func (s *Service) UserByUsername(ctx context.Context, username string) (*User, error) {
	key, err := usernames.Key(username)
	if err != nil {
		return nil, ErrNotFound
	}
	return s.findUser(ctx, "users.username_key = ?", key)
}

// findUser reads one user. Raw(…).Find, not Raw(…).Scan: Scan records the
// statement, formatted with its arguments, for a logger that discards it —
// a tenth of a user read, which every token for a user does.
func (s *Service) findUser(ctx context.Context, where string, arg any) (*User, error) {
	var row UserRow
	if err := s.db.WithContext(ctx).Raw("SELECT "+UserSelect(s.db)+" FROM users WHERE "+where+" LIMIT 1", arg).Find(&row).Error; err != nil {
		return nil, fmt.Errorf("find user: %w", err)
	}
	return s.UserOf(ctx, &row)
}

// UserRow is a user as UserSelect reads it: embedded (gorm:"embedded") in
// the struct a statement is scanned into.
type UserRow struct {
	User      `gorm:"embedded"`
	RoleList  string
	GroupList string
}

// UserSelect is the select list that reads a user with their roles and
// groups as a UserRow from db, in one statement with whatever else it reads,
// from the table users (FROM users, or a join): every token issued for a
// user reads them, and on PostgreSQL each statement is a round trip.
func UserSelect(db *gorm.DB) string {
	if db.Dialector.Name() == "postgres" {
		return userPostgres
	}
	return userSQLite
}

// UserOf is the user a UserRow holds, with the groups and roles they reach;
// ErrNotFound for a row of no user (an outer join that found none).
func (s *Service) UserOf(ctx context.Context, row *UserRow) (*User, error) {
	if row.ID == "" {
		return nil, ErrNotFound
	}
	u := row.User
	for _, l := range []struct {
		json string
		to   *[]string
	}{{row.RoleList, &u.DirectRoles}, {row.GroupList, &u.DirectGroups}} {
		if err := json.Unmarshal([]byte(l.json), l.to); err != nil {
			return nil, fmt.Errorf("find user: roles and groups: %w", err)
		}
		if len(*l.to) == 0 {
			*l.to = nil
		}
		slices.Sort(*l.to)
	}
	// The groups and roles they reach come from the definitions this node
	// keeps in memory.
	g, err := s.defs.Get(ctx, s.db)
	if err != nil {
		return nil, fmt.Errorf("find user %s: %w", u.ID, err)
	}
	u.Roles, u.Groups = g.effective(u.DirectRoles, u.DirectGroups)
	return &u, nil
}

const (
	userSQLite = `users.*,
		(SELECT json_group_array(role) FROM user_roles WHERE user_id = users.id) AS role_list,
		(SELECT json_group_array(group_name) FROM user_groups WHERE user_id = users.id) AS group_list`
	userPostgres = `users.*,
		(SELECT COALESCE(json_agg(role), '[]')::text FROM user_roles WHERE user_id = users.id) AS role_list,
		(SELECT COALESCE(json_agg(group_name), '[]')::text FROM user_groups WHERE user_id = users.id) AS group_list`
)

// ListUsers returns users ordered by username, a page at a time.
func (s *Service) ListUsers(ctx context.Context, offset, limit int) ([]User, error) {
	var users []User
	err := s.db.WithContext(ctx).Order("username_key").Offset(offset).Limit(limit).Find(&users).Error
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return users, nil
}

// SetPassword replaces a user's password and makes sure the local link exists.
func (s *Service) SetPassword(ctx context.Context, username, password string) error {
	if password == "" {
		return errors.New("set password: the password is empty")
	}
	u, err := s.UserByUsername(ctx, username)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	hash, err := HashPassword(password)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&User{}).Where("id = ?", u.ID).Update("password_hash", hash).Error; err != nil {
			return fmt.Errorf("set password: %w", err)
		}
		link := Link{UserID: u.ID, Connector: LocalConnector, Subject: u.ID, Username: u.Username}
		if err := tx.Where(Link{Connector: LocalConnector, Subject: u.ID}).FirstOrCreate(&link).Error; err != nil {
			return fmt.Errorf("set password: %w", err)
		}
		return nil
	})
}

// SetDisabled disables or re-enables a user, on an administrator's word (as
// SetDisabledByID).
func (s *Service) SetDisabled(ctx context.Context, username string, disabled bool) error {
	key, err := usernames.Key(username)
	if err != nil {
		return fmt.Errorf("set disabled: %w", ErrNotFound)
	}
	res := s.db.WithContext(ctx).Model(&User{}).Where("username_key = ?", key).Updates(map[string]any{"disabled": disabled, "disabled_by": ""})
	if res.Error != nil {
		return fmt.Errorf("set disabled: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("set disabled: %w", ErrNotFound)
	}
	return nil
}

// VerifyPassword checks a local password. It returns ErrInvalidCredentials for
// an unknown user, a user without a password or a wrong password alike, in about
// the same time; and ErrDisabled only once the password was right. It returns
// ErrBusy, for a known and an unknown user alike, when the process's hashing
// bound leaves no place for the check.
func (s *Service) VerifyPassword(ctx context.Context, username, password string) (*User, error) {
	u, err := s.UserByUsername(ctx, username)
	if errors.Is(err, ErrNotFound) || (err == nil && u.PasswordHash == "") {
		if _, err := checkPassword(dummyHash(), password); errors.Is(err, ErrBusy) {
			return nil, err // as for a known user: busy tells nothing about the name
		}
		return nil, ErrInvalidCredentials
	}
	if err != nil {
		return nil, err
	}
	ok, err := checkPassword(u.PasswordHash, password)
	if err != nil {
		return nil, fmt.Errorf("verify password of %s: %w", u.ID, err)
	}
	if !ok {
		return nil, ErrInvalidCredentials
	}
	if u.Disabled {
		return nil, ErrDisabled
	}
	return u, nil
}

// NewID returns a random 128-bit identifier in UUID v4 form.
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand docs)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
