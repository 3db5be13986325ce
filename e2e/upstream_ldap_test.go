package e2e

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/go-ldap/ldap/v3"

	"github.com/fedhub/fedhub/e2e/peers"
)

// withoutLocalUsers is the default configuration minus its bootstrap users, so
// that the directory's alice is nobody's namesake.
func withoutLocalUsers(connectors string) Option {
	base := defaultConfig[:strings.Index(defaultConfig, "users:\n")]
	return WithConfig(base + "connectors:\n" + connectors)
}

// ldapLogin signs in through a password connector's form on the login page
// and returns the redirect answer (303 to the RP) or the page.
func (b *Browser) ldapLogin(s *Server, params url.Values, connector, username, password string) (*http.Response, string) {
	b.t.Helper()
	f := b.OpenLogin(s, s.URL+"/authorize?"+params.Encode())
	if !strings.Contains(f.Page, `id="connector-`+connector+`"`) {
		b.t.Fatalf("the login page has no button for %s:\n%s", connector, f.Page)
	}
	// The button opens the connector's own form.
	_, page := b.Get(s.URL + "/login?req=" + url.QueryEscape(f.Req) + "&connector=" + connector)
	if !strings.Contains(page, `id="form-`+connector+`"`) {
		b.t.Fatalf("no form for %s:\n%s", connector, page)
	}
	f.Action = s.URL + "/broker/" + connector + "/login"
	return b.Submit(f, username, password)
}

// ldapClaims runs a whole login through a password connector and returns the verified ID token's claims.
func ldapClaims(t *testing.T, s *Server, connector, username, password string) map[string]any {
	t.Helper()
	b := NewBrowser(t)
	params := AuthParams("scope", "openid profile email")
	resp, page := b.ldapLogin(s, params, connector, username, password)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("%s login as %q answered %d:\n%s", connector, username, resp.StatusCode, page)
	}
	u, _ := url.Parse(resp.Header.Get("Location"))
	_, idt := ocRedeemAndVerify(t, s, ocRP, u.Query().Get("code"), params)
	return idt.Claims
}

func groupsOf(claims map[string]any) []string {
	var out []string
	groups, _ := claims["groups"].([]any) // none: no claim
	for _, g := range groups {
		out = append(out, g.(string))
	}
	return out
}

