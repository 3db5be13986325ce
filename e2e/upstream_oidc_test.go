package e2e

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
)

const upstreamSecret = "upstream-secret-0123456789"

// startZitadel runs zitadel's example OpenID Provider — a certified OP
// library, not fedhub — on a loopback port, with one web client.
func startZitadel(t *testing.T, clientID, redirectURI string) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	st := storage.NewStorageWithClients(storage.NewUserStore(issuer),
		map[string]*storage.Client{clientID: storage.WebClient(clientID, upstreamSecret, redirectURI)})
	srv.Config.Handler = exampleop.SetupServer(issuer, st, nil, false)
	srv.Start()
	t.Cleanup(srv.Close)
	return issuer
}

// withConnectors adds a connectors section to the default configuration.
func withConnectors(yaml string) Option {
	return WithConfig(defaultConfig + "connectors:\n" + yaml)
}

// follow follows redirects from rawURL until stop says so (or a page answers
// without a redirect), and returns the last URL and response body.
func (b *Browser) follow(rawURL string, stop func(*url.URL) bool) (*url.URL, *http.Response, string) {
	b.t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		b.t.Fatal(err)
	}
	for range 20 {
		if stop(u) {
			return u, nil, ""
		}
		resp, body := b.Get(u.String())
		loc := resp.Header.Get("Location")
		if loc == "" || resp.StatusCode < 300 || resp.StatusCode > 399 {
			return u, resp, body
		}
		if u, err = u.Parse(loc); err != nil {
			b.t.Fatal(err)
		}
	}
	b.t.Fatalf("too many redirects from %s", rawURL)
	return nil, nil, ""
}

var zitadelAuthRequest = regexp.MustCompile(`name="id" value="([^"]+)"`)

// upstreamLogin clicks the connector's button on fedhub's login page and signs
// in at the upstream; it returns the URL the upstream sends the browser back to
// fedhub with (the callback, with code and state).
func (b *Browser) upstreamLogin(s *Server, params url.Values, connector string, signIn func(u *url.URL, page string) string) *url.URL {
	b.t.Helper()
	f := b.OpenLogin(s, s.URL+"/authorize?"+params.Encode())
	if !strings.Contains(f.Page, `id="connector-`+connector+`"`) {
		b.t.Fatalf("the login page has no button for %s:\n%s", connector, f.Page)
	}
	resp, _ := b.PostForm(s.URL+"/broker/"+connector+"/login", url.Values{"req": {f.Req}, "csrf": {f.CSRF}})
	if resp.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("the button answered %d, want a redirect to the upstream", resp.StatusCode)
	}
	atFedhub := func(u *url.URL) bool { return strings.HasPrefix(u.String(), s.URL+"/broker/"+connector+"/callback") }
	u, _, page := b.follow(resp.Header.Get("Location"), atFedhub)
	if atFedhub(u) {
		return u // the upstream had a session
	}
	next := signIn(u, page)
	callback, _, page := b.follow(next, atFedhub)
	if !atFedhub(callback) {
		b.t.Fatalf("the upstream did not send the browser back to fedhub; it stopped at %s:\n%s", callback, page)
	}
	return callback
}

// zitadelSignIn fills in the example OP's login form as its default user.
func (b *Browser) zitadelSignIn(u *url.URL, page string) string {
	b.t.Helper()
	return b.zitadelSignInAs("test-user@127.0.0.1")(u, page)
}

// zitadelSignInAs fills in the example OP's login form as one of its users.
func (b *Browser) zitadelSignInAs(username string) func(u *url.URL, page string) string {
	return func(u *url.URL, page string) string {
		b.t.Helper()
		m := zitadelAuthRequest.FindStringSubmatch(page)
		if m == nil {
			b.t.Fatalf("no login form at %s:\n%s", u, page)
		}
		resp, _ := b.PostForm(u.Scheme+"://"+u.Host+"/login/username", url.Values{
			"id": {m[1]}, "username": {username}, "password": {"verysecure"}})
		next, err := u.Parse(resp.Header.Get("Location"))
		if err != nil || resp.StatusCode != http.StatusFound {
			b.t.Fatalf("the upstream refused the login of %s: %d", username, resp.StatusCode)
		}
		return next.String()
	}
}

