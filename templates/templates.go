package templates

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/locale"
	"github.com/fedhub/fedhub/web"
)

//go:embed html/*.html
var htmlFiles embed.FS

//go:embed static
var staticFiles embed.FS

// DefaultProduct is the product name pages show unless a theme names another.
const DefaultProduct = "fedhub"

// Theme is how an organisation makes the pages its own without forking.
type Theme struct {
	Product string // the name in titles and headings; default DefaultProduct
	// Dir, when set, holds html/NAME.html files that replace the built-in
	// pages of that name (layout.html included), static/ files served
	// under /static/ before the built-in ones (logos, icons, CSS) and
	// i18n/TAG.json message catalogs (see package locale).
	Dir     string
	Primary string // the buttons' colour (#rrggbb), through /static/brand.css
	// Locale is the page language when neither the login's ui_locales nor
	// the browser's Accept-Language names one there is a catalog for;
	// default English. Dir's i18n/TAG.json catalogs add to the built-in ones.
	Locale string
}

// Renderer renders the pages of the current theme; Load swaps the theme
// while pages are being served (a configuration reload).
type Renderer struct {
	cur atomic.Pointer[site]
}

// site is one theme.
type site struct {
	// pages are by language, then name, each parsed on first use: a server
	// may show few of them, in one language, or none for a long time.
	pages  map[string]map[string]func() (*template.Template, error)
	langs  *locale.Catalogs
	static http.Handler
	brand  []byte // /static/brand.css
}

// New parses the built-in pages.
func New() (*Renderer, error) { return NewThemed(Theme{}) }

// NewThemed checks theme and serves its pages.
func NewThemed(theme Theme) (*Renderer, error) {
	r := &Renderer{}
	return r, r.Load(theme)
}

// Load checks theme and, if it is sound, serves it from now on; on an error
// the current theme stays. A theme's own pages are parsed now, to be
// checked; the built-in ones (which this package's tests parse) on first
// use.
func (r *Renderer) Load(theme Theme) error {
	s, err := parse(theme)
	if err != nil {
		return err
	}
	r.cur.Store(s)
	return nil
}

func parse(theme Theme) (*site, error) {
	if theme.Product == "" {
		theme.Product = DefaultProduct
	}
	pages, err := fs.Sub(htmlFiles, "html")
	if err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	if theme.Dir != "" {
		if _, err := os.Stat(theme.Dir); err != nil {
			return nil, fmt.Errorf("theme: %w", err)
		}
		pages = overlay{top: os.DirFS(filepath.Join(theme.Dir, "html")), base: pages}
		static = overlay{top: os.DirFS(filepath.Join(theme.Dir, "static")), base: static}
	}
	names, err := fs.Glob(htmlFiles, "html/*.html") // a theme replaces pages; it adds none
	if err != nil {
		return nil, err
	}
	langs, err := locale.Load(theme.Dir, theme.Locale)
	if err != nil {
		return nil, err
	}
	s := &site{pages: map[string]map[string]func() (*template.Template, error){}, langs: langs, static: http.StripPrefix("/static/", http.FileServer(http.FS(static))),
		brand: []byte(":root { --primary: " + theme.Primary + "; }\n")}
	if theme.Primary == "" {
		s.brand = []byte("/* no branding colour configured */\n")
	}
	// Every page once per language: a page's words are its language's.
	for _, tag := range langs.Tags() {
		fm := funcs(theme.Product, langs.For(tag))
		byName := map[string]func() (*template.Template, error){}
		for _, name := range names {
			base := name[len("html/"):]
			if base == "layout.html" || base == "admin_layout.html" {
				continue
			}
			layout := "layout.html"
			if strings.HasPrefix(base, "admin_") { // the admin pages are wide tables, with a menu
				layout = "admin_layout.html"
			}
			byName[base] = sync.OnceValues(func() (*template.Template, error) {
				t, err := template.New(base).Funcs(fm).ParseFS(pages, layout, base)
				if err != nil {
					return nil, fmt.Errorf("parse template %s: %w", base, err)
				}
				return t, nil
			})
		}
		s.pages[tag.String()] = byName
	}
	if theme.Dir != "" {
		for _, byName := range s.pages {
			for _, page := range byName {
				if _, err := page(); err != nil {
					return nil, err
				}
			}
		}
	}
	return s, nil
}

