package linking_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/store"
	"github.com/fedhub/fedhub/store/storetest"
)

// seqOf yields users as a file of them would, one a line.
func seqOf(users []linking.ImportUser) iter.Seq2[linking.ImportUser, error] {
	return func(yield func(linking.ImportUser, error) bool) {
		for i, u := range users {
			u.Line = i + 1
			if !yield(u, nil) {
				return
			}
		}
	}
}

// searchDirectory is a small directory with every kind of match: names and
// emails sharing prefixes, mixed case, users without an email, a connector
// most users have ("corp"), one few have ("rare"), local passwords, and an
// upstream subject that looks like a username prefix.
func searchDirectory(t *testing.T, hash string) []linking.ImportUser {
	t.Helper()
	first := []string{"ann", "anna", "bob", "Bea", "carl", "dora"}
	var out []linking.ImportUser
	for i := range 90 {
		f := first[i%len(first)]
		u := linking.ImportUser{Username: fmt.Sprintf("%s%02d", f, 89-i), Name: f}
		switch i % 4 {
		case 0:
			u.Email = fmt.Sprintf("%s.smith%d@example.com", strings.ToLower(f), i)
		case 1:
			u.Email = fmt.Sprintf("Bob.%s%d@Example.com", f, i) // an email that matches another name's prefix
		case 2:
			u.Email = fmt.Sprintf("a%d@example.com", i)
		}
		if i%3 != 0 {
			u.Links = append(u.Links, linking.ImportLink{Connector: "corp", Subject: fmt.Sprintf("corp-%d", i)})
		}
		if i%20 == 7 {
			u.Links = append(u.Links, linking.ImportLink{Connector: "rare", Subject: fmt.Sprintf("rare-%d", i)})
		}
		if i%5 == 0 {
			u.PasswordHash = hash
		}
		if i == 42 {
			u.Links = append(u.Links, linking.ImportLink{Connector: "google", Subject: "ann"}) // a subject equal to a prefix
		}
		out = append(out, u)
	}
	return out
}

// wantSearch is what Search must answer for q before paging, computed from
// the rows the database holds (links by user ID): users linked by the
// subject, then by username prefix (by username), then by email prefix (by
// email, then username).
func wantSearch(users []linking.User, links map[string][]linking.Link, q linking.Query) []string {
	linked := func(u linking.User, connector, subject string) bool {
		return slices.ContainsFunc(links[u.ID], func(l linking.Link) bool {
			return (connector == "" || l.Connector == connector) && (subject == "" || l.Subject == subject)
		})
	}
	in := func(u linking.User) bool { return q.Connector == "" || linked(u, q.Connector, "") }
	byName := func(a, b linking.User) int { return strings.Compare(a.UsernameKey, b.UsernameKey) }
	var subject, name, email []linking.User
	text := strings.TrimSpace(q.Text)
	key := strings.ToLower(text)
	for _, u := range users {
		switch {
		case !in(u):
		case text == "":
			name = append(name, u)
		case linked(u, "", text):
			subject = append(subject, u)
		case strings.HasPrefix(u.UsernameKey, key):
			name = append(name, u)
		case strings.HasPrefix(strings.ToLower(u.Email), key):
			email = append(email, u)
		}
	}
	slices.SortFunc(subject, byName)
	slices.SortFunc(name, byName)
	slices.SortFunc(email, func(a, b linking.User) int {
		return cmp.Or(strings.Compare(strings.ToLower(a.Email), strings.ToLower(b.Email)), byName(a, b))
	})
	var ids []string
	for _, u := range slices.Concat(subject, name, email) {
		ids = append(ids, u.ID)
	}
	return ids
}

// TestSearch pages through every filter combination — no text, a username
// or email prefix in any case, an exact subject, no match; no connector, a
// connector most users have, one few have, local passwords, an unknown one —
// with the connector's users fetched by their links and checked per user,
// on both databases.
func TestSearch(t *testing.T) {
	hash, err := linking.HashPassword("a password for the tests")
	if err != nil {
		t.Fatal(err)
	}
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		ctx := context.Background()
		if _, err := s.Import(ctx, seqOf(searchDirectory(t, hash))); err != nil {
			t.Fatal(err)
		}
		users, links, err := searchRows(db)
		if err != nil {
			t.Fatal(err)
		}
		for _, few := range []struct{ few, hashed int }{{0, 0}, {0, 1000}, {1000, 1000}} { // EXISTS, IN, candidates
			restore := linking.SetSearchFew(few.few, few.hashed)
			for _, text := range []string{"", "a", "ann", "ANN ", "bob.", "b", "bob.ann1", "corp-17", "zz"} {
				for _, connector := range []string{"", "corp", "rare", linking.LocalConnector, "nowhere"} {
					q := linking.Query{Text: text, Connector: connector, Limit: 7}
					want := wantSearch(users, links, q)
					for _, byCursor := range []bool{false, true} {
						got := searchPages(ctx, t, s, q, byCursor, len(want))
						if !slices.Equal(got, want) {
							t.Errorf("few %+v, text %q, connector %q, by cursor %v: got %d users %v, want %d %v",
								few, text, connector, byCursor, len(got), got, len(want), want)
						}
					}
				}
			}
			restore()
		}
	})
}

