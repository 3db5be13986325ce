package templates

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTheme writes files (path → content) under a new theme folder.
func writeTheme(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func render(t *testing.T, r *Renderer, page string, data any) string {
	t.Helper()
	var b bytes.Buffer
	if err := r.Render(&b, page, data, nil); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func get(r *Renderer, path string) (int, string) {
	w := httptest.NewRecorder()
	r.Static().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w.Code, w.Body.String()
}

func TestTheme(t *testing.T) {
	dir := writeTheme(t, map[string]string{
		"html/index.html":  `{{define "title"}}Welcome · {{product}}{{end}}{{define "content"}}<h1>Our own {{product}} page</h1>{{end}}`,
		"static/logo.svg":  `<svg xmlns="http://www.w3.org/2000/svg"/>`,
		"static/extra.css": `body { color: black }`,
	})
	r, err := NewThemed(Theme{Product: "Example Login", Dir: dir, Primary: "#0b5cad"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		what, got, want string
	}{
		{"an overridden page", render(t, r, "index.html", nil), "<h1>Our own Example Login page</h1>"},
		{"its title", render(t, r, "index.html", nil), "<title>Welcome · Example Login</title>"},
		{"a built-in page with the product name", render(t, r, "logged_out.html", nil), "· Example Login</title>"},
	}
	for _, c := range cases {
		if !strings.Contains(c.got, c.want) {
			t.Errorf("%s: no %q in\n%s", c.what, c.want, c.got)
		}
	}
	for path, want := range map[string]string{"/static/logo.svg": "<svg", "/static/fedhub.css": "var(--primary", "/static/brand.css": "--primary: #0b5cad;"} {
		if code, body := get(r, path); code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("%s = %d %q, want 200 with %q", path, code, body, want)
		}
	}

	// A theme whose page does not parse is refused; the running one stays.
	broken := writeTheme(t, map[string]string{"html/index.html": `{{define "content"}}{{.Unclosed{{end}}`})
	if err := r.Load(Theme{Product: "Broken", Dir: broken}); err == nil {
		t.Error("a broken theme loaded")
	}
	if got := render(t, r, "index.html", nil); !strings.Contains(got, "Our own Example Login page") {
		t.Errorf("after a refused theme the page is\n%s", got)
	}
	if err := r.Load(Theme{}); err != nil {
		t.Fatal(err)
	}
	if got := render(t, r, "index.html", nil); !strings.Contains(got, "<h1>fedhub</h1>") {
		t.Errorf("the built-in theme is not back:\n%s", got)
	}
	if code, _ := get(r, "/static/logo.svg"); code != http.StatusNotFound {
		t.Errorf("the old theme's logo is still served: %d", code)
	}
}
