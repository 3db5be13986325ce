package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
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

	"github.com/fedhub/fedhub/e2e/peers"
	_ "github.com/jackc/pgx/v5/stdlib"
)

// mnConfig is defaultConfig on PostgreSQL, for several nodes behind one
// (imaginary) load balancer: every node has the same issuer URL, MN_ISSUER,
// replaced before the template is used; only listen (%[2]s) differs. The DSN
// comes from the environment so that the file holds no password. A low
// failure_factor makes the brute-force limit reachable in three tries.
var mnConfig = strings.NewReplacer(
	"issuer: %[1]s", "issuer: MN_ISSUER",
	"  driver: sqlite\n  dsn: %[3]s\n", "  driver: postgres\n  dsn: ${FEDHUB_MN_DSN}\n"+
		"brute_force:\n  failure_factor: 3\n  wait_increment: 1h\n  max_wait: 1h\n",
).Replace(defaultConfig)

// TestTwoNodesOnPostgres runs three fedhub nodes on one PostgreSQL database with
// the same configuration (issuer URL = node A's), as behind a load balancer,
// and sends one person's and one RP's traffic to them in turn: nothing a
// request leaves behind may live only in the memory of the node that served it.
func TestTwoNodesOnPostgres(t *testing.T) {
	start := time.Now()
	dsn := peers.Postgres(t)
	addrA := freeAddr(t)
	issuer := "http://" + addrA
	tmpl := strings.ReplaceAll(mnConfig, "MN_ISSUER", issuer)
	opts := []Option{WithConfig(tmpl), WithEnv("FEDHUB_MN_DSN=" + dsn)}
	// One after the other: the first migrates the empty database and makes the first key.
	a := Start(t, append(opts, WithAddr(addrA))...)
	b := Start(t, opts...)
	c := Start(t, opts...)
	nodes := map[string]*Server{"A": a, "B": b, "C": c}
	t.Logf("nodes up after %v: A %s, B %s, C %s", time.Since(start).Round(time.Millisecond), a.URL, b.URL, c.URL)

	// Same issuer, same key everywhere.
	firstKids := mnKids(t, a)
	if len(firstKids) != 1 {
		t.Fatalf("node A publishes keys %v, want exactly one", firstKids)
	}
	oldKid := firstKids[0]
	for name, n := range nodes {
		_, meta := ocDiscovery(t, n)
		if meta["issuer"] != issuer || meta["token_endpoint"] != issuer+"/token" {
			t.Fatalf("node %s: discovery issuer %v token_endpoint %v, want %s", name, meta["issuer"], meta["token_endpoint"], issuer)
		}
		if kids := mnKids(t, n); !slices.Equal(kids, firstKids) {
			t.Fatalf("node %s publishes keys %v, node A %v", name, kids, firstKids)
		}
	}

	browser := NewBrowser(t)
	var first ocTokens // alice's first grant, logged in across nodes
	var sid string     // her SSO session

	ok := t.Run("login across nodes", func(t *testing.T) {
		params := AuthParams()
		resp, _ := browser.Get(a.URL + "/authorize?" + params.Encode())
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?") {
			t.Fatalf("authorize at A answered %d Location %q, want the login page", resp.StatusCode, loc)
		}
		// The cookie A set must reach B: one host, another port, one cookie jar (RFC 6265 §8.5).
		mnWantCookie(t, browser, b, "fedhub_browser")
		f := ocLoginForm(t, b, browser, loc) // the login page, served by B
		f.Action = a.URL + "/broker/local/login"
		resp, _ = browser.Submit(f, "alice", alicePass) // posted to A
		code := mnWantCode(t, issuer, ocCallback(t, resp, redirectURI), params)
		mnWantCookie(t, browser, b, "fedhub_session")

		first = ocWantTokens(t, ocRedeem(t, b, ocRP, code, redirectURI, "")) // redeemed at B
		if first.Refresh == "" || first.ID == "" {
			t.Fatalf("code redeemed at B gave no refresh or ID token: %+v", first)
		}
		// Every node publishes the key that signed it.
		for _, name := range []string{"A", "B", "C"} {
			claims := mnVerifyIDToken(t, nodes[name], issuer, first.ID, params.Get("nonce"))
			sid, _ = claims["sid"].(string)
		}
		if sid == "" {
			t.Fatal("ID token has no sid")
		}
		if kid := ocJWTHeader(t, first.ID)["kid"]; kid != oldKid {
			t.Fatalf("ID token kid %v, want the published key %s", kid, oldKid)
		}
		ocWantUserinfo(t, c, first.Access, ocIDToken{IDToken: &oidc.IDToken{Subject: mnSub(t, first.ID)}})
	})
	if !ok {
		t.FailNow()
	}

	t.Run("SSO session set by A is honoured by B and C", func(t *testing.T) {
		for _, n := range []*Server{b, c} {
			params := AuthParams("prompt", "none")
			code := mnWantCode(t, issuer, ocSilent(t, n, browser, params), params)
			ts := ocWantTokens(t, ocRedeem(t, a, ocRP, code, redirectURI, ""))
			claims := mnVerifyIDToken(t, n, issuer, ts.ID, params.Get("nonce"))
			if claims["sid"] != sid {
				t.Fatalf("prompt=none at %s: sid %v, want the session A started (%s)", n.URL, claims["sid"], sid)
			}
		}
	})

	t.Run("refresh rotation across nodes", func(t *testing.T) {
		rotated := ocWantTokens(t, ocRefresh(t, a, ocRP, first.Refresh)) // at A
		if rotated.Refresh == "" || rotated.Refresh == first.Refresh {
			t.Fatalf("refresh at A did not rotate the refresh token")
		}
		ocWantUserinfo(t, b, rotated.Access, ocIDToken{IDToken: &oidc.IDToken{Subject: mnSub(t, first.ID)}})
		// The rotated-away token comes back at B: the whole family is revoked…
		ocWantOAuthError(t, ocRefresh(t, b, ocRP, first.Refresh), http.StatusBadRequest, "invalid_grant")
		// …so the newest one fails at A, and its access token everywhere.
		ocWantOAuthError(t, ocRefresh(t, a, ocRP, rotated.Refresh), http.StatusBadRequest, "invalid_grant")
		if mnActive(t, c, rotated.Refresh) {
			t.Fatal("introspection at C: the family's newest refresh token is still active")
		}
		for _, n := range []*Server{a, b, c} {
			ocWantUserinfoRefused(t, n, rotated.Access)
			ocWantUserinfoRefused(t, n, first.Access)
		}
	})

	t.Run("userinfo, revocation and introspection across nodes", func(t *testing.T) {
		params := AuthParams("prompt", "none")
		ts := ocWantTokens(t, ocRedeem(t, a, ocRP, mnWantCode(t, issuer, ocSilent(t, c, browser, params), params), redirectURI, ""))
		sub := mnSub(t, ts.ID)
		ocWantUserinfo(t, b, ts.Access, ocIDToken{IDToken: &oidc.IDToken{Subject: sub}})
		if !mnActive(t, b, ts.Access) {
			t.Fatal("introspection at B: a fresh access token is inactive")
		}
		mnRevoke(t, a, ts.Access)
		if mnActive(t, b, ts.Access) {
			t.Fatal("introspection at B: the access token revoked at A is still active")
		}
		ocWantUserinfoRefused(t, b, ts.Access)
		ocWantUserinfoRefused(t, c, ts.Access)

		// Revoking the refresh token at B ends the grant at A and C.
		fresh := ocWantTokens(t, ocRefresh(t, c, ocRP, ts.Refresh))
		mnRevoke(t, b, fresh.Refresh)
		if mnActive(t, a, fresh.Refresh) || mnActive(t, a, fresh.Access) {
			t.Fatal("introspection at A: tokens of the grant revoked at B are still active")
		}
		ocWantOAuthError(t, ocRefresh(t, c, ocRP, fresh.Refresh), http.StatusBadRequest, "invalid_grant")
		ocWantUserinfoRefused(t, c, fresh.Access)
	})

	t.Run("code replayed at another node", func(t *testing.T) {
		params := AuthParams("prompt", "none")
		code := mnWantCode(t, issuer, ocSilent(t, a, browser, params), params)
		ts := ocWantTokens(t, ocRedeem(t, a, ocRP, code, redirectURI, ""))
		ocWantUserinfo(t, b, ts.Access, ocIDToken{IDToken: &oidc.IDToken{Subject: mnSub(t, ts.ID)}})
		ocWantOAuthError(t, ocRedeem(t, b, ocRP, code, redirectURI, ""), http.StatusBadRequest, "invalid_grant")
		ocWantUserinfoRefused(t, a, ts.Access)
		ocWantUserinfoRefused(t, b, ts.Access)
		ocWantOAuthError(t, ocRefresh(t, c, ocRP, ts.Refresh), http.StatusBadRequest, "invalid_grant")
	})

	t.Run("concurrent redemptions and refreshes on all nodes", func(t *testing.T) {
		// One code sent to every node at once: exactly one redemption wins.
		params := AuthParams("prompt", "none")
		code := mnWantCode(t, issuer, ocSilent(t, b, browser, params), params)
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}
		won := mnRace(t, []*Server{a, b, c, a, b, c}, form)
		if len(won) > 1 {
			t.Fatalf("the same code sent to every node at once was redeemed %d times, want at most once", len(won))
		}
		// The others revoked the grant (RFC 6749 §4.1.2), even one whose
		// redemption was still running: nothing issued for the code stays good.
		for _, r := range won {
			ocWantOAuthError(t, ocRefresh(t, a, ocRP, r), http.StatusBadRequest, "invalid_grant")
		}
		ocWantOAuthError(t, ocRedeem(t, c, ocRP, code, redirectURI, ""), http.StatusBadRequest, "invalid_grant")

		// One refresh token sent to every node at once: at most one rotation wins,
		// and the replays revoke the family.
		params = AuthParams("prompt", "none")
		code = mnWantCode(t, issuer, ocSilent(t, c, browser, params), params)
		ts := ocWantTokens(t, ocRedeem(t, c, ocRP, code, redirectURI, ""))
		form = url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ts.Refresh}}
		won = mnRace(t, []*Server{a, b, c, a, b, c}, form)
		if len(won) > 1 {
			t.Fatalf("the same refresh token sent to every node at once was rotated %d times, want at most once", len(won))
		}
		for _, r := range won {
			ocWantOAuthError(t, ocRefresh(t, b, ocRP, r), http.StatusBadRequest, "invalid_grant")
		}
	})

	t.Run("brute-force counting is shared", func(t *testing.T) {
		// bob fails once per node and way, three in all (failure_factor: 3),
		// never three at one node.
		bb := NewBrowser(t)
		resp, _ := bb.Get(b.URL + "/authorize?" + AuthParams().Encode())
		f := ocLoginForm(t, b, bb, resp.Header.Get("Location"))
		resp, page := bb.Submit(f, "bob", "wrong-"+bobPass) // at B
		mnWantLoginRefused(t, resp, page, "Invalid username or password")
		f.Action = a.URL + "/broker/local/login"
		resp, page = bb.Submit(f, "bob", "wrong-"+bobPass) // at A
		mnWantLoginRefused(t, resp, page, "Invalid username or password")
		ans := mnPasswordGrant(t, c, "bob", "wrong-"+bobPass) // at C, password grant
		ocWantOAuthError(t, ans, http.StatusBadRequest, "invalid_grant")
		if strings.Contains(ans.str("error_description"), "Too many") {
			t.Fatalf("the third failure was already throttled: %s", ans.Raw)
		}

		// Now the right password is refused everywhere.
		for _, n := range []*Server{a, b} {
			f.Action = n.URL + "/broker/local/login"
			resp, page = bb.Submit(f, "bob", bobPass)
			mnWantLoginRefused(t, resp, page, "Too many failed sign-in attempts")
		}
		for _, n := range []*Server{a, b, c} {
			ans := mnPasswordGrant(t, n, "bob", bobPass)
			ocWantOAuthError(t, ans, http.StatusBadRequest, "invalid_grant")
			if !strings.Contains(ans.str("error_description"), "Too many failed sign-in attempts") {
				t.Fatalf("password grant at %s: %s, want the account locked", n.URL, ans.Raw)
			}
		}
		// alice is not affected.
		ocWantTokens(t, mnPasswordGrant(t, b, "alice", alicePass))
	})

	var second *Browser // alice in another browser, logged in while A died
	var secondTokens ocTokens
	t.Run("node A dies mid-way", func(t *testing.T) {
		// Tokens A issued just before it dies.
		params := AuthParams("prompt", "none")
		fromA := ocWantTokens(t, ocRedeem(t, a, ocRP, mnWantCode(t, issuer, ocSilent(t, a, browser, params), params), redirectURI, ""))
		sub := mnSub(t, fromA.ID)

		// A login A has started and shown the form of when it dies.
		second = NewBrowser(t)
		params2 := AuthParams()
		resp, _ := second.Get(a.URL + "/authorize?" + params2.Encode())
		f := ocLoginForm(t, a, second, resp.Header.Get("Location"))

		a.Kill(t)
		if _, err := http.Get(a.URL + "/jwks"); err == nil {
			t.Fatal("node A still answers after SIGKILL")
		}

		// The form, posted to B instead, completes the login; C redeems the code.
		f.Action = b.URL + "/broker/local/login"
		resp, _ = second.Submit(f, "alice", alicePass)
		code := mnWantCode(t, issuer, ocCallback(t, resp, redirectURI), params2)
		secondTokens = ocWantTokens(t, ocRedeem(t, c, ocRP, code, redirectURI, ""))
		mnVerifyIDToken(t, b, issuer, secondTokens.ID, params2.Get("nonce"))

		// The first browser's session, started at A, goes on at B.
		params = AuthParams("prompt", "none")
		ts := ocWantTokens(t, ocRedeem(t, b, ocRP, mnWantCode(t, issuer, ocSilent(t, b, browser, params), params), redirectURI, ""))
		if claims := mnVerifyIDToken(t, c, issuer, ts.ID, params.Get("nonce")); claims["sid"] != sid {
			t.Fatalf("after A died the session changed: sid %v, want %s", claims["sid"], sid)
		}

		// A's tokens keep working.
		mnVerifyIDToken(t, b, issuer, fromA.ID, "")
		ocWantUserinfo(t, b, fromA.Access, ocIDToken{IDToken: &oidc.IDToken{Subject: sub}})
		if !mnActive(t, c, fromA.Access) || !mnActive(t, c, fromA.Refresh) {
			t.Fatal("introspection at C: tokens A issued before it died are inactive")
		}
		rotated := ocWantTokens(t, ocRefresh(t, b, ocRP, fromA.Refresh))
		ocWantUserinfo(t, c, rotated.Access, ocIDToken{IDToken: &oidc.IDToken{Subject: sub}})
	})

	t.Run("logout at C ends the session at B", func(t *testing.T) {
		params := AuthParams("prompt", "none")
		ts := ocWantTokens(t, ocRedeem(t, b, ocRP, mnWantCode(t, issuer, ocSilent(t, b, browser, params), params), redirectURI, ""))
		q := url.Values{"id_token_hint": {ts.ID}, "post_logout_redirect_uri": {logoutURI}, "state": {"bye"}}
		resp, body := browser.Get(c.URL + "/logout?" + q.Encode())
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), logoutURI) {
			t.Fatalf("logout at C answered %d Location %q:\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		params = AuthParams("prompt", "none")
		got := ocSilent(t, b, browser, params)
		if got.Get("error") != "login_required" || got.Has("code") {
			t.Fatalf("prompt=none at B after logout at C: %v, want login_required", got)
		}
		ocWantUserinfoRefused(t, b, ts.Access)
		ocWantOAuthError(t, ocRefresh(t, b, ocRP, ts.Refresh), http.StatusBadRequest, "invalid_grant")
	})

	t.Run("keys rotate", func(t *testing.T) {
		if second == nil || secondTokens.Access == "" {
			t.Fatal("the node-death step left no login to rotate keys under")
		}
		out, err := c.CLI(t, "", "keys", "rotate")
		if err != nil {
			t.Fatalf("fedhub keys rotate: %v\n%s", err, out)
		}
		b.Restart(t)
		kids := mnKids(t, b)
		if len(kids) != 2 || !slices.Contains(kids, oldKid) {
			t.Fatalf("after keys rotate and a restart, B publishes %v, want the old key %s and a new one", kids, oldKid)
		}
		newKid := kids[0]
		if newKid == oldKid {
			newKid = kids[1]
		}
		// What the old key signed still verifies at the restarted node.
		if kid := ocJWTHeader(t, secondTokens.ID)["kid"]; kid != oldKid {
			t.Fatalf("token issued before the rotation has kid %v, want %s", kid, oldKid)
		}
		mnVerifyIDToken(t, b, issuer, secondTokens.ID, "")
		sub := mnSub(t, secondTokens.ID)
		ocWantUserinfo(t, b, secondTokens.Access, ocIDToken{IDToken: &oidc.IDToken{Subject: sub}})
		// What the restarted node signs now (with the new key, or the old one until the new is known everywhere) verifies at B.
		params := AuthParams("prompt", "none")
		ts := ocWantTokens(t, ocRedeem(t, b, ocRP, mnWantCode(t, issuer, ocSilent(t, b, second, params), params), redirectURI, ""))
		t.Logf("old key %s, new key %s; B now signs with %v", oldKid, newKid, ocJWTHeader(t, ts.ID)["kid"])
		mnVerifyIDToken(t, b, issuer, ts.ID, params.Get("nonce"))
		ocWantUserinfo(t, b, ts.Access, ocIDToken{IDToken: &oidc.IDToken{Subject: sub}})

		// Whatever B signs now must be good at C, which was not restarted
		// (nodes behind one load balancer), at once and not only after C's
		// next periodic reread of the key table: an RP verifies the ID token
		// with the JWKS the balancer fetched from C, and sends the access
		// token to C's userinfo. The JWKS comes first, before anything else
		// has made C look at its key table.
		t.Run("token signed by the restarted node is good at the other", func(t *testing.T) {
			kid := ocJWTHeader(t, ts.ID)["kid"]
			ctx := context.Background()
			v := oidc.NewVerifier(issuer, oidc.NewRemoteKeySet(ctx, c.URL+"/jwks"), &oidc.Config{ClientID: rpID})
			if _, err := v.Verify(ctx, ts.ID); err != nil {
				t.Errorf("an ID token B just signed (kid %v) does not verify with the keys C publishes (%v): %v", kid, mnKids(t, c), err)
			}
			if !mnActive(t, c, ts.Access) {
				t.Errorf("introspection at C: an access token B just signed (kid %v) is inactive", kid)
			}
			if status, h, _ := ocUserinfo(t, c, "get", ts.Access); status != http.StatusOK {
				t.Errorf("userinfo at C refuses an access token B just signed (kid %v): %d %s", kid, status, h.Get("WWW-Authenticate"))
			}
		})
	})
	// A died above, and B's restart ended with its subtest: B starts again,
	// the CLI revokes with C's configuration, and both running nodes follow.
	t.Run("keys rotate --revoke-previous reaches every node within a second", func(t *testing.T) {
		b.Restart(t)
		krRevokeAcrossNodes(t, c, []*Server{b, c})
	})
	t.Logf("whole test: %v", time.Since(start).Round(time.Millisecond))
}

