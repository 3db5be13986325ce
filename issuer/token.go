package issuer

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/store"
	"github.com/fedhub/fedhub/web"
)

// oauthError is an error answer of the token, introspection and revocation
// endpoints (RFC 6749 §5.2).
type oauthError struct {
	status      int
	code        string
	description string
	basic       bool // the client tried HTTP Basic: answer 401 with a challenge
}

func (e *oauthError) Error() string { return e.code + ": " + e.description }

func invalidRequest(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_request", desc, false}
}

func invalidGrant(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_grant", desc, false}
}

func (iss *Issuer) writeOAuthError(c echo.Context, err error) error {
	var oe *oauthError
	var ce clientAuthError
	switch {
	case errors.As(err, &oe):
	case errors.As(err, &ce):
		oe = &oauthError{http.StatusUnauthorized, "invalid_client", "client authentication failed", ce.basic}
	default:
		iss.log.ErrorContext(c.Request().Context(), "token endpoint failed", "err", err)
		oe = &oauthError{http.StatusInternalServerError, "server_error", "fedhub could not complete the request", false}
	}
	if oe.basic {
		c.Response().Header().Set("WWW-Authenticate", `Basic realm="fedhub"`)
	}
	return c.JSON(oe.status, map[string]string{"error": oe.code, "error_description": oe.description})
}

// tokenForm reads a POSTed form body, refusing oversized bodies and repeated parameters.
func tokenForm(c echo.Context) (url.Values, error) {
	r := c.Request()
	if r.Method != http.MethodPost {
		return nil, invalidRequest("use POST")
	}
	r.Body = http.MaxBytesReader(c.Response(), r.Body, web.MaxBody)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &oauthError{http.StatusRequestEntityTooLarge, "invalid_request", "the request body is too large", false}
		}
		return nil, invalidRequest("the request body is not a valid form")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 && k != "resource" { // RFC 8707 §2: one resource parameter per API
			return nil, invalidRequest("parameter " + k + " is given more than once")
		}
	}
	return r.PostForm, nil
}

func (iss *Issuer) token(c echo.Context) error {
	web.NoStore(c)
	resp, err := iss.tokenGrant(c)
	if err != nil {
		return iss.writeOAuthError(c, err)
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, resp.appendJSON(make([]byte, 0, resp.size())))
}

func (iss *Issuer) tokenGrant(c echo.Context) (*tokenResponse, error) {
	form, err := tokenForm(c)
	if err != nil {
		return nil, err
	}
	client, err := iss.authenticateClient(c.Request(), form)
	if err != nil {
		return nil, err
	}
	grant := form.Get("grant_type")
	switch grant {
	case "":
		return nil, invalidRequest("grant_type is required")
	case config.GrantAuthorizationCode, config.GrantRefreshToken, config.GrantClientCredentials, config.GrantPassword,
		config.GrantTokenExchange, config.GrantDeviceCode:
	default:
		return nil, &oauthError{http.StatusBadRequest, "unsupported_grant_type", "grant_type " + grant + " is not supported", false}
	}
	if !client.allows(grant) {
		return nil, &oauthError{http.StatusBadRequest, "unauthorized_client", "this client may not use " + grant, false}
	}
	switch grant {
	case config.GrantAuthorizationCode:
		return iss.codeGrant(c, client, form)
	case config.GrantRefreshToken:
		return iss.refreshGrant(c, client, form)
	case config.GrantTokenExchange:
		return iss.exchangeGrant(c, client, form)
	case config.GrantDeviceCode:
		return iss.deviceGrant(c.Request().Context(), client, form)
	case config.GrantClientCredentials:
		resource, oe := iss.scopes.Load().of(client.ID).resources(form["resource"], nil)
		if oe != nil {
			return nil, oe
		}
		g := &Grant{ClientID: client.ID, Resource: resource}
		return iss.mint(c.Request().Context(), g, nil, "", iss.grantable(client, nil, form.Get("scope")), false, "")
	default:
		return iss.passwordGrant(c, client, form)
	}
}

