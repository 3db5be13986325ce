package linking_test

import (
	"context"
	"errors"
	"testing"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/linking"
)

// usableExcept counts every connector as a way to log in but the given ones
// (link-only or switched off).
func usableExcept(not ...string) linking.Usable {
	return func(connector string) bool {
		for _, n := range not {
			if n == connector {
				return false
			}
		}
		return true
	}
}

func TestRemovable(t *testing.T) {
	links := []linking.Link{{ID: 1, Connector: linking.LocalConnector}, {ID: 2, Connector: "vault"}, {ID: 3, Connector: "corp"}}
	for _, c := range []struct {
		name   string
		links  []linking.Link
		id     uint
		usable linking.Usable
		want   bool
	}{
		{"one of two usable", links, 1, usableExcept("vault"), true},
		{"a link-only one", links, 2, usableExcept("vault"), true},
		{"the password beside link-only links", links, 1, usableExcept("vault", "corp"), false},
		{"the password beside a switched-off connector", []linking.Link{links[0], links[2]}, 1, usableExcept("corp"), false},
		{"a link-only one beside the password", links[:2], 2, usableExcept("vault"), true},
		{"the last link, usable or not", links[1:2], 2, usableExcept("vault"), false},
		{"nothing usable left anyway", links[1:], 2, usableExcept("vault", "corp"), true},
		{"not the user's", links, 9, usableExcept(), false},
		{"nil usable: links are counted", links[:2], 1, nil, true},
	} {
		if got := linking.Removable(c.links, c.id, c.usable); got != c.want {
			t.Errorf("%s: Removable = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestUnlinkUsable: a user with a password and a link-only identity cannot
// remove the password (finding 8 of issue 15), nor have it moved away;
// an administrator's override still can.
func TestUnlinkUsable(t *testing.T) {
	ctx := context.Background()
	vaultOnly := usableExcept("vault")
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		u := mustCreate(t, s, linking.NewUser{Username: "pat", Password: "pat-Passw0rd!"})
		other := mustCreate(t, s, linking.NewUser{Username: "quinn"})
		if err := s.AdminLink(ctx, u.ID, linking.Upstream{Connector: "vault", Subject: "v1"}); err != nil {
			t.Fatal(err)
		}
		ls := links(t, s, u.ID)
		if len(ls) != 2 || ls[0].Connector != linking.LocalConnector {
			t.Fatalf("links = %+v", ls)
		}
		local, vault := ls[0].ID, ls[1].ID
		if err := s.Unlink(ctx, u.ID, local, vaultOnly, false); !errors.Is(err, linking.ErrLastLogin) {
			t.Fatalf("Unlink of the password beside a link-only identity: %v, want ErrLastLogin", err)
		}
		if err := s.AdminLink(ctx, u.ID, linking.Upstream{Connector: "corp", Subject: "c1"}); err != nil {
			t.Fatal(err)
		}
		corp := links(t, s, u.ID)[2].ID
		if err := s.MoveLink(ctx, corp, other.ID, vaultOnly, false); err != nil {
			t.Fatalf("MoveLink of one of two usable ways: %v", err)
		}
		if err := s.MoveLink(ctx, corp, u.ID, vaultOnly, false); !errors.Is(err, linking.ErrLastLogin) {
			t.Fatalf("MoveLink of quinn's only link: %v, want ErrLastLogin", err)
		}
		if len(links(t, s, u.ID)) != 2 {
			t.Fatal("a refused move moved")
		}
		if err := s.Unlink(ctx, u.ID, vault, vaultOnly, false); err != nil {
			t.Fatalf("Unlink of the link-only identity: %v", err)
		}
		if err := s.Unlink(ctx, u.ID, local, vaultOnly, false); !errors.Is(err, linking.ErrLastLogin) {
			t.Fatalf("Unlink of the last link: %v, want ErrLastLogin", err)
		}
		if err := s.Unlink(ctx, u.ID, local, vaultOnly, true); err != nil {
			t.Fatalf("Unlink with the override: %v", err)
		}
		if n := len(links(t, s, u.ID)); n != 0 {
			t.Fatalf("%d links left", n)
		}
	})
}