// mnKids returns the key IDs a node publishes, sorted.
func mnKids(t testing.TB, s *Server) []string {
	t.Helper()
	var kids []string
	for _, k := range ocJWKS(t, s).Keys {
		kids = append(kids, k.KeyID)
	}
	slices.Sort(kids)
	return kids
}

// mnVerifyIDToken verifies an ID token as an RP would, against the keys one
// node publishes right now (a fresh key set: nothing cached), and its nonce
// unless nonce is "". It returns the claims.
func mnVerifyIDToken(t testing.TB, s *Server, issuer, raw, nonce string) map[string]any {
	t.Helper()
	ctx := context.Background()
	v := oidc.NewVerifier(issuer, oidc.NewRemoteKeySet(ctx, s.URL+"/jwks"), &oidc.Config{ClientID: rpID})
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("ID token (kid %v) does not verify with the keys of %s (%v): %v", ocJWTHeader(t, raw)["kid"], s.URL, mnKids(t, s), err)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if nonce != "" && tok.Nonce != nonce {
		t.Fatalf("ID token nonce %q, want %q", tok.Nonce, nonce)
	}
	return claims
}

// mnSub is an ID token's sub, unverified.
func mnSub(t testing.TB, idToken string) string {
	t.Helper()
	sub, _ := ocJWTPayload(t, idToken)["sub"].(string)
	if sub == "" {
		t.Fatal("ID token has no sub")
	}
	return sub
}

