package oidc_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/fedhub/fedhub/brokers"
	fedoidc "github.com/fedhub/fedhub/brokers/oidc"
	"github.com/fedhub/fedhub/login"

	"github.com/fedhub/fedhub/e2e/peers"
)

// The upstream is zitadel's certified OpenID Provider library running its
// complete example server in-process (in-memory users, login page). Its user
// "id1" is "test-user@<issuer host>" / "verysecure", email
// test-user@zitadel.ch (verified), name "Test User".
const (
	clientID     = "fedhub-client"
	clientSecret = "s3cr3t:/+ %&=é" // needs escaping in both basic and post
	callback     = "https://fedhub.example/broker/corp/callback"
	password     = "verysecure"
)

func TestMain(m *testing.M) {
	// the example OP logs every request through the default slog logger
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	os.Exit(m.Run())
}

// upstreamOpts are knobs of the example OP that its own code has no switch for.
type upstreamOpts struct {
	// claimsInIDToken puts the profile and email claims into the ID token
	// (zitadel's "user info inside ID token"); the example's WebClient only
	// returns them from userinfo.
	claimsInIDToken bool
	userinfoSub     string         // replaces the userinfo's sub
	userinfoExtra   map[string]any // extra userinfo claims

	// authTime replaces the auth_time the example puts in the ID token
	// (when the password was checked); the zero time leaves it out.
	authTime func(checked time.Time) time.Time
	amr      []string // replaces the example's amr ["pwd"]
	acr      string   // the example sends none
}

type upstream struct {
	issuer   string
	username string // the example's user id1

	mu         sync.Mutex
	tokenAuth  []string             // per token request: basic | post | none
	authReqs   []*zoidc.AuthRequest // the authorization requests the OP accepted
	discovered atomic.Int32
}

func (u *upstream) authRequests() []*zoidc.AuthRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.authReqs)
}

func (u *upstream) tokenAuths() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.tokenAuth)
}

// opStorage is the example's in-memory storage with upstreamOpts applied.
type opStorage struct {
	*storage.Storage
	opts upstreamOpts
	up   *upstream
}

func (s *opStorage) CreateAuthRequest(ctx context.Context, req *zoidc.AuthRequest, userID string) (op.AuthRequest, error) {
	s.up.mu.Lock()
	s.up.authReqs = append(s.up.authReqs, req)
	s.up.mu.Unlock()
	return s.Storage.CreateAuthRequest(ctx, req, userID)
}

// AuthRequestByCode is where the OP gets the login it issues tokens for.
func (s *opStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	r, err := s.Storage.AuthRequestByCode(ctx, code)
	if err != nil || (s.opts.authTime == nil && s.opts.amr == nil && s.opts.acr == "") {
		return r, err
	}
	return authContext{AuthRequest: r, opts: s.opts}, nil
}

// The example's storage recognises its own *AuthRequest by type.
func unwrap(r op.TokenRequest) op.TokenRequest {
	if a, ok := r.(authContext); ok {
		return a.AuthRequest
	}
	return r
}

func (s *opStorage) CreateAccessToken(ctx context.Context, r op.TokenRequest) (string, time.Time, error) {
	return s.Storage.CreateAccessToken(ctx, unwrap(r))
}

func (s *opStorage) CreateAccessAndRefreshTokens(ctx context.Context, r op.TokenRequest, current string) (string, string, time.Time, error) {
	return s.Storage.CreateAccessAndRefreshTokens(ctx, unwrap(r), current)
}

// authContext is a login whose auth_time, amr or acr the test chose.
type authContext struct {
	op.AuthRequest
	opts upstreamOpts
}

func (a authContext) GetAuthTime() time.Time {
	if a.opts.authTime == nil {
		return a.AuthRequest.GetAuthTime()
	}
	return a.opts.authTime(a.AuthRequest.GetAuthTime())
}

func (a authContext) GetAMR() []string {
	if a.opts.amr == nil {
		return a.AuthRequest.GetAMR()
	}
	return a.opts.amr
}

