package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
)

func TestSecurityHeaders(t *testing.T) {
	e := echo.New()
	e.Use(SecurityHeaders())
	e.GET("/", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	h := w.Header()
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP = %q", csp)
	}
	for name, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
		if got := h.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func TestCookies(t *testing.T) {
	for _, c := range []struct {
		secure bool
		name   string
	}{{false, "fedhub_session"}, {true, "__Host-fedhub_session"}} {
		w := httptest.NewRecorder()
		Cookies{Secure: c.secure}.Set(w, "fedhub_session", "v", time.Hour)
		ck := w.Result().Cookies()[0]
		if ck.Name != c.name || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure != c.secure ||
			ck.Path != "/" || ck.Domain != "" {
			t.Errorf("secure=%v: cookie %+v", c.secure, ck)
		}
	}
}

func TestBrowserIDIsStable(t *testing.T) {
	k := Cookies{}
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	id := k.BrowserID(w, r)
	if len(id) < 32 || len(w.Result().Cookies()) != 1 {
		t.Fatalf("a new browser got %q and %d cookies", id, len(w.Result().Cookies()))
	}
	r.AddCookie(w.Result().Cookies()[0])
	w2 := httptest.NewRecorder()
	if again := k.BrowserID(w2, r); again != id || len(w2.Result().Cookies()) != 0 {
		t.Fatalf("a known browser got %q (was %q) and a new cookie", again, id)
	}
}

func TestBearerToken(t *testing.T) {
	for _, c := range []struct {
		header, want string
		ok           bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true}, // the scheme is case-insensitive (RFC 7235)
		{"Bearer  abc ", "abc", true},
		{"Bearer ", "", false},
		{"Basic abc", "", false},
		{"", "", false},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", c.header)
		if got, ok := BearerToken(r); got != c.want || ok != c.ok {
			t.Errorf("BearerToken(%q) = %q, %v", c.header, got, ok)
		}
	}
}
