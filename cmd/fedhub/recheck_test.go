package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
)

// After the login, in the lane (issue 8): the re-checks with the upstream on
// refresh and SSO reuse, and the revocations that end what came through an
// identity. The lane's connectors re-check at every use (interval 0).

// refresh uses a refresh token of the lane app: the status, the error code
// and, on success, the new tokens.
func (l *laneServer) refresh(t *testing.T, refreshToken string) (int, string, laneTokens) {
	t.Helper()
	var answer struct {
		laneTokens
		Error string `json:"error"`
	}
	status := l.token(t, laneClientID, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}, &answer)
	return status, answer.Error, answer.laneTokens
}

// userinfo is the status of /userinfo for an access token.
func (l *laneServer) userinfo(t *testing.T, accessToken string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, l.url+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// ssoGivesCode says whether the browser's SSO session still signs it in to
// the application without the login page, and to its account page.
func (b *laneBrowser) ssoGivesCode() bool {
	b.t.Helper()
	_, p := b.request()
	app := p.status == http.StatusSeeOther && strings.HasPrefix(p.location, laneRedirectURI+"?") &&
		mustURL(b.t, p.location).Query().Get("code") != ""
	account := b.get("/account")
	if signedIn := account.status == http.StatusOK && account.url.Path == "/account"; signedIn != app {
		b.t.Fatalf("the SSO session gives the application a code: %v, but the account page: %v (%d at %s)", app, signedIn, account.status, account.url)
	}
	return app
}

// signedIn is what an application holds after a sign-in, and the browser.
type signedIn struct {
	browser *laneBrowser
	tokens  laneTokens
}

func (l *laneServer) signInAs(t *testing.T, kind string, who login.Identity) signedIn {
	t.Helper()
	b := l.browser(t)
	rp, p := b.signIn(l, kind, who)
	return signedIn{browser: b, tokens: l.redeem(t, p, rp)}
}

// live fails t unless s's refresh token, access token and SSO session all
// work (want true) or all fail (want false); s keeps the new tokens. The
// access token is tried first: userinfo asks no upstream, so an access token
// refused there was ended when its identity's right to sign in ended.
func (l *laneServer) live(t *testing.T, s *signedIn, want bool) {
	t.Helper()
	if !want {
		if got := l.userinfo(t, s.tokens.AccessToken); got != http.StatusUnauthorized {
			t.Fatalf("userinfo with the access token: %d, want 401", got)
		}
	}
	status, code, tok := l.refresh(t, s.tokens.RefreshToken)
	if want {
		if status != http.StatusOK || l.userinfo(t, tok.AccessToken) != http.StatusOK || !s.browser.ssoGivesCode() {
			t.Fatalf("refresh %d %s, userinfo or the SSO session refused: want it all to work", status, code)
		}
		s.tokens = tok
		return
	}
	if status != http.StatusBadRequest || code != "invalid_grant" {
		t.Fatalf("refresh: %d %s, want 400 invalid_grant", status, code)
	}
	if s.browser.ssoGivesCode() {
		t.Fatal("the SSO session still gives the application a code")
	}
}

func TestLaneRecheck(t *testing.T) {
	refused := fmt.Errorf("%w: the directory account is disabled", login.ErrUpstreamRefused)
	for _, kind := range laneKinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			l := startLane(t, lanePolicy("create", "none", confirm, false), mfaOff)
			l.upstreamKnows(newcomer)
			upstream := l.upstreamOf(kind)
			s := l.signInAs(t, kind, newcomer)
			l.live(t, &s, true)
			asked := upstream.Asked()
			if len(asked) == 0 || asked[0].Identity.Subject != newcomer.Subject {
				t.Fatalf("the upstream was asked %+v, want newcomer's identity", asked)
			}
			if kind == "redirect" && string(asked[0].Identity.Upstream) != "session:newcomer" {
				t.Fatalf("the connector got back %q, want the state of its login", asked[0].Identity.Upstream)
			}

			t.Log("the upstream cannot answer: nothing is issued, and nothing is spent")
			upstream.Answer(newcomer.Subject, errors.New("dial tcp: connection refused"))
			if status, code, _ := l.refresh(t, s.tokens.RefreshToken); status != http.StatusServiceUnavailable || code != "temporarily_unavailable" {
				t.Fatalf("refresh with the upstream down: %d %s, want 503 temporarily_unavailable", status, code)
			}
			upstream.Answer(newcomer.Subject, nil)
			l.live(t, &s, true)

			t.Log("the upstream says no: everything that came through the identity ends, and the audit log says why")
			other := l.signInAs(t, kind, newcomer) // a second browser and grant
			upstream.Answer(newcomer.Subject, refused)
			if status, code, _ := l.refresh(t, s.tokens.RefreshToken); status != http.StatusBadRequest || code != "invalid_grant" {
				t.Fatalf("refresh after the upstream's no: %d %s, want 400 invalid_grant", status, code)
			}
			l.live(t, &s, false)
			if status, _, _ := l.refresh(t, other.tokens.RefreshToken); status != http.StatusBadRequest {
				t.Fatalf("the other grant's refresh: %d, want it ended too", status)
			}
			var events []audit.Event
			l.app.db.Where("type = ?", audit.UpstreamRefused).Find(&events)
			if len(events) != 1 || events[0].UserID != l.linkedUser(connectorOf(kind), newcomer.Subject) ||
				!strings.Contains(events[0].Detail, "disabled") {
				t.Fatalf("audit events %+v, want one saying the account is disabled", events)
			}

			t.Log("back at the upstream: they sign in again")
			upstream.Answer(newcomer.Subject, nil)
			again := l.signInAs(t, kind, newcomer)
			l.live(t, &again, true)
		})
	}
}

