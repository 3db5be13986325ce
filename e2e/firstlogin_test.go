package e2e

import (
	"database/sql"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	_ "github.com/mattn/go-sqlite3"

	"github.com/fedhub/fedhub/e2e/peers"
)

// First login, end to end: a second fedhub is the upstream OpenID Provider
// whose people (email, email_verified) the tests fully control, OpenLDAP is
// the directory whose entries change between logins, and the broker's SQLite
// database is read to prove what was (and was not) written.

const (
	flUpPass    = "upstream-Passw0rd!" // every person's password at the upstream fedhub
	flLocalPass = "local-Passw0rd!"    // FL_PASSWORD: carol, dave and erin at the broker
	flEvilPass  = "evil-Passw0rd!"
)

// flUpstreamPerson is a person at the upstream fedhub.
type flUpstreamPerson struct {
	username, email string
	verified        bool
	name            string
}

var flUpstreamPeople = []flUpstreamPerson{
	{"nora", "nora@up.test", true, "Nora New"},             // create
	{"rita", "rita@up.test", true, "Rita Review"},          // review then create
	{"dan", "dan@up.test", true, "Dan Denied"},             // deny
	{"alice", "alice@example.com", true, "Alice Upstream"}, // auto link; proof bound to the subject
	{"bob", "bob@example.com", true, "Bob Upstream"},       // the local bob's email is not verified: no candidate
	{"carol", "carol@example.com", false, "Carol Upstream"},
	{"dave", "dave@example.com", true, "Dave Upstream"},  // declines the link; his username is taken
	{"dora", "dave@example.com", true, "Dora Doppel"},    // declines the link
	{"erin", "erin@example.com", true, "Erin Upstream"},  // link after re-authentication
	{"vic", "victim@example.com", true, "Victor Victim"}, // an attacker pre-registered this email
	{"mallory", "alice@example.com", false, "Mallory"},   // says she is alice@example.com, unverified
	{"rex", "rex@up.test", true, "Rex Locked"},           // review with the email locked
	{"rev", "rev@up.test", true, "Rev Editable"},         // review with the email editable
	{"herd", "herd@up.test", true, "Herd of Clicks"},     // 50 concurrent first logins
	{"kim", "kim@up.test", true, "Kim Crash"},            // kill -9 on the review page
	{"flock", "flock@up.test", true, "Flock"},            // 50 concurrent review submissions
}

// flChainConnectors are the broker's connectors, all to the upstream fedhub:
// one per first-login configuration.
var flChainConnectors = []struct{ id, extra string }{
	{"corp-create", ""},
	{"corp-review", "    first_login: {on_new: review_then_create, required_fields: [email, name]}\n"},
	{"corp-review-locked", "    first_login: {on_new: review_then_create, match_existing_by: email}\n"},
	{"corp-deny", "    first_login: {on_new: deny}\n"},
	{"corp-confirm", "    first_login: {match_existing_by: email}\n"},
	// corp-auto lets a user link several of its identities: alice's link page offers it to mallory.
	{"corp-auto", "    trust_email: true\n    multiple_identities: true\n    first_login: {match_existing_by: email, on_match: link_automatically}\n"},
	{"corp-untrusted", "    first_login: {match_existing_by: email, on_match: confirm_and_reauthenticate}\n"},
	{"corp-members", "    first_login: {on_new: deny, match_existing_by: email}\n"},
}

// flBrokerUsers are the broker's local accounts (alice verified, bob not).
const flBrokerUsers = `users:
  - username: alice
    email: alice@example.com
    email_verified: true
    name: Alice Example
    password: ${ALICE_PASSWORD}
  - username: bob
    email: bob@example.com
    name: Bob Example
    password: ${BOB_PASSWORD}
  - username: carol
    email: carol@example.com
    email_verified: true
    password: ${FL_PASSWORD}
  - username: dave
    email: dave@example.com
    email_verified: true
    password: ${FL_PASSWORD}
  - username: erin
    email: erin@example.com
    email_verified: true
    password: ${FL_PASSWORD}
`

// flBase is the default configuration without its users: clients only.
func flBase() string { return defaultConfig[:strings.Index(defaultConfig, "users:\n")] }

// flChain is an upstream fedhub (a) and the broker under test (b).
type flChain struct{ a, b *Server }

func flStartChain(t *testing.T) *flChain {
	t.Helper()
	addrB := freeAddr(t)
	var redirects, people, connectors []string
	for _, c := range flChainConnectors {
		redirects = append(redirects, "http://"+addrB+"/broker/"+c.id+"/callback")
		connectors = append(connectors, `  - id: `+c.id+`
    type: oidc
    name: Corp (`+c.id+`)
    oidc:
      issuer: %[9]s
      client_id: broker
      client_secret: ${CORP_SECRET}
`+c.extra)
	}
	for _, p := range flUpstreamPeople {
		people = append(people, fmt.Sprintf("  - username: %s\n    email: %s\n    email_verified: %v\n    name: %s\n    password: ${UP_PASSWORD}\n",
			p.username, p.email, p.verified, p.name))
	}
	upstream := `
issuer: %[1]s
listen: %[2]s
storage:
  driver: sqlite
  dsn: %[3]s
clients:
  - id: broker
    secret: ${BROKER_SECRET}
    redirect_uris: [` + strings.Join(redirects, ", ") + `]
    grant_types: [authorization_code]
users:
` + strings.Join(people, "")
	a := Start(t, WithConfig(upstream), WithEnv("BROKER_SECRET="+upstreamSecret, "UP_PASSWORD="+flUpPass))
	broker := flBase() + flBrokerUsers + "connectors:\n" + strings.ReplaceAll(strings.Join(connectors, ""), "%[9]s", a.URL)
	b := Start(t, WithAddr(addrB), WithConfig(broker), WithEnv("CORP_SECRET="+upstreamSecret, "FL_PASSWORD="+flLocalPass))
	return &flChain{a: a, b: b}
}

// flJar keeps cookies per host and port, as browsers do for different sites:
// the upstream and the broker both run on 127.0.0.1, and cookies ignore ports.
type flJar struct {
	mu   sync.Mutex
	jars map[string]*cookiejar.Jar
}

func (j *flJar) of(u *url.URL) *cookiejar.Jar {
	j.mu.Lock()
	defer j.mu.Unlock()
	jar, ok := j.jars[u.Host]
	if !ok {
		jar, _ = cookiejar.New(nil)
		j.jars[u.Host] = jar
	}
	return jar
}

func (j *flJar) SetCookies(u *url.URL, cookies []*http.Cookie) { j.of(u).SetCookies(u, cookies) }
func (j *flJar) Cookies(u *url.URL) []*http.Cookie             { return j.of(u).Cookies(u) }

// forget drops a site's cookies (the person signed out there).
func (j *flJar) forget(site string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.jars, flHost(site))
}

// share makes a site's cookies those of jar (one upstream session for many browsers).
func (j *flJar) share(site string, jar *cookiejar.Jar) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.jars[flHost(site)] = jar
}

func flHost(site string) string {
	u, _ := url.Parse(site)
	return u.Host
}

