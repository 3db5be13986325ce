package e2e

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/fedhub/fedhub/e2e/peers"
)

var accountCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// accountLogin signs alice in to /account (the account page's own login).
func accountLogin(t *testing.T, s *Server, b *Browser, user, password string) string {
	t.Helper()
	resp, _ := b.Get(s.URL + "/account")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?") {
		t.Fatalf("/account without a session answered %d %q, want the login page", resp.StatusCode, resp.Header.Get("Location"))
	}
	f := b.OpenLogin(s, s.URL+"/account")
	resp, _ = b.Submit(f, user, password)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/account" {
		t.Fatalf("login for the account page answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, page := b.Get(s.URL + "/account")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Signed in as <strong>"+user+"</strong>") {
		t.Fatalf("account page answered %d:\n%s", resp.StatusCode, page)
	}
	return page
}

// linkThroughZitadel confirms linking on the link page and signs in at the upstream.
func linkThroughZitadel(t *testing.T, s *Server, b *Browser, linkPageURL string) (*url.URL, string) {
	t.Helper()
	resp, page := b.Get(linkPageURL)
	m := accountCSRF.FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("link page answered %d:\n%s", resp.StatusCode, page)
	}
	form := url.Values{"csrf": {m[1]}}
	if lu, err := url.Parse(linkPageURL); err == nil {
		for _, k := range []string{"client_id", "redirect_uri", "state"} {
			if v := lu.Query().Get(k); v != "" {
				form.Set(k, v)
			}
		}
	}
	resp, _ = b.PostForm(s.URL+"/account/link/zitadel", form)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirming the link answered %d", resp.StatusCode)
	}
	atFedhub := func(u *url.URL) bool { return strings.HasPrefix(u.String(), s.URL+"/broker/zitadel/callback") }
	u, _, page := b.follow(resp.Header.Get("Location"), atFedhub)
	if !atFedhub(u) {
		u, _, _ = b.follow(b.zitadelSignIn(u, page), atFedhub)
	}
	end, _, page := b.follow(u.String(), func(u *url.URL) bool {
		return !strings.HasPrefix(u.String(), s.URL+"/broker/")
	})
	return end, page
}

