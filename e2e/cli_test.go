package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// TestCLI drives the fedhub command: configuration checks, user and key
// management, secret hashing, demo mode, and brute-force protection as an
// operator configures it.
func TestCLI(t *testing.T) {
	t.Run("check-config", testCheckConfig)
	t.Run("users", testCLIUsers)
	t.Run("keys rotate", testCLIKeysRotate)
	t.Run("migrate", testCLIMigrate)
	t.Run("hash-secret", testCLIHashSecret)
	t.Run("serve --demo", testCLIDemo)
	t.Run("brute force", testCLIBruteForce)
}

// cliCheckBase is a valid configuration that the check-config cases break one
// line at a time. %s is the database file.
const cliCheckBase = `issuer: http://127.0.0.1:9999
listen: 127.0.0.1:9999
storage:
  driver: sqlite
  dsn: %s
signing:
  algorithm: ES256
tokens:
  access_ttl: 5m
clients:
  - id: app
    secret: ${CLI_APP_SECRET}
    redirect_uris: [http://127.0.0.1:5555/callback]
    grant_types: [authorization_code]
  - id: other
    public: true
    redirect_uris: [http://127.0.0.1:5555/callback]
    grant_types: [authorization_code]
`

func testCheckConfig(t *testing.T) {
	base := fmt.Sprintf(cliCheckBase, filepath.Join(t.TempDir(), "check.db"))
	env := []string{"CLI_APP_SECRET=app-secret-0123456789abcdef"}
	cases := []struct {
		name     string
		old, new string // the line to replace and its replacement
		key      string // the key path the error must name
		says     string // and what it must say
	}{
		{"unknown key", "  access_ttl: 5m", "  acess_ttl: 5m", "tokens.acess_ttl", "unknown key"},
		{"literal client secret", "    secret: ${CLI_APP_SECRET}", "    secret: app-secret-in-the-file", "clients[0].secret", "${ENV}"},
		{"unset environment variable", "    secret: ${CLI_APP_SECRET}", "    secret: ${CLI_E2E_NEVER_SET}", "clients[0].secret", "CLI_E2E_NEVER_SET is not set"},
		{"bad signing algorithm", "  algorithm: ES256", "  algorithm: HS256", "signing.algorithm", "HS256"},
		{"duplicate client id", "  - id: other", "  - id: app", "clients[1].id", `"app"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(base, c.old+"\n") {
				t.Fatalf("base configuration has no line %q", c.old)
			}
			cfg := strings.Replace(base, c.old+"\n", c.new+"\n", 1)
			line := cliLineOf(t, cfg, c.new)
			out, err := cliRun(t, cliWriteFile(t, cfg), env, "", "check-config", "-c")
			if err == nil {
				t.Fatalf("check-config accepted the file:\n%s", out)
			}
			for _, want := range []string{fmt.Sprintf("line %d", line), c.key, fmt.Sprintf("line %d: %s", line, c.key), c.says} {
				if !strings.Contains(out, want) {
					t.Errorf("check-config output does not contain %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "app-secret-in-the-file") {
				t.Errorf("check-config echoed the secret:\n%s", out)
			}
		})
	}
	t.Run("valid file", func(t *testing.T) {
		file := cliWriteFile(t, base)
		out, err := cliRun(t, file, env, "", "check-config", "-c")
		if err != nil || !strings.Contains(out, "configuration is valid") {
			t.Fatalf("check-config = %v:\n%s", err, out)
		}
	})
}

func testCLIUsers(t *testing.T) {
	s := Start(t)
	rp := newGoRP(t, s, rpID, rpSecret)
	const carolPass, carolNew = "carol-Passw0rd!", "carol-N3w-Passw0rd!"

	out, err := s.CLI(t, carolPass+"\n", "users", "add", "--username", "carol", "--email", "carol@example.com",
		"--name", "Carol Example", "--role", "auditor", "--password-stdin")
	if err != nil || !strings.Contains(out, "created user carol") {
		t.Fatalf("users add = %v:\n%s", err, out)
	}
	out, err = s.CLI(t, "", "users", "list")
	if err != nil {
		t.Fatalf("users list = %v:\n%s", err, out)
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		if !regexp.MustCompile(`(?m)^\S+\s+` + u + `\s+` + u + `@example\.com\s+false\s*$`).MatchString(out) {
			t.Errorf("users list does not show %s as enabled:\n%s", u, out)
		}
	}
	carolID := rpUserID(t, s, "carol")

	t.Run("look-alike usernames refused", func(t *testing.T) {
		for _, c := range []struct{ username, says string }{
			{"ｃａｒｏｌ", "username is taken"}, // full width: carol's name
			{"CAROL", "username is taken"},
			{"\u0430lice", "cannot mix letters of different scripts (here Cyrillic and Latin)"},
			{"ali\u200bce", "cannot contain invisible or control characters"},
		} {
			out, err := s.CLI(t, "", "users", "add", "--username", c.username)
			if err == nil || !strings.Contains(out, c.says) {
				t.Errorf("users add --username %q = %v, want a refusal saying %q:\n%s", c.username, err, c.says, out)
			}
		}
		out, err := s.CLI(t, "", "users", "list")
		if err != nil || strings.Count(strings.TrimSpace(out), "\n") != 3 {
			t.Errorf("users list after refused look-alikes = %v, want the header and three users:\n%s", err, out)
		}
	})

	t.Run("added user logs in", func(t *testing.T) {
		_, idt, claims := rp.login(t, NewBrowser(t), "carol", carolPass)
		if idt.Subject != carolID || claims["preferred_username"] != "carol" {
			t.Errorf("carol's ID token: sub %q claims %v", idt.Subject, claims)
		}
		if ra, _ := claims["realm_access"].(map[string]any); !rpStrings(ra["roles"], "auditor") {
			t.Errorf("carol's roles = %v, want [auditor]", claims["realm_access"])
		}
	})

	t.Run("set-password", func(t *testing.T) {
		out, err := s.CLI(t, carolNew+"\n", "users", "set-password", "--username", "carol")
		if err != nil || !strings.Contains(out, "password of carol changed") {
			t.Fatalf("users set-password = %v:\n%s", err, out)
		}
		b := NewBrowser(t)
		f := b.OpenLogin(s, s.URL+"/authorize?"+AuthParams().Encode())
		resp, page := b.Submit(f, "carol", carolPass)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, "Invalid username or password") {
			t.Errorf("the old password: %d, want 401 Invalid username or password:\n%s", resp.StatusCode, page)
		}
		resp, page = b.Submit(f, "carol", carolNew)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), redirectURI+"?code=") {
			t.Errorf("the new password: %d Location %q, want a redirect with a code:\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
		}
		if _, err := cliPasswordGrant(t, s.URL, passwordID, pwSecret, "carol", carolPass); err == nil {
			t.Errorf("the password grant accepted carol's old password")
		}
		if _, err := cliPasswordGrant(t, s.URL, passwordID, pwSecret, "carol", carolNew); err != nil {
			t.Errorf("the password grant refused carol's new password: %v", err)
		}
	})

	t.Run("disable", func(t *testing.T) {
		bb := NewBrowser(t)
		tok, _, _ := rp.login(t, bb, "bob", bobPass)
		if got := rp.silent(t, bb); got.Get("code") == "" {
			t.Fatalf("bob's SSO session does not work before disabling: %v", got)
		}
		out, err := s.CLI(t, "", "users", "disable", "--username", "bob")
		if err != nil || !strings.Contains(out, "bob disabled") {
			t.Fatalf("users disable = %v:\n%s", err, out)
		}
		out, _ = s.CLI(t, "", "users", "list")
		if !regexp.MustCompile(`(?m)^\S+\s+bob\s+\S+\s+true\s*$`).MatchString(out) {
			t.Errorf("users list does not show bob disabled:\n%s", out)
		}
		if got := rp.silent(t, bb); got.Get("error") != "login_required" {
			t.Errorf("prompt=none with a disabled user's session = %v, want error=login_required", got)
		}
		rp.refreshFails(t, tok.RefreshToken, "invalid_grant")
		if rp.introspect(t, tok.AccessToken).active() {
			t.Errorf("a disabled user's access token is still active")
		}
		b := NewBrowser(t)
		f := b.OpenLogin(s, s.URL+"/authorize?"+AuthParams().Encode())
		resp, page := b.Submit(f, "bob", bobPass)
		if resp.StatusCode == http.StatusSeeOther || !strings.Contains(page, "Your account is disabled") {
			t.Errorf("a disabled user's login: %d Location %q, want a page saying the account is disabled:\n%s",
				resp.StatusCode, resp.Header.Get("Location"), page)
		}
		_, err = cliPasswordGrant(t, s.URL, passwordID, pwSecret, "bob", bobPass)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" || !strings.Contains(re.ErrorDescription, "disabled") {
			t.Errorf("password grant for a disabled user = %v, want invalid_grant saying the account is disabled", err)
		}
	})
}

func testCLIKeysRotate(t *testing.T) {
	s := Start(t)
	rp := newGoRP(t, s, rpID, rpSecret)
	b := NewBrowser(t)
	oldTok, _, _ := rp.login(t, b, "alice", alicePass)
	oldID, _ := oldTok.Extra("id_token").(string)
	oldKid, _ := rpJWTPart(t, oldID, 0)["kid"].(string)
	if kids := cliJWKS(t, s); len(kids) != 1 || kids[0] != oldKid {
		t.Fatalf("JWKS before the rotation = %v, want [%s]", kids, oldKid)
	}

	out, err := s.CLI(t, "", "keys", "rotate")
	if err != nil || !strings.Contains(out, "new signing key created") {
		t.Fatalf("keys rotate = %v:\n%s", err, out)
	}
	time.Sleep(time.Second) // the new key signs a second after it is made, once every node has read it
	s.Restart(t)

	kids := cliJWKS(t, s)
	if len(kids) != 2 || !strings.Contains(strings.Join(kids, " "), oldKid) {
		t.Fatalf("JWKS after the rotation = %v, want the old key %s and a new one", kids, oldKid)
	}
	newKid := kids[0]
	if newKid == oldKid {
		newKid = kids[1]
	}
	rp = newGoRP(t, s, rpID, rpSecret) // a fresh RP: it knows only today's JWKS
	if _, err := rp.verifier.Verify(t.Context(), oldID); err != nil {
		t.Errorf("an ID token signed before the rotation no longer verifies: %v", err)
	}
	if !rp.introspect(t, oldTok.AccessToken).active() {
		t.Errorf("an access token signed before the rotation is no longer active")
	}
	newTok, _, _ := rp.login(t, NewBrowser(t), "alice", alicePass)
	newID, _ := newTok.Extra("id_token").(string)
	if kid := rpJWTPart(t, newID, 0)["kid"]; kid != newKid {
		t.Errorf("a new ID token has kid %v, want the new key %s", kid, newKid)
	}
	if kid := rpJWTPart(t, newTok.AccessToken, 0)["kid"]; kid != newKid {
		t.Errorf("a new access token has kid %v, want the new key %s", kid, newKid)
	}
}

func testCLIMigrate(t *testing.T) {
	dir := t.TempDir()
	dbFile := filepath.Join(dir, "fedhub.db")
	file := filepath.Join(dir, "fedhub.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(defaultConfig, "http://127.0.0.1:9", "127.0.0.1:9", dbFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // a second run finds everything in place
		out, err := cliRun(t, file, cliHarnessEnv(), "", "migrate", "-c")
		if err != nil || !strings.Contains(out, "database is up to date") {
			t.Fatalf("migrate (run %d) = %v:\n%s", i+1, err, out)
		}
	}
	snap := biSnapshotDB(t, dbFile)
	for _, table := range []string{"users", "links", "clients", "signing_keys", "login_transactions", "auth_codes",
		"grants", "refresh_tokens", "sessions", "failures"} {
		if _, ok := snap[table]; !ok {
			t.Errorf("after migrate there is no table %s (tables: %v)", table, cliKeys(snap))
		}
	}
	if n := len(snap["users"]); n != 2 {
		t.Errorf("after two migrations there are %d users, want the 2 bootstrap users", n)
	}

	// The migrated database serves.
	s := Start(t)
	if out, err := s.CLI(t, "", "migrate"); err != nil {
		t.Errorf("migrate next to a running server = %v:\n%s", err, out)
	}
	if got := NewBrowser(t).Authorize(s, AuthParams(), "alice", alicePass); got.Get("code") == "" {
		t.Errorf("login after migrate: %v", got)
	}
}

func testCLIHashSecret(t *testing.T) {
	const secret = "hashed-client-secret-0123456789abcdef"
	out, err := cliRun(t, "", nil, secret+"\n", "hash-secret")
	if err != nil {
		t.Fatalf("hash-secret = %v:\n%s", err, out)
	}
	hash := strings.TrimSpace(out)
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(hash) {
		t.Fatalf("hash-secret printed %q, want sha256:<64 hex>", out)
	}
	sum := sha256.Sum256([]byte(secret))
	if hash != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("hash-secret printed %s, want the SHA-256 of the secret", hash)
	}
	if out, err := cliRun(t, "", nil, "", "hash-secret"); err == nil {
		t.Errorf("hash-secret accepted an empty stdin:\n%s", out)
	}

	client := "  - id: hashed-app\n    secret_hash: " + hash + "\n    grant_types: [client_credentials]\nusers:\n"
	s := Start(t, WithConfig(strings.Replace(defaultConfig, "users:\n", client, 1)))
	if out, err := s.CLI(t, "", "check-config"); err != nil {
		t.Errorf("check-config with secret_hash = %v:\n%s", err, out)
	}
	cc := clientcredentials.Config{ClientID: "hashed-app", ClientSecret: secret, TokenURL: s.URL + "/token",
		AuthStyle: oauth2.AuthStyleInHeader}
	if tok, err := cc.Token(t.Context()); err != nil || tok.AccessToken == "" {
		t.Errorf("client_credentials with the hashed secret = %v", err)
	}
	cc.ClientSecret = secret + "x"
	_, err = cc.Token(t.Context())
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_client" || re.Response.StatusCode != http.StatusUnauthorized {
		t.Errorf("client_credentials with a wrong secret = %v, want 401 invalid_client", err)
	}
}

// demo is a running `fedhub serve --demo`.
type demo struct {
	URL  string // the issuer
	Mgmt string // the management listener's address
	Dir  string // its working directory
	Out  *syncBuffer
}

// startDemo runs `fedhub serve --demo` in a new folder on free loopback
// ports until the test ends.
func startDemo(t *testing.T) demo {
	t.Helper()
	needsBinary(t)
	addr := freeAddr(t)
	d := demo{URL: "http://" + addr, Mgmt: freeAddr(t), Dir: t.TempDir(), Out: &syncBuffer{}}
	base, out := d.URL, d.Out
	cmd := exec.Command(binary, "serve", "--demo", "--listen", addr, "--management", d.Mgmt)
	cmd.Dir, cmd.Env = d.Dir, os.Environ()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("demo output:\n%s", out.String())
		}
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(base + "/.well-known/openid-configuration")
		if err == nil {
			readBody(t, resp)
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		select {
		case <-exited:
			t.Fatalf("fedhub serve --demo exited:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("fedhub serve --demo did not start:\n%s", out.String())
		}
	}
}

func testCLIDemo(t *testing.T) {
	d := startDemo(t)
	base, mgmt, out, dir := d.URL, d.Mgmt, d.Out, d.Dir
	resp, err := http.Get(base + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var discovery struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal([]byte(readBody(t, resp)), &discovery); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "DEMO") || !strings.Contains(out.String(), "Management: http://"+mgmt) {
		t.Errorf("no DEMO banner naming the management listener %s:\n%s", mgmt, out.String())
	}
	if discovery.Issuer != base {
		t.Errorf("demo issuer = %q, want %q", discovery.Issuer, base)
	}
	cc := clientcredentials.Config{ClientID: "demo-app", ClientSecret: "demo-secret", TokenURL: base + "/token",
		AuthStyle: oauth2.AuthStyleInHeader}
	if tok, err := cc.Token(t.Context()); err != nil || tok.AccessToken == "" {
		t.Errorf("client_credentials for demo-app = %v", err)
	}
	tok, err := cliPasswordGrant(t, base, "demo-app", "demo-secret", "demo", "demo")
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("password grant for demo/demo = %v", err)
	}
	if sub, _ := rpJWTPart(t, tok.AccessToken, 1)["preferred_username"].(string); sub != "demo" {
		t.Errorf("demo access token preferred_username = %q", sub)
	}
	if _, err := os.Stat(filepath.Join(dir, "fedhub-demo.db")); err != nil {
		t.Errorf("demo database not in the working directory: %v", err)
	}
}

func testCLIBruteForce(t *testing.T) {
	cfg := strings.Replace(defaultConfig, "\nclients:\n",
		"\nbrute_force: {failure_factor: 3, wait_increment: 1m, max_wait: 15m}\nclients:\n", 1)
	s := Start(t, WithConfig(cfg))
	const locked = "Too many failed sign-in attempts"

	// formLogin tries a password on a fresh login form; it reports whether
	// fedhub let the user in, and the page otherwise.
	formLogin := func(t *testing.T, username, password string) (bool, string) {
		t.Helper()
		b := NewBrowser(t)
		f := b.OpenLogin(s, s.URL+"/authorize?"+AuthParams().Encode())
		resp, page := b.Submit(f, username, password)
		if resp.StatusCode == http.StatusSeeOther && strings.Contains(resp.Header.Get("Location"), "code=") {
			return true, ""
		}
		return false, page
	}
	formLocked := func(t *testing.T, username, password string) {
		t.Helper()
		ok, page := formLogin(t, username, password)
		if ok || !strings.Contains(page, locked) {
			t.Errorf("login form for %s with the right password: signed in %v, want a page saying %q:\n%s", username, ok, locked, page)
		}
	}
	grantLocked := func(t *testing.T, username, password string) {
		t.Helper()
		_, err := cliPasswordGrant(t, s.URL, passwordID, pwSecret, username, password)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" || !strings.Contains(re.ErrorDescription, locked) {
			t.Errorf("password grant for %s with the right password = %v, want invalid_grant %q", username, err, locked)
		}
	}

	// Three wrong passwords on the form lock alice out of both.
	for i := range 3 {
		if ok, page := formLogin(t, "alice", fmt.Sprintf("wrong-%d", i)); ok || !strings.Contains(page, "Invalid username or password") {
			t.Fatalf("wrong password %d: signed in %v:\n%s", i+1, ok, page)
		}
	}
	formLocked(t, "alice", alicePass)
	grantLocked(t, "alice", alicePass)
	var count int
	// Counted against alice's account (her user ID), however her name is typed.
	biQueryDB(t, biServerDB(s), "SELECT count FROM failures WHERE counter_key = ?", []any{"user:local:" + rpUserID(t, s, "alice")}, &count)
	if count != 3 {
		t.Errorf("failures of alice in the database = %d, want 3", count)
	}

	// bob is not affected.
	if ok, page := formLogin(t, "bob", bobPass); !ok {
		t.Errorf("bob cannot sign in while alice is locked:\n%s", page)
	}
	if _, err := cliPasswordGrant(t, s.URL, passwordID, pwSecret, "bob", bobPass); err != nil {
		t.Errorf("bob's password grant while alice is locked: %v", err)
	}

	// Three wrong passwords on the password grant lock bob out of both.
	for i := range 3 {
		if _, err := cliPasswordGrant(t, s.URL, passwordID, pwSecret, "bob", fmt.Sprintf("wrong-%d", i)); err == nil {
			t.Fatalf("wrong password %d accepted", i+1)
		}
	}
	grantLocked(t, "bob", bobPass)
	formLocked(t, "bob", bobPass)

	// The counts live in the database: a restart does not unlock anyone.
	s.Restart(t)
	formLocked(t, "alice", alicePass)
	grantLocked(t, "alice", alicePass)
	formLocked(t, "bob", bobPass)
	grantLocked(t, "bob", bobPass)
}

// cliRun runs the fedhub binary with extra environment variables; when file
// is not empty it is appended as the last argument (after "-c").
func cliRun(t testing.TB, file string, env []string, stdin string, args ...string) (string, error) {
	t.Helper()
	needsBinary(t)
	if file != "" {
		args = append(args, file)
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// cliHarnessEnv is the environment the default configuration needs.
func cliHarnessEnv() []string {
	return []string{"RP_SECRET=" + rpSecret, "RP2_SECRET=" + rp2Secret, "PW_SECRET=" + pwSecret,
		"ALICE_PASSWORD=" + alicePass, "BOB_PASSWORD=" + bobPass}
}

func cliWriteFile(t testing.TB, content string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "fedhub.yaml")
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// cliLineOf is the 1-based number of the last line that is exactly line (a
// duplicate is reported where it repeats).
func cliLineOf(t testing.TB, content, line string) int {
	t.Helper()
	n := 0
	for i, l := range strings.Split(content, "\n") {
		if l == line {
			n = i + 1
		}
	}
	if n == 0 {
		t.Fatalf("no line %q", line)
	}
	return n
}

// cliJWKS returns the kids the JWKS publishes.
func cliJWKS(t testing.TB, s *Server) []string {
	t.Helper()
	resp, err := http.Get(s.URL + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal([]byte(readBody(t, resp)), &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

// cliPasswordGrant runs the password grant for a client.
func cliPasswordGrant(t testing.TB, base, clientID, secret, username, password string) (*oauth2.Token, error) {
	t.Helper()
	conf := oauth2.Config{ClientID: clientID, ClientSecret: secret, Scopes: []string{"openid", "profile"},
		Endpoint: oauth2.Endpoint{TokenURL: base + "/token", AuthStyle: oauth2.AuthStyleInHeader}}
	return conf.PasswordCredentialsToken(t.Context(), username, password)
}

func cliKeys(s biSnapshot) []string {
	var out []string
	for k := range s {
		out = append(out, k)
	}
	return out
}
