package issuer

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/web"
)

// pkceChallenge reports whether s is a code challenge: 43 to 128 unreserved
// characters (RFC 7636 4.2). A regexp's {43,128} would compile at start
// into a program of 128 copies.
func pkceChallenge(s string) bool {
	return len(s) >= 43 && len(s) <= 128 && strings.Trim(s, unreservedChars) == ""
}

// unreservedChars are RFC 3986's unreserved characters.
const unreservedChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"

// authzRequest is a validated authorization request.
type authzRequest struct {
	client      *Client
	redirectURI string
	state       string
	scope       string
	nonce       string
	challenge   string
	prompt      map[string]bool
	maxAge      int // -1 when absent
	loginHint   string
	idpHint     string
	acrValues   string
	claims      string
	resource    string // the APIs asked for (RFC 8707), space-separated
	hintSubject string // sub of a valid id_token_hint
}

// authzError is an error the RP learns about through its redirect URI.
type authzError struct{ code, description string }

func (e *authzError) Error() string { return e.code + ": " + e.description }

func (iss *Issuer) authorize(c echo.Context) error {
	r := c.Request()
	web.NoStore(c)
	form, err := requestParams(r)
	if err != nil {
		return web.RenderError(c, http.StatusBadRequest, web.ErrorPage{
			Title: "This sign-in link is not valid",
			What:  "The application sent a request fedhub cannot read.",
			Next:  "Go back to the application and try again; if it keeps happening, tell its administrators.",
		})
	}
	client, redirectURI, page := iss.trustedRedirect(c, form)
	if page != nil {
		return web.RenderError(c, http.StatusBadRequest, *page)
	}
	state := form.Get("state")
	req, aerr := iss.parseAuthz(c, form, client, redirectURI)
	if aerr != nil {
		return iss.redirectError(c, redirectURI, state, aerr)
	}
	req.state = state

	sess, err := iss.currentSession(c.Request())
	if err != nil {
		return err
	}
	if sess != nil && !iss.needsLogin(req, sess) {
		return iss.finish(c, req, sess)
	}
	if req.prompt["none"] {
		return iss.redirectError(c, redirectURI, state, &authzError{"login_required", "the user must log in"})
	}
	return iss.startLogin(c, req)
}

// requestParams reads the authorization request from the query (GET) or the
// form body (POST). A parameter given twice makes the request invalid.
func requestParams(r *http.Request) (url.Values, error) {
	var form url.Values
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(nil, r.Body, web.MaxBody)
		if err := r.ParseForm(); err != nil {
			return nil, err
		}
		form = r.PostForm
	} else {
		var err error
		if form, err = url.ParseQuery(r.URL.RawQuery); err != nil {
			return nil, err
		}
	}
	return form, nil
}

// trustedRedirect resolves the client and its redirect URI. Until both are
// known to be good, errors are shown as a page: never redirect to an
// unregistered URI (RFC 9700 §4.1).
func (iss *Issuer) trustedRedirect(c echo.Context, form url.Values) (*Client, string, *web.ErrorPage) {
	bad := &web.ErrorPage{
		Title: "This application is not set up to sign in here",
		What:  "The sign-in request names an application or a return address that fedhub does not know.",
		Next:  "Go back to the application and try again; if it keeps happening, tell its administrators (the client ID or redirect URI is not registered).",
	}
	if len(form["client_id"]) != 1 || len(form["redirect_uri"]) != 1 {
		return nil, "", bad
	}
	client, err := iss.client(c.Request().Context(), form.Get("client_id"))
	if err != nil {
		if !errors.Is(err, errUnknownClient) {
			iss.log.ErrorContext(c.Request().Context(), "authorize: load client", "err", err)
		}
		return nil, "", bad
	}
	uri := form.Get("redirect_uri")
	if !client.redirectAllowed(uri) {
		return nil, "", bad
	}
	return client, uri, nil
}

