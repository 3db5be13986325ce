package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
)

// ocClient is how a test RP authenticates at the token, introspection and
// revocation endpoints: client_secret_basic, client_secret_post (post), or
// client_id alone for a public client (no secret).
type ocClient struct {
	id, secret string
	post       bool
}

var (
	ocRP     = ocClient{id: rpID, secret: rpSecret}
	ocRPPost = ocClient{id: rpID, secret: rpSecret, post: true}
	ocRP2    = ocClient{id: rp2ID, secret: rp2Secret}
	ocPublic = ocClient{id: publicID}
	ocPW     = ocClient{id: passwordID, secret: pwSecret}
)

// ocAnswer is a JSON answer of the token, introspection or revocation endpoint.
type ocAnswer struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

// str returns a string member of the answer, or "".
func (a ocAnswer) str(key string) string {
	s, _ := a.Body[key].(string)
	return s
}

// ocPost POSTs a form to an endpoint of the server as client c (nil: no
// client authentication at all).
func ocPost(t testing.TB, s *Server, path string, c *ocClient, form url.Values) ocAnswer {
	t.Helper()
	form = ocClone(form)
	if c != nil && (c.post || c.secret == "") {
		form.Set("client_id", c.id)
		if c.secret != "" {
			form.Set("client_secret", c.secret)
		}
	}
	req, err := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c != nil && !c.post && c.secret != "" {
		// RFC 6749 §2.3.1: the credentials are form-encoded before Basic.
		req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	a := ocAnswer{Status: resp.StatusCode, Header: resp.Header, Raw: readBody(t, resp)}
	if strings.TrimSpace(a.Raw) != "" {
		if err := json.Unmarshal([]byte(a.Raw), &a.Body); err != nil {
			t.Fatalf("POST %s answered %d with a body that is not a JSON object: %v\n%s", path, a.Status, err, a.Raw)
		}
	}
	return a
}

// ocWantOAuthError fails the test unless the answer is the given status and OAuth error code.
func ocWantOAuthError(t testing.TB, a ocAnswer, status int, code string) {
	t.Helper()
	if a.Status != status || a.str("error") != code {
		t.Fatalf("got %d %s, want %d error %q", a.Status, a.Raw, status, code)
	}
	ocWantNoStore(t, a.Header)
}

// ocWantNoStore fails the test unless the response must not be cached.
func ocWantNoStore(t testing.TB, h http.Header) {
	t.Helper()
	if !slices.Contains(strings.Split(strings.ReplaceAll(h.Get("Cache-Control"), " ", ""), ","), "no-store") {
		t.Fatalf("Cache-Control = %q, want no-store", h.Get("Cache-Control"))
	}
}

// ocTokens is a successful token response.
type ocTokens struct {
	Access, Refresh, ID, Type, Scope string
	ExpiresIn                        float64
}

// ocWantTokens checks a successful token response (RFC 6749 §5.1) and returns its tokens.
func ocWantTokens(t testing.TB, a ocAnswer) ocTokens {
	t.Helper()
	if a.Status != http.StatusOK {
		t.Fatalf("token endpoint answered %d: %s", a.Status, a.Raw)
	}
	if ct := a.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("token response Content-Type = %q, want application/json", ct)
	}
	ocWantNoStore(t, a.Header)
	ts := ocTokens{Access: a.str("access_token"), Refresh: a.str("refresh_token"), ID: a.str("id_token"),
		Type: a.str("token_type"), Scope: a.str("scope")}
	ts.ExpiresIn, _ = a.Body["expires_in"].(float64)
	if ts.Access == "" {
		t.Fatalf("token response has no access_token: %s", a.Raw)
	}
	if !strings.EqualFold(ts.Type, "Bearer") {
		t.Fatalf("token_type = %q, want Bearer", ts.Type)
	}
	if ts.ExpiresIn <= 0 {
		t.Fatalf("expires_in = %v, want a positive number", a.Body["expires_in"])
	}
	return ts
}

