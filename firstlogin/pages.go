package firstlogin

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/web"
)

type reviewView struct {
	Token, CSRF           string
	Connector             string
	Username, Email, Name string
	EmailLocked           bool // the email decides a link, or was vouched for: it cannot be changed here
	EmailRequired         bool
	NameRequired          bool
	Error                 string
}

func (s *Service) newReviewView(c echo.Context, token string, up Upstream) reviewView {
	pol := up.Policy
	return reviewView{Token: token, CSRF: s.csrf(c, token), Connector: s.reauth.Name(up.Connector),
		Username: up.Username, Email: up.Email, Name: up.Name,
		EmailLocked:   pol.MatchBy == "email" || (up.EmailVerified && pol.TrustEmail),
		EmailRequired: slices.Contains(pol.Required, "email"), NameRequired: slices.Contains(pol.Required, "name")}
}

func (s *Service) reviewPage(c echo.Context) error {
	token := c.QueryParam("t")
	_, up, err := s.pending(c, token, "review")
	if err != nil {
		return shown(err)
	}
	web.NoStore(c)
	return c.Render(http.StatusOK, "first_login_review.html", s.newReviewView(c, token, up))
}

func (s *Service) reviewSubmit(c echo.Context) error {
	token, p, up, err := s.postedPending(c, "review")
	if err != nil {
		return shown(err)
	}
	form := c.Request().PostForm
	v := s.newReviewView(c, token, up)
	v.Username, v.Name = strings.TrimSpace(form.Get("username")), strings.TrimSpace(form.Get("name"))
	if !v.EmailLocked { // a locked email is the upstream's, whatever was posted
		v.Email = strings.TrimSpace(form.Get("email"))
	}
	switch {
	case v.Username == "" || len(v.Username) > 255:
		v.Error = "Choose a username."
	case v.EmailRequired && v.Email == "":
		v.Error = "Enter your email address."
	case v.Email != "" && (!strings.Contains(v.Email, "@") || len(v.Email) > 320):
		v.Error = "Enter a valid email address."
	case v.NameRequired && v.Name == "":
		v.Error = "Enter your name."
	}
	if v.Error != "" {
		return c.Render(http.StatusUnprocessableEntity, "first_login_review.html", v)
	}
	ctx := c.Request().Context()
	var u *linking.User
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := use(tx, p); err != nil {
			return err
		}
		var err error
		u, err = s.withTx(tx).create(ctx, up.Policy, up, &reviewed{username: v.Username, email: v.Email, name: v.Name})
		return err
	})
	if errors.Is(err, linking.ErrUsernameTaken) {
		v.Error = "That username is already taken. Choose another one."
		return c.Render(http.StatusConflict, "first_login_review.html", v)
	}
	if errors.Is(err, errPendingUsed) {
		_, _, perr := s.pending(c, token, "review")
		return shown(perr)
	}
	if err != nil {
		return s.failed(c, err)
	}
	s.created(ctx, u, up)
	return s.finish.FinishLogin(c, p.LoginRequestID, u.ID, up.Connector)
}

// withTx is the service working inside a transaction.
func (s *Service) withTx(tx *gorm.DB) *Service {
	c := *s
	c.db, c.users = tx, linking.New(tx)
	return &c
}

type method struct {
	ID, Label, Username string
}

type linkView struct {
	Token, CSRF        string
	Connector          string // the new upstream
	AccountName        string // the existing account
	Passwords          []method
	Redirects          []method
	Error              string
	MatchedOnEmail     bool
	UpstreamIdentifier string
}

func (s *Service) newLinkView(c echo.Context, token string, p *Pending, up Upstream) (linkView, error) {
	ctx := c.Request().Context()
	u, err := s.users.UserByID(ctx, p.CandidateID)
	if err != nil {
		return linkView{}, err
	}
	links, err := s.users.Links(ctx, u.ID)
	if err != nil {
		return linkView{}, err
	}
	v := linkView{Token: token, CSRF: s.csrf(c, token), Connector: s.reauth.Name(up.Connector),
		AccountName: u.Username, MatchedOnEmail: up.Policy.MatchBy == "email", UpstreamIdentifier: up.Email}
	if !v.MatchedOnEmail {
		v.UpstreamIdentifier = up.Username
	}
	for _, l := range links {
		m := method{ID: l.Connector, Label: s.reauth.Label(l.Connector), Username: l.Username}
		switch s.reauth.Kind(l.Connector) {
		case "password":
			if l.Connector == linking.LocalConnector {
				m.Username = u.Username
			}
			v.Passwords = append(v.Passwords, m)
		case "redirect":
			v.Redirects = append(v.Redirects, m)
		}
	}
	return v, nil
}

