package brokers

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/fedhub/fedhub/firstlogin"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/web"
)

// The dispatcher. Every sign-in is one login.Transaction. A step's handler
// loads it (load, or the upstream's Upstream/Continue), does its work, and
// calls one of the functions below, which decide what comes next:
//
//	choose ──password / passkey──▶ identified ──linked──▶ authenticated ──▶ finish (the issuer)
//	   └──upstream round trip──┘        └─no link─▶ first login ──┘   │
//	                                   (review │ reauth ─▶ linked)     └─▶ second factor │ enrolment ─▶ finish
//
// No step calls another package back: firstlogin, the connectors and the
// issuer are called, and return here.

// browser is the browser-binding secret of the request.
func (s *Service) browser(c echo.Context) string {
	return s.cookies.Get(c.Request(), web.BrowserCookie)
}

// load returns the page's transaction at one of the steps, or answers with a
// page saying why the sign-in cannot go on and returns errPageShown.
func (s *Service) load(c echo.Context, token string, steps ...login.Step) (*login.Transaction, error) {
	t, err := s.txns.Load(c.Request().Context(), token, s.browser(c))
	if err == nil && len(steps) > 0 && !slices.Contains(steps, t.Step) {
		err = login.ErrStepDone
	}
	if err != nil {
		return nil, s.ended(c, err)
	}
	return t, nil
}

// loadForm reads a step's form: its CSRF token must be this browser's and
// this transaction's, and the transaction at one of the steps.
func (s *Service) loadForm(c echo.Context, tokenField string, steps ...login.Step) (string, *login.Transaction, error) {
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, web.MaxBody)
	if err := r.ParseForm(); err != nil {
		return "", nil, page(c, http.StatusBadRequest, web.ErrorPage{
			Title: "The sign-in form could not be read", Next: "Go back and try again."})
	}
	token := r.PostForm.Get(tokenField)
	t, err := s.load(c, token)
	if err != nil {
		return "", nil, err
	}
	if !web.Equal(r.PostForm.Get("csrf"), login.CSRF(token, s.browser(c))) {
		return "", nil, page(c, http.StatusForbidden, signInFormExpired)
	}
	if !slices.Contains(steps, t.Step) {
		return "", nil, s.ended(c, login.ErrStepDone)
	}
	return token, t, nil
}

var signInFormExpired = web.ErrorPage{Title: "The sign-in form has expired", What: "The form was not sent by this sign-in page.",
	Next: "Go back to the application and sign in again."}

// ended answers a sign-in that cannot go on with the one page that says why,
// and returns errPageShown.
func (s *Service) ended(c echo.Context, err error) error {
	p := web.ErrorPage{Title: "This sign-in has ended", Next: "Go back to the application and sign in again."}
	switch {
	case errors.Is(err, login.ErrExpired):
		p.What = "The sign-in took too long and has expired, so nothing was saved."
	case errors.Is(err, login.ErrDone):
		p.What = "This sign-in was already completed."
	case errors.Is(err, login.ErrStepDone):
		p.What = "This step was already completed."
	case errors.Is(err, login.ErrAnswerUsed):
		p.What = "This answer of the sign-in service was already used."
	case errors.Is(err, login.ErrNotFound):
		p.What = "fedhub does not know this sign-in, or it was started in another browser."
	default:
		s.log.ErrorContext(c.Request().Context(), "sign-in", "err", err)
		return page(c, http.StatusInternalServerError, web.ErrorPage{
			Title: "Sign-in is unavailable", What: "fedhub could not complete your sign-in.", Next: "Try again in a moment."})
	}
	return page(c, http.StatusBadRequest, p)
}

// identified goes on from an identity a connector proved for t's login.
func (s *Service) identified(c echo.Context, t *login.Transaction, token string, conn Connector, id login.Identity) error {
	return s.identifiedBy(c, t, token, conn, id, amrOf(s.Kind(conn.ID)))
}

