package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/pquerna/otp/totp"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/brokers/brokertest"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/firstlogin"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/mfa"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/store"
)

// The lane's harness: fedhub wired in-process (wire, over a fresh SQLite
// file), its real router on an httptest server, two fake connectors, and a
// browser that keeps cookies and fills in forms.

const (
	laneClientID    = "lane-app"
	laneSecret      = "lane-secret-0123456789abcdef"
	laneRedirectURI = "http://127.0.0.1:5555/callback" // nothing listens: a browser sent there stops
	laneDir         = "corp-dir"                       // the password connector
	laneSSO         = "corp-sso"                       // the redirect connector
	laneUpstreamPw  = "upstream-Passw0rd!"             // every identity's password at corp-dir
)

// laneServer is one fedhub with both fake connectors on the same first-login
// policy, and the fake upstream of the redirect one on a server of its own.
type laneServer struct {
	url     string
	app     *app
	dir     *brokertest.PasswordConnector
	sso     *brokertest.RedirectConnector
	mfa     mfaPolicy    // the connectors' second-factor policy
	factors *mfa.Service // to give local users an authenticator app
}

// startLane starts a lane server; configure changes its configuration first.
func startLane(t *testing.T, p firstlogin.Policy, policy mfaPolicy, configure ...func(*config.Config)) *laneServer {
	t.Helper()
	l := &laneServer{dir: &brokertest.PasswordConnector{}, sso: &brokertest.RedirectConnector{}, mfa: policy}
	upstream := httptest.NewServer(l.sso.Handler())
	t.Cleanup(upstream.Close)
	l.sso.URL = upstream.URL

	srv := httptest.NewUnstartedServer(nil)
	l.url = "http://" + srv.Listener.Addr().String()
	cfg := config.Defaults()
	cfg.Issuer = l.url
	cfg.Storage = config.Storage{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "fedhub.db")}
	cfg.Signing.Algorithm = "ES256" // a new key per server in microseconds
	cfg.Clients = []config.Client{{ID: laneClientID, Name: "Lane App", Secret: laneSecret,
		RedirectURIs: []string{laneRedirectURI}, GrantTypes: []string{config.GrantAuthorizationCode, config.GrantRefreshToken}},
		{ID: lanePasswordClient, Name: "Lane Script", Secret: laneSecret, GrantTypes: []string{config.GrantPassword}}}
	for _, f := range configure {
		f(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, cfg.Storage)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close(db) })
	if err := migrate(ctx, db, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	// Unexpected server errors (logged at error level) show in the test's output.
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	if l.app, err = wire(ctx, &cfg, db, log,
		brokers.Connector{ID: laneDir, Name: "Corporate Directory", Label: "Sign in with Corporate Directory",
			Enabled: true, Policy: p, MFA: string(policy), Impl: l.dir},
		brokers.Connector{ID: laneSSO, Name: "Corporate SSO", Label: "Sign in with Corporate SSO",
			Enabled: true, Policy: p, MFA: string(policy), Impl: l.sso}); err != nil {
		t.Fatal(err)
	}
	l.factors = mfa.New(db, l.app.secrets, "fedhub", time.Now)
	srv.Config.Handler = l.app.echo
	srv.Start()
	t.Cleanup(srv.Close)
	return l
}

// upstreamKnows puts id in both fake upstreams' tables: corp-dir signs it in
// with its username and laneUpstreamPw, corp-sso's code for it is its username.
func (l *laneServer) upstreamKnows(id login.Identity) {
	l.dir.Set(id.Username, laneUpstreamPw, id)
	l.sso.Set(id.Username, id)
}

// localHash is the argon2id hash of laneLocalPassword, computed once per test run.
var localHash = sync.OnceValue(func() string {
	h, err := linking.HashPassword(laneLocalPassword)
	if err != nil {
		panic(err)
	}
	return h
})

// createLocal creates a local account with the password laneLocalPassword.
func (l *laneServer) createLocal(t *testing.T, username, email string, verified bool) *linking.User {
	t.Helper()
	ctx := context.Background()
	u, err := l.app.users.CreateUser(ctx, linking.NewUser{Username: username, Email: email,
		EmailVerified: verified, Name: "Local " + username, PasswordHash: localHash()})
	if err != nil {
		t.Fatal(err)
	}
	if l.mfa != mfaOff { // local users have an authenticator app wherever it may be asked for
		code, _ := totp.GenerateCode(laneTOTPKey, time.Now())
		if _, _, err := l.factors.ConfirmTOTP(ctx, u.ID, "Phone", laneTOTPKey, code); err != nil {
			t.Fatal(err)
		}
	}
	return u
}

