package e2e

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/base64"
	"image"
	"image/png"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/fedhub/fedhub/e2e/peers"
)

// Second factors in a real browser: enrolment from the QR page, sign-in with
// a TOTP code and with a recovery code, a client that requires a second
// factor, and upstream OpenID Providers whose own multi-factor login counts
// (or does not), and prompt=login passed on to an upstream.

// mbNav records every document request of a tab, redirect hops included:
// where the browser really went.
type mbNav struct {
	mu   sync.Mutex
	urls []string
}

// mbWatch starts recording the document requests of ctx's tab.
func mbWatch(t *testing.T, ctx context.Context) *mbNav {
	t.Helper()
	n := &mbNav{}
	err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && e.Type == network.ResourceTypeDocument {
			n.mu.Lock()
			n.urls = append(n.urls, e.Request.URL)
			n.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Mark is where the record stands now, for Since.
func (n *mbNav) Mark() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.urls)
}

// Since is the URLs requested after mark.
func (n *mbNav) Since(mark int) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.urls[mark:])
}

// mbVisited is the first URL since mark that starts with prefix, or "".
func (n *mbNav) mbVisited(mark int, prefix string) string {
	for _, u := range n.Since(mark) {
		if strings.HasPrefix(u, prefix) {
			return u
		}
	}
	return ""
}

// mbGo navigates the tab to rawURL.
func mbGo(t *testing.T, ctx context.Context, rawURL string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(rawURL)); err != nil {
		t.Fatalf("navigate to %s: %v", rawURL, err)
	}
}

// mbLocation is the tab's current URL.
func mbLocation(t *testing.T, ctx context.Context) string {
	t.Helper()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// mbAt waits until the tab is at a URL that starts with prefix and shows sel.
func mbAt(t *testing.T, ctx context.Context, prefix, sel string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	loc := ""
	for time.Now().Before(deadline) {
		loc, _ = chromedp.Run(ctx, chromedp.Location())
		if strings.HasPrefix(loc, prefix) {
			textOf(t, ctx, sel)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	t.Fatalf("the browser is at %s, want %s…:\n%s", loc, prefix, body)
}

// mbFill types text into an input and clicks a button.
func mbFill(t *testing.T, ctx context.Context, input, text, button string) {
	t.Helper()
	flClear(t, ctx, input)
	err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(input), text),
		chromedp.Click(chromedp.CSS(button)),
	)
	if err != nil {
		t.Fatal(err)
	}
}

// mbClick clicks an element.
func mbClick(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		t.Fatalf("click %s: %v", sel, err)
	}
}

// mbSignIn fills in a fedhub login page's password form (at prefix) and sends it.
func mbSignIn(t *testing.T, ctx context.Context, prefix, username, password string) {
	t.Helper()
	mbAt(t, ctx, prefix, "#sign-in")
	flClear(t, ctx, "#username")
	err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#username"), username),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#sign-in")),
	)
	if err != nil {
		t.Fatal(err)
	}
}

// mbCount is how many elements match sel on the page.
func mbCount(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	return flEval[int](t, ctx, `document.querySelectorAll('`+sel+`').length`)
}

// mbRPSignedIn waits for the RP's signed-in page and checks who signed in
// and the ID token's acr; it returns the amr values and auth_time.
func mbRPSignedIn(t *testing.T, ctx context.Context, rp *testRP, who, acr string) ([]string, int64) {
	t.Helper()
	mbAt(t, ctx, rp.URL+"/loopback", "#who")
	if got := textOf(t, ctx, "#who"); got != who {
		t.Fatalf("RP page says %q, want %q", got, who)
	}
	// (read without waiting for them to be visible: an empty claim is an empty paragraph)
	amr := strings.Fields(flEval[string](t, ctx, `document.querySelector('#amr').textContent`))
	if got := flEval[string](t, ctx, `document.querySelector('#acr').textContent`); got != acr {
		t.Fatalf("ID token acr %q (amr %v), want %q", got, amr, acr)
	}
	at, err := strconv.ParseInt(flEval[string](t, ctx, `document.querySelector('#auth-time').textContent`), 10, 64)
	if err != nil || at <= 0 {
		t.Fatalf("ID token has no auth_time")
	}
	return amr, at
}

// mbWantAMR fails unless amr holds every one of want.
func mbWantAMR(t *testing.T, amr []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(amr, w) {
			t.Fatalf("ID token amr %v lacks %q (want all of %v)", amr, w, want)
		}
	}
}