func TestUpstreamLDAP(t *testing.T) {
	dir := peers.OpenLDAP(t)
	dead := "ldaps://" + freeAddr(t) // the first server is down: fedhub fails over
	s := Start(t, WithEnv("LDAP_BIND="+dir.ReaderPassword), withoutLocalUsers(`
  - id: corp-ldap
    type: ldap
    name: Corporate LDAP
    label: Login with Corporate LDAP
    groups: passthrough
    mappers:
      - {type: group_to_role, group: engineering, role: developer}
      - {type: group_to_group, group: engineering, to: eng}
    ldap:
      urls: [`+dead+`, `+dir.LDAPSURL+`]
      ca_file: `+dir.CAFile+`
      bind_dn: `+dir.ReaderDN+`
      bind_password: ${LDAP_BIND}
      user_base: `+dir.UserBase+`
      group_base: `+dir.GroupBase+`
      timeout: 3s
  - id: ldap-starttls
    type: ldap
    name: Directory over StartTLS
    ldap:
      urls: [`+dir.URL+`]
      start_tls: true
      ca_file: `+dir.CAFile+`
      bind_dn: `+dir.ReaderDN+`
      bind_password: ${LDAP_BIND}
      user_base: `+dir.UserBase+`
      group_base: `+dir.GroupBase+`
`))
	alice, bob := dir.Users["alice"], dir.Users["bob"]

	// groups: passthrough keeps the unmapped staff under the connector's
	// namespace; group_to_group makes engineering the local eng.
	t.Run("login with groups in the token, after failover", func(t *testing.T) {
		claims := ldapClaims(t, s, "corp-ldap", "alice", alice.Password)
		opWantCounted(t, s, `fedhub_logins_total{connector="corp-ldap",outcome="success"}`,
			`fedhub_upstream_request_duration_seconds_count{connector="corp-ldap",operation="bind"}`,
			`fedhub_upstream_request_duration_seconds_count{connector="corp-ldap",operation="search"}`)
		roles := claims["realm_access"].(map[string]any)["roles"].([]any)
		if claims["idp"] != "corp-ldap" || claims["preferred_username"] != "alice" || claims["email"] != alice.Email ||
			!slices.Equal(slices.Sorted(slices.Values(groupsOf(claims))), []string{"corp-ldap:staff", "eng"}) ||
			len(roles) != 1 || roles[0] != "developer" {
			t.Fatalf("claims = %v", claims)
		}
	})
	// By default the directory's groups are dropped: its staff is not the local staff.
	t.Run("StartTLS, unmapped groups dropped", func(t *testing.T) {
		claims := ldapClaims(t, s, "ldap-starttls", "bob", bob.Password)
		if claims["idp"] != "ldap-starttls" || claims["preferred_username"] != "bob" || len(groupsOf(claims)) != 0 {
			t.Fatalf("claims = %v", claims)
		}
	})
	for _, c := range []struct{ name, username, password string }{
		{"wrong password", "alice", "not-" + alice.Password},
		{"empty password", "alice", ""},
		{"filter metacharacters", "*)(uid=*", alice.Password},
		{"wildcard username", "*", alice.Password},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := NewBrowser(t)
			resp, page := b.ldapLogin(s, AuthParams(), "corp-ldap", c.username, c.password)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "Invalid username or password.") {
				t.Fatalf("answered %d:\n%s", resp.StatusCode, page)
			}
		})
	}
	// A password the administrator reset, which the directory's password
	// policy accepts only for changing it, signs nobody in: the form says
	// what to do, the password grant gives no token.
	t.Run("password reset by the administrator", func(t *testing.T) {
		jdoe := dir.Users["jdoe1"]
		reset := ldap.NewModifyRequest(jdoe.DN, nil)
		reset.Replace("pwdPolicySubentry", []string{"cn=mustchange," + dir.PolicyBase})
		reset.Replace("pwdReset", []string{"TRUE"})
		if err := dir.Admin(t).Modify(reset); err != nil {
			t.Fatal(err)
		}
		resp, page := NewBrowser(t).ldapLogin(s, AuthParams(), "corp-ldap", "jdoe1", jdoe.Password)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "You must change your password") {
			t.Fatalf("answered %d:\n%s", resp.StatusCode, page)
		}
		a := ocPost(t, s, "/token", &ocClient{id: passwordID, secret: pwSecret}, url.Values{
			"grant_type": {"password"}, "username": {"jdoe1"}, "password": {jdoe.Password}})
		ocWantOAuthError(t, a, http.StatusBadRequest, "invalid_grant")
	})
	t.Run("password grant", func(t *testing.T) {
		a := ocPost(t, s, "/token", &ocClient{id: passwordID, secret: pwSecret}, url.Values{
			"grant_type": {"password"}, "username": {"alice"}, "password": {alice.Password}, "scope": {"openid profile"}})
		tok := ocWantTokens(t, a)
		idt := ocVerifyIDToken(t, s, passwordID, tok.ID)
		if idt.Claims["idp"] != "corp-ldap" || idt.Claims["preferred_username"] != "alice" {
			t.Fatalf("password grant claims = %v", idt.Claims)
		}
		bad := ocPost(t, s, "/token", &ocClient{id: passwordID, secret: pwSecret}, url.Values{
			"grant_type": {"password"}, "username": {"bob"}, "password": {"wrong"}})
		ocWantOAuthError(t, bad, http.StatusBadRequest, "invalid_grant")
	})
}

