package brokers

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/firstlogin"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/web"
)

// resolve finds the local user an upstream identity is linked to, keeping its
// profile in sync when the connector says so. An identity with no link yet
// comes back as the Upstream its first login starts from.
func (s *Service) resolve(ctx context.Context, conn Connector, id login.Identity) (*linking.User, *firstlogin.Upstream, error) {
	up, p, err := conn.Map(id)
	if err != nil {
		return nil, nil, err
	}
	u, err := s.users.LinkedUser(ctx, conn.ID, id.Subject)
	if errors.Is(err, linking.ErrNotLinked) {
		return nil, &up, nil
	}
	if err == nil && conn.Sync && !u.Disabled {
		err = s.users.SyncUser(ctx, u.ID, conn.ID, p)
		if err == nil {
			u, err = s.users.UserByID(ctx, u.ID)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	if u.Disabled {
		return nil, nil, login.ErrAccountDisabled
	}
	return u, nil, nil
}

// Map applies the connector's mappers to an identity: the upstream its first
// login starts from, and the profile a login with sync: force writes to the
// user it is linked to. A directory sync maps its entries the same way.
func (c Connector) Map(id login.Identity) (firstlogin.Upstream, linking.Profile, error) {
	p, err := c.profile(id)
	if err != nil {
		return firstlogin.Upstream{}, linking.Profile{}, err
	}
	up := firstlogin.Upstream{Connector: c.ID, Subject: id.Subject, LoginName: id.Username, Username: p.Username, Email: p.Email,
		EmailVerified: id.EmailVerified, Name: p.Name, Roles: p.Roles, Groups: p.Groups}
	// The upstream's email_verified counts only from a connector trusted for email.
	return up, linking.Profile{Email: p.Email, EmailVerified: id.EmailVerified && c.Policy.TrustEmail,
		Name: p.Name, Roles: p.Roles, Groups: p.Groups}, nil
}

func (s *Service) loggedIn(ctx context.Context, userID, connector, ip, detail string) {
	_ = s.audit.Record(ctx, audit.Event{Type: audit.LoginSucceeded, Actor: userID, UserID: userID,
		Connector: connector, IP: ip, Detail: detail}) // a failed audit write is logged by audit
}

// amrOf is how a connector of a kind authenticates (RFC 8176 "pwd"; "fed"
// for an upstream's login).
func amrOf(kind string) string {
	if kind == "password" {
		return "pwd"
	}
	return "fed"
}

func (s *Service) resolveFailed(c echo.Context, conn Connector, err error) error {
	var ue *login.UserError
	switch {
	case errors.Is(err, login.ErrAccountDisabled):
		return web.RenderError(c, http.StatusForbidden, web.ErrorPage{
			Title: "Your account is disabled", What: "You cannot sign in with this account.",
			Next: "Contact your administrator if you think this is a mistake."})
	case errors.As(err, &ue):
		return web.RenderError(c, http.StatusConflict, web.ErrorPage{Title: "Sign-in did not work", What: ue.Message,
			Next: "Go back to the application, or choose another way to sign in."})
	}
	s.log.ErrorContext(c.Request().Context(), "resolve identity", "connector", conn.ID, "err", err)
	return web.RenderError(c, http.StatusInternalServerError, web.ErrorPage{
		Title: "Sign-in failed", What: "fedhub could not finish your sign-in.", Next: "Go back to the application and try again."})
}
