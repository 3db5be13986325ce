package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/labstack/echo/v4"
	"golang.org/x/oauth2"

	"github.com/fedhub/fedhub/issuer"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/web"
)

// Session is an admin UI session: its cookie holds a random token whose hash
// is TokenHash. AuthTime is when the person last proved who they are, ACR
// with how many factors (the ID token's acr: "1" or "2"). It was made from
// the SSO session SSOSessionID (the ID token's sid) and ends with it.
type Session struct {
	TokenHash    string `gorm:"primaryKey;size:64"`
	UserID       string `gorm:"size:36;not null;index"`
	SSOSessionID string `gorm:"size:64"`
	CSRF         string `gorm:"size:64;not null"`
	Once         string `gorm:"size:64"` // the token of a form that may be sent only once
	AuthTime     time.Time
	ACR          string `gorm:"size:16"`
	CreatedAt    time.Time
	ExpiresAt    time.Time `gorm:"index"`
}

// TableName keeps the admin sessions apart from the issuer's SSO sessions.
func (Session) TableName() string { return "admin_sessions" }

const (
	sessionCookie = "fedhub_admin"
	loginCookie   = "fedhub_admin_login" // state, nonce, PKCE verifier and where to return, for one login
)

// relyingParty is the admin UI as a client of fedhub's own issuer. Its HTTP
// calls to the issuer are served in-process, so that a node need not reach
// its own public URL; the protocol is the same.
type relyingParty struct {
	issuerURL string
	client    *http.Client
	mu        sync.Mutex
	provider  *oidc.Provider
}

func newRelyingParty(issuerURL string, h http.Handler) *relyingParty {
	return &relyingParty{issuerURL: issuerURL, client: &http.Client{Transport: handlerTransport{h}, Timeout: 10 * time.Second}}
}

// handlerTransport answers HTTP requests with a handler, in-process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, r)
	return w.Result(), nil
}

func (rp *relyingParty) setup(ctx context.Context) (*oidc.Provider, *oauth2.Config, error) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.provider == nil {
		p, err := oidc.NewProvider(oidc.ClientContext(ctx, rp.client), rp.issuerURL)
		if err != nil {
			return nil, nil, fmt.Errorf("admin sign-in: discovery: %w", err)
		}
		rp.provider = p
	}
	conf := &oauth2.Config{ClientID: issuer.AdminClientID, Endpoint: rp.provider.Endpoint(),
		RedirectURL: rp.issuerURL + "/admin/callback", Scopes: []string{oidc.ScopeOpenID, "profile", issuer.AdminScope}}
	return rp.provider, conf, nil
}

// localPath accepts only paths on fedhub's admin pages, never another site.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/admin") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") {
		return "/admin/users"
	}
	return p
}

// login sends the browser to fedhub's authorization endpoint as the
// fedhub-admin client; fresh=1 forces a new login (max_age=0), acr=2 one
// with a second factor (acr_values=2).
func (s *Service) login(c echo.Context) error {
	_, conf, err := s.rp.setup(c.Request().Context())
	if err != nil {
		return err
	}
	state, nonce, verifier := secret.Token(32), secret.Token(32), oauth2.GenerateVerifier()
	back := localPath(c.QueryParam("return"))
	s.cookies.Set(c.Response(), loginCookie, strings.Join([]string{state, nonce, verifier, back}, "|"), 15*time.Minute)
	opts := []oauth2.AuthCodeOption{oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)}
	if c.QueryParam("fresh") == "1" {
		opts = append(opts, oauth2.SetAuthURLParam("max_age", "0"))
	}
	if c.QueryParam("acr") == login.ACRMultiFactor {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", login.ACRMultiFactor))
	}
	// A relative URL: the browser stays on this fedhub, whatever host it used.
	to := conf.AuthCodeURL(state, opts...)
	return c.Redirect(http.StatusSeeOther, strings.TrimPrefix(to, s.issuerID))
}

