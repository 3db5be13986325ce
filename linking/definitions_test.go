package linking_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/linking"
)

// defineOrg defines reader ⊂ editor (composite), group eng with the role
// reader and its subgroup eng-backend with editor, and an admin-made role.
func defineOrg(ctx context.Context, t *testing.T, s *linking.Service) {
	t.Helper()
	for _, r := range []linking.Role{{Name: "reader"}, {Name: "editor", Includes: []string{"reader"}}, {Name: "deployer"}} {
		if err := s.SaveRole(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []linking.Group{{Name: "eng", Roles: []string{"deployer"}}, {Name: "eng-backend", Parent: "eng", Roles: []string{"editor"}}} {
		if err := s.SaveGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEffectiveRolesAndGroups(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		ctx := context.Background()
		defineOrg(ctx, t, s)
		u, err := s.CreateUser(ctx, linking.NewUser{Username: "ada", Roles: []string{"own"}, Groups: []string{"eng-backend"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name             string
			change           func() error
			roles, groups    []string
			direct, directGr []string
		}{
			{"nested group and composite", func() error { return nil },
				[]string{"deployer", "editor", "own", "reader"}, []string{"eng", "eng-backend"}, []string{"own"}, []string{"eng-backend"}},
			{"a composite changed", func() error { return s.SaveRole(ctx, linking.Role{Name: "editor"}) },
				[]string{"deployer", "editor", "own"}, []string{"eng", "eng-backend"}, []string{"own"}, []string{"eng-backend"}},
			{"a direct composite", func() error {
				if err := s.SaveRole(ctx, linking.Role{Name: "own", Includes: []string{"reader"}}); err != nil {
					return err
				}
				return s.LeaveGroup(ctx, u.ID, "eng-backend")
			}, []string{"own", "reader"}, nil, []string{"own"}, nil},
			{"joined the parent", func() error { return s.JoinGroup(ctx, u.ID, "eng") },
				[]string{"deployer", "own", "reader"}, []string{"eng"}, []string{"own"}, []string{"eng"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if err := tc.change(); err != nil {
					t.Fatal(err)
				}
				got, err := s.UserByID(ctx, u.ID)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got.Roles, tc.roles) || !slices.Equal(got.Groups, tc.groups) {
					t.Errorf("effective roles %v groups %v, want %v %v", got.Roles, got.Groups, tc.roles, tc.groups)
				}
				if !slices.Equal(got.DirectRoles, tc.direct) || !slices.Equal(got.DirectGroups, tc.directGr) {
					t.Errorf("direct roles %v groups %v, want %v %v", got.DirectRoles, got.DirectGroups, tc.direct, tc.directGr)
				}
			})
		}
	})
}

func TestDefinitionsRefused(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		ctx := context.Background()
		defineOrg(ctx, t, s)
		before, err := s.Definitions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name   string
			change func() error
			want   error
		}{
			{"group under its own subgroup", func() error { return s.SaveGroup(ctx, linking.Group{Name: "eng", Parent: "eng-backend"}) }, linking.ErrCycle},
			{"group under itself", func() error { return s.SaveGroup(ctx, linking.Group{Name: "eng", Parent: "eng"}) }, linking.ErrCycle},
			{"composite including its includer", func() error {
				return s.SaveRole(ctx, linking.Role{Name: "reader", Includes: []string{"editor"}})
			}, linking.ErrCycle},
			{"unknown parent", func() error { return s.SaveGroup(ctx, linking.Group{Name: "ops", Parent: "nope"}) }, linking.ErrNoDefinition},
			{"unknown group role", func() error { return s.SaveGroup(ctx, linking.Group{Name: "ops", Roles: []string{"nope"}}) }, linking.ErrNoDefinition},
			{"unknown included role", func() error { return s.SaveRole(ctx, linking.Role{Name: "x", Includes: []string{"nope"}}) }, linking.ErrNoDefinition},
			{"group with subgroups", func() error { return s.DeleteGroup(ctx, "eng") }, linking.ErrHasSubgroups},
			{"unknown group", func() error { return s.DeleteGroup(ctx, "nope") }, linking.ErrNoDefinition},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if err := tc.change(); !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				after, err := s.Definitions(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.EqualFunc(before.Groups, after.Groups, sameGroup) || len(before.Roles) != len(after.Roles) {
					t.Errorf("a refused change changed the definitions: %+v, was %+v", after, before)
				}
			})
		}
	})
}

func sameGroup(a, b linking.Group) bool {
	return a.Name == b.Name && a.Parent == b.Parent && slices.Equal(a.Roles, b.Roles)
}

