package e2e

import (
	"database/sql"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// accountForm is the account page's form token.
func accountForm(t *testing.T, s *Server, b *Browser) string {
	t.Helper()
	_, page := b.Get(s.URL + "/account")
	return mfaMatch(t, mfaCSRF, page)
}

// wantSignedOut checks that a browser's session no longer opens /account.
func wantSignedOut(t *testing.T, s *Server, b *Browser, why string) {
	t.Helper()
	if resp, _ := b.Get(s.URL + "/account"); !strings.HasPrefix(resp.Header.Get("Location"), "/login?req=") {
		t.Fatalf("%s: /account answered %d %q, want the login page", why, resp.StatusCode, resp.Header.Get("Location"))
	}
}

// Changing the password needs the current one, keeps this session and ends the others.
func TestAccountChangePassword(t *testing.T) {
	s := Start(t)
	b, other := NewBrowser(t), NewBrowser(t)
	b.Authorize(s, AuthParams(), "alice", alicePass)
	other.Authorize(s, AuthParams(), "alice", alicePass)
	var hash string
	flRow(t, s, "SELECT password_hash FROM users WHERE username = 'alice'", nil, &hash)
	const next = "a-new-Passw0rd!"

	for _, c := range []struct {
		name            string
		current, n1, n2 string
		status          int
		says            string
	}{
		{"wrong current password", "guess", next, next, http.StatusUnauthorized, "not right"},
		{"too short", alicePass, "short", "short", http.StatusUnprocessableEntity, "at least 8"},
		{"confirmation differs", alicePass, next, next + "x", http.StatusUnprocessableEntity, "differ"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, page := b.PostForm(s.URL+"/account/password", url.Values{"csrf": {accountForm(t, s, b)},
				"current_password": {c.current}, "new_password": {c.n1}, "confirm_password": {c.n2}})
			if resp.StatusCode != c.status || !strings.Contains(page, c.says) {
				t.Fatalf("answered %d, want %d saying %q:\n%s", resp.StatusCode, c.status, c.says, page)
			}
			var now string
			flRow(t, s, "SELECT password_hash FROM users WHERE username = 'alice'", nil, &now)
			if now != hash {
				t.Fatal("the password changed")
			}
		})
	}
	resp, _ := b.PostForm(s.URL+"/account/password", url.Values{"csrf": {"forged"},
		"current_password": {alicePass}, "new_password": {next}, "confirm_password": {next}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a forged form answered %d", resp.StatusCode)
	}

	resp, _ = b.PostForm(s.URL+"/account/password", url.Values{"csrf": {accountForm(t, s, b)},
		"current_password": {alicePass}, "new_password": {next}, "confirm_password": {next}})
	if loc := resp.Header.Get("Location"); loc != "/account?status=password" {
		t.Fatalf("changing the password answered %d %q", resp.StatusCode, loc)
	}
	if resp, _ := b.Get(s.URL + "/account"); resp.StatusCode != http.StatusOK {
		t.Fatalf("this session ended too: /account answered %d", resp.StatusCode)
	}
	wantSignedOut(t, s, other, "the other session")
	f := NewBrowser(t).OpenLogin(s, s.URL+"/authorize?"+AuthParams().Encode())
	if resp, _ := NewBrowser(t).Submit(f, "alice", alicePass); resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the old password answered %d", resp.StatusCode)
	}
	if got := NewBrowser(t).Authorize(s, AuthParams(), "alice", next); got.Get("code") == "" {
		t.Fatalf("the new password does not sign in: %v", got)
	}
	if n := flCount(t, s, "SELECT COUNT(*) FROM events WHERE type = 'password.changed'"); n != 1 {
		t.Fatalf("%d password.changed events", n)
	}
}

// Removing a second step needs a fresh sign-in (with the second step).
func TestAccountRemoveFactor(t *testing.T) {
	s := Start(t)
	b := NewBrowser(t)
	b.Authorize(s, AuthParams(), "alice", alicePass)
	secret, _, at, _ := mfaEnrol(t, s, b, "alice", alicePass)
	var factorID string
	flRow(t, s, "SELECT id FROM mfa_factors", nil, &factorID)
	remove := url.Values{"kind": {"app"}, "id": {factorID}}

	// A sign-in older than a few minutes must be renewed first.
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(filepath.Dir(s.Config), "fedhub.db")+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), "UPDATE sessions SET auth_time = ?", time.Now().Add(-time.Hour).UTC()); err != nil {
		t.Fatal(err)
	}
	remove.Set("csrf", accountForm(t, s, b))
	resp, _ := b.PostForm(s.URL+"/account/factors/remove", remove)
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/login?req=") {
		t.Fatalf("removing with a stale sign-in answered %d %q, want the login page", resp.StatusCode, loc)
	}
	if n := flCount(t, s, "SELECT COUNT(*) FROM mfa_factors"); n != 1 {
		t.Fatal("the factor was removed without a fresh sign-in")
	}
	f := b.OpenLoginAt(s, loc)
	resp, _ = b.Submit(f, "alice", alicePass)
	page := mfaFollow(t, s, b, resp, "/login/factor?t=")
	code, _ := totp.GenerateCode(secret, at.Add(30*time.Second))
	resp, _ = b.PostForm(s.URL+"/login/factor", url.Values{"t": {mfaMatch(t, mfaToken, page)}, "csrf": {mfaMatch(t, mfaCSRF, page)}, "code": {code}})
	if loc := resp.Header.Get("Location"); loc != "/account?status=fresh" {
		t.Fatalf("the fresh sign-in ended at %d %q", resp.StatusCode, loc)
	}

	// Another person's factor ID removes nothing.
	other := url.Values{"kind": {"app"}, "id": {"not-" + factorID}, "csrf": {accountForm(t, s, b)}}
	if resp, _ := b.PostForm(s.URL+"/account/factors/remove", other); resp.StatusCode != http.StatusOK {
		t.Fatalf("an unknown factor answered %d", resp.StatusCode)
	}
	remove.Set("csrf", accountForm(t, s, b))
	resp, _ = b.PostForm(s.URL+"/account/factors/remove", remove)
	if loc := resp.Header.Get("Location"); loc != "/account?status=factor_removed" {
		t.Fatalf("removing answered %d %q", resp.StatusCode, loc)
	}
	if n := flCount(t, s, "SELECT COUNT(*) FROM mfa_factors") + flCount(t, s, "SELECT COUNT(*) FROM mfa_recovery_codes"); n != 0 {
		t.Fatalf("%d factor or recovery-code rows left", n)
	}
	if n := flCount(t, s, "SELECT COUNT(*) FROM events WHERE type = 'factor.removed'"); n != 1 {
		t.Fatalf("%d factor.removed events", n)
	}
	if got := NewBrowser(t).Authorize(s, AuthParams(), "alice", alicePass); got.Get("code") == "" {
		t.Fatalf("after the removal the sign-in still stops: %v", got)
	}
}
