package brokers

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/mfa"
	"github.com/fedhub/fedhub/throttle"
	"github.com/fedhub/fedhub/web"
)

// The second-factor steps: after the person is known (authenticated), the
// policy decides whether a second factor is asked for (StepSecondFactor) or,
// for a person without one where it is required, enrolled (StepEnrolFactor,
// then StepNewCodes).

func (s *Service) factorRoutes(e *echo.Echo) {
	e.GET("/login/factor", s.factorPage)
	e.POST("/login/factor", s.factorSubmit)
	e.GET("/login/enrol", s.enrolPage)
	e.POST("/login/enrol", s.enrolSubmit)
	e.POST("/login/codes", s.codesContinue)
}

// mfaPolicy is the second-factor policy of t's sign-in for u: the user's own
// (set by an admin), else the strictest of the connector's and the
// client's; an application's acr_values asking for "2" makes it required.
func (s *Service) mfaPolicy(ctx context.Context, t *login.Transaction, u *linking.User) string {
	policy := u.MFA
	if policy == "" {
		conn, _ := s.enabled(t.LoginVia)
		policy = conn.MFA
		policy = strictest(policy, t.ClientMFA)
	}
	if login.NeedsMultiFactor(t.ACRValues) {
		policy = config.MFARequired
	}
	return policy
}

