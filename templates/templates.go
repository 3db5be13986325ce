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
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
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
	// pages of that name (layout.html included) and static/ files served
	// under /static/ before the built-in ones (logos, icons, CSS).
	Dir     string
	Primary string // the buttons' colour (#rrggbb), through /static/brand.css
}

// Renderer renders the pages of the current theme; Load swaps the theme
// while pages are being served (a configuration reload).
type Renderer struct {
	cur atomic.Pointer[site]
}

// site is one theme, parsed.
type site struct {
	pages  map[string]*template.Template
	static http.Handler
	brand  []byte // /static/brand.css
}

// New parses the built-in pages.
func New() (*Renderer, error) { return NewThemed(Theme{}) }

// NewThemed parses every page once, with theme.
func NewThemed(theme Theme) (*Renderer, error) {
	r := &Renderer{}
	return r, r.Load(theme)
}

// Load parses theme and, if every page parses, serves it from now on; on an
// error the current theme stays.
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
	product := theme.Product
	fm := template.FuncMap{"when": when, "product": func() string { return product }}
	s := &site{pages: map[string]*template.Template{}, static: http.StripPrefix("/static/", http.FileServer(http.FS(static))),
		brand: []byte(":root { --primary: " + theme.Primary + "; }\n")}
	if theme.Primary == "" {
		s.brand = []byte("/* no branding colour configured */\n")
	}
	for _, name := range names {
		base := name[len("html/"):]
		if base == "layout.html" || base == "admin_layout.html" {
			continue
		}
		layout := "layout.html"
		if strings.HasPrefix(base, "admin_") { // the admin pages are wide tables, with a menu
			layout = "admin_layout.html"
		}
		t, err := template.New(base).Funcs(fm).ParseFS(pages, layout, base)
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", base, err)
		}
		s.pages[base] = t
	}
	return s, nil
}

// overlay is a file system whose files in top replace those of base.
type overlay struct{ top, base fs.FS }

func (o overlay) Open(name string) (fs.File, error) {
	if f, err := o.top.Open(name); err == nil {
		return f, nil
	}
	return o.base.Open(name)
}

// Render implements echo.Renderer.
func (r *Renderer) Render(w io.Writer, name string, data any, _ echo.Context) error {
	t, ok := r.cur.Load().pages[name]
	if !ok {
		return fmt.Errorf("no template %q", name)
	}
	return t.ExecuteTemplate(w, "layout", data)
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
