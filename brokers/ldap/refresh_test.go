package ldap_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/fedhub/fedhub/brokers/ldap"
	"github.com/fedhub/fedhub/e2e/peers"
	"github.com/fedhub/fedhub/login"
)

// refreshed re-checks the identity of subject at c.
func refreshed(t *testing.T, c *ldap.Connector, subject string) (*login.Identity, error) {
	t.Helper()
	res, err := c.Refresh(ctx(t), login.Identity{Connector: "corp", Subject: subject}, time.Now())
	return res.Current, err
}

// TestRefreshOpenLDAP: the entry is found again by its entryUUID, with its
// profile and groups now; gone, out of user_filter or outside user_base is
// the directory's no.
func TestRefreshOpenLDAP(t *testing.T) {
	s := peers.OpenLDAP(t)
	c, _ := connector(t, openLDAPConfig(s))
	alice := s.Users["alice"]
	cur, err := refreshed(t, c, alice.ID)
	if err != nil {
		t.Fatalf("re-check of alice: %v", err)
	}
	if cur.Username != "alice" || cur.Email != alice.Email || !slices.Contains(cur.Groups, "engineering") {
		t.Fatalf("alice now: %+v", cur)
	}

	narrow := openLDAPConfig(s)
	narrow.UserFilter = "(&(objectClass=person)(!(uid=alice)))" // alice moved out of the filter
	cn, _ := connector(t, narrow)
	for name, subject := range map[string]string{
		"an entryUUID nobody has":       "00000000-0000-0000-0000-000000000000",
		"a DN outside user_base":        "uid=alice,ou=elsewhere,dc=example,dc=test",
		"a DN under user_base, no more": "uid=gone," + s.UserBase,
	} {
		if _, err := refreshed(t, c, subject); !errors.Is(err, login.ErrUpstreamRefused) {
			t.Errorf("%s: %v, want refused", name, err)
		}
	}
	if _, err := refreshed(t, cn, alice.ID); !errors.Is(err, login.ErrUpstreamRefused) {
		t.Errorf("alice out of user_filter: %v, want refused", err)
	}

	// Deleted: the admin removes a fresh entry.
	conn, err := goldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Bind(s.AdminDN, s.AdminPassword); err != nil {
		t.Fatal(err)
	}
	dn := "uid=leaver," + s.UserBase
	add := goldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"inetOrgPerson"})
	add.Attribute("uid", []string{"leaver"})
	add.Attribute("cn", []string{"Leaver"})
	add.Attribute("sn", []string{"Leaver"})
	if err := conn.Add(add); err != nil {
		t.Fatal(err)
	}
	res, err := conn.Search(goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, 0, 1, 0, false, "(objectClass=*)", []string{"entryUUID"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("read the new entry: %v", err)
	}
	uuid := res.Entries[0].GetAttributeValue("entryUUID")
	if _, err := refreshed(t, c, uuid); err != nil {
		t.Fatalf("re-check of the new entry: %v", err)
	}
	if err := conn.Del(goldap.NewDelRequest(dn, nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := refreshed(t, c, uuid); !errors.Is(err, login.ErrUpstreamRefused) || !strings.Contains(err.Error(), "gone") {
		t.Fatalf("re-check of the deleted entry: %v, want refused as gone", err)
	}
}

// TestRefreshAD: found again by objectGUID; Active Directory's disabled,
// locked and expired accounts are its no, each named.
func TestRefreshAD(t *testing.T) {
	s := peers.SambaAD(t)
	c, _ := connector(t, adConfig(s))
	cur, err := refreshed(t, c, s.Users["alice"].ID)
	if err != nil {
		t.Fatalf("re-check of alice: %v", err)
	}
	if cur.Username != "alice" || !slices.Equal(cur.Groups, []string{"AllStaff", "Engineering"}) {
		t.Fatalf("alice now: %+v", cur)
	}
	for user, why := range map[string]string{"disabled": "disabled", "locked": "locked", "expired": "expired"} {
		_, err := refreshed(t, c, s.Users[user].ID)
		if !errors.Is(err, login.ErrUpstreamRefused) || !strings.Contains(err.Error(), why) {
			t.Errorf("re-check of %s: %v, want refused as %s", user, err, why)
		}
	}
	if _, err := refreshed(t, c, "6f3b1c2a-0000-4000-8000-000000000000"); !errors.Is(err, login.ErrUpstreamRefused) {
		t.Errorf("an objectGUID nobody has: %v, want refused", err)
	}
}

// TestRefreshUnreachable: a directory that cannot be reached is not a no.
func TestRefreshUnreachable(t *testing.T) {
	c, _ := connector(t, ldap.Config{URLs: []string{"ldaps://127.0.0.1:1"}, UserBase: "dc=example,dc=test", Timeout: 2 * time.Second})
	if _, err := refreshed(t, c, "00000000-0000-0000-0000-000000000000"); err == nil || errors.Is(err, login.ErrUpstreamRefused) {
		t.Fatalf("re-check with the directory down: %v, want an error that is not a no", err)
	}
}

// TestRefusal: the account states a re-check refuses, from the attributes a
// directory returns (OpenLDAP's ppolicy lock; AD's flags and expiry, on a
// test clock).
func TestRefusal(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	fileTime := func(at time.Time) string { return strconv.FormatInt(at.UnixNano()/100+116444736000000000, 10) }
	for _, tc := range []struct {
		name  string
		ad    bool
		attrs map[string][]string
		want  string
	}{
		{"plain entry", false, nil, ""},
		{"ppolicy lock", false, map[string][]string{"pwdAccountLockedTime": {"000001010000Z"}}, "locked"},
		{"AD normal account", true, map[string][]string{"userAccountControl": {"512"}, "accountExpires": {"0"}}, ""},
		{"AD disabled", true, map[string][]string{"userAccountControl": {"514"}}, "disabled"},
		{"AD locked out", true, map[string][]string{"userAccountControl": {"512"}, "msDS-User-Account-Control-Computed": {"16"}}, "locked"},
		{"AD expired", true, map[string][]string{"accountExpires": {fileTime(now.Add(-time.Minute))}}, "expired"},
		{"AD expires later", true, map[string][]string{"accountExpires": {fileTime(now.Add(time.Minute))}}, ""},
		{"AD never expires", true, map[string][]string{"accountExpires": {"9223372036854775807"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ldap.Config{URLs: []string{"ldaps://dc.example"}, UserBase: "dc=example", ActiveDirectory: tc.ad,
				Now: func() time.Time { return now }}
			c, _ := connector(t, cfg)
			if got := c.Refusal(goldap.NewEntry("cn=x,dc=example", tc.attrs)); got != tc.want {
				t.Fatalf("refusal = %q, want %q", got, tc.want)
			}
		})
	}
}
