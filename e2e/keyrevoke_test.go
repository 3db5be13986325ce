package e2e

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// krWithin is how soon a revocation by the CLI must reach a running node.
const krWithin = time.Second

// TestEmergencyKeyRotation: after `fedhub keys rotate --revoke-previous` (run
// as its own process, like an operator would, while the server runs), a token
// signed by the old key is refused within a second by /userinfo, by the admin
// API and by an independent RP (go-oidc) that fetches the JWKS again; the
// refresh token keeps working and gets tokens of the new key.
func TestEmergencyKeyRotation(t *testing.T) {
	s := Start(t, WithConfig(aaConfig("", "", "")), aaEnv())
	ctx := context.Background()

	rp := newGoRP(t, s, rpID, rpSecret)
	oldTok, _, _ := rp.login(t, NewBrowser(t), "alice", alicePass)
	oldID, _ := oldTok.Extra("id_token").(string)
	oldKid, _ := ocJWTHeader(t, oldID)["kid"].(string)
	admin := aaClientCredentials(t, s, aaAutomation, aaAdminScope)
	if a := aaCall(t, s, "GET", "/users", admin.Access, ""); a.Status != http.StatusOK {
		t.Fatalf("the admin API before the rotation answered %d: %s", a.Status, a.Raw)
	}
	if status, _, _ := ocUserinfo(t, s, "get", oldTok.AccessToken); status != http.StatusOK {
		t.Fatalf("userinfo before the rotation answered %d", status)
	}
	// An independent RP that verifies ID tokens itself, with a cached JWKS.
	other := oidc.NewVerifier(s.URL, oidc.NewRemoteKeySet(ctx, s.URL+"/jwks"), &oidc.Config{ClientID: rpID})
	if _, err := other.Verify(ctx, oldID); err != nil {
		t.Fatalf("the RP does not verify the ID token before the rotation: %v", err)
	}

	out, err := s.CLI(t, "", "keys", "rotate", "--revoke-previous")
	if err != nil {
		t.Fatalf("keys rotate --revoke-previous = %v:\n%s", err, out)
	}
	revoked := time.Now()
	for _, says := range []string{"every previous key is revoked", "access token and ID token signed by a previous key is refused",
		"refresh tokens keep working", "fetch the JWKS again"} {
		if !strings.Contains(out, says) {
			t.Errorf("keys rotate --revoke-previous does not say %q:\n%s", says, out)
		}
	}

	krEventually(t, revoked, "userinfo refuses the old key's access token", func() bool {
		status, _, _ := ocUserinfo(t, s, "get", oldTok.AccessToken)
		return status == http.StatusUnauthorized
	})
	ocWantUserinfoRefused(t, s, oldTok.AccessToken)
	krEventually(t, revoked, "the admin API refuses the old key's token", func() bool {
		return aaCall(t, s, "GET", "/users", admin.Access, "").Status == http.StatusUnauthorized
	})
	if mnActive(t, s, oldTok.AccessToken) {
		t.Error("introspection says the old key's access token is active")
	}
	if kids := mnKids(t, s); len(kids) != 1 || kids[0] == oldKid {
		t.Errorf("the JWKS publishes %v, want only the new key (not %s)", kids, oldKid)
	}

	// The refresh token still works; what it gets is signed by the new key.
	fresh := ocWantTokens(t, ocRefresh(t, s, ocRP, oldTok.RefreshToken))
	newKid := ocJWTHeader(t, fresh.ID)["kid"]
	if newKid == oldKid || ocJWTHeader(t, fresh.Access)["kid"] != newKid {
		t.Fatalf("after the refresh: ID token kid %v, access token kid %v; want the new key, not %s",
			newKid, ocJWTHeader(t, fresh.Access)["kid"], oldKid)
	}
	if status, _, _ := ocUserinfo(t, s, "get", fresh.Access); status != http.StatusOK {
		t.Errorf("userinfo refuses the new key's access token: %d", status)
	}
	// The RP meets the new key ID, fetches the JWKS again, and from then on
	// refuses what the old key signed.
	if _, err := other.Verify(ctx, fresh.ID); err != nil {
		t.Fatalf("the RP does not verify an ID token of the new key: %v", err)
	}
	if _, err := other.Verify(ctx, oldID); err == nil {
		t.Error("the RP still verifies the old key's ID token after fetching the JWKS again")
	}
	admin = aaClientCredentials(t, s, aaAutomation, aaAdminScope)
	if a := aaCall(t, s, "GET", "/users", admin.Access, ""); a.Status != http.StatusOK {
		t.Errorf("the admin API refuses a token of the new key: %d %s", a.Status, a.Raw)
	}
}

// krEventually polls cond until it holds, failing when that takes longer than
// krWithin after since.
func krEventually(t *testing.T, since time.Time, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if time.Since(since) > krWithin {
			t.Fatalf("%s only after more than %v", what, krWithin)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%s %v after the rotation", what, time.Since(since).Round(time.Millisecond))
}

// krRevokeAcrossNodes is the multi-node part: the CLI revokes through one
// node's configuration; every node refuses the old key's tokens and stops
// publishing it within krWithin, and signs with the new key.
func krRevokeAcrossNodes(t *testing.T, cli *Server, nodes []*Server) {
	old := seClientToken(t, nodes[0])
	oldKid := ocJWTHeader(t, old)["kid"]
	for _, n := range nodes {
		if !mnActive(t, n, old) {
			t.Fatalf("before the revocation %s says the token is inactive", n.URL)
		}
	}
	if out, err := cli.CLI(t, "", "keys", "rotate", "--revoke-previous"); err != nil {
		t.Fatalf("keys rotate --revoke-previous = %v:\n%s", err, out)
	}
	revoked := time.Now()
	for _, n := range nodes {
		krEventually(t, revoked, n.URL+" refuses the old key's token", func() bool { return !mnActive(t, n, old) })
	}
	for _, n := range nodes {
		if kids := mnKids(t, n); slices.Contains(kids, oldKid.(string)) {
			t.Errorf("%s still publishes the revoked key %v: %v", n.URL, oldKid, kids)
		}
		tok := seClientToken(t, n)
		if kid := ocJWTHeader(t, tok)["kid"]; kid == oldKid {
			t.Errorf("%s still signs with the revoked key %v", n.URL, oldKid)
		}
		for _, m := range nodes {
			if !mnActive(t, m, tok) {
				t.Errorf("a token %s signed after the revocation is inactive at %s", n.URL, m.URL)
			}
		}
	}
}