// mbCode is the authenticator app's code for a moment: now for the code that
// confirms a key, now+30s (the next step, within the accepted window) for a
// sign-in after it, as a step's code is accepted once.
func mbCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// mbCheckQR checks the enrolment page's QR image: a PNG data URL that decodes
// to a square image, which is the QR code of the otpauth URI of the key shown
// beside it (issuer fedhub, account username, SHA-1, 6 digits, 30 s) — what
// an authenticator app scans is the key the page shows. A broken QR code is
// reported, and the test goes on (the key can be typed in).
func mbCheckQR(t *testing.T, src, secret, username string) {
	t.Helper()
	const prefix = "data:image/png;base64,"
	if !strings.HasPrefix(src, prefix) {
		t.Errorf("the QR image's src is %.40q, not a PNG data URL: no QR code to scan", src)
		return
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(src, prefix))
	if err != nil {
		t.Errorf("QR image data: %v", err)
		return
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Errorf("QR image is not a PNG: %v", err)
		return
	}
	b := img.Bounds()
	if b.Dx() < 21 || b.Dx() != b.Dy() {
		t.Errorf("QR image is %dx%d", b.Dx(), b.Dy())
		return
	}
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil {
		t.Fatalf("the key shown %q is not base32: %v", secret, err)
	}
	want, err := totp.Generate(totp.GenerateOpts{Issuer: "fedhub", AccountName: username, Period: 30,
		Secret: key, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	wantImg, err := want.Image(b.Dx(), b.Dy())
	if err != nil {
		t.Fatal(err)
	}
	if !sameImage(img, wantImg) {
		t.Errorf("the QR code is not the one of %s (the key shown)", want.URL())
	}
}

// sameImage compares two images pixel by pixel (as gray levels).
func sameImage(a, b image.Image) bool {
	if a.Bounds().Size() != b.Bounds().Size() {
		return false
	}
	ab, bb := a.Bounds(), b.Bounds()
	for y := 0; y < ab.Dy(); y++ {
		for x := 0; x < ab.Dx(); x++ {
			r1, g1, b1, _ := a.At(ab.Min.X+x, ab.Min.Y+y).RGBA()
			r2, g2, b2, _ := b.At(bb.Min.X+x, bb.Min.Y+y).RGBA()
			if (r1+g1+b1)/3>>15 != (r2+g2+b2)/3>>15 { // black or white
				return false
			}
		}
	}
	return true
}

// mbEnrolPage checks the enrolment page a sign-in stopped at (fedhub at
// base) and returns the key it shows, after checking its QR code.
func mbEnrolPage(t *testing.T, ctx context.Context, base, username string) string {
	t.Helper()
	mbAt(t, ctx, base+"/login/enrol", "#secret")
	if got := textOf(t, ctx, "h1"); got != "Set up a second step" {
		t.Fatalf("enrolment page heading = %q", got)
	}
	secret := textOf(t, ctx, "#secret")
	src, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("#qr"), "src"))
	if err != nil || !src.Exists {
		t.Fatalf("no src on the QR image: %v", err)
	}
	mbCheckQR(t, src.Value, secret, username)
	// The browser itself decoded the image.
	if !flEval[bool](t, ctx, `(() => { const i = document.querySelector('#qr'); return i.complete && i.naturalWidth > 20 && i.naturalWidth === i.naturalHeight })()`) {
		t.Errorf("the browser shows no QR image on the enrolment page")
	}
	return secret
}

// mbConfirmKey enters the current code on the enrolment page, checks the 10
// recovery codes shown, and returns them (the browser stays on that page).
func mbConfirmKey(t *testing.T, ctx context.Context, secret string) []string {
	t.Helper()
	mbFill(t, ctx, "#code", mbCode(t, secret, time.Now()), "#confirm")
	textOf(t, ctx, "#codes")
	if got := textOf(t, ctx, "h1"); got != "Save your recovery codes" {
		t.Fatalf("recovery codes page heading = %q", got)
	}
	codes := flEval[[]string](t, ctx, `[...document.querySelectorAll('#codes li code')].map(e => e.textContent)`)
	distinct := slices.Compact(slices.Sorted(slices.Values(codes)))
	if len(codes) != 10 || len(distinct) != 10 || slices.Contains(codes, "") {
		t.Fatalf("recovery codes shown: %q, want 10 different ones", codes)
	}
	return codes
}