// mnWantCode checks a successful authorization response from any node: the
// iss parameter is the shared issuer URL, not the node's.
func mnWantCode(t testing.TB, issuer string, got, sent url.Values) string {
	t.Helper()
	if got.Has("error") || got.Get("code") == "" {
		t.Fatalf("authorization response %v, want a code", got)
	}
	if got.Get("state") != sent.Get("state") || got.Get("iss") != issuer {
		t.Fatalf("authorization response state %q iss %q, want %q and %q", got.Get("state"), got.Get("iss"), sent.Get("state"), issuer)
	}
	return got.Get("code")
}

// mnWantCookie fails unless the browser would send the named cookie to s.
func mnWantCookie(t testing.TB, b *Browser, s *Server, name string) {
	t.Helper()
	u, _ := url.Parse(s.URL)
	for _, ck := range b.Client.Jar.Cookies(u) {
		if ck.Name == name {
			return
		}
	}
	t.Fatalf("the cookie jar would not send %s to %s", name, s.URL)
}

// mnActive asks a node's introspection endpoint whether a token is active.
func mnActive(t testing.TB, s *Server, token string) bool {
	t.Helper()
	a := ocPost(t, s, "/introspect", &ocRP, url.Values{"token": {token}})
	if a.Status != http.StatusOK {
		t.Fatalf("introspection at %s answered %d: %s", s.URL, a.Status, a.Raw)
	}
	active, ok := a.Body["active"].(bool)
	if !ok {
		t.Fatalf("introspection at %s: no boolean active: %s", s.URL, a.Raw)
	}
	return active
}

