package brokers

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/throttle"
	"github.com/fedhub/fedhub/web"
)

// Service owns the login page and the broker routes.
type Service struct {
	connectors []Connector
	users      *linking.Service
	issuer     Issuer
	limiter    *throttle.Limiter
	audit      *audit.Log
	log        *slog.Logger
}

// New returns the broker over the given connectors, in login-page order.
func New(connectors []Connector, users *linking.Service, issuer Issuer, limiter *throttle.Limiter, events *audit.Log, log *slog.Logger) *Service {
	return &Service{connectors: connectors, users: users, issuer: issuer, limiter: limiter, audit: events, log: log}
}

// Routes registers the login page and the broker routes.
func (s *Service) Routes(e *echo.Echo) {
	e.GET("/", func(c echo.Context) error { return c.Render(http.StatusOK, "index.html", nil) })
	e.GET("/login", s.loginPage)
	e.POST("/broker/:id/login", s.brokerLogin)
}

func (s *Service) connector(id string) (Connector, bool) {
	for _, c := range s.connectors {
		if c.ID == id {
			return c, true
		}
	}
	return Connector{}, false
}

type loginView struct {
	RequestID  string
	CSRF       string
	ClientName string
	Username   string
	Error      string
	Buttons    []Connector
	Forms      []Connector
}

func (s *Service) loginPage(c echo.Context) error {
	req, err := s.pending(c, c.QueryParam("req"))
	if err != nil {
		return shown(err)
	}
	return s.renderLogin(c, http.StatusOK, req, req.LoginHint, "")
}

func (s *Service) renderLogin(c echo.Context, status int, req *LoginRequest, username, msg string) error {
	v := loginView{RequestID: req.ID, CSRF: req.CSRF, ClientName: req.ClientName, Username: username, Error: msg}
	for _, conn := range s.connectors {
		if conn.Hidden {
			continue
		}
		if _, ok := conn.Impl.(PasswordConnector); ok {
			v.Forms = append(v.Forms, conn)
		} else {
			v.Buttons = append(v.Buttons, conn)
		}
	}
	web.NoStore(c)
	return c.Render(status, "login.html", v)
}

// errPageShown says that the person was already answered with a page.
var errPageShown = errors.New("error page shown")

// shown turns errPageShown into "handled".
func shown(err error) error {
	if errors.Is(err, errPageShown) {
		return nil
	}
	return err
}

// pending loads the login request, or answers with a page saying what to do
// and returns errPageShown.
func (s *Service) pending(c echo.Context, id string) (*LoginRequest, error) {
	req, err := s.issuer.PendingLogin(c.Request(), id)
	if err == nil {
		return req, nil
	}
	page := web.ErrorPage{Title: "This sign-in has ended", Next: "Go back to the application and sign in again."}
	switch {
	case errors.Is(err, ErrLoginExpired):
		page.What = "The sign-in took too long and has expired."
	case errors.Is(err, ErrLoginDone):
		page.What = "This sign-in was already completed."
	case errors.Is(err, ErrLoginNotFound):
		page.What = "fedhub does not know this sign-in, or it was started in another browser."
	default:
		s.log.Error("load login request", "err", err)
		return nil, errors.Join(errPageShown, web.RenderError(c, http.StatusInternalServerError, web.ErrorPage{
			Title: "Sign-in is unavailable", What: "fedhub could not load your sign-in.", Next: "Try again in a moment."}))
	}
	return nil, errors.Join(errPageShown, web.RenderError(c, http.StatusBadRequest, page))
}

func (s *Service) brokerLogin(c echo.Context) error {
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, web.MaxBody)
	if err := r.ParseForm(); err != nil {
		return web.RenderError(c, http.StatusBadRequest, web.ErrorPage{
			Title: "The sign-in form could not be read", Next: "Go back and try again."})
	}
	req, err := s.pending(c, r.PostForm.Get("req"))
	if err != nil {
		return shown(err)
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(req.CSRF)) != 1 {
		return web.RenderError(c, http.StatusForbidden, web.ErrorPage{
			Title: "The sign-in form has expired", What: "The form was not sent by this sign-in page.",
			Next: "Go back to the application and sign in again."})
	}
	conn, ok := s.connector(c.Param("id"))
	if !ok {
		return web.RenderError(c, http.StatusNotFound, web.ErrorPage{
			Title: "Unknown sign-in method", Next: "Go back and choose one of the options on the sign-in page."})
	}
	pc, ok := conn.Impl.(PasswordConnector)
	if !ok {
		return web.RenderError(c, http.StatusNotFound, web.ErrorPage{
			Title: "Unknown sign-in method", Next: "Go back and choose one of the options on the sign-in page."})
	}
	username := strings.TrimSpace(r.PostForm.Get("username"))
	id, err := s.passwordLogin(r.Context(), conn.ID, pc, username, r.PostForm.Get("password"), c.RealIP())
	if err != nil {
		return s.renderLogin(c, http.StatusUnauthorized, req, username, userMessage(err))
	}
	return s.complete(c, req, id, []string{"pwd"})
}

