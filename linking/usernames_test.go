package linking_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/usernames"
)

// Issue 15, finding 3: "ａｌｉｃｅ" became a second user beside "alice". One
// key per name (usernames.Key) is used for storage and lookups, and new
// usernames with look-alike or invisible characters are refused.
func TestUsernameLookAlikes(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		alice := mustCreate(t, s, linking.NewUser{Username: "alice", Password: "s3cret!"})
		john := mustCreate(t, s, linking.NewUser{Username: "John  Smith"})
		if john.Username != "John Smith" || john.UsernameKey != "john smith" {
			t.Errorf("John  Smith is kept as %q under %q, want %q under %q", john.Username, john.UsernameKey, "John Smith", "john smith")
		}
		before := rowCounts(t, db)
		for _, name := range []string{"ａｌｉｃｅ", "ＡＬＩＣＥ", " alice", "Ａlice\u3000", "john smith", "JOHN \u00a0SMITH"} {
			if u, err := s.CreateUser(ctx, linking.NewUser{Username: name, Password: "other"}); !errors.Is(err, linking.ErrUsernameTaken) {
				t.Errorf("CreateUser(%q) = %+v, %v; want ErrUsernameTaken", name, u, err)
			}
		}
		for _, tc := range []struct{ name, says string }{
			{"\u0430lice", "different scripts"}, // Cyrillic а
			{"ali\u200bce", "invisible"},        // zero-width space
			{"alice\u200d", "invisible"},        // zero-width joiner
			{"\u0251lice", "phonetic"},          // Latin alpha
			{"асе", "look like Latin"},          // Cyrillic only, all Latin look-alikes
			{"bob☃", "symbols"},
			{"", "Choose a username"},
		} {
			u, err := s.CreateUser(ctx, linking.NewUser{Username: tc.name, Password: "other"})
			if !errors.Is(err, usernames.ErrInvalid) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("CreateUser(%q) = %+v, %v; want usernames.ErrInvalid saying %q", tc.name, u, err, tc.says)
			}
		}
		if after := rowCounts(t, db); !maps.Equal(before, after) {
			t.Errorf("rows after refused usernames = %v, before %v", after, before)
		}

		// Every spelling finds the one user.
		for _, name := range []string{"ａｌｉｃｅ", "ALICE", " alice "} {
			if u, err := s.UserByUsername(ctx, name); err != nil || u.ID != alice.ID {
				t.Errorf("UserByUsername(%q) = %+v, %v; want alice", name, u, err)
			}
			if u, err := s.VerifyPassword(ctx, name, "s3cret!"); err != nil || u.ID != alice.ID {
				t.Errorf("VerifyPassword(%q) = %+v, %v; want alice", name, u, err)
			}
			if id, err := s.LocalAccount(ctx, name); err != nil || id != alice.ID {
				t.Errorf("LocalAccount(%q) = %q, %v; want alice's ID", name, id, err)
			}
		}
		if u, err := s.UserByUsername(ctx, "john   SMITH"); err != nil || u.ID != john.ID {
			t.Errorf("UserByUsername(john   SMITH) = %+v, %v; want John Smith", u, err)
		}
		for _, name := range []string{"\u0430lice", "ali\u200bce", "", strings.Repeat("a", 5000)} {
			if u, err := s.UserByUsername(ctx, name); !errors.Is(err, linking.ErrNotFound) {
				t.Errorf("UserByUsername(%q) = %+v, %v; want ErrNotFound", name, u, err)
			}
		}
		// No password, no local account.
		if id, err := s.LocalAccount(ctx, "john smith"); !errors.Is(err, linking.ErrNotFound) {
			t.Errorf("LocalAccount of a user without a password = %q, %v; want ErrNotFound", id, err)
		}
		if err := s.SetDisabled(ctx, "ＡＬＩＣＥ", true); err != nil {
			t.Errorf("SetDisabled(ＡＬＩＣＥ): %v", err)
		}
		if u, _ := s.UserByID(ctx, alice.ID); u == nil || !u.Disabled {
			t.Errorf("alice is not disabled: %+v", u)
		}
	})
}

// Keys made before usernames.Key (lower-cased, spaces as typed) are redone.
func TestRekeyUsernames(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		old := func(id, name, key string) {
			t.Helper()
			if err := db.Create(&linking.User{ID: id, Username: name, UsernameKey: key}).Error; err != nil {
				t.Fatal(err)
			}
		}
		old("1", "alice", "alice")
		old("2", "ａｌｉｃｅ", "ａｌｉｃｅ") // the look-alike of before: alice keeps the key
		old("3", "John  Smith", "john  smith")
		old("4", "Zoë", "zoë")
		old("5", "bob☃", "bob☃")
		old("6", "ＣＡＲＯＬ", "ｃａｒｏｌ")
		stuck, err := s.RekeyUsernames(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, st := range stuck {
			ids = append(ids, st.UserID)
		}
		if !slices.Equal(ids, []string{"2", "5"}) {
			t.Errorf("stuck = %+v, want users 2 (key taken) and 5 (refused)", stuck)
		}
		for name, want := range map[string]string{"alice": "1", "ＡＬＩＣＥ": "1", "john smith": "3", "ZOË": "4", "carol": "6"} {
			if u, err := s.UserByUsername(ctx, name); err != nil || u.ID != want {
				t.Errorf("UserByUsername(%q) after rekeying = %+v, %v; want user %s", name, u, err, want)
			}
		}
		// Again: nothing to do, the same users stuck.
		if again, err := s.RekeyUsernames(ctx); err != nil || len(again) != 2 {
			t.Errorf("RekeyUsernames again = %+v, %v", again, err)
		}
	})
}
