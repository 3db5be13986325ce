package linking_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/e2e/peers"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/store"
	"github.com/fedhub/fedhub/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	peers.StopAll()
	os.Exit(code)
}

// forEachDB runs fn on a fresh, migrated database of every driver.
func forEachDB(t *testing.T, fn func(t *testing.T, db *gorm.DB, s *linking.Service)) {
	t.Helper()
	storetest.ForEachDB(t, linking.Models(), func(t *testing.T, db *gorm.DB) {
		fn(t, db, linking.New(db, time.Now))
	})
}

// rowCounts counts the rows of every linking table.
func rowCounts(t *testing.T, db *gorm.DB) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for name, model := range map[string]any{
		"users": &linking.User{}, "roles": &linking.UserRole{}, "groups": &linking.UserGroup{}, "links": &linking.Link{},
	} {
		var n int64
		if err := db.Model(model).Count(&n).Error; err != nil {
			t.Fatalf("count %s: %v", name, err)
		}
		out[name] = n
	}
	return out
}

func mustCreate(t *testing.T, s *linking.Service, nu linking.NewUser) *linking.User {
	t.Helper()
	u, err := s.CreateUser(context.Background(), nu)
	if err != nil {
		t.Fatalf("CreateUser(%q): %v", nu.Username, err)
	}
	return u
}

func links(t *testing.T, s *linking.Service, userID string) []linking.Link {
	t.Helper()
	ls, err := s.Links(context.Background(), userID)
	if err != nil {
		t.Fatalf("Links: %v", err)
	}
	return ls
}

func TestCreateUser(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		u := mustCreate(t, s, linking.NewUser{
			Username: "  Alice ", Email: " alice@example.com ", EmailVerified: true, Name: "Alice A.",
			Password: "correct horse",
			Roles:    []string{"admin", "user", "admin", " ", "auditor"},
			Groups:   []string{"ops", "dev", "ops"},
		})
		if u.ID == "" || u.Username != "Alice" || u.UsernameKey != "alice" || u.Email != "alice@example.com" {
			t.Errorf("created user = %+v", u)
		}
		if u.PasswordHash == "" || u.PasswordHash == "correct horse" || !linking.ValidPasswordHash(u.PasswordHash) {
			t.Errorf("password hash = %q, want an argon2id hash", u.PasswordHash)
		}

		got, err := s.UserByUsername(ctx, "ALICE")
		if err != nil {
			t.Fatalf("UserByUsername: %v", err)
		}
		if got.ID != u.ID || !got.EmailVerified || got.Name != "Alice A." {
			t.Errorf("read back %+v, want %+v", got, u)
		}
		if want := []string{"admin", "auditor", "user"}; !slices.Equal(got.Roles, want) {
			t.Errorf("roles = %q, want %q", got.Roles, want)
		}
		if want := []string{"dev", "ops"}; !slices.Equal(got.Groups, want) {
			t.Errorf("groups = %q, want %q", got.Groups, want)
		}
		byID, err := s.UserByID(ctx, u.ID)
		if err != nil || byID.Username != "Alice" {
			t.Errorf("UserByID = %+v, %v", byID, err)
		}

		// A password makes the local link.
		ls := links(t, s, u.ID)
		if len(ls) != 1 || ls[0].Connector != linking.LocalConnector || ls[0].Subject != u.ID || ls[0].UserID != u.ID {
			t.Errorf("links of a user with a password = %+v, want one local link with subject %s", ls, u.ID)
		}

		// A ready hash is taken as it is, and makes the local link too.
		hash, err := linking.HashPassword("from a hash")
		if err != nil {
			t.Fatal(err)
		}
		h := mustCreate(t, s, linking.NewUser{Username: "hashed", PasswordHash: hash})
		if h.PasswordHash != hash {
			t.Errorf("password hash = %q, want the given %q", h.PasswordHash, hash)
		}
		if ls := links(t, s, h.ID); len(ls) != 1 || ls[0].Connector != linking.LocalConnector {
			t.Errorf("links of a user with a password hash = %+v, want one local link", ls)
		}
		if _, err := s.VerifyPassword(ctx, "hashed", "from a hash"); err != nil {
			t.Errorf("VerifyPassword with a given hash: %v", err)
		}

		// No password, no local link, no roles or groups.
		b := mustCreate(t, s, linking.NewUser{Username: "bob"})
		if ls := links(t, s, b.ID); len(ls) != 0 {
			t.Errorf("links of a user without a password = %+v, want none", ls)
		}
		bob, err := s.UserByID(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(bob.Roles) != 0 || len(bob.Groups) != 0 || bob.PasswordHash != "" {
			t.Errorf("bob = %+v, want no roles, groups or password", bob)
		}

		// Invalid input creates nothing.
		before := rowCounts(t, db)
		for _, nu := range []linking.NewUser{
			{Username: ""},
			{Username: "   "},
			{Username: "carol", PasswordHash: "$2a$10$abcdefghijklmnopqrstuv"},
			{Username: "carol", PasswordHash: "plain text"},
		} {
			if u, err := s.CreateUser(ctx, nu); err == nil {
				t.Errorf("CreateUser(%+v) = %+v, want an error", nu, u)
			}
		}
		if after := rowCounts(t, db); !maps.Equal(before, after) {
			t.Errorf("rows after refused CreateUser calls = %v, before %v", after, before)
		}

		users, err := s.ListUsers(ctx, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, u := range users {
			names = append(names, u.Username)
		}
		if want := []string{"Alice", "bob", "hashed"}; !slices.Equal(names, want) {
			t.Errorf("ListUsers = %q, want %q", names, want)
		}
		if page, err := s.ListUsers(ctx, 1, 1); err != nil || len(page) != 1 || page[0].Username != "bob" {
			t.Errorf("ListUsers(1, 1) = %+v, %v, want bob", page, err)
		}
	})
}