// TestLaneRevocationBites: unlink, move, merge and disable end the sessions
// and grants that came through the affected identity at once, and only
// those: newcomer signs in through corp-sso in one browser and through
// corp-dir (another identity of the same user) in another.
func TestLaneRevocationBites(t *testing.T) {
	ctx := context.Background()
	dirIdentity := login.Identity{Subject: "dir-7", Username: "newcomer-dir", Email: newcomer.Email}
	cases := []struct {
		name        string
		do          func(l *laneServer, userID string, ssoLink uint, other string) error
		dirSurvives bool
	}{
		{"unlink", func(l *laneServer, userID string, ssoLink uint, _ string) error {
			return l.app.users.Unlink(ctx, userID, ssoLink, nil, false)
		}, true},
		{"move", func(l *laneServer, _ string, ssoLink uint, other string) error {
			return l.app.users.MoveLink(ctx, ssoLink, other, nil, nil, false)
		}, true},
		{"disable", func(l *laneServer, userID string, _ uint, _ string) error {
			return l.app.users.SetDisabledByID(ctx, userID, true)
		}, false},
		{"merge into another user", func(l *laneServer, userID string, _ uint, other string) error {
			return l.app.users.Merge(ctx, other, userID, nil)
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l := startLane(t, lanePolicy("create", "none", confirm, false), mfaOff)
			l.upstreamKnows(newcomer)
			l.dir.Set(dirIdentity.Username, laneUpstreamPw, dirIdentity)
			sso := l.signInAs(t, "redirect", newcomer)
			userID := l.linkedUser(laneSSO, newcomer.Subject)
			if err := l.app.users.AdminLink(ctx, userID, linking.Upstream{Connector: laneDir, Subject: dirIdentity.Subject}); err != nil {
				t.Fatal(err)
			}
			dir := l.signInAs(t, "password", dirIdentity)
			other := l.createLocal(t, "someone", "someone@example.com", true)
			link, err := l.app.users.LinkOf(ctx, laneSSO, newcomer.Subject)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.do(l, userID, link.ID, other.ID); err != nil {
				t.Fatal(err)
			}
			l.live(t, &sso, false)
			l.live(t, &dir, c.dirSurvives)
		})
	}
}

// TestLaneUpstreamStateSealed: with secrets.key, what a connector keeps of
// its upstream session (an OIDC refresh token, here the fake's state) is
// sealed in the database, and opened for the re-check.
func TestLaneUpstreamStateSealed(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdefghijklmnopqrstuv"))
	l := startLane(t, lanePolicy("create", "none", confirm, false), mfaOff, func(c *config.Config) { c.Secrets.Key = key })
	l.upstreamKnows(newcomer)
	s := l.signInAs(t, "redirect", newcomer)
	link, err := l.app.users.LinkOf(context.Background(), laneSSO, newcomer.Subject)
	if err != nil {
		t.Fatal(err)
	}
	if len(link.Upstream) == 0 || strings.Contains(string(link.Upstream), "session:") {
		t.Fatalf("the link keeps %q, want the upstream state sealed", link.Upstream)
	}
	l.live(t, &s, true)
	if asked := l.sso.Asked(); len(asked) == 0 || string(asked[0].Identity.Upstream) != "session:newcomer" {
		t.Fatalf("the connector got %+v, want its state opened", asked)
	}
}
