package linking_test

import (
	"context"
	"slices"
	"testing"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/linking"
)

// TestSyncedUsers reads, per subject, what a connector manages of its users.
func TestSyncedUsers(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		ctx := context.Background()
		u, err := s.CreateLinkedUser(ctx, linking.Upstream{Connector: "corp", Subject: "s1"},
			linking.NewUser{Username: "ann", Email: "ann@example.com", Name: "Ann", Roles: []string{"b", "a"}, Groups: []string{"g"}, Source: "corp"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.GrantRole(ctx, u.ID, "local-role"); err != nil { // not the connector's: not its profile
			t.Fatal(err)
		}
		got, err := s.SyncedUsers(ctx, "corp", []string{"s1", "s2"})
		if err != nil {
			t.Fatal(err)
		}
		want := linking.Profile{Email: "ann@example.com", Name: "Ann", Roles: []string{"a", "b"}, Groups: []string{"g"}}
		if p := got["s1"].Profile; len(got) != 1 || got["s1"].UserID != u.ID || p.Email != want.Email || p.Name != want.Name ||
			!slices.Equal(p.Roles, want.Roles) || !slices.Equal(p.Groups, want.Groups) {
			t.Errorf("SyncedUsers = %+v, want s1 → %s with %+v", got, u.ID, want)
		}
		if other, err := s.SyncedUsers(ctx, "other", []string{"s1"}); err != nil || len(other) != 0 {
			t.Errorf("another connector's = %+v, %v", other, err)
		}
		all, err := s.LinkedSubjects(ctx, "corp")
		if err != nil || len(all) != 1 || all[0].Subject != "s1" || all[0].UserID != u.ID {
			t.Errorf("LinkedSubjects = %+v, %v", all, err)
		}
	})
}

// TestSyncedCurrent: a user is current with a profile when SyncUser would
// change nothing — a role the user holds locally counts as held.
func TestSyncedCurrent(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		ctx := context.Background()
		u, err := s.CreateLinkedUser(ctx, linking.Upstream{Connector: "corp", Subject: "s1"},
			linking.NewUser{Username: "ann", Email: "a@x", Name: "A", Roles: []string{"r1", "r2"}, Groups: []string{"g"}, Source: "corp"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.GrantRole(ctx, u.ID, "local"); err != nil {
			t.Fatal(err)
		}
		got, err := s.SyncedUsers(ctx, "corp", []string{"s1"})
		if err != nil {
			t.Fatal(err)
		}
		synced := got["s1"]
		roles, groups := []string{"r1", "r2"}, []string{"g"}
		for _, tc := range []struct {
			name    string
			p       linking.Profile
			current bool
		}{
			{"equal", linking.Profile{Email: "a@x", Name: "A", Roles: roles, Groups: groups}, true},
			{"order and duplicates", linking.Profile{Email: "a@x", Name: "A", Roles: []string{"r2", "r1", "r1"}, Groups: groups}, true},
			{"a role held locally", linking.Profile{Email: "a@x", Name: "A", Roles: []string{"r1", "r2", "local"}, Groups: groups}, true},
			{"email", linking.Profile{Email: "b@x", Name: "A", Roles: roles, Groups: groups}, false},
			{"verified", linking.Profile{Email: "a@x", EmailVerified: true, Name: "A", Roles: roles, Groups: groups}, false},
			{"role gone", linking.Profile{Email: "a@x", Name: "A", Roles: []string{"r1"}, Groups: groups}, false},
			{"role added", linking.Profile{Email: "a@x", Name: "A", Roles: []string{"r1", "r2", "r3"}, Groups: groups}, false},
			{"group added", linking.Profile{Email: "a@x", Name: "A", Roles: roles, Groups: []string{"g", "h"}}, false},
			{"group gone", linking.Profile{Email: "a@x", Name: "A", Roles: roles}, false},
		} {
			if got := synced.Current(tc.p); got != tc.current {
				t.Errorf("%s: Current = %v, want %v", tc.name, got, tc.current)
			}
		}
	})
}

// TestDisableFor: a sync re-enables only the users it disabled itself; an
// administrator's disable — even of a user the sync had disabled — stays.
func TestDisableFor(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		ctx := context.Background()
		const by = "sync:corp"
		synced := mustCreate(t, s, linking.NewUser{Username: "synced"})
		admin := mustCreate(t, s, linking.NewUser{Username: "byadmin"})
		retaken := mustCreate(t, s, linking.NewUser{Username: "retaken"})
		step := func(what string, got bool, err error, want bool) {
			t.Helper()
			if err != nil || got != want {
				t.Errorf("%s = %v, %v; want %v", what, got, err, want)
			}
		}
		changed, err := s.DisableFor(ctx, synced.ID, by)
		step("DisableFor(synced)", changed, err, true)
		changed, err = s.DisableFor(ctx, synced.ID, by)
		step("DisableFor(synced) again", changed, err, false)
		if err := s.SetDisabledByID(ctx, admin.ID, true); err != nil {
			t.Fatal(err)
		}
		changed, err = s.DisableFor(ctx, admin.ID, by)
		step("DisableFor(admin-disabled)", changed, err, false)
		changed, err = s.DisableFor(ctx, retaken.ID, by)
		step("DisableFor(retaken)", changed, err, true)
		if err := s.SetDisabled(ctx, "retaken", true); err != nil { // the administrator takes it over
			t.Fatal(err)
		}

		changed, err = s.EnableFor(ctx, admin.ID, by)
		step("EnableFor(admin-disabled)", changed, err, false)
		changed, err = s.EnableFor(ctx, retaken.ID, by)
		step("EnableFor(retaken by the admin)", changed, err, false)
		changed, err = s.EnableFor(ctx, synced.ID, by)
		step("EnableFor(synced)", changed, err, true)
		changed, err = s.EnableFor(ctx, synced.ID, "sync:other")
		step("EnableFor(enabled)", changed, err, false)
		for id, want := range map[string]bool{synced.ID: false, admin.ID: true, retaken.ID: true} {
			if u, err := s.UserByID(ctx, id); err != nil || u.Disabled != want {
				t.Errorf("user %s disabled = %v, %v; want %v", id, u.Disabled, err, want)
			}
		}
	})
}