// identifiedBy is identified where the person authenticated by amr, not as
// conn's kind does (Kerberos for an identity of a directory connector).
func (s *Service) identifiedBy(c echo.Context, t *login.Transaction, token string, conn Connector, id login.Identity, amr string) error {
	ctx := c.Request().Context()
	if t.Purpose == login.ForLink {
		return s.finishLink(c, t, conn, id)
	}
	u, up, err := s.resolve(ctx, conn, id)
	if err != nil {
		return s.resolveFailed(c, conn, err)
	}
	// auth_time is the upstream's word for when the person logged in there;
	// a password connector's credential was typed just now.
	t.LoginVia, t.AMR, t.AuthTime = conn.ID, []string{amr}, cmp.Or(id.AuthTime, s.txns.Now())
	t.Subject, t.UpstreamState = id.Subject, id.Upstream // sealed at the callback
	if mf, ok := conn.Impl.(MultiFactorReporter); ok && conn.TrustUpstreamMFA && mf.MultiFactor(id) {
		t.AMR = append(t.AMR, "mfa")
	}
	if up == nil {
		return s.authenticated(c, t, token, u)
	}
	out, err := s.firstLogin.Begin(ctx, conn.Policy, *up, c.RealIP())
	if err != nil {
		return s.firstLoginFailed(c, err)
	}
	switch {
	case out.Denied != "":
		return s.denied(c, t, out.Denied)
	case out.UserID != "":
		return s.authenticatedAs(c, t, token, out.UserID)
	}
	up.Policy = conn.Policy
	data, err := json.Marshal(up)
	if err != nil {
		return fmt.Errorf("keep first login: %w", err)
	}
	t.Step, t.FirstLogin, t.CandidateID, t.LinkVersion = out.Step, string(data), out.CandidateID, out.LinkVersion
	if err := s.txns.Save(ctx, t); err != nil {
		return s.ended(c, err)
	}
	return s.show(c, t, token)
}

// show sends the browser to the page of t's step; a step whose page is
// only the answer to a form (linked, new codes) cannot be shown again.
func (s *Service) show(c echo.Context, t *login.Transaction, token string) error {
	q := "?t=" + url.QueryEscape(token)
	switch t.Step {
	case login.StepChoose:
		return c.Redirect(http.StatusSeeOther, "/login?req="+url.QueryEscape(token))
	case login.StepReview:
		return c.Redirect(http.StatusSeeOther, "/first-login/review"+q)
	case login.StepReauth:
		return c.Redirect(http.StatusSeeOther, "/first-login/link"+q)
	case login.StepSecondFactor:
		return c.Redirect(http.StatusSeeOther, "/login/factor"+q)
	case login.StepEnrolFactor:
		return c.Redirect(http.StatusSeeOther, "/login/enrol"+q)
	}
	return shown(s.ended(c, login.ErrStepDone))
}

// activeUser reads a user who may sign in (login.ErrAccountDisabled otherwise).
func (s *Service) activeUser(ctx context.Context, id string) (*linking.User, error) {
	u, err := s.users.UserByID(ctx, id)
	if err == nil && u.Disabled {
		err = login.ErrAccountDisabled
	}
	return u, err
}

// authenticatedAs is authenticated for a user known by ID.
func (s *Service) authenticatedAs(c echo.Context, t *login.Transaction, token, userID string) error {
	u, err := s.activeUser(c.Request().Context(), userID)
	if err != nil {
		return s.resolveFailed(c, Connector{ID: t.LoginVia}, err)
	}
	return s.authenticated(c, t, token, u)
}

// authenticated goes on once t's person is known to be u: to a second
// factor when the policy asks for one, otherwise to the issuer.
func (s *Service) authenticated(c echo.Context, t *login.Transaction, token string, u *linking.User) error {
	t.UserID, t.Step = u.ID, login.StepIdentified
	step, err := s.factorStep(c.Request().Context(), t, u)
	if err != nil {
		return err
	}
	if step != "" {
		return s.toFactorStep(c, t, token, step)
	}
	return s.finish(c, t, u)
}

// resume finishes t after a later step (a second factor): the user is read
// again, as they may have been disabled meanwhile.
func (s *Service) resume(c echo.Context, t *login.Transaction) error {
	u, err := s.activeUser(c.Request().Context(), t.UserID)
	if err != nil {
		return s.resolveFailed(c, Connector{ID: t.LoginVia}, err)
	}
	return s.finish(c, t, u)
}