func (a authContext) GetACR() string {
	if a.opts.acr == "" {
		return a.AuthRequest.GetACR()
	}
	return a.opts.acr
}

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return opClient{Client: c, claimsInIDToken: s.opts.claimsInIDToken}, nil
}

func (s *opStorage) SetUserinfoFromToken(ctx context.Context, info *zoidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, info, tokenID, subject, origin); err != nil {
		return err
	}
	if s.opts.userinfoSub != "" {
		info.Subject = s.opts.userinfoSub
	}
	for k, v := range s.opts.userinfoExtra {
		info.AppendClaims(k, v)
	}
	return nil
}

type opClient struct {
	op.Client
	claimsInIDToken bool
}

func (c opClient) IDTokenUserinfoClaimsAssertion() bool { return c.claimsInIDToken }

// startUpstream serves the example OP on ln (a fresh loopback listener when nil).
func startUpstream(t *testing.T, ln net.Listener, opts upstreamOpts) *upstream {
	t.Helper()
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	issuer := "http://" + ln.Addr().String()
	u := &upstream{issuer: issuer, username: "test-user@" + strings.Split(ln.Addr().String(), ":")[0]}
	st := &opStorage{
		Storage: storage.NewStorageWithClients(storage.NewUserStore(issuer),
			map[string]*storage.Client{clientID: storage.WebClient(clientID, clientSecret, callback)}),
		opts: opts,
		up:   u,
	}
	router := exampleop.SetupServer(issuer, st, nil, false)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/.well-known/openid-configuration":
			u.discovered.Add(1)
		case r.Method == http.MethodPost && r.URL.Path == "/oauth/token":
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			form, _ := url.ParseQuery(string(body))
			how := "none"
			if _, _, ok := r.BasicAuth(); ok {
				how = "basic"
			} else if form.Get("client_secret") != "" {
				how = "post"
			}
			u.mu.Lock()
			u.tokenAuth = append(u.tokenAuth, how)
			u.mu.Unlock()
		}
		router.ServeHTTP(w, r)
	}))
	_ = srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return u
}

func newConnector(t *testing.T, cfg fedoidc.Config) *fedoidc.Connector {
	t.Helper()
	if cfg.ID == "" {
		cfg.ID = "corp"
	}
	if cfg.Name == "" {
		cfg.Name = "Corporate SSO"
	}
	if cfg.ClientID == "" {
		cfg.ClientID = clientID
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = clientSecret
	}
	c, err := fedoidc.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newBrowser follows redirects and keeps cookies, but stops at fedhub's callback.
func newBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), callback) {
				return http.ErrUseLastResponse
			}
			if len(via) >= 10 {
				return errors.New("too many redirects")
			}
			return nil
		}}
}

func randomState() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// begin runs Begin for a fresh flow and returns the flow and the upstream URL.
func begin(t *testing.T, c *fedoidc.Connector) (*brokers.Flow, string) {
	t.Helper()
	return beginFlow(t, c, &brokers.Flow{State: randomState(), Callback: callback, MaxAge: -1})
}

// beginFlow runs Begin for flow, which has a state and callback.
func beginFlow(t *testing.T, c *fedoidc.Connector, flow *brokers.Flow) (*brokers.Flow, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := c.Begin(t.Context(), rec, httptest.NewRequest(http.MethodGet, "https://fedhub.example/broker/corp/login", nil), flow); err != nil {
		t.Fatalf("Begin: %v", err)
	}
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("Begin: status %d, want 303", rec.Code)
	}
	return flow, rec.Header().Get("Location")
}

var (
	formAction = regexp.MustCompile(`<form method="POST" action="([^"]+)"`)
	formID     = regexp.MustCompile(`<input type="hidden" name="id" value="([^"]+)">`)
)

// login drives the example OP's login page as a browser and returns the URL
// the upstream sends the browser back to (fedhub's callback with code & state).
func upstreamLogin(t *testing.T, authURL, username, pass string) string {
	t.Helper()
	b := newBrowser()
	resp, err := b.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login page: %d %s", resp.StatusCode, page)
	}
	action, id := formAction.FindSubmatch(page), formID.FindSubmatch(page)
	if action == nil || id == nil {
		t.Fatalf("no login form in %s", page)
	}
	to, _ := resp.Request.URL.Parse(string(action[1]))
	resp, err = b.PostForm(to.String(), url.Values{"id": {string(id[1])}, "username": {username}, "password": {pass}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, callback+"?") {
		t.Fatalf("after login: %d %q %s", resp.StatusCode, loc, body)
	}
	return loc
}