func TestCreateUserDuplicateUsername(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		orig := mustCreate(t, s, linking.NewUser{Username: "Alice", Password: "first", Roles: []string{"a"}, Groups: []string{"g"}})
		before := rowCounts(t, db)
		for _, name := range []string{"Alice", "alice", "ALICE", " aLiCe "} {
			u, err := s.CreateUser(ctx, linking.NewUser{
				Username: name, Password: "second", Email: "other@example.com",
				Roles: []string{"admin", "b"}, Groups: []string{"root", "h"},
			})
			if !errors.Is(err, linking.ErrUsernameTaken) {
				t.Errorf("CreateUser(%q) = %+v, %v; want ErrUsernameTaken", name, u, err)
			}
		}
		if after := rowCounts(t, db); !maps.Equal(before, after) {
			t.Errorf("rows after refused duplicates = %v, before %v: something was half-created", after, before)
		}
		// The first user is untouched: same password, roles and groups.
		got, err := s.VerifyPassword(ctx, "alice", "first")
		if err != nil {
			t.Fatalf("original password after refused duplicates: %v", err)
		}
		if got.ID != orig.ID || !slices.Equal(got.Roles, []string{"a"}) || !slices.Equal(got.Groups, []string{"g"}) || got.Email != "" {
			t.Errorf("original user changed: %+v", got)
		}
		if _, err := s.VerifyPassword(ctx, "alice", "second"); !errors.Is(err, linking.ErrInvalidCredentials) {
			t.Errorf("the refused duplicate's password works: %v", err)
		}
	})
}

