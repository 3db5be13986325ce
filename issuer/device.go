package issuer

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/store"
	"github.com/fedhub/fedhub/throttle"
	"github.com/fedhub/fedhub/web"
)

// The device authorization grant (RFC 8628), for CLIs and devices without a
// browser: the device shows a short user code; the person types it at
// /device in any browser, signs in through the usual login (connectors,
// first login, second factors) and approves; the device, polling the token
// endpoint, then gets its tokens. Only the browser that entered the code can
// approve it, and only after a sign-in that began after the code was entered.

const (
	deviceCodeTTL = 10 * time.Minute
	// devicePollInterval is how often a device may poll; a poll a second or
	// more early is told to slow_down (§3.5), which the device answers by
	// adding 5 seconds to its own interval. The server does not add them
	// too: a device that keeps to the interval is never refused for it.
	devicePollInterval = 5 * time.Second
	pollTolerance      = time.Second
	// userCodeAlphabet has no vowels (no words) and no look-alikes; 8 of
	// them are 34 bits, and entering them is rate-limited per client IP.
	userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
	userCodeLength   = 8
)

// Device authorization states.
const (
	devicePending  = "pending"
	deviceApproved = "approved"
	deviceDenied   = "denied"
	deviceRedeemed = "redeemed"
)

// DeviceAuthorization is one device's request, from its user code to its
// tokens. Codes are stored only as hashes.
type DeviceAuthorization struct {
	ID             string `gorm:"primaryKey;size:32"` // names it in the approval page's URL
	DeviceCodeHash string `gorm:"size:64;not null;uniqueIndex"`
	UserCodeHash   string `gorm:"size:64;not null;uniqueIndex"`
	ClientID       string `gorm:"size:255;not null"`
	Scope          string `gorm:"size:2048"`
	LastPolledAt   *time.Time
	Status         string     `gorm:"size:16;not null"`
	BrowserHash    string     `gorm:"size:64"` // the browser that entered the user code
	EnteredAt      *time.Time // when it did: the approving sign-in must be later
	UserID         string     `gorm:"size:36"`
	SessionID      string     `gorm:"size:64"` // the SSO session the person approved in
	CreatedAt      time.Time
	ExpiresAt      time.Time `gorm:"index"`
}

// Throttle rate-limits the user codes a client IP may try at /device.
func (iss *Issuer) Throttle(l *throttle.Limiter) { iss.limiter = l }

// deviceAuthorization is the device authorization endpoint (§3.1, §3.2).
func (iss *Issuer) deviceAuthorization(c echo.Context) error {
	web.NoStore(c)
	resp, err := iss.newDeviceAuthorization(c)
	if err != nil {
		return iss.writeOAuthError(c, err)
	}
	return c.JSON(http.StatusOK, resp)
}

func (iss *Issuer) newDeviceAuthorization(c echo.Context) (map[string]any, error) {
	form, err := tokenForm(c)
	if err != nil {
		return nil, err
	}
	client, err := iss.authenticateClient(c.Request(), form)
	if err != nil {
		return nil, err
	}
	if !client.allows(config.GrantDeviceCode) {
		return nil, &oauthError{http.StatusBadRequest, "unauthorized_client", "this client may not use the device flow", false}
	}
	deviceCode := secret.Token(32)
	now := iss.now()
	row := DeviceAuthorization{ID: secret.Token(16), DeviceCodeHash: secret.Hash(deviceCode), ClientID: client.ID,
		Scope: form.Get("scope"), Status: devicePending, CreatedAt: now,
		ExpiresAt: now.Add(deviceCodeTTL)}
	var userCode string
	for range 3 { // a live code taken already: draw again
		userCode = newUserCode()
		row.UserCodeHash = secret.Hash(userCode)
		if err = iss.db.WithContext(c.Request().Context()).Create(&row).Error; !store.IsDuplicate(err) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("save device authorization: %w", err)
	}
	shown := userCode[:4] + "-" + userCode[4:]
	return map[string]any{
		"device_code": deviceCode, "user_code": shown, "verification_uri": iss.url + "/device",
		"verification_uri_complete": iss.url + "/device?user_code=" + shown,
		"expires_in":                int(deviceCodeTTL.Seconds()), "interval": int(devicePollInterval.Seconds()),
	}, nil
}

