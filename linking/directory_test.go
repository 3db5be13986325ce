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
		if len(got) != 1 || got["s1"].UserID != u.ID || !got["s1"].Profile.Same(want) || !slices.Equal(got["s1"].Profile.Roles, want.Roles) {
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

func TestProfileSame(t *testing.T) {
	base := linking.Profile{Email: "a@x", Name: "A", Roles: []string{"r1", "r2"}, Groups: []string{"g"}}
	for _, tc := range []struct {
		name string
		p    linking.Profile
		same bool
	}{
		{"equal", base, true},
		{"order and duplicates", linking.Profile{Email: "a@x", Name: "A", Roles: []string{"r2", "r1", "r1"}, Groups: []string{"g"}}, true},
		{"email", linking.Profile{Email: "b@x", Name: "A", Roles: base.Roles, Groups: base.Groups}, false},
		{"verified", linking.Profile{Email: "a@x", EmailVerified: true, Name: "A", Roles: base.Roles, Groups: base.Groups}, false},
		{"role gone", linking.Profile{Email: "a@x", Name: "A", Roles: []string{"r1"}, Groups: base.Groups}, false},
		{"group added", linking.Profile{Email: "a@x", Name: "A", Roles: base.Roles, Groups: []string{"g", "h"}}, false},
	} {
		if got := base.Same(tc.p); got != tc.same {
			t.Errorf("%s: Same = %v, want %v", tc.name, got, tc.same)
		}
	}
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