// mnRevoke revokes a token of the rp client at a node.
func mnRevoke(t testing.TB, s *Server, token string) {
	t.Helper()
	if a := ocPost(t, s, "/revoke", &ocRP, url.Values{"token": {token}}); a.Status != http.StatusOK {
		t.Fatalf("revocation at %s answered %d: %s", s.URL, a.Status, a.Raw)
	}
}

// mnPasswordGrant asks a node for tokens with the password grant.
func mnPasswordGrant(t testing.TB, s *Server, username, password string) ocAnswer {
	t.Helper()
	return ocPost(t, s, "/token", &ocPW, url.Values{"grant_type": {"password"}, "username": {username},
		"password": {password}, "scope": {"openid"}})
}

// mnWantLoginRefused expects the login page again, with a message, and no way on.
func mnWantLoginRefused(t testing.TB, resp *http.Response, page, message string) {
	t.Helper()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != "" {
		t.Fatalf("login answered %d Location %q, want 401 and the form again", resp.StatusCode, resp.Header.Get("Location"))
	}
	if !strings.Contains(page, message) {
		t.Fatalf("login page does not say %q:\n%s", message, page)
	}
}

// mnRace posts the same token request (as the rp client) to every node in
// the list at once and returns the refresh tokens of the requests that succeeded.
func mnRace(t testing.TB, nodes []*Server, form url.Values) []string {
	t.Helper()
	reqs := make([]*http.Request, len(nodes))
	for i, n := range nodes {
		req, err := http.NewRequest(http.MethodPost, n.URL+"/token", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(rpID, rpSecret)
		reqs[i] = req
	}
	var (
		mu            sync.Mutex
		won, failures []string
		wg            sync.WaitGroup
	)
	gate := make(chan struct{})
	for _, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			refresh, failure := mnTokenRequest(req)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case failure != "":
				failures = append(failures, req.URL.Host+": "+failure)
			case refresh != "":
				won = append(won, refresh)
			}
		}()
	}
	close(gate)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("concurrent token requests failed otherwise than with invalid_grant:\n%s", strings.Join(failures, "\n"))
	}
	return won
}

