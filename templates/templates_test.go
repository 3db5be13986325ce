package templates

import (
	"bytes"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/locale"
	"github.com/fedhub/fedhub/web"
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

// TestPagesOnFirstUse: the built-in pages, parsed on first use, all parse in
// every language, each once, also when asked for at the same time; and the
// first renders of a page at once all show it.
func TestPagesOnFirstUse(t *testing.T) {
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	s := r.cur.Load()
	if len(s.pages) < 2 {
		t.Fatalf("pages in %d languages, want every shipped one", len(s.pages))
	}
	var wg sync.WaitGroup
	for lang, byName := range s.pages {
		for name, page := range byName {
			for range 2 {
				wg.Go(func() {
					if t1, err := page(); err != nil {
						t.Errorf("%s %s: %v", lang, name, err)
					} else if t2, _ := page(); t1 != t2 {
						t.Errorf("%s %s parsed twice", lang, name)
					}
				})
			}
		}
	}
	wg.Wait()

	fresh, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		wg.Go(func() {
			var b bytes.Buffer
			if err := fresh.Render(&b, "logged_out.html", nil, nil); err != nil || !strings.Contains(b.String(), "<title>") {
				t.Errorf("first render: %v\n%s", err, b.String())
			}
		})
	}
	wg.Wait()
}

// TestMessagesExist: every message a built-in page asks for is in the source
// catalog (and so, by locale's TestCatalogsComplete, in every shipped one).
func TestMessagesExist(t *testing.T) {
	langs, err := locale.Load("", "")
	if err != nil {
		t.Fatal(err)
	}
	src := langs.For(locale.Source)
	uses := regexp.MustCompile(`\{\{(?:if |else )?th? "([^"]+)"`)
	names, err := fs.Glob(htmlFiles, "html/*.html")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range names {
		page, err := fs.ReadFile(htmlFiles, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range uses.FindAllSubmatch(page, -1) {
			n++
			if _, err := src.Text(string(m[1]), "Count", 2); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	if n < 100 {
		t.Errorf("only %d messages found in the pages: is the pattern still right?", n)
	}
}

// TestPageLanguage: a page is rendered in the language of the request's
// ui_locales, else the remembered ones of its login, else Accept-Language,
// else the default, and <html lang> says which.
func TestPageLanguage(t *testing.T) {
	e := pageServer(t)
	page := func(c echo.Context) error { return c.Render(http.StatusOK, "login.html", nil) }
	e.GET("/authorize", page)
	e.POST("/authorize", func(c echo.Context) error {
		_ = c.FormValue("client_id") // the handler parses the form, as the issuer's does
		return page(c)
	})
	e.GET("/login", page)
	cases := []struct {
		what, path, accept, cookie, wantLang, wantText string
	}{
		{"no preference: the default", "/login", "", "", "en", "<h1>Sign in</h1>"},
		{"Accept-Language", "/login", "fr, de;q=0.8", "", "de", "<h1>Anmelden</h1>"},
		{"ui_locales of the authorization request", "/authorize?ui_locales=de", "en", "", "de", "<h1>Anmelden</h1>"},
		{"remembered ui_locales win over Accept-Language", "/login", "en", "de", "de", "<h1>Anmelden</h1>"},
		{"a new authorization request without them forgets them", "/authorize", "en", "de", "en", "<h1>Sign in</h1>"},
	}
	for _, tc := range cases {
		req := httptest.NewRequest(http.MethodGet, tc.path, nil)
		req.Header.Set("Accept-Language", tc.accept)
		if tc.cookie != "" {
			req.AddCookie(&http.Cookie{Name: LocaleCookie, Value: tc.cookie})
		}
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		body := w.Body.String()
		if !strings.Contains(body, `<html lang="`+tc.wantLang+`">`) || !strings.Contains(body, tc.wantText) {
			t.Errorf("%s: want lang %s and %q in\n%s", tc.what, tc.wantLang, tc.wantText, body)
		}
	}

	// The authorization request — by GET or by POST — remembers its
	// ui_locales for the login's pages, and one without them forgets them.
	for _, tc := range []struct {
		method, query, body, want, wantLang string
	}{
		{http.MethodGet, "?ui_locales=fr+de", "", "fr_de", "de"},
		{http.MethodPost, "", "ui_locales=de&client_id=rp", "de", "de"},
		{http.MethodGet, "", "", "", "en"},
	} {
		w := httptest.NewRecorder()
		req := httptest.NewRequest(tc.method, "/authorize"+tc.query, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: LocaleCookie, Value: "de"})
		e.ServeHTTP(w, req)
		var got *http.Cookie
		for _, c := range w.Result().Cookies() {
			if c.Name == LocaleCookie {
				got = c
			}
		}
		if got == nil || got.Value != tc.want || (tc.want == "") != (got.MaxAge < 0) {
			t.Errorf("%s authorize%s %s set the cookie %v, want value %q", tc.method, tc.query, tc.body, got, tc.want)
		}
		if !strings.Contains(w.Body.String(), `<html lang="`+tc.wantLang+`">`) {
			t.Errorf("%s authorize%s %s: the page is not in %s", tc.method, tc.query, tc.body, tc.wantLang)
		}
	}
}

// TestPageSentenceWithValues: a sentence Go code wrote with values (a wait
// after wrong codes) reaches a German page in German, the value kept.
func TestPageSentenceWithValues(t *testing.T) {
	e := pageServer(t)
	e.GET("/device", func(c echo.Context) error {
		return c.Render(http.StatusTooManyRequests, "device.html", map[string]any{"Error": "Too many wrong codes from your network. Try again in 42s."})
	})
	req := httptest.NewRequest(http.MethodGet, "/device", nil)
	req.Header.Set("Accept-Language", "de")
	w := httptest.NewRecorder()
	e.ServeHTTP(w, req)
	if want := "Zu viele falsche Codes aus Ihrem Netzwerk. Versuchen Sie es in 42s erneut."; !strings.Contains(w.Body.String(), want) {
		t.Errorf("want %q in\n%s", want, w.Body)
	}
}

// pageServer renders the built-in pages in the language each request asks
// for, as fedhub's routes do.
func pageServer(t *testing.T) *echo.Echo {
	t.Helper()
	r, err := New()
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.Renderer = r
	e.Use(RememberLocale(web.Cookies{}, "/authorize"))
	return e
}