// newUserCode draws a user code from userCodeAlphabet.
func newUserCode() string {
	var b strings.Builder
	for range userCodeLength {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(userCodeAlphabet))))
		if err != nil {
			panic(err) // crypto/rand does not fail
		}
		b.WriteByte(userCodeAlphabet[n.Int64()])
	}
	return b.String()
}

// normalUserCode is what a person typed, as issued: upper case, without the
// dash or spaces; "" when it cannot be a user code.
func normalUserCode(typed string) string {
	code := strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, typed)
	if len(code) != userCodeLength || strings.Trim(code, userCodeAlphabet) != "" {
		return ""
	}
	return code
}

// deviceCSRF is the device pages' form token, bound to the browser.
func (iss *Issuer) deviceCSRF(c echo.Context) string {
	return secret.Hash("device:" + iss.cookies.BrowserID(c.Response(), c.Request()))[:32]
}

// devicePage asks for the user code (prefilled from verification_uri_complete).
func (iss *Issuer) devicePage(c echo.Context) error {
	web.NoStore(c)
	return iss.renderDevice(c, http.StatusOK, c.QueryParam("user_code"), "")
}

func (iss *Issuer) renderDevice(c echo.Context, status int, code, problem string) error {
	return c.Render(status, "device.html", map[string]any{"CSRF": iss.deviceCSRF(c), "Code": code, "Error": problem})
}

// enterUserCode checks the code and sends the person to sign in; the
// approval page follows.
func (iss *Issuer) enterUserCode(c echo.Context) error {
	web.NoStore(c)
	ctx := c.Request().Context()
	if c.FormValue("csrf") != iss.deviceCSRF(c) {
		return iss.renderDevice(c, http.StatusBadRequest, "", "The form expired. Enter the code again.")
	}
	ipKey := throttle.IPKey(c.RealIP())
	if wait, err := iss.limiter.Wait(ctx, "", ipKey); err != nil {
		return err
	} else if wait > 0 {
		return iss.renderDevice(c, http.StatusTooManyRequests, "",
			fmt.Sprintf("Too many wrong codes from your network. Try again in %s.", wait.Round(time.Second)))
	}
	typed := c.FormValue("user_code")
	d, err := iss.pendingDevice(ctx, "user_code_hash = ?", secret.Hash(normalUserCode(typed)))
	if err != nil {
		return err
	}
	browser := secret.Hash(iss.cookies.BrowserID(c.Response(), c.Request()))
	if d == nil || (d.BrowserHash != "" && d.BrowserHash != browser) {
		if err := iss.limiter.Failed(ctx, ipKey); err != nil {
			return err
		}
		return iss.renderDevice(c, http.StatusBadRequest, typed,
			"That code is not valid, has expired or is being used in another browser. Check the code your device shows.")
	}
	now := iss.now()
	if err := iss.db.WithContext(ctx).Model(d).Updates(map[string]any{"browser_hash": browser, "entered_at": now}).Error; err != nil {
		return fmt.Errorf("claim device authorization: %w", err)
	}
	client, err := iss.client(ctx, d.ClientID)
	if err != nil {
		return iss.deviceError(c, "The application that asked is no longer known to fedhub.")
	}
	t := &login.Transaction{Purpose: login.ForPage, Step: login.StepChoose, MaxAge: -1, ReturnTo: "/device/confirm?d=" + d.ID,
		ClientID: client.ID, ClientName: cmp.Or(client.Name, client.ID), ClientMFA: client.MFA, Scope: d.Scope}
	token, err := iss.txns.Create(ctx, t, iss.cookies.BrowserID(c.Response(), c.Request()))
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/login?req="+url.QueryEscape(token))
}