func TestVerifyPassword(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		alice := mustCreate(t, s, linking.NewUser{Username: "Alice", Password: "s3cret!", Roles: []string{"r"}})
		mustCreate(t, s, linking.NewUser{Username: "nopass"})
		mustCreate(t, s, linking.NewUser{Username: "dis", Password: "right"})
		if err := s.SetDisabled(ctx, "dis", true); err != nil {
			t.Fatal(err)
		}

		u, err := s.VerifyPassword(ctx, "alice", "s3cret!")
		if err != nil {
			t.Fatalf("right password: %v", err)
		}
		if u.ID != alice.ID || !slices.Equal(u.Roles, []string{"r"}) {
			t.Errorf("right password: user %+v, want %s with role r", u, alice.ID)
		}
		if _, err := s.VerifyPassword(ctx, " ALICE ", "s3cret!"); err != nil {
			t.Errorf("right password, username in other case: %v", err)
		}

		for _, c := range []struct {
			name, username, password string
			want                     error
		}{
			{"wrong password", "alice", "s3cret", linking.ErrInvalidCredentials},
			{"password in other case", "alice", "S3CRET!", linking.ErrInvalidCredentials},
			{"empty password", "alice", "", linking.ErrInvalidCredentials},
			{"unknown user", "mallory", "s3cret!", linking.ErrInvalidCredentials},
			{"user without password", "nopass", "", linking.ErrInvalidCredentials},
			{"user without password, some password", "nopass", "anything", linking.ErrInvalidCredentials},
			{"disabled, wrong password", "dis", "wrong", linking.ErrInvalidCredentials},
			{"disabled, right password", "dis", "right", linking.ErrDisabled},
		} {
			u, err := s.VerifyPassword(ctx, c.username, c.password)
			if !errors.Is(err, c.want) || u != nil {
				t.Errorf("%s: VerifyPassword(%q, %q) = %+v, %v; want nil, %v", c.name, c.username, c.password, u, err, c.want)
			}
		}
	})
}

func TestSetPassword(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		// A user who had no password gets one, and with it the local link.
		u := mustCreate(t, s, linking.NewUser{Username: "Bob"})
		if err := s.SetPassword(ctx, "BOB", "first"); err != nil {
			t.Fatalf("SetPassword: %v", err)
		}
		if _, err := s.VerifyPassword(ctx, "bob", "first"); err != nil {
			t.Errorf("new password: %v", err)
		}
		if ls := links(t, s, u.ID); len(ls) != 1 || ls[0].Connector != linking.LocalConnector || ls[0].Subject != u.ID {
			t.Errorf("links after SetPassword = %+v, want one local link", ls)
		}

		// Setting it again replaces it and keeps one local link.
		if err := s.SetPassword(ctx, "bob", "second"); err != nil {
			t.Fatalf("SetPassword again: %v", err)
		}
		if _, err := s.VerifyPassword(ctx, "bob", "first"); !errors.Is(err, linking.ErrInvalidCredentials) {
			t.Errorf("old password after SetPassword: %v, want ErrInvalidCredentials", err)
		}
		if _, err := s.VerifyPassword(ctx, "bob", "second"); err != nil {
			t.Errorf("new password: %v", err)
		}
		if ls := links(t, s, u.ID); len(ls) != 1 {
			t.Errorf("links after a second SetPassword = %+v, want one local link", ls)
		}
		got, err := s.UserByID(ctx, u.ID)
		if err != nil || !linking.ValidPasswordHash(got.PasswordHash) {
			t.Errorf("stored hash = %q, %v", got.PasswordHash, err)
		}

		if err := s.SetPassword(ctx, "nobody", "x"); !errors.Is(err, linking.ErrNotFound) {
			t.Errorf("SetPassword of an unknown user: %v, want ErrNotFound", err)
		}
		if err := s.SetPassword(ctx, "bob", ""); err == nil {
			t.Errorf("SetPassword with an empty password: no error")
		}
		if _, err := s.VerifyPassword(ctx, "bob", "second"); err != nil {
			t.Errorf("password after a refused empty SetPassword: %v", err)
		}
	})
}

