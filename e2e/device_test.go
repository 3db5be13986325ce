package e2e

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/fedhub/fedhub/e2e/peers"
)

// dvClients are command-line tools that sign in by the device flow; the
// payroll one requires a second factor.
const dvClients = `  - id: dv-cli
    name: Deploy CLI
    public: true
    grant_types: [urn:ietf:params:oauth:grant-type:device_code, refresh_token]
  - id: dv-payroll
    name: Payroll CLI
    public: true
    grant_types: [urn:ietf:params:oauth:grant-type:device_code]
    mfa: required
`

// dvDevice is a CLI built on zitadel's relying-party library, an
// implementation of RFC 8628 independent of fedhub's.
type dvDevice struct {
	rp   rp.RelyingParty
	auth *oidc.DeviceAuthorizationResponse
}

func dvStart(t *testing.T, s *Server, clientID string) dvDevice {
	t.Helper()
	party, err := rp.NewRelyingPartyOIDC(t.Context(), s.URL, clientID, "", "", []string{"openid", "profile", "offline_access"})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := rp.DeviceAuthorization(t.Context(), []string{"openid", "profile", "offline_access"}, party, nil)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	if !regexp.MustCompile(`^[B-DF-HJ-NP-TV-XZ]{4}-[B-DF-HJ-NP-TV-XZ]{4}$`).MatchString(auth.UserCode) ||
		auth.VerificationURI != s.URL+"/device" || auth.Interval != 5 || auth.ExpiresIn != 600 {
		t.Fatalf("device authorization answer %+v", auth)
	}
	return dvDevice{rp: party, auth: auth}
}

// poll waits, as the CLI does, for the person's answer.
func (d dvDevice) poll(t *testing.T) (*oidc.AccessTokenResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	return rp.DeviceAccessToken(ctx, d.auth.DeviceCode, time.Duration(d.auth.Interval)*time.Second, d.rp)
}

// dvEnter types the code at /device (as a person would: lower case, no dash)
// and signs in.
func dvEnter(t *testing.T, ctx context.Context, s *Server, code, username, password string) {
	t.Helper()
	mbGo(t, ctx, s.URL+"/device")
	mbAt(t, ctx, s.URL+"/device", "#user_code")
	mbFill(t, ctx, "#user_code", strings.ToLower(strings.ReplaceAll(code, "-", "")), "#continue")
	mbSignIn(t, ctx, s.URL+"/login?", username, password)
}

// dvHeading waits for the page whose heading is want (the answer page has the
// approval page's URL).
func dvHeading(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	got := ""
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if h, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1"))); err == nil {
			if got = h; got == want {
				return
			}
		}
	}
	t.Fatalf("the page's heading is %q, want %q", got, want)
}

