package e2e

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

var (
	mfaToken  = regexp.MustCompile(`name="t" value="([^"]+)"`)
	mfaCSRF   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	mfaSecret = regexp.MustCompile(`<code id="secret">([A-Z2-7]+)</code>`)
	mfaCode   = regexp.MustCompile(`<li><code>([0-9a-z-]+)</code></li>`)
)

func mfaMatch(t testing.TB, re *regexp.Regexp, page string) string {
	t.Helper()
	m := re.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no %s in:\n%s", re, page)
	}
	return m[1]
}

// mfaFollow gets a relative Location on the server and returns the page.
func mfaFollow(t testing.TB, s *Server, b *Browser, resp *http.Response, wantPath string) string {
	t.Helper()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, wantPath) {
		t.Fatalf("answered %d Location %q, want a redirect to %s", resp.StatusCode, loc, wantPath)
	}
	resp, page := b.Get(s.URL + loc)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s answered %d:\n%s", loc, resp.StatusCode, page)
	}
	return page
}

// mfaEnrol adds an authenticator app for a signed-in person through /account
// (signing in again on the way) and returns its key, the code that confirmed
// it and when, and the recovery codes.
func mfaEnrol(t testing.TB, s *Server, b *Browser, username, password string) (secret, first string, at time.Time, codes []string) {
	t.Helper()
	_, account := b.Get(s.URL + "/account")
	resp, _ := b.PostForm(s.URL+"/account/factors/totp", url.Values{"csrf": {mfaMatch(t, mfaCSRF, account)}})
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/login?req=") {
		t.Fatalf("adding a factor answered %d %q, want the login page (a fresh sign-in)", resp.StatusCode, loc)
	}
	f := b.OpenLoginAt(s, loc)
	resp, _ = b.Submit(f, username, password)
	page := mfaFollow(t, s, b, resp, "/login/enrol?t=")
	secret = mfaMatch(t, mfaSecret, page)
	tok, csrf := mfaMatch(t, mfaToken, page), mfaMatch(t, mfaCSRF, page)
	if resp, _ = b.PostForm(s.URL+"/login/enrol", url.Values{"t": {tok}, "csrf": {csrf}, "code": {"000000"}}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong first code answered %d", resp.StatusCode)
	}
	at = time.Now()
	first, _ = totp.GenerateCode(secret, at)
	resp, page = b.PostForm(s.URL+"/login/enrol", url.Values{"t": {tok}, "csrf": {csrf}, "code": {first}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("confirming the key answered %d:\n%s", resp.StatusCode, page)
	}
	for _, m := range mfaCode.FindAllStringSubmatch(page, -1) {
		codes = append(codes, m[1])
	}
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes shown, want 10:\n%s", len(codes), page)
	}
	resp, _ = b.PostForm(s.URL+"/login/codes", url.Values{"t": {tok}, "csrf": {csrf}})
	if loc := resp.Header.Get("Location"); loc != "/account?status=factor_added" {
		t.Fatalf("after the codes: %d %q", resp.StatusCode, loc)
	}
	return secret, first, at, codes
}

