package brokers

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/web"
)

// UnsolicitedConnector accepts upstream answers nobody asked for (IdP-initiated
// SAML). It must refuse them unless that is enabled for the connector.
type UnsolicitedConnector interface {
	FinishUnsolicited(ctx context.Context, r *http.Request) (login.Identity, error)
}

// maxUpstreamBody caps what an upstream may post back: signed and encrypted
// SAML responses are larger than a login form.
const maxUpstreamBody = 512 << 10

// beginFlow starts an upstream login: the flow is stored, bound to this
// browser, before the browser is sent to the upstream.
func (s *Service) beginFlow(c echo.Context, conn Connector, req *LoginRequest) error {
	return s.startFlow(c, conn, loginPurpose+req.ID, "")
}

// startFlow starts an upstream login for a purpose: a login request to
// complete, or a first login's re-authentication.
func (s *Service) startFlow(c echo.Context, conn Connector, purpose, returnTo string) error {
	rc := conn.Impl.(RedirectConnector)
	r := c.Request()
	browser := s.cookies.BrowserID(c.Response(), r)
	flow := &Flow{State: secret.Token(32), Callback: s.callbackURL(conn.ID), Data: map[string]string{}}
	buf := &bufferedResponse{header: http.Header{}}
	if err := rc.Begin(r.Context(), buf, r, flow); err != nil {
		s.log.Error("upstream login could not start", "connector", conn.ID, "err", err)
		return s.upstreamFailed(c, conn, err)
	}
	if err := s.flows.create(r.Context(), conn.ID, purpose, returnTo, browser, flow); err != nil {
		return err
	}
	return buf.flush(c.Response())
}

// callback receives the upstream's answer (OIDC redirect, SAML ACS POST).
func (s *Service) callback(c echo.Context) error {
	// Link-only connectors answer here too: whether this answer may log
	// someone in is decided by the flow's purpose, at the continue step.
	conn, ok := s.enabled(c.Param("id"))
	rc, redirect := conn.Impl.(RedirectConnector)
	if !ok || !redirect {
		return web.RenderError(c, http.StatusNotFound, unknownMethod)
	}
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, maxUpstreamBody)
	if err := r.ParseForm(); err != nil {
		return web.RenderError(c, http.StatusBadRequest, web.ErrorPage{
			Title: "The answer of the sign-in service could not be read", Next: "Go back to the application and sign in again."})
	}
	state := r.Form.Get("state")
	if state == "" {
		state = r.PostForm.Get("RelayState")
	}
	ctx := r.Context()
	rec, flow, err := s.flows.finishing(ctx, conn.ID, state)
	if errors.Is(err, errFlowNotFound) && r.Method == http.MethodPost {
		if uc, ok := conn.Impl.(UnsolicitedConnector); ok && !conn.LinkOnly {
			return s.unsolicited(c, conn, uc)
		}
	}
	if err != nil {
		return s.flowError(c, err)
	}
	flow.Callback = s.callbackURL(conn.ID)
	id, err := rc.Finish(ctx, r, flow)
	if err != nil {
		s.log.Warn("upstream login refused", "connector", conn.ID, "ip", c.RealIP(), "err", err)
		_ = s.failed(ctx, conn.ID, "", c.RealIP(), err)
		return s.upstreamFailed(c, conn, err)
	}
	id.Connector = conn.ID
	token, err := s.flows.verified(ctx, rec, id)
	if err != nil {
		return err
	}
	// Continue on a same-site request, which carries the flow cookie.
	return c.Redirect(http.StatusSeeOther, "/broker/continue?t="+token)
}

