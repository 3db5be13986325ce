package ldap

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/fedhub/fedhub/usernames"
	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// FuzzUserFilter: whatever a person types as a username, the search filter
// built from it, compiled by go-ldap as the directory would read it, has the
// structure of the filter built for a plain username ("alice", and for Active
// Directory also EXAMPLE\alice, alice@example.com and alice@other.example):
// the same clauses, the same attributes, the configured filter's values
// unchanged, and in the username's equality clauses exactly what was typed
// (trimmed, or the part after DOMAIN\ or before @). No wildcard, no presence
// test, no new clause ever comes from the input.
func FuzzUserFilter(f *testing.F) {
	type conn struct {
		name string
		c    *Connector
		refs []string // plain usernames; each shows one shape the filter may take
	}
	var conns []conn
	for _, tc := range []struct {
		name string
		cfg  Config
		refs []string
	}{
		{"openldap", Config{URLs: []string{"ldaps://ldap.example.com"}, UserBase: "ou=people,dc=example,dc=com"},
			[]string{"alice"}},
		{"custom filter", Config{URLs: []string{"ldaps://ldap.example.com"}, UserBase: "ou=people,dc=example,dc=com",
			UserFilter: "(&(objectClass=inetOrgPerson)(|(ou=staff)(ou=contractors))(mail=*)(!(pwdAccountLockedTime=*)))", UsernameAttr: "mail"},
			[]string{"alice"}},
		{"active directory", Config{URLs: []string{"ldaps://dc1.example.com"}, UserBase: "dc=example,dc=com",
			ActiveDirectory: true, Domain: "EXAMPLE", UPNSuffix: "example.com"},
			[]string{"alice", `EXAMPLE\alice`, "alice@example.com", "alice@other.example"}},
	} {
		c, err := New(tc.cfg, nil)
		if err != nil {
			f.Fatalf("%s: %v", tc.name, err)
		}
		conns = append(conns, conn{tc.name, c, tc.refs})
	}
	shapeOf := func(filter string) (filterShape, error) {
		p, err := ldap.CompileFilter(filter)
		if err != nil {
			return filterShape{}, err
		}
		var s filterShape
		s.masked = describeFilter(p, &s.values)
		return s, nil
	}
	refShapes := make([][]filterShape, len(conns))
	for i, cn := range conns {
		for _, ref := range cn.refs {
			filter, ok := cn.c.userFilter(ref)
			if !ok {
				f.Fatalf("%s: %q refused", cn.name, ref)
			}
			s, err := shapeOf(filter)
			if err != nil {
				f.Fatalf("%s: %s: %v", cn.name, filter, err)
			}
			for _, v := range s.values {
				s.username = append(s.username, strings.Contains(v, "alice"))
			}
			refShapes[i] = append(refShapes[i], s)
		}
	}

	for _, seed := range []string{
		"alice", " bob ", "Carol.Smith", "jean-luc", "ｃａｒｏｌ", "o'brien", "user+tag@example.com",
		`EXAMPLE\alice`, `example\alice`, `OTHER\alice`, `EXAMPLE\`, `\alice`, "alice@example.com", "alice@EXAMPLE.COM",
		"alice@other.example", "@example.com", "alice@",
		// Filter injection.
		"*", "a*", "*)(uid=*", "alice)(|(uid=*", "*)(&", "alice)(objectClass=*))(|(cn=*", `\2a`, `\`, `\\`,
		"(", ")", "\x00", "alice\x00", "admin)(!(userAccountControl:1.2.840.113556.1.4.803:=2)",
		`EXAMPLE\*`, `EXAMPLE\a)(cn=*`, "*@example.com", "a)(uid=*@example.com", "alice@example.com)(cn=*",
		"\xff\xfe", strings.Repeat("a", 256), strings.Repeat("*", 300),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, username string) {
		// The directory is asked for the username as fedhub normalises it
		// (usernames.Display: full-width to ASCII, spaces trimmed and folded,
		// case kept); one it refuses builds no filter.
		u, err := usernames.Display(username)
		if err != nil {
			u = strings.TrimSpace(username)
		}
		typed := []string{u}
		if _, after, ok := strings.Cut(u, `\`); ok {
			typed = append(typed, after)
		}
		if at := strings.LastIndexByte(u, '@'); at >= 0 {
			typed = append(typed, u[:at])
		}
		for i, cn := range conns {
			filter, ok := cn.c.userFilter(username)
			if !ok {
				continue
			}
			got, err := shapeOf(filter)
			if err != nil {
				t.Fatalf("%s: username %q: the filter %q does not compile: %v", cn.name, username, filter, err)
			}
			if !matchesRef(got, refShapes[i], typed) {
				want := make([]string, len(refShapes[i]))
				for j, r := range refShapes[i] {
					want[j] = fmt.Sprintf("%s %q", r.masked, r.values)
				}
				t.Fatalf("%s: username %q: filter %q reads as\n  %s %q\nwhich is none of the plain shapes\n  %s",
					cn.name, username, filter, got.masked, got.values, strings.Join(want, "\n  "))
			}
		}
	})
}

// matchesRef reports whether got has the structure of one of refs, with the
// configured values unchanged and each username value one of typed.
func matchesRef(got filterShape, refs []filterShape, typed []string) bool {
next:
	for _, r := range refs {
		if got.masked != r.masked || len(got.values) != len(r.values) {
			continue
		}
		for j, v := range got.values {
			if !r.username[j] {
				if v != r.values[j] {
					continue next
				}
				continue
			}
			found := false
			for _, t := range typed {
				found = found || v == t
			}
			if !found {
				continue next
			}
		}
		return true
	}
	return false
}

// filterShape is a compiled filter as describeFilter reads it.
type filterShape struct {
	masked   string
	values   []string
	username []bool // of a plain username's filter: which values came from the username
}

// describeFilter describes a compiled filter: AND, OR and NOT by their children,
// equality clauses by their attribute (the value goes to values, in order),
// every other clause (substrings, presence, ranges, approximate and
// extensible matches) in full, so that they compare with their values.
func describeFilter(p *ber.Packet, values *[]string) string {
	if p.ClassType != ber.ClassContext {
		return "raw(" + rawPacket(p) + ")"
	}
	switch p.Tag {
	case ldap.FilterAnd, ldap.FilterOr, ldap.FilterNot:
		s := ldap.FilterMap[uint64(p.Tag)] + "("
		for _, c := range p.Children {
			s += describeFilter(c, values)
		}
		return s + ")"
	case ldap.FilterEqualityMatch:
		if len(p.Children) != 2 {
			return "eq-malformed(" + rawPacket(p) + ")"
		}
		*values = append(*values, p.Children[1].Data.String())
		return "eq(" + strings.ToLower(p.Children[0].Data.String()) + ")"
	}
	return ldap.FilterMap[uint64(p.Tag)] + "(" + rawPacket(p) + ")"
}

func rawPacket(p *ber.Packet) string {
	s := fmt.Sprintf("%d/%d/%d", p.ClassType, p.TagType, p.Tag)
	if len(p.Children) == 0 {
		return s + ":" + hex.EncodeToString(p.Data.Bytes())
	}
	s += "["
	for _, c := range p.Children {
		s += rawPacket(c) + ","
	}
	return s + "]"
}