// flNewBrowser is a Browser whose cookies are kept per site.
func flNewBrowser(t testing.TB) (*Browser, *flJar) {
	jar := &flJar{jars: map[string]*cookiejar.Jar{}}
	return &Browser{t: t, Client: &http.Client{
		Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, jar
}

// flSignIn signs in at the upstream fedhub as username.
func (e *flChain) flSignIn(br *Browser, username string) func(*url.URL, string) string {
	return func(u *url.URL, page string) string {
		br.t.Helper()
		f := LoginForm{Action: e.a.URL + "/broker/local/login", Page: page}
		for _, m := range hiddenInput.FindAllStringSubmatch(page, -1) {
			if m[1] == "req" {
				f.Req = m[2]
			} else {
				f.CSRF = m[2]
			}
		}
		resp, body := br.Submit(f, username, flUpPass)
		if resp.StatusCode != http.StatusSeeOther {
			br.t.Fatalf("the upstream refused %s: %d\n%s", username, resp.StatusCode, body)
		}
		next, err := u.Parse(resp.Header.Get("Location"))
		if err != nil {
			br.t.Fatal(err)
		}
		return next.String()
	}
}

// flResult is where a login through the broker ended: at the RP (RP set) or on a page.
type flResult struct {
	Params url.Values // the RP's authorization request
	RP     url.Values // what the RP received; nil when the browser stopped on a page
	URL    *url.URL
	Status int
	Body   string
}

func flAtRP(u *url.URL) bool { return strings.HasPrefix(u.String(), redirectURI) }

// flFollow follows redirects from rawURL to the RP or to a page.
func flFollow(br *Browser, params url.Values, rawURL string) flResult {
	br.t.Helper()
	u, resp, body := br.follow(rawURL, flAtRP)
	r := flResult{Params: params, URL: u, Body: body}
	if flAtRP(u) {
		r.RP = u.Query()
		return r
	}
	r.Status = resp.StatusCode
	return r
}

// flAfterPost follows the answer to a form post.
func flAfterPost(br *Browser, s *Server, params url.Values, resp *http.Response, body string) flResult {
	br.t.Helper()
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode/100 == 3 {
		next, err := resp.Request.URL.Parse(loc)
		if err != nil {
			br.t.Fatal(err)
		}
		return flFollow(br, params, next.String())
	}
	return flResult{Params: params, URL: resp.Request.URL, Status: resp.StatusCode, Body: body}
}

// flLogin signs in at the broker through connector as the upstream person username.
func (e *flChain) flLogin(t *testing.T, br *Browser, connector, username string) flResult {
	t.Helper()
	params := AuthParams("scope", "openid profile email")
	cb := br.upstreamLogin(e.b, params, connector, e.flSignIn(br, username))
	return flFollow(br, params, cb.String())
}

// flClaims redeems the code the RP got and returns the verified ID token's claims.
func (r flResult) flClaims(t *testing.T, s *Server) map[string]any {
	t.Helper()
	if r.RP == nil {
		t.Fatalf("the browser did not reach the RP: %d at %s\n%s", r.Status, r.URL, r.Body)
	}
	if r.RP.Get("state") != r.Params.Get("state") || r.RP.Get("code") == "" {
		t.Fatalf("the RP got %v", r.RP)
	}
	_, idt := ocRedeemAndVerify(t, s, ocRP, r.RP.Get("code"), r.Params)
	return idt.Claims
}

// flWantPage fails unless the login stopped on a page at path with status that says all of want.
func (r flResult) flWantPage(t *testing.T, status int, path string, want ...string) {
	t.Helper()
	if r.RP != nil {
		t.Fatalf("the browser reached the RP (%v), want the page %s", r.RP, path)
	}
	if r.Status != status || (path != "" && r.URL.Path != path) {
		t.Fatalf("got %d at %s, want %d at %s:\n%s", r.Status, r.URL, status, path, r.Body)
	}
	text := html.UnescapeString(r.Body)
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Fatalf("the page at %s does not say %q:\n%s", r.URL, w, r.Body)
		}
	}
}

var flHiddenRE = regexp.MustCompile(`name="(t|csrf)" value="([^"]*)"`)

// flTokens are the first form's t and csrf fields of a first-login page.
func flTokens(t *testing.T, page string) (tok, csrf string) {
	t.Helper()
	for _, m := range flHiddenRE.FindAllStringSubmatch(page, -1) {
		if m[1] == "t" && tok == "" {
			tok = m[2]
		}
		if m[1] == "csrf" && csrf == "" {
			csrf = m[2]
		}
	}
	if tok == "" || csrf == "" {
		t.Fatalf("the page has no t/csrf fields:\n%s", page)
	}
	return tok, csrf
}

// flInput returns the <input> with this id, and its value.
func flInput(t *testing.T, page, id string) (tag, value string) {
	t.Helper()
	tag = regexp.MustCompile(`<input[^>]*\bid="` + regexp.QuoteMeta(id) + `"[^>]*>`).FindString(page)
	if tag == "" {
		t.Fatalf("the page has no input #%s:\n%s", id, page)
	}
	if m := regexp.MustCompile(`\bvalue="([^"]*)"`).FindStringSubmatch(tag); m != nil {
		value = html.UnescapeString(m[1])
	}
	return tag, value
}

func flHasAttr(tag, attr string) bool {
	return regexp.MustCompile(`\s` + attr + `(\s|>|=)`).MatchString(tag)
}