// continueLogin finishes an upstream login in the browser that started it.
func (s *Service) continueLogin(c echo.Context) error {
	r := c.Request()
	rec, id, err := s.flows.continuing(r.Context(), c.QueryParam("t"), s.cookies.Get(r, web.BrowserCookie))
	if err != nil {
		return s.flowError(c, err)
	}
	if userID, ok := strings.CutPrefix(rec.Purpose, linkPurpose); ok {
		conn, ok := s.enabled(rec.Connector)
		if !ok {
			return web.RenderError(c, http.StatusNotFound, unknownMethod)
		}
		return s.finishLink(c, userID, conn, id, rec.ReturnTo)
	}
	if token, ok := strings.CutPrefix(rec.Purpose, reauthPurpose); ok {
		if _, ok := s.enabled(rec.Connector); !ok {
			return web.RenderError(c, http.StatusNotFound, unknownMethod)
		}
		return s.firstLogin.ReauthDone(c, token, rec.Connector, id.Subject)
	}
	conn, ok := s.usable(rec.Connector)
	if !ok {
		return web.RenderError(c, http.StatusNotFound, unknownMethod)
	}
	return s.complete(c, strings.TrimPrefix(rec.Purpose, loginPurpose), conn, id)
}

// unsolicited signs a person in from an IdP-initiated response: there is no
// application waiting, so they get an SSO session and a page saying so.
func (s *Service) unsolicited(c echo.Context, conn Connector, uc UnsolicitedConnector) error {
	r := c.Request()
	id, err := uc.FinishUnsolicited(r.Context(), r)
	if err != nil {
		s.log.Warn("unsolicited upstream answer refused", "connector", conn.ID, "ip", c.RealIP(), "err", err)
		_ = s.failed(r.Context(), conn.ID, "", c.RealIP(), err)
		return s.upstreamFailed(c, conn, err)
	}
	id.Connector = conn.ID
	return s.complete(c, "", conn, id)
}

func (s *Service) flowError(c echo.Context, err error) error {
	p := web.ErrorPage{Title: "This sign-in has ended", Next: "Go back to the application and sign in again."}
	switch {
	case errors.Is(err, errFlowExpired):
		p.What = "The sign-in took too long and has expired."
	case errors.Is(err, errFlowUsed):
		p.What = "This answer of the sign-in service was already used."
	case errors.Is(err, errFlowNotFound):
		p.What = "fedhub does not know this sign-in, or it was started in another browser."
	default:
		return err
	}
	return web.RenderError(c, http.StatusBadRequest, p)
}

// upstreamFailed tells the person that the upstream login did not work,
// without the upstream's raw error.
func (s *Service) upstreamFailed(c echo.Context, conn Connector, err error) error {
	p := web.ErrorPage{Title: "Sign-in did not work",
		What: "The sign-in with " + conn.Name + " could not be completed.",
		Next: "Go back to the application and try again, or choose another way to sign in."}
	var ue *login.UserError
	if errors.As(err, &ue) {
		p.What = ue.Message
	}
	return web.RenderError(c, http.StatusBadGateway, p)
}

// bufferedResponse holds a connector's answer until the flow is stored.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(status int)      { b.status = status }

func (b *bufferedResponse) flush(w http.ResponseWriter) error {
	for k, vs := range b.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	_, err := w.Write(b.body.Bytes())
	return err
}

// callbackURL is where a connector's upstream answers.
func (s *Service) callbackURL(connector string) string {
	return s.baseURL + "/broker/" + connector + "/callback"
}

// Purposes of an upstream flow.
const (
	loginPurpose  = "login:"  // + the login request to complete
	reauthPurpose = "reauth:" // + the first login whose account the person proves control of
	linkPurpose   = "link:"   // + the signed-in user the identity is to be linked to
)

// BeginReauth starts a redirect connector's login so that a person proves
// control of an existing account (for the first-login link page).
func (s *Service) BeginReauth(c echo.Context, connector, token string) error {
	conn, ok := s.enabled(connector)
	if _, redirect := conn.Impl.(RedirectConnector); !ok || !redirect {
		return web.RenderError(c, http.StatusNotFound, unknownMethod)
	}
	return s.startFlow(c, conn, reauthPurpose+token, "")
}
