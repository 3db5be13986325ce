package oidc_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	fedoidc "github.com/fedhub/fedhub/brokers/oidc"
	"github.com/fedhub/fedhub/login"
)

// upstreamState is what the connector keeps of a login (Identity.Upstream).
type upstreamState struct {
	RefreshToken string `json:"refresh_token"`
	AccessToken  string `json:"access_token"`
}

func stateOf(t *testing.T, b []byte) upstreamState {
	t.Helper()
	var s upstreamState
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("upstream state %q: %v", b, err)
	}
	return s
}

// signIn logs in at the upstream through c and returns the identity.
func signIn(t *testing.T, c *fedoidc.Connector, up *upstream) login.Identity {
	t.Helper()
	flow, authURL := begin(t, c)
	id, err := finish(t, c, flow, upstreamLogin(t, authURL, up.username, password))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// revoke revokes a token at the upstream (RFC 7009), as its administrator or
// the person signing out there would end it.
func revoke(t *testing.T, up *upstream, token string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, up.issuer+"/revoke", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(clientSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke at the upstream: %d", resp.StatusCode)
	}
}

// TestRefreshWithRefreshToken: with offline_access the upstream gives a
// refresh token, which each re-check refreshes and keeps rotated; one the
// upstream rotated away or revoked is its no.
func TestRefreshWithRefreshToken(t *testing.T) {
	up := startUpstream(t, nil, upstreamOpts{claimsInIDToken: true})
	c := newConnector(t, fedoidc.Config{Issuer: up.issuer, Scopes: []string{"offline_access"}})
	id := signIn(t, c, up)
	first := stateOf(t, id.Upstream)
	if first.RefreshToken == "" || first.AccessToken == "" {
		t.Fatalf("the login kept %+v, want the upstream's refresh and access tokens", first)
	}
	authAt := time.Now().Add(-48 * time.Hour) // long ago: with a refresh token, age does not matter
	res, err := c.Refresh(t.Context(), id, authAt)
	if err != nil {
		t.Fatalf("first re-check: %v", err)
	}
	second := stateOf(t, res.Upstream)
	if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Fatalf("after the re-check the refresh token is %q, want the upstream's rotated one", second.RefreshToken)
	}
	id.Upstream = res.Upstream
	if res, err = c.Refresh(t.Context(), id, authAt); err != nil {
		t.Fatalf("second re-check with the rotated token: %v", err)
	}
	stale := id
	stale.Upstream, _ = json.Marshal(first)
	if _, err := c.Refresh(t.Context(), stale, authAt); !errors.Is(err, login.ErrUpstreamRefused) {
		t.Fatalf("re-check with a refresh token the upstream rotated away: %v, want refused", err)
	}
	revoke(t, up, stateOf(t, res.Upstream).RefreshToken)
	id.Upstream = res.Upstream
	if _, err := c.Refresh(t.Context(), id, authAt); !errors.Is(err, login.ErrUpstreamRefused) {
		t.Fatalf("re-check after the upstream revoked the refresh token: %v, want refused", err)
	}
}

// TestRefreshWithoutRefreshToken: without a refresh token, userinfo with the
// access token while it lives, then max_age_without_upstream from the login.
func TestRefreshWithoutRefreshToken(t *testing.T) {
	up := startUpstream(t, nil, upstreamOpts{claimsInIDToken: true})
	now := time.Now()
	c := newConnector(t, fedoidc.Config{Issuer: up.issuer, MaxAgeWithoutUpstream: time.Hour, Now: func() time.Time { return now }})
	id := signIn(t, c, up)
	s := stateOf(t, id.Upstream)
	if s.RefreshToken != "" || s.AccessToken == "" {
		t.Fatalf("the login kept %+v, want an access token only", s)
	}
	if _, err := c.Refresh(t.Context(), id, now.Add(-2*time.Hour)); err != nil {
		t.Fatalf("re-check by userinfo (the login's age does not matter while it works): %v", err)
	}
	revoke(t, up, s.AccessToken)
	if _, err := c.Refresh(t.Context(), id, now); !errors.Is(err, login.ErrUpstreamRefused) {
		t.Fatalf("re-check after the upstream revoked the access token: %v, want refused", err)
	}

	expired := id
	expired.Upstream, _ = json.Marshal(map[string]any{"access_token": s.AccessToken, "expiry": now.Add(-time.Minute)})
	for _, c2 := range []struct {
		age  time.Duration
		want error
	}{{59 * time.Minute, nil}, {61 * time.Minute, login.ErrUpstreamRefused}} {
		_, err := c.Refresh(t.Context(), expired, now.Add(-c2.age))
		if !errors.Is(err, c2.want) || (c2.want == nil && err != nil) {
			t.Errorf("access token expired, login %s old: %v, want %v", c2.age, err, c2.want)
		}
	}
}

// TestRefreshUpstreamDown: an upstream that cannot be reached is not a no.
func TestRefreshUpstreamDown(t *testing.T) {
	c := newConnector(t, fedoidc.Config{Issuer: "http://127.0.0.1:1", HTTPClient: &http.Client{Timeout: 2 * time.Second}})
	id := login.Identity{Connector: "corp", Subject: "http://127.0.0.1:1|id1"}
	id.Upstream, _ = json.Marshal(upstreamState{RefreshToken: "a-refresh-token"})
	_, err := c.Refresh(t.Context(), id, time.Now())
	if err == nil || errors.Is(err, login.ErrUpstreamRefused) {
		t.Fatalf("re-check with the upstream unreachable: %v, want an error that is not a no", err)
	}
}