func (iss *Issuer) parseAuthz(c echo.Context, form url.Values, client *Client, redirectURI string) (*authzRequest, *authzError) {
	invalid := func(format string, args ...any) *authzError {
		return &authzError{"invalid_request", fmt.Sprintf(format, args...)}
	}
	for k, v := range form {
		if len(v) > 1 && k != "resource" { // RFC 8707 §2: one resource parameter per API
			return nil, invalid("parameter %s is given more than once", k)
		}
		if !web.Text(k) || slices.ContainsFunc(v, func(s string) bool { return !web.Text(s) }) {
			return nil, invalid("parameters must be UTF-8 text without NUL")
		}
	}
	switch {
	case form.Has("request"):
		return nil, &authzError{"request_not_supported", "request objects are not supported"}
	case form.Has("request_uri"):
		return nil, &authzError{"request_uri_not_supported", "request_uri is not supported"}
	case form.Get("response_type") == "":
		return nil, invalid("response_type is required")
	case form.Get("response_type") != "code":
		return nil, &authzError{"unsupported_response_type", "only response_type=code is supported"}
	case !client.allows(config.GrantAuthorizationCode):
		return nil, &authzError{"unauthorized_client", "this client may not use the authorization code flow"}
	case form.Has("response_mode") && form.Get("response_mode") != "query":
		return nil, invalid("only response_mode=query is supported")
	}
	req := &authzRequest{
		client: client, redirectURI: redirectURI, scope: form.Get("scope"), nonce: form.Get("nonce"),
		loginHint: form.Get("login_hint"), idpHint: form.Get("idp_hint"),
		acrValues: form.Get("acr_values"), maxAge: -1, prompt: map[string]bool{},
	}
	challenge, method := form.Get("code_challenge"), form.Get("code_challenge_method")
	switch {
	case challenge == "" && method != "":
		return nil, invalid("code_challenge_method without code_challenge")
	case challenge != "" && method != "S256":
		return nil, invalid("code_challenge_method must be S256")
	case challenge != "" && !pkceChallenge(challenge):
		return nil, invalid("code_challenge is malformed")
	case challenge == "" && client.Public:
		return nil, invalid("PKCE with S256 is required for this client")
	}
	req.challenge = challenge
	for _, p := range strings.Fields(form.Get("prompt")) {
		req.prompt[p] = true
	}
	if req.prompt["none"] && len(req.prompt) > 1 {
		return nil, invalid("prompt=none cannot be combined with other values")
	}
	if form.Has("max_age") {
		n, err := strconv.Atoi(form.Get("max_age"))
		if err != nil || n < 0 {
			return nil, invalid("max_age must be a non-negative integer")
		}
		req.maxAge = n
	}
	if cl := form.Get("claims"); cl != "" {
		var obj map[string]json.RawMessage
		if len(cl) > 4096 || json.Unmarshal([]byte(cl), &obj) != nil {
			return nil, invalid("claims must be a JSON object")
		}
		req.claims = cl
	}
	resource, oe := iss.scopes.Load().of(client.ID).resources(form["resource"], nil)
	if oe != nil {
		return nil, &authzError{oe.code, oe.description}
	}
	req.resource = resource
	if len(req.nonce) > 2048 || len(req.resource) > 2048 || len(req.scope) > 2048 || len(req.loginHint) > 255 || len(form.Get("state")) > 2048 {
		return nil, invalid("a parameter is too long")
	}
	if hint := form.Get("id_token_hint"); hint != "" {
		claims, err := iss.keys.verify(c.Request().Context(), hint, typID, iss.url)
		if err != nil {
			return nil, invalid("id_token_hint is not a valid ID token of this issuer")
		}
		req.hintSubject = claims.Subject
	}
	return req, nil
}