// laneTOTPKey is the key of local users' authenticator apps.
const laneTOTPKey = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

// counts are the users and the links in the database.
func (l *laneServer) counts(t *testing.T) (users, links int64) {
	t.Helper()
	if err := l.app.db.Model(&linking.User{}).Count(&users).Error; err != nil {
		t.Fatal(err)
	}
	if err := l.app.db.Model(&linking.Link{}).Count(&links).Error; err != nil {
		t.Fatal(err)
	}
	return users, links
}

// linkedUser is the user an upstream identity is linked to, or "".
func (l *laneServer) linkedUser(connector, subject string) string {
	u, err := l.app.users.LinkedUser(context.Background(), connector, subject)
	if err != nil {
		return ""
	}
	return u.ID
}

// laneBrowser is a person's browser: it keeps cookies and follows redirects
// within fedhub and the fake upstream; a redirect anywhere else (the
// application's redirect URI) ends the visit there.
type laneBrowser struct {
	t       *testing.T
	base    *url.URL
	client  *http.Client
	visited []*url.URL // every address a redirect led to, in order
}

func (l *laneServer) browser(t *testing.T) *laneBrowser {
	jar, _ := cookiejar.New(nil)
	base, _ := url.Parse(l.url)
	upstream, _ := url.Parse(l.sso.URL)
	b := &laneBrowser{t: t, base: base}
	b.client = &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != base.Host && req.URL.Host != upstream.Host {
			return http.ErrUseLastResponse
		}
		if len(via) >= 10 {
			return errors.New("too many redirects")
		}
		b.visited = append(b.visited, req.URL)
		return nil
	}}
	return b
}

// lanePage is what the browser shows after a visit.
type lanePage struct {
	status   int
	url      *url.URL // the page's address
	location string   // where fedhub sent the browser out of it: the application's redirect URI
	body     string
}