// searchPages pages through q by offset or by cursor and returns the IDs of
// the users found, checking that each page but the last is full and gives
// a cursor, and that the last gives none.
func searchPages(ctx context.Context, t *testing.T, s *linking.Service, q linking.Query, byCursor bool, total int) []string {
	t.Helper()
	var got []string
	for page := 0; ; page++ {
		found, next, err := s.Search(ctx, q)
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		for _, u := range found {
			got = append(got, u.ID)
		}
		if wantMore := total > len(got); (next != "") != wantMore || len(found) > q.Limit || wantMore && len(found) < q.Limit {
			t.Errorf("%+v: %d users, next %q; want more %v", q, len(found), next, wantMore)
		}
		if next == "" || page > total {
			return got
		}
		if byCursor {
			q.After = next
		} else {
			q.Offset += q.Limit
		}
	}
}

// TestSearchBadCursor checks that Search refuses a cursor that is not one it
// gave for the same search: edited, of another search, or not a cursor.
func TestSearchBadCursor(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *gorm.DB, s *linking.Service) {
		ctx := context.Background()
		planUsers(t, db)
		q := linking.Query{Text: "u", Connector: "corp", Limit: 3}
		_, next, err := s.Search(ctx, q)
		if err != nil || next == "" {
			t.Fatalf("first page: next %q, %v", next, err)
		}
		edited := []byte(next)
		edited[len(edited)/2] ^= 1
		for _, bad := range []linking.Query{
			{Text: q.Text, Connector: q.Connector, After: string(edited)},
			{Text: "us", Connector: q.Connector, After: next},
			{Text: q.Text, After: next},
			{Text: q.Text, Connector: q.Connector, After: "page-2"},
		} {
			if _, _, err := s.Search(ctx, bad); !errors.Is(err, linking.ErrBadCursor) {
				t.Errorf("%+v: %v, want ErrBadCursor", bad, err)
			}
		}
		q.After = next
		if found, _, err := s.Search(ctx, q); err != nil || len(found) != 3 || found[0].Username != "user03" {
			t.Errorf("the cursor itself: %d users, %v", len(found), err)
		}
	})
}

// searchRows reads what wantSearch needs of every user and link.
func searchRows(db *gorm.DB) ([]linking.User, map[string][]linking.Link, error) {
	var users []linking.User
	var links []linking.Link
	if err := db.Select("id", "username_key", "email").Find(&users).Error; err != nil {
		return nil, nil, err
	}
	if err := db.Select("user_id", "connector", "subject").Find(&links).Error; err != nil {
		return nil, nil, err
	}
	byUser := map[string][]linking.Link{}
	for _, l := range links {
		byUser[l.UserID] = append(byUser[l.UserID], l)
	}
	return users, byUser, nil
}

// planUsers imports the users TestSearchPlans and TestSearchPlansPostgres
// search: 50, each linked through corp.
func planUsers(t *testing.T, db *gorm.DB) {
	t.Helper()
	users := make([]linking.ImportUser, 50)
	for i := range users {
		users[i] = linking.ImportUser{Username: fmt.Sprintf("user%02d", i), Email: fmt.Sprintf("u%d@example.com", i),
			Links: []linking.ImportLink{{Connector: "corp", Subject: fmt.Sprint(i)}}}
	}
	if _, err := linking.New(db, time.Now).Import(context.Background(), seqOf(users)); err != nil {
		t.Fatal(err)
	}
}

// planWays are the ways corp's 50 users are checked in the plan tests: by
// an EXISTS per user, by an IN over a hash of them.
var planWays = []struct{ few, hashed int }{{10, 10}, {10, 1000}}

// planQueries are the searches whose plans TestSearchPlans and
// TestSearchPlansPostgres check: each from its first page and after the
// cursor of a first page of 3 (in the username part, or in the email part
// for "u1").
func planQueries(t *testing.T, db *gorm.DB) []linking.Query {
	t.Helper()
	qs := []linking.Query{{}, {Text: "us"}, {Text: "u1"}, {Connector: "corp"}, {Connector: "corp", Text: "u"}, {Connector: "corp", Text: "u1"}}
	for _, q := range qs {
		q.Limit = 3
		_, next, err := linking.New(db, time.Now).Search(context.Background(), q)
		if err != nil || next == "" {
			t.Fatalf("%+v: next %q, %v", q, next, err)
		}
		q.After = next
		qs = append(qs, q)
	}
	return qs
}

