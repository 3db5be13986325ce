package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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