// finish hands t to the issuer: a code for the application, the page that
// waits, or only an SSO session.
func (s *Service) finish(c echo.Context, t *login.Transaction, u *linking.User) error {
	ctx := c.Request().Context()
	a := login.Authentication{UserID: u.ID, Connector: t.LoginVia, Subject: t.Subject, AMR: t.AMR, ACR: login.ACRSingleFactor, AuthTime: t.AuthTime}
	if slices.Contains(a.AMR, "mfa") {
		a.ACR = login.ACRMultiFactor
	}
	if t.LoginVia != linkingLocal && t.Subject != "" { // what its re-checks start from
		if err := s.users.SignedInThrough(ctx, t.LoginVia, t.Subject, t.UpstreamState, t.AuthTime); err != nil {
			return err
		}
	}
	to, err := s.issuer.CompleteLogin(c.Response(), c.Request(), t, a)
	if err != nil {
		return shown(s.ended(c, err))
	}
	detail := ""
	if t.Purpose == login.ForSession {
		detail = "no application waiting"
	}
	s.loggedIn(ctx, u.ID, t.LoginVia, c.RealIP(), detail)
	web.NoStore(c) // the redirect carries the code
	if to == "" {
		return c.Render(http.StatusOK, "signed_in.html", map[string]string{"Name": u.Name, "Username": u.Username})
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// The first-login steps' pages.

func (s *Service) firstLoginRoutes(e *echo.Echo) {
	e.GET("/first-login/review", s.reviewPage)
	e.POST("/first-login/review", s.reviewSubmit)
	e.GET("/first-login/link", s.linkPage)
	e.POST("/first-login/link", s.reauthSubmit)
	e.POST("/first-login/separate", s.separateSubmit)
	e.POST("/first-login/continue", s.linkedContinue)
}

// upstreamOf is the first login's upstream identity kept in t.
func upstreamOf(t *login.Transaction) (firstlogin.Upstream, error) {
	var up firstlogin.Upstream
	if err := json.Unmarshal([]byte(t.FirstLogin), &up); err != nil {
		return up, fmt.Errorf("read first login: %w", err)
	}
	return up, nil
}

func (s *Service) reviewView(c echo.Context, t *login.Transaction, token string) (firstlogin.ReviewView, firstlogin.Upstream, error) {
	up, err := upstreamOf(t)
	if err != nil {
		return firstlogin.ReviewView{}, up, err
	}
	v := firstlogin.NewReviewView(up, s.Name(up.Connector))
	v.Token, v.CSRF = token, login.CSRF(token, s.browser(c))
	return v, up, nil
}

func (s *Service) reviewPage(c echo.Context) error {
	token := c.QueryParam("t")
	t, err := s.load(c, token, login.StepReview)
	if err != nil {
		return shown(err)
	}
	v, _, err := s.reviewView(c, t, token)
	if err != nil {
		return err
	}
	if _, err := s.users.UserByUsername(c.Request().Context(), v.Username); err == nil { // say so before the person submits
		v.Error = "The username " + v.Username + " is already taken. Choose another one."
	}
	web.NoStore(c)
	return c.Render(http.StatusOK, "first_login_review.html", v)
}

func (s *Service) reviewSubmit(c echo.Context) error {
	token, t, err := s.loadForm(c, "t", login.StepReview)
	if err != nil {
		return shown(err)
	}
	v, up, err := s.reviewView(c, t, token)
	if err != nil {
		return err
	}
	if v.Error = v.Read(c.Request().PostForm); v.Error != "" {
		return c.Render(http.StatusUnprocessableEntity, "first_login_review.html", v)
	}
	ctx := c.Request().Context()
	var u *linking.User
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		t.Step = login.StepIdentified // moved on: the same form again finds it used
		if err := s.txns.WithTx(tx).Save(ctx, t); err != nil {
			return err
		}
		var err error
		u, err = s.firstLogin.WithTx(tx).CreateReviewed(ctx, up, v)
		return err
	})
	switch {
	case errors.Is(err, linking.ErrUsernameTaken):
		v.Error = "That username is already taken. Choose another one."
		return c.Render(http.StatusConflict, "first_login_review.html", v)
	case errors.Is(err, login.ErrStepDone):
		return shown(s.ended(c, err))
	case err != nil:
		return s.firstLoginFailed(c, err)
	}
	s.firstLogin.Created(ctx, u, up)
	return s.authenticated(c, t, token, u)
}