func finish(t *testing.T, c *fedoidc.Connector, flow *brokers.Flow, callbackURL string) (login.Identity, error) {
	t.Helper()
	return c.Finish(t.Context(), httptest.NewRequest(http.MethodGet, callbackURL, nil), flow)
}

func cloneFlow(f *brokers.Flow) *brokers.Flow {
	return &brokers.Flow{State: f.State, Callback: f.Callback, Data: maps.Clone(f.Data)}
}

func TestLogin(t *testing.T) {
	up := startUpstream(t, nil, upstreamOpts{claimsInIDToken: true})
	c := newConnector(t, fedoidc.Config{Issuer: up.issuer})
	flow, authURL := begin(t, c)
	id, err := finish(t, c, flow, upstreamLogin(t, authURL, up.username, password))
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if id.Connector != "corp" || id.Subject != up.issuer+"|id1" {
		t.Errorf("connector/subject = %q %q, want corp %q", id.Connector, id.Subject, up.issuer+"|id1")
	}
	if id.Username != up.username || id.Email != "test-user@zitadel.ch" || !id.EmailVerified || id.Name != "Test User" {
		t.Errorf("identity = %+v", id)
	}
	if id.Raw["sub"] != "id1" || id.Raw["iss"] != up.issuer || id.Raw["given_name"] != "Test" {
		t.Errorf("raw claims = %v", id.Raw)
	}
	if got := up.tokenAuths(); !slices.Equal(got, []string{"basic"}) {
		t.Errorf("token endpoint auth = %v, want [basic]", got)
	}
}

