package linking_test

import (
	"context"
	"errors"
	"slices"
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
		if err := s.MoveLink(ctx, corp, other.ID, vaultOnly, nil, false); err != nil {
			t.Fatalf("MoveLink of one of two usable ways: %v", err)
		}
		if err := s.MoveLink(ctx, corp, u.ID, vaultOnly, nil, false); !errors.Is(err, linking.ErrLastLogin) {
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

// TestOneIdentityPerConnector: a user has at most one identity of a connector
// (finding 11 of issue 15) — through Link, AdminLink, MoveLink and Merge —
// unless the connector allows several.
func TestOneIdentityPerConnector(t *testing.T) {
	ctx := context.Background()
	severalOf := func(connectors ...string) linking.Several { // these allow several identities per user
		return func(c string) bool { return slices.Contains(connectors, c) }
	}
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		pat := mustCreate(t, s, linking.NewUser{Username: "pat", Password: "pat-Passw0rd!"})
		quinn := mustCreate(t, s, linking.NewUser{Username: "quinn", Password: "quinn-Passw0rd!"})
		link := func(userID string, up linking.Upstream) error {
			u, err := s.UserByID(ctx, userID)
			if err != nil {
				t.Fatal(err)
			}
			return s.Link(ctx, userID, u.LinkVersion, up)
		}
		if err := link(pat.ID, linking.Upstream{Connector: "corp", Subject: "pat"}); err != nil {
			t.Fatal(err)
		}
		// Another identity of corp: refused, by the person and the administrator alike.
		if err := link(pat.ID, linking.Upstream{Connector: "corp", Subject: "quinn"}); !errors.Is(err, linking.ErrConnectorLinked) {
			t.Fatalf("Link of a second corp identity: %v, want ErrConnectorLinked", err)
		}
		if err := s.AdminLink(ctx, pat.ID, linking.Upstream{Connector: "corp", Subject: "quinn"}); !errors.Is(err, linking.ErrConnectorLinked) {
			t.Fatalf("AdminLink of a second corp identity: %v, want ErrConnectorLinked", err)
		}
		// The same identity again is the old answer; another connector is fine.
		if err := link(pat.ID, linking.Upstream{Connector: "corp", Subject: "pat"}); !errors.Is(err, linking.ErrAlreadyLinked) {
			t.Fatalf("Link of the same identity: %v, want ErrAlreadyLinked", err)
		}
		if err := link(pat.ID, linking.Upstream{Connector: "partner", Subject: "pat"}); err != nil {
			t.Fatalf("Link of another connector: %v", err)
		}
		// A connector that allows several.
		for _, sub := range []string{"p1", "p2"} {
			if err := link(pat.ID, linking.Upstream{Connector: "shared", Subject: sub, Several: true}); err != nil {
				t.Fatalf("Link of shared/%s, which allows several: %v", sub, err)
			}
		}
		if err := link(quinn.ID, linking.Upstream{Connector: "corp", Subject: "quinn"}); err != nil {
			t.Fatal(err)
		}
		quinnCorp := links(t, s, quinn.ID)[1]
		if err := s.MoveLink(ctx, quinnCorp.ID, pat.ID, nil, severalOf("shared"), true); !errors.Is(err, linking.ErrConnectorLinked) {
			t.Fatalf("MoveLink of quinn's corp to pat (force): %v, want ErrConnectorLinked", err)
		}
		if err := s.Merge(ctx, pat.ID, quinn.ID, severalOf("shared")); !errors.Is(err, linking.ErrConnectorLinked) {
			t.Fatalf("Merge of two corp identities: %v, want ErrConnectorLinked", err)
		}
		if n := len(links(t, s, pat.ID)); n != 5 {
			t.Fatalf("pat has %d links after the refusals, want 5", n)
		}
		if n := len(links(t, s, quinn.ID)); n != 2 {
			t.Fatalf("quinn has %d links after the refusals, want 2", n)
		}
		// Where corp allows several, both go.
		if err := s.Merge(ctx, pat.ID, quinn.ID, severalOf("shared", "corp")); err != nil {
			t.Fatalf("Merge where corp allows several: %v", err)
		}
		if n := len(links(t, s, pat.ID)); n != 6 {
			t.Fatalf("pat has %d links after the merge, want 6", n)
		}
	})
}
