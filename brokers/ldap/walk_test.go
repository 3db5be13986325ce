package ldap_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/brokers/ldap"
	"github.com/fedhub/fedhub/e2e/peers"
)

// walkAll walks c from since and returns the entries by subject.
func walkAll(t *testing.T, c *ldap.Connector, since string) (map[string]brokers.DirectoryEntry, brokers.Walked) {
	t.Helper()
	got := map[string]brokers.DirectoryEntry{}
	walked, err := c.Walk(ctx(t), since, func(page []brokers.DirectoryEntry) error {
		if len(page) > 1000 {
			t.Errorf("a page of %d entries", len(page))
		}
		for _, e := range page {
			if _, dup := got[e.Identity.Subject]; dup {
				t.Errorf("%s walked twice", e.Identity.Subject)
			}
			got[e.Identity.Subject] = e
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return got, walked
}

// TestWalkIsLogin: every entry a walk gives is the identity a login of it
// gives — subject, names, groups — and Subjects lists the same entries.
func TestWalkIsLogin(t *testing.T) {
	for _, tc := range []struct {
		name   string
		server func(t *testing.T) (ldap.Config, map[string]peers.LDAPUser)
		check  []string
	}{
		{"openldap", func(t *testing.T) (ldap.Config, map[string]peers.LDAPUser) {
			s := peers.OpenLDAP(t)
			return openLDAPConfig(s), s.Users
		}, []string{"alice", "bob", "jdoe1"}},
		{"ad", func(t *testing.T) (ldap.Config, map[string]peers.LDAPUser) {
			s := peers.SambaAD(t)
			return adConfig(s), s.Users
		}, []string{"alice", "service"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, users := tc.server(t)
			c, _ := connector(t, cfg)
			got, walked := walkAll(t, c, "")
			if !walked.Full {
				t.Error("a walk from nothing is not full")
			}
			for _, name := range tc.check {
				u := users[name]
				id, err := c.Login(ctx(t), u.Username, u.Password, nil)
				if err != nil {
					t.Fatalf("Login %s: %v", name, err)
				}
				e, ok := got[id.Subject]
				if !ok {
					t.Fatalf("%s (%s) not walked", name, id.Subject)
				}
				w := e.Identity
				if w.Username != id.Username || w.Email != id.Email || w.Name != id.Name || !slices.Equal(w.Groups, id.Groups) || e.Disabled {
					t.Errorf("walked %+v (disabled %v), login gives %+v", w, e.Disabled, id)
				}
			}
			if d, ok := users["disabled"]; ok && !got[d.ID].Disabled { // AD: userAccountControl bit 2
				t.Errorf("the disabled account walked as %+v, want it marked disabled", got[d.ID])
			}
			var listed []string
			if err := c.Subjects(ctx(t), func(page []string) error { listed = append(listed, page...); return nil }); err != nil {
				t.Fatalf("Subjects: %v", err)
			}
			if len(listed) != len(got) {
				t.Errorf("Subjects listed %d, Walk gave %d", len(listed), len(got))
			}
			for _, s := range listed {
				if _, ok := got[s]; !ok {
					t.Errorf("Subjects lists %s, which Walk did not give", s)
				}
			}
		})
	}
}

// TestWalkADIncremental: on AD a walk starts from the mark of the last one
// and gives only what changed since.
func TestWalkADIncremental(t *testing.T) {
	s := peers.SambaAD(t)
	c, _ := connector(t, adConfig(s))
	all, first := walkAll(t, c, "")
	_, usn, _ := strings.Cut(first.Mark, ":")
	if _, err := strconv.ParseUint(usn, 10, 64); err != nil || !first.Full {
		t.Fatalf("first walk = %+v, want a full walk with a USN mark", first)
	}
	changed, second := walkAll(t, c, first.Mark)
	if second.Full || len(changed) >= len(all) {
		t.Errorf("walk since %s = %+v with %d of %d entries, want an incremental walk", first.Mark, second, len(changed), len(all))
	}
	if second.Mark == "" {
		t.Errorf("no second mark")
	}
	// Another scope (here a user filter) does not start from this mark.
	cfg := adConfig(s)
	cfg.UserFilter = "(&(objectClass=user)(objectCategory=person)(sAMAccountName=*))"
	other, _ := connector(t, cfg)
	if _, walked := walkAll(t, other, second.Mark); !walked.Full {
		t.Errorf("a walk of another filter from this mark was incremental")
	}
}