// pendingDevice finds a pending, unexpired device authorization (nil: none).
func (iss *Issuer) pendingDevice(ctx context.Context, where string, args ...any) (*DeviceAuthorization, error) {
	var d DeviceAuthorization
	err := iss.db.WithContext(ctx).Where("status = ? AND expires_at > ?", devicePending, iss.now()).Where(where, args...).Take(&d).Error
	if store.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load device authorization: %w", err)
	}
	return &d, nil
}

// deviceApproval is what an approval page acts on: the device's request,
// the session the person approves in, and the client that asked.
type deviceApproval struct {
	d      *DeviceAuthorization
	sess   *Session
	client *Client
}

// deviceProblem is a reason the person is shown on the device error page.
type deviceProblem string

func (p deviceProblem) Error() string { return string(p) }

// approvable returns the device authorization the browser may approve now,
// or a deviceProblem.
func (iss *Issuer) approvable(c echo.Context) (*deviceApproval, error) {
	ctx := c.Request().Context()
	d, err := iss.pendingDevice(ctx, "id = ? AND browser_hash = ?", c.QueryParam("d"),
		secret.Hash(iss.cookies.BrowserID(c.Response(), c.Request())))
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, deviceProblem("This request is not waiting for approval in this browser: it expired, was answered, or was started elsewhere. Start again on your device.")
	}
	sess, err := iss.currentSession(c.Request())
	if err != nil {
		return nil, err
	}
	if sess == nil || d.EnteredAt == nil || sess.CreatedAt.Before(*d.EnteredAt) {
		return nil, deviceProblem("Sign in after entering the code to approve it. Enter the code again.")
	}
	client, err := iss.client(ctx, d.ClientID)
	if err != nil {
		return nil, deviceProblem("The application that asked is no longer known to fedhub.")
	}
	return &deviceApproval{d: d, sess: sess, client: client}, nil
}

// deviceFailed shows a deviceProblem to the person; other errors are the
// server's.
func (iss *Issuer) deviceFailed(c echo.Context, err error) error {
	var p deviceProblem
	if errors.As(err, &p) {
		return iss.deviceError(c, string(p))
	}
	return err
}

// deviceConfirmPage asks the signed-in person to approve the device.
func (iss *Issuer) deviceConfirmPage(c echo.Context) error {
	web.NoStore(c)
	a, err := iss.approvable(c)
	if err != nil {
		return iss.deviceFailed(c, err)
	}
	u, err := iss.users.UserByID(c.Request().Context(), a.sess.UserID)
	if err != nil {
		return err
	}
	return c.Render(http.StatusOK, "device_confirm.html", map[string]any{"CSRF": iss.deviceCSRF(c), "ID": a.d.ID,
		"ClientName": cmp.Or(a.client.Name, a.client.ID), "Username": u.Username, "Scopes": strings.Fields(a.d.Scope)})
}

// answerDevice records the person's approval or refusal.
func (iss *Issuer) answerDevice(c echo.Context) error {
	web.NoStore(c)
	if c.FormValue("csrf") != iss.deviceCSRF(c) {
		return iss.deviceError(c, "The form expired. Enter the code again.")
	}
	a, err := iss.approvable(c)
	if err != nil {
		return iss.deviceFailed(c, err)
	}
	d, sess, ctx := a.d, a.sess, c.Request().Context()
	approve := c.FormValue("answer") == "approve"
	updates := map[string]any{"status": deviceDenied, "user_id": sess.UserID}
	if approve {
		isAdmin := func() bool {
			u, err := iss.users.UserByID(ctx, sess.UserID)
			return err == nil && adminUser(u)
		}
		updates = map[string]any{"status": deviceApproved, "user_id": sess.UserID, "session_id": sess.ID,
			"scope": iss.grantable(a.client, isAdmin, d.Scope)}
	}
	res := iss.db.WithContext(ctx).Model(&DeviceAuthorization{}).Where("id = ? AND status = ?", d.ID, devicePending).Updates(updates)
	if res.Error != nil {
		return fmt.Errorf("answer device authorization: %w", res.Error)
	}
	if res.RowsAffected != 1 {
		return iss.deviceError(c, "This request was answered already.")
	}
	outcome, detail := "success", "approved"
	if !approve {
		outcome, detail = "failure", "refused"
	}
	if err := iss.audit.Record(ctx, audit.Event{Type: audit.DeviceAnswered, Actor: sess.UserID, UserID: sess.UserID,
		ClientID: d.ClientID, IP: c.RealIP(), Outcome: outcome, Detail: "device sign-in " + detail}); err != nil {
		return err
	}
	return c.Render(http.StatusOK, "device_done.html", map[string]any{"Approved": approve})
}