// passwordLogin runs one password connector behind the brute-force limiter.
func (s *Service) passwordLogin(ctx context.Context, connector string, pc PasswordConnector, username, password, ip string) (Identity, error) {
	if username == "" || password == "" {
		return Identity{}, ErrInvalidCredentials
	}
	userKey, ipKey := throttle.UserKey(connector, strings.ToLower(username)), throttle.IPKey(ip)
	wait, err := s.limiter.Wait(ctx, userKey, ipKey)
	if err != nil {
		return Identity{}, err
	}
	if wait > 0 {
		s.log.Warn("login throttled", "connector", connector, "username", username, "ip", ip, "wait", wait)
		err := &UserError{fmt.Sprintf("Too many failed sign-in attempts. Try again in %s.", roundUp(wait))}
		if aerr := s.audit.Record(ctx, audit.Event{Type: audit.LoginFailed, Actor: username, Connector: connector,
			IP: ip, Outcome: "failure", Detail: err.Message}); aerr != nil {
			return Identity{}, aerr
		}
		return Identity{}, err
	}
	id, err := pc.Login(ctx, username, password)
	if err != nil {
		if errors.Is(err, ErrInvalidCredentials) {
			if ferr := s.limiter.Failed(ctx, userKey, ipKey); ferr != nil {
				return Identity{}, ferr
			}
		}
		s.log.Info("login failed", "connector", connector, "username", username, "ip", ip, "err", err)
		if aerr := s.audit.Record(ctx, audit.Event{Type: audit.LoginFailed, Actor: username, Connector: connector,
			IP: ip, Outcome: "failure", Detail: userMessage(err)}); aerr != nil {
			return Identity{}, aerr
		}
		return Identity{}, err
	}
	if err := s.limiter.Succeeded(ctx, userKey); err != nil {
		return Identity{}, err
	}
	id.Connector = connector
	return id, nil
}

// PasswordLogin serves the issuer's password grant: the password connectors
// are tried in order, with the same limiter as the login form.
func (s *Service) PasswordLogin(ctx context.Context, username, password, ip string) (string, string, error) {
	err := error(ErrInvalidCredentials)
	for _, conn := range s.connectors {
		pc, ok := conn.Impl.(PasswordConnector)
		if !ok {
			continue
		}
		var id Identity
		id, err = s.passwordLogin(ctx, conn.ID, pc, username, password, ip)
		if errors.Is(err, ErrInvalidCredentials) {
			continue
		}
		if err != nil {
			return "", "", errors.New(userMessage(err))
		}
		u, err := s.resolve(ctx, id)
		if err != nil {
			return "", "", errors.New(userMessage(err))
		}
		if err := s.audit.Record(ctx, audit.Event{Type: audit.LoginSucceeded, Actor: u.ID, UserID: u.ID,
			Connector: conn.ID, IP: ip, Detail: "password grant"}); err != nil {
			return "", "", err
		}
		return u.ID, conn.ID, nil
	}
	return "", "", errors.New(userMessage(err))
}

// resolve finds (or, until first login is configurable, creates) the local
// user of an upstream identity, and refuses disabled users.
func (s *Service) resolve(ctx context.Context, id Identity) (*linking.User, error) {
	u, err := s.users.LinkedUser(ctx, id.Connector, id.Subject)
	if errors.Is(err, linking.ErrNotLinked) {
		u, err = s.users.CreateLinkedUser(ctx,
			linking.Upstream{Connector: id.Connector, Subject: id.Subject, Username: id.Username, Email: id.Email},
			linking.NewUser{Username: id.Username, Email: id.Email, EmailVerified: id.EmailVerified, Name: id.Name, Groups: id.Groups})
	}
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, ErrAccountDisabled
	}
	return u, nil
}

func (s *Service) complete(c echo.Context, req *LoginRequest, id Identity, amr []string) error {
	u, err := s.resolve(c.Request().Context(), id)
	if err != nil {
		if errors.Is(err, ErrAccountDisabled) {
			return web.RenderError(c, http.StatusForbidden, web.ErrorPage{
				Title: "Your account is disabled", What: "You cannot sign in with this account.",
				Next: "Contact your administrator if you think this is a mistake."})
		}
		s.log.Error("resolve identity", "connector", id.Connector, "err", err)
		return web.RenderError(c, http.StatusInternalServerError, web.ErrorPage{
			Title: "Sign-in failed", What: "fedhub could not finish your sign-in.", Next: "Go back to the application and try again."})
	}
	to, err := s.issuer.CompleteLogin(c.Response(), c.Request(), req.ID, Authentication{UserID: u.ID, Connector: id.Connector, AMR: amr})
	if err != nil {
		if _, perr := s.pending(c, req.ID); perr != nil { // expired or completed meanwhile
			return shown(perr)
		}
		return fmt.Errorf("complete login: %w", err)
	}
	if err := s.audit.Record(c.Request().Context(), audit.Event{Type: audit.LoginSucceeded, Actor: u.ID, UserID: u.ID,
		Connector: id.Connector, IP: c.RealIP()}); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// userMessage is what the person is told; details stay in the log.
func userMessage(err error) string {
	var ue *UserError
	switch {
	case errors.As(err, &ue):
		return ue.Message
	case errors.Is(err, ErrInvalidCredentials):
		return "Invalid username or password."
	case errors.Is(err, ErrAccountDisabled):
		return "Your account is disabled. Contact your administrator."
	}
	return "Sign-in is not possible right now. Try again in a moment."
}

func roundUp(d time.Duration) time.Duration {
	return d.Round(time.Second) + time.Second
}
