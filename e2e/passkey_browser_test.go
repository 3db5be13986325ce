package e2e

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/fedhub/fedhub/e2e/peers"
)

// passkeyConfig is the default configuration with passwordless passkeys.
const passkeyConfig = defaultConfig + `
passkeys:
  passwordless: true
`

// passkeyBrowser is Chromium with a virtual authenticator (a platform
// passkey provider that verifies the person), as the DevTools WebAuthn
// domain offers it.
func passkeyBrowser(t *testing.T) context.Context {
	t.Helper()
	ctx := peers.Chromium(t)
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	_, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{Protocol: webauthn.AuthenticatorProtocolCtap2,
			Ctap2version: webauthn.Ctap2versionCtap21, Transport: webauthn.AuthenticatorTransportInternal,
			HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true}})
	if err != nil {
		t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}
	return ctx
}

// at waits until the browser's address starts with prefix and returns it.
func at(t *testing.T, ctx context.Context, prefix string) *url.URL {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var loc string
	for time.Now().Before(deadline) {
		loc, _ = chromedp.Run(ctx, chromedp.Location())
		if strings.HasPrefix(loc, prefix) {
			u, err := url.Parse(loc)
			if err != nil {
				t.Fatal(err)
			}
			return u
		}
		time.Sleep(100 * time.Millisecond)
	}
	body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	t.Fatalf("the browser is at %s, want %s…\n%s", loc, prefix, body)
	return nil
}

func do(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("at %s: %v", loc, err)
	}
}

// A person registers a passkey in Chromium's virtual authenticator from
// /account, then signs in with it as a second factor and without a
// password; the ID tokens say what was used.
func TestBrowserPasskeys(t *testing.T) {
	addr := freeAddr(t)
	// WebAuthn needs a domain as its RP ID: localhost is one (and a secure context over http).
	s := Start(t, WithAddr("localhost:"+addr[strings.LastIndex(addr, ":")+1:]), WithConfig(passkeyConfig))
	ctx := passkeyBrowser(t)

	// Sign in, then add a passkey (signing in again on the way).
	do(t, ctx, chromedp.Navigate(s.URL+"/account"))
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#username"), "alice"), chromedp.SendKeys(chromedp.CSS("#password"), alicePass),
		chromedp.Click(chromedp.CSS("#sign-in")))
	at(t, ctx, s.URL+"/account")
	do(t, ctx, chromedp.Click(chromedp.CSS("#add-totp")))
	at(t, ctx, s.URL+"/login?req=")
	do(t, ctx, chromedp.SendKeys(chromedp.CSS("#username"), "alice"), chromedp.SendKeys(chromedp.CSS("#password"), alicePass),
		chromedp.Click(chromedp.CSS("#sign-in")))
	at(t, ctx, s.URL+"/login/enrol")
	screenshot(t, ctx, "enrol-second-step")
	do(t, ctx, chromedp.Click(chromedp.CSS("#add-passkey")))
	at(t, ctx, s.URL+"/account?status=factor_added")
	if got := textOf(t, ctx, "#factors"); !strings.Contains(got, "passkey") {
		t.Fatalf("the account page lists %q, want the passkey", got)
	}
	if n := flCount(t, s, "SELECT COUNT(*) FROM passkey_credentials"); n != 1 {
		t.Fatalf("%d passkeys stored", n)
	}

	// signIn signs in to the RP in a browser without cookies and returns
	// what the RP saw: who, acr and amr.
	rp := startRP(t, s)
	signIn := func(t *testing.T, steps func()) (who, acr string, amr []string) {
		t.Helper()
		if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
			t.Fatal(err)
		}
		do(t, ctx, chromedp.Navigate(rp.URL+"/start"))
		at(t, ctx, s.URL+"/login?req=")
		steps()
		return textOf(t, ctx, "#who"), textOf(t, ctx, "#acr"), strings.Fields(textOf(t, ctx, "#amr"))
	}
	wantTwoFactors := func(t *testing.T, who, acr string, amr []string, want ...string) {
		t.Helper()
		if who != "Signed in as alice via local" {
			t.Fatalf("the RP says %q", who)
		}
		for _, w := range want {
			if !slices.Contains(amr, w) {
				t.Fatalf("amr %v lacks %q", amr, w)
			}
		}
		if acr != "2" {
			t.Fatalf("acr %q, want 2", acr)
		}
	}

	t.Run("second factor", func(t *testing.T) {
		who, acr, amr := signIn(t, func() {
			do(t, ctx, chromedp.SendKeys(chromedp.CSS("#username"), "alice"), chromedp.SendKeys(chromedp.CSS("#password"), alicePass),
				chromedp.Click(chromedp.CSS("#sign-in")))
			at(t, ctx, s.URL+"/login/factor")
			screenshot(t, ctx, "second-step-passkey")
			do(t, ctx, chromedp.Click(chromedp.CSS("#use-passkey")))
		})
		wantTwoFactors(t, who, acr, amr, "pwd", "hwk", "mfa")
	})
	t.Run("passwordless", func(t *testing.T) {
		who, acr, amr := signIn(t, func() {
			do(t, ctx, chromedp.Click(chromedp.CSS("#passkey-sign-in")))
		})
		wantTwoFactors(t, who, acr, amr, "hwk", "mfa")
		if slices.Contains(amr, "pwd") {
			t.Fatalf("amr %v: no password was typed", amr)
		}
	})
}
