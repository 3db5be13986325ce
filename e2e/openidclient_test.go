package e2e

import (
	"bufio"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fedhub/fedhub/e2e/peers"
)

// nodeDir is the npm lane: openid-client and jose (panva), a relying party
// independent of fedhub and of the Go libraries, installed by scripts/test
// (npm ci from the committed package-lock.json).
const nodeDir = "node"

// nodeRP is a scenario of nodeDir running in Node.js: each line it writes on
// stdout is a JSON object.
type nodeRP struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser      // the answers to the script's questions (ask in lib.mjs)
	lines  chan map[string]any // closed once the process has ended
	stderr *syncBuffer
}

// startNode runs node on script with FEDHUB_URL=issuer and env; it is
// stopped when the test ends.
func startNode(t *testing.T, script, issuer string, env ...string) *nodeRP {
	t.Helper()
	needsBinary(t)
	if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", "openid-client")); err != nil {
		t.Fatalf("openid-client is not installed in e2e/%s: run the tests with scripts/test, which runs npm ci there", nodeDir)
	}
	n := &nodeRP{lines: make(chan map[string]any, 16), stderr: &syncBuffer{}}
	n.cmd = exec.Command("node", filepath.Join(nodeDir, script))
	n.cmd.Env = append(os.Environ(), append([]string{"FEDHUB_URL=" + issuer}, env...)...)
	n.cmd.Stderr = n.stderr
	stdout, err := n.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if n.stdin, err = n.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("starting node (scripts/test installs it): %v", err)
	}
	go func() {
		defer close(n.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				line = map[string]any{"error": "not JSON: " + sc.Text()}
			}
			n.lines <- line
		}
		_ = n.cmd.Wait() // once stdout is read to its end
	}()
	t.Cleanup(func() {
		_ = n.cmd.Process.Kill()
		for range n.lines { // until it has ended
		}
	})
	return n
}

// next is the script's next line, within timeout; a line {"error": …} (the
// script failed) or none fails the test.
func (n *nodeRP) next(t *testing.T, timeout time.Duration) map[string]any {
	t.Helper()
	select {
	case line, ok := <-n.lines:
		if !ok {
			t.Fatalf("%s ended (%v) without the line expected:\n%s", n.cmd.Args[1], n.cmd.ProcessState, n.stderr)
		}
		if e, failed := line["error"]; failed {
			t.Fatalf("%s failed: %v\n%v\n%s", n.cmd.Args[1], e, line["cause"], n.stderr)
		}
		return line
	case <-time.After(timeout):
		t.Fatalf("%s wrote no line within %s:\n%s", n.cmd.Args[1], timeout, n.stderr)
	}
	return nil
}

// answer writes the answer to the script's last question, a line of JSON.
func (n *nodeRP) answer(t *testing.T, v any) {
	t.Helper()
	line, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.stdin.Write(append(line, '\n')); err != nil {
		t.Fatalf("answering %s: %v\n%s", n.cmd.Args[1], err, n.stderr)
	}
}

// runNode runs script to its end: its one result, the test failing unless
// it exits 0.
func runNode(t *testing.T, script, issuer string, env ...string) map[string]any {
	t.Helper()
	n := startNode(t, script, issuer, env...)
	result := n.next(t, time.Minute)
	n.wait(t)
	return result
}

// wait waits for the script to end, the test failing unless it exits 0.
func (n *nodeRP) wait(t *testing.T) {
	t.Helper()
	for range n.lines { // until it has ended
	}
	if !n.cmd.ProcessState.Success() {
		t.Fatalf("%s: %v\n%s", n.cmd.Args[1], n.cmd.ProcessState, n.stderr)
	}
}

// signIns answers each authorization URL of fedhub the script asks about
// (signIn in lib.mjs: the code flow with PKCE) with the URL signIn (the
// person's browser) is sent back to; it returns the script's first other line.
func (n *nodeRP) signIns(t *testing.T, s *Server, signIn func(authorize *url.URL) url.Values) map[string]any {
	t.Helper()
	for {
		line := n.next(t, time.Minute)
		at, ok := line["authorize"].(string)
		if !ok {
			return line
		}
		u, err := url.Parse(at)
		if err != nil || !strings.HasPrefix(at, s.URL+"/authorize?") || u.Query().Get("code_challenge_method") != "S256" {
			t.Fatalf("%s asks about %q: want fedhub's authorization endpoint, with PKCE", n.cmd.Args[1], at)
		}
		n.answer(t, map[string]string{"callback": u.Query().Get("redirect_uri") + "?" + signIn(u).Encode()})
	}
}

