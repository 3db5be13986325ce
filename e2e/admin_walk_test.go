package e2e

import (
	"database/sql"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/fedhub/fedhub/admin"
)

// adminPage turns a page route into a URL and a method (":id" becomes id).
func adminPage(s *Server, route [2]string, id string) (string, string) {
	return route[0], s.URL + strings.ReplaceAll(route[1], ":id", id)
}

// do sends one request of the walk; POSTs carry a form, as the pages' do.
func (b *Browser) do(method, rawURL string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	if method == http.MethodPost {
		return b.PostForm(rawURL, form)
	}
	return b.Get(rawURL)
}

// TestAdminPagesRefuseNonAdmins walks every admin page: a signed-in
// non-admin gets 403 on each, and so does an admin whose role was taken away
// while their admin session lives — the role is checked on every request.
func TestAdminPagesRefuseNonAdmins(t *testing.T) {
	s := Start(t)
	aliceID := strings.TrimSpace(regexp.MustCompile(`(?m)^(\S+)\s+alice\s`).FindStringSubmatch(mustCLI(t, s, "users", "list"))[1])

	// bob signs in once; afterwards his SSO session answers the admin pages' sign-in.
	bob := NewBrowser(t)
	f := bob.OpenLogin(s, s.URL+"/authorize?"+AuthParams().Encode())
	if resp, _ := bob.Submit(f, "bob", bobPass); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("bob's login answered %d", resp.StatusCode)
	}
	for _, route := range admin.PageRoutes() {
		method, u := adminPage(s, route, aliceID)
		t.Run("bob "+method+" "+route[1], func(t *testing.T) {
			if method == http.MethodPost {
				resp, page := bob.do(method, u, url.Values{"csrf": {"x"}, "action": {"disable"}})
				if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "Administrators only") {
					t.Fatalf("answered %d", resp.StatusCode)
				}
				return
			}
			end, resp, page := bob.follow(u, func(*url.URL) bool { return false })
			if resp == nil || resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "Administrators only") {
				t.Fatalf("the walk ended at %s with %v", end, resp)
			}
		})
	}

	// alice signs in to the admin pages, then loses the admin role.
	alice := NewBrowser(t)
	csrf := adminSignIn(t, s, alice, "alice", alicePass)
	if n := aaSQL(t, s, "DELETE FROM user_roles WHERE user_id = ? AND role = 'admin'", aliceID); n != 1 {
		t.Fatalf("removed %d roles", n)
	}
	for _, route := range admin.PageRoutes() {
		method, u := adminPage(s, route, aliceID)
		t.Run("former admin "+method+" "+route[1], func(t *testing.T) {
			resp, page := alice.do(method, u, url.Values{"csrf": {csrf}, "action": {"revoke"}})
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "Administrators only") {
				t.Fatalf("answered %d", resp.StatusCode)
			}
		})
	}
	// Nothing was done on her behalf: her sessions were not revoked by the walk.
	var done int
	db, err := sql.Open("sqlite3", "file:"+biServerDB(s)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow("SELECT COUNT(*) FROM events WHERE type IN ('sessions.revoked', 'user.disabled')").Scan(&done); err != nil || done != 0 {
		t.Fatalf("%d admin actions went through (%v)", done, err)
	}
}

// adminSignIn signs a user in to the admin pages in browser b, through the
// login page, and returns the admin session's CSRF token.
func adminSignIn(t *testing.T, s *Server, b *Browser, username, password string) string {
	t.Helper()
	end, resp, _ := b.follow(s.URL+"/admin/users", func(u *url.URL) bool { return strings.HasPrefix(u.Path, "/login") })
	if resp != nil {
		t.Fatalf("no login page on the way to /admin: %s %d", end, resp.StatusCode)
	}
	resp, _ = b.Submit(b.OpenLoginAt(s, end.RequestURI()), username, password)
	_, resp, page := b.follow(resp.Header.Get("Location"), func(*url.URL) bool { return false })
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "<h1>Users</h1>") {
		t.Fatalf("%s's admin sign-in ended with %d", username, resp.StatusCode)
	}
	return regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)[1]
}

func mustCLI(t *testing.T, s *Server, args ...string) string {
	t.Helper()
	out, err := s.CLI(t, "", args...)
	if err != nil {
		t.Fatalf("fedhub %v: %v\n%s", args, err, out)
	}
	return out
}

// TestAdminRoleFromCLI: `fedhub users grant-role` makes an administrator,
// `revoke-role` unmakes one, and the admin pages follow at once.
func TestAdminRoleFromCLI(t *testing.T) {
	s := Start(t)
	mustCLI(t, s, "users", "grant-role", "--username", "bob", "--role", "admin")
	bob := NewBrowser(t)
	end, resp, _ := bob.follow(s.URL+"/admin/users", func(u *url.URL) bool { return strings.HasPrefix(u.Path, "/login") })
	if resp != nil {
		t.Fatalf("no login page on the way to /admin: %s", end)
	}
	_, loginPage := bob.Get(end.String())
	f := LoginForm{Action: s.URL + "/broker/local/login"}
	for _, m := range hiddenInput.FindAllStringSubmatch(loginPage, -1) {
		if m[1] == "req" {
			f.Req = m[2]
		} else {
			f.CSRF = m[2]
		}
	}
	resp, _ = bob.Submit(f, "bob", bobPass)
	_, resp, page := bob.follow(resp.Header.Get("Location"), func(*url.URL) bool { return false })
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "<h1>Users</h1>") {
		t.Fatalf("bob, granted admin, got %d", resp.StatusCode)
	}
	mustCLI(t, s, "users", "revoke-role", "--username", "bob", "--role", "admin")
	if resp, _ := bob.Get(s.URL + "/admin/users"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bob, admin role revoked, got %d", resp.StatusCode)
	}
	if out, err := s.CLI(t, "", "users", "revoke-role", "--username", "bob", "--role", "admin"); err == nil ||
		!strings.Contains(out, "does not have it") {
		t.Fatalf("revoking a role bob lacks: %v\n%s", err, out)
	}
}