func (b *laneBrowser) get(ref string) lanePage {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.base.ResolveReference(mustURL(b.t, ref)).String(), nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *laneBrowser) post(action string, form url.Values) lanePage {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, b.base.ResolveReference(mustURL(b.t, action)).String(),
		strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func (b *laneBrowser) do(req *http.Request) lanePage {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	p := lanePage{status: resp.StatusCode, url: resp.Request.URL, body: string(body)}
	if resp.StatusCode/100 == 3 {
		p.location = resp.Header.Get("Location")
	}
	return p
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

var (
	formTag  = regexp.MustCompile(`(?s)<form method="post" action="([^"]*)"[^>]*>(.*?)</form>`)
	inputTag = regexp.MustCompile(`<input [^>]*>`)
	nameAttr = regexp.MustCompile(`\bname="([^"]*)"`)
	valAttr  = regexp.MustCompile(`\bvalue="([^"]*)"`)
)

// form is the page's first form that posts to action, filled in as shown
// (hidden fields such as t, req and csrf, and pre-filled ones).
func (p lanePage) form(t *testing.T, action string) url.Values {
	t.Helper()
	for _, f := range formTag.FindAllStringSubmatch(p.body, -1) {
		if html.UnescapeString(f[1]) != action {
			continue
		}
		v := url.Values{}
		for _, in := range inputTag.FindAllString(f[2], -1) {
			name := nameAttr.FindStringSubmatch(in)
			if name == nil {
				continue
			}
			value := ""
			if m := valAttr.FindStringSubmatch(in); m != nil {
				value = html.UnescapeString(m[1])
			}
			v.Set(html.UnescapeString(name[1]), value)
		}
		return v
	}
	t.Fatalf("%s (%d) has no form posting to %s:\n%s", p.url, p.status, action, p.body)
	return nil
}

// link is the address the page's link with the given id goes to.
func (p lanePage) link(t *testing.T, id string) string {
	t.Helper()
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `" href="([^"]*)"`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("%s has no link %s:\n%s", p.url, id, p.body)
	}
	return html.UnescapeString(m[1])
}

// must fails t unless the page has the status and says what.
func (p lanePage) must(t *testing.T, status int, says string) {
	t.Helper()
	if p.status != status || !strings.Contains(p.body, says) {
		t.Fatalf("%s: got %d %s, want %d saying %q:\n%s", p.url, p.status, p.location, status, says, p.body)
	}
}

// laneRequest is the application's side of one sign-in.
type laneRequest struct{ state, nonce, verifier string }

// authorize starts an application's sign-in (code flow with PKCE) and returns
// the login page it leads to.
func (b *laneBrowser) authorize() (laneRequest, lanePage) {
	b.t.Helper()
	rp, p := b.request()
	p.must(b.t, http.StatusOK, `action="/broker/`+laneSSO+`/login"`)
	return rp, p
}

// request is the application's authorization request, answered: by the
// login page, or straight away where the browser has an SSO session.
func (b *laneBrowser) request() (laneRequest, lanePage) {
	b.t.Helper()
	rp := laneRequest{state: secret.Token(12), nonce: secret.Token(12), verifier: secret.Token(32)}
	sum := sha256.Sum256([]byte(rp.verifier))
	q := url.Values{"client_id": {laneClientID}, "response_type": {"code"}, "scope": {"openid profile email"},
		"redirect_uri": {laneRedirectURI}, "state": {rp.state}, "nonce": {rp.nonce},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	return rp, b.get("/authorize?" + q.Encode())
}

// signIn starts a sign-in and signs in at the connector of kind as who; it
// returns the page after the connector: a first-login page, or the way back
// to the application.
func (b *laneBrowser) signIn(l *laneServer, kind string, who login.Identity) (laneRequest, lanePage) {
	b.t.Helper()
	rp, p := b.authorize()
	return rp, b.viaConnector(l, p, kind, who)
}

// viaConnector signs in on the login page p with the connector of kind as who.
func (b *laneBrowser) viaConnector(l *laneServer, p lanePage, kind string, who login.Identity) lanePage {
	b.t.Helper()
	switch kind {
	case "password": // the connector's link opens its form
		p = b.get(p.link(b.t, "connector-"+laneDir))
		form := p.form(b.t, "/broker/"+laneDir+"/login")
		form.Set("username", who.Username)
		form.Set("password", laneUpstreamPw)
		return b.post("/broker/"+laneDir+"/login", form)
	case "redirect": // the button goes to the upstream, which comes straight back
		l.sso.As(who.Username)
		return b.post("/broker/"+laneSSO+"/login", p.form(b.t, "/broker/"+laneSSO+"/login"))
	}
	b.t.Fatalf("unknown connector kind %q", kind)
	return lanePage{}
}

// upstreamOf is the fake upstream of the lane's connector of a kind.
func (l *laneServer) upstreamOf(kind string) *brokertest.Upstream {
	if kind == "password" {
		return &l.dir.Upstream
	}
	return &l.sso.Upstream
}

// connectorOf is the lane's connector of a kind.
func connectorOf(kind string) string {
	if kind == "password" {
		return laneDir
	}
	return laneSSO
}

// exchange is the application's side of a finished sign-in: p must send the
// browser back to it with a code for rp, which it redeems at /token; the ID
// token must verify with fedhub's JWKS. It returns the token's subject.
func (l *laneServer) exchange(t *testing.T, p lanePage, rp laneRequest) (sub, acr string) {
	t.Helper()
	tok := l.redeem(t, p, rp)
	ctx := context.Background()
	provider, err := gooidc.NewProvider(ctx, l.url)
	if err != nil {
		t.Fatal(err)
	}
	idt, err := provider.Verifier(&gooidc.Config{ClientID: laneClientID}).Verify(ctx, tok.IDToken)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	if idt.Nonce != rp.nonce {
		t.Fatalf("ID token nonce %q, want %q", idt.Nonce, rp.nonce)
	}
	var claims struct {
		ACR string `json:"acr"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	return idt.Subject, claims.ACR
}

// laneTokens are the token endpoint's answer.
type laneTokens struct {
	IDToken      string `json:"id_token"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// redeem is the application's side of a finished sign-in: p must send the
// browser back to it with a code for rp, which it redeems at /token.
func (l *laneServer) redeem(t *testing.T, p lanePage, rp laneRequest) laneTokens {
	t.Helper()
	back := mustURL(t, p.location)
	if p.status != http.StatusSeeOther || !strings.HasPrefix(p.location, laneRedirectURI+"?") {
		t.Fatalf("%s: got %d to %q, want a redirect to the application:\n%s", p.url, p.status, p.location, p.body)
	}
	if back.Query().Get("state") != rp.state || back.Query().Get("code") == "" {
		t.Fatalf("the application got %s, want a code and its state", back.RawQuery)
	}
	var tok laneTokens
	status := l.token(t, laneClientID, url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")},
		"redirect_uri": {laneRedirectURI}, "code_verifier": {rp.verifier}}, &tok)
	if status != http.StatusOK {
		t.Fatalf("token endpoint: %d", status)
	}
	return tok
}

// token posts form to /token as the client and decodes the answer into
// answer; it returns the status.
func (l *laneServer) token(t *testing.T, clientID string, form url.Values, answer any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, l.url+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, laneSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(answer); err != nil {
		t.Fatalf("token endpoint: %d, %v", resp.StatusCode, err)
	}
	return resp.StatusCode
}