// corpAD is the connector configuration of the Samba AD DC: "Login with Corporate AD".
func corpAD(ad *peers.ADServer) string {
	return `
  - id: corp-ad
    type: ldap
    name: Corporate AD
    label: Login with Corporate AD
    mappers:
      - {type: group_to_role, group: AllStaff, role: employee}
      - {type: group_to_group, group: AllStaff, to: AllStaff}
      - {type: group_to_group, group: Engineering, to: Engineering}
    ldap:
      urls: [` + ad.LDAPSURL + `]
      ca_file: ` + ad.CAFile + `
      bind_dn: ` + ad.Users["service"].DN + `
      bind_password: ${AD_BIND}
      active_directory: true
      domain: ` + ad.Domain + `
      upn_suffix: ` + strings.ToLower(ad.Realm) + `
      user_base: ` + ad.BaseDN + `
`
}

func TestUpstreamActiveDirectory(t *testing.T) {
	ad := peers.SambaAD(t)
	s := Start(t, WithEnv("AD_BIND="+ad.Users["service"].Password), withoutLocalUsers(corpAD(ad)))
	alice := ad.Users["alice"]

	var sub any
	for _, form := range []string{"alice", ad.Domain + `\alice`, "alice@" + strings.ToLower(ad.Realm)} {
		t.Run("login as "+form, func(t *testing.T) {
			claims := ldapClaims(t, s, "corp-ad", form, alice.Password)
			groups := groupsOf(claims)
			if claims["preferred_username"] != "alice" || !slices.Contains(groups, "Engineering") ||
				!slices.Contains(groups, "AllStaff") { // AllStaff only through nesting
				t.Fatalf("claims = %v", claims)
			}
			if sub != nil && claims["sub"] != sub {
				t.Fatalf("sub %v differs from the first login's %v: the objectGUID link was not reused", claims["sub"], sub)
			}
			sub = claims["sub"]
		})
	}
	for _, c := range []struct{ name, user, want string }{
		{"disabled account", "disabled", ""},
		{"must change password", "mustchange", "change"},
		{"wrong password", "alice", "Invalid username or password."},
	} {
		t.Run(c.name, func(t *testing.T) {
			u := ad.Users[c.user]
			password := u.Password
			if c.name == "wrong password" {
				password = "not-" + password
			}
			resp, page := NewBrowser(t).ldapLogin(s, AuthParams(), "corp-ad", u.Username, password)
			if resp.StatusCode != http.StatusUnauthorized || (c.want != "" && !strings.Contains(page, c.want)) {
				t.Fatalf("answered %d:\n%s", resp.StatusCode, page)
			}
		})
	}
}

// TestBrowserCorporateAD: in a real browser, a person clicks "Login with
// Corporate AD", signs in with their AD password and lands in the application
// with fedhub's tokens.
func TestBrowserCorporateAD(t *testing.T) {
	ad := peers.SambaAD(t)
	s := Start(t, WithEnv("AD_BIND="+ad.Users["service"].Password), withoutLocalUsers(corpAD(ad)))
	rp := startRP(t, s)
	ctx := peers.Chromium(t)

	if err := chromedp.Do(ctx, chromedp.Navigate(rp.URL+"/start")); err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, ctx, "#connector-corp-ad"); got != "Login with Corporate AD" {
		t.Fatalf("button says %q", got)
	}
	screenshot(t, ctx, "login-page-with-corporate-ad")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#connector-corp-ad"))); err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, ctx, "#form-corp-ad h2"); got != "Login with Corporate AD" {
		t.Fatalf("form heading = %q", got)
	}
	err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), ad.Users["alice"].Password),
	)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "corporate-ad-form")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#sign-in"))); err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, ctx, "#who"); got != "Signed in as alice via corp-ad" {
		t.Fatalf("RP page says %q", got)
	}
	if groups := textOf(t, ctx, "#groups"); !strings.Contains(groups, "AllStaff") {
		t.Fatalf("groups in the RP = %q", groups)
	}
	screenshot(t, ctx, "signed-in-at-the-rp")
}
