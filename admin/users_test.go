package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/store/storetest"
	"github.com/fedhub/fedhub/templates"
)

// TestUsersPaging: the users API pages by its next cursor through the same
// users as by offset, refuses an edited cursor with a 400 that says so, and
// the users page's Next link continues by the cursor, on both databases.
func TestUsersPaging(t *testing.T) {
	storetest.ForEachDB(t, linking.Models(), func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		users := linking.New(db, time.Now)
		var want []string
		if _, err := users.Import(ctx, func(yield func(linking.ImportUser, error) bool) {
			for i := range 60 {
				want = append(want, fmt.Sprintf("user%02d", i))
				if !yield(linking.ImportUser{Line: i + 1, Username: want[i]}, nil) {
					return
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
		s := &Service{db: db, users: users}
		e := echo.New()
		var err error
		if e.Renderer, err = templates.New(); err != nil {
			t.Fatal(err)
		}
		get := func(h echo.HandlerFunc, target string) *httptest.ResponseRecorder {
			t.Helper()
			rec := httptest.NewRecorder()
			c := e.NewContext(httptest.NewRequest(http.MethodGet, target, nil), rec)
			c.Set(ctxUser, &linking.User{})
			c.Set(ctxSession, &Session{})
			if err := h(c); err != nil {
				t.Fatalf("%s: %v", target, err)
			}
			return rec
		}
		type answer struct {
			Users []userView
			More  bool
			Next  string
		}
		page := func(target string) answer {
			t.Helper()
			rec := get(s.apiUsers, target)
			var a answer
			if err := json.Unmarshal(rec.Body.Bytes(), &a); rec.Code != http.StatusOK || err != nil {
				t.Fatalf("%s: %d %s", target, rec.Code, rec.Body)
			}
			if a.More != (a.Next != "") {
				t.Errorf("%s: more %v, next %q", target, a.More, a.Next)
			}
			return a
		}
		for _, byCursor := range []bool{false, true} {
			var got []string
			for target := apiPrefix + "/users?q=user&limit=7"; target != ""; {
				a := page(target)
				for _, u := range a.Users {
					got = append(got, u.Username)
				}
				switch {
				case !a.More:
					target = ""
				case byCursor:
					target = apiPrefix + "/users?q=user&limit=7&after=" + a.Next
				default:
					target = fmt.Sprintf("%s/users?q=user&limit=7&offset=%d", apiPrefix, len(got))
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("by cursor %v: %v, want %v", byCursor, got, want)
			}
		}

		next := page(apiPrefix + "/users?q=user&limit=7").Next
		for _, target := range []string{
			apiPrefix + "/users?q=user&limit=7&after=" + next[:len(next)-2] + "AA",
			apiPrefix + "/users?q=use&limit=7&after=" + next, // another search's
		} {
			rec := get(s.apiUsers, target)
			var e apiError
			if err := json.Unmarshal(rec.Body.Bytes(), &e); rec.Code != http.StatusBadRequest || err != nil ||
				!strings.Contains(rec.Body.String(), "the cursor is not one this search gave") {
				t.Errorf("%s: %d %s, want 400 about the cursor", target, rec.Code, rec.Body)
			}
		}

		href := regexp.MustCompile(`href="([^"]*)" id="next-page"`)
		first := get(s.usersPage, "/admin/users?q=user").Body.String()
		m := href.FindStringSubmatch(first)
		if m == nil || !strings.Contains(m[1], "after=") {
			t.Fatalf("the first page's Next link: %v", m)
		}
		second := get(s.usersPage, html.UnescapeString(m[1])).Body.String()
		if !strings.Contains(second, "user50") || !strings.Contains(second, "user59") || strings.Contains(second, "user49") ||
			href.MatchString(second) || !strings.Contains(second, "offset=0") {
			t.Errorf("the second page by the cursor:\n%s", second)
		}
		if rec := get(s.usersPage, "/admin/users?q=user&after=x"+m[1][len(m[1])-5:]); rec.Code != http.StatusBadRequest {
			t.Errorf("an edited cursor: %d", rec.Code)
		}
	})
}