// nodeObject is the JSON object at key of v.
func nodeObject(t *testing.T, v map[string]any, key string) map[string]any {
	t.Helper()
	o, ok := v[key].(map[string]any)
	if !ok {
		t.Fatalf("%s is %v in %v, want an object", key, v[key], v)
	}
	return o
}

// nodeWantRefused: what is the OAuth error status and code.
func nodeWantRefused(t *testing.T, what string, refusal map[string]any, status int, code string) {
	t.Helper()
	if refusal["status"] != float64(status) || refusal["error"] != code {
		t.Errorf("%s: got %v, want %d %s", what, refusal, status, code)
	}
}

// TestOpenIDClientPrivateKeyJWT: openid-client authenticates with
// private_key_jwt (its own assertions: aud the issuer, a fresh jti each) for
// client credentials and introspection; the first assertion sent again and
// one for another audience are refused with invalid_client.
func TestOpenIDClientPrivateKeyJWT(t *testing.T) {
	t.Parallel()
	svc := newPKJClient(t, "pkj-node", "n1")
	s := Start(t, WithConfig(strings.Replace(defaultConfig, "clients:\n", "clients:\n"+svc.config("    grant_types: [client_credentials]\n"), 1)))
	der, err := x509.MarshalPKCS8PrivateKey(svc.key)
	if err != nil {
		t.Fatal(err)
	}
	got := runNode(t, "privatekeyjwt.mjs", s.URL, "CLIENT_ID="+svc.id, "CLIENT_KID="+svc.kid,
		"CLIENT_KEY="+string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))

	if at := nodeObject(t, got, "access_token"); at["sub"] != svc.id || at["client_id"] != svc.id {
		t.Errorf("client credentials: access token claims %v, want sub and client_id %s", at, svc.id)
	}
	if in := nodeObject(t, got, "introspection"); in["active"] != true || in["client_id"] != svc.id {
		t.Errorf("introspection with a client assertion: %v, want the token active, of %s", in, svc.id)
	}
	assertions, _ := got["assertions"].([]any)
	if len(assertions) != 2 {
		t.Fatalf("assertions sent: %v, want 2", assertions)
	}
	first, second := assertions[0].(map[string]any), assertions[1].(map[string]any)
	if first["aud"] != s.URL || first["iss"] != svc.id || first["sub"] != svc.id || first["jti"] == second["jti"] {
		t.Errorf("openid-client's assertions %v, %v: want aud the issuer, iss and sub the client, one jti each", first, second)
	}
	nodeWantRefused(t, "the first assertion again", nodeObject(t, got, "replayed"), http.StatusUnauthorized, "invalid_client")
	nodeWantRefused(t, "an assertion for another audience", nodeObject(t, got, "wrong_audience"), http.StatusUnauthorized, "invalid_client")
}

// TestOpenIDClientTokenExchange: openid-client's genericGrantRequest
// exchanges alice's access token (RFC 8693): te-web for te-orders, which acts
// (act.sub) and exchanges it again for te-billing (act.act); jose verifies the
// tokens. A wider scope is invalid_scope, an audience te-web may not ask for
// invalid_target.
func TestOpenIDClientTokenExchange(t *testing.T) {
	t.Parallel()
	s := Start(t, WithConfig(strings.Replace(defaultConfig, "clients:\n", "clients:\n"+teClients, 1)),
		WithEnv("TE_WEB_SECRET="+teWebSecret, "TE_ORDERS_SECRET="+teOrdersSecret))
	user := teSignIn(t, s)
	alice := ocJWTPayload(t, user.Access)["sub"]
	got := runNode(t, "exchange.mjs", s.URL, "SUBJECT_TOKEN="+user.Access,
		"WEB_ID=te-web", "WEB_SECRET="+teWebSecret, "ORDERS_ID=te-orders", "ORDERS_SECRET="+teOrdersSecret)

	toOrders := nodeObject(t, got, "to_orders")
	c := nodeObject(t, toOrders, "claims")
	if toOrders["issued_token_type"] != "urn:ietf:params:oauth:token-type:access_token" || toOrders["token_type"] != "bearer" ||
		c["sub"] != alice || !rpStrings(c["aud"], "te-orders") || c["client_id"] != "te-web" || nodeObject(t, c, "act")["sub"] != "te-web" {
		t.Errorf("exchanged for te-orders: %v; want alice's access token for te-orders, te-web acting", toOrders)
	}
	c = nodeObject(t, nodeObject(t, got, "to_billing"), "claims")
	act := nodeObject(t, c, "act")
	if c["sub"] != alice || !rpStrings(c["aud"], "te-billing") || c["scope"] != "openid" || act["sub"] != "te-orders" ||
		nodeObject(t, act, "act")["sub"] != "te-web" {
		t.Errorf("exchanged again for te-billing: %v; want alice, scope openid, te-orders acting after te-web", c)
	}
	nodeWantRefused(t, "a wider scope", nodeObject(t, got, "wider_scope"), http.StatusBadRequest, "invalid_scope")
	nodeWantRefused(t, "another audience", nodeObject(t, got, "other_audience"), http.StatusBadRequest, "invalid_target")
}