// issuedTo loads the row that stores credential by its hash in column,
// checking that it was issued to client before anything touches it: another
// client can neither use nor burn it. Either failure is an invalid_grant
// naming what the credential is.
func issuedTo[T any](ctx context.Context, db *gorm.DB, column, credential, what string, client *Client, owner func(*T) string) (*T, error) {
	var row T
	if err := db.WithContext(ctx).Take(&row, column+" = ?", secret.Hash(credential)).Error; err != nil {
		if store.IsNotFound(err) {
			return nil, invalidGrant("the " + what + " is not valid")
		}
		return nil, err
	}
	if owner(&row) != client.ID {
		return nil, invalidGrant("the " + what + " was issued to another client")
	}
	return &row, nil
}

func (iss *Issuer) codeGrant(c echo.Context, client *Client, form url.Values) (*tokenResponse, error) {
	ctx := c.Request().Context()
	code := form.Get("code")
	if code == "" {
		return nil, invalidRequest("code is required")
	}
	ac, err := issuedTo(ctx, iss.db, "hash", code, "code", client, func(ac *AuthCode) string { return ac.ClientID })
	if err != nil {
		return nil, err
	}
	now := iss.now()
	if ac.UsedAt == nil && now.After(ac.ExpiresAt) { // refused without a trace: nothing was issued
		return nil, invalidGrant("the code has expired")
	}
	// One-time use, decided by one conditional write so that two concurrent
	// redemptions cannot both win. A second use revokes what the first issued.
	res := iss.db.WithContext(ctx).Model(&AuthCode{}).Where("hash = ? AND used_at IS NULL", ac.Hash).Update("used_at", now)
	if res.Error != nil {
		return nil, res.Error
	}
	if res.RowsAffected != 1 {
		if err := iss.revokeGrant(ctx, ac.GrantID, ac.ClientID); err != nil {
			return nil, err
		}
		return nil, invalidGrant("the code was already used; the tokens issued for it are revoked")
	}
	switch {
	case now.After(ac.ExpiresAt):
		return nil, invalidGrant("the code has expired")
	case form.Get("redirect_uri") != ac.RedirectURI:
		return nil, invalidGrant("redirect_uri does not match the authorization request")
	}
	if err := checkPKCE(ac.CodeChallenge, form.Get("code_verifier")); err != nil {
		return nil, err
	}
	resource, oe := iss.scopes.Load().of(client.ID).resources(form["resource"], &ac.Resource)
	if oe != nil {
		return nil, oe
	}
	u, err := iss.users.UserByID(ctx, ac.UserID)
	if err != nil || u.Disabled {
		return nil, invalidGrant("the user can no longer sign in")
	}
	g := &Grant{ID: ac.GrantID, ClientID: client.ID, UserID: u.ID, SessionID: ac.SessionID, Scope: ac.Scope,
		AuthTime: ac.AuthTime, AMR: ac.AMR, ACR: ac.ACR, IDP: ac.IDP, Subject: ac.Subject, Claims: ac.Claims, Resource: resource, CreatedAt: now}
	if err := iss.db.WithContext(ctx).Create(g).Error; err != nil {
		if store.IsDuplicate(err) { // revoked by a concurrent reuse
			return nil, invalidGrant("the code was already used")
		}
		return nil, err
	}
	return iss.mint(ctx, g, u, ac.Nonce, ac.Scope, client.allows(config.GrantRefreshToken), "")
}

// checkPKCE verifies code_verifier against the stored S256 challenge. A
// verifier without a challenge is refused too (RFC 9700 §4.8.2).
func checkPKCE(challenge, verifier string) error {
	switch {
	case challenge == "" && verifier != "":
		return invalidGrant("code_verifier sent, but the authorization request had no code_challenge")
	case challenge == "":
		return nil
	case verifier == "":
		return invalidGrant("code_verifier is required")
	}
	sum := sha256.Sum256([]byte(verifier))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) != 1 {
		return invalidGrant("code_verifier does not match the code_challenge")
	}
	return nil
}

