package brokers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/web"
)

// The account page: a signed-in person sees the upstream identities linked to
// their account, links another one (through that connector's login, to
// themselves only) and unlinks one (never the last way to log in).
// Applications send people to /account/link/{connector} to link from their side.

func (s *Service) accountRoutes(e *echo.Echo) {
	e.GET("/account", s.accountPage)
	e.POST("/account/unlink", s.unlink)
	e.POST("/account/consents/revoke", s.revokeConsent)
	e.GET("/account/link/:id", s.linkStart)
	e.POST("/account/link/:id", s.linkSubmit)
	e.POST("/account/factors/totp", s.addFactor)
	e.POST("/account/factors/remove", s.removeFactor)
	e.GET("/account/password", s.passwordPage)
	e.POST("/account/password", s.changePassword)
}

// statusMessages are the outcomes the account page reports (by code, never
// by text from the URL).
var statusMessages = map[string]string{
	"linked":          "The account is linked. You can now sign in with it.",
	"already_linked":  "That account was already linked to you.",
	"unlinked":        "The account is unlinked.",
	"factor_added":    "Your second step is set up. fedhub asks for it when you sign in.",
	"factor_removed":  "The second step is removed.",
	"fresh":           "You signed in again: you can now make the change.",
	"password":        "Your password is changed. Your other sessions are signed out.",
	"consent_revoked": "The application can no longer use your account; it will ask again if you sign in to it.",
}

type accountLink struct {
	ID                  uint
	Connector, Username string
	LinkedAt, LastUsed  string
	Removable           bool
	Local               bool
}

type accountView struct {
	Username, Name string
	CSRF           string
	Links          []accountLink
	Consents       []login.Consent // what third-party applications were allowed
	Connectors     []Connector     // that can be linked
	Factors        []accountFactor
	CodesLeft      int
	HasPassword    bool
	Status, Error  string
}

// signedIn returns the browser's user, or sends the person to log in first.
func (s *Service) signedIn(c echo.Context, returnTo string) (*linking.User, error) {
	r := c.Request()
	sess, err := s.issuer.SignedIn(r)
	if err != nil {
		return nil, err
	}
	if sess.UserID == "" {
		if err := s.pageLogin(c, &login.Transaction{Purpose: login.ForPage, ReturnTo: returnTo}); err != nil {
			return nil, err
		}
		return nil, errPageShown
	}
	return s.users.UserByID(r.Context(), sess.UserID)
}

// pageLogin starts t, a sign-in that no client asked for, which returns to
// a fedhub page (t.ReturnTo, a path) with an SSO session, and sends the
// browser to its login page.
func (s *Service) pageLogin(c echo.Context, t *login.Transaction) error {
	if !strings.HasPrefix(t.ReturnTo, "/") || strings.HasPrefix(t.ReturnTo, "//") { // never off-site
		return fmt.Errorf("page login: %q is not a local path", t.ReturnTo)
	}
	t.Step, t.MaxAge = login.StepChoose, -1
	token, err := s.txns.Create(c.Request().Context(), t, s.cookies.BrowserID(c.Response(), c.Request()))
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/login?req="+url.QueryEscape(token))
}

// accountCSRF is the form token of the account pages: the browser-binding
// secret is an HttpOnly cookie no other site can read.
func (s *Service) accountCSRF(c echo.Context) string {
	return secret.Hash("account:" + s.cookies.BrowserID(c.Response(), c.Request()))[:32]
}

func (s *Service) accountPage(c echo.Context) error {
	u, err := s.signedIn(c, "/account")
	if err != nil {
		return shown(err)
	}
	return s.renderAccount(c, u, statusMessages[c.QueryParam("status")], "")
}