// flDB opens a server's SQLite database read-only.
func flDB(t testing.TB, s *Server) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(filepath.Dir(s.Config), "fedhub.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// flRow runs a one-row query on a server's database.
func flRow(t testing.TB, s *Server, query string, args []any, dest ...any) {
	t.Helper()
	if err := flDB(t, s).QueryRowContext(t.Context(), query, args...).Scan(dest...); err != nil {
		t.Fatalf("%s %v: %v", query, args, err)
	}
}

// flCount counts rows.
func flCount(t testing.TB, s *Server, query string, args ...any) int {
	t.Helper()
	var n int
	flRow(t, s, query, args, &n)
	return n
}

// flUserID is the ID (the "sub") of a server's user.
func flUserID(t testing.TB, s *Server, username string) string {
	t.Helper()
	var id string
	flRow(t, s, "SELECT id FROM users WHERE username = ?", []any{username}, &id)
	return id
}

// flSubject is the broker's key of an upstream person: the upstream's issuer and sub.
func (e *flChain) flSubject(t testing.TB, username string) string {
	return e.a.URL + "|" + flUserID(t, e.a, username)
}

// flLinksOf counts the broker's links of an upstream identity through connector.
func (e *flChain) flLinksOf(t testing.TB, connector, username string) int {
	return flCount(t, e.b, "SELECT COUNT(*) FROM links WHERE connector = ? AND subject = ?", connector, e.flSubject(t, username))
}

// flLinkedTo is the user an upstream identity is linked to.
func (e *flChain) flLinkedTo(t testing.TB, connector, username string) string {
	var id string
	flRow(t, e.b, "SELECT user_id FROM links WHERE connector = ? AND subject = ?",
		[]any{connector, e.flSubject(t, username)}, &id)
	return id
}

// flPost posts a first-login form.
func flPost(br *Browser, s *Server, path string, form url.Values) (*http.Response, string) {
	br.t.Helper()
	return br.PostForm(s.URL+path, form)
}

func TestFirstLoginOIDC(t *testing.T) {
	e := flStartChain(t)
	b := e.b

	t.Run("create", func(t *testing.T) {
		br, _ := flNewBrowser(t)
		claims := e.flLogin(t, br, "corp-create", "nora").flClaims(t, b)
		if claims["idp"] != "corp-create" || claims["preferred_username"] != "nora" || claims["email"] != "nora@up.test" ||
			claims["name"] != "Nora New" {
			t.Fatalf("claims = %v", claims)
		}
		if got := e.flLinkedTo(t, "corp-create", "nora"); got != claims["sub"] || flUserID(t, b, "nora") != got {
			t.Fatalf("link points to %s, token sub %v", got, claims["sub"])
		}
		br2, _ := flNewBrowser(t)
		again := e.flLogin(t, br2, "corp-create", "nora").flClaims(t, b)
		if again["sub"] != claims["sub"] || flCount(t, b, "SELECT COUNT(*) FROM users WHERE username = 'nora'") != 1 {
			t.Fatalf("second login: sub %v, first %v", again["sub"], claims["sub"])
		}
	})

	t.Run("review then create", func(t *testing.T) {
		br, _ := flNewBrowser(t)
		r := e.flLogin(t, br, "corp-review", "rita")
		r.flWantPage(t, http.StatusOK, "/first-login/review", "Set up your account", "first sign-in with Corp (corp-review)")
		for id, want := range map[string]string{"username": "rita", "email": "rita@up.test", "name": "Rita Review"} {
			tag, v := flInput(t, r.Body, id)
			if v != want || flHasAttr(tag, "readonly") {
				t.Fatalf("#%s = %q (%s), want %q pre-filled from the upstream and editable", id, v, tag, want)
			}
		}
		for _, id := range []string{"email", "name"} { // required_fields: [email, name]
			if tag, _ := flInput(t, r.Body, id); !flHasAttr(tag, "required") {
				t.Fatalf("#%s is not required: %s", id, tag)
			}
		}
		if e.flLinksOf(t, "corp-review", "rita") != 0 || flCount(t, b, "SELECT COUNT(*) FROM users WHERE email = 'rita@up.test'") != 0 {
			t.Fatal("the review page alone wrote a user or a link")
		}
		tok, csrf := flTokens(t, r.Body)
		good := url.Values{"t": {tok}, "csrf": {csrf}, "username": {"rita.r"}, "email": {"rita@up.test"}, "name": {"Rita R."}}
		for _, c := range []struct {
			field, value, want string
			status             int
		}{
			{"name", "", "Enter your name.", http.StatusUnprocessableEntity},
			{"name", "   ", "Enter your name.", http.StatusUnprocessableEntity},
			{"email", "", "Enter your email address.", http.StatusUnprocessableEntity},
			{"email", "not-an-email", "Enter a valid email address.", http.StatusUnprocessableEntity},
			{"username", "", "Choose a username.", http.StatusUnprocessableEntity},
			{"username", "DAVE", "That username is already taken.", http.StatusConflict}, // another's username links nothing
		} {
			form := ocClone(good)
			form.Set(c.field, c.value)
			resp, page := flPost(br, b, "/first-login/review", form)
			if resp.StatusCode != c.status || !strings.Contains(page, c.want) {
				t.Fatalf("%s=%q answered %d:\n%s", c.field, c.value, resp.StatusCode, page)
			}
		}
		if e.flLinksOf(t, "corp-review", "rita") != 0 || flCount(t, b, "SELECT COUNT(*) FROM users WHERE username = 'rita.r'") != 0 ||
			flCount(t, b, "SELECT COUNT(*) FROM links WHERE user_id = ?", flUserID(t, b, "dave")) != 1 {
			t.Fatal("a refused review wrote a user or a link")
		}
		resp, page := flPost(br, b, "/first-login/review", good)
		claims := flAfterPost(br, b, r.Params, resp, page).flClaims(t, b)
		if claims["preferred_username"] != "rita.r" || claims["name"] != "Rita R." || claims["email"] != "rita@up.test" ||
			claims["email_verified"] != false || claims["idp"] != "corp-review" {
			t.Fatalf("claims = %v (email_verified must be false: corp-review is not trusted for email)", claims)
		}
		if e.flLinkedTo(t, "corp-review", "rita") != claims["sub"] {
			t.Fatal("the link does not point to the new user")
		}
		resp, page = flPost(br, b, "/first-login/review", good) // the same form again
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "already completed") {
			t.Fatalf("a replayed review answered %d:\n%s", resp.StatusCode, page)
		}
		if n := flCount(t, b, "SELECT COUNT(*) FROM links WHERE user_id = ?", claims["sub"]); n != 1 {
			t.Fatalf("rita.r has %d links", n)
		}
	})

	t.Run("deny", func(t *testing.T) {
		br, _ := flNewBrowser(t)
		r := e.flLogin(t, br, "corp-deny", "dan")
		r.flWantPage(t, http.StatusForbidden, "", "You cannot sign in this way",
			"Only people who already have a fedhub account can sign in this way. Ask an administrator for an account.",
			"Go back to the application and choose another way to sign in, or contact your administrator.")
		if e.flLinksOf(t, "corp-deny", "dan") != 0 || flCount(t, b, "SELECT COUNT(*) FROM users WHERE username = 'dan'") != 0 {
			t.Fatal("a denied first login wrote a user or a link")
		}
		if n := flCount(t, b, "SELECT COUNT(*) FROM events WHERE type = 'first_login.decision' AND outcome = 'failure' AND detail = 'DENY' AND actor = ?",
			"corp-deny:"+e.flSubject(t, "dan")); n != 1 {
			t.Fatalf("%d audit events of the denial", n)
		}
	})

	t.Run("link by email after re-authentication", func(t *testing.T) {
		br, _ := flNewBrowser(t)
		r := e.flLogin(t, br, "corp-confirm", "erin")
		r.flWantPage(t, http.StatusOK, "/first-login/link", "You already have an account", "this email (<strong>erin@example.com</strong>)",
			"<strong>erin</strong>")
		if !strings.Contains(r.Body, `id="reauth-local"`) || !strings.Contains(r.Body, `id="password-local"`) {
			t.Fatalf("no local password form on the link page:\n%s", r.Body)
		}
		if e.flLinksOf(t, "corp-confirm", "erin") != 0 {
			t.Fatal("linked before the proof of control")
		}
		tok, csrf := flTokens(t, r.Body)
		resp, page := flPost(br, b, "/first-login/link", url.Values{"t": {tok}, "csrf": {csrf}, "connector": {"local"}, "password": {flLocalPass}})
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Your accounts are linked") ||
			!strings.Contains(page, "<strong>erin</strong>") || !strings.Contains(page, `id="continue"`) {
			t.Fatalf("re-authentication answered %d:\n%s", resp.StatusCode, page)
		}
		erin := flUserID(t, b, "erin")
		if e.flLinkedTo(t, "corp-confirm", "erin") != erin {
			t.Fatal("the link does not point to the existing erin")
		}
		ctok, ccsrf := flTokens(t, page)
		resp, page = flPost(br, b, "/first-login/continue", url.Values{"t": {ctok}, "csrf": {ccsrf}})
		claims := flAfterPost(br, b, r.Params, resp, page).flClaims(t, b)
		if claims["sub"] != erin || claims["preferred_username"] != "erin" || claims["idp"] != "corp-confirm" {
			t.Fatalf("claims = %v, want the existing erin (%s)", claims, erin)
		}
		br2, _ := flNewBrowser(t)
		if again := e.flLogin(t, br2, "corp-confirm", "erin").flClaims(t, b); again["sub"] != erin {
			t.Fatalf("the next login got sub %v", again["sub"])
		}
		if n := flCount(t, b, "SELECT COUNT(*) FROM users WHERE email = 'erin@example.com'"); n != 1 {
			t.Fatalf("%d users with erin's email", n)
		}
	})

	t.Run("link automatically: trusted connector, verified upstream and local emails", func(t *testing.T) {
		br, _ := flNewBrowser(t)
		r := e.flLogin(t, br, "corp-auto", "alice")
		claims := r.flClaims(t, b) // straight to the RP: no page
		alice := flUserID(t, b, "alice")
		if claims["sub"] != alice || claims["idp"] != "corp-auto" || e.flLinkedTo(t, "corp-auto", "alice") != alice {
			t.Fatalf("claims = %v, want the existing alice (%s)", claims, alice)
		}
		if n := flCount(t, b, "SELECT COUNT(*) FROM events WHERE type = 'link.created' AND user_id = ? AND connector = 'corp-auto' AND detail LIKE '%automatically%'", alice); n != 1 {
			t.Fatalf("%d audit events of the automatic link", n)
		}
	})

	// When any one of the three conditions fails, the link page appears instead.
	noAutoLink := func(t *testing.T, connector, person, account, email string) {
		t.Helper()
		br, _ := flNewBrowser(t)
		r := e.flLogin(t, br, connector, person)
		r.flWantPage(t, http.StatusOK, "/first-login/link", "You already have an account", "(<strong>"+email+"</strong>)",
			"<strong>"+account+"</strong>")
		if n := e.flLinksOf(t, connector, person); n != 0 {
			t.Fatalf("%s's identity got %d links without a proof of control", person, n)
		}
	}
	// Only a verified local email makes a candidate; the upstream's
	// username, bob, is taken: he chooses another on the review page.
	t.Run("no match: local email not verified", func(t *testing.T) {
		var verified bool
		flRow(t, b, "SELECT email_verified FROM users WHERE username = 'bob'", nil, &verified)
		if verified {
			t.Fatal("the local bob's email is verified: the case does not hold")
		}
		br, _ := flNewBrowser(t)
		r := e.flLogin(t, br, "corp-auto", "bob")
		r.flWantPage(t, http.StatusOK, "/first-login/review", "Set up your account", "The username bob is already taken. Choose another one.")
		if n := e.flLinksOf(t, "corp-auto", "bob"); n != 0 {
			t.Fatalf("bob's identity got %d links before the review", n)
		}
	})
	t.Run("no automatic link: upstream email not verified", func(t *testing.T) {
		noAutoLink(t, "corp-auto", "carol", "carol", "carol@example.com")
	})
	t.Run("no automatic link: connector not trusted for email", func(t *testing.T) {
		// link_automatically cannot even be configured on an untrusted connector…
		conn := `
  - id: partner
    type: oidc
    first_login: {match_existing_by: email, on_match: link_automatically}
    oidc:
      issuer: http://127.0.0.1:1
      client_id: fedhub
      client_secret: ${RP_SECRET}
`
		out, err := ocCheckConfig(t, defaultConfig+"connectors:"+conn)
		if err == nil || !strings.Contains(out, "link_automatically") || !strings.Contains(out, "trust_email") {
			t.Fatalf("check-config accepted link_automatically without trust_email (%v):\n%s", err, out)
		}
		if out, err := ocCheckConfig(t, defaultConfig+"connectors:"+strings.Replace(conn, "    first_login", "    trust_email: true\n    first_login", 1)); err != nil {
			t.Fatalf("check-config refused the trusted variant: %v\n%s", err, out)
		}
		// …and an untrusted connector only proposes the link, with both emails verified.
		noAutoLink(t, "corp-untrusted", "alice", "alice", "alice@example.com")
	})

	t.Run("attack: victim's email pre-registered as a local account", func(t *testing.T) {
		out, err := b.CLI(t, flEvilPass+"\n", "users", "add", "--username", "evil", "--email", "victim@example.com", "--password-stdin")
		if err != nil || !strings.Contains(out, "created user evil") {
			t.Fatalf("users add = %v:\n%s", err, out)
		}
		var verified bool
		flRow(t, b, "SELECT email_verified FROM users WHERE username = 'evil'", nil, &verified)
		if verified {
			t.Fatal("users add made the email verified")
		}
		// An email evil only typed proposes nothing: victor signs in to an
		// account of his own, not "sign in to evil's account".
		br, _ := flNewBrowser(t)
		claims := e.flLogin(t, br, "corp-auto", "vic").flClaims(t, b) // trusted connector, verified upstream email
		evil := flUserID(t, b, "evil")
		if claims["sub"] == evil || claims["preferred_username"] != "vic" || claims["email"] != "victim@example.com" ||
			e.flLinkedTo(t, "corp-auto", "vic") != claims["sub"] {
			t.Fatalf("claims = %v, want a new user vic (evil is %s)", claims, evil)
		}
		if n := flCount(t, b, "SELECT COUNT(*) FROM links WHERE user_id = ?", evil); n != 1 {
			t.Fatalf("the attacker's account has %d links, want its local password only", n)
		}
	})

	t.Run("attack: upstream sends the victim's email unverified", func(t *testing.T) {
		alice := flUserID(t, b, "alice")
		linksBefore := flCount(t, b, "SELECT COUNT(*) FROM links WHERE user_id = ?", alice)
		br, _ := flNewBrowser(t)
		r := e.flLogin(t, br, "corp-auto", "mallory")
		r.flWantPage(t, http.StatusOK, "/first-login/link", "(<strong>alice@example.com</strong>)", "<strong>alice</strong>")
		tok, csrf := flTokens(t, r.Body)
		resp, page := flPost(br, b, "/first-login/link", url.Values{"t": {tok}, "csrf": {csrf}, "connector": {"local"}, "password": {"guess-" + alicePass}})
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, `role="alert"`) || strings.Contains(page, "Your accounts are linked") {
			t.Fatalf("a wrong password answered %d:\n%s", resp.StatusCode, page)
		}
		resp, page = flPost(br, b, "/first-login/link", url.Values{"t": {tok}, "csrf": {csrf}, "connector": {"corp-create"}})
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("a way to sign in that alice has not linked answered %d:\n%s", resp.StatusCode, page)
		}
		// alice has linked corp-auto: re-authenticating through it proves only
		// who mallory is at the upstream, not alice.
		if strings.Contains(r.Body, `id="reauth-corp-auto"`) {
			resp, _ = flPost(br, b, "/first-login/link", url.Values{"t": {tok}, "csrf": {csrf}, "connector": {"corp-auto"}})
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("re-authentication through corp-auto answered %d", resp.StatusCode)
			}
			next, _ := resp.Request.URL.Parse(resp.Header.Get("Location"))
			back := flFollow(br, r.Params, next.String()) // mallory still has her upstream session
			back.flWantPage(t, http.StatusUnauthorized, "/broker/continue", "That is not the account alice")
		} else {
			t.Errorf("alice's link page offers no re-authentication through corp-auto (did the automatic link fail?):\n%s", r.Body)
		}
		if n := e.flLinksOf(t, "corp-auto", "mallory"); n != 0 {
			t.Fatalf("mallory's identity got %d links", n)
		}
		if n := flCount(t, b, "SELECT COUNT(*) FROM links WHERE user_id = ?", alice); n != linksBefore {
			t.Fatalf("alice has %d links, had %d", n, linksBefore)
		}
	})

	t.Run("attack: proof of control used for another upstream identity", func(t *testing.T) {
		// Two pending first logins in one browser: alice and carol at the upstream.
		br, jar := flNewBrowser(t)
		r1 := e.flLogin(t, br, "corp-confirm", "alice")
		r1.flWantPage(t, http.StatusOK, "/first-login/link", "<strong>alice</strong>")
		jar.forget(e.a.URL) // signed out at the upstream, signs in as carol
		r2 := e.flLogin(t, br, "corp-confirm", "carol")
		r2.flWantPage(t, http.StatusOK, "/first-login/link", "<strong>carol</strong>")
		// A third, also for the local alice (mallory says she is alice@example.com).
		jar.forget(e.a.URL)
		r3 := e.flLogin(t, br, "corp-confirm", "mallory")
		r3.flWantPage(t, http.StatusOK, "/first-login/link", "<strong>alice</strong>")
		t3, c3 := flTokens(t, r3.Body)
		t1, c1 := flTokens(t, r1.Body)
		t2, c2 := flTokens(t, r2.Body)
		link := func(tok, csrf, password string) (*http.Response, string) {
			return flPost(br, b, "/first-login/link", url.Values{"t": {tok}, "csrf": {csrf}, "connector": {"local"}, "password": {password}})
		}
		noLinks := func(when string) {
			t.Helper()
			if n := e.flLinksOf(t, "corp-confirm", "carol"); n != 0 {
				t.Fatalf("%s: carol's upstream identity has %d links", when, n)
			}
		}
		// The first's form token against the second, and the other way round.
		if resp, page := link(t2, c1, flLocalPass); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("the second's token with the first's csrf answered %d:\n%s", resp.StatusCode, page)
		}
		if resp, page := link(t1, c2, alicePass); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("the first's token with the second's csrf answered %d:\n%s", resp.StatusCode, page)
		}
		// carol's password does not prove alice.
		if resp, page := link(t1, c1, flLocalPass); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("carol's password on alice's link page answered %d:\n%s", resp.StatusCode, page)
		}
		noLinks("after the forged posts")
		if e.flLinksOf(t, "corp-confirm", "alice") != 0 {
			t.Fatal("alice's upstream identity got linked without alice's password")
		}
		// The first proves alice: only the first is linked.
		resp, linked1 := link(t1, c1, alicePass)
		if resp.StatusCode != http.StatusOK || !strings.Contains(linked1, "Your accounts are linked") {
			t.Fatalf("alice's re-authentication answered %d:\n%s", resp.StatusCode, linked1)
		}
		if e.flLinkedTo(t, "corp-confirm", "alice") != flUserID(t, b, "alice") {
			t.Fatal("alice's upstream identity is not linked to alice")
		}
		noLinks("after the first proof")
		// A proof of control is void once the account's links changed since it was asked for.
		if resp, page := link(t3, c3, alicePass); resp.StatusCode != http.StatusForbidden ||
			!strings.Contains(page, "changed while you were signing in") {
			t.Fatalf("alice's password for the third, after alice's links changed, answered %d:\n%s", resp.StatusCode, page)
		}
		if n := e.flLinksOf(t, "corp-confirm", "mallory"); n != 0 {
			t.Fatalf("mallory's identity got %d links", n)
		}
		// The first's proof cannot be replayed, nor carried to the second.
		if resp, page := link(t1, c1, alicePass); resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "already completed") {
			t.Fatalf("the first's form again answered %d:\n%s", resp.StatusCode, page)
		}
		l1, lc1 := flTokens(t, linked1)
		for _, f := range []url.Values{{"t": {t2}, "csrf": {lc1}}, {"t": {l1}, "csrf": {c2}}} {
			if resp, page := flPost(br, b, "/first-login/continue", f); resp.StatusCode != http.StatusForbidden {
				t.Fatalf("continue with mixed tokens answered %d:\n%s", resp.StatusCode, page)
			}
		}
		if resp, page := flPost(br, b, "/first-login/continue", url.Values{"t": {t2}, "csrf": {c2}}); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("continuing the second without a proof answered %d:\n%s", resp.StatusCode, page)
		}
		noLinks("after carrying the first's proof")
		// The second still needs its own proof.
		resp, page := br.Get(b.URL + "/first-login/link?t=" + url.QueryEscape(t2))
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "<strong>carol</strong>") {
			t.Fatalf("the second's link page answered %d:\n%s", resp.StatusCode, page)
		}
		if resp, page := link(t2, c2, alicePass); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("alice's password on carol's link page answered %d:\n%s", resp.StatusCode, page)
		}
		if resp, page := flPost(br, b, "/first-login/link", url.Values{"t": {t2}, "csrf": {c2}, "connector": {"corp-auto"}}); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("alice's corp-auto on carol's link page answered %d:\n%s", resp.StatusCode, page)
		}
		noLinks("after alice's ways to sign in")
		resp, linked2 := link(t2, c2, flLocalPass)
		if resp.StatusCode != http.StatusOK || !strings.Contains(linked2, "<strong>carol</strong>") {
			t.Fatalf("carol's re-authentication answered %d:\n%s", resp.StatusCode, linked2)
		}
		if e.flLinkedTo(t, "corp-confirm", "carol") != flUserID(t, b, "carol") {
			t.Fatal("carol's upstream identity is not linked to carol")
		}
		// Each login ends as its own account.
		for _, c := range []struct {
			r      flResult
			linked string
			user   string
		}{{r1, linked1, "alice"}, {r2, linked2, "carol"}} {
			tok, csrf := flTokens(t, c.linked)
			resp, page := flPost(br, b, "/first-login/continue", url.Values{"t": {tok}, "csrf": {csrf}})
			if claims := flAfterPost(br, b, c.r.Params, resp, page).flClaims(t, b); claims["sub"] != flUserID(t, b, c.user) {
				t.Fatalf("the RP of %s's login got sub %v", c.user, claims["sub"])
			}
		}
	})

	// alice has her one identity of corp-confirm (above): another person
	// there who says she is alice@example.com is no candidate for a link.
	t.Run("one identity per connector: an account with one is no candidate", func(t *testing.T) {
		alice := flUserID(t, b, "alice")
		if e.flLinkedTo(t, "corp-confirm", "alice") != alice {
			t.Fatal("alice has no corp-confirm identity: the case does not hold")
		}
		br, _ := flNewBrowser(t)
		claims := e.flLogin(t, br, "corp-confirm", "mallory").flClaims(t, b) // on_new: create
		if claims["sub"] == alice || claims["preferred_username"] != "mallory" || e.flLinkedTo(t, "corp-confirm", "mallory") != claims["sub"] {
			t.Fatalf("claims = %v, want a new user (alice is %s)", claims, alice)
		}
		if n := flCount(t, b, "SELECT COUNT(*) FROM links WHERE user_id = ? AND connector = 'corp-confirm'", alice); n != 1 {
			t.Fatalf("alice has %d corp-confirm identities", n)
		}
	})

	// Whoever is shown "you already have an account" may decline it for an
	// account of their own wherever the connector creates accounts: at once
	// (on_new: create), or after the review page (review_then_create, or a
	// taken username). Its email is not marked verified: the declined account
	// stays the only candidate for it.
	t.Run("create a separate account instead of linking", func(t *testing.T) {
		dave := flUserID(t, b, "dave")
		separate := func(t *testing.T, br *Browser, r flResult) flResult {
			t.Helper()
			r.flWantPage(t, http.StatusOK, "/first-login/link", "You already have an account", "<strong>dave</strong>", "Create a separate account")
			tok, csrf := flTokens(t, r.Body)
			resp, page := flPost(br, b, "/first-login/separate", url.Values{"t": {tok}, "csrf": {csrf}})
			return flAfterPost(br, b, r.Params, resp, page)
		}
		wantNew := func(t *testing.T, claims map[string]any, connector, person, username string) {
			t.Helper()
			if claims["sub"] == dave || claims["preferred_username"] != username || claims["email"] != "dave@example.com" ||
				claims["email_verified"] != false || e.flLinkedTo(t, connector, person) != claims["sub"] {
				t.Fatalf("claims = %v, want a new user %s with dave's email unverified (dave is %s)", claims, username, dave)
			}
		}

		// on_new: create — at once.
		br, _ := flNewBrowser(t)
		r := e.flLogin(t, br, "corp-confirm", "dora")
		tok, csrf := flTokens(t, r.Body)
		wantNew(t, separate(t, br, r).flClaims(t, b), "corp-confirm", "dora", "dora")
		if resp, page := flPost(br, b, "/first-login/separate", url.Values{"t": {tok}, "csrf": {csrf}}); resp.StatusCode != http.StatusBadRequest ||
			!strings.Contains(page, "already completed") {
			t.Fatalf("the same form again answered %d:\n%s", resp.StatusCode, page)
		}

		// dave's username is taken: the review page, where he chooses another.
		br, _ = flNewBrowser(t)
		r = e.flLogin(t, br, "corp-confirm", "dave")
		rv := separate(t, br, r)
		rv.flWantPage(t, http.StatusOK, "/first-login/review", "The username dave is already taken. Choose another one.")
		tok, csrf = flTokens(t, rv.Body)
		resp, page := flPost(br, b, "/first-login/review", url.Values{"t": {tok}, "csrf": {csrf}, "username": {"dave-up"}, "name": {"Dave Up"}})
		wantNew(t, flAfterPost(br, b, r.Params, resp, page).flClaims(t, b), "corp-confirm", "dave", "dave-up")

		// review_then_create: the review page first.
		br, _ = flNewBrowser(t)
		r = e.flLogin(t, br, "corp-review-locked", "dora")
		rv = separate(t, br, r)
		rv.flWantPage(t, http.StatusOK, "/first-login/review", "Set up your account")
		tok, csrf = flTokens(t, rv.Body)
		resp, page = flPost(br, b, "/first-login/review", url.Values{"t": {tok}, "csrf": {csrf}, "username": {"dora-2"}, "name": {"Dora"}})
		wantNew(t, flAfterPost(br, b, r.Params, resp, page).flClaims(t, b), "corp-review-locked", "dora", "dora-2")

		// on_new: deny creates no accounts: linking is the only way, and the form is refused.
		br, _ = flNewBrowser(t)
		r = e.flLogin(t, br, "corp-members", "dora")
		r.flWantPage(t, http.StatusOK, "/first-login/link", "<strong>dave</strong>")
		if strings.Contains(r.Body, "create-separate") {
			t.Fatalf("corp-members (on_new: deny) offers a separate account:\n%s", r.Body)
		}
		tok, csrf = flTokens(t, r.Body)
		if resp, page := flPost(br, b, "/first-login/separate", url.Values{"t": {tok}, "csrf": {csrf}}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("a separate account through corp-members answered %d:\n%s", resp.StatusCode, page)
		}
		if n := e.flLinksOf(t, "corp-members", "dora"); n != 0 {
			t.Fatalf("dora's corp-members identity has %d links", n)
		}

		// dave is untouched, and still the only candidate for his email.
		if n := flCount(t, b, "SELECT COUNT(*) FROM links WHERE user_id = ?", dave); n != 1 {
			t.Fatalf("dave has %d links", n)
		}
		if n := flCount(t, b, "SELECT COUNT(*) FROM users WHERE email = 'dave@example.com' AND email_verified"); n != 1 {
			t.Fatalf("%d users with dave's email verified", n)
		}
		if n := flCount(t, b, "SELECT COUNT(*) FROM events WHERE type = 'first_login.decision' AND user_id = ? AND detail LIKE '%separate%'", dave); n != 3 {
			t.Fatalf("%d audit events of a declined link", n)
		}
	})

	t.Run("attack: review changes a locked email to the victim's", func(t *testing.T) {
		br, _ := flNewBrowser(t)
		r := e.flLogin(t, br, "corp-review-locked", "rex") // match_existing_by: email
		r.flWantPage(t, http.StatusOK, "/first-login/review", "cannot be changed here")
		tag, v := flInput(t, r.Body, "email")
		if v != "rex@up.test" || !flHasAttr(tag, "readonly") {
			t.Fatalf("#email = %q (%s), want the upstream's, read-only", v, tag)
		}
		tok, csrf := flTokens(t, r.Body)
		resp, page := flPost(br, b, "/first-login/review", url.Values{"t": {tok}, "csrf": {csrf},
			"username": {"rex"}, "email": {"dave@example.com"}, "name": {"Rex"}})
		claims := flAfterPost(br, b, r.Params, resp, page).flClaims(t, b)
		dave := flUserID(t, b, "dave")
		if claims["sub"] == dave || claims["email"] != "rex@up.test" {
			t.Fatalf("claims = %v: the posted email was used", claims)
		}
		var email string
		flRow(t, b, "SELECT email FROM users WHERE id = ?", []any{claims["sub"]}, &email)
		if email != "rex@up.test" || e.flLinkedTo(t, "corp-review-locked", "rex") != claims["sub"] {
			t.Fatalf("stored email %q", email)
		}
		if n := flCount(t, b, "SELECT COUNT(*) FROM links WHERE user_id = ?", dave); n != 1 {
			t.Fatalf("dave has %d links", n)
		}
	})

	t.Run("attack: review types the victim's email where it is editable", func(t *testing.T) {
		br, _ := flNewBrowser(t)
		r := e.flLogin(t, br, "corp-review", "rev") // match_existing_by: none
		r.flWantPage(t, http.StatusOK, "/first-login/review")
		if tag, _ := flInput(t, r.Body, "email"); flHasAttr(tag, "readonly") {
			t.Fatalf("#email is read-only: %s", tag)
		}
		tok, csrf := flTokens(t, r.Body)
		resp, page := flPost(br, b, "/first-login/review", url.Values{"t": {tok}, "csrf": {csrf},
			"username": {"rev"}, "email": {"dave@example.com"}, "name": {"Rev"}})
		claims := flAfterPost(br, b, r.Params, resp, page).flClaims(t, b)
		dave := flUserID(t, b, "dave")
		if claims["sub"] == dave || claims["email"] != "dave@example.com" || claims["email_verified"] != false {
			t.Fatalf("claims = %v, want a new user with the typed email unverified", claims)
		}
		var verified bool
		flRow(t, b, "SELECT email_verified FROM users WHERE id = ?", []any{claims["sub"]}, &verified)
		if verified || e.flLinkedTo(t, "corp-review", "rev") != claims["sub"] {
			t.Fatal("the typed email is stored verified, or the link is not the new user's")
		}
		flRow(t, b, "SELECT email_verified FROM users WHERE id = ?", []any{dave}, &verified)
		if n := flCount(t, b, "SELECT COUNT(*) FROM links WHERE user_id = ?", dave); n != 1 || !verified {
			t.Fatalf("dave has %d links, email verified %v", n, verified)
		}
	})

	t.Run("50 concurrent first logins of one identity", func(t *testing.T) {
		upstream, _ := cookiejar.New(nil) // one session at the upstream for all the browsers
		attempts := make([]flAttempt, flRaceSize)
		for i := range attempts {
			br, jar := flNewBrowser(t)
			jar.share(e.a.URL, upstream)
			params := AuthParams("scope", "openid profile email")
			cb := br.upstreamLogin(b, params, "corp-create", e.flSignIn(br, "herd"))
			// Up to the broker's continue step, which starts the first login.
			u, resp, page := br.follow(cb.String(), func(u *url.URL) bool { return u.Path == "/broker/continue" })
			if u.Path != "/broker/continue" {
				t.Fatalf("attempt %d stopped at %s with %d:\n%s", i, u, resp.StatusCode, page)
			}
			attempts[i] = flAttempt{params: params, client: br.Client, fire: func(c *http.Client) (*http.Response, error) { return c.Get(u.String()) }}
		}
		e.flCheckRace(t, attempts, flRace(attempts), "corp-create", "herd")
	})

	t.Run("50 concurrent review submissions of one identity", func(t *testing.T) {
		// One person, fifty review pages (fifty pending first logins), all
		// submitted at once, some with other usernames: still one user.
		upstream, _ := cookiejar.New(nil)
		attempts := make([]flAttempt, flRaceSize)
		for i := range attempts {
			br, jar := flNewBrowser(t)
			jar.share(e.a.URL, upstream)
			r := e.flLogin(t, br, "corp-review", "flock")
			r.flWantPage(t, http.StatusOK, "/first-login/review")
			tok, csrf := flTokens(t, r.Body)
			username := "flock"
			if i%2 == 1 {
				username = fmt.Sprintf("flock-%d", i)
			}
			form := url.Values{"t": {tok}, "csrf": {csrf}, "username": {username}, "email": {"flock@up.test"}, "name": {"Flock"}}
			attempts[i] = flAttempt{params: r.Params, client: br.Client, fire: func(c *http.Client) (*http.Response, error) {
				return c.PostForm(b.URL+"/first-login/review", form)
			}}
		}
		e.flCheckRace(t, attempts, flRace(attempts), "corp-review", "flock")
		if n := flCount(t, b, "SELECT COUNT(*) FROM users WHERE username LIKE 'flock%' OR email = 'flock@up.test'"); n != 1 {
			t.Fatalf("%d users for flock", n)
		}
	})

	t.Run("kill -9 on the review page", func(t *testing.T) {
		br, _ := flNewBrowser(t)
		r := e.flLogin(t, br, "corp-review", "kim")
		r.flWantPage(t, http.StatusOK, "/first-login/review")
		b.Kill(t)
		subject := e.flSubject(t, "kim")
		if n := flCount(t, b, "SELECT COUNT(*) FROM links WHERE subject = ?", subject); n != 0 {
			t.Fatalf("after the crash kim's identity has %d links", n)
		}
		if n := flCount(t, b, "SELECT COUNT(*) FROM users WHERE username = 'kim' OR email = 'kim@up.test'"); n != 0 {
			t.Fatalf("after the crash there are %d users for kim", n)
		}
		b.start(t)
		br2, _ := flNewBrowser(t)
		r = e.flLogin(t, br2, "corp-review", "kim")
		r.flWantPage(t, http.StatusOK, "/first-login/review")
		tok, csrf := flTokens(t, r.Body)
		resp, page := flPost(br2, b, "/first-login/review", url.Values{"t": {tok}, "csrf": {csrf},
			"username": {"kim"}, "email": {"kim@up.test"}, "name": {"Kim Crash"}})
		claims := flAfterPost(br2, b, r.Params, resp, page).flClaims(t, b)
		if claims["preferred_username"] != "kim" || e.flLinkedTo(t, "corp-review", "kim") != claims["sub"] {
			t.Fatalf("claims = %v", claims)
		}
		if n := flCount(t, b, "SELECT COUNT(*) FROM users WHERE username = 'kim' OR email = 'kim@up.test'"); n != 1 {
			t.Fatalf("%d users for kim", n)
		}
	})
}