// TestSearchPlans checks on SQLite that each statement of a search reads an
// index in the order it shows and sorts nothing — the property that keeps a
// page's cost apart from the directory's size (BenchmarkSearch1M measures
// it) — that a walk by username reads its index alone, and that a walk after
// a cursor starts its index range at the cursor.
func TestSearchPlans(t *testing.T) {
	db := storetest.Open(t, "sqlite", linking.Models()...)
	ctx := context.Background()
	planUsers(t, db)
	for _, way := range planWays {
		defer linking.SetSearchFew(way.few, way.hashed)()
		for _, q := range planQueries(t, db) {
			err := sbPlans(ctx, db, q, "EXPLAIN QUERY PLAN ", func(sql, p string) {
				switch {
				case strings.Contains(p, "TEMP B-TREE"), strings.Contains(p, "SCAN users\n"), strings.Contains(p, "SCAN links\n"):
					t.Errorf("%+v: %s\nsorts or reads a whole table:\n%s", q, sql, p)
				case strings.Contains(sql, "ORDER BY username_key") && !strings.Contains(p, "COVERING INDEX idx_users_by_name"),
					strings.Contains(sql, "ORDER BY LOWER(email)") && !strings.Contains(p, "INDEX idx_users_email_key"),
					strings.Contains(sql, "links.user_id") && !strings.Contains(p, "COVERING INDEX idx_link_connector_user"),
					strings.Contains(sql, "IN (SELECT user_id") && !strings.Contains(p, "LIST SUBQUERY"):
					t.Errorf("%+v: %s\nreads another index than the one made for it:\n%s", q, sql, p)
				case strings.Contains(sql, "username_key > ") && !strings.Contains(p, "(username_key>?"),
					strings.Contains(sql, "(LOWER(email), username_key) > ") && !strings.Contains(p, "(<expr>>?"):
					t.Errorf("%+v: %s\nreads its index from another row than the cursor's:\n%s", q, sql, p)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

// pgAfterName and pgAfterEmail find a cursor's row as the start of an index
// range in a PostgreSQL plan.
var (
	pgAfterName  = regexp.MustCompile(`Index Cond: \(+username_key > `)
	pgAfterEmail = regexp.MustCompile(`Index Cond: \(+ROW\(lower\(\(email\)::text\), \(username_key\)::text\) > `)
)

// TestSearchPlansPostgres checks PostgreSQL's plans of a search as it would
// make them for a large directory — sequential scans priced out, parallel
// workers priced in (on a small table it would read everything, alone) —
// each statement explained after whatever settings the search sent before
// it: no statement starts parallel workers (which took 70–300 ms to read a
// few thousand index entries), a walk by username reads its index alone, and
// a walk after a cursor starts its index range at the cursor.
func TestSearchPlansPostgres(t *testing.T) {
	db := storetest.Open(t, "postgres", linking.Models()...)
	ctx := context.Background()
	planUsers(t, db)
	if err := store.Settle(ctx, db, linking.Models()...); err != nil { // the visibility map an index-only scan needs
		t.Fatal(err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1) // one session: the settings below hold for every statement
	for _, set := range []string{"enable_seqscan = off", "parallel_setup_cost = 0", "parallel_tuple_cost = 0",
		"min_parallel_index_scan_size = 0", "min_parallel_table_scan_size = 0"} {
		if err := db.Exec("SET " + set).Error; err != nil {
			t.Fatal(err)
		}
	}
	for _, way := range planWays {
		defer linking.SetSearchFew(way.few, way.hashed)()
		for _, q := range planQueries(t, db) {
			err := sbPlans(ctx, db, q, "EXPLAIN (COSTS OFF) ", func(sql, p string) {
				switch {
				case strings.Contains(p, "Gather"):
					t.Errorf("%+v: %s\nstarts parallel workers:\n%s", q, sql, p)
				case strings.Contains(sql, "ORDER BY username_key") && !strings.Contains(p, "Index Only Scan using idx_users_by_name"):
					t.Errorf("%+v: %s\nwalks usernames by another way than idx_users_by_name alone:\n%s", q, sql, p)
				case strings.Contains(sql, "IN (SELECT user_id") && !strings.Contains(p, "hashed SubPlan"):
					t.Errorf("%+v: %s\nchecks the connector's users by another way than a hash of them:\n%s", q, sql, p)
				case strings.Contains(sql, "username_key > ") && !pgAfterName.MatchString(p),
					strings.Contains(sql, "(LOWER(email), username_key) > ") && !pgAfterEmail.MatchString(p):
					t.Errorf("%+v: %s\nreads its index from another row than the cursor's:\n%s", q, sql, p)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}