func (s *Service) renderAccount(c echo.Context, u *linking.User, status, problem string) error {
	links, err := s.users.Links(c.Request().Context(), u.ID)
	if err != nil {
		return err
	}
	v := accountView{Username: u.Username, Name: u.Name, CSRF: s.accountCSRF(c), Status: status, Error: problem}
	for _, l := range links {
		al := accountLink{ID: l.ID, Connector: s.Name(l.Connector), Username: l.Username,
			LinkedAt: l.CreatedAt.Format(time.DateOnly), Removable: linking.Removable(links, l.ID, s.Usable),
			Local: l.Connector == linking.LocalConnector}
		if l.LastLoginAt != nil {
			al.LastUsed = l.LastLoginAt.Format(time.DateTime)
		}
		v.Links = append(v.Links, al)
	}
	if v.Factors, v.CodesLeft, err = s.accountFactors(c.Request().Context(), u.ID); err != nil {
		return err
	}
	if v.Consents, err = s.issuer.Consents(c.Request().Context(), u.ID); err != nil {
		return err
	}
	v.HasPassword = slices.ContainsFunc(links, func(l linking.Link) bool { return l.Connector == linking.LocalConnector })
	for _, conn := range s.connectors() {
		if conn.Enabled && conn.ID != linking.LocalConnector && s.linkableKind(conn.ID) && s.linkable(links, conn.ID) {
			v.Connectors = append(v.Connectors, conn)
		}
	}
	web.NoStore(c)
	return c.Render(http.StatusOK, "account.html", v)
}

func (s *Service) accountForm(c echo.Context) bool {
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, web.MaxBody)
	return r.ParseForm() == nil && web.Equal(r.PostForm.Get("csrf"), s.accountCSRF(c))
}

// AllowsSeveral says whether a connector lets one user link several of its
// identities (multiple_identities); by default a user has at most one, in
// /account and the admin pages alike.
func (s *Service) AllowsSeveral(id string) bool {
	for _, c := range s.connectors() {
		if c.ID == id {
			return c.Policy.MultipleIdentities
		}
	}
	return false
}

// linkable says whether a user whose links are links may link another
// identity of the connector: not when they have one and it allows one.
func (s *Service) linkable(links []linking.Link, connector string) bool {
	return s.AllowsSeveral(connector) || !slices.ContainsFunc(links, func(l linking.Link) bool { return l.Connector == connector })
}

// Usable says whether a connector is a way to log in now: enabled and not
// link-only (the local password's connector included). Unlinking never
// takes a user's last usable one, here or in the admin pages.
func (s *Service) Usable(id string) bool {
	_, ok := s.usable(id)
	return ok
}

func (s *Service) unlink(c echo.Context) error {
	u, err := s.signedIn(c, "/account")
	if err != nil {
		return shown(err)
	}
	if !s.accountForm(c) {
		return web.RenderError(c, http.StatusForbidden, formExpired)
	}
	id, err := strconv.ParseUint(c.Request().PostForm.Get("link_id"), 10, 64)
	if err != nil {
		return s.renderAccount(c, u, "", "That account is not linked to you.")
	}
	switch err := s.users.Unlink(c.Request().Context(), u.ID, uint(id), s.Usable, false); {
	case errors.Is(err, linking.ErrLastLogin):
		return s.renderAccount(c, u, "", "This is your last way to sign in, so it cannot be unlinked.")
	case errors.Is(err, linking.ErrNotLinked):
		return s.renderAccount(c, u, "", "That account is not linked to you.")
	case err != nil:
		return err
	}
	_ = s.audit.Record(c.Request().Context(), audit.Event{Type: audit.Unlinked, Actor: u.ID, UserID: u.ID,
		IP: c.RealIP(), Detail: "link " + strconv.FormatUint(id, 10) + " by its owner"})
	return c.Redirect(http.StatusSeeOther, "/account?status=unlinked")
}

// revokeConsent takes back what the person allowed a third-party
// application; its grants end with it.
func (s *Service) revokeConsent(c echo.Context) error {
	u, err := s.signedIn(c, "/account")
	if err != nil {
		return shown(err)
	}
	if !s.accountForm(c) {
		return web.RenderError(c, http.StatusForbidden, formExpired)
	}
	if err := s.issuer.RevokeConsent(c.Request().Context(), u.ID, c.Request().PostForm.Get("client_id")); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/account?status=consent_revoked")
}

var formExpired = web.ErrorPage{Title: "The form has expired", What: "The form was not sent by this page.",
	Next: "Go back, reload the page and try again."}

// appLink is an application's request to link: where to send the person back.
type appLink struct {
	ClientID, RedirectURI, State string
}