// callback finishes the admin login: code exchange, ID-token verification and
// nonce check, then an admin session for an admin, a 403 for anyone else.
func (s *Service) callback(c echo.Context) error {
	r := c.Request()
	ctx := r.Context()
	parts := strings.Split(s.cookies.Get(r, loginCookie), "|")
	s.cookies.Clear(c.Response(), loginCookie)
	if len(parts) != 4 || !web.Equal(parts[0], c.QueryParam("state")) {
		return web.RenderError(c, http.StatusBadRequest, web.ErrorPage{Title: "The sign-in to the admin pages has ended",
			What: "It was started in another browser or took too long.", Next: "Open /admin again."})
	}
	if c.QueryParam("error") != "" {
		return web.RenderError(c, http.StatusForbidden, web.ErrorPage{Title: "You are not signed in to the admin pages",
			Next: "Open /admin again and sign in."})
	}
	provider, conf, err := s.rp.setup(ctx)
	if err != nil {
		return err
	}
	octx := oidc.ClientContext(ctx, s.rp.client)
	tok, err := conf.Exchange(octx, c.QueryParam("code"), oauth2.VerifierOption(parts[2]))
	if err != nil {
		return fmt.Errorf("admin sign-in: exchange: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: issuer.AdminClientID}).Verify(octx, raw)
	if err != nil {
		return fmt.Errorf("admin sign-in: ID token: %w", err)
	}
	var claims struct {
		Nonce    string `json:"nonce"`
		AuthTime int64  `json:"auth_time"`
		ACR      string `json:"acr"`
		SID      string `json:"sid"`
	}
	if err := idt.Claims(&claims); err != nil || !web.Equal(claims.Nonce, parts[1]) {
		return errors.New("admin sign-in: the ID token's nonce does not match")
	}
	if claims.SID == "" { // nothing to end the admin session with
		return errors.New("admin sign-in: the ID token names no SSO session (sid)")
	}
	u, err := s.users.UserByID(ctx, idt.Subject)
	if err != nil {
		return err
	}
	if !isAdmin(u) {
		return forbidden(c)
	}
	token := secret.Token(32)
	now := time.Now().UTC()
	sess := Session{TokenHash: secret.Hash(token), UserID: u.ID, SSOSessionID: claims.SID, CSRF: secret.Token(32), AuthTime: time.Unix(claims.AuthTime, 0).UTC(),
		ACR: claims.ACR, CreatedAt: now, ExpiresAt: now.Add(s.ttl)}
	if old := s.cookies.Get(r, sessionCookie); old != "" { // a new session ID on every login
		s.db.WithContext(ctx).Delete(&Session{}, "token_hash = ?", secret.Hash(old))
	}
	if err := s.db.WithContext(ctx).Create(&sess).Error; err != nil {
		return fmt.Errorf("admin session: %w", err)
	}
	s.cookies.Set(c.Response(), sessionCookie, token, 0)
	return c.Redirect(http.StatusSeeOther, parts[3])
}

func (s *Service) logout(c echo.Context) error {
	if !s.csrfOK(c) {
		return forbidden(c)
	}
	s.db.WithContext(c.Request().Context()).Delete(&Session{}, "token_hash = ?", secret.Hash(s.cookies.Get(c.Request(), sessionCookie)))
	s.cookies.Clear(c.Response(), sessionCookie)
	return c.Render(http.StatusOK, "logged_out.html", nil)
}

// The context keys of an authenticated admin request.
const (
	ctxUser    = "admin.user"
	ctxSession = "admin.session"
	ctxActor   = "admin.actor"
)

// requireAdminPage lets only admins with a live admin session in, whose SSO
// session is live too (signing out of fedhub signs out of the admin pages);
// anyone else signs in first, and a signed-in non-admin gets 403.
func (s *Service) requireAdminPage(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		signIn := func() error {
			if r.Method != http.MethodGet {
				return forbidden(c)
			}
			return c.Redirect(http.StatusSeeOther, "/admin/login?return="+url.QueryEscape(r.URL.RequestURI()))
		}
		token := s.cookies.Get(r, sessionCookie)
		var sess Session
		if token == "" || s.db.WithContext(r.Context()).Take(&sess, "token_hash = ? AND expires_at > ?", secret.Hash(token), time.Now().UTC()).Error != nil {
			return signIn()
		}
		live, err := s.issuer.SessionLive(r.Context(), sess.SSOSessionID)
		if err != nil {
			return err
		}
		if !live { // the SSO session ended: so does this one, for good
			if err := s.db.WithContext(r.Context()).Delete(&Session{}, "token_hash = ?", sess.TokenHash).Error; err != nil {
				return fmt.Errorf("end admin session: %w", err)
			}
			return signIn()
		}
		u, err := s.users.UserByID(r.Context(), sess.UserID)
		if err != nil && !errors.Is(err, linking.ErrNotFound) {
			return err
		}
		if !isAdmin(u) { // the role can be taken away while a session lives
			return forbidden(c)
		}
		web.NoStore(c)
		c.Set(ctxUser, u)
		c.Set(ctxSession, &sess)
		c.Set(ctxActor, Actor{ID: u.ID, IP: c.RealIP()})
		return next(c)
	}
}

// freshness is whether the admin may do a destructive action now.
type freshness struct {
	Needed bool // the admin must sign in again first
	StepUp bool // because their sign-in did not use the second factor they have
	URL    string
}

// freshLogin checks the admin's session before a destructive action: its
// login must be younger than admin.fresh_login_age (auth_time) and, once the
// admin has a second factor, must have used it (acr "2", both read from the
// ID token of their sign-in): a stolen password alone, or an SSO session of
// one factor, must not be enough to change who can sign in. Otherwise the
// admin signs in again at URL, then comes back to back: with max_age=0, and
// with acr_values=2 when they have a factor — the issuer then asks for it,
// because an SSO session whose login had one factor does not satisfy
// acr_values=2.
func (s *Service) freshLogin(c echo.Context, back string) (freshness, error) {
	sess := c.Get(ctxSession).(*Session)
	has, err := s.hasFactor(c.Request().Context(), sess.UserID)
	if err != nil {
		return freshness{}, err
	}
	f := freshness{StepUp: has && sess.ACR != login.ACRMultiFactor}
	f.Needed = f.StepUp || time.Since(sess.AuthTime) > s.fresh
	q := url.Values{"fresh": {"1"}}
	if has {
		q.Set("acr", login.ACRMultiFactor)
	}
	q.Set("return", back)
	f.URL = "/admin/login?" + q.Encode()
	return f, nil
}

func (s *Service) csrfOK(c echo.Context) bool {
	sess, ok := c.Get(ctxSession).(*Session)
	if !ok {
		return false
	}
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, web.MaxBody)
	return r.ParseForm() == nil && web.Equal(r.PostForm.Get("csrf"), sess.CSRF)
}