func (iss *Issuer) deviceError(c echo.Context, what string) error {
	return web.RenderError(c, http.StatusBadRequest, web.ErrorPage{Title: "Device sign-in not possible", What: what,
		Next: "Go back to your device: it shows the code and the address to enter it at."})
}

// deviceGrant is the token endpoint's answer to a polling device (§3.4, §3.5).
func (iss *Issuer) deviceGrant(ctx context.Context, client *Client, form url.Values) (*tokenResponse, error) {
	code := form.Get("device_code")
	if code == "" {
		return nil, invalidRequest("device_code is required")
	}
	d, err := issuedTo(ctx, iss.db, "device_code_hash", code, "device code", client,
		func(d *DeviceAuthorization) string { return d.ClientID })
	if err != nil {
		return nil, err
	}
	now := iss.now()
	switch {
	case d.Status == deviceRedeemed:
		return nil, invalidGrant("the device code was used already")
	case now.After(d.ExpiresAt):
		return nil, &oauthError{http.StatusBadRequest, "expired_token", "the device code has expired: start again", false}
	}
	tooSoon := d.LastPolledAt != nil && now.Sub(*d.LastPolledAt) < devicePollInterval-pollTolerance
	if err := iss.db.WithContext(ctx).Model(d).Update("last_polled_at", now).Error; err != nil {
		return nil, fmt.Errorf("record device poll: %w", err)
	}
	switch {
	case tooSoon:
		return nil, &oauthError{http.StatusBadRequest, "slow_down", "polling too often: add 5 seconds to the interval", false}
	case d.Status == devicePending:
		return nil, &oauthError{http.StatusBadRequest, "authorization_pending", "the person has not approved yet", false}
	case d.Status == deviceDenied:
		return nil, &oauthError{http.StatusBadRequest, "access_denied", "the person refused", false}
	}
	// Approved: redeemed once, by one conditional write.
	res := iss.db.WithContext(ctx).Model(&DeviceAuthorization{}).Where("id = ? AND status = ?", d.ID, deviceApproved).
		Update("status", deviceRedeemed)
	if res.Error != nil {
		return nil, res.Error
	}
	if res.RowsAffected != 1 {
		return nil, invalidGrant("the device code was used already")
	}
	var sess Session // the zero session, never alive, when it is gone
	if err := iss.db.WithContext(ctx).Take(&sess, "id = ?", d.SessionID).Error; err != nil && !store.IsNotFound(err) {
		return nil, err
	}
	live, err := iss.alive(ctx, &sess)
	if err != nil {
		return nil, err
	}
	if !live {
		return nil, invalidGrant("the session the person approved in has ended: approve again")
	}
	u, err := iss.users.UserByID(ctx, d.UserID)
	if err != nil || u.Disabled {
		return nil, invalidGrant("the user can no longer sign in")
	}
	g := &Grant{ID: secret.Token(16), ClientID: client.ID, UserID: u.ID, SessionID: sess.ID, Scope: d.Scope,
		AuthTime: sess.AuthTime, AMR: sess.AMR, ACR: sess.ACR, IDP: sess.IDP, Subject: sess.Subject, CreatedAt: now}
	if err := iss.db.WithContext(ctx).Create(g).Error; err != nil {
		return nil, fmt.Errorf("save grant: %w", err)
	}
	return iss.mint(ctx, g, u, "", d.Scope, client.allows(config.GrantRefreshToken), "")
}