func strictest(a, b string) string {
	rank := map[string]int{config.MFAOff: 0, "": 1, config.MFAOptional: 1, config.MFARequired: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// factorStep is the second-factor step t's sign-in needs, or "" for none.
func (s *Service) factorStep(ctx context.Context, t *login.Transaction, u *linking.User) (login.Step, error) {
	if t.Enrol {
		return login.StepEnrolFactor, nil
	}
	if slices.Contains(t.AMR, "mfa") { // a trusted upstream's multi-factor login
		return "", nil
	}
	policy := s.mfaPolicy(ctx, t, u)
	if policy == config.MFAOff {
		return "", nil
	}
	factors, err := s.factors.Factors(ctx, u.ID)
	if err != nil {
		return "", err
	}
	switch {
	case len(factors) > 0:
		return login.StepSecondFactor, nil
	case policy == config.MFARequired:
		return login.StepEnrolFactor, nil
	}
	return "", nil
}

// hasMFA reports whether the password grant, which cannot ask for a second
// factor, must be refused for u through connector for a client with the
// policy clientMFA.
func (s *Service) hasMFA(ctx context.Context, connector, clientMFA string, u *linking.User) (bool, error) {
	t := &login.Transaction{Purpose: login.ForClient, ClientMFA: clientMFA, LoginVia: connector}
	step, err := s.factorStep(ctx, t, u)
	return step != "", err
}

// factorView is the second-factor and the enrolment page.
type factorView struct {
	Token, CSRF string
	Error       string
	Recovery    bool   // the recovery-code form is shown
	Secret      string // enrolment: the key to type in
	QR          string // enrolment: the key as a QR code image (data URL)
	Codes       []string
}

func (s *Service) factorPage(c echo.Context) error {
	token := c.QueryParam("t")
	if _, err := s.load(c, token, login.StepSecondFactor); err != nil {
		return shown(err)
	}
	web.NoStore(c)
	return c.Render(http.StatusOK, "login_factor.html", factorView{Token: token, CSRF: login.CSRF(token, s.browser(c)),
		Recovery: c.QueryParam("recovery") != ""})
}

// factorSubmit checks a TOTP code or a recovery code, behind its own
// per-user brute-force limit.
func (s *Service) factorSubmit(c echo.Context) error {
	token, t, err := s.loadForm(c, "t", login.StepSecondFactor)
	if err != nil {
		return shown(err)
	}
	ctx := c.Request().Context()
	form := c.Request().PostForm
	v := factorView{Token: token, CSRF: login.CSRF(token, s.browser(c)), Recovery: form.Get("recovery") != ""}
	userKey, ipKey := throttle.UserKey("second-factor", t.UserID), throttle.IPKey(c.RealIP())
	wait, err := s.limiter.Wait(ctx, userKey, ipKey)
	if err != nil {
		return err
	}
	if wait > 0 {
		v.Error = fmt.Sprintf("Too many wrong codes. Try again in %s.", roundUp(wait))
		_ = s.failed(ctx, t.LoginVia, t.UserID, c.RealIP(), &login.UserError{Message: v.Error})
		return c.Render(http.StatusTooManyRequests, "login_factor.html", v)
	}
	amr := "otp"
	if v.Recovery {
		err, amr = s.factors.UseRecoveryCode(ctx, t.UserID, form.Get("recovery")), "kba"
	} else {
		_, err = s.factors.VerifyTOTP(ctx, t.UserID, form.Get("code"))
	}
	if errors.Is(err, mfa.ErrInvalidCode) || errors.Is(err, mfa.ErrCodeUsed) || errors.Is(err, mfa.ErrNotFound) {
		if ferr := s.limiter.Failed(ctx, userKey, ipKey); ferr != nil {
			return ferr
		}
		v.Error = "That code is not right. Enter the current code of your authenticator app."
		if v.Recovery {
			v.Error = "That recovery code is not right, or it was used already."
		}
		_ = s.failed(ctx, t.LoginVia, t.UserID, c.RealIP(), &login.UserError{Message: "wrong second factor"})
		return c.Render(http.StatusUnauthorized, "login_factor.html", v)
	}
	if err != nil {
		return err
	}
	if err := s.limiter.Succeeded(ctx, userKey); err != nil {
		return err
	}
	t.AMR = append(t.AMR, amr, "mfa")
	return s.resume(c, t)
}

func (s *Service) enrolView(c echo.Context, t *login.Transaction, token string) (factorView, error) {
	u, err := s.users.UserByID(c.Request().Context(), t.UserID)
	if err != nil {
		return factorView{}, err
	}
	key, err := s.factors.KeyFor(t.PendingKey, u.Username)
	if err != nil {
		return factorView{}, err
	}
	return factorView{Token: token, CSRF: login.CSRF(token, s.browser(c)), Secret: key.Secret,
		QR: "data:image/png;base64," + base64.StdEncoding.EncodeToString(key.QRPNG)}, nil
}

func (s *Service) enrolPage(c echo.Context) error {
	token := c.QueryParam("t")
	t, err := s.load(c, token, login.StepEnrolFactor)
	if err != nil {
		return shown(err)
	}
	v, err := s.enrolView(c, t, token)
	if err != nil {
		return err
	}
	web.NoStore(c)
	return c.Render(http.StatusOK, "login_enrol.html", v)
}

// enrolSubmit confirms the offered key with a first code; the new recovery
// codes are shown once.
func (s *Service) enrolSubmit(c echo.Context) error {
	token, t, err := s.loadForm(c, "t", login.StepEnrolFactor)
	if err != nil {
		return shown(err)
	}
	ctx := c.Request().Context()
	v, err := s.enrolView(c, t, token)
	if err != nil {
		return err
	}
	_, codes, err := s.factors.ConfirmTOTP(ctx, t.UserID, "Authenticator app", t.PendingKey, c.Request().PostForm.Get("code"))
	if errors.Is(err, mfa.ErrInvalidCode) || errors.Is(err, mfa.ErrCodeUsed) {
		v.Error = "That code is not right. Enter the code your authenticator app shows now."
		return c.Render(http.StatusUnauthorized, "login_enrol.html", v)
	}
	if err != nil {
		return err
	}
	_ = s.audit.Record(ctx, audit.Event{Type: audit.FactorAdded, Actor: t.UserID, UserID: t.UserID, IP: c.RealIP(),
		Detail: "authenticator app"})
	t.Step, t.PendingKey, t.AMR = login.StepNewCodes, "", append(t.AMR, "otp", "mfa")
	if err := s.txns.Save(ctx, t); err != nil {
		return shown(s.ended(c, err))
	}
	web.NoStore(c)
	return c.Render(http.StatusOK, "login_codes.html", factorView{Token: token, CSRF: v.CSRF, Codes: codes})
}

func (s *Service) codesContinue(c echo.Context) error {
	_, t, err := s.loadForm(c, "t", login.StepNewCodes)
	if err != nil {
		return shown(err)
	}
	return s.resume(c, t)
}

// toFactorStep moves t to a second-factor step and sends the browser there.
func (s *Service) toFactorStep(c echo.Context, t *login.Transaction, token string, step login.Step) error {
	t.Step = step
	if step == login.StepEnrolFactor {
		t.PendingKey = mfa.NewSecret()
	}
	if err := s.txns.Save(c.Request().Context(), t); err != nil {
		return shown(s.ended(c, err))
	}
	return s.show(c, t, token)
}