func (s *Service) linkView(c echo.Context, t *login.Transaction, token string) (firstlogin.LinkView, firstlogin.Upstream, error) {
	up, err := upstreamOf(t)
	if err != nil {
		return firstlogin.LinkView{}, up, err
	}
	v, err := s.firstLogin.NewLinkView(c.Request().Context(), t.CandidateID, up, s.Name(up.Connector),
		func(id string) (string, string) { return s.Kind(id), s.Label(id) })
	v.Token, v.CSRF = token, login.CSRF(token, s.browser(c))
	return v, up, err
}

func (s *Service) linkPage(c echo.Context) error {
	token := c.QueryParam("t")
	t, err := s.load(c, token, login.StepReauth)
	if err != nil {
		return shown(err)
	}
	v, _, err := s.linkView(c, t, token)
	if err != nil {
		return err
	}
	web.NoStore(c)
	return c.Render(http.StatusOK, "first_login_link.html", v)
}

// reauthSubmit is the proof of control: a password of a connector already
// linked to the account, or a button for a redirect connector.
func (s *Service) reauthSubmit(c echo.Context) error {
	token, t, err := s.loadForm(c, "t", login.StepReauth)
	if err != nil {
		return shown(err)
	}
	v, up, err := s.linkView(c, t, token)
	if err != nil {
		return err
	}
	form := c.Request().PostForm
	connector := form.Get("connector")
	if i := indexOfMethod(v.Redirects, connector); i >= 0 {
		conn, _ := s.enabled(connector)
		return s.startFlow(c, t, conn)
	}
	i := indexOfMethod(v.Passwords, connector)
	if i < 0 {
		return web.RenderError(c, http.StatusBadRequest, web.ErrorPage{Title: "This way to sign in is not linked to the account",
			Next: "Go back and use one of the ways offered on the page."})
	}
	conn, _ := s.enabled(connector)
	id, err := s.passwordLogin(c.Request().Context(), conn.ID, conn.Impl.(PasswordConnector), v.Passwords[i].Username,
		form.Get("password"), c.RealIP())
	if err != nil {
		v.Error = reauthMessage(err)
		return c.Render(http.StatusUnauthorized, "first_login_link.html", v)
	}
	return s.proven(c, t, token, up, connector, id)
}

// separateSubmit declines the link to the matched account for an account of
// the person's own, where the connector's policy creates accounts: created at
// once with "create", after the review page with review_then_create or when
// the upstream's username is taken.
func (s *Service) separateSubmit(c echo.Context) error {
	token, t, err := s.loadForm(c, "t", login.StepReauth)
	if err != nil {
		return shown(err)
	}
	up, err := upstreamOf(t)
	if err != nil {
		return err
	}
	if !firstlogin.SeparateAllowed(up.Policy) {
		return web.RenderError(c, http.StatusForbidden, web.ErrorPage{Title: "A separate account cannot be created here",
			What: "Only people who already have a fedhub account can sign in this way.", Next: "Go back and sign in to the account, or ask an administrator."})
	}
	ctx := c.Request().Context()
	candidate := t.CandidateID
	up.Separate = true
	data, err := json.Marshal(up)
	if err != nil {
		return fmt.Errorf("keep first login: %w", err)
	}
	t.FirstLogin, t.CandidateID, t.LinkVersion = string(data), "", 0
	var u *linking.User
	version := t.Version // as loaded, for a save after a rolled-back transaction
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		t.Step = login.StepIdentified // moved on: the same form again finds it used
		if err := s.txns.WithTx(tx).Save(ctx, t); err != nil {
			return err
		}
		var err error
		if u, err = s.firstLogin.WithTx(tx).CreateSeparate(ctx, up); err == nil && u == nil {
			err = errReviewFirst
		}
		return err
	})
	switch {
	case errors.Is(err, login.ErrStepDone):
		return shown(s.ended(c, err))
	case errors.Is(err, errReviewFirst), errors.Is(err, linking.ErrUsernameTaken):
		s.firstLogin.DeclinedLink(ctx, c.RealIP(), candidate, up)
		t.Step, t.Version = login.StepReview, version
		if err := s.txns.Save(ctx, t); err != nil {
			return shown(s.ended(c, err))
		}
		return s.show(c, t, token)
	case err != nil:
		return s.firstLoginFailed(c, err)
	}
	s.firstLogin.DeclinedLink(ctx, c.RealIP(), candidate, up)
	s.firstLogin.Created(ctx, u, up)
	return s.authenticated(c, t, token, u)
}

