package e2e

import (
	"database/sql"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/fedhub/fedhub/audit"
)

// The admin API (/api/admin/v1) against the real binary: who is let in, that
// a refused call changes nothing, and every operation's effect.

const (
	aaPrefix          = "/api/admin/v1"
	aaAdminScope      = "fedhub:admin"
	aaPassword        = "aa-user-Passw0rd!"
	aaAutomationID    = "automation"
	aaAutomationKey   = "automation-secret-0123456789abcdef"
	aaAdminAppID      = "admin-app"
	aaAdminAppKey     = "admin-app-secret-0123456789abcdef"
	aaSvcID           = "svc"
	aaSvcKey          = "svc-secret-0123456789abcdef"
	aaZitadelConnID   = "zitadel"
	aaNoSuchUser      = "00000000-0000-4000-8000-000000000000"
	aaHyperlinkPrefix = `=HYPERLINK("http://evil.example/`
)

// aaOperations are the API's operations, spelt as in its OpenAPI document; the
// test checks that the served document lists exactly these, so that a new
// operation cannot escape the checks below.
var aaOperations = []struct{ method, path string }{
	{"get", "/users"},
	{"get", "/users/{id}"},
	{"post", "/users/{id}/disable"},
	{"post", "/users/{id}/enable"},
	{"post", "/users/{id}/revoke-sessions"},
	{"post", "/users/{id}/links"},
	{"delete", "/users/{id}/links/{link}"},
	{"post", "/users/{id}/links/{link}/move"},
	{"post", "/users/{id}/merge"},
	{"get", "/users/{id}/factors"},
	{"post", "/users/{id}/factors/reset"},
	{"put", "/users/{id}/mfa"},
	{"post", "/users/{id}/groups"},
	{"delete", "/users/{id}/groups/{group}"},
	{"get", "/groups-and-roles"},
	{"put", "/groups/{group}"},
	{"delete", "/groups/{group}"},
	{"put", "/roles/{role}"},
	{"delete", "/roles/{role}"},
	{"get", "/connectors"},
	{"post", "/connectors/{id}/sync"},
	{"get", "/clients"},
	{"post", "/clients/{id}/rotate-secret"},
	{"get", "/audit"},
}

var (
	aaAutomation = ocClient{id: aaAutomationID, secret: aaAutomationKey}
	aaAdminApp   = ocClient{id: aaAdminAppID, secret: aaAdminAppKey}
)

// aaClients are added to the default configuration's clients: one with the
// admin scope for client credentials, one for users' admin tokens by the code
// flow, and one without the scope whose secret gets rotated.
const aaClients = `  - id: automation
    secret: ${AA_AUTOMATION_SECRET}
    grant_types: [client_credentials]
    scopes: [fedhub:admin]
  - id: admin-app
    secret: ${AA_ADMIN_APP_SECRET}
    redirect_uris: [http://127.0.0.1:5555/callback]
    grant_types: [authorization_code]
    scopes: [fedhub:admin]
  - id: svc
    name: Service account
    secret: ${AA_SVC_SECRET}
    grant_types: [client_credentials]
`

// aaConfig is defaultConfig with aaClients, more users and connectors, and
// extra lines in the tokens section.
func aaConfig(tokens, users, connectors string) string {
	cfg := strings.Replace(defaultConfig, "clients:\n", "clients:\n"+aaClients, 1)
	cfg = strings.Replace(cfg, "tokens:\n", "tokens:\n"+tokens, 1)
	cfg += users
	if connectors != "" {
		cfg += "connectors:\n" + connectors
	}
	return cfg
}

func aaEnv() Option {
	return WithEnv("AA_AUTOMATION_SECRET="+aaAutomationKey, "AA_ADMIN_APP_SECRET="+aaAdminAppKey,
		"AA_SVC_SECRET="+aaSvcKey, "AA_PASSWORD="+aaPassword, "ZITADEL_SECRET="+upstreamSecret)
}

// aaUsers are the users of one run of the happy path, by suffix: ann, ben and
// dan have a password, cat has none (no way to log in until linked); dan has
// a role and a group to hand over in a merge.
func aaUsers(sfx string) string {
	return fmt.Sprintf(`  - username: aa%[1]s-ann
    email: anna.%[1]s@example.org
    name: Ann %[1]s
    password: ${AA_PASSWORD}
  - username: aa%[1]s-ben
    email: ben.%[1]s@example.org
    password: ${AA_PASSWORD}
  - username: aa%[1]s-cat
    email: cat.%[1]s@example.org
  - username: aa%[1]s-dan
    email: dan.%[1]s@example.org
    password: ${AA_PASSWORD}
    roles: [auditor]
    groups: [ops]
`, sfx)
}

// aaCarol is an administrator whose role is taken away while her token lives.
const aaCarol = `  - username: aa-carol
    email: carol@aa.example.org
    password: ${AA_PASSWORD}
    roles: [admin]
`

// aaAnswer is an API answer with its body read.
type aaAnswer struct {
	Status int
	Header http.Header
	Raw    string
}

// aaCall calls an operation of the API; path is below /api/admin/v1, body
// (JSON) is sent when not empty, token as a bearer unless it is empty.
func aaCall(t testing.TB, s *Server, method, path, token, body string) aaAnswer {
	t.Helper()
	return aaCallAuth(t, s, method, path, aaBearer(token), body)
}

func aaBearer(token string) string {
	if token == "" {
		return ""
	}
	return "Bearer " + token
}

// aaCallAuth is aaCall with the Authorization header as given.
func aaCallAuth(t testing.TB, s *Server, method, path, authorization, body string) aaAnswer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), strings.ToUpper(method), s.URL+aaPrefix+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := biNoRedirects.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return aaAnswer{Status: resp.StatusCode, Header: resp.Header, Raw: readBody(t, resp)}
}

// aaWant fails the test unless the answer has the status; a JSON answer is
// decoded into out (when not nil).
func aaWant(t testing.TB, a aaAnswer, status int, out any, what string) {
	t.Helper()
	if a.Status != status {
		t.Fatalf("%s: answered %d, want %d: %s", what, a.Status, status, a.Raw)
	}
	if out == nil {
		return
	}
	if ct := a.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: Content-Type = %q, want JSON", what, ct)
	}
	if err := json.Unmarshal([]byte(a.Raw), out); err != nil {
		t.Fatalf("%s: the answer is not the expected JSON: %v\n%s", what, err, a.Raw)
	}
}

// aaWantError expects a JSON error answer with this status (and error code, if given).
func aaWantError(t testing.TB, a aaAnswer, status int, code, what string) {
	t.Helper()
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	aaWant(t, a, status, &e, what)
	if e.Error == "" || (code != "" && e.Error != code) {
		t.Fatalf("%s: error = %q, want %q: %s", what, e.Error, code, a.Raw)
	}
}

type aaUser struct {
	ID       string   `json:"id"`
	Username string   `json:"username"`
	Email    string   `json:"email"`
	Disabled bool     `json:"disabled"`
	Roles    []string `json:"roles"`
	Groups   []string `json:"groups"`
}

