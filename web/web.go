package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/requestid"
)

// MaxBody caps request bodies: no OAuth or login form needs more.
const MaxBody = 64 << 10

// SecurityHeaders sets the headers every response carries: no framing, no
// sniffing, no referrer (pages may carry codes), and a strict CSP.
func SecurityHeaders() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Response().Header()
			h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
			h.Set("X-Frame-Options", "DENY")
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "no-referrer")
			return next(c)
		}
	}
}

// NoStore marks a response as never to be cached (tokens, pages with codes).
func NoStore(c echo.Context) {
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

// Cookies names and sets fedhub's cookies: HttpOnly, SameSite=Lax, and on
// https Secure with the __Host- prefix (no Domain, Path=/).
type Cookies struct {
	Secure bool
}

// Name is the name a cookie really has on the wire.
func (k Cookies) Name(base string) string {
	if k.Secure {
		return "__Host-" + base
	}
	return base
}

// Set writes a cookie; maxAge 0 makes it a browser-session cookie.
func (k Cookies) Set(w http.ResponseWriter, base, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: k.Name(base), Value: value, Path: "/", MaxAge: int(maxAge.Seconds()),
		HttpOnly: true, Secure: k.Secure, SameSite: http.SameSiteLaxMode,
	})
}

// Get reads a cookie's value, or "".
func (k Cookies) Get(r *http.Request, base string) string {
	c, err := r.Cookie(k.Name(base))
	if err != nil {
		return ""
	}
	return c.Value
}

// Clear deletes a cookie.
func (k Cookies) Clear(w http.ResponseWriter, base string) {
	http.SetCookie(w, &http.Cookie{
		Name: k.Name(base), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: k.Secure, SameSite: http.SameSiteLaxMode,
	})
}

// ErrorPage is what a person sees when something went wrong: what happened
// and what to do next, never a stack trace, an upstream's raw error or a secret.
type ErrorPage struct {
	Title     string
	What      string // what happened
	Next      string // what to do next
	RequestID string // set by RenderError: the ID to quote to support, as the logs and audit events have it
}

// RenderError answers with the error page.
func RenderError(c echo.Context, status int, page ErrorPage) error {
	NoStore(c)
	page.RequestID = requestid.From(c.Request().Context())
	return c.Render(status, "error.html", page)
}

// Equal compares two secrets in constant time.
func Equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// BrowserCookie holds a random secret that binds pending logins, upstream
// flows and first logins to the browser that started them.
const BrowserCookie = "fedhub_browser"

// BrowserID returns the browser's binding secret, giving it one first if it has none.
func (k Cookies) BrowserID(w http.ResponseWriter, r *http.Request) string {
	if id := k.Get(r, BrowserCookie); len(id) >= 32 {
		return id
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand docs)
	id := base64.RawURLEncoding.EncodeToString(b)
	k.Set(w, BrowserCookie, id, 0)
	return id
}

// BearerToken reads an RFC 6750 bearer token from the Authorization header;
// the scheme is case-insensitive (RFC 7235 §2.1).
func BearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// Text reports whether s can be stored as text in every database fedhub
// runs on: valid UTF-8 without NUL (PostgreSQL refuses both with an error,
// which must never become a 500 for a client's bad input).
func Text(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }
