package brokers

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/passkey"
	"github.com/fedhub/fedhub/web"
)

// Passkeys (WebAuthn) in the sign-in: a second factor, a factor to enrol,
// and — where configured — a passwordless first factor for local accounts.
// The browser's WebAuthn answer comes back as the form field "passkey"
// (templates/static/passkey.js); each ceremony's challenge is bound to the
// transaction (its internal ID) and single-use.

// amrOfPasskey is what a passkey proves (RFC 8176): "hwk", and "mfa" when the
// authenticator verified the person (PIN or biometrics): two factors at once.
func amrOfPasskey(c passkey.Credential) []string {
	if c.LoginUserVerified {
		return []string{"hwk", "mfa"}
	}
	return []string{"hwk"}
}

// passkeyUser is how a user is known to their authenticator.
func passkeyUser(u *linking.User) passkey.User {
	return passkey.User{ID: u.ID, Username: u.Username, DisplayName: u.Name}
}

// passkeyLoginOptions is the WebAuthn request of the second-factor page, or
// "" when u has no passkey (or passkeys are not offered).
func (s *Service) passkeyLoginOptions(ctx context.Context, t *login.Transaction) (string, error) {
	if s.passkeys == nil {
		return "", nil
	}
	opts, err := s.passkeys.BeginLogin(ctx, t.ID, t.UserID)
	if errors.Is(err, passkey.ErrNotFound) {
		return "", nil
	}
	return string(opts), err
}

// passkeyCount is how many passkeys a user has.
func (s *Service) passkeyCount(ctx context.Context, userID string) (int, error) {
	if s.passkeys == nil {
		return 0, nil
	}
	creds, err := s.passkeys.Credentials(ctx, userID)
	return len(creds), err
}

// passwordlessOptions is the login page's discoverable WebAuthn request, or
// "" where passwordless sign-in is not offered.
func (s *Service) passwordlessOptions(ctx context.Context, t *login.Transaction) (string, error) {
	if !s.passwordless {
		return "", nil
	}
	opts, err := s.passkeys.BeginDiscoverableLogin(ctx, t.ID)
	return string(opts), err
}

// passwordlessLogin signs a local account in with a discoverable passkey.
func (s *Service) passwordlessLogin(c echo.Context) error {
	token, t, err := s.loadForm(c, "req", login.StepChoose)
	if err != nil {
		return shown(err)
	}
	if !s.passwordless {
		return web.RenderError(c, http.StatusNotFound, unknownMethod)
	}
	// A signature cannot be guessed: no brute-force limit here, unlike codes.
	ctx := c.Request().Context()
	userID, cred, err := s.passkeys.FinishDiscoverableLogin(ctx, t.ID, []byte(c.Request().PostForm.Get("passkey")))
	if err != nil {
		s.log.InfoContext(c.Request().Context(), "passkey sign-in refused", "ip", c.RealIP(), "err", err)
		_ = s.failed(ctx, linkingLocal, "", c.RealIP(), err)
		return s.renderLogin(c, http.StatusUnauthorized, t, token, "", "", "That passkey could not be verified. Try again, or sign in with your password.")
	}
	u, err := s.activeUser(ctx, userID)
	if err != nil {
		return s.resolveFailed(c, Connector{ID: linkingLocal}, err)
	}
	t.LoginVia, t.AMR, t.AuthTime = linkingLocal, amrOfPasskey(cred), s.txns.Now()
	return s.authenticated(c, t, token, u)
}