// funcs are the functions pages call: t and th translate a message (th one
// with markup), tx a sentence the handler wrote, lang is the page's language
// for <html lang>.
func funcs(product string, l locale.Localizer) template.FuncMap {
	return template.FuncMap{"when": when, "product": func() string { return product },
		"t": l.Text, "th": l.HTML, "tx": l.Known, "lang": l.Lang}
}

// overlay is a file system whose files in top replace those of base.
type overlay struct{ top, base fs.FS }

func (o overlay) Open(name string) (fs.File, error) {
	if f, err := o.top.Open(name); err == nil {
		return f, nil
	}
	return o.base.Open(name)
}

// Render implements echo.Renderer, in the language chosen for the request:
// its own ui_locales (an authorization request's error page), else the ones
// remembered for the login (RememberLocale), else Accept-Language, else the
// theme's default.
func (r *Renderer) Render(w io.Writer, name string, data any, c echo.Context) error {
	s := r.cur.Load()
	lang := s.langs.Tags()[0]
	if c != nil {
		req := c.Request()
		ui := ownLocales(req)
		if ui == "" {
			ui, _ = c.Get(rememberedKey).(string)
		}
		lang = s.langs.Choose(ui, req.Header.Get("Accept-Language"))
	}
	page, ok := s.pages[lang.String()][name]
	if !ok {
		return fmt.Errorf("no template %q", name)
	}
	t, err := page()
	if err != nil {
		return err
	}
	return t.ExecuteTemplate(w, "layout", data)
}

// LocaleCookie remembers a login's ui_locales for the pages that follow the
// authorization request (login, first login, second factor, account linking).
const LocaleCookie = "fedhub_ui_locales"

// rememberedKey holds a request's remembered ui_locales in its echo.Context.
const rememberedKey = "fedhub.ui_locales"

// RememberLocale is middleware: an authorization request (at authorizePath)
// with ui_locales remembers them in a browser-session cookie, one without
// forgets them, and every request hands the remembered ones to Render. The
// authorization request's own ui_locales are read as its answer goes out,
// from what its handler parsed: the middleware never reads a body itself.
func RememberLocale(cookies web.Cookies, authorizePath string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			kept := cookies.Get(c.Request(), LocaleCookie) // the tags joined by "_": a cookie has no spaces
			if c.Request().URL.Path != authorizePath {
				if kept != "" { // none to hand on: no c.Set, which makes the context's map (every token and JWKS request)
					c.Set(rememberedKey, strings.ReplaceAll(kept, "_", " "))
				}
			} else { // a new login: its own ui_locales, or none
				c.Response().Before(func() {
					tags := cleanLocales(ownLocales(c.Request()))
					switch {
					case len(tags) > 0:
						cookies.Set(c.Response(), LocaleCookie, strings.Join(tags, "_"), 0)
					case kept != "":
						cookies.Clear(c.Response(), LocaleCookie)
					}
				})
			}
			return next(c)
		}
	}
}

// ownLocales are the ui_locales a request carries: in its query, or in the
// form its handler parsed (an authorization request may be a POST).
func ownLocales(req *http.Request) string {
	if req.Form != nil {
		return req.Form.Get("ui_locales")
	}
	return req.URL.Query().Get("ui_locales")
}

// cleanLocales keeps what a cookie may carry of a ui_locales value: at most
// a few tags of letters, digits and hyphens.
func cleanLocales(ui string) []string {
	var tags []string
	for _, f := range strings.Fields(ui) {
		if len(tags) == 4 || len(f) > 35 || strings.Trim(f, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
			break
		}
		tags = append(tags, f)
	}
	return tags
}

// Static serves the static assets under /static/: the theme's, then the
// built-in ones, and brand.css with the theme's colour.
func (r *Renderer) Static() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s := r.cur.Load()
		if req.URL.Path == "/static/brand.css" {
			w.Header().Set("Content-Type", "text/css; charset=utf-8")
			_, _ = w.Write(s.brand)
			return
		}
		s.static.ServeHTTP(w, req)
	})
}

// when formats a time for pages.
func when(t any) string {
	switch v := t.(type) {
	case time.Time:
		if v.IsZero() {
			return "—"
		}
		return v.UTC().Format("2006-01-02 15:04 UTC")
	case *time.Time:
		if v == nil || v.IsZero() {
			return "—"
		}
		return v.UTC().Format("2006-01-02 15:04 UTC")
	}
	return ""
}