// A person adds an authenticator app at /account (signing in again first),
// then every sign-in asks for its code: TOTP and recovery codes each work
// once, the step cannot be skipped, and the password grant is refused.
func TestSecondFactorTOTP(t *testing.T) {
	s := Start(t)
	b := NewBrowser(t)
	b.Authorize(s, AuthParams(), "alice", alicePass) // an SSO session
	secret, first, now, codes := mfaEnrol(t, s, b, "alice", alicePass)

	// A sign-in now stops at the second step.
	signIn := func(t *testing.T, params url.Values) (*Browser, string, string) {
		t.Helper()
		b := NewBrowser(t)
		f := b.OpenLogin(s, s.URL+"/authorize?"+params.Encode())
		resp, _ := b.Submit(f, "alice", alicePass)
		page := mfaFollow(t, s, b, resp, "/login/factor?t=") // not the RP: no code before the second factor
		return b, mfaMatch(t, mfaToken, page), mfaMatch(t, mfaCSRF, page)
	}

	t.Run("code, once", func(t *testing.T) {
		params := AuthParams()
		b, tok, csrf := signIn(t, params)
		// The code confirmed at enrolment is used already.
		resp, _ := b.PostForm(s.URL+"/login/factor", url.Values{"t": {tok}, "csrf": {csrf}, "code": {first}})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("the enrolment code again answered %d", resp.StatusCode)
		}
		// Skipping the step gets nothing.
		resp, _ = b.PostForm(s.URL+"/login/codes", url.Values{"t": {tok}, "csrf": {csrf}})
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("jumping past the second factor answered %d", resp.StatusCode)
		}
		next, _ := totp.GenerateCode(secret, now.Add(30*time.Second)) // within the ±1 step window
		resp, _ = b.PostForm(s.URL+"/login/factor", url.Values{"t": {tok}, "csrf": {csrf}, "code": {next}})
		got := ocCallback(t, resp, redirectURI)
		_, idt := ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, got, params), params)
		amr, _ := idt.Claims["amr"].([]any)
		if idt.Claims["acr"] != "2" || !slices.Contains(amr, any("otp")) || !slices.Contains(amr, any("mfa")) {
			t.Fatalf("acr %v amr %v, want acr 2 with otp and mfa", idt.Claims["acr"], amr)
		}
		// The same code in another sign-in is refused.
		b2, tok2, csrf2 := signIn(t, AuthParams())
		if resp, _ := b2.PostForm(s.URL+"/login/factor", url.Values{"t": {tok2}, "csrf": {csrf2}, "code": {next}}); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a used code answered %d", resp.StatusCode)
		}
	})

	t.Run("recovery code, once", func(t *testing.T) {
		params := AuthParams()
		b, tok, csrf := signIn(t, params)
		resp, _ := b.PostForm(s.URL+"/login/factor", url.Values{"t": {tok}, "csrf": {csrf}, "recovery": {codes[0]}})
		ocWantCode(t, s, ocCallback(t, resp, redirectURI), params)
		b2, tok2, csrf2 := signIn(t, AuthParams())
		if resp, _ := b2.PostForm(s.URL+"/login/factor", url.Values{"t": {tok2}, "csrf": {csrf2}, "recovery": {codes[0]}}); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a used recovery code answered %d", resp.StatusCode)
		}
	})

	t.Run("password grant refused", func(t *testing.T) {
		a := ocPost(t, s, "/token", &ocClient{id: passwordID, secret: pwSecret},
			url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePass}})
		ocWantOAuthError(t, a, http.StatusBadRequest, "invalid_grant")
		if !strings.Contains(a.str("error_description"), "second factor") {
			t.Fatalf("error_description %q does not say why", a.str("error_description"))
		}
	})

	t.Run("brute force of the second step", func(t *testing.T) {
		b, tok, csrf := signIn(t, AuthParams())
		status := 0
		for range 40 {
			resp, _ := b.PostForm(s.URL+"/login/factor", url.Values{"t": {tok}, "csrf": {csrf}, "code": {"123456"}})
			if status = resp.StatusCode; status == http.StatusTooManyRequests {
				break
			}
		}
		if status != http.StatusTooManyRequests {
			t.Fatalf("40 wrong codes never throttled (last %d)", status)
		}
	})
}