// TestOpenIDClientDeviceFlow: a CLI on openid-client starts the device flow
// and shows its user code; the person types it in Chromium, signs in and
// approves; the CLI's polling gets tokens, with an ID token openid-client
// validates and jose verifies.
func TestOpenIDClientDeviceFlow(t *testing.T) {
	t.Parallel()
	s := Start(t, WithConfig(strings.Replace(defaultConfig, "clients:\n", "clients:\n"+dvClients, 1)))
	cli := startNode(t, "device.mjs", s.URL, "CLIENT_ID=dv-cli")
	shown := cli.next(t, 30*time.Second)
	code, _ := shown["user_code"].(string)
	if shown["verification_uri"] != s.URL+"/device" || shown["interval"] != float64(5) || code == "" {
		t.Fatalf("the CLI shows %v: want a user code, %s/device, interval 5", shown, s.URL)
	}

	ctx := peers.Chromium(t)
	dvEnter(t, ctx, s, code, "alice", alicePass)
	mbAt(t, ctx, s.URL+"/device/confirm", "#approve")
	mbClick(t, ctx, "#approve")
	dvHeading(t, ctx, "Device approved")

	got := cli.next(t, time.Minute)
	id, verified := nodeObject(t, got, "id_token"), nodeObject(t, got, "id_token_verified")
	if id["iss"] != s.URL || !rpStrings(id["aud"], "dv-cli") || id["preferred_username"] != "alice" || id["sub"] != verified["sub"] ||
		got["refresh_token"] != true || got["token_type"] != "bearer" {
		t.Fatalf("the CLI got %v: want alice's ID token for dv-cli and a refresh token", got)
	}
}

// TestOpenIDClientBackchannelLogout: an application's back-channel logout
// endpoint in Node.js verifies, with jose against fedhub's JWKS, the logout
// token of a session ended by RP-initiated logout and of one ended by an
// administrator disabling the user.
func TestOpenIDClientBackchannelLogout(t *testing.T) {
	t.Parallel()
	// The endpoint listens before fedhub starts (fedhub is configured with
	// its URI); it finds fedhub's keys when the first token comes.
	addr := freeAddr(t)
	endpoint := startNode(t, "backchannel.mjs", "http://"+addr, "CLIENT_ID=bc-app")
	uri, _ := endpoint.next(t, 30*time.Second)["uri"].(string)
	s := bcStart(t, uri, WithAddr(addr))
	app := newGoRP(t, s, "bc-app", rpSecret)

	for name, session := range map[string]func(*testing.T, *Server, *goRP) (string, string){
		"RP-initiated logout":          bcLogOut,
		"an administrator disables it": bcDisable,
	} {
		sid, sub := session(t, s, app)
		got := endpoint.next(t, 15*time.Second)
		if got["sid"] != sid || got["sub"] != sub || got["jti"] == nil {
			t.Fatalf("%s: the application verified %v, want the token of session %s of %s", name, got, sid, sub)
		}
	}
}

