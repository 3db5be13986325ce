package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/fedhub/fedhub/e2e/peers"
)

// flBrowserConnectors: a directory whose new people review their account,
// and the same directory proposing a link by email to a local account.
func flBrowserConnectors(dir *peers.LDAPServer) string {
	ldapBlock := `    ldap:
      urls: [` + dir.LDAPSURL + `]
      ca_file: ` + dir.CAFile + `
      bind_dn: ` + dir.ReaderDN + `
      bind_password: ${LDAP_BIND}
      user_base: ` + dir.UserBase + `
      group_base: ` + dir.GroupBase + `
`
	return `  - id: ldap-review
    type: ldap
    name: Corporate Directory
    label: Login with Corporate Directory
    first_login: {on_new: review_then_create, required_fields: [name]}
` + ldapBlock + `  - id: ldap-link
    type: ldap
    name: Partner Directory
    label: Login with Partner Directory
    first_login: {match_existing_by: email}
` + ldapBlock
}

// flChromeLogin starts a login at the RP in Chromium and signs in through a
// password connector's form.
func flChromeLogin(t *testing.T, ctx context.Context, rp *testRP, connector, username, password string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(rp.URL+"/start")); err != nil {
		t.Fatal(err)
	}
	textOf(t, ctx, "#connector-"+connector)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#connector-"+connector))); err != nil {
		t.Fatal(err)
	}
	textOf(t, ctx, "#form-"+connector)
	err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#username"), username),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Click(chromedp.CSS("#sign-in")),
	)
	if err != nil {
		t.Fatal(err)
	}
}

// flValue is an input's current value.
func flValue(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(sel)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// flClear empties an input.
func flClear(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	if !flEval[bool](t, ctx, `(() => { const e = document.querySelector('`+sel+`'); e.value = ''; return e.value === '' })()`) {
		t.Fatalf("could not clear %s", sel)
	}
}

// flEval evaluates a JavaScript expression in the page.
func flEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// TestFirstLoginBrowser: the review page and the link page, in a real browser.
func TestFirstLoginBrowser(t *testing.T) {
	dir := peers.OpenLDAP(t)
	s := Start(t, WithEnv("LDAP_BIND="+dir.ReaderPassword), WithConfig(flBase()+`users:
  - username: liddell
    email: alice@example.test
    email_verified: true
    name: Alice Liddell
    password: ${ALICE_PASSWORD}
connectors:
`+flBrowserConnectors(dir)))
	rp := startRP(t, s)

	t.Run("review page", func(t *testing.T) {
		ctx := peers.Chromium(t)
		bob := dir.Users["bob"]
		flChromeLogin(t, ctx, rp, "ldap-review", "bob", bob.Password)
		textOf(t, ctx, "#create-account")
		if got := textOf(t, ctx, "h1"); got != "Set up your account" {
			t.Fatalf("heading = %q", got)
		}
		if u, e, n := flValue(t, ctx, "#username"), flValue(t, ctx, "#email"), flValue(t, ctx, "#name"); u != "bob" || e != bob.Email || n != bob.Name {
			t.Fatalf("pre-filled %q %q %q, want the directory's bob %q %q", u, e, n, bob.Email, bob.Name)
		}
		if flEval[bool](t, ctx, `document.querySelector('#email').readOnly`) {
			t.Fatal("#email is read-only although no email decides a link here")
		}
		screenshot(t, ctx, "first-login-review")

		// The name is required: the browser does not send the form without it.
		flClear(t, ctx, "#name")
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#create-account"))); err != nil {
			t.Fatal(err)
		}
		if !flEval[bool](t, ctx, `document.querySelector('#name').validity.valueMissing`) ||
			!strings.Contains(flEval[string](t, ctx, `location.pathname`), "/first-login/review") {
			t.Fatal("the review form went out without the required name")
		}
		screenshot(t, ctx, "first-login-review-name-required")
		if n := flCount(t, s, "SELECT COUNT(*) FROM links WHERE connector = 'ldap-review'"); n != 0 {
			t.Fatalf("%d links before the review was submitted", n)
		}

		flClear(t, ctx, "#username")
		err := chromedp.Do(ctx,
			chromedp.SendKeys(chromedp.CSS("#username"), "bobby"),
			chromedp.SendKeys(chromedp.CSS("#name"), "Bob the Builder"),
			chromedp.Click(chromedp.CSS("#create-account")),
		)
		if err != nil {
			t.Fatal(err)
		}
		if got := textOf(t, ctx, "#who"); got != "Signed in as bobby via ldap-review" {
			t.Fatalf("RP page says %q", got)
		}
		screenshot(t, ctx, "first-login-review-signed-in")
		var name, email string
		flRow(t, s, "SELECT name, email FROM users WHERE username = 'bobby'", nil, &name, &email)
		if name != "Bob the Builder" || email != bob.Email {
			t.Fatalf("stored %q %q", name, email)
		}
	})

	t.Run("link page", func(t *testing.T) {
		ctx := peers.Chromium(t)
		alice := dir.Users["alice"]
		flChromeLogin(t, ctx, rp, "ldap-link", "alice", alice.Password)
		textOf(t, ctx, "#reauth-local")
		if got := textOf(t, ctx, "h1"); got != "You already have an account" {
			t.Fatalf("heading = %q", got)
		}
		if text := textOf(t, ctx, "main"); !strings.Contains(text, "alice@example.test") || !strings.Contains(text, "liddell") ||
			!strings.Contains(text, "Partner Directory") {
			t.Fatalf("the link page says:\n%s", text)
		}
		screenshot(t, ctx, "first-login-link")

		err := chromedp.Do(ctx,
			chromedp.SendKeys(chromedp.CSS("#password-local"), "not-"+alicePass),
			chromedp.Click(chromedp.CSS("#reauth-submit-local")),
		)
		if err != nil {
			t.Fatal(err)
		}
		if got := textOf(t, ctx, ".error"); got == "" {
			t.Fatal("no error for a wrong password")
		}
		screenshot(t, ctx, "first-login-link-wrong-password")
		if n := flCount(t, s, "SELECT COUNT(*) FROM links WHERE connector = 'ldap-link'"); n != 0 {
			t.Fatalf("%d links after a wrong password", n)
		}

		err = chromedp.Do(ctx,
			chromedp.SendKeys(chromedp.CSS("#password-local"), alicePass),
			chromedp.Click(chromedp.CSS("#reauth-submit-local")),
		)
		if err != nil {
			t.Fatal(err)
		}
		textOf(t, ctx, "#continue")
		if got := textOf(t, ctx, "h1"); got != "Your accounts are linked" {
			t.Fatalf("heading = %q", got)
		}
		screenshot(t, ctx, "first-login-linked")
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#continue"))); err != nil {
			t.Fatal(err)
		}
		if got := textOf(t, ctx, "#who"); got != "Signed in as liddell via ldap-link" {
			t.Fatalf("RP page says %q", got)
		}
		screenshot(t, ctx, "first-login-linked-signed-in")
		var owner string
		flRow(t, s, "SELECT user_id FROM links WHERE connector = 'ldap-link' AND subject = ?", []any{alice.ID}, &owner)
		if owner != flUserID(t, s, "liddell") {
			t.Fatalf("the link points to %s", owner)
		}
	})
}