type aaLink struct {
	ID        uint    `json:"id"`
	Connector string  `json:"connector"`
	Subject   string  `json:"subject"`
	Username  string  `json:"username"`
	Email     string  `json:"email"`
	LastLogin *string `json:"last_login"`
}

type aaDetail struct {
	User     aaUser   `json:"user"`
	Links    []aaLink `json:"links"`
	Sessions []struct {
		ID        string `json:"id"`
		Connector string `json:"connector"`
	} `json:"sessions"`
	Events []audit.Event `json:"recent_events"`
}

// link returns the user's link through a connector with a subject ("" for any subject).
func (d aaDetail) link(connector, subject string) (aaLink, bool) {
	for _, l := range d.Links {
		if l.Connector == connector && (subject == "" || l.Subject == subject) {
			return l, true
		}
	}
	return aaLink{}, false
}

type aaSearch struct {
	Users []aaUser `json:"users"`
	More  *bool    `json:"more"`
}

func (r aaSearch) names() []string {
	var out []string
	for _, u := range r.Users {
		out = append(out, u.Username)
	}
	return out
}

type aaEvents struct {
	Events []audit.Event `json:"events"`
	More   *bool         `json:"more"`
}

// aaConnector is a row of /connectors. Its members are matched without regard
// to case, so that it reads both Go's field names and snake_case.
type aaConnector struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Enabled  bool   `json:"enabled"`
	Healthy  bool   `json:"healthy"`
	Logins   int64  `json:"logins_24h"`
	Failures int64  `json:"failures_24h"`
}

type aaClient struct {
	ID              string   `json:"id"`
	Public          bool     `json:"public"`
	GrantTypes      []string `json:"grant_types"`
	Scopes          []string `json:"scopes"`
	SecretRotatedAt *string  `json:"secret_rotated_at"`
}

func aaDetailOf(t testing.TB, s *Server, token, userID string) aaDetail {
	t.Helper()
	var d aaDetail
	aaWant(t, aaCall(t, s, "GET", "/users/"+userID, token, ""), http.StatusOK, &d, "user "+userID)
	return d
}

func aaSearchUsers(t testing.TB, s *Server, token string, q url.Values) aaSearch {
	t.Helper()
	var r aaSearch
	aaWant(t, aaCall(t, s, "GET", "/users?"+q.Encode(), token, ""), http.StatusOK, &r, "search "+q.Encode())
	if r.More == nil {
		t.Fatalf("search %s: no \"more\" member", q.Encode())
	}
	return r
}

func aaAudit(t testing.TB, s *Server, token string, q url.Values) aaEvents {
	t.Helper()
	var r aaEvents
	aaWant(t, aaCall(t, s, "GET", "/audit?"+q.Encode(), token, ""), http.StatusOK, &r, "audit "+q.Encode())
	if r.More == nil {
		t.Fatalf("audit %s: no \"more\" member", q.Encode())
	}
	return r
}

// aaWantEvent expects an audit event of a type about a user (or a client), by actor.
func aaWantEvent(t testing.TB, s *Server, token, typ, userID, clientID, actor string) audit.Event {
	t.Helper()
	q := url.Values{"type": {typ}, "limit": {"200"}}
	if userID != "" {
		q.Set("user", userID)
	}
	for _, e := range aaAudit(t, s, token, q).Events {
		if e.Type == typ && e.UserID == userID && e.ClientID == clientID && e.Actor == actor && e.Outcome == "success" {
			return e
		}
	}
	t.Fatalf("no audit event %s for user %q client %q by %q", typ, userID, clientID, actor)
	return audit.Event{}
}

// aaUserID finds a user by username through the API.
func aaUserID(t testing.TB, s *Server, token, username string) string {
	t.Helper()
	for _, u := range aaSearchUsers(t, s, token, url.Values{"q": {username}}).Users {
		if u.Username == username {
			return u.ID
		}
	}
	t.Fatalf("no user %s", username)
	return ""
}

// aaClientCredentials gets a client-credentials token asking for scope.
func aaClientCredentials(t testing.TB, s *Server, c ocClient, scope string) ocTokens {
	t.Helper()
	return ocWantTokens(t, ocPost(t, s, "/token", &c, url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}))
}

// aaUserToken runs the code flow (with PKCE) for a user through client c and
// returns the tokens.
func aaUserToken(t testing.TB, s *Server, c ocClient, username, password, scope string) ocTokens {
	t.Helper()
	verifier, challenge := ocPKCE()
	params := AuthParams("client_id", c.id, "scope", scope, "code_challenge", challenge, "code_challenge_method", "S256")
	got := ocAuthorizeAs(t, s, NewBrowser(t), params, username, password)
	return ocWantTokens(t, ocRedeem(t, s, c, ocWantCode(t, s, got, params), redirectURI, verifier))
}

// aaLogin signs a user in to client rp in a browser of their own and returns
// the browser (with its SSO session) and the tokens (with a refresh token).
func aaLogin(t testing.TB, s *Server, username string) (*Browser, ocTokens) {
	t.Helper()
	b := NewBrowser(t)
	params := AuthParams()
	got := ocAuthorizeAs(t, s, b, params, username, aaPassword)
	ts := ocWantTokens(t, ocRedeem(t, s, ocRP, ocWantCode(t, s, got, params), redirectURI, ""))
	if ts.Refresh == "" {
		t.Fatalf("%s got no refresh token", username)
	}
	return b, ts
}

// aaSilent runs prompt=none in the browser and returns the error ("" for a code).
func aaSilent(t testing.TB, s *Server, b *Browser) string {
	t.Helper()
	params := AuthParams("prompt", "none")
	got := ocSilent(t, s, b, params)
	if got.Get("error") == "" {
		ocWantCode(t, s, got, params)
	}
	return got.Get("error")
}

// aaPasswordGrant tries the password grant (client pw-app) for a user.
func aaPasswordGrant(t testing.TB, s *Server, username, password string) ocAnswer {
	t.Helper()
	return ocPost(t, s, "/token", &ocPW, url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}})
}

// aaScopes is a space-separated scope as a list.
func aaScopes(scope string) []string { return strings.Fields(scope) }

// aaJWTScope is the scope claim of an access token (unverified).
func aaJWTScope(t testing.TB, token string) []string {
	t.Helper()
	s, _ := ocJWTPayload(t, token)["scope"].(string)
	return aaScopes(s)
}

// aaForge returns a token with the claims changed and the original signature.
func aaForge(t testing.TB, token string, change map[string]any) string {
	t.Helper()
	claims := ocJWTPayload(t, token)
	for k, v := range change {
		claims[k] = v
	}
	payload, _ := json.Marshal(claims)
	parts := strings.Split(token, ".")
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
}

// aaTarget is what the refused calls name: a real user, link and client, so
// that a call let through by mistake would change something.
type aaTarget struct {
	userID, otherID, clientID string
	linkID                    uint
}