// flRaceSize is how many browsers race.
const flRaceSize = 50

// flAttempt is one browser's request in a race.
type flAttempt struct {
	params url.Values // its application's authorization request
	client *http.Client
	fire   func(*http.Client) (*http.Response, error)
}

// flOutcome is where an attempt ended: at the RP (final) or on a page.
type flOutcome struct {
	final  *url.URL
	status int
	body   string
	err    error
}

// flRace fires every attempt at once, each in its goroutine, and follows its redirects.
func flRace(attempts []flAttempt) []flOutcome {
	outcomes := make([]flOutcome, len(attempts))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, a := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := a.fire(a.client)
			if err != nil {
				outcomes[i].err = err
				return
			}
			outcomes[i] = flRawFollow(a.client, resp)
		}()
	}
	close(start)
	wg.Wait()
	return outcomes
}

// flRawFollow follows redirects without a testing.T (for goroutines) until the RP or a page.
func flRawFollow(client *http.Client, resp *http.Response) flOutcome {
	for range 20 {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return flOutcome{final: resp.Request.URL, err: err}
		}
		loc := resp.Header.Get("Location")
		if loc == "" || resp.StatusCode < 300 || resp.StatusCode > 399 {
			return flOutcome{final: resp.Request.URL, status: resp.StatusCode, body: string(body)}
		}
		u, err := resp.Request.URL.Parse(loc)
		if err != nil {
			return flOutcome{final: resp.Request.URL, err: err}
		}
		if flAtRP(u) {
			return flOutcome{final: u}
		}
		if resp, err = client.Get(u.String()); err != nil {
			return flOutcome{final: u, err: err}
		}
	}
	return flOutcome{err: errors.New("too many redirects")}
}

