package brokers

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/mfa"
	"github.com/fedhub/fedhub/web"
)

// The account page's security settings: second factors and the password.
// Each change needs a fresh sign-in: adding a factor signs in again on the
// way (the enrolment is a step of that sign-in); removing one or changing
// the password needs a login younger than freshLogin.

// freshLogin is how recent a login must be to remove a factor or change the password.
const freshLogin = 5 * time.Minute

type accountFactor struct {
	Kind, ID, Name, Added, LastUsed string
}

// accountFactors lists a user's authenticator apps and passkeys, and how many
// recovery codes they have left.
func (s *Service) accountFactors(ctx context.Context, userID string) ([]accountFactor, int, error) {
	apps, err := s.factors.Factors(ctx, userID)
	if err != nil {
		return nil, 0, err
	}
	var out []accountFactor
	for _, f := range apps {
		out = append(out, accountFactor{Kind: "app", ID: f.ID, Name: f.Name, Added: f.CreatedAt.Format(time.DateOnly),
			LastUsed: dateTime(f.LastUsedAt)})
	}
	if s.passkeys != nil {
		keys, err := s.passkeys.Credentials(ctx, userID)
		if err != nil {
			return nil, 0, err
		}
		for _, k := range keys {
			out = append(out, accountFactor{Kind: "passkey", ID: k.ID, Name: k.Name, Added: k.CreatedAt.Format(time.DateOnly),
				LastUsed: dateTime(k.LastUsedAt)})
		}
	}
	codes, err := s.factors.RecoveryCodesLeft(ctx, userID)
	return out, codes, err
}

func dateTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.Format(time.DateTime)
}

// freshSession returns the browser's user when their login is fresh; with a
// stale one it sends the person to sign in again, back to the account page.
func (s *Service) freshSession(c echo.Context) (*linking.User, login.SignedIn, error) {
	sess, err := s.issuer.SignedIn(c.Request())
	if err != nil {
		return nil, sess, err
	}
	if sess.UserID == "" || s.txns.Now().Sub(sess.AuthTime) > freshLogin {
		err := s.pageLogin(c, &login.Transaction{Purpose: login.ForPage, ReturnTo: "/account?status=fresh", ForceLogin: true})
		return nil, sess, errors.Join(errPageShown, err)
	}
	u, err := s.users.UserByID(c.Request().Context(), sess.UserID)
	return u, sess, err
}

// addFactor adds an authenticator app or a passkey: the person signs in
// again (second factor included), enrols it, and comes back.
func (s *Service) addFactor(c echo.Context) error {
	if _, err := s.signedIn(c, "/account"); err != nil {
		return shown(err)
	}
	if !s.accountForm(c) {
		return web.RenderError(c, http.StatusForbidden, formExpired)
	}
	return s.pageLogin(c, &login.Transaction{Purpose: login.ForPage, ReturnTo: "/account?status=factor_added",
		ForceLogin: true, Enrol: true})
}

// removeFactor removes one of the person's authenticator apps or passkeys.
func (s *Service) removeFactor(c echo.Context) error {
	if !s.accountForm(c) {
		return web.RenderError(c, http.StatusForbidden, formExpired)
	}
	u, _, err := s.freshSession(c)
	if err != nil {
		return shown(err)
	}
	ctx := c.Request().Context()
	form := c.Request().PostForm
	id := form.Get("id")
	switch {
	case form.Get("kind") == "app":
		err = s.factors.Remove(ctx, u.ID, id)
	case form.Get("kind") == "passkey" && s.passkeys != nil:
		err = s.passkeys.Remove(ctx, u.ID, id)
	default:
		err = mfa.ErrNotFound
	}
	if wrongFactor(err) {
		return s.renderAccount(c, u, "", "That second step is not yours, or it was removed already.")
	}
	if err != nil {
		return err
	}
	_ = s.audit.Record(ctx, audit.Event{Type: audit.FactorRemoved, Actor: u.ID, UserID: u.ID, IP: c.RealIP(),
		Detail: form.Get("kind") + " removed by its owner"})
	return c.Redirect(http.StatusSeeOther, "/account?status=factor_removed")
}

type passwordView struct {
	CSRF, Username, Error string
}

// minPasswordLength is the shortest new password (NIST SP 800-63B's floor).
const minPasswordLength = 8

func (s *Service) passwordPage(c echo.Context) error {
	u, err := s.signedIn(c, "/account/password")
	if err != nil {
		return shown(err)
	}
	web.NoStore(c)
	return c.Render(http.StatusOK, "account_password.html", passwordView{CSRF: s.accountCSRF(c), Username: u.Username})
}

// changePassword sets a new local password after the current one (behind
// the brute-force limit); the person's other sessions and grants end.
func (s *Service) changePassword(c echo.Context) error {
	if !s.accountForm(c) {
		return web.RenderError(c, http.StatusForbidden, formExpired)
	}
	sess, err := s.issuer.SignedIn(c.Request())
	if err != nil {
		return err
	}
	u, err := s.signedIn(c, "/account/password")
	if err != nil {
		return shown(err)
	}
	ctx := c.Request().Context()
	form := c.Request().PostForm
	v := passwordView{CSRF: s.accountCSRF(c), Username: u.Username}
	next := form.Get("new_password")
	switch {
	case len([]rune(next)) < minPasswordLength:
		v.Error = "Choose a new password of at least 8 characters."
	case len(next) > 1024:
		v.Error = "Choose a shorter new password."
	case next != form.Get("confirm_password"):
		v.Error = "The new password and its confirmation differ."
	}
	if v.Error != "" {
		return c.Render(http.StatusUnprocessableEntity, "account_password.html", v)
	}
	local, _ := s.enabled(linkingLocal)
	if _, err := s.passwordLogin(ctx, linkingLocal, local.Impl.(PasswordConnector), u.Username, form.Get("current_password"), c.RealIP()); err != nil {
		v.Error = reauthMessage(err)
		return c.Render(http.StatusUnauthorized, "account_password.html", v)
	}
	if err := s.users.SetPassword(ctx, u.Username, next); err != nil {
		return err
	}
	if err := s.issuer.EndOtherSessions(ctx, u.ID, sess.SessionID); err != nil {
		return err
	}
	_ = s.audit.Record(ctx, audit.Event{Type: audit.PasswordChanged, Actor: u.ID, UserID: u.ID, IP: c.RealIP(),
		Detail: "by its owner; other sessions ended"})
	return c.Redirect(http.StatusSeeOther, "/account?status=password")
}
