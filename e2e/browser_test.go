package e2e

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/fedhub/fedhub/e2e/peers"
)

// testRP is a relying party built on go-oidc and x/oauth2, served on a
// loopback port: the application a person signs in to in browser tests.
type testRP struct {
	URL       string
	mu        sync.Mutex
	states    map[string]string // state → nonce
	callbacks int               // answers received at /loopback, good or bad
}

// Callbacks is how many times a browser came back to the RP's redirect URI.
func (rp *testRP) Callbacks() int {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return rp.callbacks
}

// startRP serves /start (sends the browser to fedhub) and /loopback (the
// redirect URI registered for client rp; only the port varies on loopback).
func startRP(t *testing.T, s *Server, extra ...oauth2.AuthCodeOption) *testRP {
	t.Helper()
	return startRPFor(t, s, rpID, rpSecret, extra...)
}

// startRPFor is startRP for another client, which must have
// http://127.0.0.1/loopback among its redirect URIs. /start passes its own
// prompt, max_age and acr_values parameters on to the authorization request.
// The signed-in page shows the ID token's preferred_username and idp (#who),
// groups, acr, amr (space-separated) and auth_time (Unix seconds).
func startRPFor(t *testing.T, s *Server, clientID, secret string, extra ...oauth2.AuthCodeOption) *testRP {
	t.Helper()
	provider, err := oidc.NewProvider(context.Background(), s.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := &testRP{states: map[string]string{}}
	var conf oauth2.Config
	mux := http.NewServeMux()
	mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) {
		state, nonce := "st-"+randomSuffix(), "no-"+randomSuffix()
		rp.mu.Lock()
		rp.states[state] = nonce
		rp.mu.Unlock()
		opts := append([]oauth2.AuthCodeOption{oidc.Nonce(nonce)}, extra...)
		for _, p := range []string{"prompt", "max_age", "acr_values"} {
			if v := r.URL.Query().Get(p); v != "" {
				opts = append(opts, oauth2.SetAuthURLParam(p, v))
			}
		}
		http.Redirect(w, r, conf.AuthCodeURL(state, opts...), http.StatusFound)
	})
	mux.HandleFunc("/loopback", func(w http.ResponseWriter, r *http.Request) {
		rp.mu.Lock()
		rp.callbacks++
		nonce, ok := rp.states[r.URL.Query().Get("state")]
		rp.mu.Unlock()
		if !ok {
			http.Error(w, "unknown state", http.StatusBadRequest)
			return
		}
		tok, err := conf.Exchange(r.Context(), r.URL.Query().Get("code"))
		if err != nil {
			http.Error(w, "exchange: "+err.Error(), http.StatusBadGateway)
			return
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := provider.Verifier(&oidc.Config{ClientID: clientID}).Verify(r.Context(), raw)
		if err != nil || idt.Nonce != nonce {
			http.Error(w, "bad ID token", http.StatusBadGateway)
			return
		}
		var claims struct {
			Username string   `json:"preferred_username"`
			IDP      string   `json:"idp"`
			Groups   []string `json:"groups"`
			ACR      string   `json:"acr"`
			AMR      []string `json:"amr"`
			AuthTime int64    `json:"auth_time"`
		}
		_ = idt.Claims(&claims)
		fmt.Fprintf(w, `<!doctype html><title>RP</title><p id="who">Signed in as %s via %s</p><p id="groups">%s</p>`+
			`<p id="acr">%s</p><p id="amr">%s</p><p id="auth-time">%d</p>`,
			html.EscapeString(claims.Username), html.EscapeString(claims.IDP), html.EscapeString(strings.Join(claims.Groups, ",")),
			html.EscapeString(claims.ACR), html.EscapeString(strings.Join(claims.AMR, " ")), claims.AuthTime)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	rp.URL = srv.URL
	conf = oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: provider.Endpoint(),
		RedirectURL: srv.URL + "/loopback", Scopes: []string{oidc.ScopeOpenID, "profile", "email"}}
	return rp
}

// screenshot saves the page to $FEDHUB_ARTIFACTS (default: artifacts/ at the
// repository root) as NAME.png: what a person saw, kept for review.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("FEDHUB_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "artifacts")
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// textOf waits for an element and returns its text.
func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("waiting for %s at %s: %v\n%s", sel, loc, err, body)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// TestBrowserLocalLogin: a person in a real browser signs in to an application
// with a local account; the page refuses a wrong password first.
func TestBrowserLocalLogin(t *testing.T) {
	s := Start(t)
	rp := startRP(t, s)
	ctx := peers.Chromium(t)

	if err := chromedp.Do(ctx, chromedp.Navigate(rp.URL+"/start")); err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, ctx, "h1"); got != "Sign in" {
		t.Fatalf("login page heading = %q", got)
	}
	screenshot(t, ctx, "login-page")
	err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), "wrong-password"),
		chromedp.Click(chromedp.CSS("#sign-in")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, ctx, ".error"); got != "Invalid username or password." {
		t.Fatalf("error message = %q", got)
	}
	screenshot(t, ctx, "login-wrong-password")
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#password"), alicePass),
		chromedp.Click(chromedp.CSS("#sign-in")),
	)
	if err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, ctx, "#who"); got != "Signed in as alice via local" {
		t.Fatalf("RP page says %q", got)
	}
}