// ocRedeem exchanges an authorization code at the token endpoint.
func ocRedeem(t testing.TB, s *Server, c ocClient, code, redirect, verifier string) ocAnswer {
	t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}}
	if redirect != "" {
		form.Set("redirect_uri", redirect)
	}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	return ocPost(t, s, "/token", &c, form)
}

// ocRefresh uses a refresh token.
func ocRefresh(t testing.TB, s *Server, c ocClient, refresh string) ocAnswer {
	t.Helper()
	return ocPost(t, s, "/token", &c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})
}

// ocLoginForm opens the login page the authorization endpoint sent the browser
// to (a /login?req=… location) and returns its form.
func ocLoginForm(t testing.TB, s *Server, b *Browser, loc string) LoginForm {
	t.Helper()
	if !strings.HasPrefix(loc, "/login?") {
		t.Fatalf("Location %q is not the login page", loc)
	}
	resp, page := b.Get(s.URL + loc)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login page answered %d:\n%s", resp.StatusCode, page)
	}
	f := LoginForm{Action: s.URL + "/broker/local/login", Page: page}
	for _, m := range hiddenInput.FindAllStringSubmatch(page, -1) {
		if m[1] == "req" {
			f.Req = m[2]
		} else {
			f.CSRF = m[2]
		}
	}
	if f.Req == "" || f.CSRF == "" {
		t.Fatalf("login page has no req/csrf fields:\n%s", page)
	}
	return f
}

// ocCallback checks that resp sends the browser with a 303 to redirect (query
// and all, loopback port included) and returns the parameters the RP receives there.
func ocCallback(t testing.TB, resp *http.Response, redirect string) url.Values {
	t.Helper()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("answer %d Location %q, want a 303 to the RP", resp.StatusCode, loc)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	if u.Fragment != "" || u.RawFragment != "" {
		t.Fatalf("redirect %q carries a fragment", loc)
	}
	want, _ := url.Parse(redirect)
	q := u.Query()
	for k, v := range want.Query() { // a query the redirect URI already had is kept
		if !slices.Equal(q[k], v) {
			t.Fatalf("redirect %q lost the redirect URI's query parameter %s", loc, k)
		}
		delete(q, k)
	}
	if u.Scheme != want.Scheme || u.Host != want.Host || u.EscapedPath() != want.EscapedPath() {
		t.Fatalf("redirect goes to %q, want %q", loc, redirect)
	}
	return q
}

// ocAuthorizeAs runs an authorization request (GET) to the RP's redirect URI,
// logging in with the form when the authorization endpoint asks for it. It
// fails unless the browser ends up sent to the request's redirect_uri.
func ocAuthorizeAs(t testing.TB, s *Server, b *Browser, params url.Values, username, password string) url.Values {
	t.Helper()
	return ocAuthorizeRaw(t, s, b, params.Encode(), params.Get("redirect_uri"), username, password)
}

// ocAuthorizeRaw is ocAuthorizeAs with the query string as given.
func ocAuthorizeRaw(t testing.TB, s *Server, b *Browser, rawQuery, redirect, username, password string) url.Values {
	t.Helper()
	resp, _ := b.Get(s.URL + "/authorize?" + rawQuery)
	if loc := resp.Header.Get("Location"); resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(loc, "/login?") {
		resp, _ = b.Submit(ocLoginForm(t, s, b, loc), username, password)
	}
	return ocCallback(t, resp, redirect)
}

// ocForcedLogin runs an authorization request that must show the login page
// even when the browser has a session, logs alice in and returns what the RP receives.
func ocForcedLogin(t testing.TB, s *Server, b *Browser, params url.Values) url.Values {
	t.Helper()
	resp, _ := b.Get(s.URL + "/authorize?" + params.Encode())
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?") {
		t.Fatalf("authorize answered %d Location %q, want the login page", resp.StatusCode, loc)
	}
	resp, _ = b.Submit(ocLoginForm(t, s, b, loc), "alice", alicePass)
	return ocCallback(t, resp, params.Get("redirect_uri"))
}

