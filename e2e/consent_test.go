package e2e

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/fedhub/fedhub/e2e/peers"
)

// csPartner is a third-party application: people are asked before it gets a code.
const (
	csPartnerSecret = "partner-secret-0123456789abcdef"
	csPartner       = `  - id: partner
    name: Partner Analytics
    secret: ${PARTNER_SECRET}
    third_party: true
    redirect_uris: [http://127.0.0.1/loopback, http://127.0.0.1:5555/callback]
    grant_types: [authorization_code, refresh_token]
`
)

// csAnswer answers the consent page a browser was sent to (its query q) and
// returns what the application receives.
func csAnswer(t *testing.T, s *Server, b *Browser, q url.Values, answer string) url.Values {
	t.Helper()
	resp, page := b.Get(s.URL + "/consent?" + q.Encode())
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("consent page answered %d:\n%s", resp.StatusCode, page)
	}
	resp, _ = b.PostForm(s.URL+"/consent", url.Values{"csrf": {m[1]}, "c": {q.Get("c")}, "answer": {answer}})
	u, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil || !strings.HasPrefix(u.String(), redirectURI) {
		t.Fatalf("answering the consent page gave %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return u.Query()
}

// csPartnerAsks waits until Chromium shows the consent page of partner asking
// for the email address.
func csPartnerAsks(t *testing.T, ctx context.Context, s *Server) {
	t.Helper()
	mbAt(t, ctx, s.URL+"/consent?", "#allow")
	if got := textOf(t, ctx, "main"); !strings.Contains(got, "Partner Analytics") || !strings.Contains(got, "See your email address") {
		t.Fatalf("the consent page does not say who asks for what:\n%s", got)
	}
}

// TestConsent: a third-party application gets a code only after the person
// allows it, once (remembered, asked again with prompt=consent); a refusal is
// access_denied; first-party applications never ask; revoking at /account
// ends the application's grants, and it asks again.
func TestConsent(t *testing.T) {
	t.Parallel()
	s := Start(t, WithConfig(strings.Replace(defaultConfig, "clients:\n", "clients:\n"+csPartner, 1)),
		WithEnv("PARTNER_SECRET="+csPartnerSecret))
	partner := ocClient{id: "partner", secret: csPartnerSecret}
	params := func(extra ...string) url.Values {
		return AuthParams(append([]string{"client_id", "partner", "scope", "openid email offline_access"}, extra...)...)
	}

	// In Chromium: asked once, with the scopes in words, then remembered.
	ctx := peers.Chromium(t)
	app := startRPFor(t, s, "partner", csPartnerSecret)
	nav := mbWatch(t, ctx)
	mbGo(t, ctx, app.URL+"/start")
	mbSignIn(t, ctx, s.URL+"/login?", "alice", alicePass)
	csPartnerAsks(t, ctx, s)
	screenshot(t, ctx, "consent")
	mbClick(t, ctx, "#allow")
	mbRPSignedIn(t, ctx, app, "Signed in as alice via local", "1")
	mark := nav.Mark()
	mbGo(t, ctx, app.URL+"/start")
	mbRPSignedIn(t, ctx, app, "Signed in as alice via local", "1")
	if at := nav.mbVisited(mark, s.URL+"/consent"); at != "" {
		t.Fatalf("asked again after allowing: %s", at)
	}
	mark = nav.Mark()
	first := startRP(t, s)
	mbGo(t, ctx, first.URL+"/start")
	mbRPSignedIn(t, ctx, first, "Signed in as alice via local", "1")
	if at := nav.mbVisited(mark, s.URL+"/consent"); at != "" {
		t.Fatalf("a first-party application asked for consent: %s", at)
	}

	// More scopes (offline_access) ask again; then remembered; asked again
	// with prompt=consent.
	b := NewBrowser(t)
	p := params()
	more := b.Authorize(s, p, "alice", alicePass)
	if more.Get("c") == "" {
		t.Fatalf("asking for more scopes did not ask again: %v", more)
	}
	tok := ocWantTokens(t, ocRedeem(t, s, partner, ocWantCode(t, s, csAnswer(t, s, b, more, "allow"), p), redirectURI, ""))
	if got := b.Authorize(s, params(), "", ""); got.Get("code") == "" {
		t.Fatalf("the same scopes again: %v, want a code at once", got)
	}
	again := b.Authorize(s, params("prompt", "consent"), "", "")
	if again.Get("c") == "" {
		t.Fatalf("prompt=consent did not ask: %v", again)
	}
	if got := csAnswer(t, s, b, again, "deny"); got.Get("error") != "access_denied" {
		t.Fatalf("after refusing, the application got %v, want access_denied", got)
	}
	if got := b.Authorize(s, params("prompt", "none"), "", ""); got.Get("code") == "" {
		t.Fatalf("prompt=none after consent: %v, want a code (refusing once does not forget the consent)", got)
	}

	// Someone who never allowed it: prompt=none is consent_required; a refusal access_denied.
	bob := NewBrowser(t)
	q := bob.Authorize(s, params(), "bob", bobPass)
	if got := bob.Authorize(s, params("prompt", "none"), "", ""); got.Get("error") != "consent_required" {
		t.Fatalf("prompt=none without consent: %v, want consent_required", got)
	}
	if got := csAnswer(t, s, bob, q, "deny"); got.Get("error") != "access_denied" {
		t.Fatalf("bob refused, the application got %v", got)
	}

	// Revoked at /account: the grant ends, and the next sign-in asks again.
	mbGo(t, ctx, s.URL+"/account")
	mbAt(t, ctx, s.URL+"/account", "#revoke-partner")
	screenshot(t, ctx, "account-consents")
	mbClick(t, ctx, "#revoke-partner")
	mbAt(t, ctx, s.URL+"/account?status=consent_revoked", "#links")
	if n := mbCount(t, ctx, "#consents"); n != 0 {
		t.Fatal("the revoked application is still listed")
	}
	ocWantOAuthError(t, ocRefresh(t, s, partner, tok.Refresh), http.StatusBadRequest, "invalid_grant")
	if got := b.Authorize(s, params(), "", ""); got.Get("c") == "" {
		t.Fatalf("after revoking, signing in to the application did not ask again: %v", got)
	}
}
