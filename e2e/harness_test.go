package e2e

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fedhub/fedhub/e2e/peers"
)

var binary string // the fedhub binary under test, built once per run

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() { // every test here needs the binary or real peers: they skip (needsBinary)
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "fedhub-e2e-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "fedhub")
	// In-process peers (zitadel's OP) log every request through the default logger.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	build := exec.Command("go", "build", "-o", binary, "github.com/fedhub/fedhub/cmd/fedhub")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building fedhub:", err)
		os.Exit(1)
	}
	code := m.Run()
	peers.StopAll()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Test clients and users of the default configuration.
const (
	rpID        = "rp"
	rpSecret    = "rp-secret-0123456789abcdef"
	rp2ID       = "rp2"
	rp2Secret   = "rp2-secret-0123456789abcdef"
	publicID    = "public-app"
	passwordID  = "pw-app"
	pwSecret    = "pw-secret-0123456789abcdef"
	redirectURI = "http://127.0.0.1:5555/callback"
	logoutURI   = "http://127.0.0.1:5555/logged-out"
	alicePass   = "alice-Passw0rd!"
	bobPass     = "bob-Passw0rd!"
)

// defaultConfig is the configuration most tests run with. %[1]s is the
// issuer URL, %[2]s the listen address, %[3]s the database file.
const defaultConfig = `
issuer: %[1]s
listen: %[2]s
storage:
  driver: sqlite
  dsn: %[3]s
tokens:
  code_ttl: 60s
clients:
  - id: rp
    name: Test RP
    secret: ${RP_SECRET}
    redirect_uris: [http://127.0.0.1:5555/callback, http://127.0.0.1/loopback]
    post_logout_redirect_uris: [http://127.0.0.1:5555/logged-out]
    grant_types: [authorization_code, refresh_token, client_credentials]
  - id: rp2
    secret: ${RP2_SECRET}
    redirect_uris: [http://127.0.0.1:5555/callback]
    grant_types: [authorization_code, refresh_token]
  - id: public-app
    public: true
    redirect_uris: [http://127.0.0.1:5555/callback]
    grant_types: [authorization_code, refresh_token]
  - id: pw-app
    secret: ${PW_SECRET}
    grant_types: [password, refresh_token]
users:
  - username: alice
    email: alice@example.com
    email_verified: true
    name: Alice Example
    password: ${ALICE_PASSWORD}
    roles: [admin]
    groups: [staff]
  - username: bob
    email: bob@example.com
    name: Bob Example
    password: ${BOB_PASSWORD}
`

// Server is a running fedhub.
type Server struct {
	URL    string       // the issuer URL
	Mgmt   string       // the management listener's URL (/healthz, /readyz, /metrics)
	Config string       // path of its configuration file
	client *http.Client // what waits for it to start: http.DefaultClient, or WithHTTPS's
	env    []string
	cmd    *exec.Cmd
	out    *syncBuffer
}

// Option changes how a Server starts.
type Option func(*serverOptions)

type serverOptions struct {
	config string // a configuration template like defaultConfig
	env    []string
	addr   string
	https  *http.Client
}

// needsBinary skips t under -short, where the binary is not built: a test
// that runs it (Start does) is slow and belongs to the full run.
func needsBinary(t testing.TB) {
	t.Helper()
	peers.SkipShort(t)
}

// WithAddr runs the server on this address (from freeAddr), for tests that
// must know its URL before it starts.
func WithAddr(addr string) Option { return func(o *serverOptions) { o.addr = addr } }

// WithConfig runs the server with another configuration template (same %[n]s verbs).
func WithConfig(tmpl string) Option { return func(o *serverOptions) { o.config = tmpl } }

// WithHTTPS makes the issuer URL https (the configuration sets tls), reached
// with client, which trusts the server's certificate.
func WithHTTPS(client *http.Client) Option { return func(o *serverOptions) { o.https = client } }

// WithEnv adds environment variables (KEY=VALUE).
func WithEnv(kv ...string) Option { return func(o *serverOptions) { o.env = append(o.env, kv...) } }

// Start runs fedhub with the default (or given) configuration on a free
// loopback port and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	needsBinary(t)
	o := serverOptions{config: defaultConfig}
	for _, opt := range opts {
		opt(&o)
	}
	dir := t.TempDir()
	addr := o.addr
	if addr == "" {
		addr = freeAddr(t)
	}
	s := &Server{URL: "http://" + addr, Config: filepath.Join(dir, "fedhub.yaml"), client: http.DefaultClient}
	if o.https != nil {
		s.URL, s.client = "https://"+addr, o.https
	}
	cfg := fmt.Sprintf(o.config, s.URL, addr, filepath.Join(dir, "fedhub.db"))
	if err := os.WriteFile(s.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.env = append(os.Environ(), "RP_SECRET="+rpSecret, "RP2_SECRET="+rp2Secret, "PW_SECRET="+pwSecret,
		"ALICE_PASSWORD="+alicePass, "BOB_PASSWORD="+bobPass)
	s.env = append(s.env, o.env...)
	s.start(t)
	return s
}

// serving is fedhub's line once it listens, with the management listener's
// address (text or JSON log).
var serving = regexp.MustCompile(`fedhub is serving.*"?management"?[=:]"?([0-9.]+:[0-9]+)`)