// needsLogin decides whether an existing SSO session is enough.
func (iss *Issuer) needsLogin(req *authzRequest, sess *Session) bool {
	switch {
	case req.prompt["login"]:
		return true
	case req.maxAge >= 0 && iss.now().Sub(sess.AuthTime) > time.Duration(req.maxAge)*time.Second:
		return true
	case req.hintSubject != "" && req.hintSubject != sess.UserID:
		return true
	case (login.NeedsMultiFactor(req.acrValues) || req.client.MFA == config.MFARequired) && sess.ACR != login.ACRMultiFactor:
		return true // step-up: the session's login had one factor, this request needs two
	}
	return false
}

// startLogin stores the request as a new sign-in and sends the browser to the login page.
func (iss *Issuer) startLogin(c echo.Context, req *authzRequest) error {
	t := &login.Transaction{Purpose: login.ForClient, Step: login.StepChoose,
		ClientID: req.client.ID, ClientName: cmp.Or(req.client.Name, req.client.ID), ClientMFA: req.client.MFA, RedirectURI: req.redirectURI, Scope: req.scope, State: req.state,
		Nonce: req.nonce, CodeChallenge: req.challenge, LoginHint: req.loginHint, IDPHint: req.idpHint,
		ACRValues: req.acrValues, Claims: req.claims, Resource: req.resource, ForceLogin: req.prompt["login"] || req.maxAge == 0, MaxAge: req.maxAge}
	token, err := iss.txns.Create(c.Request().Context(), t, iss.cookies.BrowserID(c.Response(), c.Request()))
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/login?req="+url.QueryEscape(token))
}

// finish answers an authenticated request: the RP gets a code, or the
// person is asked for consent first.
func (iss *Issuer) finish(c echo.Context, req *authzRequest, sess *Session) error {
	to, err := iss.afterSignIn(c.Request().Context(), c.Response(), c.Request(), req, sess)
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// issueCode stores a new authorization code and returns the RP's redirect URL.
func (iss *Issuer) issueCode(ctx context.Context, req *authzRequest, sess *Session) (string, error) {
	code := secret.Token(32)
	row := AuthCode{
		Hash: secret.Hash(code), GrantID: secret.Token(16), ClientID: req.client.ID,
		RedirectURI: req.redirectURI, CodeChallenge: req.challenge, Nonce: req.nonce,
		UserID: sess.UserID, SessionID: sess.ID, Scope: iss.grantedScope(ctx, req, sess), Claims: req.claims, Resource: req.resource,
		AuthTime: sess.AuthTime, AMR: sess.AMR, ACR: sess.ACR, IDP: sess.IDP, Subject: sess.Subject,
		ExpiresAt: iss.now().Add(iss.tokens.CodeTTL),
	}
	if err := iss.db.WithContext(ctx).Create(&row).Error; err != nil {
		return "", fmt.Errorf("save authorization code: %w", err)
	}
	return iss.responseURL(req.redirectURI, url.Values{"code": {code}}, req.state), nil
}

// grantedScope is what of the requested scope the client may get for the
// session's user.
func (iss *Issuer) grantedScope(ctx context.Context, req *authzRequest, sess *Session) string {
	isAdmin := func() bool { // read only if the admin scope is asked for
		u, err := iss.users.UserByID(ctx, sess.UserID)
		return err == nil && adminUser(u)
	}
	return iss.grantable(req.client, isAdmin, req.scope)
}

func (iss *Issuer) redirectError(c echo.Context, redirectURI, state string, e *authzError) error {
	v := url.Values{"error": {e.code}, "error_description": {e.description}}
	return c.Redirect(http.StatusSeeOther, iss.responseURL(redirectURI, v, state))
}

// responseURL adds the response parameters, state and iss (RFC 9207) to the
// redirect URI, keeping any query it already has.
func (iss *Issuer) responseURL(redirectURI string, params url.Values, state string) string {
	u, _ := url.Parse(redirectURI) // validated against the registered list already
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	if state != "" {
		q.Set("state", state)
	}
	q.Set("iss", iss.url)
	u.RawQuery = q.Encode()
	return u.String()
}