// aaRequest is an operation's URL path and body for the target.
func aaRequest(method, path string, tg aaTarget) (string, string) {
	id := tg.userID
	if strings.HasPrefix(path, "/clients/") {
		id = tg.clientID
	}
	p := strings.ReplaceAll(path, "{id}", url.PathEscape(id))
	p = strings.ReplaceAll(p, "{link}", strconv.FormatUint(uint64(tg.linkID), 10))
	p = strings.NewReplacer("{group}", "aa-refused-group", "{role}", "aa-refused-role").Replace(p)
	body := ""
	switch {
	case method == "post" && strings.HasSuffix(path, "/links"):
		body = `{"connector":"` + aaZitadelConnID + `","subject":"aa-refused-subject"}`
	case strings.HasSuffix(path, "/move"):
		body = `{"to_user_id":"` + tg.otherID + `","force":true}`
	case strings.HasSuffix(path, "/merge"):
		body = `{"from_user_id":"` + tg.otherID + `"}`
	case strings.HasSuffix(path, "/mfa"):
		body = `{"policy":"required"}`
	case strings.HasSuffix(path, "/groups"):
		body = `{"group":"aa-refused-group"}`
	case method == "put":
		body = `{}`
	case method == "delete":
		p += "?force=true"
	}
	return p, body
}

// aaRefused is a way of calling the API that must be refused.
type aaRefused struct {
	name          string
	authorization string // the Authorization header
	status        int
	code          string // the JSON error code
}

// aaExpectRefused calls every operation each refused way and checks the
// status, WWW-Authenticate on a 401, and that the database is unchanged.
func aaExpectRefused(t *testing.T, s *Server, tg aaTarget, ways []aaRefused) {
	t.Helper()
	dbPath := biServerDB(s)
	for _, op := range aaOperations {
		t.Run(op.method+" "+op.path, func(t *testing.T) {
			path, body := aaRequest(op.method, op.path, tg)
			for _, w := range ways {
				before := biSnapshotDB(t, dbPath)
				a := aaCallAuth(t, s, op.method, path, w.authorization, body)
				if op.method != "get" {
					before.expectChanged(t, biSnapshotDB(t, dbPath)) // nothing
				}
				if a.Status != w.status {
					t.Errorf("%s: answered %d, want %d: %s", w.name, a.Status, w.status, a.Raw)
					continue
				}
				var e struct {
					Error string `json:"error"`
				}
				if err := json.Unmarshal([]byte(a.Raw), &e); err != nil || (w.code != "" && e.Error != w.code) {
					t.Errorf("%s: body %s, want a JSON error %q", w.name, a.Raw, w.code)
				}
				if w.status == http.StatusUnauthorized && !strings.HasPrefix(a.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s: WWW-Authenticate = %q, want a Bearer challenge", w.name, a.Header.Get("WWW-Authenticate"))
				}
				if w.code == "invalid_token" && !strings.Contains(a.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
					t.Errorf("%s: WWW-Authenticate = %q, want error=\"invalid_token\"", w.name, a.Header.Get("WWW-Authenticate"))
				}
				ocWantNoStore(t, a.Header)
			}
		})
	}
}

// aaSQL runs a statement on the server's SQLite database (for what no API or
// command does: taking a role away).
func aaSQL(t testing.TB, s *Server, stmt string, args ...any) int64 {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+biServerDB(s)+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.ExecContext(t.Context(), stmt, args...)
	if err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
	n, _ := res.RowsAffected()
	return n
}