// fedhubSignInAs fills in the login form of an upstream fedhub (up) as one of
// its local users.
func (b *Browser) fedhubSignInAs(up *Server, username, password string) func(u *url.URL, page string) string {
	return func(_ *url.URL, page string) string {
		b.t.Helper()
		f := LoginForm{Action: up.URL + "/broker/local/login", Page: page}
		for _, m := range hiddenInput.FindAllStringSubmatch(page, -1) {
			if m[1] == "req" {
				f.Req = m[2]
			} else {
				f.CSRF = m[2]
			}
		}
		resp, body := b.Submit(f, username, password)
		if resp.StatusCode != http.StatusSeeOther {
			b.t.Fatalf("upstream fedhub refused %s: %d\n%s", username, resp.StatusCode, body)
		}
		return resp.Header.Get("Location")
	}
}

// finishAt follows fedhub's callback to the RP and returns what the RP gets.
func (b *Browser) finishAt(s *Server, callback *url.URL) url.Values {
	b.t.Helper()
	atRP := func(u *url.URL) bool { return strings.HasPrefix(u.String(), redirectURI) }
	u, resp, page := b.follow(callback.String(), atRP)
	if !atRP(u) {
		b.t.Fatalf("fedhub did not send the browser to the RP: %d at %s\n%s", resp.StatusCode, u, page)
	}
	return u.Query()
}

func TestUpstreamOIDC(t *testing.T) {
	addr := freeAddr(t)
	issuer := startZitadel(t, "fedhub", "http://"+addr+"/broker/zitadel/callback")
	s := Start(t, WithAddr(addr), WithEnv("ZITADEL_SECRET="+upstreamSecret), withConnectors(`
  - id: zitadel
    type: oidc
    name: Partner SSO
    label: Login with Partner SSO
    oidc:
      issuer: `+issuer+`
      client_id: fedhub
      client_secret: ${ZITADEL_SECRET}
      use_userinfo: true
`))

	b := NewBrowser(t)
	params := AuthParams("scope", "openid profile email")
	callback := b.upstreamLogin(s, params, "zitadel", b.zitadelSignIn)
	got := b.finishAt(s, callback)
	if got.Get("state") != params.Get("state") || got.Get("code") == "" {
		t.Fatalf("RP got %v", got)
	}
	_, idt := ocRedeemAndVerify(t, s, ocRP, got.Get("code"), params)
	claims := idt.Claims
	if claims["idp"] != "zitadel" || claims["preferred_username"] != "test-user@127.0.0.1" || claims["email"] != "test-user@zitadel.ch" {
		t.Fatalf("claims = %v", claims)
	}
	opWantCounted(t, s, `fedhub_logins_total{connector="zitadel",outcome="success"}`,
		`fedhub_upstream_request_duration_seconds_count{connector="zitadel",operation="discovery"}`,
		`fedhub_upstream_request_duration_seconds_count{connector="zitadel",operation="token"}`,
		`fedhub_upstream_request_duration_seconds_count{connector="zitadel",operation="userinfo"}`)

	t.Run("replayed callback", func(t *testing.T) {
		resp, page := b.Get(callback.String())
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "already used") {
			t.Fatalf("replayed callback answered %d:\n%s", resp.StatusCode, page)
		}
	})
	t.Run("wrong state", func(t *testing.T) {
		forged := *callback
		q := forged.Query()
		q.Set("state", "forged-"+q.Get("state"))
		forged.RawQuery = q.Encode()
		resp, page := b.Get(forged.String())
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "does not know this sign-in") {
			t.Fatalf("forged state answered %d:\n%s", resp.StatusCode, page)
		}
	})
	t.Run("callback in another browser", func(t *testing.T) {
		params := AuthParams("prompt", "login")
		cb := b.upstreamLogin(s, params, "zitadel", b.zitadelSignIn)
		other := NewBrowser(t)
		u, resp, page := other.follow(cb.String(), func(*url.URL) bool { return false })
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "another browser") {
			t.Fatalf("another browser got %d at %s:\n%s", resp.StatusCode, u, page)
		}
	})
	t.Run("same upstream user, same local user", func(t *testing.T) {
		params := AuthParams("prompt", "login")
		got := b.finishAt(s, b.upstreamLogin(s, params, "zitadel", b.zitadelSignIn))
		_, again := ocRedeemAndVerify(t, s, ocRP, got.Get("code"), params)
		if again.Claims["sub"] != claims["sub"] {
			t.Fatalf("second login got sub %v, first %v", again.Claims["sub"], claims["sub"])
		}
	})
}

