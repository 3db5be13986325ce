package brokers

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/web"
)

// resolve finds the local user of an upstream identity — creating and linking
// one at its first login — keeps the profile in sync when the connector says
// so, and refuses disabled users.
func (s *Service) resolve(ctx context.Context, conn Connector, id Identity) (*linking.User, error) {
	p, err := conn.Mappers.Apply(id)
	if err != nil {
		return nil, err
	}
	u, err := s.users.LinkedUser(ctx, conn.ID, id.Subject)
	switch {
	case errors.Is(err, linking.ErrNotLinked):
		u, err = s.users.CreateLinkedUser(ctx,
			linking.Upstream{Connector: conn.ID, Subject: id.Subject, Username: id.Username, Email: id.Email},
			linking.NewUser{Username: p.Username, Email: p.Email, EmailVerified: id.EmailVerified, Name: p.Name,
				Roles: p.Roles, Groups: p.Groups, Source: conn.ID})
		if errors.Is(err, linking.ErrUsernameTaken) {
			return nil, &UserError{"An account named " + p.Username + " already exists in fedhub. " +
				"Ask an administrator to link your " + conn.Name + " account to it."}
		}
	case err == nil && conn.Sync && !u.Disabled:
		err = s.users.SyncUser(ctx, u.ID, conn.ID, linking.Profile{Email: p.Email, EmailVerified: id.EmailVerified,
			Name: p.Name, Roles: p.Roles, Groups: p.Groups})
		if err == nil {
			u, err = s.users.UserByID(ctx, u.ID)
		}
	}
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, ErrAccountDisabled
	}
	return u, nil
}

// complete hands an authenticated person to the issuer, which sends them back
// to the application.
func (s *Service) complete(c echo.Context, req *LoginRequest, conn Connector, id Identity, amr []string) error {
	ctx := c.Request().Context()
	u, err := s.resolve(ctx, conn, id)
	if err != nil {
		return s.resolveFailed(c, conn, err)
	}
	to, err := s.issuer.CompleteLogin(c.Response(), c.Request(), req.ID, Authentication{UserID: u.ID, Connector: conn.ID, AMR: amr})
	if err != nil {
		if _, perr := s.pending(c, req.ID); perr != nil { // expired or completed meanwhile
			return shown(perr)
		}
		return err
	}
	if err := s.audit.Record(ctx, audit.Event{Type: audit.LoginSucceeded, Actor: u.ID, UserID: u.ID,
		Connector: conn.ID, IP: c.RealIP()}); err != nil {
		return err
	}
	web.NoStore(c) // the redirect carries the code
	return c.Redirect(http.StatusSeeOther, to)
}

func (s *Service) resolveFailed(c echo.Context, conn Connector, err error) error {
	var ue *UserError
	switch {
	case errors.Is(err, ErrAccountDisabled):
		return web.RenderError(c, http.StatusForbidden, web.ErrorPage{
			Title: "Your account is disabled", What: "You cannot sign in with this account.",
			Next: "Contact your administrator if you think this is a mistake."})
	case errors.As(err, &ue):
		return web.RenderError(c, http.StatusConflict, web.ErrorPage{Title: "Sign-in did not work", What: ue.Message,
			Next: "Go back to the application, or choose another way to sign in."})
	}
	s.log.Error("resolve identity", "connector", conn.ID, "err", err)
	return web.RenderError(c, http.StatusInternalServerError, web.ErrorPage{
		Title: "Sign-in failed", What: "fedhub could not finish your sign-in.", Next: "Go back to the application and try again."})
}