// aaActor is who runs the happy path: a client or an administrator.
type aaActor struct {
	sfx        string // the suffix of this run's users
	token      string
	auditActor string // how audit events name the actor
	selfID     string // the actor's own user ID ("" for a client)
	zitadelSub string // the upstream user this run links and logs in as, as fedhub stores it: issuer|sub
	zitadelUsr string
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	zitadel := startZitadel(t, "fedhub", "http://"+addr+"/broker/zitadel/callback")
	s := Start(t, WithAddr(addr), aaEnv(), WithConfig(aaConfig("", aaCarol+aaUsers("c")+aaUsers("u"), `
  - id: zitadel
    type: oidc
    name: Partner SSO
    label: Login with Partner SSO
    oidc:
      issuer: `+zitadel+`
      client_id: fedhub
      client_secret: ${ZITADEL_SECRET}
      use_userinfo: true
`)))

	// The tokens.
	automation := aaClientCredentials(t, s, aaAutomation, aaAdminScope)
	if !slices.Contains(aaScopes(automation.Scope), aaAdminScope) || !slices.Contains(aaJWTScope(t, automation.Access), aaAdminScope) {
		t.Fatalf("automation asked for %s and got scope %q (token %v)", aaAdminScope, automation.Scope, aaJWTScope(t, automation.Access))
	}
	aliceTok := aaUserToken(t, s, aaAdminApp, "alice", alicePass, "openid "+aaAdminScope)
	bobTok := aaUserToken(t, s, aaAdminApp, "bob", bobPass, "openid "+aaAdminScope)
	rpTok := aaClientCredentials(t, s, ocRP, aaAdminScope)
	aliceID, bobID := aaUserID(t, s, automation.Access, "alice"), aaUserID(t, s, automation.Access, "bob")

	t.Run("tokens", func(t *testing.T) {
		if !slices.Contains(aaScopes(aliceTok.Scope), aaAdminScope) || !slices.Contains(aaJWTScope(t, aliceTok.Access), aaAdminScope) {
			t.Errorf("alice (role admin) asked for %s through %s and got %q", aaAdminScope, aaAdminAppID, aliceTok.Scope)
		}
		for name, tok := range map[string]ocTokens{"bob through " + aaAdminAppID: bobTok, "client rp": rpTok,
			"client svc":       aaClientCredentials(t, s, ocClient{id: aaSvcID, secret: aaSvcKey}, aaAdminScope),
			"alice through rp": aaUserToken(t, s, ocRP, "alice", alicePass, "openid "+aaAdminScope)} {
			if slices.Contains(aaScopes(tok.Scope), aaAdminScope) || slices.Contains(aaJWTScope(t, tok.Access), aaAdminScope) {
				t.Errorf("%s was granted %s (scope %q)", name, aaAdminScope, tok.Scope)
			}
		}
		if !slices.Contains(aaScopes(bobTok.Scope), "openid") {
			t.Errorf("bob's scope %q lost openid", bobTok.Scope)
		}
	})

	t.Run("openapi.json", func(t *testing.T) {
		resp, err := http.Get(s.URL + aaPrefix + "/openapi.json") // public: no token
		if err != nil {
			t.Fatal(err)
		}
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("openapi.json answered %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		var doc struct {
			OpenAPI string                               `json:"openapi"`
			Paths   map[string]map[string]map[string]any `json:"paths"`
			Servers []struct {
				URL string `json:"url"`
			} `json:"servers"`
		}
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatalf("openapi.json is not valid JSON of the expected shape: %v\n%s", err, body)
		}
		if doc.OpenAPI != "3.1.0" {
			t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
		}
		if len(doc.Servers) != 1 || doc.Servers[0].URL != s.URL+aaPrefix {
			t.Errorf("servers = %+v, want %s", doc.Servers, s.URL+aaPrefix)
		}
		n := 0
		for _, op := range aaOperations {
			if _, ok := doc.Paths[op.path][op.method]; !ok {
				t.Errorf("the document lacks %s %s", op.method, op.path)
			}
		}
		for path, methods := range doc.Paths {
			for method := range methods {
				n++
				if !slices.Contains(aaOperations, struct{ method, path string }{method, path}) {
					t.Errorf("the document has %s %s, which this test does not check: add it to aaOperations", method, path)
				}
			}
		}
		if n != len(aaOperations) {
			t.Errorf("the document has %d operations, want %d", n, len(aaOperations))
		}
	})

	t.Run("the auth scheme is case-insensitive", func(t *testing.T) {
		// RFC 7235 §2.1: the scheme is a case-insensitive token; RFC 6750 clients may send "bearer".
		for _, scheme := range []string{"bearer ", "BEARER "} {
			aaWant(t, aaCallAuth(t, s, "GET", "/connectors", scheme+automation.Access, ""), http.StatusOK, nil, "scheme "+scheme)
		}
	})

	// carol is an administrator with an admin token, until her role is taken
	// away: the role is checked on every request, not when the token was issued.
	carolTok := aaUserToken(t, s, aaAdminApp, "aa-carol", aaPassword, "openid "+aaAdminScope)
	if !slices.Contains(aaScopes(carolTok.Scope), aaAdminScope) {
		t.Fatalf("carol (role admin) got scope %q", carolTok.Scope)
	}
	aaWant(t, aaCall(t, s, "GET", "/users", carolTok.Access, ""), http.StatusOK, nil, "carol while an administrator")
	carolID := aaUserID(t, s, automation.Access, "aa-carol")
	if n := aaSQL(t, s, "DELETE FROM user_roles WHERE user_id = ? AND role = 'admin'", carolID); n != 1 {
		t.Fatalf("took %d admin roles from carol, want 1", n)
	}

	t.Run("refused", func(t *testing.T) {
		bob := aaDetailOf(t, s, automation.Access, bobID)
		local, ok := bob.link("local", "")
		if !ok {
			t.Fatalf("bob has no local link: %+v", bob.Links)
		}
		forged := aaForge(t, bobTok.Access, map[string]any{"sub": aliceID, "scope": "openid " + aaAdminScope})
		unsigned := ocUnsignedJWT("at+jwt", ocJWTPayload(t, aliceTok.Access))
		aaExpectRefused(t, s, aaTarget{userID: bobID, otherID: aliceID, clientID: aaSvcID, linkID: local.ID}, []aaRefused{
			{"no token", "", http.StatusUnauthorized, ""},
			{"empty bearer", "Bearer ", http.StatusUnauthorized, ""},
			{"client secret as Basic", "Basic " + base64.StdEncoding.EncodeToString([]byte(aaAutomationID+":"+aaAutomationKey)), http.StatusUnauthorized, ""},
			{"garbage token", "Bearer not-a-token", http.StatusUnauthorized, "invalid_token"},
			{"forged token (bob's, claims changed)", aaBearer(forged), http.StatusUnauthorized, "invalid_token"},
			{"unsigned token", aaBearer(unsigned), http.StatusUnauthorized, "invalid_token"},
			{"ID token instead of an access token", aaBearer(aliceTok.ID), http.StatusUnauthorized, "invalid_token"},
			{"client token without the scope (rp)", aaBearer(rpTok.Access), http.StatusForbidden, "insufficient_scope"},
			{"bob's token (no admin role)", aaBearer(bobTok.Access), http.StatusForbidden, ""},
			{"carol's admin token after her role was taken", aaBearer(carolTok.Access), http.StatusForbidden, "forbidden"},
		})
	})

	actors := []struct {
		name string
		a    aaActor
	}{
		{"client credentials", aaActor{sfx: "c", token: automation.Access, auditActor: "client:" + aaAutomationID,
			zitadelSub: zitadel + "|id1", zitadelUsr: "test-user@127.0.0.1"}},
		{"administrator", aaActor{sfx: "u", token: aliceTok.Access, auditActor: aliceID, selfID: aliceID,
			zitadelSub: zitadel + "|id2", zitadelUsr: "test-user2"}},
	}
	svcSecret := aaSvcKey
	for _, run := range actors {
		t.Run(run.name, func(t *testing.T) {
			aaHappyPath(t, s, run.a, &svcSecret)
		})
	}

	t.Run("rotated secret survives a restart", func(t *testing.T) {
		s.Restart(t)
		aaClientCredentials(t, s, ocClient{id: aaSvcID, secret: svcSecret}, "")
		ocWantOAuthError(t, ocPost(t, s, "/token", &ocClient{id: aaSvcID, secret: aaSvcKey},
			url.Values{"grant_type": {"client_credentials"}}), http.StatusUnauthorized, "invalid_client")
	})
}