// authorize is ocAuthorizeAs for alice.
func ocAuthorize(t testing.TB, s *Server, b *Browser, params url.Values) url.Values {
	t.Helper()
	return ocAuthorizeAs(t, s, b, params, "alice", alicePass)
}

// ocSilent runs an authorization request that must be answered without
// the login page and returns what the RP receives.
func ocSilent(t testing.TB, s *Server, b *Browser, params url.Values) url.Values {
	t.Helper()
	resp, _ := b.Get(s.URL + "/authorize?" + params.Encode())
	return ocCallback(t, resp, params.Get("redirect_uri"))
}

// ocWantCode checks a successful authorization response (state echoed, iss per
// RFC 9207) and returns the code.
func ocWantCode(t testing.TB, s *Server, got, sent url.Values) string {
	t.Helper()
	if got.Has("error") || got.Get("code") == "" {
		t.Fatalf("authorization response %v, want a code", got)
	}
	if got.Get("state") != sent.Get("state") {
		t.Fatalf("state = %q, want %q", got.Get("state"), sent.Get("state"))
	}
	if got.Get("iss") != s.URL {
		t.Fatalf("iss = %q, want %q", got.Get("iss"), s.URL)
	}
	return got.Get("code")
}

// ocWantAuthzError checks an error authorization response: one of the codes,
// state echoed, iss, and no code.
func ocWantAuthzError(t testing.TB, s *Server, got, sent url.Values, codes ...string) {
	t.Helper()
	if !slices.Contains(codes, got.Get("error")) {
		t.Fatalf("authorization response %v, want error %v", got, codes)
	}
	if got.Has("code") || got.Has("access_token") || got.Has("id_token") {
		t.Fatalf("error response carries a credential: %v", got)
	}
	if got.Get("state") != sent.Get("state") {
		t.Fatalf("state = %q, want %q", got.Get("state"), sent.Get("state"))
	}
	if got.Get("iss") != s.URL {
		t.Fatalf("iss = %q, want %q", got.Get("iss"), s.URL)
	}
}

// ocWantErrorPage checks that the answer is fedhub's HTML error page and does not
// redirect anywhere.
func ocWantErrorPage(t testing.TB, resp *http.Response, body string) {
	t.Helper()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("answer %d Location %q, want a 400 error page", resp.StatusCode, resp.Header.Get("Location"))
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		t.Fatalf("error page carries Location %q", loc)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("error page Content-Type = %q", ct)
	}
	if strings.Contains(body, "code=") || strings.Contains(strings.ToLower(body), "http-equiv=\"refresh\"") {
		t.Fatalf("error page leads somewhere:\n%s", body)
	}
}

// ocIDToken is a verified ID token with its claims.
type ocIDToken struct {
	*oidc.IDToken
	Raw    string
	Claims map[string]any
}

func (tok ocIDToken) str(key string) string {
	s, _ := tok.Claims[key].(string)
	return s
}

// authTime is the auth_time claim; the test fails when it is missing.
func (tok ocIDToken) authTime(t testing.TB) int64 {
	t.Helper()
	v, ok := tok.Claims["auth_time"].(float64)
	if !ok || v <= 0 {
		t.Fatalf("ID token has no auth_time: %v", tok.Claims)
	}
	return int64(v)
}

var (
	ocProvidersMu sync.Mutex
	ocProviders   = map[string]*oidc.Provider{}
)