// flCheckRace: every attempt reached its RP as the same user, and the
// identity has exactly one user and one link.
func (e *flChain) flCheckRace(t *testing.T, attempts []flAttempt, outcomes []flOutcome, connector, person string) {
	t.Helper()
	subs := map[any]int{}
	for i, o := range outcomes {
		switch {
		case o.err != nil:
			t.Errorf("attempt %d: %v", i, o.err)
		case !flAtRP(o.final):
			t.Errorf("attempt %d ended with %d at %s:\n%s", i, o.status, o.final, o.body)
		default:
			r := flResult{Params: attempts[i].params, RP: o.final.Query(), URL: o.final}
			subs[r.flClaims(t, e.b)["sub"]]++
		}
	}
	if t.Failed() { // what the broker said about the failed attempts
		for _, l := range strings.Split(e.b.Output(), "\n") {
			if strings.Contains(l, "level=ERROR") || strings.Contains(l, "status=500") {
				t.Log(l)
			}
		}
	}
	links := flCount(t, e.b, "SELECT COUNT(*) FROM links WHERE connector = ? AND subject = ?", connector, e.flSubject(t, person))
	if links != 1 || len(subs) != 1 {
		t.Fatalf("%d concurrent first logins made %d links; the RPs got subs %v", len(attempts), links, subs)
	}
	linked := e.flLinkedTo(t, connector, person)
	if n := flCount(t, e.b, "SELECT COUNT(*) FROM users u WHERE u.id = ? OR NOT EXISTS (SELECT 1 FROM links l WHERE l.user_id = u.id)", linked); n != 1 {
		t.Fatalf("%d users: the linked one plus %d without any link", n, n-1)
	}
	if subs[linked] == 0 {
		t.Fatalf("the RPs got %v, the link points to %s", subs, linked)
	}
	t.Logf("%d concurrent first logins: %d reached the RP as the one linked user", len(attempts), subs[linked])
}

