package linking_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/linking"
)

// TestImport creates users with their local passwords and upstream links.
func TestImport(t *testing.T) {
	hash, err := linking.HashPassword("a password for the tests")
	if err != nil {
		t.Fatal(err)
	}
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		ctx := context.Background()
		n, err := s.Import(ctx, seqOf([]linking.ImportUser{
			{Username: " Ann ", Email: " ann@example.com ", EmailVerified: true, Name: "Ann", PasswordHash: hash,
				Links: []linking.ImportLink{{Connector: "corp", Subject: "S-1", Username: "ann.c", Email: "ann@corp.example"}}},
			{Username: "bob", Links: []linking.ImportLink{{Connector: "corp", Subject: "S-2"}, {Connector: "google", Subject: "G-2"}}},
		}))
		if err != nil || n != 2 {
			t.Fatalf("Import = %d, %v; want 2 users", n, err)
		}
		if got, want := rowCounts(t, db), map[string]int64{"users": 2, "links": 4, "roles": 0, "groups": 0}; !maps.Equal(got, want) {
			t.Errorf("rows = %v, want %v", got, want)
		}
		ann, err := s.VerifyPassword(ctx, "ANN", "a password for the tests")
		if err != nil || ann.Email != "ann@example.com" || !ann.EmailVerified || ann.Username != "Ann" {
			t.Fatalf("ann signs in as %+v, %v", ann, err)
		}
		if u, err := s.LinkedUser(ctx, "google", "G-2"); err != nil || u.Username != "bob" {
			t.Errorf("google G-2 is %+v, %v; want bob", u, err)
		}
	})
}

// TestImportRefused checks that a refused user, wherever it is in the file,
// leaves the database as it was, and that the error names its line.
func TestImportRefused(t *testing.T) {
	hash, err := linking.HashPassword("a password for the tests")
	if err != nil {
		t.Fatal(err)
	}
	good := func(n int) []linking.ImportUser { // more than one batch, to refuse after a batch was written
		out := make([]linking.ImportUser, n)
		for i := range out {
			out[i] = linking.ImportUser{Username: fmt.Sprintf("user%d", i), Links: []linking.ImportLink{{Connector: "corp", Subject: fmt.Sprintf("c%d", i)}}}
		}
		return out
	}
	with := func(n int, bad linking.ImportUser) []linking.ImportUser { return append(good(n), bad) }
	broken := func(yield func(linking.ImportUser, error) bool) { // a source that fails after a batch
		for u := range seqOf(good(600)) {
			if !yield(u, nil) {
				return
			}
		}
		yield(linking.ImportUser{}, errors.New("line 601: invalid character 'x' looking for beginning of value"))
	}
	tests := []struct {
		name string
		src  iter.Seq2[linking.ImportUser, error]
		want string
	}{
		{"empty username", seqOf(with(3, linking.ImportUser{Username: "  "})), "line 4: username"},
		{"taken in the database", seqOf(with(3, linking.ImportUser{Username: "EXISTING"})), "line 4: username \"existing\": username is taken"},
		{"twice in one batch", seqOf(with(3, linking.ImportUser{Username: "User1"})), "line 4: username \"User1\": username is taken (line 2)"},
		{"twice across batches", seqOf(with(700, linking.ImportUser{Username: "user3"})), "line 701: username \"user3\": username is taken"},
		{"subject linked in the database", seqOf(with(700, linking.ImportUser{Username: "x", Links: []linking.ImportLink{{Connector: "corp", Subject: "taken"}}})),
			"line 701: corp subject \"taken\": upstream identity is linked to another user"},
		{"subject twice in the file", seqOf(with(3, linking.ImportUser{Username: "x", Links: []linking.ImportLink{{Connector: "corp", Subject: "c0"}}})),
			"line 4: corp subject \"c0\": upstream identity is linked to another user (line 1)"},
		{"a link without a subject", seqOf(with(3, linking.ImportUser{Username: "x", Links: []linking.ImportLink{{Connector: "corp"}}})),
			"line 4: a link needs a connector and a subject"},
		{"a local link", seqOf(with(3, linking.ImportUser{Username: "x", Links: []linking.ImportLink{{Connector: "local", Subject: "x"}}})),
			"line 4: a local password is given as password_hash"},
		{"a password that is no hash", seqOf(with(3, linking.ImportUser{Username: "x", PasswordHash: "secret"})),
			"line 4: password_hash is not an argon2id hash"},
		{"a source that fails", broken, "line 601: invalid character"},
	}
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		ctx := context.Background()
		if _, err := s.Import(ctx, seqOf([]linking.ImportUser{{Username: "existing", PasswordHash: hash,
			Links: []linking.ImportLink{{Connector: "corp", Subject: "taken"}}}})); err != nil {
			t.Fatal(err)
		}
		before := rowCounts(t, db)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				n, err := s.Import(ctx, tt.src)
				if err == nil || !strings.Contains(err.Error(), tt.want) || n != 0 {
					t.Errorf("Import = %d, %v; want 0 and an error with %q", n, err, tt.want)
				}
				if after := rowCounts(t, db); !maps.Equal(after, before) {
					t.Errorf("rows = %v after a refused import, want %v as before", after, before)
				}
			})
		}
	})
}
