package brokers

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/mfa"
	"github.com/fedhub/fedhub/passkey"
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
	e.POST("/login/passkey", s.passwordlessLogin)
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
	done := slices.Contains(t.AMR, "mfa") // a second factor, or a trusted upstream's multi-factor login
	if t.Enrol {                          // adding a factor: the person first proves the ones they have
		has, err := s.hasFactor(ctx, u.ID)
		if err != nil || (has && !done) {
			return login.StepSecondFactor, err
		}
		return login.StepEnrolFactor, nil
	}
	if done {
		return "", nil
	}
	policy := s.mfaPolicy(ctx, t, u)
	if policy == config.MFAOff {
		return "", nil
	}
	has, err := s.hasFactor(ctx, u.ID)
	if err != nil {
		return "", err
	}
	switch {
	case has:
		return login.StepSecondFactor, nil
	case policy == config.MFARequired:
		return login.StepEnrolFactor, nil
	}
	return "", nil
}

// hasFactor reports whether a user has a second factor: an authenticator
// app or a passkey.
func (s *Service) hasFactor(ctx context.Context, userID string) (bool, error) {
	apps, err := s.factors.Factors(ctx, userID)
	if err != nil || len(apps) > 0 {
		return len(apps) > 0, err
	}
	keys, err := s.passkeyCount(ctx, userID)
	return keys > 0, err
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
	Recovery    bool         // the recovery-code form is shown
	Secret      string       // enrolment: the key to type in
	QR          template.URL // enrolment: the key as a QR code image (a data URL, which html/template would refuse as a string)
	Codes       []string
	HasApp      bool   // the person has an authenticator app (or recovery codes) to type a code of
	Passkey     string // the WebAuthn options of a passkey ceremony; "" when none is offered
}

// factorView is the second-factor page of t: a code form when the person
// has an authenticator app, a passkey button when they have a passkey.
func (s *Service) factorView(c echo.Context, t *login.Transaction, token string, recovery bool) (factorView, error) {
	ctx := c.Request().Context()
	apps, err := s.factors.Factors(ctx, t.UserID)
	if err != nil {
		return factorView{}, err
	}
	opts, err := s.passkeyLoginOptions(ctx, t)
	return factorView{Token: token, CSRF: login.CSRF(token, s.browser(c)), Recovery: recovery, HasApp: len(apps) > 0,
		Passkey: opts}, err
}

func (s *Service) factorPage(c echo.Context) error {
	token := c.QueryParam("t")
	t, err := s.load(c, token, login.StepSecondFactor)
	if err != nil {
		return shown(err)
	}
	v, err := s.factorView(c, t, token, c.QueryParam("recovery") != "")
	if err != nil {
		return err
	}
	web.NoStore(c)
	return c.Render(http.StatusOK, "login_factor.html", v)
}

// factorSubmit checks a TOTP code, a recovery code or a passkey, behind its
// own per-user brute-force limit.
func (s *Service) factorSubmit(c echo.Context) error {
	token, t, err := s.loadForm(c, "t", login.StepSecondFactor)
	if err != nil {
		return shown(err)
	}
	ctx := c.Request().Context()
	form := c.Request().PostForm
	recovery := form.Has("recovery")
	// again shows the page with a problem; its view is made only then: it
	// begins a new passkey challenge, which would void the one answered here.
	again := func(status int, problem string) error {
		v, err := s.factorView(c, t, token, recovery)
		if err != nil {
			return err
		}
		v.Error = problem
		return c.Render(status, "login_factor.html", v)
	}
	userKey, ipKey := throttle.UserKey("second-factor", t.UserID), throttle.IPKey(c.RealIP())
	wait, err := s.limiter.Wait(ctx, userKey, ipKey)
	if err != nil {
		return err
	}
	if wait > 0 {
		problem := fmt.Sprintf("Too many wrong codes. Try again in %s.", roundUp(wait))
		_ = s.failed(ctx, t.LoginVia, t.UserID, c.RealIP(), &login.UserError{Message: problem})
		return again(http.StatusTooManyRequests, problem)
	}
	var amr []string
	switch {
	case form.Has("passkey") && s.passkeys != nil:
		var cred passkey.Credential
		if cred, err = s.passkeys.FinishLogin(ctx, t.ID, t.UserID, []byte(form.Get("passkey"))); err == nil {
			amr = amrOfPasskey(cred)
		}
	case recovery:
		err, amr = s.factors.UseRecoveryCode(ctx, t.UserID, form.Get("recovery")), []string{"kba"}
	default:
		_, err = s.factors.VerifyTOTP(ctx, t.UserID, form.Get("code"))
		amr = []string{"otp"}
	}
	if wrongFactor(err) {
		s.log.InfoContext(c.Request().Context(), "second factor refused", "user", t.UserID, "err", err)
		if ferr := s.limiter.Failed(ctx, userKey, ipKey); ferr != nil {
			return ferr
		}
		_ = s.failed(ctx, t.LoginVia, t.UserID, c.RealIP(), &login.UserError{Message: "wrong second factor"})
		switch {
		case form.Has("passkey"):
			return again(http.StatusUnauthorized, "That passkey could not be verified. Try again, or use another way.")
		case recovery:
			return again(http.StatusUnauthorized, "That recovery code is not right, or it was used already.")
		}
		return again(http.StatusUnauthorized, "That code is not right. Enter the current code of your authenticator app.")
	}
	if err != nil {
		return err
	}
	if err := s.limiter.Succeeded(ctx, userKey); err != nil {
		return err
	}
	t.AMR = append(append(t.AMR, amr...), "mfa")
	return s.authenticatedAs(c, t, token, t.UserID) // on to what the sign-in still needs: an enrolment, or the issuer
}