func (a appLink) back(status string) string {
	u, _ := url.Parse(a.RedirectURI) // checked against the client's registered URIs
	q := u.Query()
	q.Set("link_status", status)
	if a.State != "" {
		q.Set("state", a.State)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

type linkPage struct {
	Connector            Connector
	CSRF                 string
	Username             string
	App                  *appLink
	AppName, AccountName string
	Password             bool // a password connector: its form; otherwise a button to its upstream
	Error                string
}

// linkStart shows what linking a connector means and asks to confirm: a
// password form for a password connector, a button for the others. An
// application's request (client_id, redirect_uri, state) is checked first.
func (s *Service) linkStart(c echo.Context) error {
	app, page := s.appLink(c, c.QueryParams())
	if page != nil {
		return web.RenderError(c, http.StatusBadRequest, *page)
	}
	conn, ok := s.enabled(c.Param("id"))
	if !ok || !s.linkableKind(conn.ID) || conn.ID == linking.LocalConnector {
		if app != nil {
			return c.Redirect(http.StatusSeeOther, app.back("unavailable"))
		}
		return web.RenderError(c, http.StatusNotFound, unknownMethod)
	}
	sess, err := s.issuer.SignedIn(c.Request())
	if err != nil {
		return err
	}
	if sess.UserID == "" && app != nil { // the application signs the person in first
		return c.Redirect(http.StatusSeeOther, app.back("login_required"))
	}
	u, err := s.signedIn(c, c.Request().URL.RequestURI())
	if err != nil {
		return shown(err)
	}
	if page, err := s.oneIdentity(c, u, conn, app); page || err != nil {
		return err
	}
	return s.renderLinkPage(c, conn, u, app, "")
}

// linkableKind says whether a connector can be linked from the account page:
// a password or a redirect connector (a Kerberos connector cannot: its
// identities are found in a directory, or are the principal's name).
func (s *Service) linkableKind(id string) bool {
	k := s.Kind(id)
	return k == "password" || k == "redirect"
}

// oneIdentity answers a request to link a connector of which the user has an
// identity already, where it allows one per user: the application hears
// already_linked (the person has an identity of it), the account page says
// so. It reports whether it answered.
func (s *Service) oneIdentity(c echo.Context, u *linking.User, conn Connector, app *appLink) (bool, error) {
	links, err := s.users.Links(c.Request().Context(), u.ID)
	if err != nil || s.linkable(links, conn.ID) {
		return false, err
	}
	if app != nil {
		return true, c.Redirect(http.StatusSeeOther, app.back("already_linked"))
	}
	return true, s.renderAccount(c, u, "", oneIdentityMessage(conn))
}

func oneIdentityMessage(conn Connector) string {
	return "You already have a " + conn.Name + " account linked, and you can link only one. Unlink it first to link another."
}

func (s *Service) renderLinkPage(c echo.Context, conn Connector, u *linking.User, app *appLink, problem string) error {
	v := linkPage{Connector: conn, CSRF: s.accountCSRF(c), App: app, AccountName: u.Username, Error: problem,
		Password: s.Kind(conn.ID) == "password"}
	if app != nil {
		v.AppName = app.ClientID
	}
	web.NoStore(c)
	status := http.StatusOK
	if problem != "" {
		status = http.StatusUnauthorized
	}
	return c.Render(status, "account_link.html", v)
}

// appLink reads an application's link request; a redirect URI that is not
// registered for the client is answered with a page, never a redirect.
func (s *Service) appLink(c echo.Context, q url.Values) (*appLink, *web.ErrorPage) {
	if q.Get("client_id") == "" && q.Get("redirect_uri") == "" {
		return nil, nil
	}
	a := &appLink{ClientID: q.Get("client_id"), RedirectURI: q.Get("redirect_uri"), State: q.Get("state")}
	if !s.issuer.RedirectAllowed(c.Request().Context(), a.ClientID, a.RedirectURI) || len(a.State) > 512 {
		return nil, &web.ErrorPage{Title: "This application cannot link accounts here",
			What: "The request names an application or a return address that fedhub does not know.",
			Next: "Go back to the application; if it keeps happening, tell its administrators."}
	}
	return a, nil
}

// linkSubmit links after the person confirmed: a password connector's
// credentials are checked here; a redirect connector's login starts.
func (s *Service) linkSubmit(c echo.Context) error {
	u, err := s.signedIn(c, "/account")
	if err != nil {
		return shown(err)
	}
	if !s.accountForm(c) {
		return web.RenderError(c, http.StatusForbidden, formExpired)
	}
	form := c.Request().PostForm
	app, page := s.appLink(c, form)
	if page != nil {
		return web.RenderError(c, http.StatusBadRequest, *page)
	}
	conn, ok := s.enabled(c.Param("id"))
	if !ok || conn.ID == linking.LocalConnector {
		return web.RenderError(c, http.StatusNotFound, unknownMethod)
	}
	if page, err := s.oneIdentity(c, u, conn, app); page || err != nil {
		return err
	}
	returnTo := "/account"
	if app != nil {
		returnTo = app.back("") // completed with the status at the end
	}
	t := &login.Transaction{Purpose: login.ForLink, Step: login.StepChoose, LinkUserID: u.ID, ReturnTo: returnTo, MaxAge: -1}
	if _, err := s.txns.Create(c.Request().Context(), t, s.cookies.BrowserID(c.Response(), c.Request())); err != nil {
		return err
	}
	switch impl := conn.Impl.(type) {
	case RedirectConnector:
		return s.startFlow(c, t, conn)
	case PasswordConnector:
		id, err := s.passwordLogin(c.Request().Context(), conn.ID, impl, strings.TrimSpace(form.Get("username")),
			form.Get("password"), c.RealIP())
		if err != nil {
			return s.renderLinkPage(c, conn, u, app, login.Message(err))
		}
		return s.finishLink(c, t, conn, id)
	}
	return web.RenderError(c, http.StatusNotFound, unknownMethod)
}

// finishLink links a proven upstream identity to the user who asked — only if
// that user is still the one signed in to this browser.
func (s *Service) finishLink(c echo.Context, t *login.Transaction, conn Connector, id login.Identity) error {
	ctx := c.Request().Context()
	userID, returnTo := t.LinkUserID, t.ReturnTo
	t.Step = login.StepDone
	if err := s.txns.Save(ctx, t); err != nil {
		return shown(s.ended(c, err))
	}
	current, err := s.issuer.SignedIn(c.Request())
	if err != nil {
		return err
	}
	if current.UserID != userID {
		return web.RenderError(c, http.StatusConflict, web.ErrorPage{Title: "Nothing was linked",
			What: "You signed out, or in as someone else, while linking.", Next: "Sign in again and link from your account page."})
	}
	status := "linked"
	owner, err := s.users.LinkedUser(ctx, conn.ID, id.Subject)
	switch {
	case err == nil && owner.ID == userID:
		status = "already_linked"
	case err == nil:
		status = "linked_elsewhere"
	case !errors.Is(err, linking.ErrNotLinked):
		return err
	default:
		u, err := s.users.UserByID(ctx, userID)
		if err != nil {
			return err
		}
		up := linking.Upstream{Connector: conn.ID, Subject: id.Subject, Username: id.Username, Email: id.Email,
			Several: s.AllowsSeveral(conn.ID)}
		switch err := s.users.Link(ctx, userID, u.LinkVersion, up); {
		case errors.Is(err, linking.ErrConnectorLinked):
			status = "connector_linked"
		case err != nil:
			status = "failed"
			s.log.WarnContext(c.Request().Context(), "account link failed", "user", userID, "connector", conn.ID, "err", err)
		default:
			_ = s.audit.Record(ctx, audit.Event{Type: audit.Linked, Actor: userID, UserID: userID, Connector: conn.ID,
				IP: c.RealIP(), Detail: "linked from the account page"})
		}
	}
	if returnTo == "/account" {
		if status == "linked_elsewhere" || status == "failed" || status == "connector_linked" {
			u, err := s.users.UserByID(ctx, userID)
			if err != nil {
				return err
			}
			problem := "That " + conn.Name + " account is linked to another fedhub user, so it was not linked to you."
			if status == "connector_linked" {
				problem = oneIdentityMessage(conn)
			}
			return s.renderAccount(c, u, "", problem)
		}
		return c.Redirect(http.StatusSeeOther, "/account?status="+status)
	}
	if status == "connector_linked" { // for the application: the person has an identity of it
		status = "already_linked"
	}
	u, _ := url.Parse(returnTo)
	q := u.Query()
	q.Set("link_status", status)
	u.RawQuery = q.Encode()
	return c.Redirect(http.StatusSeeOther, u.String())
}