// TestOpenIDClientClaims: TestClientScopes's client scopes and APIs seen by
// openid-client, signing alice in through the code flow with PKCE: the claims
// of a default scope (hr) in the ID token it validates, those of an optional
// scope (staffing, email) only when asked for, the userinfo-targeted ones in
// fetchUserInfo, the access token (verified by jose) and introspection; a
// resource gives an access token whose aud is that API, and an API of another
// client is invalid_target, asked for at sign-in or in a refresh.
func TestOpenIDClientClaims(t *testing.T) {
	t.Parallel()
	s := csStart(t)
	scopes := make([]string, len(csScopeCases))
	for i, c := range csScopeCases {
		scopes[i] = c.scope
	}
	asked, err := json.Marshal(scopes)
	if err != nil {
		t.Fatal(err)
	}
	rp := startNode(t, "claims.mjs", s.URL, "CLIENT_ID=cs-app", "CLIENT_SECRET="+csSecret, "REDIRECT_URI="+redirectURI,
		"SCOPES="+string(asked), "API="+csOrders, "OTHER_API="+csBilling)
	b := NewBrowser(t)
	got := rp.signIns(t, s, func(authorize *url.URL) url.Values { return b.Authorize(s, authorize.Query(), "alice", alicePass) })
	rp.wait(t)

	signedIn, _ := got["scopes"].([]any)
	if len(signedIn) != len(csScopeCases) {
		t.Fatalf("sign-ins: %v, want %d", got["scopes"], len(csScopeCases))
	}
	for i, c := range csScopeCases {
		t.Run(c.name, func(t *testing.T) {
			r, _ := signedIn[i].(map[string]any)
			csWantGranted(t, r["scope"])
			csCheck(t, "ID token", nodeObject(t, r, "id_token"), c.idToken)
			csCheck(t, "access token", nodeObject(t, r, "access_token"), c.access)
			csCheck(t, "userinfo", nodeObject(t, r, "userinfo"), c.userinfo)
			in := nodeObject(t, r, "introspection")
			if in["active"] != true {
				t.Fatalf("introspection: %v", in)
			}
			csCheck(t, "introspection", in, c.introspected)
		})
	}
	forAPI := nodeObject(t, got, "resource")
	if aud := nodeObject(t, forAPI, "access_token")["aud"]; aud != csOrders {
		t.Errorf("access token aud = %v, want %s", aud, csOrders)
	}
	if aud := nodeObject(t, forAPI, "id_token")["aud"]; !rpStrings(aud, "cs-app") {
		t.Errorf("ID token aud = %v, want the client", aud)
	}
	nodeWantRefused(t, "a refresh for another client's API", nodeObject(t, got, "refresh_other_api"), http.StatusBadRequest, "invalid_target")
	if refused := nodeObject(t, got, "other_api"); refused["error"] != "invalid_target" {
		t.Errorf("signing in for another client's API: %v, want invalid_target", refused)
	}
}

// TestOpenIDClientConsent: openid-client's authorization URL for
// TestConsent's third-party application leads Chromium, once alice has signed
// in, to the consent page; after Allow, authorizationCodeGrant gets alice's
// tokens. Signing in again, the application gets a code at once.
func TestOpenIDClientConsent(t *testing.T) {
	t.Parallel()
	s := Start(t, WithConfig(strings.Replace(defaultConfig, "clients:\n", "clients:\n"+csPartner, 1)),
		WithEnv("PARTNER_SECRET="+csPartnerSecret))
	// The application's loopback redirect URI (any port) hands over where the browser came back.
	back := make(chan url.Values, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /loopback", func(w http.ResponseWriter, r *http.Request) {
		back <- r.URL.Query()
		_, _ = io.WriteString(w, "signed in")
	})
	app := httptest.NewServer(mux)
	t.Cleanup(app.Close)
	rp := startNode(t, "consent.mjs", s.URL, "CLIENT_ID=partner", "CLIENT_SECRET="+csPartnerSecret,
		"REDIRECT_URI="+app.URL+"/loopback", "SCOPE=openid email")

	ctx := peers.Chromium(t)
	nav := mbWatch(t, ctx)
	signIns := 0
	got := rp.signIns(t, s, func(authorize *url.URL) url.Values {
		signIns++
		mark := nav.Mark()
		mbGo(t, ctx, authorize.String())
		if signIns == 1 {
			mbSignIn(t, ctx, s.URL+"/login?", "alice", alicePass)
			csPartnerAsks(t, ctx, s)
			mbClick(t, ctx, "#allow")
		}
		select {
		case q := <-back:
			if at := nav.mbVisited(mark, s.URL+"/consent"); signIns > 1 && at != "" {
				t.Fatalf("asked again after allowing: %s", at)
			}
			return q
		case <-time.After(20 * time.Second):
			t.Fatalf("sign-in %d: the browser did not come back to the application; it is at %s", signIns, mbLocation(t, ctx))
		}
		return nil
	})
	rp.wait(t)

	allowed := nodeObject(t, got, "allowed")
	id, verified := nodeObject(t, allowed, "id_token"), nodeObject(t, allowed, "id_token_verified")
	if id["iss"] != s.URL || !rpStrings(id["aud"], "partner") || id["email"] != "alice@example.com" || id["sub"] != verified["sub"] ||
		!strings.Contains(fmt.Sprint(allowed["scope"]), "email") {
		t.Errorf("after Allow, the application got %v: want alice's ID token for partner, with her email", allowed)
	}
	if again := nodeObject(t, got, "again"); nodeObject(t, again, "id_token")["sub"] != id["sub"] {
		t.Errorf("signing in again, the application got %v, want alice's tokens", again)
	}
	if signIns != 2 {
		t.Errorf("the application signed in %d times, want 2", signIns)
	}
}