// flLDAPConnectors are three connectors to one directory: sync force (its
// identities also matched by email), sync import, and one that proposes links
// by username (ldap-force's: a directory's emails are never verified).
func flLDAPConnectors(dir *peers.LDAPServer) string {
	var b strings.Builder
	for _, c := range []struct{ id, sync, prefix, match string }{
		{"ldap-force", "force", "f-", "email"}, {"ldap-import", "import", "i-", "none"}, {"ldap-match", "import", "f-", "username"},
	} {
		b.WriteString(`  - id: ` + c.id + `
    type: ldap
    name: Directory (` + c.id + `)
    sync: ` + c.sync + `
    first_login: {match_existing_by: ` + c.match + `}
    mappers:
      - {type: username_template, template: "` + c.prefix + `{{.Username}}"}
      - {type: group_to_role, group: engineering, role: developer}
      - {type: group_to_group, group: engineering, to: engineering}
      - {type: group_to_group, group: staff, to: staff}
      - {type: group_to_group, group: auditors, to: auditors}
    ldap:
      urls: [` + dir.LDAPSURL + `]
      ca_file: ` + dir.CAFile + `
      bind_dn: ` + dir.ReaderDN + `
      bind_password: ${LDAP_BIND}
      user_base: ` + dir.UserBase + `
      group_base: ` + dir.GroupBase + `
`)
	}
	return b.String()
}