// aaHappyPath runs every operation as one actor, on this run's users.
func aaHappyPath(t *testing.T, s *Server, a aaActor, svcSecret *string) {
	tok := a.token
	name := func(n string) string { return "aa" + a.sfx + "-" + n }
	ann, ben, cat, dan := aaUserID(t, s, tok, name("ann")), aaUserID(t, s, tok, name("ben")), aaUserID(t, s, tok, name("cat")), aaUserID(t, s, tok, name("dan"))
	start := time.Now().UTC().Add(-time.Second).Truncate(time.Second)
	post := func(path, body string) aaAnswer { return aaCall(t, s, "POST", path, tok, body) }
	linkBody := func(connector, subject string) string {
		b, _ := json.Marshal(map[string]string{"connector": connector, "subject": subject, "username": subject + "-name", "email": subject + "@upstream.example"})
		return string(b)
	}

	t.Run("user detail", func(t *testing.T) {
		aaLogin(t, s, name("ann"))
		d := aaDetailOf(t, s, tok, ann)
		if d.User.ID != ann || d.User.Username != name("ann") || d.User.Email != "anna."+a.sfx+"@example.org" || d.User.Disabled {
			t.Errorf("user = %+v", d.User)
		}
		if _, ok := d.link("local", ""); !ok || len(d.Links) != 1 {
			t.Errorf("links = %+v, want the local password", d.Links)
		}
		if len(d.Sessions) == 0 || d.Sessions[0].Connector != "local" || d.Sessions[0].ID == "" {
			t.Errorf("sessions = %+v, want ann's live session through local", d.Sessions)
		}
		if !slices.ContainsFunc(d.Events, func(e audit.Event) bool { return e.Type == audit.LoginSucceeded && e.UserID == ann }) {
			t.Errorf("recent_events = %+v, want ann's login", d.Events)
		}
		aaWantError(t, aaCall(t, s, "GET", "/users/"+aaNoSuchUser, tok, ""), http.StatusNotFound, "not_found", "unknown user")
	})

	t.Run("search", func(t *testing.T) {
		all := []string{name("ann"), name("ben"), name("cat"), name("dan")}
		if r := aaSearchUsers(t, s, tok, url.Values{"q": {"aa" + a.sfx + "-"}}); !slices.Equal(r.names(), all) || *r.More {
			t.Errorf("username prefix: %v more %v, want %v", r.names(), *r.More, all)
		}
		if r := aaSearchUsers(t, s, tok, url.Values{"q": {"AA" + strings.ToUpper(a.sfx) + "-"}, "limit": {"3"}}); !slices.Equal(r.names(), all[:3]) || !*r.More {
			t.Errorf("page 1 (limit 3, upper case): %v more %v, want %v and more", r.names(), *r.More, all[:3])
		}
		if r := aaSearchUsers(t, s, tok, url.Values{"q": {"aa" + a.sfx + "-"}, "limit": {"3"}, "offset": {"3"}}); !slices.Equal(r.names(), all[3:]) || *r.More {
			t.Errorf("page 2: %v more %v, want %v and no more", r.names(), *r.More, all[3:])
		}
		if r := aaSearchUsers(t, s, tok, url.Values{"q": {"anna." + a.sfx + "@"}}); !slices.Equal(r.names(), all[:1]) {
			t.Errorf("email prefix: %v, want %v", r.names(), all[:1])
		}
		if r := aaSearchUsers(t, s, tok, url.Values{"connector": {"local"}, "q": {"aa" + a.sfx + "-"}}); !slices.Equal(r.names(), []string{name("ann"), name("ben"), name("dan")}) {
			t.Errorf("connector local: %v, want the users with a password", r.names())
		}
		if r := aaSearchUsers(t, s, tok, url.Values{"q": {"no-such-user-anywhere"}}); len(r.Users) != 0 || r.Users == nil {
			t.Errorf("no match: %s", aaJSON(r))
		}
	})

	t.Run("disable and enable", func(t *testing.T) {
		b, ts := aaLogin(t, s, name("ann"))
		if e := aaSilent(t, s, b); e != "" {
			t.Fatalf("ann's live session answered prompt=none with %s", e)
		}
		var d aaDetail
		aaWant(t, post("/users/"+ann+"/disable", ""), http.StatusOK, &d, "disable")
		if d.User.ID != ann || !d.User.Disabled || len(d.Sessions) != 0 {
			t.Errorf("after disable: user %+v sessions %+v", d.User, d.Sessions)
		}
		ocWantOAuthError(t, ocRefresh(t, s, ocRP, ts.Refresh), http.StatusBadRequest, "invalid_grant")
		ocWantUserinfoRefused(t, s, ts.Access)
		if e := aaSilent(t, s, b); e != "login_required" {
			t.Errorf("prompt=none after disable = %q, want login_required", e)
		}
		ocWantOAuthError(t, aaPasswordGrant(t, s, name("ann"), aaPassword), http.StatusBadRequest, "invalid_grant")
		nb := NewBrowser(t)
		resp, page := nb.Submit(nb.OpenLogin(s, s.URL+"/authorize?"+AuthParams().Encode()), name("ann"), aaPassword)
		if strings.Contains(resp.Header.Get("Location"), "code=") {
			t.Errorf("a disabled user logged in: %d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
		}
		aaWantEvent(t, s, tok, audit.UserDisabled, ann, "", a.auditActor)

		aaWant(t, post("/users/"+ann+"/enable", ""), http.StatusOK, &d, "enable")
		if d.User.Disabled {
			t.Errorf("after enable: user %+v", d.User)
		}
		ocWantTokens(t, aaPasswordGrant(t, s, name("ann"), aaPassword))
		aaWantEvent(t, s, tok, audit.UserEnabled, ann, "", a.auditActor)

		aaWantError(t, post("/users/"+aaNoSuchUser+"/disable", ""), http.StatusNotFound, "not_found", "disable an unknown user")
		aaWantError(t, post("/users/"+aaNoSuchUser+"/enable", ""), http.StatusNotFound, "not_found", "enable an unknown user")
		if a.selfID != "" {
			aaWantError(t, post("/users/"+a.selfID+"/disable", ""), http.StatusUnprocessableEntity, "refused", "disable oneself")
			if aaDetailOf(t, s, tok, a.selfID).User.Disabled {
				t.Error("the administrator disabled their own account")
			}
		}
	})

	t.Run("revoke sessions", func(t *testing.T) {
		b, ts := aaLogin(t, s, name("ben"))
		if len(aaDetailOf(t, s, tok, ben).Sessions) == 0 {
			t.Fatal("ben's session is not listed")
		}
		var d aaDetail
		aaWant(t, post("/users/"+ben+"/revoke-sessions", ""), http.StatusOK, &d, "revoke-sessions")
		if d.User.ID != ben || d.User.Disabled || len(d.Sessions) != 0 {
			t.Errorf("after revoke: user %+v sessions %+v", d.User, d.Sessions)
		}
		if e := aaSilent(t, s, b); e != "login_required" {
			t.Errorf("prompt=none after revoke = %q, want login_required", e)
		}
		ocWantOAuthError(t, ocRefresh(t, s, ocRP, ts.Refresh), http.StatusBadRequest, "invalid_grant")
		ocWantUserinfoRefused(t, s, ts.Access)
		ocWantTokens(t, aaPasswordGrant(t, s, name("ben"), aaPassword)) // not disabled: ben may log in again
		aaWantEvent(t, s, tok, audit.SessionsRevoked, ben, "", a.auditActor)
		aaWantError(t, post("/users/"+aaNoSuchUser+"/revoke-sessions", ""), http.StatusNotFound, "not_found", "revoke an unknown user")
	})

	t.Run("link", func(t *testing.T) {
		sub := name("zsub-ann")
		var d aaDetail
		aaWant(t, post("/users/"+ann+"/links", linkBody(aaZitadelConnID, sub)), http.StatusOK, &d, "link")
		if l, ok := d.link(aaZitadelConnID, sub); !ok || l.Username != sub+"-name" || l.Email != sub+"@upstream.example" {
			t.Errorf("after link: links %+v", d.Links)
		}
		if l, _ := d.link(aaZitadelConnID, sub); l.LastLogin != nil {
			t.Errorf("a link an administrator just made has last_login %s: no one has logged in through it", *l.LastLogin)
		}
		aaWantEvent(t, s, tok, audit.Linked, ann, "", a.auditActor)

		aaWantError(t, post("/users/"+cat+"/links", linkBody(aaZitadelConnID, sub)), http.StatusUnprocessableEntity, "refused", "link an identity linked to another user")
		aaWantError(t, post("/users/"+ann+"/links", linkBody(aaZitadelConnID, sub)), http.StatusUnprocessableEntity, "refused", "link an identity twice")
		// One identity per connector per user: the connector does not allow several.
		aaWantError(t, post("/users/"+ann+"/links", linkBody(aaZitadelConnID, name("zsub-ann-2"))), http.StatusUnprocessableEntity, "refused", "link a second identity of the connector")
		if d := aaDetailOf(t, s, tok, ann); len(d.Links) != 2 {
			t.Errorf("a refused second identity left ann with %+v", d.Links)
		}
		aaWantError(t, post("/users/"+cat+"/links", linkBody("local", name("x"))), http.StatusUnprocessableEntity, "refused", "link to the local connector")
		aaWantError(t, post("/users/"+cat+"/links", linkBody("nope", name("x"))), http.StatusUnprocessableEntity, "refused", "link to an unknown connector")
		aaWantError(t, post("/users/"+cat+"/links", linkBody(aaZitadelConnID, "")), http.StatusUnprocessableEntity, "refused", "link without a subject")
		aaWantError(t, post("/users/"+cat+"/links", "connector=zitadel"), http.StatusBadRequest, "invalid_request", "link with a body that is not JSON")
		aaWantError(t, post("/users/"+aaNoSuchUser+"/links", linkBody(aaZitadelConnID, name("y"))), http.StatusNotFound, "not_found", "link to an unknown user")
		if d := aaDetailOf(t, s, tok, cat); len(d.Links) != 0 {
			t.Errorf("refused links left cat with %+v", d.Links)
		}

		// cat has no way to log in until an administrator links the upstream account.
		aaWant(t, post("/users/"+cat+"/links", linkBody(aaZitadelConnID, a.zitadelSub)), http.StatusOK, &d, "link cat")
		b := NewBrowser(t)
		params := AuthParams("scope", "openid profile email")
		got := b.finishAt(s, b.upstreamLogin(s, params, aaZitadelConnID, b.zitadelSignInAs(a.zitadelUsr)))
		_, idt := ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, got, params), params)
		if idt.Subject != cat || idt.str("idp") != aaZitadelConnID {
			t.Errorf("the login through %s as %s is sub %s idp %s, want cat %s", aaZitadelConnID, a.zitadelSub, idt.Subject, idt.str("idp"), cat)
		}

		if r := aaSearchUsers(t, s, tok, url.Values{"q": {sub}}); !slices.Equal(r.names(), []string{name("ann")}) {
			t.Errorf("search by upstream subject %s: %v", sub, r.names())
		}
		if r := aaSearchUsers(t, s, tok, url.Values{"connector": {aaZitadelConnID}, "q": {"aa" + a.sfx + "-"}}); !slices.Equal(r.names(), []string{name("ann"), name("cat")}) {
			t.Errorf("search by connector: %v, want ann and cat", r.names())
		}
	})

	t.Run("move", func(t *testing.T) {
		catLink, ok := aaDetailOf(t, s, tok, cat).link(aaZitadelConnID, a.zitadelSub)
		if !ok {
			t.Fatal("cat has no link to move")
		}
		path := fmt.Sprintf("/users/%s/links/%d/move", cat, catLink.ID)
		aaWantError(t, post(path, `{"to_user_id":"`+ben+`"}`), http.StatusUnprocessableEntity, "refused", "move the last way to log in")
		if _, ok := aaDetailOf(t, s, tok, cat).link(aaZitadelConnID, a.zitadelSub); !ok {
			t.Fatal("a refused move moved the link")
		}
		aaWantError(t, post(path, `{"to_user_id":"`+aaNoSuchUser+`","force":true}`), http.StatusUnprocessableEntity, "refused", "move to an unknown user")
		aaWantError(t, post(fmt.Sprintf("/users/%s/links/%d/move", ann, catLink.ID), `{"to_user_id":"`+ben+`","force":true}`),
			http.StatusNotFound, "not_found", "move a link through a user who does not have it")
		aaWantError(t, post(path, `to_user_id=`+ben), http.StatusBadRequest, "invalid_request", "move with a body that is not JSON")

		// ann has an identity of the connector: no second one, override or not.
		aaWantError(t, post(path, `{"to_user_id":"`+ann+`","force":true}`), http.StatusUnprocessableEntity, "refused", "move to a user with an identity of the connector")

		var d aaDetail
		aaWant(t, post(path, `{"to_user_id":"`+ben+`","force":true}`), http.StatusOK, &d, "move with force")
		if _, ok := d.link(aaZitadelConnID, a.zitadelSub); d.User.ID != ben || !ok {
			t.Errorf("the answer to a move is %s with %+v, want ben with the link", d.User.Username, d.Links)
		}
		if d := aaDetailOf(t, s, tok, cat); len(d.Links) != 0 {
			t.Errorf("cat still has %+v", d.Links)
		}
		aaWantEvent(t, s, tok, audit.LinkMoved, cat, "", a.auditActor)

		// Back to cat: ben has two links, so no override is needed.
		aaWant(t, post(fmt.Sprintf("/users/%s/links/%d/move", ben, catLink.ID), `{"to_user_id":"`+cat+`"}`), http.StatusOK, &d, "move back")
		if _, ok := d.link(aaZitadelConnID, a.zitadelSub); d.User.ID != cat || !ok {
			t.Errorf("after moving back: %s with %+v", d.User.Username, d.Links)
		}

		// A local password belongs to its account: moving it is refused as a bad request, not a server failure.
		local, _ := aaDetailOf(t, s, tok, ben).link("local", "")
		before := biSnapshotDB(t, biServerDB(s))
		aaWantError(t, post(fmt.Sprintf("/users/%s/links/%d/move", ben, local.ID), `{"to_user_id":"`+ann+`","force":true}`),
			http.StatusUnprocessableEntity, "refused", "move a local password")
		before.expectChanged(t, biSnapshotDB(t, biServerDB(s)))
	})

	t.Run("unlink", func(t *testing.T) {
		annLink, ok := aaDetailOf(t, s, tok, ann).link(aaZitadelConnID, name("zsub-ann"))
		if !ok {
			t.Fatal("ann has no upstream link")
		}
		aaWantError(t, aaCall(t, s, "DELETE", fmt.Sprintf("/users/%s/links/%d", ben, annLink.ID), tok, ""), http.StatusNotFound, "not_found", "unlink another user's link")
		aaWantError(t, aaCall(t, s, "DELETE", fmt.Sprintf("/users/%s/links/abc", ann), tok, ""), http.StatusNotFound, "not_found", "unlink link abc")
		aaWantError(t, aaCall(t, s, "DELETE", fmt.Sprintf("/users/%s/links/%d", aaNoSuchUser, annLink.ID), tok, ""), http.StatusNotFound, "not_found", "unlink of an unknown user")
		var d aaDetail
		aaWant(t, aaCall(t, s, "DELETE", fmt.Sprintf("/users/%s/links/%d", ann, annLink.ID), tok, ""), http.StatusOK, &d, "unlink (not the last)")
		if _, ok := d.link(aaZitadelConnID, ""); ok || len(d.Links) != 1 {
			t.Errorf("after unlink: %+v", d.Links)
		}
		aaWantEvent(t, s, tok, audit.Unlinked, ann, "", a.auditActor)

		catLink, ok := aaDetailOf(t, s, tok, cat).link(aaZitadelConnID, a.zitadelSub)
		if !ok {
			t.Fatal("cat has no link")
		}
		path := fmt.Sprintf("/users/%s/links/%d", cat, catLink.ID)
		aaWantError(t, aaCall(t, s, "DELETE", path, tok, ""), http.StatusUnprocessableEntity, "refused", "unlink the last way to log in")
		aaWantError(t, aaCall(t, s, "DELETE", path+"?force=yes", tok, ""), http.StatusUnprocessableEntity, "refused", "unlink with force=yes")
		if _, ok := aaDetailOf(t, s, tok, cat).link(aaZitadelConnID, a.zitadelSub); !ok {
			t.Fatal("a refused unlink removed the link")
		}
		aaWant(t, aaCall(t, s, "DELETE", path+"?force=true", tok, ""), http.StatusOK, &d, "unlink with force=true")
		if len(d.Links) != 0 {
			t.Errorf("after a forced unlink cat has %+v", d.Links)
		}
	})

	t.Run("merge", func(t *testing.T) {
		_, ts := aaLogin(t, s, name("dan"))
		sub := name("zsub-dan")
		aaWant(t, post("/users/"+dan+"/links", linkBody(aaZitadelConnID, sub)), http.StatusOK, nil, "link dan")

		aaWantError(t, post("/users/"+ann+"/merge", `{"from_user_id":"`+ann+`"}`), http.StatusUnprocessableEntity, "refused", "merge a user into itself")
		aaWantError(t, post("/users/"+ann+"/merge", `{"from_user_id":"`+aaNoSuchUser+`"}`), http.StatusUnprocessableEntity, "refused", "merge an unknown user")
		aaWantError(t, post("/users/"+aaNoSuchUser+"/merge", `{"from_user_id":"`+dan+`"}`), http.StatusNotFound, "not_found", "merge into an unknown user")
		aaWantError(t, post("/users/"+ann+"/merge", `{}`), http.StatusBadRequest, "invalid_request", "merge without from_user_id")
		aaDetailOf(t, s, tok, dan) // still there

		// Both with an identity of the connector: refused, and dan keeps his sessions.
		aaWant(t, post("/users/"+cat+"/links", linkBody(aaZitadelConnID, name("zsub-cat"))), http.StatusOK, nil, "link cat")
		aaWantError(t, post("/users/"+cat+"/merge", `{"from_user_id":"`+dan+`"}`), http.StatusUnprocessableEntity, "refused", "merge two identities of one connector")
		if d := aaDetailOf(t, s, tok, dan); len(d.Sessions) == 0 || len(d.Links) != 2 {
			t.Errorf("a refused merge left dan with sessions %+v and links %+v", d.Sessions, d.Links)
		}
		catLink, _ := aaDetailOf(t, s, tok, cat).link(aaZitadelConnID, name("zsub-cat"))
		aaWant(t, aaCall(t, s, "DELETE", fmt.Sprintf("/users/%s/links/%d?force=true", cat, catLink.ID), tok, ""), http.StatusOK, nil, "unlink cat")

		var d aaDetail
		aaWant(t, post("/users/"+ann+"/merge", `{"from_user_id":"`+dan+`"}`), http.StatusOK, &d, "merge")
		if d.User.ID != ann || !slices.Contains(d.User.Roles, "auditor") || !slices.Contains(d.User.Groups, "ops") {
			t.Errorf("after merge ann is %+v, want dan's role and group", d.User)
		}
		if _, ok := d.link(aaZitadelConnID, sub); !ok || len(d.Links) != 2 {
			t.Errorf("after merge ann's links are %+v, want her password and dan's upstream link", d.Links)
		}
		aaWantError(t, aaCall(t, s, "GET", "/users/"+dan, tok, ""), http.StatusNotFound, "not_found", "the merged user")
		if r := aaSearchUsers(t, s, tok, url.Values{"q": {name("dan")}}); len(r.Users) != 0 {
			t.Errorf("the merged user is still found: %v", r.names())
		}
		ocWantOAuthError(t, ocRefresh(t, s, ocRP, ts.Refresh), http.StatusBadRequest, "invalid_grant")
		ocWantOAuthError(t, aaPasswordGrant(t, s, name("dan"), aaPassword), http.StatusBadRequest, "invalid_grant")
		aaWantEvent(t, s, tok, audit.UsersMerged, ann, "", a.auditActor)
	})

	t.Run("connectors", func(t *testing.T) {
		var r struct {
			Connectors []aaConnector `json:"connectors"`
		}
		aaWant(t, aaCall(t, s, "GET", "/connectors", tok, ""), http.StatusOK, &r, "connectors")
		var ids []string
		for _, c := range r.Connectors {
			ids = append(ids, c.ID)
			if !c.Enabled || !c.Healthy || c.Name == "" || c.Kind == "" {
				t.Errorf("connector %+v: want enabled, healthy, a name and a kind", c)
			}
			if c.ID == aaZitadelConnID && (c.Kind != "redirect" || c.Logins < 1) {
				t.Errorf("connector %+v: want kind redirect and the login through it counted", c)
			}
			if c.ID == "local" && c.Kind != "password" {
				t.Errorf("connector %+v: want kind password", c)
			}
		}
		if !slices.Equal(ids, []string{"local", aaZitadelConnID}) {
			t.Errorf("connectors %v, want local and %s\n%s", ids, aaZitadelConnID, aaJSON(r))
		}
	})

	t.Run("clients and rotate-secret", func(t *testing.T) {
		old := *svcSecret
		var r struct {
			Clients []aaClient `json:"clients"`
		}
		a1 := aaCall(t, s, "GET", "/clients", tok, "")
		aaWant(t, a1, http.StatusOK, &r, "clients")
		byID := map[string]aaClient{}
		for _, c := range r.Clients {
			byID[c.ID] = c
		}
		for _, id := range []string{rpID, rp2ID, publicID, passwordID, aaAutomationID, aaAdminAppID, aaSvcID, "fedhub-admin"} {
			if _, ok := byID[id]; !ok {
				t.Errorf("client %s is not listed", id)
			}
		}
		if c := byID[aaAutomationID]; !slices.Equal(c.Scopes, []string{aaAdminScope}) || c.Public || !slices.Equal(c.GrantTypes, []string{"client_credentials"}) {
			t.Errorf("automation = %+v", c)
		}
		if !byID[publicID].Public {
			t.Errorf("public-app = %+v, want public", byID[publicID])
		}

		rot := post("/clients/"+aaSvcID+"/rotate-secret", "")
		var got struct {
			ClientID string `json:"client_id"`
			Secret   string `json:"client_secret"`
		}
		aaWant(t, rot, http.StatusOK, &got, "rotate-secret")
		ocWantNoStore(t, rot.Header)
		if got.ClientID != aaSvcID || len(got.Secret) < 32 || got.Secret == old {
			t.Fatalf("rotate-secret answered %s", rot.Raw)
		}
		*svcSecret = got.Secret
		aaClientCredentials(t, s, ocClient{id: aaSvcID, secret: got.Secret}, "")
		ocWantOAuthError(t, ocPost(t, s, "/token", &ocClient{id: aaSvcID, secret: old}, url.Values{"grant_type": {"client_credentials"}}),
			http.StatusUnauthorized, "invalid_client")
		aaWantEvent(t, s, tok, audit.SecretRotated, "", aaSvcID, a.auditActor)

		for _, id := range []string{publicID, "fedhub-admin", "no-such-client"} {
			aaWantError(t, post("/clients/"+id+"/rotate-secret", ""), http.StatusUnprocessableEntity, "refused", "rotate the secret of "+id)
		}

		a2 := aaCall(t, s, "GET", "/clients", tok, "")
		aaWant(t, a2, http.StatusOK, &r, "clients after rotation")
		for _, c := range r.Clients {
			if c.ID == aaSvcID && c.SecretRotatedAt == nil {
				t.Errorf("svc = %+v, want secret_rotated_at", c)
			}
		}
		for _, body := range []string{a1.Raw, a2.Raw} {
			for _, secret := range []string{rpSecret, rp2Secret, pwSecret, aaAutomationKey, aaAdminAppKey, aaSvcKey, old, got.Secret, "sha256:"} {
				if strings.Contains(body, secret) {
					t.Errorf("the clients list contains %q:\n%s", secret, body)
				}
			}
			if strings.Contains(strings.ToLower(body), "secret_hash") || strings.Contains(strings.ToLower(body), "secrethash") {
				t.Errorf("the clients list has a secret hash field:\n%s", body)
			}
		}
	})

	t.Run("audit", func(t *testing.T) {
		for _, e := range aaAudit(t, s, tok, url.Values{"user": {ann}, "limit": {"500"}}).Events {
			if e.UserID != ann {
				t.Errorf("filter user=%s gave %+v", ann, e)
			}
		}
		byType := aaAudit(t, s, tok, url.Values{"type": {audit.LinkMoved}}).Events
		if len(byType) == 0 {
			t.Error("filter type=link.moved gave nothing")
		}
		for _, e := range byType {
			if e.Type != audit.LinkMoved {
				t.Errorf("filter type=link.moved gave %+v", e)
			}
		}
		byConn := aaAudit(t, s, tok, url.Values{"connector": {aaZitadelConnID}, "limit": {"500"}}).Events
		for _, e := range byConn {
			if e.Connector != aaZitadelConnID {
				t.Errorf("filter connector=%s gave %+v", aaZitadelConnID, e)
			}
		}
		if !slices.ContainsFunc(byConn, func(e audit.Event) bool { return e.Type == audit.LoginSucceeded && e.UserID == cat }) {
			t.Errorf("filter connector=%s lacks cat's login: %+v", aaZitadelConnID, byConn)
		}

		disabled := url.Values{"user": {ann}, "type": {audit.UserDisabled}}
		with := func(k, v string) url.Values {
			q := ocClone(disabled)
			q.Set(k, v)
			return q
		}
		if n := len(aaAudit(t, s, tok, with("since", start.Format(time.RFC3339))).Events); n != 1 {
			t.Errorf("since the run started: %d user.disabled events of ann, want 1", n)
		}
		if n := len(aaAudit(t, s, tok, with("until", start.Format(time.RFC3339))).Events); n != 0 {
			t.Errorf("until the run started: %d user.disabled events of ann, want 0", n)
		}
		if n := len(aaAudit(t, s, tok, with("since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))).Events); n != 0 {
			t.Errorf("since an hour ahead: %d events, want 0", n)
		}
		if n := len(aaAudit(t, s, tok, with("until", time.Now().UTC().Add(time.Hour).Format("2006-01-02T15:04"))).Events); n != 1 {
			t.Errorf("until an hour ahead (an HTML datetime-local value, read as UTC): %d events, want 1", n)
		}
		aaWantError(t, aaCall(t, s, "GET", "/audit?since=yesterday", tok, ""), http.StatusUnprocessableEntity, "refused", "since=yesterday")

		page := aaAudit(t, s, tok, url.Values{"limit": {"1"}})
		if len(page.Events) != 1 || !*page.More {
			t.Errorf("limit=1: %d events, more %v", len(page.Events), *page.More)
		}
		next := aaAudit(t, s, tok, url.Values{"limit": {"1"}, "offset": {"1"}})
		if len(next.Events) != 1 || next.Events[0].ID >= page.Events[0].ID {
			t.Errorf("offset=1 gave %+v after %+v, want an older event", next.Events, page.Events)
		}

		// CSV: a header row, and nothing a spreadsheet would run as a formula.
		evil := aaHyperlinkPrefix + a.sfx + `")`
		ocWantOAuthError(t, aaPasswordGrant(t, s, evil, "wrong"), http.StatusBadRequest, "invalid_grant")
		c := aaCall(t, s, "GET", "/audit?"+url.Values{"format": {"csv"}, "type": {audit.LoginFailed}}.Encode(), tok, "")
		if c.Status != http.StatusOK || !strings.HasPrefix(c.Header.Get("Content-Type"), "text/csv") {
			t.Fatalf("format=csv answered %d %q: %s", c.Status, c.Header.Get("Content-Type"), c.Raw)
		}
		rows, err := csv.NewReader(strings.NewReader(c.Raw)).ReadAll()
		if err != nil {
			t.Fatalf("format=csv is not CSV: %v\n%s", err, c.Raw)
		}
		if len(rows) < 2 || !slices.Equal(rows[0], []string{"id", "time", "type", "outcome", "actor", "user_id", "connector", "client_id", "ip", "detail"}) {
			t.Fatalf("CSV rows %q, want a header row and events", rows)
		}
		found := false
		for _, row := range rows[1:] {
			if row[2] != audit.LoginFailed {
				t.Errorf("CSV of type=%s has a row %q", audit.LoginFailed, row)
			}
			for _, f := range row {
				if f != "" && strings.ContainsAny(f[:1], "=+-@\t\r") {
					t.Errorf("CSV field %q could run as a formula (row %q)", f, row)
				}
			}
			found = found || row[4] == "'"+evil
		}
		if !found {
			t.Errorf("the failed login as %q is not in the CSV (neutralised with a leading apostrophe):\n%s", evil, c.Raw)
		}
	})
}

// TestAdminAPIExpiredToken: an expired admin token opens nothing.
func TestAdminAPIExpiredToken(t *testing.T) {
	t.Parallel()
	s := Start(t, aaEnv(), WithConfig(aaConfig("  access_ttl: 2s\n", "", "")))
	dbPath := biServerDB(s)
	var tg aaTarget
	tg.clientID = aaSvcID
	biQueryDB(t, dbPath, "SELECT id FROM users WHERE username = ?", []any{"bob"}, &tg.userID)
	biQueryDB(t, dbPath, "SELECT id FROM users WHERE username = ?", []any{"alice"}, &tg.otherID)
	biQueryDB(t, dbPath, "SELECT id FROM links WHERE user_id = ?", []any{tg.userID}, &tg.linkID)

	// Each token is used at once: it lives two seconds (exp is whole seconds, so maybe less).
	alice := aaUserToken(t, s, aaAdminApp, "alice", alicePass, "openid "+aaAdminScope)
	aaWant(t, aaCall(t, s, "GET", "/users", alice.Access, ""), http.StatusOK, nil, "alice's fresh token")
	automation := aaClientCredentials(t, s, aaAutomation, aaAdminScope)
	aaWant(t, aaCall(t, s, "GET", "/users", automation.Access, ""), http.StatusOK, nil, "the fresh automation token")
	if automation.ExpiresIn > 2 || alice.ExpiresIn > 2 {
		t.Fatalf("expires_in = %v and %v, want at most 2", automation.ExpiresIn, alice.ExpiresIn)
	}
	time.Sleep(3 * time.Second)
	aaExpectRefused(t, s, tg, []aaRefused{
		{"expired client token", aaBearer(automation.Access), http.StatusUnauthorized, "invalid_token"},
		{"expired user token", aaBearer(alice.Access), http.StatusUnauthorized, "invalid_token"},
	})
}

func aaJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
