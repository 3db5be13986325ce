package templates

import (
	"embed"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

//go:embed html/*.html
var htmlFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Renderer renders the embedded pages; each page is parsed with the layout.
type Renderer struct {
	pages map[string]*template.Template
}

// New parses every page once.
func New() (*Renderer, error) {
	names, err := fs.Glob(htmlFiles, "html/*.html")
	if err != nil {
		return nil, err
	}
	r := &Renderer{pages: map[string]*template.Template{}}
	for _, name := range names {
		base := name[len("html/"):]
		if base == "layout.html" || base == "admin_layout.html" {
			continue
		}
		layout := "html/layout.html"
		if strings.HasPrefix(base, "admin_") { // the admin pages are wide tables, with a menu
			layout = "html/admin_layout.html"
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(htmlFiles, layout, name)
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", base, err)
		}
		r.pages[base] = t
	}
	return r, nil
}

// Render implements echo.Renderer.
func (r *Renderer) Render(w io.Writer, name string, data any, _ echo.Context) error {
	t, ok := r.pages[name]
	if !ok {
		return fmt.Errorf("no template %q", name)
	}
	return t.ExecuteTemplate(w, "layout", data)
}

// Static serves the embedded static assets (under /static/).
func Static() http.Handler {
	sub, _ := fs.Sub(staticFiles, "static")
	return http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
}

// funcs are the helpers templates may call.
var funcs = template.FuncMap{
	"when": func(t any) string {
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
	},
}