func TestSetDisabled(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		mustCreate(t, s, linking.NewUser{Username: "Carol", Password: "pw"})
		other := mustCreate(t, s, linking.NewUser{Username: "dave", Password: "pw"})

		if err := s.SetDisabled(ctx, "CAROL", true); err != nil {
			t.Fatalf("SetDisabled: %v", err)
		}
		u, err := s.UserByUsername(ctx, "carol")
		if err != nil || !u.Disabled {
			t.Errorf("after SetDisabled(true): %+v, %v", u, err)
		}
		if _, err := s.VerifyPassword(ctx, "carol", "pw"); !errors.Is(err, linking.ErrDisabled) {
			t.Errorf("disabled user logs in: %v, want ErrDisabled", err)
		}
		// Disabling is idempotent.
		if err := s.SetDisabled(ctx, "carol", true); err != nil {
			t.Errorf("SetDisabled(true) twice: %v", err)
		}
		if d, _ := s.UserByID(ctx, other.ID); d == nil || d.Disabled {
			t.Errorf("another user was disabled too: %+v", d)
		}

		if err := s.SetDisabled(ctx, "carol", false); err != nil {
			t.Fatalf("SetDisabled(false): %v", err)
		}
		if _, err := s.VerifyPassword(ctx, "carol", "pw"); err != nil {
			t.Errorf("re-enabled user: %v", err)
		}
		if err := s.SetDisabled(ctx, "nobody", true); !errors.Is(err, linking.ErrNotFound) {
			t.Errorf("SetDisabled of an unknown user: %v, want ErrNotFound", err)
		}
	})
}

// TestLinkUniqueInDatabase checks that (connector, subject) is unique by index, not only in code.
func TestLinkUniqueInDatabase(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		a := mustCreate(t, s, linking.NewUser{Username: "a"})
		b := mustCreate(t, s, linking.NewUser{Username: "b"})
		if err := db.Create(&linking.Link{UserID: a.ID, Connector: "github", Subject: "1001"}).Error; err != nil {
			t.Fatalf("first link: %v", err)
		}
		for _, userID := range []string{b.ID, a.ID} {
			err := db.Create(&linking.Link{UserID: userID, Connector: "github", Subject: "1001"}).Error
			if !store.IsDuplicate(err) {
				t.Errorf("second link of github/1001 (to user %s) through gorm: %v, want a duplicate-key error", userID, err)
			}
		}
		// The same subject at another connector, or another subject at the same one, is fine.
		if err := db.Create(&linking.Link{UserID: b.ID, Connector: "gitlab", Subject: "1001"}).Error; err != nil {
			t.Errorf("same subject, other connector: %v", err)
		}
		if err := db.Create(&linking.Link{UserID: b.ID, Connector: "github", Subject: "1002"}).Error; err != nil {
			t.Errorf("other subject, same connector: %v", err)
		}
		var n int64
		if err := db.Model(&linking.Link{}).Where("connector = ? AND subject = ?", "github", "1001").Count(&n).Error; err != nil || n != 1 {
			t.Errorf("links of github/1001: %d, %v; want 1", n, err)
		}
	})
}