// TestBrowserMFAEnrolAndSignIn: a person adds an authenticator app at
// /account from the QR page, then signs in to an application with its code
// and, another time, with a recovery code; the application gets no answer
// before the second step, and then an ID token with acr 2.
func TestBrowserMFAEnrolAndSignIn(t *testing.T) {
	s := Start(t)
	rp := startRP(t, s)
	ctx := peers.Chromium(t)

	// A sign-in with a password alone: one factor.
	mbGo(t, ctx, rp.URL+"/start")
	mbSignIn(t, ctx, s.URL+"/login?", "alice", alicePass)
	amr, _ := mbRPSignedIn(t, ctx, rp, "Signed in as alice via local", "1")
	if slices.Contains(amr, "mfa") || slices.Contains(amr, "otp") {
		t.Fatalf("a password sign-in has amr %v", amr)
	}

	// /account → Add an authenticator app → sign in again → the QR page.
	mbGo(t, ctx, s.URL+"/account")
	mbAt(t, ctx, s.URL+"/account", "#add-totp")
	if n := mbCount(t, ctx, "#factors"); n != 0 {
		t.Fatal("/account lists a factor before one was added")
	}
	mbClick(t, ctx, "#add-totp")
	mbSignIn(t, ctx, s.URL+"/login?", "alice", alicePass) // a fresh sign-in, although the browser has a session
	secret := mbEnrolPage(t, ctx, s.URL, "alice")
	screenshot(t, ctx, "mfa-enrol")

	// A wrong first code: the same page, the same key, an error.
	mbFill(t, ctx, "#code", "000000", "#confirm")
	if got := textOf(t, ctx, ".error"); !strings.Contains(got, "not right") {
		t.Fatalf("a wrong first code says %q", got)
	}
	if got := textOf(t, ctx, "#secret"); got != secret {
		t.Fatalf("after a wrong code the key changed from %s to %s", secret, got)
	}
	screenshot(t, ctx, "mfa-enrol-wrong-code")

	codes := mbConfirmKey(t, ctx, secret)
	screenshot(t, ctx, "mfa-recovery-codes")
	mbClick(t, ctx, "#continue")
	mbAt(t, ctx, s.URL+"/account", "#factors")
	if got := textOf(t, ctx, ".notice"); !strings.Contains(got, "second step is set up") {
		t.Fatalf("/account status = %q", got)
	}
	if got := textOf(t, ctx, "#factors tbody"); !strings.Contains(got, "Authenticator app") {
		t.Fatalf("/account lists the factors as %q", got)
	}
	if got := textOf(t, ctx, "main"); !strings.Contains(got, "10 recovery codes left") {
		t.Fatalf("/account does not say 10 recovery codes are left:\n%s", got)
	}
	screenshot(t, ctx, "mfa-account-factor")

	t.Run("code", func(t *testing.T) {
		ctx := peers.Chromium(t)
		before := rp.Callbacks()
		mbGo(t, ctx, rp.URL+"/start")
		mbSignIn(t, ctx, s.URL+"/login?", "alice", alicePass)
		mbAt(t, ctx, s.URL+"/login/factor", "#code-form")
		if got := textOf(t, ctx, "h1"); got != "Confirm it is you" {
			t.Fatalf("second-factor page heading = %q", got)
		}
		screenshot(t, ctx, "mfa-factor")
		mbFill(t, ctx, "#code", "000000", "#verify")
		if got := textOf(t, ctx, ".error"); !strings.Contains(got, "not right") {
			t.Fatalf("a wrong code says %q", got)
		}
		if n := rp.Callbacks(); n != before {
			t.Fatalf("the RP got %d answers before the second factor", n-before)
		}
		mbFill(t, ctx, "#code", mbCode(t, secret, time.Now().Add(30*time.Second)), "#verify")
		amr, _ := mbRPSignedIn(t, ctx, rp, "Signed in as alice via local", "2")
		mbWantAMR(t, amr, "pwd", "otp", "mfa")
		screenshot(t, ctx, "mfa-signed-in")

		// The SSO session remembers both factors.
		mbGo(t, ctx, rp.URL+"/start")
		amr, _ = mbRPSignedIn(t, ctx, rp, "Signed in as alice via local", "2")
		mbWantAMR(t, amr, "otp", "mfa")
	})

	t.Run("recovery code", func(t *testing.T) {
		ctx := peers.Chromium(t)
		mbGo(t, ctx, rp.URL+"/start")
		mbSignIn(t, ctx, s.URL+"/login?", "alice", alicePass)
		mbAt(t, ctx, s.URL+"/login/factor", "#code-form")
		mbClick(t, ctx, "#use-recovery")
		mbAt(t, ctx, s.URL+"/login/factor", "#recovery-form")
		screenshot(t, ctx, "mfa-recovery")
		mbFill(t, ctx, "#recovery", codes[0], "#verify")
		amr, _ := mbRPSignedIn(t, ctx, rp, "Signed in as alice via local", "2")
		mbWantAMR(t, amr, "pwd", "kba", "mfa")
		if slices.Contains(amr, "otp") {
			t.Fatalf("a recovery-code sign-in has amr %v", amr)
		}
		mbGo(t, ctx, s.URL+"/account")
		if got := textOf(t, ctx, "main"); !strings.Contains(got, "9 recovery codes left") {
			t.Fatalf("/account after using a recovery code:\n%s", got)
		}

		// The same recovery code again (prompt=login: a new sign-in) is refused.
		before := rp.Callbacks()
		mbGo(t, ctx, rp.URL+"/start?prompt=login")
		mbSignIn(t, ctx, s.URL+"/login?", "alice", alicePass)
		mbAt(t, ctx, s.URL+"/login/factor", "#code-form")
		mbClick(t, ctx, "#use-recovery")
		mbAt(t, ctx, s.URL+"/login/factor", "#recovery-form")
		mbFill(t, ctx, "#recovery", codes[0], "#verify")
		if got := textOf(t, ctx, ".error"); !strings.Contains(got, "used already") {
			t.Fatalf("a used recovery code says %q", got)
		}
		if n := rp.Callbacks(); n != before {
			t.Fatal("the RP got an answer for a used recovery code")
		}
		mbFill(t, ctx, "#recovery", codes[1], "#verify")
		amr, _ = mbRPSignedIn(t, ctx, rp, "Signed in as alice via local", "2")
		mbWantAMR(t, amr, "kba", "mfa")
	})
}