// TestBrokerChaining: one fedhub is the upstream OpenID Provider of another.
func TestBrokerChaining(t *testing.T) {
	addrB := freeAddr(t)
	upstreamCfg := strings.Replace(defaultConfig, "clients:\n", `clients:
  - id: broker
    secret: ${BROKER_SECRET}
    redirect_uris: [http://`+addrB+`/broker/corp/callback]
    grant_types: [authorization_code]
`, 1)
	a := Start(t, WithConfig(upstreamCfg), WithEnv("BROKER_SECRET="+upstreamSecret))
	b := Start(t, WithAddr(addrB), WithEnv("CORP_SECRET="+upstreamSecret), withConnectors(`
  - id: corp
    type: oidc
    name: Corp fedhub
    label: Login with Corp fedhub
    mappers:
      - type: username_template
        template: "corp-{{.Username}}"
      - type: group_to_role
        group: staff
        role: employee
    oidc:
      issuer: `+a.URL+`
      client_id: broker
      client_secret: ${CORP_SECRET}
`))
	browser := NewBrowser(t)
	params := AuthParams("scope", "openid profile email")
	got := browser.finishAt(b, browser.upstreamLogin(b, params, "corp", browser.fedhubSignInAs(a, "alice", alicePass)))
	_, idt := ocRedeemAndVerify(t, b, ocRP, got.Get("code"), params)
	claims := idt.Claims
	roles, _ := claims["realm_access"].(map[string]any)["roles"].([]any)
	if claims["idp"] != "corp" || claims["preferred_username"] != "corp-alice" || claims["email"] != "alice@example.com" ||
		len(roles) != 1 || roles[0] != "employee" {
		t.Fatalf("claims from the chained fedhub = %v", claims)
	}

}

// TestUpstreamDown: an upstream that does not answer ends its own flow on a
// page that says so; fedhub starts anyway and the other ways to sign in work.
func TestUpstreamDown(t *testing.T) {
	dead := "http://" + freeAddr(t) // nothing listens there
	s := Start(t, WithEnv("DEAD_SECRET="+upstreamSecret), withConnectors(`
  - id: partner
    type: oidc
    name: Partner SSO
    oidc:
      issuer: `+dead+`
      client_id: fedhub
      client_secret: ${DEAD_SECRET}
`))
	b := NewBrowser(t)
	f := b.OpenLogin(s, s.URL+"/authorize?"+AuthParams().Encode())
	resp, page := b.PostForm(s.URL+"/broker/partner/login", url.Values{"req": {f.Req}, "csrf": {f.CSRF}})
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(page, "Partner SSO is not reachable") ||
		strings.Contains(page, "connection refused") {
		t.Fatalf("a dead upstream answered %d:\n%s", resp.StatusCode, page)
	}
	// The same pending login still works with a local account.
	resp, _ = b.Submit(f, "alice", alicePass)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "code=") {
		t.Fatalf("local login after the upstream failure answered %d %q", resp.StatusCode, loc)
	}
}