func TestLinkedUser(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		if u, err := s.LinkedUser(ctx, "github", "1"); !errors.Is(err, linking.ErrNotLinked) || u != nil {
			t.Errorf("LinkedUser of an unlinked identity = %+v, %v; want ErrNotLinked", u, err)
		}

		up := linking.Upstream{Connector: "github", Subject: "1", Username: "octo", Email: "octo@example.com"}
		created, err := s.CreateLinkedUser(ctx, up, linking.NewUser{Username: "octo", Roles: []string{"dev"}})
		if err != nil {
			t.Fatalf("CreateLinkedUser: %v", err)
		}
		ls := links(t, s, created.ID)
		if len(ls) != 1 || ls[0].Connector != "github" || ls[0].Subject != "1" || ls[0].Username != "octo" ||
			ls[0].Email != "octo@example.com" || ls[0].LastLoginAt == nil {
			t.Errorf("links after CreateLinkedUser = %+v", ls)
		}
		first := *ls[0].LastLoginAt

		got, err := s.LinkedUser(ctx, "github", "1")
		if err != nil {
			t.Fatalf("LinkedUser: %v", err)
		}
		if got.ID != created.ID || !slices.Equal(got.Roles, []string{"dev"}) {
			t.Errorf("LinkedUser = %+v, want %s with role dev", got, created.ID)
		}
		if ls := links(t, s, created.ID); ls[0].LastLoginAt == nil || ls[0].LastLoginAt.Before(first) {
			t.Errorf("LinkedUser did not record the login: last_login_at %v, was %v", ls[0].LastLoginAt, first)
		}

		// The subject is matched exactly, per connector.
		for _, c := range [][2]string{{"gitlab", "1"}, {"github", "10"}, {"github", ""}, {"GitHub", "1"}} {
			if _, err := s.LinkedUser(ctx, c[0], c[1]); !errors.Is(err, linking.ErrNotLinked) {
				t.Errorf("LinkedUser(%q, %q) = %v, want ErrNotLinked", c[0], c[1], err)
			}
		}

		// Linking an identity that is already linked returns its user and creates nobody.
		before := rowCounts(t, db)
		again, err := s.CreateLinkedUser(ctx, up, linking.NewUser{Username: "octo2"})
		if err != nil || again.ID != created.ID {
			t.Errorf("CreateLinkedUser of a linked identity = %+v, %v; want user %s", again, err, created.ID)
		}
		if after := rowCounts(t, db); !maps.Equal(before, after) {
			t.Errorf("rows after CreateLinkedUser of a linked identity = %v, before %v", after, before)
		}

		// A taken username is an error, not someone else's account.
		_, err = s.CreateLinkedUser(ctx, linking.Upstream{Connector: "github", Subject: "2"}, linking.NewUser{Username: "OCTO"})
		if !errors.Is(err, linking.ErrUsernameTaken) {
			t.Errorf("CreateLinkedUser with a taken username: %v, want ErrUsernameTaken", err)
		}
		if _, err := s.LinkedUser(ctx, "github", "2"); !errors.Is(err, linking.ErrNotLinked) {
			t.Errorf("identity linked although its user was refused: %v", err)
		}
	})
}

// TestCreateLinkedUserRace is a concurrent first login of one upstream identity: every caller
// must get the same user, and exactly one user may exist.
func TestCreateLinkedUserRace(t *testing.T) {
	for _, sameName := range []bool{false, true} {
		t.Run(fmt.Sprintf("same username %v", sameName), func(t *testing.T) { createLinkedUserRace(t, sameName) })
	}
}

// createLinkedUserRace: concurrent first logins of one upstream identity, with
// different usernames (the link decides) or the same one (as upstreams send).
func createLinkedUserRace(t *testing.T, sameName bool) {
	const callers = 20
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		up := linking.Upstream{Connector: "oidc-corp", Subject: "00u1abcd", Username: "jdoe", Email: "jdoe@corp.example"}
		start := make(chan struct{})
		type result struct {
			u   *linking.User
			err error
		}
		results := make([]result, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				<-start
				u, err := s.CreateLinkedUser(ctx, up, linking.NewUser{
					Username: map[bool]string{true: "jdoe", false: fmt.Sprintf("jdoe-%02d", i)}[sameName], Roles: []string{"r"}, Groups: []string{"g"},
				})
				results[i] = result{u, err}
			})
		}
		close(start)
		wg.Wait()

		ids := map[string]bool{}
		for i, r := range results {
			if r.err != nil {
				t.Errorf("caller %d: %v", i, r.err)
				continue
			}
			ids[r.u.ID] = true
		}
		if len(ids) != 1 {
			t.Errorf("callers got %d different users, want 1: %v", len(ids), ids)
		}
		var linked []linking.Link
		if err := db.Where("connector = ? AND subject = ?", up.Connector, up.Subject).Find(&linked).Error; err != nil {
			t.Fatal(err)
		}
		if len(linked) != 1 {
			t.Fatalf("%d links for the identity, want 1", len(linked))
		}
		if !ids[linked[0].UserID] {
			t.Errorf("the link points to %s, not to the user the callers got (%v)", linked[0].UserID, ids)
		}
		// The losers' users, roles and groups were rolled back.
		if c := rowCounts(t, db); c["users"] != 1 || c["roles"] != 1 || c["groups"] != 1 || c["links"] != 1 {
			t.Errorf("rows after the race = %v, want one user with one role, group and link", c)
		}
	})
}