func flRoles(claims map[string]any) []string {
	var out []string
	ra, _ := claims["realm_access"].(map[string]any)
	roles, _ := ra["roles"].([]any)
	for _, r := range roles {
		out = append(out, r.(string))
	}
	slices.Sort(out)
	return out
}

// flLDAPClaims signs in through a password connector and returns the verified ID token's claims.
func flLDAPClaims(t *testing.T, s *Server, connector, username, password string) map[string]any {
	t.Helper()
	br, _ := flNewBrowser(t)
	params := AuthParams("scope", "openid profile email")
	resp, page := br.ldapLogin(s, params, connector, username, password)
	return flAfterPost(br, s, params, resp, page).flClaims(t, s)
}

func flGroups(claims map[string]any) []string {
	out := groupsOf(claims)
	slices.Sort(out)
	return out
}

// TestFirstLoginLDAPSync: sync force updates the profile and groups at the
// next login, import does not; an email change upstream never moves a linked
// identity to another account.
func TestFirstLoginLDAPSync(t *testing.T) {
	dir := peers.OpenLDAP(t)
	s := Start(t, WithEnv("LDAP_BIND="+dir.ReaderPassword), WithConfig(flBase()+`users:
  - username: vera
    email: vera@example.test
    email_verified: true
    name: Vera Victim
    password: ${ALICE_PASSWORD}
connectors:
`+flLDAPConnectors(dir)))
	alice := dir.Users["alice"]
	first := map[string]map[string]any{}
	for _, c := range []string{"ldap-force", "ldap-import"} {
		claims := flLDAPClaims(t, s, c, "alice", alice.Password)
		if claims["email"] != "alice@example.test" || claims["name"] != "Alice Liddell" ||
			!slices.Equal(flGroups(claims), []string{"engineering", "staff"}) || !slices.Equal(flRoles(claims), []string{"developer"}) {
			t.Fatalf("%s first login: claims = %v", c, claims)
		}
		first[c] = claims
	}
	if first["ldap-force"]["sub"] == first["ldap-import"]["sub"] {
		t.Fatal("two connectors' identities share a user")
	}
	users := flCount(t, s, "SELECT COUNT(*) FROM users")
	admin := dir.Admin(t)

	t.Run("force updates profile and groups, import does not", func(t *testing.T) {
		mr := ldap.NewModifyRequest(alice.DN, nil)
		mr.Replace("mail", []string{"alice.pleasance@example.test"})
		mr.Replace("cn", []string{"Alice Pleasance"})
		mr.Replace("displayName", []string{"Alice Pleasance"})
		if err := admin.Modify(mr); err != nil {
			t.Fatal(err)
		}
		staff := ldap.NewModifyRequest("cn=staff,"+dir.GroupBase, nil)
		staff.Delete("member", []string{alice.DN})
		if err := admin.Modify(staff); err != nil {
			t.Fatal(err)
		}
		add := ldap.NewAddRequest("cn=auditors,"+dir.GroupBase, nil)
		add.Attribute("objectClass", []string{"groupOfNames"})
		add.Attribute("cn", []string{"auditors"})
		add.Attribute("member", []string{alice.DN})
		if err := admin.Add(add); err != nil {
			t.Fatal(err)
		}
		forced := flLDAPClaims(t, s, "ldap-force", "alice", alice.Password)
		if forced["sub"] != first["ldap-force"]["sub"] || forced["email"] != "alice.pleasance@example.test" ||
			forced["name"] != "Alice Pleasance" || !slices.Equal(flGroups(forced), []string{"auditors", "engineering"}) ||
			!slices.Equal(flRoles(forced), []string{"developer"}) {
			t.Fatalf("sync force: claims = %v", forced)
		}
		var email, name string
		flRow(t, s, "SELECT email, name FROM users WHERE id = ?", []any{forced["sub"]}, &email, &name)
		if email != "alice.pleasance@example.test" || name != "Alice Pleasance" {
			t.Fatalf("sync force stored %q %q", email, name)
		}
		imported := flLDAPClaims(t, s, "ldap-import", "alice", alice.Password)
		if imported["sub"] != first["ldap-import"]["sub"] || imported["email"] != "alice@example.test" ||
			imported["name"] != "Alice Liddell" || !slices.Equal(flGroups(imported), []string{"engineering", "staff"}) {
			t.Fatalf("sync import: claims = %v", imported)
		}
		flRow(t, s, "SELECT email, name FROM users WHERE id = ?", []any{imported["sub"]}, &email, &name)
		if email != "alice@example.test" || name != "Alice Liddell" {
			t.Fatalf("sync import stored %q %q", email, name)
		}
		// Losing the group that grants a role loses the role (force only).
		eng := ldap.NewModifyRequest("cn=engineering,"+dir.GroupBase, nil)
		eng.Replace("member", []string{dir.Users["bob"].DN})
		if err := admin.Modify(eng); err != nil {
			t.Fatal(err)
		}
		forced = flLDAPClaims(t, s, "ldap-force", "alice", alice.Password)
		if !slices.Equal(flGroups(forced), []string{"auditors"}) || len(flRoles(forced)) != 0 {
			t.Fatalf("sync force after leaving engineering: claims = %v", forced)
		}
		imported = flLDAPClaims(t, s, "ldap-import", "alice", alice.Password)
		if !slices.Equal(flGroups(imported), []string{"engineering", "staff"}) || !slices.Equal(flRoles(imported), []string{"developer"}) {
			t.Fatalf("sync import after leaving engineering: claims = %v", imported)
		}
	})

	t.Run("attack: linked identity's email changed to another user's", func(t *testing.T) {
		vera := flUserID(t, s, "vera")
		mr := ldap.NewModifyRequest(alice.DN, nil)
		mr.Replace("mail", []string{"vera@example.test"})
		if err := admin.Modify(mr); err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{"ldap-force", "ldap-import"} {
			claims := flLDAPClaims(t, s, c, "alice", alice.Password)
			if claims["sub"] != first[c]["sub"] || claims["sub"] == vera {
				t.Fatalf("%s: after the email change alice signs in as %v, before as %v (vera is %s)", c, claims["sub"], first[c]["sub"], vera)
			}
			var owner string
			flRow(t, s, "SELECT user_id FROM links WHERE connector = ? AND subject = ?", []any{c, alice.ID}, &owner)
			if owner != first[c]["sub"] {
				t.Fatalf("%s: alice's link now points to %s", c, owner)
			}
		}
		if n := flCount(t, s, "SELECT COUNT(*) FROM links WHERE user_id = ?", vera); n != 1 {
			t.Fatalf("vera has %d links", n)
		}
		if n := flCount(t, s, "SELECT COUNT(*) FROM users"); n != users {
			t.Fatalf("%d users, were %d", n, users)
		}
		var verified bool
		flRow(t, s, "SELECT email_verified FROM users WHERE id = ?", []any{first["ldap-force"]["sub"]}, &verified)
		if verified {
			t.Fatal("the synced email from an untrusted directory is verified")
		}
	})

	t.Run("re-authentication through a linked directory connector", func(t *testing.T) {
		// bob's first login through ldap-force makes f-bob; his first login
		// through ldap-match finds f-bob by username and asks him to prove
		// control of it: through ldap-force, with his directory password.
		bob := dir.Users["bob"]
		fbob := flLDAPClaims(t, s, "ldap-force", "bob", bob.Password)["sub"]
		br, _ := flNewBrowser(t)
		params := AuthParams("scope", "openid profile email")
		resp, page := br.ldapLogin(s, params, "ldap-match", "bob", bob.Password)
		r := flAfterPost(br, s, params, resp, page)
		r.flWantPage(t, http.StatusOK, "/first-login/link", "this username (<strong>f-bob</strong>)", "<strong>f-bob</strong>")
		if !strings.Contains(r.Body, `id="reauth-ldap-force"`) {
			t.Fatalf("no ldap-force form on the link page:\n%s", r.Body)
		}
		tok, csrf := flTokens(t, r.Body)
		resp, page = flPost(br, s, "/first-login/link", url.Values{"t": {tok}, "csrf": {csrf}, "connector": {"ldap-force"}, "password": {bob.Password}})
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Your accounts are linked") {
			t.Fatalf("bob's directory password on the link page answered %d (the form signs in as %q):\n%s",
				resp.StatusCode, flReauthLogin(r.Body, "ldap-force"), page)
		}
		ctok, ccsrf := flTokens(t, page)
		resp, page = flPost(br, s, "/first-login/continue", url.Values{"t": {ctok}, "csrf": {ccsrf}})
		if claims := flAfterPost(br, s, params, resp, page).flClaims(t, s); claims["sub"] != fbob {
			t.Fatalf("linked login got sub %v, want f-bob's %v", claims["sub"], fbob)
		}
	})
}

// flReauthLogin is the login name a link page's form for connector signs in as.
func flReauthLogin(page, connector string) string {
	m := regexp.MustCompile(`(?s)id="reauth-` + regexp.QuoteMeta(connector) + `".*?<label>Username <input value="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}
