package firstlogin

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/web"
)

// Finisher completes the login a first login interrupted (brokers implements
// it): loginRequestID is "" when no application is waiting.
type Finisher interface {
	FinishLogin(c echo.Context, loginRequestID, userID, connector string) error
}

// Reauthenticator lets a person prove control of an existing account through
// a connector already linked to it (brokers implements it).
type Reauthenticator interface {
	// CheckPassword runs a password connector, behind the brute-force
	// limiter, and returns the upstream subject it proved.
	CheckPassword(ctx context.Context, connector, username, password, ip string) (subject string, err error)
	// BeginReauth sends the browser to a redirect connector's upstream; its
	// answer comes back through ReauthDone with this token.
	BeginReauth(c echo.Context, connector, token string) error
	// Kind is "password", "redirect" or "" for a connector that cannot re-authenticate.
	Kind(connector string) string
	// Name is how people know a connector; Label is its button text.
	Name(connector string) string
	Label(connector string) string
}

// Service runs first logins.
type Service struct {
	db      *gorm.DB
	users   *linking.Service
	audit   *audit.Log
	cookies web.Cookies
	log     *slog.Logger
	finish  Finisher
	reauth  Reauthenticator
}

// New returns the service; Wire must give it its Finisher and Reauthenticator.
func New(db *gorm.DB, users *linking.Service, events *audit.Log, secure bool, log *slog.Logger) *Service {
	return &Service{db: db, users: users, audit: events, cookies: web.Cookies{Secure: secure}, log: log}
}

// Wire connects the broker, which needs this service as much as it needs the broker.
func (s *Service) Wire(f Finisher, r Reauthenticator) { s.finish, s.reauth = f, r }

// Routes registers the first-login pages.
func (s *Service) Routes(e *echo.Echo) {
	e.GET("/first-login/review", s.reviewPage)
	e.POST("/first-login/review", s.reviewSubmit)
	e.GET("/first-login/link", s.linkPage)
	e.POST("/first-login/link", s.linkSubmit)
	e.POST("/first-login/continue", s.continueLogin)
}

// ErrNeedsBrowser says the first login needs pages, which the password grant cannot show.
var ErrNeedsBrowser = errors.New("this account must be set up in the browser first")

// Start runs the first login of an identity with no link, for the pending
// login loginRequestID, and answers the browser.
func (s *Service) Start(c echo.Context, p Policy, up Upstream, loginRequestID string) error {
	ctx := c.Request().Context()
	d, err := Decide(ctx, s.users, p, up)
	if err != nil {
		return err
	}
	s.record(ctx, c.RealIP(), up, d)
	switch {
	case d.Action == Deny:
		return s.denied(c, d.Reason)
	case d.Action == Enroll && !d.Review:
		u, err := s.create(ctx, p, up, nil)
		if err != nil {
			return s.failed(c, err)
		}
		s.created(ctx, u, up)
		return s.finish.FinishLogin(c, loginRequestID, u.ID, up.Connector)
	case d.Action == Link && !d.Reauth:
		if err := s.users.Link(ctx, d.Candidate.ID, d.Candidate.LinkVersion, s.linkOf(up)); err != nil {
			return s.failed(c, err)
		}
		s.linked(ctx, c.RealIP(), d.Candidate.ID, up, "automatically (trusted, verified email)")
		return s.finish.FinishLogin(c, loginRequestID, d.Candidate.ID, up.Connector)
	}
	p2 := &Pending{LoginRequestID: loginRequestID, Step: "review"}
	up.Policy = p
	page := "/first-login/review"
	if d.Action == Link {
		p2.Step, p2.CandidateID, p2.LinkVersion, page = "reauth", d.Candidate.ID, d.Candidate.LinkVersion, "/first-login/link"
	}
	token, err := s.savePending(ctx, p2, up, s.cookies.BrowserID(c.Response(), c.Request()))
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, page+"?t="+token)
}

// Enroll is the first login of the password grant: only a plain "create"
// works without pages.
func (s *Service) Enroll(ctx context.Context, p Policy, up Upstream, ip string) (*linking.User, error) {
	d, err := Decide(ctx, s.users, p, up)
	if err != nil {
		return nil, err
	}
	s.record(ctx, ip, up, d)
	if d.Action != Enroll || d.Review {
		return nil, ErrNeedsBrowser
	}
	u, err := s.create(ctx, p, up, nil)
	if err == nil {
		s.created(ctx, u, up)
	}
	return u, err
}

// create makes the user and its link in one transaction (linking does both).
func (s *Service) create(ctx context.Context, p Policy, up Upstream, review *reviewed) (*linking.User, error) {
	nu := linking.NewUser{Username: up.Username, Email: up.Email, EmailVerified: up.EmailVerified && p.TrustEmail,
		Name: up.Name, Roles: up.Roles, Groups: up.Groups, Source: up.Connector}
	if review != nil {
		nu.Username, nu.Name = review.username, review.name
		if !strings.EqualFold(review.email, up.Email) { // typed in: nobody vouches for it
			nu.Email, nu.EmailVerified = review.email, false
		}
	}
	return s.users.CreateLinkedUser(ctx, s.linkOf(up), nu)
}