func (iss *Issuer) refreshGrant(c echo.Context, client *Client, form url.Values) (*tokenResponse, error) {
	ctx := c.Request().Context()
	token := form.Get("refresh_token")
	if token == "" {
		return nil, invalidRequest("refresh_token is required")
	}
	row, err := iss.refreshToken(ctx, secret.Hash(token))
	if err != nil {
		return nil, err
	}
	if row == nil {
		return nil, invalidGrant("the refresh token is not valid")
	}
	rt, g := &row.Refresh, &row.Grant
	if rt.ClientID != client.ID {
		return nil, invalidGrant("the refresh token was issued to another client")
	}
	scope := rt.Scope
	if s := form.Get("scope"); s != "" {
		if !subsetScope(s, rt.Scope) { // checked first: a bad request must not burn a good token
			return nil, &oauthError{http.StatusBadRequest, "invalid_scope", "scope exceeds what was granted", false}
		}
		scope = s
	}
	if rt.UsedAt == nil { // a replay goes straight to its revocation below
		if iss.now().After(rt.ExpiresAt) {
			return nil, invalidGrant("the refresh token has expired")
		}
		if g.ID == "" || g.RevokedAt != nil {
			return nil, invalidGrant("the grant was revoked")
		}
		var oe *oauthError
		if g.Resource, oe = iss.scopes.Load().of(client.ID).resources(form["resource"], &g.Resource); oe != nil {
			return nil, oe
		}
		u, err := iss.users.UserOf(ctx, &row.UserRow)
		if err != nil || u.Disabled {
			return nil, invalidGrant("the user can no longer sign in")
		}
		// Asked before the token is spent: an upstream that cannot answer
		// leaves it good for the next try.
		if err := iss.recheck(ctx, g.UserID, g.IDP, g.Subject); err != nil {
			return nil, err
		}
		resp, err := iss.mint(ctx, g, u, "", scope, true, rt.Hash)
		if !errors.Is(err, errSpent) {
			return resp, err
		}
	}
	// A rotated refresh token came back: it was stolen or replayed. Revoke the family.
	if err := iss.revokeGrant(ctx, rt.GrantID, rt.ClientID); err != nil {
		return nil, err
	}
	return nil, invalidGrant("the refresh token was already used; its whole family is revoked")
}

func (iss *Issuer) passwordGrant(c echo.Context, client *Client, form url.Values) (*tokenResponse, error) {
	ctx := c.Request().Context()
	username, password := form.Get("username"), form.Get("password")
	if username == "" || password == "" {
		return nil, invalidRequest("username and password are required")
	}
	if iss.broker == nil {
		return nil, invalidGrant("password login is not available")
	}
	resource, oe := iss.scopes.Load().of(client.ID).resources(form["resource"], nil)
	if oe != nil {
		return nil, oe
	}
	a, err := iss.broker.PasswordLogin(ctx, client.MFA, username, password, c.RealIP())
	if errors.Is(err, login.ErrBusy) { // too many password checks at once: come back shortly
		c.Response().Header().Set("Retry-After", login.BusyRetryAfter)
		return nil, &oauthError{http.StatusServiceUnavailable, "temporarily_unavailable", err.Error(), false}
	}
	if err != nil {
		return nil, invalidGrant(err.Error())
	}
	u, err := iss.users.UserByID(ctx, a.UserID)
	if err != nil || u.Disabled {
		return nil, invalidGrant("the user can no longer sign in")
	}
	now := iss.now()
	scope := iss.grantable(client, func() bool { return adminUser(u) }, form.Get("scope"))
	g := &Grant{ID: secret.Token(16), ClientID: client.ID, UserID: u.ID, Scope: scope, Resource: resource,
		AuthTime: a.AuthTime.Truncate(time.Second), AMR: strings.Join(a.AMR, " "), ACR: a.ACR, IDP: a.Connector, Subject: a.Subject, CreatedAt: now}
	if err := iss.db.WithContext(ctx).Create(g).Error; err != nil {
		return nil, err
	}
	return iss.mint(ctx, g, u, "", scope, client.allows(config.GrantRefreshToken), "")
}