func (s *Server) start(t testing.TB) {
	t.Helper()
	s.out = &syncBuffer{}
	// Port 0: the kernel picks the management port as fedhub binds it, so
	// that servers starting at once never race for one (fedhub logs it).
	s.cmd = exec.Command(binary, "serve", "-c", s.Config, "--management", "127.0.0.1:0")
	s.cmd.Env = s.env
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(t) })
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		// Its own line first: another server may answer on a port this one failed to bind.
		if m := serving.FindStringSubmatch(s.out.String()); m != nil {
			s.Mgmt = "http://" + m[1]
			resp, err := s.client.Get(s.URL + "/.well-known/openid-configuration")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
		}
		if s.cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("fedhub did not start:\n%s", s.out.String())
}

// Stop stops the server (it is safe to call twice).
func (s *Server) Stop(t testing.TB) {
	if s.cmd == nil || s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	if t.Failed() {
		t.Logf("fedhub output:\n%s", s.out.String())
	}
}

// Kill ends the server with SIGKILL, as a crash would, and waits for it to exit.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if s.cmd == nil || s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill fedhub: %v", err)
	}
	_ = s.cmd.Wait()
}

// Restart stops and starts the server on the same port and database.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.start(t)
}

// Output is what the server logged so far.
func (s *Server) Output() string { return s.out.String() }

// Logged reports whether the server logs text within a few seconds: a line
// written before an answer may reach the pipe from the process after it.
func (s *Server) Logged(text string) bool {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(s.Output(), text) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// CLI runs a fedhub command against the server's configuration.
func (s *Server) CLI(t testing.TB, stdin string, args ...string) (string, error) {
	t.Helper()
	args = append(args, "-c", s.Config)
	cmd := exec.Command(binary, args...)
	cmd.Env = s.env
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Browser is a person's browser: a cookie jar that does not follow redirects,
// so that tests see every hop.
type Browser struct {
	t      testing.TB
	Client *http.Client
}

// NewBrowser returns a browser with an empty cookie jar.
func NewBrowser(t testing.TB) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{t: t, Client: &http.Client{
		Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Get fetches a URL and returns the response with its body read.
func (b *Browser) Get(rawURL string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.Client.Get(rawURL)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp, readBody(b.t, resp)
}

// PostForm posts a form and returns the response with its body read.
func (b *Browser) PostForm(rawURL string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.Client.PostForm(rawURL, form)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp, readBody(b.t, resp)
}

var hiddenInput = regexp.MustCompile(`name="(req|csrf)" value="([^"]*)"`)

// LoginForm is the login page's local form.
type LoginForm struct {
	Action string // absolute URL
	Req    string
	CSRF   string
	Page   string // the HTML
}

// OpenLogin follows an authorization request to the login page and returns its form.
// It fails the test when the authorization endpoint does not redirect to /login.
func (b *Browser) OpenLogin(s *Server, authorizeURL string) LoginForm {
	b.t.Helper()
	resp, _ := b.Get(authorizeURL)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?") {
		b.t.Fatalf("authorize answered %d Location %q, want a redirect to /login", resp.StatusCode, loc)
	}
	return b.OpenLoginAt(s, loc)
}

// OpenLoginAt opens the login page at loc (a /login?req=… path) and returns its form.
func (b *Browser) OpenLoginAt(s *Server, loc string) LoginForm {
	b.t.Helper()
	resp, page := b.Get(s.URL + loc)
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("login page answered %d:\n%s", resp.StatusCode, page)
	}
	f := LoginForm{Action: s.URL + "/broker/local/login", Page: page}
	for _, m := range hiddenInput.FindAllStringSubmatch(page, -1) {
		if m[1] == "req" {
			f.Req = m[2]
		} else {
			f.CSRF = m[2]
		}
	}
	return f
}

// Submit posts the login form with a username and password and returns the response.
func (b *Browser) Submit(f LoginForm, username, password string) (*http.Response, string) {
	b.t.Helper()
	return b.PostForm(f.Action, url.Values{"req": {f.Req}, "csrf": {f.CSRF}, "username": {username}, "password": {password}})
}

// Authorize runs an authorization request to the end — through the login form
// if the browser has no SSO session — and returns the parameters the RP
// receives at its redirect URI (code, state, iss or error…).
func (b *Browser) Authorize(s *Server, params url.Values, username, password string) url.Values {
	b.t.Helper()
	authorizeURL := s.URL + "/authorize?" + params.Encode()
	resp, _ := b.Get(authorizeURL)
	loc := resp.Header.Get("Location")
	if strings.HasPrefix(loc, "/login?") {
		f := b.OpenLogin(s, authorizeURL)
		resp, _ = b.Submit(f, username, password)
		loc = resp.Header.Get("Location")
	}
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		b.t.Fatalf("expected a redirect to the RP, got %d", resp.StatusCode)
	}
	u, err := url.Parse(loc)
	if err != nil {
		b.t.Fatal(err)
	}
	return u.Query()
}

// AuthParams are the parameters of a plain code-flow request by the rp client.
func AuthParams(extra ...string) url.Values {
	v := url.Values{"client_id": {rpID}, "response_type": {"code"}, "scope": {"openid"},
		"redirect_uri": {redirectURI}, "state": {"state-" + randomSuffix()}, "nonce": {"nonce-" + randomSuffix()}}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	return v
}

func readBody(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var suffixMu sync.Mutex
var suffixN int

func randomSuffix() string {
	suffixMu.Lock()
	defer suffixMu.Unlock()
	suffixN++
	return fmt.Sprintf("%d-%d", time.Now().UnixNano(), suffixN)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