// mnTokenRequest sends a token request and returns the refresh token it got,
// "" for an invalid_grant answer, or else a failure.
func mnTokenRequest(req *http.Request) (refresh, failure string) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err.Error()
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err.Error()
	}
	var ans struct {
		Error   string `json:"error"`
		Refresh string `json:"refresh_token"`
	}
	_ = json.Unmarshal(raw, &ans)
	switch {
	case resp.StatusCode == http.StatusOK && ans.Refresh != "":
		return ans.Refresh, ""
	case resp.StatusCode == http.StatusBadRequest && ans.Error == "invalid_grant":
		return "", ""
	}
	return "", resp.Status + " " + string(raw)
}

// TestNodesStartTogether: nodes that start at the same moment on an empty
// PostgreSQL database take turns — every start succeeds, with one set of
// tables, one copy of each bootstrap user and exactly one signing key.
func TestNodesStartTogether(t *testing.T) {
	needsBinary(t)
	for round := range 4 {
		dsn := peers.Postgres(t)
		dir := t.TempDir()
		cfg := filepath.Join(dir, "fedhub.yaml")
		body := fmt.Sprintf(strings.Replace(mnConfig, "MN_ISSUER", "http://127.0.0.1:8080", 1), "", "127.0.0.1:8080", "")
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		env := append(os.Environ(), "FEDHUB_MN_DSN="+dsn, "RP_SECRET="+rpSecret, "RP2_SECRET="+rp2Secret,
			"PW_SECRET="+pwSecret, "ALICE_PASSWORD="+alicePass, "BOB_PASSWORD="+bobPass)
		errs := make(chan error, 3)
		for range 3 {
			go func() {
				cmd := exec.Command(binary, "migrate", "-c", cfg)
				cmd.Env = env
				out, err := cmd.CombinedOutput()
				if err != nil {
					err = fmt.Errorf("%w: %s", err, out)
				}
				errs <- err
			}()
		}
		for range 3 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: a node failed to start: %v", round, err)
			}
		}
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		var keys, alices int
		if err := db.QueryRow("SELECT COUNT(*) FROM signing_keys").Scan(&keys); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow("SELECT COUNT(*) FROM users WHERE username_key = 'alice'").Scan(&alices); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if keys != 1 || alices != 1 {
			t.Fatalf("round %d: %d signing keys and %d alices, want one of each", round, keys, alices)
		}
	}
}