// TestSecondFactorAttacks: what a person who knows only the password, or who
// got hold of a half-done sign-in, cannot do.
func TestSecondFactorAttacks(t *testing.T) {
	s := Start(t)
	secret, codes := mbEnrolHTTP(t, s, "alice", alicePass)

	// halfway signs alice in with her password and stops at the second step.
	halfway := func(t *testing.T, params url.Values) (*Browser, string, string) {
		t.Helper()
		b := NewBrowser(t)
		f := b.OpenLogin(s, s.URL+"/authorize?"+params.Encode())
		resp, _ := b.Submit(f, "alice", alicePass)
		if loc := resp.Header.Get("Location"); strings.Contains(loc, "code=") || strings.HasPrefix(loc, redirectURI) {
			t.Fatalf("the password alone sent the browser to %q", loc)
		}
		page := mfaFollow(t, s, b, resp, "/login/factor?t=")
		return b, mfaMatch(t, mfaToken, page), mfaMatch(t, mfaCSRF, page)
	}

	t.Run("no code, no session before the second factor", func(t *testing.T) {
		b, tok, _ := halfway(t, AuthParams())
		// The password step left no SSO session behind.
		silent := AuthParams("prompt", "none")
		ocWantAuthzError(t, s, ocSilent(t, s, b, silent), silent, "login_required")
		resp, _ := b.Get(s.URL + "/authorize?" + AuthParams().Encode())
		if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/login?") {
			t.Fatalf("a new request after the password step answered %d %q, want the login page", resp.StatusCode, loc)
		}
		// Straight to the token endpoint: the sign-in's token is no code.
		a := ocPost(t, s, "/token", &ocRP, url.Values{"grant_type": {"authorization_code"}, "code": {tok}, "redirect_uri": {redirectURI}})
		ocWantOAuthError(t, a, http.StatusBadRequest, "invalid_grant")
		// Nor does /account open.
		if resp, _ := b.Get(s.URL + "/account"); resp.StatusCode == http.StatusOK {
			t.Fatal("/account opened after the password step alone")
		}
	})

	t.Run("the second step in another browser", func(t *testing.T) {
		_, tok, csrf := halfway(t, AuthParams())
		other := NewBrowser(t)
		if resp, _ := other.Get(s.URL + "/login/factor?t=" + url.QueryEscape(tok)); resp.StatusCode == http.StatusOK {
			t.Fatal("another browser got the second-factor page")
		}
		code := mbCode(t, secret, time.Now().Add(30*time.Second))
		resp, _ := other.PostForm(s.URL+"/login/factor", url.Values{"t": {tok}, "csrf": {csrf}, "code": {code}})
		if resp.StatusCode < 400 || strings.Contains(resp.Header.Get("Location"), "code=") {
			t.Fatalf("another browser's second step answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})

	t.Run("forged csrf", func(t *testing.T) {
		b, tok, _ := halfway(t, AuthParams())
		code := mbCode(t, secret, time.Now().Add(30*time.Second))
		resp, _ := b.PostForm(s.URL+"/login/factor", url.Values{"t": {tok}, "csrf": {"forged"}, "code": {code}})
		if resp.StatusCode < 400 || strings.Contains(resp.Header.Get("Location"), "code=") {
			t.Fatalf("a forged csrf answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})

	// Adding another authenticator app is a change of the second factor: the
	// fresh sign-in before it asks for the factor alice has, not only her
	// password (otherwise a password and a stolen session cookie would be
	// enough to add an attacker's app).
	t.Run("adding a factor asks for the one there is", func(t *testing.T) {
		b, tok, csrf := halfway(t, AuthParams())
		resp, _ := b.PostForm(s.URL+"/login/factor", url.Values{"t": {tok}, "csrf": {csrf}, "recovery": {codes[0]}})
		ocCallback(t, resp, redirectURI) // signed in with both factors
		_, account := b.Get(s.URL + "/account")
		resp, _ = b.PostForm(s.URL+"/account/factors/totp", url.Values{"csrf": {mfaMatch(t, mfaCSRF, account)}})
		f := b.OpenLoginAt(s, resp.Header.Get("Location"))
		resp, _ = b.Submit(f, "alice", alicePass)
		if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/login/factor?") {
			t.Fatalf("re-authenticating to add a second authenticator app: after the password the browser is sent to %q, "+
				"want the second-factor page (alice has an authenticator app; a password alone adds a new one)", loc)
		}
	})
}