// TestDeviceFlow: a CLI gets a user code; the person types it in Chromium,
// signs in through the usual login (a second factor where the client requires
// one) and approves or denies; the CLI, polling, gets its tokens or
// access_denied. Polling early is authorization_pending, too fast slow_down.
func TestDeviceFlow(t *testing.T) {
	t.Parallel()
	s := Start(t, WithConfig(strings.Replace(defaultConfig, "clients:\n", "clients:\n"+dvClients, 1)))

	t.Run("approved", func(t *testing.T) {
		dev := dvStart(t, s, "dv-cli")
		raw := func() ocAnswer {
			return ocPost(t, s, "/token", &ocClient{id: "dv-cli"}, url.Values{
				"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {dev.auth.DeviceCode}})
		}
		ocWantOAuthError(t, raw(), http.StatusBadRequest, "authorization_pending")
		ocWantOAuthError(t, raw(), http.StatusBadRequest, "slow_down")

		ctx := peers.Chromium(t)
		dvEnter(t, ctx, s, dev.auth.UserCode, "alice", alicePass)
		mbAt(t, ctx, s.URL+"/device/confirm", "#approve")
		if got := textOf(t, ctx, "main"); !strings.Contains(got, "Deploy CLI") || !strings.Contains(got, "alice") {
			t.Fatalf("the approval page does not say who asks for whom:\n%s", got)
		}
		screenshot(t, ctx, "device-approve")
		mbClick(t, ctx, "#approve")
		dvHeading(t, ctx, "Device approved")
		tok, err := dev.poll(t)
		if err != nil {
			t.Fatalf("the CLI got no tokens: %v", err)
		}
		id := ocVerifyIDToken(t, s, "dv-cli", tok.IDToken)
		if id.str("preferred_username") != "alice" || tok.RefreshToken == "" {
			t.Fatalf("ID token %v, refresh token %q: want alice's, with a refresh token", id.Claims, tok.RefreshToken)
		}
		ocWantOAuthError(t, raw(), http.StatusBadRequest, "invalid_grant") // used

		// The same browser cannot approve another code without signing in again.
		again := dvStart(t, s, "dv-cli")
		mbGo(t, ctx, s.URL+"/device?user_code="+again.auth.UserCode)
		mbClick(t, ctx, "#continue")
		mbAt(t, ctx, s.URL+"/login?", "#sign-in")
	})

	t.Run("denied", func(t *testing.T) {
		dev := dvStart(t, s, "dv-cli")
		ctx := peers.Chromium(t)
		dvEnter(t, ctx, s, dev.auth.UserCode, "bob", bobPass)
		mbAt(t, ctx, s.URL+"/device/confirm", "#deny")
		mbClick(t, ctx, "#deny")
		dvHeading(t, ctx, "Sign-in refused")
		_, err := dev.poll(t)
		var oe *oidc.Error
		if !errors.As(err, &oe) || oe.ErrorType != oidc.AccessDenied {
			t.Fatalf("the CLI got %v, want access_denied", err)
		}
	})

	t.Run("second factor required", func(t *testing.T) {
		dev := dvStart(t, s, "dv-payroll")
		ctx := peers.Chromium(t)
		dvEnter(t, ctx, s, dev.auth.UserCode, "bob", bobPass)
		mbConfirmKey(t, ctx, mbEnrolPage(t, ctx, s.URL, "bob"))
		mbClick(t, ctx, "#continue")
		mbAt(t, ctx, s.URL+"/device/confirm", "#approve")
		mbClick(t, ctx, "#approve")
		tok, err := dev.poll(t)
		if err != nil {
			t.Fatalf("the CLI got no tokens: %v", err)
		}
		id := ocVerifyIDToken(t, s, "dv-payroll", tok.IDToken)
		amr, _ := ocStrings(id.Claims["amr"])
		mbWantAMR(t, amr, "pwd", "otp", "mfa")
	})
}

// TestDeviceCodeGuessing: wrong user codes from one address are limited.
func TestDeviceCodeGuessing(t *testing.T) {
	t.Parallel()
	cfg := strings.Replace(defaultConfig, "clients:\n", "clients:\n"+dvClients, 1) +
		"brute_force:\n  failure_factor: 1\n  wait_increment: 1m\n" // an address may get 10 wrong
	s := Start(t, WithConfig(cfg))
	b := NewBrowser(t)
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	try := func(code string) (*http.Response, string) {
		_, page := b.Get(s.URL + "/device")
		m := csrf.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no form on /device:\n%s", page)
		}
		return b.PostForm(s.URL+"/device", url.Values{"csrf": {m[1]}, "user_code": {code}})
	}
	for i := range 10 {
		if resp, page := try("BCDF-GHJK"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "not valid") {
			t.Fatalf("wrong code %d answered %d:\n%s", i+1, resp.StatusCode, page)
		}
	}
	dev := dvStart(t, s, "dv-cli")
	if resp, page := try(dev.auth.UserCode); resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(page, "Too many wrong codes") {
		t.Fatalf("after 10 wrong codes, a right one answered %d:\n%s", resp.StatusCode, page)
	}
}