// errReviewFirst rolls back a separate account's transaction that goes to the review page first.
var errReviewFirst = errors.New("review first")

func indexOfMethod(ms []firstlogin.Method, id string) int {
	for i, m := range ms {
		if m.ID == id {
			return i
		}
	}
	return -1
}

// reauthMessage is what a person is told about a failed re-authentication.
func reauthMessage(err error) string {
	var ue *login.UserError
	if errors.As(err, &ue) {
		return ue.Message
	}
	return "That password is not right."
}

// proven links t's upstream identity once the person proved control of the
// matched account through connector's identity id, and shows that it did.
func (s *Service) proven(c echo.Context, t *login.Transaction, token string, up firstlogin.Upstream, connector string, id login.Identity) error {
	ctx := c.Request().Context()
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := s.firstLogin.WithTx(tx).LinkProven(ctx, t.CandidateID, t.LinkVersion, up, connector, id.Subject); err != nil {
			return err
		}
		t.Step = login.StepLinked
		return s.txns.WithTx(tx).Save(ctx, t)
	})
	switch {
	case errors.Is(err, firstlogin.ErrOtherAccount):
		v, _, verr := s.linkView(c, t, token)
		if verr != nil {
			return verr
		}
		v.Error = "That is not the account " + v.AccountName + ". Sign in to " + v.AccountName + " to link it."
		return c.Render(http.StatusUnauthorized, "first_login_link.html", v)
	case errors.Is(err, login.ErrStepDone):
		return shown(s.ended(c, err))
	case err != nil:
		return s.firstLoginFailed(c, err)
	}
	s.firstLogin.Linked(ctx, c.RealIP(), t.CandidateID, up, connector)
	owner, err := s.users.UserByID(ctx, t.CandidateID)
	if err != nil {
		return err
	}
	web.NoStore(c)
	return c.Render(http.StatusOK, "first_login_linked.html", map[string]string{
		"Token": token, "CSRF": login.CSRF(token, s.browser(c)), "Connector": s.Name(up.Connector), "Account": owner.Username})
}

// linkedContinue carries on to the application after the "linked" page.
func (s *Service) linkedContinue(c echo.Context) error {
	token, t, err := s.loadForm(c, "t", login.StepLinked)
	if err != nil {
		return shown(err)
	}
	return s.authenticatedAs(c, t, token, t.CandidateID)
}

func (s *Service) denied(c echo.Context, t *login.Transaction, reason string) error {
	t.Step = login.StepDone // nothing more can happen in this sign-in
	if err := s.txns.Save(c.Request().Context(), t); err != nil {
		return shown(s.ended(c, err))
	}
	web.NoStore(c)
	return c.Render(http.StatusForbidden, "first_login_denied.html", map[string]string{"Reason": reason})
}

func (s *Service) firstLoginFailed(c echo.Context, err error) error {
	msg, theirs := firstlogin.FailureMessage(err)
	if !theirs {
		s.log.ErrorContext(c.Request().Context(), "first login failed", "err", err)
		return web.RenderError(c, http.StatusInternalServerError, web.ErrorPage{Title: "Setting up your account failed",
			What: "fedhub could not save your account; nothing was saved.", Next: "Go back to the application and try again."})
	}
	web.NoStore(c)
	return c.Render(http.StatusForbidden, "first_login_denied.html", map[string]string{"Reason": msg})
}