// ocVerifyIDToken checks an ID token the way an RP library does — discovery,
// JWKS signature, iss, aud ∋ clientID, exp — plus iat (not in the future, not
// older than 5 minutes) and a subject.
func ocVerifyIDToken(t testing.TB, s *Server, clientID, raw string) ocIDToken {
	t.Helper()
	if raw == "" {
		t.Fatal("no ID token")
	}
	ctx := context.Background()
	ocProvidersMu.Lock()
	p := ocProviders[s.URL]
	if p == nil {
		var err error
		if p, err = oidc.NewProvider(ctx, s.URL); err != nil {
			ocProvidersMu.Unlock()
			t.Fatalf("discovery: %v", err)
		}
		ocProviders[s.URL] = p
	}
	ocProvidersMu.Unlock()
	tok, err := p.Verifier(&oidc.Config{ClientID: clientID}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("ID token does not verify: %v", err)
	}
	out := ocIDToken{IDToken: tok, Raw: raw}
	if err := tok.Claims(&out.Claims); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	switch {
	case tok.Subject == "":
		t.Fatal("ID token has no sub")
	case tok.IssuedAt.IsZero() || tok.IssuedAt.After(now):
		t.Fatalf("ID token iat %v is missing or in the future (now %v)", tok.IssuedAt, now)
	case now.Sub(tok.IssuedAt) > 5*time.Minute:
		t.Fatalf("ID token iat %v is more than 5 minutes old", tok.IssuedAt)
	case !tok.Expiry.After(now):
		t.Fatalf("ID token exp %v is not in the future", tok.Expiry)
	case !slices.Contains(tok.Audience, clientID):
		t.Fatalf("ID token aud %v lacks %s", tok.Audience, clientID)
	}
	return out
}

// ocCodeFlow runs a whole code flow for client c as alice: authorization
// request, code exchange, ID token verification (nonce included).
func ocCodeFlow(t testing.TB, s *Server, b *Browser, c ocClient, params url.Values) (ocTokens, ocIDToken) {
	t.Helper()
	return ocRedeemAndVerify(t, s, c, ocWantCode(t, s, ocAuthorize(t, s, b, params), params), params)
}

// ocRedeemAndVerify exchanges the code of an authorization request and verifies
// the ID token, nonce included (none when the request had none).
func ocRedeemAndVerify(t testing.TB, s *Server, c ocClient, code string, params url.Values) (ocTokens, ocIDToken) {
	t.Helper()
	ts := ocWantTokens(t, ocRedeem(t, s, c, code, params.Get("redirect_uri"), ""))
	tok := ocVerifyIDToken(t, s, c.id, ts.ID)
	if nonce, ok := tok.Claims["nonce"]; nonce != params.Get("nonce") && (ok || params.Has("nonce")) {
		t.Fatalf("ID token nonce = %v, want %q", nonce, params.Get("nonce"))
	}
	return ts, tok
}

// ocUserinfo calls the userinfo endpoint: "get" with a bearer header,
// "post-header" by POST with the header, "post-body" by POST with
// access_token in the form body.
func ocUserinfo(t testing.TB, s *Server, how, token string) (int, http.Header, map[string]any) {
	t.Helper()
	var req *http.Request
	var err error
	switch how {
	case "get":
		req, err = http.NewRequest(http.MethodGet, s.URL+"/userinfo", nil)
	case "post-header":
		req, err = http.NewRequest(http.MethodPost, s.URL+"/userinfo", nil)
	case "post-body":
		req, err = http.NewRequest(http.MethodPost, s.URL+"/userinfo",
			strings.NewReader(url.Values{"access_token": {token}}.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	default:
		t.Fatalf("unknown userinfo method %q", how)
	}
	if err != nil {
		t.Fatal(err)
	}
	if how != "post-body" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	var out map[string]any
	if resp.StatusCode == http.StatusOK {
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("userinfo Content-Type = %q", ct)
		}
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatalf("userinfo body is not a JSON object: %v\n%s", err, body)
		}
	}
	return resp.StatusCode, resp.Header, out
}

// ocWantUserinfo calls userinfo by GET, expects 200 and a sub equal to the ID
// token's (OIDC Core §5.3.2), and returns the claims.
func ocWantUserinfo(t testing.TB, s *Server, access string, tok ocIDToken) map[string]any {
	t.Helper()
	status, _, claims := ocUserinfo(t, s, "get", access)
	if status != http.StatusOK {
		t.Fatalf("userinfo answered %d", status)
	}
	if claims["sub"] != tok.Subject {
		t.Fatalf("userinfo sub = %v, ID token sub = %q", claims["sub"], tok.Subject)
	}
	return claims
}

