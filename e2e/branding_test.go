package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/fedhub/fedhub/e2e/peers"
)

// TestBranding: a theme folder's icon is served under /static/ (the README's
// icon: /static/ad.svg), the product name and colour show on the login page,
// and a reload applies new branding without a restart.
func TestBranding(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "static"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "static", "ad.svg"), []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), 0o644); err != nil {
		t.Fatal(err)
	}
	branding := func(name string) string {
		return "branding:\n  product_name: " + name + "\n  theme_dir: " + dir + "\n  primary_color: \"#0b5cad\"\n"
	}
	s := Start(t, WithConfig(defaultConfig+branding("Example Login")))
	b := NewBrowser(t)
	loginTitle := func() string {
		f := b.OpenLogin(s, s.URL+"/authorize?"+AuthParams().Encode())
		title, _, _ := strings.Cut(f.Page[strings.Index(f.Page, "<title>")+len("<title>"):], "</title>")
		return title
	}
	if title := loginTitle(); !strings.HasSuffix(title, "· Example Login") {
		t.Errorf("login page title = %q, want the product name", title)
	}
	for path, want := range map[string]string{"/static/ad.svg": "<svg", "/static/brand.css": "#0b5cad", "/static/fedhub.css": "--primary"} {
		resp, body := b.Get(s.URL + path)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("%s = %d %q, want 200 with %q", path, resp.StatusCode, body, want)
		}
	}
	rlWrite(t, s, "", branding("Other Login"))
	rlSignal(t, s, syscall.SIGHUP, "configuration reloaded")
	if title := loginTitle(); !strings.HasSuffix(title, "· Other Login") {
		t.Errorf("login page title after the reload = %q, want the new product name", title)
	}
}

// TestBrowserBranding: in Chromium, the themed login page carries the product
// name, the brand colour on its button and the theme's connector icon — the
// Content-Security-Policy lets all of them through.
func TestBrowserBranding(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "static"), 0o755); err != nil {
		t.Fatal(err)
	}
	icon := `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="16" height="16" fill="#0b5cad"/></svg>`
	if err := os.WriteFile(filepath.Join(dir, "static", "ad.svg"), []byte(icon), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig + `branding:
  product_name: Example Login
  theme_dir: ` + dir + `
  primary_color: "#0b5cad"
connectors:
  - id: corp-ad
    type: ldap
    label: Login with Corporate AD
    icon: /static/ad.svg
    ldap:
      urls: [ldaps://` + freeAddr(t) + `]
      user_base: dc=example,dc=test
`
	s := Start(t, WithConfig(cfg))
	ctx := peers.Chromium(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL+"/authorize?"+AuthParams().Encode())); err != nil {
		t.Fatal(err)
	}
	textOf(t, ctx, "#sign-in")
	screenshot(t, ctx, "login-branded")
	for what, js := range map[string]string{
		"the title names the product":  `document.title.endsWith("· Example Login")`,
		"the button has the colour":    `getComputedStyle(document.querySelector("#sign-in")).backgroundColor === "rgb(11, 92, 173)"`,
		"the connector icon is loaded": `(() => { const i = document.querySelector("#connector-corp-ad img.icon"); return !!i && i.complete && i.naturalWidth === 16 })()`,
	} {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err != nil || !ok {
			t.Errorf("%s: %v (%v)", what, ok, err)
		}
	}
}