func TestDeletingDefinitionsCleansUp(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		ctx := context.Background()
		defineOrg(ctx, t, s)
		u, err := s.CreateUser(ctx, linking.NewUser{Username: "ada", Roles: []string{"reader"}, Groups: []string{"eng-backend"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRole(ctx, "reader"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteGroup(ctx, "eng-backend"); err != nil {
			t.Fatal(err)
		}
		got, err := s.UserByID(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Roles, nil) || !slices.Equal(got.Groups, nil) {
			t.Errorf("after deletion: roles %v groups %v, want none", got.Roles, got.Groups)
		}
		for table, want := range map[string]int64{"user_roles": 0, "user_groups": 0, "role_composites": 0, "group_roles": 1,
			"group_definitions": 1, "role_definitions": 2} {
			var n int64
			if err := db.Table(table).Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			if n != want {
				t.Errorf("%s has %d rows, want %d", table, n, want)
			}
		}
	})
}

func TestConfigDefinitionsKeepAdminOnes(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		ctx := context.Background()
		if err := s.SaveRole(ctx, linking.Role{Name: "admin-made"}); err != nil {
			t.Fatal(err)
		}
		first := linking.Definitions{Roles: []linking.Role{{Name: "a"}, {Name: "b", Includes: []string{"a"}}},
			Groups: []linking.Group{{Name: "g", Roles: []string{"b"}}}}
		second := linking.Definitions{Roles: []linking.Role{{Name: "a"}}, Groups: []linking.Group{{Name: "g", Roles: []string{"a"}}}}
		for _, tc := range []struct {
			name  string
			defs  linking.Definitions
			roles []string
		}{{"first", first, []string{"a", "admin-made", "b"}}, {"reload drops b", second, []string{"a", "admin-made"}}} {
			t.Run(tc.name, func(t *testing.T) {
				if err := s.ApplyConfigDefinitions(ctx, tc.defs); err != nil {
					t.Fatal(err)
				}
				d, err := s.Definitions(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, r := range d.Roles {
					names = append(names, r.Name)
					if want := map[bool]string{true: "", false: linking.SourceConfig}[r.Name == "admin-made"]; r.Source != want {
						t.Errorf("role %s has source %q, want %q", r.Name, r.Source, want)
					}
				}
				if !slices.Equal(names, tc.roles) {
					t.Errorf("roles %v, want %v", names, tc.roles)
				}
			})
		}
	})
}

// TestDefinitionsSeenByOtherNodes: a change made through one node's service
// reaches another node's tokens within a second.
func TestDefinitionsSeenByOtherNodes(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		ctx := context.Background()
		other := linking.New(db, time.Now)
		defineOrg(ctx, t, s)
		u, err := s.CreateUser(ctx, linking.NewUser{Username: "ada", Groups: []string{"eng"}})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := other.UserByID(ctx, u.ID); got == nil || !slices.Equal(got.Roles, []string{"deployer"}) {
			t.Fatalf("other node sees %+v", got)
		}
		if err := s.SaveGroup(ctx, linking.Group{Name: "eng", Roles: []string{"editor"}}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(1500 * time.Millisecond)
		for {
			got, err := other.UserByID(ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			if slices.Equal(got.Roles, []string{"editor", "reader"}) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %v the other node still sees roles %v", 1500*time.Millisecond, got.Roles)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// TestUserInTransactionNeedsNoOtherConnection: reading a user inside a
// transaction — whose roles need the definitions checked — uses that
// transaction's connection only. With every other connection of the pool
// taken (here: a pool of one), a second one would never come, and on SQLite
// the transaction would keep the write lock from everyone until their busy
// timeout (50 concurrent first logins answered 500 that way).
func TestUserInTransactionNeedsNoOtherConnection(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		ctx := context.Background()
		defineOrg(ctx, t, s)
		u, err := s.CreateUser(ctx, linking.NewUser{Username: "solo", Groups: []string{"eng-backend"}})
		if err != nil {
			t.Fatal(err)
		}
		sqlDB, err := db.DB()
		if err != nil {
			t.Fatal(err)
		}
		sqlDB.SetMaxOpenConns(1)
		defer sqlDB.SetMaxOpenConns(0)
		time.Sleep(1100 * time.Millisecond) // past definitionsCheck: the read checks the definitions again
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err = db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			got, err := s.WithTx(tx).UserByID(ctx, u.ID)
			if err == nil && !slices.Contains(got.Roles, "editor") {
				err = errors.New("no effective roles")
			}
			return err
		})
		if err != nil {
			t.Fatalf("reading a user inside a transaction with a pool of one: %v", err)
		}
	})
}