func TestAccountLinking(t *testing.T) {
	addr := freeAddr(t)
	issuer := startZitadel(t, "fedhub", "http://"+addr+"/broker/zitadel/callback")
	s := Start(t, WithAddr(addr), WithEnv("Z_SECRET="+upstreamSecret), withConnectors(`
  - id: zitadel
    type: oidc
    name: Partner SSO
    link_only: true
    oidc:
      issuer: `+issuer+`
      client_id: fedhub
      client_secret: ${Z_SECRET}
      use_userinfo: true
`))
	b := NewBrowser(t)
	page := accountLogin(t, s, b, "alice", alicePass)
	if !strings.Contains(page, "last one") || strings.Contains(page, `id="unlink-`) {
		t.Fatalf("alice's only way to sign in must not be unlinkable:\n%s", page)
	}

	// A link-only connector is refused for logging in, but links from the account page.
	end, _ := linkThroughZitadel(t, s, b, s.URL+"/account/link/zitadel")
	if end.String() != s.URL+"/account?status=linked" {
		t.Fatalf("linking ended at %s", end)
	}
	_, page = b.Get(end.String())
	if !strings.Contains(page, "The account is linked.") || !strings.Contains(page, "<td>Partner SSO</td><td>test-user@127.0.0.1</td>") {
		t.Fatalf("the account page does not show the new link:\n%s", page)
	}

	t.Run("linking the connector again: one identity per connector", func(t *testing.T) {
		_, page := b.Get(s.URL + "/account")
		if strings.Contains(page, `id="link-zitadel"`) {
			t.Fatalf("the account page offers to link Partner SSO again:\n%s", page)
		}
		resp, page := b.PostForm(s.URL+"/account/link/zitadel", url.Values{"csrf": {accountCSRF.FindStringSubmatch(page)[1]}})
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "You already have a Partner SSO account linked") {
			t.Fatalf("linking Partner SSO again answered %d %q:\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
		}
	})
	t.Run("another user cannot take the identity", func(t *testing.T) {
		other := NewBrowser(t)
		accountLogin(t, s, other, "bob", bobPass)
		end, page := linkThroughZitadel(t, s, other, s.URL+"/account/link/zitadel")
		if strings.Contains(end.String(), "status=linked") || !strings.Contains(page, "linked to another fedhub user") {
			t.Fatalf("bob got %s:\n%s", end, page)
		}
	})
	t.Run("links only to the user who asked", func(t *testing.T) {
		c := NewBrowser(t)
		accountLogin(t, s, c, "bob", bobPass)
		_, page := c.Get(s.URL + "/account/link/zitadel")
		resp, _ := c.PostForm(s.URL+"/account/link/zitadel", url.Values{"csrf": {accountCSRF.FindStringSubmatch(page)[1]}})
		toUpstream := resp.Header.Get("Location")
		// Meanwhile the browser's session becomes alice's.
		f := c.OpenLogin(s, s.URL+"/authorize?"+AuthParams("prompt", "login").Encode())
		if resp, _ := c.Submit(f, "alice", alicePass); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("alice's login answered %d", resp.StatusCode)
		}
		atFedhub := func(u *url.URL) bool { return strings.HasPrefix(u.String(), s.URL+"/broker/zitadel/callback") }
		u, _, up := c.follow(toUpstream, atFedhub)
		if !atFedhub(u) {
			u, _, _ = c.follow(c.zitadelSignIn(u, up), atFedhub)
		}
		_, resp, page = c.follow(u.String(), func(u *url.URL) bool { return !strings.HasPrefix(u.String(), s.URL+"/broker/") })
		if resp == nil || resp.StatusCode != http.StatusConflict || !strings.Contains(page, "Nothing was linked") {
			t.Fatalf("a link for bob finished in alice's session: %v\n%s", resp, page)
		}
	})
	t.Run("forms need the page's CSRF token", func(t *testing.T) {
		resp, _ := b.PostForm(s.URL+"/account/unlink", url.Values{"link_id": {"1"}})
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("unlink without CSRF answered %d", resp.StatusCode)
		}
	})
	// Partner SSO is link-only: it is no way to sign in, so alice's password
	// is her last usable way in, although she has two links.
	t.Run("unlink, but never the last usable way in", func(t *testing.T) {
		var local, partner string
		flRow(t, s, "SELECT id FROM links WHERE connector = 'local' AND user_id = (SELECT id FROM users WHERE username = 'alice')", nil, &local)
		flRow(t, s, "SELECT id FROM links WHERE connector = 'zitadel' AND user_id = (SELECT id FROM users WHERE username = 'alice')", nil, &partner)
		_, page := b.Get(s.URL + "/account")
		ids := regexp.MustCompile(`name="link_id" value="(\d+)"`).FindAllStringSubmatch(page, -1)
		csrf := accountCSRF.FindStringSubmatch(page)[1]
		if len(ids) != 1 || ids[0][1] != partner {
			t.Fatalf("want only the Partner SSO link (%s) removable, not the password (%s); page:\n%s", partner, local, page)
		}
		resp, page := b.PostForm(s.URL+"/account/unlink", url.Values{"csrf": {csrf}, "link_id": {local}})
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "last way to sign in") {
			t.Fatalf("unlinking the password beside a link-only identity answered %d %q:\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
		}
		if n := flCount(t, s, "SELECT COUNT(*) FROM links WHERE id = ?", local); n != 1 {
			t.Fatal("the password link is gone")
		}
		resp, _ = b.PostForm(s.URL+"/account/unlink", url.Values{"csrf": {csrf}, "link_id": {partner}})
		if resp.Header.Get("Location") != "/account?status=unlinked" {
			t.Fatalf("unlink answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		resp, page = b.PostForm(s.URL+"/account/unlink", url.Values{"csrf": {csrf}, "link_id": {local}})
		if !strings.Contains(page, "last way to sign in") {
			t.Fatalf("unlinking the last link answered %d:\n%s", resp.StatusCode, page)
		}
	})
	t.Run("application-initiated linking", func(t *testing.T) {
		q := url.Values{"client_id": {rpID}, "redirect_uri": {redirectURI}, "state": {"app-state"}}
		resp, page := b.Get(s.URL + "/account/link/zitadel?" + q.Encode())
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "The application <strong>rp</strong> asks to link") {
			t.Fatalf("the confirmation page answered %d:\n%s", resp.StatusCode, page)
		}
		end, _ := linkThroughZitadel(t, s, b, s.URL+"/account/link/zitadel?"+q.Encode())
		if !strings.HasPrefix(end.String(), redirectURI+"?") || end.Query().Get("link_status") != "linked" || end.Query().Get("state") != "app-state" {
			t.Fatalf("the application got %s", end)
		}
	})
	t.Run("application-initiated linking checks the return URL and the session", func(t *testing.T) {
		bad := url.Values{"client_id": {rpID}, "redirect_uri": {"https://evil.example/cb"}, "state": {"x"}}
		resp, _ := b.Get(s.URL + "/account/link/zitadel?" + bad.Encode())
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Fatalf("an unregistered return URL answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		q := url.Values{"client_id": {rpID}, "redirect_uri": {redirectURI}, "state": {"s2"}}
		resp, _ = NewBrowser(t).Get(s.URL + "/account/link/zitadel?" + q.Encode())
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("link_status") != "login_required" || loc.Query().Get("state") != "s2" {
			t.Fatalf("without a session answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}

// TestAccountOneIdentityPerConnector: a user links at most one identity of a
// connector (finding 11 of issue 15). Once alice linked her directory
// account, /account offers "Link Corporate LDAP" no more, and linking bob's
// directory account to her — which would make bob's logins come out as
// alice — is refused, from the account page and for an application alike. A
// connector with multiple_identities: true allows several.
func TestAccountOneIdentityPerConnector(t *testing.T) {
	dir := peers.OpenLDAP(t)
	ldapBlock := `    ldap:
      urls: [` + dir.LDAPSURL + `]
      ca_file: ` + dir.CAFile + `
      bind_dn: ` + dir.ReaderDN + `
      bind_password: ${LDAP_BIND}
      user_base: ` + dir.UserBase + `
`
	s := Start(t, WithEnv("LDAP_BIND="+dir.ReaderPassword), withConnectors(`
  - id: corp-ldap
    type: ldap
    name: Corporate LDAP
`+ldapBlock+`  - id: shared-ldap
    type: ldap
    name: Shared Directory
    multiple_identities: true
`+ldapBlock))
	alice, bob := dir.Users["alice"], dir.Users["bob"]
	b := NewBrowser(t)
	page := accountLogin(t, s, b, "alice", alicePass)
	for _, id := range []string{"corp-ldap", "shared-ldap"} {
		if !strings.Contains(page, `id="link-`+id+`"`) {
			t.Fatalf("the account page does not offer to link %s:\n%s", id, page)
		}
	}
	link := func(connector, username, password string, extra url.Values) (*http.Response, string) {
		t.Helper()
		_, page := b.Get(s.URL + "/account")
		form := url.Values{"csrf": {accountCSRF.FindStringSubmatch(page)[1]}, "username": {username}, "password": {password}}
		for k, v := range extra {
			form[k] = v
		}
		return b.PostForm(s.URL+"/account/link/"+connector, form)
	}
	linksOf := func(connector string) int {
		return flCount(t, s, "SELECT COUNT(*) FROM links WHERE connector = ? AND user_id = (SELECT id FROM users WHERE username = 'alice')", connector)
	}
	if resp, page := link("corp-ldap", "alice", alice.Password, nil); resp.Header.Get("Location") != "/account?status=linked" {
		t.Fatalf("linking alice's directory account answered %d %q:\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	_, page = b.Get(s.URL + "/account")
	if strings.Contains(page, `id="link-corp-ldap"`) || !strings.Contains(page, `id="link-shared-ldap"`) {
		t.Fatalf("after linking corp-ldap the account page still offers it (or no longer shared-ldap):\n%s", page)
	}

	const refused = "You already have a Corporate LDAP account linked"
	resp, page := b.Get(s.URL + "/account/link/corp-ldap")
	if resp.StatusCode != http.StatusOK || !strings.Contains(html.UnescapeString(page), refused) || strings.Contains(page, `id="link-form"`) {
		t.Fatalf("the link page of a linked connector answered %d:\n%s", resp.StatusCode, page)
	}
	resp, page = link("corp-ldap", "bob", bob.Password, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(html.UnescapeString(page), refused) {
		t.Fatalf("linking bob's directory account to alice answered %d %q:\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	if n := flCount(t, s, "SELECT COUNT(*) FROM links WHERE connector = 'corp-ldap' AND subject = ?", bob.ID); n != 0 || linksOf("corp-ldap") != 1 {
		t.Fatalf("bob's directory account has %d links; alice has %d corp-ldap links", n, linksOf("corp-ldap"))
	}
	// An application asking to link it hears that the person has one.
	q := url.Values{"client_id": {rpID}, "redirect_uri": {redirectURI}, "state": {"one"}}
	for _, post := range []bool{false, true} {
		if post {
			resp, _ = link("corp-ldap", "bob", bob.Password, q)
		} else {
			resp, _ = b.Get(s.URL + "/account/link/corp-ldap?" + q.Encode())
		}
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc.String(), redirectURI+"?") ||
			loc.Query().Get("link_status") != "already_linked" || loc.Query().Get("state") != "one" {
			t.Fatalf("an application's link request (POST %v) answered %d %q", post, resp.StatusCode, loc)
		}
	}
	if linksOf("corp-ldap") != 1 {
		t.Fatalf("alice has %d corp-ldap links", linksOf("corp-ldap"))
	}

	// multiple_identities: true allows both.
	for _, who := range []peers.LDAPUser{alice, bob} {
		if resp, page := link("shared-ldap", who.Username, who.Password, nil); resp.Header.Get("Location") != "/account?status=linked" {
			t.Fatalf("linking %s's directory account through shared-ldap answered %d %q:\n%s", who.Username, resp.StatusCode, resp.Header.Get("Location"), page)
		}
	}
	if n := linksOf("shared-ldap"); n != 2 {
		t.Fatalf("alice has %d shared-ldap links, want 2", n)
	}
}