func TestBeginRedirect(t *testing.T) {
	up := startUpstream(t, nil, upstreamOpts{})
	c := newConnector(t, fedoidc.Config{Issuer: up.issuer, Scopes: []string{"profile", "email", "phone"}})
	flow, authURL := begin(t, c)
	u, err := url.Parse(authURL)
	if err != nil || !strings.HasPrefix(authURL, up.issuer+"/auth?") {
		t.Fatalf("redirect to %q", authURL)
	}
	q := u.Query()
	sum := sha256.Sum256([]byte(flow.Data[fedoidc.DataVerifier]))
	want := map[string]string{
		"response_type":         "code",
		"client_id":             clientID,
		"redirect_uri":          callback,
		"state":                 flow.State,
		"nonce":                 flow.Data[fedoidc.DataNonce],
		"scope":                 "openid profile email phone",
		"code_challenge_method": "S256",
		"code_challenge":        base64.RawURLEncoding.EncodeToString(sum[:]),
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	if len(flow.Data[fedoidc.DataNonce]) < 43 || len(flow.Data[fedoidc.DataVerifier]) < 43 || flow.Data[fedoidc.DataRedirectURI] != callback {
		t.Errorf("flow data = %v", flow.Data)
	}
	if q.Has("client_secret") {
		t.Error("client secret in the browser redirect")
	}
	flow2, _ := begin(t, c)
	if flow2.Data[fedoidc.DataNonce] == flow.Data[fedoidc.DataNonce] || flow2.Data[fedoidc.DataVerifier] == flow.Data[fedoidc.DataVerifier] {
		t.Error("nonce or verifier reused across logins")
	}
	// no secret in what the browser gets
	if strings.Contains(authURL, url.QueryEscape(clientSecret)) {
		t.Error("secret leaked")
	}
}

func TestAuthMethods(t *testing.T) {
	for _, tc := range []struct{ method, want string }{
		{"", "basic"},
		{fedoidc.AuthMethodBasic, "basic"},
		{fedoidc.AuthMethodPost, "post"},
	} {
		t.Run("method="+tc.method, func(t *testing.T) {
			up := startUpstream(t, nil, upstreamOpts{claimsInIDToken: true})
			c := newConnector(t, fedoidc.Config{Issuer: up.issuer, AuthMethod: tc.method})
			flow, authURL := begin(t, c)
			id, err := finish(t, c, flow, upstreamLogin(t, authURL, up.username, password))
			if err != nil {
				t.Fatalf("Finish: %v", err)
			}
			if id.Subject != up.issuer+"|id1" {
				t.Errorf("subject %q", id.Subject)
			}
			if got := up.tokenAuths(); !slices.Equal(got, []string{tc.want}) {
				t.Errorf("token endpoint auth = %v, want [%s]", got, tc.want)
			}
		})
	}
}

func TestWrongSecretRefused(t *testing.T) {
	up := startUpstream(t, nil, upstreamOpts{claimsInIDToken: true})
	c := newConnector(t, fedoidc.Config{Issuer: up.issuer, ClientSecret: "wrong"})
	flow, authURL := begin(t, c)
	_, err := finish(t, c, flow, upstreamLogin(t, authURL, up.username, password))
	if !errors.Is(err, fedoidc.ErrCodeRefused) {
		t.Fatalf("Finish = %v, want ErrCodeRefused", err)
	}
	t.Logf("wrong secret refused: %v", err)
}

func TestWrongStateRefused(t *testing.T) {
	up := startUpstream(t, nil, upstreamOpts{claimsInIDToken: true})
	c := newConnector(t, fedoidc.Config{Issuer: up.issuer})

	// the answer to login A presented with flow B
	flowA, authA := begin(t, c)
	flowB, _ := begin(t, c)
	cbA := upstreamLogin(t, authA, up.username, password)
	if _, err := finish(t, c, flowB, cbA); !errors.Is(err, fedoidc.ErrState) {
		t.Fatalf("Finish(flow B, answer A) = %v, want ErrState", err)
	}
	// a tampered state, and none at all
	u, _ := url.Parse(cbA)
	q := u.Query()
	for _, state := range []string{"forged", ""} {
		q.Set("state", state)
		u.RawQuery = q.Encode()
		if _, err := finish(t, c, cloneFlow(flowA), u.String()); !errors.Is(err, fedoidc.ErrState) {
			t.Fatalf("Finish(state %q) = %v, want ErrState", state, err)
		}
	}
	// the untouched answer still works: a refused state spends nothing
	if _, err := finish(t, c, flowA, cbA); err != nil {
		t.Fatalf("Finish(flow A, answer A) = %v", err)
	}
}

func TestReplayRefused(t *testing.T) {
	up := startUpstream(t, nil, upstreamOpts{claimsInIDToken: true})
	c := newConnector(t, fedoidc.Config{Issuer: up.issuer})
	flow, authURL := begin(t, c)
	saved := cloneFlow(flow)
	cb := upstreamLogin(t, authURL, up.username, password)
	if _, err := finish(t, c, flow, cb); err != nil {
		t.Fatalf("first Finish: %v", err)
	}
	// the same flow object again: its nonce and verifier are spent
	if _, err := finish(t, c, flow, cb); err == nil {
		t.Fatal("second Finish with the same flow succeeded")
	}
	// a copy of the flow as it was: the upstream refuses the used code
	_, err := finish(t, c, saved, cb)
	if !errors.Is(err, fedoidc.ErrCodeRefused) {
		t.Fatalf("replayed code = %v, want ErrCodeRefused", err)
	}
	t.Logf("replay refused: %v", err)
}

func TestBadNonceRefused(t *testing.T) {
	up := startUpstream(t, nil, upstreamOpts{claimsInIDToken: true})
	c := newConnector(t, fedoidc.Config{Issuer: up.issuer})
	flow, authURL := begin(t, c)
	cb := upstreamLogin(t, authURL, up.username, password)
	flow.Data[fedoidc.DataNonce] = "tampered-nonce"
	if _, err := finish(t, c, flow, cb); !errors.Is(err, fedoidc.ErrNonce) {
		t.Fatalf("Finish = %v, want ErrNonce", err)
	}
}

func TestBadVerifierRefused(t *testing.T) {
	up := startUpstream(t, nil, upstreamOpts{claimsInIDToken: true})
	c := newConnector(t, fedoidc.Config{Issuer: up.issuer})
	flow, authURL := begin(t, c)
	cb := upstreamLogin(t, authURL, up.username, password)
	flow.Data[fedoidc.DataVerifier] = strings.Repeat("A", 43)
	if _, err := finish(t, c, flow, cb); !errors.Is(err, fedoidc.ErrCodeRefused) {
		t.Fatalf("Finish = %v, want ErrCodeRefused (PKCE)", err)
	}
}

func TestWrongPasswordStaysAtUpstream(t *testing.T) {
	up := startUpstream(t, nil, upstreamOpts{})
	c := newConnector(t, fedoidc.Config{Issuer: up.issuer})
	_, authURL := begin(t, c)
	b := newBrowser()
	resp, err := b.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id := formID.FindSubmatch(page)
	resp, err = b.PostForm(up.issuer+"/login/username", url.Values{"id": {string(id[1])}, "username": {up.username}, "password": {"nope"}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "username or password wrong") {
		t.Fatalf("wrong password: %d %s", resp.StatusCode, page)
	}
}

func TestUpstreamErrorIsUserError(t *testing.T) {
	up := startUpstream(t, nil, upstreamOpts{})
	c := newConnector(t, fedoidc.Config{Issuer: up.issuer})

	t.Run("access_denied", func(t *testing.T) {
		flow, _ := begin(t, c)
		cb := callback + "?" + url.Values{"error": {"access_denied"},
			"error_description": {"<script>alert('upstream says hi')</script>"}, "state": {flow.State}}.Encode()
		_, err := finish(t, c, flow, cb)
		var ue *login.UserError
		if !errors.As(err, &ue) {
			t.Fatalf("Finish = %v, want a UserError", err)
		}
		if !strings.Contains(ue.Message, "Corporate SSO") || strings.Contains(ue.Message, "script") || strings.Contains(ue.Message, "upstream says") {
			t.Errorf("message %q", ue.Message)
		}
	})
	t.Run("odd error code", func(t *testing.T) {
		flow, _ := begin(t, c)
		cb := callback + "?" + url.Values{"error": {"<b>evil</b>"}, "state": {flow.State}}.Encode()
		_, err := finish(t, c, flow, cb)
		var ue *login.UserError
		if !errors.As(err, &ue) || strings.Contains(ue.Message, "evil") {
			t.Fatalf("Finish = %v, want a UserError without the raw code", err)
		}
	})
	t.Run("error with a foreign state", func(t *testing.T) {
		flow, _ := begin(t, c)
		cb := callback + "?" + url.Values{"error": {"access_denied"}, "state": {"other"}}.Encode()
		if _, err := finish(t, c, flow, cb); !errors.Is(err, fedoidc.ErrState) {
			t.Fatalf("Finish = %v, want ErrState", err)
		}
	})
	t.Run("real upstream error (prompt=none)", func(t *testing.T) {
		flow, authURL := begin(t, c)
		u, _ := url.Parse(authURL)
		q := u.Query()
		q.Set("prompt", "none")
		u.RawQuery = q.Encode()
		resp, err := newBrowser().Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, callback+"?") {
			t.Fatalf("prompt=none: %d %q", resp.StatusCode, loc)
		}
		_, err = finish(t, c, flow, loc)
		var ue *login.UserError
		if !errors.As(err, &ue) || !strings.Contains(ue.Message, "sign in there again") {
			t.Fatalf("Finish(%s) = %v, want the login_required UserError", loc, err)
		}
	})
}

func TestUpstreamDownAtStart(t *testing.T) {
	// a port nobody listens on, for now
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	issuer := "http://" + addr

	c := newConnector(t, fedoidc.Config{Issuer: issuer}) // must not contact the upstream
	if err := c.Health(t.Context()); err == nil {
		t.Fatal("Health ok while the upstream is down")
	}
	rec := httptest.NewRecorder()
	err = c.Begin(t.Context(), rec, httptest.NewRequest(http.MethodGet, "/", nil), &brokers.Flow{State: randomState(), Callback: callback})
	var ue *login.UserError
	if !errors.As(err, &ue) || !strings.Contains(ue.Message, "Corporate SSO is not reachable right now") {
		t.Fatalf("Begin while down = %v, want the not-reachable UserError", err)
	}
	if rec.Code != http.StatusOK || rec.Header().Get("Location") != "" {
		t.Errorf("Begin answered the browser while failing: %d", rec.Code)
	}

	// the upstream comes back on the same address
	if ln, err = peers.Relisten(addr); err != nil { // a failure, never a skip: CI must see it
		t.Fatalf("cannot listen on %s again: %v", addr, err)
	}
	up := startUpstream(t, ln, upstreamOpts{claimsInIDToken: true})
	if err := c.Health(t.Context()); err != nil {
		t.Fatalf("Health after the upstream returned: %v", err)
	}
	flow, authURL := begin(t, c)
	id, err := finish(t, c, flow, upstreamLogin(t, authURL, up.username, password))
	if err != nil || id.Subject != issuer+"|id1" {
		t.Fatalf("login after the upstream returned: %v %+v", err, id)
	}
}

func TestDiscoveryIsLazyAndShared(t *testing.T) {
	up := startUpstream(t, nil, upstreamOpts{})
	c := newConnector(t, fedoidc.Config{Issuer: up.issuer})
	if n := up.discovered.Load(); n != 0 {
		t.Fatalf("New fetched discovery %d times", n)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			if err := c.Begin(context.Background(), rec, httptest.NewRequest(http.MethodGet, "/", nil),
				&brokers.Flow{State: randomState(), Callback: callback}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// later logins use the cached provider
	flow, authURL := begin(t, c)
	if _, err := finish(t, c, flow, upstreamLogin(t, authURL, up.username, password)); err != nil {
		t.Fatal(err)
	}
	if n := up.discovered.Load(); n != 1 {
		t.Fatalf("discovery fetched %d times for 21 logins, want 1", n)
	}
}

func TestUserinfo(t *testing.T) {
	// the example's WebClient keeps profile and email out of the ID token
	up := startUpstream(t, nil, upstreamOpts{userinfoExtra: map[string]any{
		"roles": "admin", "teams": []string{"red", "blue"}, "mail_ok": "true",
		"nonce": "from-userinfo", "iss": "https://evil.example"}})

	t.Run("ID token only", func(t *testing.T) {
		c := newConnector(t, fedoidc.Config{Issuer: up.issuer})
		flow, authURL := begin(t, c)
		id, err := finish(t, c, flow, upstreamLogin(t, authURL, up.username, password))
		if err != nil {
			t.Fatal(err)
		}
		if id.Subject != up.issuer+"|id1" || id.Username != "" || id.Email != "" || id.EmailVerified {
			t.Errorf("identity = %+v", id)
		}
		if _, ok := id.Raw["email"]; ok {
			t.Errorf("email in the ID token: %v", id.Raw)
		}
	})
	t.Run("merged", func(t *testing.T) {
		c := newConnector(t, fedoidc.Config{Issuer: up.issuer, UseUserinfo: true})
		flow, authURL := begin(t, c)
		nonce := flow.Data[fedoidc.DataNonce]
		id, err := finish(t, c, flow, upstreamLogin(t, authURL, up.username, password))
		if err != nil {
			t.Fatal(err)
		}
		if id.Subject != up.issuer+"|id1" || id.Username != up.username || id.Email != "test-user@zitadel.ch" ||
			!id.EmailVerified || id.Name != "Test User" {
			t.Errorf("identity = %+v", id)
		}
		// ID-token claims stay, userinfo claims join, protocol claims are the ID token's
		if id.Raw["nonce"] != nonce || id.Raw["iss"] != up.issuer || id.Raw["aud"] == nil ||
			id.Raw["locale"] != "de" || id.Raw["given_name"] != "Test" || id.Raw["roles"] != "admin" {
			t.Errorf("raw claims = %v", id.Raw)
		}
	})
	t.Run("claim mapping", func(t *testing.T) {
		c := newConnector(t, fedoidc.Config{Issuer: up.issuer, UseUserinfo: true, Claims: map[string]string{
			"username": "email", "name": "given_name", "groups": "teams", "email_verified": "mail_ok"}})
		flow, authURL := begin(t, c)
		id, err := finish(t, c, flow, upstreamLogin(t, authURL, up.username, password))
		if err != nil {
			t.Fatal(err)
		}
		if id.Username != "test-user@zitadel.ch" || id.Name != "Test" || !slices.Equal(id.Groups, []string{"red", "blue"}) || !id.EmailVerified {
			t.Errorf("identity = %+v", id)
		}
		c = newConnector(t, fedoidc.Config{Issuer: up.issuer, UseUserinfo: true, Claims: map[string]string{
			"groups": "roles", "email_verified": "locale"}})
		flow, authURL = begin(t, c)
		id, err = finish(t, c, flow, upstreamLogin(t, authURL, up.username, password))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(id.Groups, []string{"admin"}) || id.EmailVerified {
			t.Errorf("identity = %+v", id)
		}
	})
}

func TestUserinfoSubjectMismatchRefused(t *testing.T) {
	up := startUpstream(t, nil, upstreamOpts{userinfoSub: "id2"})
	c := newConnector(t, fedoidc.Config{Issuer: up.issuer, UseUserinfo: true})
	flow, authURL := begin(t, c)
	if _, err := finish(t, c, flow, upstreamLogin(t, authURL, up.username, password)); !errors.Is(err, fedoidc.ErrUserinfoSubject) {
		t.Fatalf("Finish = %v, want ErrUserinfoSubject", err)
	}
}

func TestIssuerMismatchRefused(t *testing.T) {
	up := startUpstream(t, nil, upstreamOpts{})
	// the discovery document names a different issuer than configured
	c := newConnector(t, fedoidc.Config{Issuer: up.issuer + "/"})
	if err := c.Health(t.Context()); err == nil {
		t.Fatal("Health ok with a mismatching issuer")
	}
	err := c.Begin(t.Context(), httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil),
		&brokers.Flow{State: randomState(), Callback: callback})
	var ue *login.UserError
	if !errors.As(err, &ue) {
		t.Fatalf("Begin = %v, want a UserError", err)
	}
}

func TestNewValidates(t *testing.T) {
	ok := fedoidc.Config{ID: "corp", Issuer: "https://idp.example", ClientID: "a", ClientSecret: "b"}
	if _, err := fedoidc.New(ok, nil); err != nil {
		t.Fatalf("New(valid) = %v", err)
	}
	for name, mod := range map[string]func(*fedoidc.Config){
		"no id":              func(c *fedoidc.Config) { c.ID = "" },
		"no issuer":          func(c *fedoidc.Config) { c.Issuer = "" },
		"relative":           func(c *fedoidc.Config) { c.Issuer = "idp.example" },
		"ftp":                func(c *fedoidc.Config) { c.Issuer = "ftp://idp.example" },
		"query":              func(c *fedoidc.Config) { c.Issuer = "https://idp.example?x=1" },
		"no client id":       func(c *fedoidc.Config) { c.ClientID = "" },
		"no secret":          func(c *fedoidc.Config) { c.ClientSecret = "" },
		"auth method":        func(c *fedoidc.Config) { c.AuthMethod = "private_key_jwt" },
		"claims key":         func(c *fedoidc.Config) { c.Claims = map[string]string{"subject": "oid"} },
		"empty claim":        func(c *fedoidc.Config) { c.Claims = map[string]string{"email": ""} },
		"scope with gap":     func(c *fedoidc.Config) { c.Scopes = []string{"openid email"} },
		"http, not loopback": func(c *fedoidc.Config) { c.Issuer = "http://idp.example" },
		"negative max age":   func(c *fedoidc.Config) { c.MaxAgeWithoutUpstream = -time.Hour },
	} {
		cfg := ok
		mod(&cfg)
		if _, err := fedoidc.New(cfg, nil); err == nil {
			t.Errorf("New(%s) accepted", name)
		}
	}
}