// requireAdminToken guards the API: a live access token of fedhub's issuer
// with the admin scope, of an admin user or of a client configured with it.
func (s *Service) requireAdminToken(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		web.NoStore(c)
		raw, ok := web.BearerToken(r)
		if !ok {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="fedhub-admin"`)
			return c.JSON(http.StatusUnauthorized, apiError{"unauthorized", "a bearer access token is required"})
		}
		tok, err := s.issuer.VerifyAccessToken(r.Context(), raw)
		if errors.Is(err, issuer.ErrInvalidToken) {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="fedhub-admin", error="invalid_token"`)
			return c.JSON(http.StatusUnauthorized, apiError{"invalid_token", "the access token is not valid"})
		}
		if err != nil {
			return err
		}
		if !hasScope(tok.Scope, issuer.AdminScope) {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="fedhub-admin", error="insufficient_scope", scope="`+issuer.AdminScope+`"`)
			return c.JSON(http.StatusForbidden, apiError{"insufficient_scope", "the token lacks the " + issuer.AdminScope + " scope"})
		}
		actor := Actor{ID: "client:" + tok.ClientID, IP: c.RealIP()}
		if tok.ForUser {
			u, err := s.users.UserByID(r.Context(), tok.Subject)
			if err != nil || !isAdmin(u) {
				return c.JSON(http.StatusForbidden, apiError{"forbidden", "the user is not an administrator"})
			}
			actor.ID = u.ID
		}
		c.Set(ctxActor, actor)
		return next(c)
	}
}

func hasScope(scope, want string) bool {
	for _, s := range strings.Fields(scope) {
		if s == want {
			return true
		}
	}
	return false
}

func forbidden(c echo.Context) error {
	return web.RenderError(c, http.StatusForbidden, web.ErrorPage{Title: "Administrators only",
		What: "Your account may not use the admin pages.", Next: "Ask an administrator if you need access."})
}

type apiError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// issueOnce gives the session a new single-use form token.
func (s *Service) issueOnce(c echo.Context) (string, error) {
	sess := c.Get(ctxSession).(*Session)
	once := secret.Token(32)
	err := s.db.WithContext(c.Request().Context()).Model(&Session{}).Where("token_hash = ?", sess.TokenHash).Update("once", once).Error
	return once, err
}

// useOnce consumes the single-use form token; false means it was used already.
func (s *Service) useOnce(c echo.Context, once string) (bool, error) {
	if once == "" {
		return false, nil
	}
	sess := c.Get(ctxSession).(*Session)
	res := s.db.WithContext(c.Request().Context()).Model(&Session{}).
		Where("token_hash = ? AND once = ?", sess.TokenHash, once).Update("once", "")
	return res.RowsAffected == 1, res.Error
}