func (s *Service) linkPage(c echo.Context) error {
	token := c.QueryParam("t")
	p, up, err := s.pending(c, token, "reauth")
	if err != nil {
		return shown(err)
	}
	v, err := s.newLinkView(c, token, p, up)
	if err != nil {
		return err
	}
	web.NoStore(c)
	return c.Render(http.StatusOK, "first_login_link.html", v)
}

// linkSubmit is the re-authentication form: a password of a connector
// already linked to the account, or a button for a redirect connector.
func (s *Service) linkSubmit(c echo.Context) error {
	token, p, up, err := s.postedPending(c, "reauth")
	if err != nil {
		return shown(err)
	}
	v, err := s.newLinkView(c, token, p, up)
	if err != nil {
		return err
	}
	form := c.Request().PostForm
	connector := form.Get("connector")
	if i := slices.IndexFunc(v.Redirects, func(m method) bool { return m.ID == connector }); i >= 0 {
		return s.reauth.BeginReauth(c, connector, token)
	}
	i := slices.IndexFunc(v.Passwords, func(m method) bool { return m.ID == connector })
	if i < 0 {
		return web.RenderError(c, http.StatusBadRequest, web.ErrorPage{Title: "This way to sign in is not linked to the account",
			Next: "Go back and use one of the ways offered on the page."})
	}
	subject, err := s.reauth.CheckPassword(c.Request().Context(), connector, v.Passwords[i].Username, form.Get("password"), c.RealIP())
	if err != nil {
		v.Error = messageOf(err)
		return c.Render(http.StatusUnauthorized, "first_login_link.html", v)
	}
	return s.proven(c, token, p, up, connector, subject)
}

// ReauthDone is where a redirect connector's re-authentication comes back.
func (s *Service) ReauthDone(c echo.Context, token, connector, subject string) error {
	p, up, err := s.pending(c, token, "reauth")
	if err != nil {
		return shown(err)
	}
	return s.proven(c, token, p, up, connector, subject)
}

// proven links the pending identity once the person proved control of the
// candidate through (connector, subject): that proof counts only for this
// pending identity, only if (connector, subject) is linked to the candidate,
// and only if the candidate's links did not change since it was asked for.
func (s *Service) proven(c echo.Context, token string, p *Pending, up Upstream, connector, subject string) error {
	ctx := c.Request().Context()
	owner, err := s.users.LinkedUser(ctx, connector, subject)
	if err != nil || owner.ID != p.CandidateID {
		s.log.Warn("re-authentication proved another account", "connector", connector, "candidate", p.CandidateID)
		v, verr := s.newLinkView(c, token, p, up)
		if verr != nil {
			return verr
		}
		v.Error = "That is not the account " + v.AccountName + ". Sign in to " + v.AccountName + " to link it."
		return c.Render(http.StatusUnauthorized, "first_login_link.html", v)
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := use(tx, p); err != nil {
			return err
		}
		return linking.New(tx).Link(ctx, p.CandidateID, p.LinkVersion, s.linkOf(up))
	})
	if err != nil {
		return s.failed(c, err)
	}
	s.linked(ctx, c.RealIP(), p.CandidateID, up, "after re-authentication through "+connector)
	cont, err := s.savePending(ctx, &Pending{LoginRequestID: p.LoginRequestID, Step: "linked", CandidateID: p.CandidateID},
		up, s.cookies.Get(c.Request(), web.BrowserCookie))
	if err != nil {
		return err
	}
	web.NoStore(c)
	return c.Render(http.StatusOK, "first_login_linked.html", map[string]string{
		"Token": cont, "CSRF": s.csrf(c, cont), "Connector": s.reauth.Name(up.Connector), "Account": owner.Username})
}

// continueLogin carries on to the application after the success page.
func (s *Service) continueLogin(c echo.Context) error {
	token, p, up, err := s.postedPending(c, "linked")
	if err != nil {
		return shown(err)
	}
	if err := s.db.WithContext(c.Request().Context()).Transaction(func(tx *gorm.DB) error { return use(tx, p) }); err != nil {
		_, _, perr := s.pending(c, token, "linked")
		return shown(perr)
	}
	return s.finish.FinishLogin(c, p.LoginRequestID, p.CandidateID, up.Connector)
}

// messageOf is what a person is told about a failed re-authentication.
func messageOf(err error) string {
	type userMessage interface{ UserMessage() string }
	var um userMessage
	if errors.As(err, &um) {
		return um.UserMessage()
	}
	return "That password is not right."
}

// postedPending reads a first-login form: its CSRF token must be right and
// its first login pending at this step; otherwise the person gets a page.
func (s *Service) postedPending(c echo.Context, step string) (string, *Pending, Upstream, error) {
	token, ok := s.checkForm(c)
	if !ok {
		return "", nil, Upstream{}, errors.Join(errShown, web.RenderError(c, http.StatusForbidden, formExpired))
	}
	p, up, err := s.pending(c, token, step)
	return token, p, up, err
}
