package brokers

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/web"
)

// HTTP Negotiate (RFC 4559) on /broker/{id}/negotiate?req=…: the login page
// sends the browser there, from its button or without a click where the
// connector says so. The first answer is 401 "WWW-Authenticate: Negotiate"; a
// browser with a Kerberos ticket for fedhub asks again with its token, which
// the connector verifies, and the sign-in goes on as any other. A browser
// without one shows the 401's page, which sends it back to the login page
// marked so that it does not try again: the person sees the login page with
// no error.

// negotiatedParam marks a login page that the browser came back to from the
// Negotiate attempt: it is not tried again.
const negotiatedParam = "negotiated"

// amrKerberos is the amr of a Kerberos sign-in.
const amrKerberos = "kerberos"

// negotiateURL is where the browser goes to try conn's Negotiate.
func negotiateURL(conn Connector, token string) string {
	return "/broker/" + conn.ID + "/negotiate?req=" + url.QueryEscape(token)
}

// automaticNegotiate is the Negotiate connector the login page tries without
// a click for this browser, if any.
func (s *Service) automaticNegotiate(c echo.Context) (Connector, bool) {
	if c.QueryParam(negotiatedParam) != "" {
		return Connector{}, false
	}
	for _, conn := range s.connectors() {
		nc, ok := conn.Impl.(NegotiateConnector)
		if ok && conn.Enabled && !conn.LinkOnly && !conn.Hidden && nc.Automatic(c.RealIP()) {
			return conn, true
		}
	}
	return Connector{}, false
}

func (s *Service) negotiate(c echo.Context) error {
	conn, ok := s.usable(c.Param("id"))
	nc, negotiates := conn.Impl.(NegotiateConnector)
	if !ok || !negotiates {
		return web.RenderError(c, http.StatusNotFound, unknownMethod)
	}
	token := c.QueryParam("req")
	t, err := s.load(c, token, login.StepChoose)
	if err != nil {
		return shown(err)
	}
	back := "/login?req=" + url.QueryEscape(token) + "&" + negotiatedParam + "=" + url.QueryEscape(conn.ID)
	scheme, value, _ := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
	if !strings.EqualFold(scheme, "Negotiate") {
		web.NoStore(c)
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, "Negotiate")
		return c.Render(http.StatusUnauthorized, "negotiate.html", map[string]string{"Back": back})
	}
	ctx, ip := c.Request().Context(), c.RealIP()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(value))
	id := login.Identity{}
	if err == nil {
		id, err = nc.Negotiate(ctx, raw)
	}
	switch {
	case errors.Is(err, ErrNoNegotiation):
		return c.Redirect(http.StatusSeeOther, back)
	case err != nil:
		s.log.Info("kerberos sign-in refused", "connector", conn.ID, "ip", ip, "err", err)
		_ = s.failed(ctx, conn.ID, "", ip, err) // audited; a failed audit write is logged by audit
		msg := "Signing in with your computer's Kerberos login did not work. Sign in another way."
		if errors.Is(err, login.ErrAccountDisabled) || errors.As(err, new(*login.UserError)) {
			msg = login.Message(err)
		}
		return s.renderLogin(c, http.StatusForbidden, t, token, "", "", msg)
	}
	// The identity is the one of the connector that resolved it, when one did.
	via := conn
	if id.Connector != "" && id.Connector != conn.ID {
		if via, ok = s.enabled(id.Connector); !ok {
			return web.RenderError(c, http.StatusNotFound, unknownMethod)
		}
	}
	id.Connector = via.ID
	return s.identifiedBy(c, t, token, via, id, amrKerberos)
}