// created audits a user made by a first login (after its transaction: SQLite
// has one writer at a time).
func (s *Service) created(ctx context.Context, u *linking.User, up Upstream) {
	_ = s.audit.Record(ctx, audit.Event{Type: audit.UserCreated, Actor: up.Connector + ":" + up.Subject,
		UserID: u.ID, Connector: up.Connector, Detail: "first login"})
}

// linkOf is what a link records: the upstream's own name for the person, so
// that signing in through that connector again (re-authentication) uses it.
func (s *Service) linkOf(up Upstream) linking.Upstream {
	name := up.LoginName
	if name == "" {
		name = up.Username
	}
	return linking.Upstream{Connector: up.Connector, Subject: up.Subject, Username: name, Email: up.Email}
}

func (s *Service) record(ctx context.Context, ip string, up Upstream, d Decision) {
	detail := string(d.Action)
	switch {
	case d.Review:
		detail += " after review"
	case d.Reauth:
		detail += " after re-authentication"
	}
	e := audit.Event{Type: audit.FirstLoginDecision, Actor: up.Connector + ":" + up.Subject, Connector: up.Connector, IP: ip, Detail: detail}
	if d.Candidate != nil {
		e.UserID = d.Candidate.ID
	}
	if d.Action == Deny {
		e.Outcome = "failure"
	}
	_ = s.audit.Record(ctx, e) // logged by audit when it fails; the person's flow goes on
}

func (s *Service) linked(ctx context.Context, ip, userID string, up Upstream, how string) {
	_ = s.audit.Record(ctx, audit.Event{Type: audit.Linked, Actor: userID, UserID: userID, Connector: up.Connector,
		IP: ip, Detail: "linked " + how})
}

// pending loads the page's first login or answers with a page.
func (s *Service) pending(c echo.Context, token, step string) (*Pending, Upstream, error) {
	p, up, err := s.loadPending(c.Request().Context(), token, s.cookies.Get(c.Request(), web.BrowserCookie))
	if err == nil && p.Step != step {
		err = errPendingNotFound
	}
	if err == nil {
		return p, up, nil
	}
	page := web.ErrorPage{Title: "This sign-in has ended", Next: "Go back to the application and sign in again."}
	switch {
	case errors.Is(err, errPendingExpired):
		page.What = "Setting up your account took too long, so nothing was saved."
	case errors.Is(err, errPendingUsed):
		page.What = "This step was already completed."
	case errors.Is(err, errPendingNotFound):
		page.What = "fedhub does not know this sign-in, or it was started in another browser."
	default:
		return nil, Upstream{}, err
	}
	return nil, Upstream{}, errors.Join(errShown, web.RenderError(c, http.StatusBadRequest, page))
}

var errShown = errors.New("page shown")

func shown(err error) error {
	if errors.Is(err, errShown) {
		return nil
	}
	return err
}

// csrf is the form token of a first login: tied to the browser and the flow.
func (s *Service) csrf(c echo.Context, token string) string {
	return secret.Hash("first-login:" + s.cookies.Get(c.Request(), web.BrowserCookie) + ":" + token)[:32]
}

func (s *Service) checkForm(c echo.Context) (string, bool) {
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, web.MaxBody)
	if err := r.ParseForm(); err != nil {
		return "", false
	}
	token := r.PostForm.Get("t")
	return token, web.Equal(r.PostForm.Get("csrf"), s.csrf(c, token))
}

var formExpired = web.ErrorPage{Title: "The form has expired", What: "The form was not sent by this sign-in page.",
	Next: "Go back to the application and sign in again."}

func (s *Service) denied(c echo.Context, reason string) error {
	web.NoStore(c)
	return c.Render(http.StatusForbidden, "first_login_denied.html", map[string]string{"Reason": reason})
}

func (s *Service) failed(c echo.Context, err error) error {
	var msg string
	switch {
	case errors.Is(err, linking.ErrUsernameTaken):
		msg = "That username is already taken. Choose another one."
	case errors.Is(err, linking.ErrAlreadyLinked):
		msg = "This account is already linked to another fedhub user. Contact your administrator."
	case errors.Is(err, linking.ErrLinksChanged):
		msg = "The accounts linked to this fedhub user changed while you were signing in, so nothing was linked. Sign in again."
	default:
		s.log.Error("first login failed", "err", err)
		return web.RenderError(c, http.StatusInternalServerError, web.ErrorPage{Title: "Setting up your account failed",
			What: "fedhub could not save your account; nothing was saved.", Next: "Go back to the application and try again."})
	}
	return s.denied(c, msg)
}

type reviewed struct{ username, email, name string }
