package e2e

import (
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/fedhub/fedhub/e2e/peers"
)

// TestBrowserLanguage: in Chromium, the login page is in German when the
// application asks for it with ui_locales — on every page of that login, here
// the page that refuses a wrong password, whose error is German too — or when the browser's
// Accept-Language prefers it, and in English otherwise. Screenshots of the
// German pages go next to the other artifacts.
func TestBrowserLanguage(t *testing.T) {
	s := Start(t)
	cases := []struct {
		name, uiLocales, accept, shot string
		wantLang, wantHeading         string
		wantLabel, wantButton         string
		wantError                     string // the handler's sentence, translated too
	}{
		{"ui_locales", "de", "en-US,en;q=0.9", "login-de-ui-locales", "de", "Anmelden", "Benutzername", "Anmelden",
			"Benutzername oder Passwort ist falsch."},
		{"Accept-Language", "", "fr-FR,fr;q=0.9,de-CH;q=0.8,en;q=0.5", "login-de-accept-language", "de", "Anmelden", "Benutzername", "Anmelden",
			"Benutzername oder Passwort ist falsch."},
		{"neither", "", "en-US,en;q=0.9", "", "en", "Sign in", "Username", "Sign in", "Invalid username or password."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := peers.Chromium(t)
			params := AuthParams()
			if tc.uiLocales != "" {
				params = AuthParams("ui_locales", tc.uiLocales)
			}
			_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders,
				network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": tc.accept}})
			if err != nil {
				t.Fatal(err)
			}
			if err := chromedp.Do(ctx, chromedp.Navigate(s.URL+"/authorize?"+params.Encode())); err != nil {
				t.Fatal(err)
			}
			check := func(step string) {
				t.Helper()
				if got := textOf(t, ctx, "h1"); got != tc.wantHeading {
					t.Errorf("%s: heading %q, want %q", step, got, tc.wantHeading)
				}
				for what, c := range map[string]struct{ js, want string }{
					"<html lang>":           {`document.documentElement.lang`, tc.wantLang},
					"the username label":    {`document.querySelector("label").firstChild.textContent.trim()`, tc.wantLabel},
					"the sign-in button":    {`document.querySelector("#sign-in").textContent`, tc.wantButton},
					"the title's beginning": {`document.title.split(" · ")[0]`, tc.wantHeading},
				} {
					got, err := chromedp.Run(ctx, chromedp.Evaluate[string](c.js))
					if err != nil || got != c.want {
						t.Errorf("%s: %s = %q (%v), want %q", step, what, got, err, c.want)
					}
				}
			}
			check("the login page")
			if tc.shot != "" {
				screenshot(t, ctx, tc.shot)
			}
			// The next page of the same login, a POST without ui_locales.
			err = chromedp.Do(ctx,
				chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
				chromedp.SendKeys(chromedp.CSS("#password"), "wrong-password"),
				chromedp.Click(chromedp.CSS("#sign-in")))
			if err != nil {
				t.Fatal(err)
			}
			if got := textOf(t, ctx, ".error"); got != tc.wantError {
				t.Errorf("error message %q, want %q", got, tc.wantError)
			}
			check("after a wrong password")
		})
	}
}