// wrongFactor says err is the person's wrong answer, not fedhub's failure.
func wrongFactor(err error) bool {
	for _, e := range []error{mfa.ErrInvalidCode, mfa.ErrCodeUsed, mfa.ErrNotFound,
		passkey.ErrChallenge, passkey.ErrVerification, passkey.ErrNotFound} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// enrolView is the enrolment page: an authenticator app's key, and a
// passkey's registration where passkeys are offered.
func (s *Service) enrolView(c echo.Context, t *login.Transaction, token string) (factorView, *linking.User, error) {
	ctx := c.Request().Context()
	u, err := s.users.UserByID(ctx, t.UserID)
	if err != nil {
		return factorView{}, nil, err
	}
	key, err := s.factors.KeyFor(t.PendingKey, u.Username)
	if err != nil {
		return factorView{}, nil, err
	}
	v := factorView{Token: token, CSRF: login.CSRF(token, s.browser(c)), Secret: key.Secret,
		QR: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(key.QRPNG))}
	if s.passkeys != nil {
		opts, err := s.passkeys.BeginRegistration(ctx, t.ID, passkeyUser(u))
		if err != nil {
			return factorView{}, nil, err
		}
		v.Passkey = string(opts)
	}
	return v, u, nil
}

func (s *Service) enrolPage(c echo.Context) error {
	token := c.QueryParam("t")
	t, err := s.load(c, token, login.StepEnrolFactor)
	if err != nil {
		return shown(err)
	}
	v, _, err := s.enrolView(c, t, token)
	if err != nil {
		return err
	}
	web.NoStore(c)
	return c.Render(http.StatusOK, "login_enrol.html", v)
}

// enrolSubmit confirms the offered key with a first code — the new recovery
// codes are shown once — or registers a passkey.
func (s *Service) enrolSubmit(c echo.Context) error {
	token, t, err := s.loadForm(c, "t", login.StepEnrolFactor)
	if err != nil {
		return shown(err)
	}
	ctx := c.Request().Context()
	form := c.Request().PostForm
	if form.Has("passkey") && s.passkeys != nil {
		return s.enrolPasskey(c, t, token)
	}
	v, _, err := s.enrolView(c, t, token)
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

// enrolPasskey registers the passkey the browser made on the enrolment page.
func (s *Service) enrolPasskey(c echo.Context, t *login.Transaction, token string) error {
	ctx := c.Request().Context()
	u, err := s.users.UserByID(ctx, t.UserID)
	if err != nil {
		return err
	}
	form := c.Request().PostForm
	_, err = s.passkeys.FinishRegistration(ctx, t.ID, passkeyUser(u), cmp.Or(strings.TrimSpace(form.Get("name")), passkey.DefaultName),
		[]byte(form.Get("passkey")))
	if wrongFactor(err) || errors.Is(err, passkey.ErrExists) || errors.Is(err, passkey.ErrName) {
		s.log.InfoContext(c.Request().Context(), "passkey registration refused", "user", u.ID, "err", err)
		v, _, verr := s.enrolView(c, t, token) // a new challenge for the next try
		if verr != nil {
			return verr
		}
		v.Error = "The passkey could not be registered. Try again, or set up an authenticator app."
		return c.Render(http.StatusUnauthorized, "login_enrol.html", v)
	}
	if err != nil {
		return err
	}
	_ = s.audit.Record(ctx, audit.Event{Type: audit.FactorAdded, Actor: t.UserID, UserID: t.UserID, IP: c.RealIP(),
		Detail: "passkey"})
	// The registration proved possession of the new key; with the first
	// factor that is two.
	t.PendingKey, t.AMR = "", append(t.AMR, "hwk", "mfa")
	return s.resume(c, t)
}
