package e2e

import (
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
)

// What ends access after a login, against the real binary.

// lcRP2 is rp2's entry in defaultConfig, which TestRemovedClientRefusedAfterRestart takes out.
const lcRP2 = `  - id: rp2
    secret: ${RP2_SECRET}
    redirect_uris: [http://127.0.0.1:5555/callback]
    grant_types: [authorization_code, refresh_token]
`

// TestRemovedClientRefusedAfterRestart: a client taken out of the
// configuration file is disabled when fedhub restarts, and what it got
// before — a refresh token, an access token — is refused at /token,
// /introspect and /userinfo; the log, the admin clients page and the admin
// API say so.
func TestRemovedClientRefusedAfterRestart(t *testing.T) {
	s := Start(t, WithConfig(aaConfig("", "", "")), aaEnv())
	params := AuthParams("client_id", rp2ID)
	ts, idt := ocCodeFlow(t, s, NewBrowser(t), ocRP2, params)
	if ts.Refresh == "" {
		t.Fatal("rp2 got no refresh token")
	}
	ocWantUserinfo(t, s, ts.Access, idt)
	for _, tok := range []string{ts.Access, ts.Refresh} {
		if a := ocPost(t, s, "/introspect", &ocRP, url.Values{"token": {tok}}); a.Body["active"] != true {
			t.Fatalf("before the removal, introspection says %s", a.Raw)
		}
	}

	cfg, err := os.ReadFile(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	without := strings.Replace(string(cfg), lcRP2, "", 1)
	if without == string(cfg) {
		t.Fatalf("rp2 is not in the configuration:\n%s", cfg)
	}
	if err := os.WriteFile(s.Config, []byte(without), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Restart(t)

	ocWantOAuthError(t, ocRefresh(t, s, ocRP2, ts.Refresh), http.StatusUnauthorized, "invalid_client")
	for name, tok := range map[string]string{"access": ts.Access, "refresh": ts.Refresh} {
		if a := ocPost(t, s, "/introspect", &ocRP, url.Values{"token": {tok}}); a.Status != http.StatusOK || a.Body["active"] != false {
			t.Errorf("introspection of rp2's %s token: %d %s, want inactive", name, a.Status, a.Raw)
		}
	}
	ocWantUserinfoRefused(t, s, ts.Access)
	if out := s.Output(); !regexp.MustCompile(`no longer in the configuration.*client=rp2`).MatchString(out) {
		t.Errorf("the log does not say rp2 was disabled:\n%s", out)
	}

	var listed struct {
		Clients []struct {
			ID        string  `json:"id"`
			RemovedAt *string `json:"removed_at"`
		} `json:"clients"`
	}
	tok := aaClientCredentials(t, s, aaAutomation, aaAdminScope)
	aaWant(t, aaCall(t, s, "GET", "/clients", tok.Access, ""), http.StatusOK, &listed, "the admin API's clients")
	removed := map[string]bool{}
	for _, c := range listed.Clients {
		removed[c.ID] = c.RemovedAt != nil
	}
	if r, ok := removed[rp2ID]; !ok || !r || removed[rpID] {
		t.Errorf("the admin API lists these clients as removed: %v; want rp2 listed and removed, rp not", removed)
	}
	b := NewBrowser(t)
	adminSignIn(t, s, b, "alice", alicePass)
	_, page := b.Get(s.URL + "/admin/clients")
	row := regexp.MustCompile(`(?s)<tr><td>[^<]*<code>` + rp2ID + `</code>.*?</tr>`).FindString(page)
	if !strings.Contains(row, "disabled: removed from the configuration") {
		t.Errorf("the admin clients page does not show rp2 disabled: %q", row)
	}
}

// TestAdminSessionEndsWithLogout: signing out of fedhub (/logout) signs out
// of the admin pages too. The admin cookie the browser still holds is
// refused — pages send it to the login page, forms are forbidden — and so is
// an admin API token issued in that SSO session.
func TestAdminSessionEndsWithLogout(t *testing.T) {
	s := Start(t, WithConfig(aaConfig("", "", "")), aaEnv())
	alice := NewBrowser(t)
	csrf := adminSignIn(t, s, alice, "alice", alicePass)

	verifier, challenge := ocPKCE()
	params := AuthParams("client_id", aaAdminAppID, "scope", "openid "+aaAdminScope, "code_challenge", challenge,
		"code_challenge_method", "S256")
	api := ocWantTokens(t, ocRedeem(t, s, aaAdminApp, ocWantCode(t, s, ocSilent(t, s, alice, params), params), redirectURI, verifier))
	aaWant(t, aaCall(t, s, "GET", "/users", api.Access, ""), http.StatusOK, nil, "the admin API before the logout")

	_, page := alice.Get(s.URL + "/logout")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no sign-out confirmation:\n%s", page)
	}
	if resp, _ := alice.PostForm(s.URL+"/logout", url.Values{"csrf": {m[1]}, "confirm": {"yes"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("the sign-out answered %d", resp.StatusCode)
	}
	admin, _ := url.Parse(s.URL + "/admin")
	if !strings.Contains(cookieNames(alice, admin), "fedhub_admin") {
		t.Fatalf("the browser no longer holds the admin cookie (%s): the test would prove nothing", cookieNames(alice, admin))
	}

	if resp, _ := alice.PostForm(s.URL+"/admin/logout", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a form of the admin pages after the sign-out answered %d, want 403", resp.StatusCode)
	}
	resp, _ := alice.Get(s.URL + "/admin/users")
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/admin/login?") {
		t.Errorf("the admin pages after the sign-out answered %d to %q, want the admin sign-in", resp.StatusCode, loc)
	}
	if end, resp, _ := alice.follow(s.URL+"/admin/users", func(u *url.URL) bool { return strings.HasPrefix(u.Path, "/login") }); resp != nil {
		t.Errorf("the way to the admin pages ended at %s with %d, want the login page", end, resp.StatusCode)
	}
	aaWant(t, aaCall(t, s, "GET", "/users", api.Access, ""), http.StatusUnauthorized, nil, "the admin API after the logout")
}

// cookieNames lists the names of the cookies b would send to u.
func cookieNames(b *Browser, u *url.URL) string {
	var names []string
	for _, c := range b.Client.Jar.Cookies(u) {
		names = append(names, c.Name)
	}
	return strings.Join(names, " ")
}