// ocWantUserinfoRefused expects userinfo to refuse the token as invalid_token.
func ocWantUserinfoRefused(t testing.TB, s *Server, access string) {
	t.Helper()
	status, h, _ := ocUserinfo(t, s, "get", access)
	if status != http.StatusUnauthorized || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("userinfo answered %d WWW-Authenticate %q, want 401 invalid_token", status, h.Get("WWW-Authenticate"))
	}
}

// ocDiscovery returns the server's OpenID Provider metadata.
func ocDiscovery(t testing.TB, s *Server) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.Get(s.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	var meta map[string]any
	if err := json.Unmarshal([]byte(body), &meta); err != nil {
		t.Fatalf("discovery is not a JSON object: %v\n%s", err, body)
	}
	return resp, meta
}

// strings of a JSON array member, and whether it is an array of strings.
func ocStrings(v any) ([]string, bool) {
	arr, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// ocJWKS returns the server's published keys.
func ocJWKS(t testing.TB, s *Server) jose.JSONWebKeySet {
	t.Helper()
	resp, err := http.Get(s.URL + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("jwks answered %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		t.Fatalf("jwks is not a JWK Set: %v\n%s", err, body)
	}
	return set
}

// ocJWTHeader decodes a compact JWS's protected header without verifying anything.
func ocJWTHeader(t testing.TB, raw string) map[string]any {
	t.Helper()
	h, _, ok := strings.Cut(raw, ".")
	if !ok {
		t.Fatalf("%q is not a compact JWS", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatalf("JWS header: %v", err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("JWS header: %v", err)
	}
	return out
}

// ocJWTPayload decodes a compact JWS's payload without verifying anything.
func ocJWTPayload(t testing.TB, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("%q is not a compact JWS", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("JWS payload: %v", err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("JWS payload: %v", err)
	}
	return out
}

// ocUnsignedJWT is an alg "none" JWT of the given typ (a request object, or a forgery).
func ocUnsignedJWT(typ string, claims map[string]any) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"` + typ + `"}`))
	p, _ := json.Marshal(claims)
	return h + "." + base64.RawURLEncoding.EncodeToString(p) + "."
}

// ocPKCE returns a fresh code_verifier and its S256 code_challenge.
func ocPKCE() (verifier, challenge string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand docs)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// ocVSChar reports whether s is non-empty and made only of RFC 6749 A.17
// (VSCHAR, %x20-7E) characters.
func ocVSChar(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			return false
		}
	}
	return true
}

// ocEntropyBits estimates a token's entropy the way the conformance suite does:
// its length times the Shannon entropy of its characters.
func ocEntropyBits(s string) float64 {
	counts := map[rune]int{}
	n := 0
	for _, r := range s {
		counts[r]++
		n++
	}
	h := 0.0
	for _, c := range counts {
		p := float64(c) / float64(n)
		h -= p * math.Log2(p)
	}
	return h * float64(n)
}

// ocCheckConfig runs `fedhub check-config` on a configuration template (same
// verbs as defaultConfig) with the test secrets in the environment.
func ocCheckConfig(t testing.TB, tmpl string) (string, error) {
	t.Helper()
	needsBinary(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "fedhub.yaml")
	cfg := strings.NewReplacer("%[1]s", "http://127.0.0.1:1", "%[2]s", "127.0.0.1:1", "%[3]s", filepath.Join(dir, "fedhub.db")).Replace(tmpl)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "check-config", "-c", path)
	cmd.Env = append(os.Environ(), "RP_SECRET="+rpSecret, "RP2_SECRET="+rp2Secret, "PW_SECRET="+pwSecret,
		"ALICE_PASSWORD="+alicePass, "BOB_PASSWORD="+bobPass)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func ocClone(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}