// mbPayrollConfig is the default configuration with a client that requires a
// second factor.
var mbPayrollConfig = strings.Replace(defaultConfig, "clients:\n", `clients:
  - id: payroll
    name: Payroll
    secret: ${PAYROLL_SECRET}
    redirect_uris: [http://127.0.0.1/loopback]
    grant_types: [authorization_code]
    mfa: required
`, 1)

const payrollSecret = "payroll-secret-0123456789abcdef"

// TestBrowserMFARequiredClient: an application whose client has mfa:
// required makes a person without a second factor enrol in the middle of the
// sign-in, and gets its answer (acr 2) only after that; another application
// without the requirement is not affected.
func TestBrowserMFARequiredClient(t *testing.T) {
	s := Start(t, WithConfig(mbPayrollConfig), WithEnv("PAYROLL_SECRET="+payrollSecret))
	plain := startRP(t, s)
	payroll := startRPFor(t, s, "payroll", payrollSecret)

	t.Run("enrol during the sign-in", func(t *testing.T) {
		ctx := peers.Chromium(t)
		mbGo(t, ctx, payroll.URL+"/start")
		mbAt(t, ctx, s.URL+"/login?", "#sign-in")
		if got := textOf(t, ctx, "main"); !strings.Contains(got, "Payroll") {
			t.Fatalf("the login page does not name the application:\n%s", got)
		}
		mbSignIn(t, ctx, s.URL+"/login?", "bob", bobPass)
		secret := mbEnrolPage(t, ctx, s.URL, "bob")
		screenshot(t, ctx, "mfa-required-enrol")
		if n := payroll.Callbacks(); n != 0 {
			t.Fatalf("payroll got %d answers before the enrolment", n)
		}
		mbConfirmKey(t, ctx, secret)
		if n := payroll.Callbacks(); n != 0 {
			t.Fatal("payroll got an answer before the recovery codes were acknowledged")
		}
		mbClick(t, ctx, "#continue")
		amr, _ := mbRPSignedIn(t, ctx, payroll, "Signed in as bob via local", "2")
		mbWantAMR(t, amr, "pwd", "otp", "mfa")
		screenshot(t, ctx, "mfa-required-signed-in")

		// Now bob has a factor: the other application's sign-in asks for it
		// too (optional asks those who have one).
		ctx2 := peers.Chromium(t)
		mbGo(t, ctx2, plain.URL+"/start")
		mbSignIn(t, ctx2, s.URL+"/login?", "bob", bobPass)
		mbAt(t, ctx2, s.URL+"/login/factor", "#code-form")
		mbFill(t, ctx2, "#code", mbCode(t, secret, time.Now().Add(30*time.Second)), "#verify")
		amr, _ = mbRPSignedIn(t, ctx2, plain, "Signed in as bob via local", "2")
		mbWantAMR(t, amr, "otp", "mfa")
	})

	t.Run("optional client, no factor", func(t *testing.T) {
		ctx := peers.Chromium(t)
		nav := mbWatch(t, ctx)
		mbGo(t, ctx, plain.URL+"/start")
		mbSignIn(t, ctx, s.URL+"/login?", "alice", alicePass)
		mbRPSignedIn(t, ctx, plain, "Signed in as alice via local", "1")
		if u := nav.mbVisited(0, s.URL+"/login/"); u != "" {
			t.Fatalf("alice, without a factor, was sent to %s by a client that does not require one", u)
		}
	})

	// A session whose login had one factor does not satisfy the client that
	// requires two: payroll must not get alice with acr 1.
	t.Run("one-factor session", func(t *testing.T) {
		ctx := peers.Chromium(t)
		mbGo(t, ctx, plain.URL+"/start")
		mbSignIn(t, ctx, s.URL+"/login?", "alice", alicePass)
		mbRPSignedIn(t, ctx, plain, "Signed in as alice via local", "1")
		mbGo(t, ctx, payroll.URL+"/start")
		deadline, signedIn := time.Now().Add(20*time.Second), false
		for {
			loc := mbLocation(t, ctx)
			switch {
			case strings.HasPrefix(loc, payroll.URL+"/loopback"):
				textOf(t, ctx, "#who")
				acr := flEval[string](t, ctx, `document.querySelector('#acr').textContent`)
				amr := flEval[string](t, ctx, `document.querySelector('#amr').textContent`)
				t.Fatalf("payroll (mfa: required) signed alice in from her one-factor session without a second step: acr %q amr %q", acr, amr)
			case strings.HasPrefix(loc, s.URL+"/login/enrol"):
				mbEnrolPage(t, ctx, s.URL, "alice")
				return
			case !signedIn && strings.HasPrefix(loc, s.URL+"/login?") && mbCount(t, ctx, "#sign-in") > 0:
				mbSignIn(t, ctx, s.URL+"/login?", "alice", alicePass) // signing in again is fine; then the enrolment
				signedIn = true
			}
			if time.Now().After(deadline) {
				t.Fatalf("the browser stopped at %s", loc)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// mbAMRStorage is the example OP's storage whose ID tokens carry a chosen
// amr: the example hard-codes ["pwd"], a real OP with a second factor says
// what its login used.
type mbAMRStorage struct {
	*storage.Storage
	amr []string
}

type mbAMRRequest struct {
	*storage.AuthRequest
	amr []string
}

func (r mbAMRRequest) GetAMR() []string { return r.amr }

func (s *mbAMRStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	r, err := s.Storage.AuthRequestByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	return mbAMRRequest{AuthRequest: r.(*storage.AuthRequest), amr: s.amr}, nil
}

// mbStartZitadel runs zitadel's example OP with the client "fedhub" for
// these redirect URIs; with amr, its ID tokens carry that amr.
func mbStartZitadel(t *testing.T, amr []string, redirectURIs ...string) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	st := storage.NewStorageWithClients(storage.NewUserStore(issuer),
		map[string]*storage.Client{"fedhub": storage.WebClient("fedhub", upstreamSecret, redirectURIs...)})
	var opStorage exampleop.Storage = st
	if amr != nil {
		opStorage = &mbAMRStorage{Storage: st, amr: amr}
	}
	srv.Config.Handler = exampleop.SetupServer(issuer, opStorage, nil, false)
	srv.Start()
	t.Cleanup(srv.Close)
	return issuer
}

// mbOIDCConnector is a connector block to an upstream OP, with mfa:
// required; its users are named "ID-USERNAME".
func mbOIDCConnector(id, issuer, clientID, secretVar string, trust, userinfo bool) string {
	return `  - id: ` + id + `
    type: oidc
    name: ` + id + ` SSO
    mfa: required
    trust_upstream_mfa: ` + strconv.FormatBool(trust) + `
    mappers:
      - type: username_template
        template: "` + id + `-{{.Username}}"
    oidc:
      issuer: ` + issuer + `
      client_id: ` + clientID + `
      client_secret: ${` + secretVar + `}
      use_userinfo: ` + strconv.FormatBool(userinfo) + `
`
}

// mbZitadelSignIn signs in at the example OP's login page.
func mbZitadelSignIn(t *testing.T, ctx context.Context, issuer string) {
	t.Helper()
	mbAt(t, ctx, issuer+"/login/username", "#username")
	err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#username"), "test-user@127.0.0.1"),
		chromedp.SendKeys(chromedp.CSS("#password"), "verysecure"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
	)
	if err != nil {
		t.Fatal(err)
	}
}

// TestBrowserMFAUpstreamZitadel: an upstream OP (zitadel's example, not
// fedhub) whose ID token says amr mfa satisfies a connector's mfa: required
// when trust_upstream_mfa is on — no second-factor page — and does not when
// it is off (the person enrols at fedhub); an upstream login whose amr says
// only pwd never counts, trusted or not.
func TestBrowserMFAUpstreamZitadel(t *testing.T) {
	addr := freeAddr(t)
	callback := func(id string) string { return "http://" + addr + "/broker/" + id + "/callback" }
	mfaOP := mbStartZitadel(t, []string{"pwd", "otp", "mfa"}, callback("trusted"), callback("untrusted"))
	pwdOP := mbStartZitadel(t, nil, callback("pwdonly"))
	s := Start(t, WithAddr(addr), WithEnv("ZITADEL_SECRET="+upstreamSecret), withConnectors(
		mbOIDCConnector("trusted", mfaOP, "fedhub", "ZITADEL_SECRET", true, true)+
			mbOIDCConnector("untrusted", mfaOP, "fedhub", "ZITADEL_SECRET", false, true)+
			mbOIDCConnector("pwdonly", pwdOP, "fedhub", "ZITADEL_SECRET", true, true)))
	rp := startRP(t, s)

	login := func(t *testing.T, connector, issuer string) (context.Context, *mbNav) {
		t.Helper()
		ctx := peers.Chromium(t)
		nav := mbWatch(t, ctx)
		mbGo(t, ctx, rp.URL+"/start")
		mbAt(t, ctx, s.URL+"/login?", "#connector-"+connector)
		mbClick(t, ctx, "#connector-"+connector)
		mbZitadelSignIn(t, ctx, issuer)
		return ctx, nav
	}

	t.Run("trusted", func(t *testing.T) {
		ctx, nav := login(t, "trusted", mfaOP)
		amr, _ := mbRPSignedIn(t, ctx, rp, "Signed in as trusted-test-user@127.0.0.1 via trusted", "2")
		mbWantAMR(t, amr, "fed", "mfa")
		if u := nav.mbVisited(0, s.URL+"/login/"); u != "" {
			t.Fatalf("a trusted upstream's multi-factor login was sent to %s", u)
		}
		screenshot(t, ctx, "mfa-upstream-trusted")
	})

	t.Run("untrusted", func(t *testing.T) {
		before := rp.Callbacks()
		ctx, _ := login(t, "untrusted", mfaOP)
		secret := mbEnrolPage(t, ctx, s.URL, "untrusted-test-user@127.0.0.1")
		screenshot(t, ctx, "mfa-upstream-untrusted-enrol")
		if rp.Callbacks() != before {
			t.Fatal("the RP got an answer before the second factor")
		}
		mbConfirmKey(t, ctx, secret)
		mbClick(t, ctx, "#continue")
		amr, _ := mbRPSignedIn(t, ctx, rp, "Signed in as untrusted-test-user@127.0.0.1 via untrusted", "2")
		mbWantAMR(t, amr, "fed", "otp", "mfa")

		// Next time the factor is asked for.
		ctx, _ = login(t, "untrusted", mfaOP)
		mbAt(t, ctx, s.URL+"/login/factor", "#code-form")
	})

	t.Run("trusted, amr pwd", func(t *testing.T) {
		ctx, _ := login(t, "pwdonly", pwdOP)
		mbEnrolPage(t, ctx, s.URL, "pwdonly-test-user@127.0.0.1")
	})
}

// mbFreeAddrOn is a free port on a loopback address other than 127.0.0.1: a
// second fedhub there has cookies of its own in the browser (cookies do not
// tell ports apart).
func mbFreeAddrOn(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// mbEnrolHTTP gives a user of s an authenticator app through /account, over
// plain HTTP, and returns its key and recovery codes.
func mbEnrolHTTP(t *testing.T, s *Server, username, password string) (string, []string) {
	t.Helper()
	b := NewBrowser(t)
	b.Authorize(s, AuthParams(), username, password)
	_, account := b.Get(s.URL + "/account")
	resp, _ := b.PostForm(s.URL+"/account/factors/totp", url.Values{"csrf": {mfaMatch(t, mfaCSRF, account)}})
	f := b.OpenLoginAt(s, resp.Header.Get("Location"))
	resp, _ = b.Submit(f, username, password)
	page := mfaFollow(t, s, b, resp, "/login/enrol?t=")
	secret := mfaMatch(t, mfaSecret, page)
	tok, csrf := mfaMatch(t, mfaToken, page), mfaMatch(t, mfaCSRF, page)
	resp, page = b.PostForm(s.URL+"/login/enrol", url.Values{"t": {tok}, "csrf": {csrf}, "code": {mbCode(t, secret, time.Now())}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("confirming %s's key answered %d:\n%s", username, resp.StatusCode, page)
	}
	var codes []string
	for _, m := range mfaCode.FindAllStringSubmatch(page, -1) {
		codes = append(codes, m[1])
	}
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes shown, want 10", len(codes))
	}
	if resp, _ = b.PostForm(s.URL+"/login/codes", url.Values{"t": {tok}, "csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after %s's recovery codes: %d", username, resp.StatusCode)
	}
	return secret, codes
}

// mbClearCookies deletes the browser's cookies of a site (all ports of its host).
func mbClearCookies(t *testing.T, ctx context.Context, site string) {
	t.Helper()
	got, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{site + "/"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range got.Cookies {
		if _, err := chromedp.Call(ctx, network.DeleteCookies, network.DeleteCookiesParams{Name: c.Name, URL: site + "/"}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBrowserMFAUpstreamChained: a second fedhub is the upstream (broker
// chaining), where alice has an authenticator app, so its ID token says amr
// [pwd otp mfa]. A trusting connector needs no second factor at the
// downstream fedhub; a distrusting one makes the person enrol there although
// the upstream did ask for a code. prompt=login sent to the downstream fedhub
// reaches the upstream, which shows its login page although it has a session.
func TestBrowserMFAUpstreamChained(t *testing.T) {
	addrB := freeAddr(t)
	callback := func(id string) string { return "http://" + addrB + "/broker/" + id + "/callback" }
	upstreamCfg := strings.Replace(defaultConfig, "clients:\n", `clients:
  - id: broker
    secret: ${BROKER_SECRET}
    redirect_uris: [`+callback("corp")+`, `+callback("trusted")+`, `+callback("untrusted")+`]
    grant_types: [authorization_code]
`, 1)
	a := Start(t, WithAddr(mbFreeAddrOn(t, "127.0.0.2")), WithConfig(upstreamCfg), WithEnv("BROKER_SECRET="+upstreamSecret))
	aliceKey, _ := mbEnrolHTTP(t, a, "alice", alicePass)
	b := Start(t, WithAddr(addrB), WithEnv("CORP_SECRET="+upstreamSecret), withConnectors(
		mbOIDCConnector("trusted", a.URL, "broker", "CORP_SECRET", true, false)+
			mbOIDCConnector("untrusted", a.URL, "broker", "CORP_SECRET", false, false)+`  - id: corp
    type: oidc
    name: Corp fedhub
    mappers:
      - type: username_template
        template: "corp-{{.Username}}"
    oidc:
      issuer: `+a.URL+`
      client_id: broker
      client_secret: ${CORP_SECRET}
`))
	rp := startRP(t, b)

	t.Run("trusted and untrusted", func(t *testing.T) {
		ctx := peers.Chromium(t)
		nav := mbWatch(t, ctx)
		mbGo(t, ctx, rp.URL+"/start")
		mbAt(t, ctx, b.URL+"/login?", "#connector-trusted")
		mbClick(t, ctx, "#connector-trusted")
		mbSignIn(t, ctx, a.URL+"/login?", "alice", alicePass)
		// The upstream asks for its own second factor…
		mbAt(t, ctx, a.URL+"/login/factor", "#code-form")
		screenshot(t, ctx, "mfa-chained-upstream-factor")
		mbFill(t, ctx, "#code", mbCode(t, aliceKey, time.Now().Add(30*time.Second)), "#verify")
		// …and the downstream one trusts it.
		amr, _ := mbRPSignedIn(t, ctx, rp, "Signed in as trusted-alice via trusted", "2")
		mbWantAMR(t, amr, "fed", "mfa")
		if u := nav.mbVisited(0, b.URL+"/login/"); u != "" {
			t.Fatalf("the upstream's multi-factor login was trusted, yet the browser went to %s", u)
		}

		// Without the downstream session, through the connector that does not
		// trust the upstream: the upstream answers from its session (amr
		// still [pwd otp mfa]), and the downstream fedhub asks for its own
		// second factor — alice has none there, so she enrols.
		mbClearCookies(t, ctx, b.URL)
		mark := nav.Mark()
		before := rp.Callbacks()
		mbGo(t, ctx, rp.URL+"/start")
		mbAt(t, ctx, b.URL+"/login?", "#connector-untrusted")
		mbClick(t, ctx, "#connector-untrusted")
		secret := mbEnrolPage(t, ctx, b.URL, "untrusted-alice")
		if u := nav.mbVisited(mark, a.URL+"/login"); u != "" {
			t.Fatalf("the upstream showed %s although it had a session", u)
		}
		if rp.Callbacks() != before {
			t.Fatal("the RP got an answer before the downstream second factor")
		}
		screenshot(t, ctx, "mfa-chained-untrusted-enrol")
		mbConfirmKey(t, ctx, secret)
		mbClick(t, ctx, "#continue")
		amr, _ = mbRPSignedIn(t, ctx, rp, "Signed in as untrusted-alice via untrusted", "2")
		mbWantAMR(t, amr, "fed", "otp", "mfa")
	})

	t.Run("prompt=login reaches the upstream", func(t *testing.T) {
		ctx := peers.Chromium(t)
		nav := mbWatch(t, ctx)
		mbGo(t, ctx, rp.URL+"/start")
		mbAt(t, ctx, b.URL+"/login?", "#connector-corp")
		mbClick(t, ctx, "#connector-corp")
		mbSignIn(t, ctx, a.URL+"/login?", "bob", bobPass)
		_, first := mbRPSignedIn(t, ctx, rp, "Signed in as corp-bob via corp", "1")

		// The upstream has a session: without the downstream's, a sign-in
		// through it needs no password.
		mbClearCookies(t, ctx, b.URL)
		mark := nav.Mark()
		mbGo(t, ctx, rp.URL+"/start")
		mbAt(t, ctx, b.URL+"/login?", "#connector-corp")
		mbClick(t, ctx, "#connector-corp")
		mbRPSignedIn(t, ctx, rp, "Signed in as corp-bob via corp", "1")
		if u := nav.mbVisited(mark, a.URL+"/login"); u != "" {
			t.Fatalf("the upstream showed %s although it had a session", u)
		}

		// prompt=login: the downstream asks again, and so does the upstream.
		time.Sleep(1100 * time.Millisecond) // auth_time has whole seconds
		mark = nav.Mark()
		mbGo(t, ctx, rp.URL+"/start?prompt=login")
		mbAt(t, ctx, b.URL+"/login?", "#connector-corp")
		mbClick(t, ctx, "#connector-corp")
		mbAt(t, ctx, a.URL+"/login?", "#sign-in")
		screenshot(t, ctx, "mfa-chained-prompt-login-upstream")
		authz := nav.mbVisited(mark, a.URL+"/authorize?")
		if u, err := url.Parse(authz); err != nil || u.Query().Get("prompt") != "login" {
			t.Fatalf("the request to the upstream was %q, want prompt=login", authz)
		}
		mbSignIn(t, ctx, a.URL+"/login?", "bob", bobPass)
		_, again := mbRPSignedIn(t, ctx, rp, "Signed in as corp-bob via corp", "1")
		if again <= first {
			t.Fatalf("auth_time after prompt=login is %d, the first login's %d", again, first)
		}
	})
}
