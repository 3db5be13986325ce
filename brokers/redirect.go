package brokers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

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

// startFlow starts an upstream round trip of t with a redirect connector: it
// is stored with t, bound to this browser, before the browser goes upstream.
func (s *Service) startFlow(c echo.Context, t *login.Transaction, conn Connector) error {
	rc := conn.Impl.(RedirectConnector)
	r := c.Request()
	flow := s.flowOf(t, conn, secret.Token(32))
	buf := &bufferedResponse{header: http.Header{}}
	if err := rc.Begin(r.Context(), buf, r, flow); err != nil {
		s.log.ErrorContext(c.Request().Context(), "upstream login could not start", "connector", conn.ID, "err", err)
		return s.upstreamFailed(c, conn, err)
	}
	data, err := json.Marshal(flow.Data)
	if err != nil {
		return fmt.Errorf("keep upstream login: %w", err)
	}
	t.BeginUpstream(conn.ID, flow.State, string(data))
	if err := s.txns.Save(r.Context(), t); err != nil {
		return shown(s.ended(c, err))
	}
	return buf.flush(c.Response())
}

// callback receives the upstream's answer (OIDC redirect, SAML ACS POST).
func (s *Service) callback(c echo.Context) error {
	// Link-only connectors answer here too: whether this answer may log
	// someone in is decided by the transaction's purpose, when it continues.
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
	t, err := s.txns.Upstream(ctx, conn.ID, state)
	if errors.Is(err, login.ErrNotFound) && r.Method == http.MethodPost {
		if uc, ok := conn.Impl.(UnsolicitedConnector); ok && !conn.LinkOnly {
			return s.unsolicited(c, conn, uc)
		}
	}
	if err != nil {
		return shown(s.ended(c, err))
	}
	flow := s.flowOf(t, conn, state)
	if err := json.Unmarshal([]byte(t.UpstreamData), &flow.Data); err != nil {
		return fmt.Errorf("read upstream login: %w", err)
	}
	id, err := rc.Finish(ctx, r, flow)
	if err != nil {
		s.log.WarnContext(c.Request().Context(), "upstream login refused", "connector", conn.ID, "ip", c.RealIP(), "err", err)
		_ = s.failed(ctx, conn.ID, "", c.RealIP(), err)
		return s.upstreamFailed(c, conn, err)
	}
	id.Connector = conn.ID
	if id.Upstream, err = s.seal(id.Upstream); err != nil { // upstream tokens are never stored in the clear
		return fmt.Errorf("seal the upstream state of %s: %w", conn.ID, err)
	}
	token, err := t.Answered(id)
	if err != nil {
		return err
	}
	if err := s.txns.Save(ctx, t); err != nil {
		return shown(s.ended(c, err))
	}
	// Continue on a same-site request, which carries the browser's cookie.
	return c.Redirect(http.StatusSeeOther, "/broker/continue?t="+token)
}

// continueLogin takes an upstream's verified answer on in the browser that
// started the round trip.
func (s *Service) continueLogin(c echo.Context) error {
	ctx := c.Request().Context()
	t, err := s.txns.Continue(ctx, c.QueryParam("t"), s.browser(c))
	if err != nil {
		return shown(s.ended(c, err))
	}
	id, err := t.UpstreamIdentity()
	if err != nil {
		return err
	}
	token := t.Rekey() // the page token the browser uses from here on
	if err := s.txns.Save(ctx, t); err != nil {
		return shown(s.ended(c, err))
	}
	if t.Step == login.StepReauth { // a first login's proof of control
		if _, ok := s.enabled(id.Connector); !ok {
			return web.RenderError(c, http.StatusNotFound, unknownMethod)
		}
		up, err := upstreamOf(t)
		if err != nil {
			return err
		}
		return s.proven(c, t, token, up, id.Connector, id)
	}
	usable := s.usable
	if t.Purpose == login.ForLink {
		usable = s.enabled // linking is what link-only connectors are for
	}
	conn, ok := usable(id.Connector)
	if !ok {
		return web.RenderError(c, http.StatusNotFound, unknownMethod)
	}
	return s.identified(c, t, token, conn, id)
}

// unsolicited signs a person in from an IdP-initiated response: nobody
// waits, so the sign-in ends with an SSO session and a page saying so.
func (s *Service) unsolicited(c echo.Context, conn Connector, uc UnsolicitedConnector) error {
	r := c.Request()
	id, err := uc.FinishUnsolicited(r.Context(), r)
	if err != nil {
		s.log.WarnContext(c.Request().Context(), "unsolicited upstream answer refused", "connector", conn.ID, "ip", c.RealIP(), "err", err)
		_ = s.failed(r.Context(), conn.ID, "", c.RealIP(), err)
		return s.upstreamFailed(c, conn, err)
	}
	id.Connector = conn.ID
	t := &login.Transaction{Purpose: login.ForSession, Step: login.StepChoose, MaxAge: -1}
	token, err := s.txns.Create(r.Context(), t, s.cookies.BrowserID(c.Response(), r))
	if err != nil {
		return err
	}
	return s.identified(c, t, token, conn, id)
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

// bufferedResponse holds a connector's answer until the round trip is stored.
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

// flowOf is t's upstream round trip with conn as the connector sees it.
func (s *Service) flowOf(t *login.Transaction, conn Connector, state string) *Flow {
	f := &Flow{State: state, Callback: s.callbackURL(conn.ID), Data: map[string]string{}, ForceAuthn: t.ForceLogin, MaxAge: -1}
	if t.MaxAge > 0 {
		f.MaxAge = t.MaxAge
	}
	return f
}

// callbackURL is where a connector's upstream answers.
func (s *Service) callbackURL(connector string) string {
	return s.baseURL + "/broker/" + connector + "/callback"
}
