package oidc

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/fedhub/fedhub/login"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/fedhub/fedhub/brokers"
)

// Client authentication methods at the upstream's token endpoint.
const (
	AuthMethodBasic = "client_secret_basic"
	AuthMethodPost  = "client_secret_post"
)

// Keys of brokers.Flow.Data that Begin fills and Finish reads.
const (
	DataNonce       = "nonce"
	DataVerifier    = "code_verifier"
	DataRedirectURI = "redirect_uri"
	// DataStarted is when Begin ran (Unix seconds, from Config.Now).
	DataStarted = "started"
	// DataForceAuthn is "1" when Begin sent prompt=login.
	DataForceAuthn = "force_authn"
	// DataMaxAge is the max_age Begin sent (seconds), absent when none.
	DataMaxAge = "max_age"
)

// AuthTimeSkew is how far the upstream's clock may lag behind fedhub's when
// Finish checks auth_time: on a forced login auth_time may be up to this much
// before the flow began (auth_time also has whole-second precision), and with
// max_age it may be up to max_age plus this much in the past. A larger value
// would let a login the upstream's SSO session answered a moment before the
// flow began count as fresh.
const AuthTimeSkew = 5 * time.Second

// discoveryTimeout bounds one discovery attempt, whoever is waiting for it.
const discoveryTimeout = 10 * time.Second

// Errors Finish returns (wrapped) when the upstream's answer is refused.
var (
	ErrState           = errors.New("state does not match the upstream login")
	ErrNonce           = errors.New("ID token nonce does not match the upstream login")
	ErrCodeRefused     = errors.New("the upstream refused the authorization code")
	ErrUserinfoSubject = errors.New("userinfo subject differs from the ID token's")
	// ErrNotReauthenticated: the flow forced a login (prompt=login) or sent
	// max_age, and the ID token's auth_time is missing or too old: the
	// upstream answered from its SSO session. Finish joins it with a
	// *login.UserError for the person.
	ErrNotReauthenticated = errors.New("the upstream did not authenticate the person again")
)

type claimNames struct {
	username, email, name, groups, emailVerified string
}

// Connector is an upstream OpenID Provider. It is safe for concurrent use.
type Connector struct {
	id, name      string
	issuer        string
	clientID      string
	clientSecret  string
	authStyle     oauth2.AuthStyle
	scopes        []string
	useUserinfo   bool
	claims        claimNames
	http          *http.Client
	log           *slog.Logger
	mfaACR        []string
	maxAgeWithout time.Duration
	now           func() time.Time

	mu      sync.Mutex
	up      *upstream  // the discovered provider, once discovery succeeded
	pending *discovery // the discovery in progress, if any
}

// upstream is what discovery learnt.
type upstream struct {
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	endpoint oauth2.Endpoint
	issuer   string
	issParam bool // authorization_response_iss_parameter_supported (RFC 9207)
}

type discovery struct {
	done chan struct{}
	up   *upstream
	err  error
}

var (
	_ brokers.RedirectConnector = (*Connector)(nil)
	_ brokers.HealthChecker     = (*Connector)(nil)
)

// New checks cfg and returns the connector. It does not contact the upstream.
func New(cfg Config, log *slog.Logger) (*Connector, error) {
	if cfg.ID == "" {
		return nil, errors.New("oidc connector: id is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("oidc connector %q: %w", cfg.ID, err)
	}
	c := &Connector{
		id: cfg.ID, name: cfg.Name, issuer: cfg.Issuer,
		clientID: cfg.ClientID, clientSecret: cfg.ClientSecret,
		useUserinfo: cfg.UseUserinfo, http: cfg.HTTPClient, log: log,
		claims: claimNames{username: "preferred_username", email: "email", name: "name",
			groups: "groups", emailVerified: "email_verified"},
	}
	if c.name == "" {
		c.name = cfg.ID
	}
	c.authStyle = oauth2.AuthStyleInHeader
	if cfg.AuthMethod == AuthMethodPost {
		c.authStyle = oauth2.AuthStyleInParams
	}
	c.scopes = []string{oidc.ScopeOpenID}
	if len(cfg.Scopes) == 0 {
		c.scopes = append(c.scopes, "profile", "email")
	}
	for _, s := range cfg.Scopes {
		if !slices.Contains(c.scopes, s) {
			c.scopes = append(c.scopes, s)
		}
	}
	for k, v := range cfg.Claims {
		switch k {
		case "username":
			c.claims.username = v
		case "email":
			c.claims.email = v
		case "name":
			c.claims.name = v
		case "groups":
			c.claims.groups = v
		case "email_verified":
			c.claims.emailVerified = v
		}
	}
	c.mfaACR = cfg.MFAACRValues
	c.now = cfg.Now
	if c.now == nil {
		c.now = time.Now
	}
	c.maxAgeWithout = cmp.Or(cfg.MaxAgeWithoutUpstream, 24*time.Hour)
	if c.http == nil {
		c.http = &http.Client{Timeout: 10 * time.Second}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("connector", c.id)
	return c, nil
}

// upstream returns the discovered provider, discovering it when needed.
// Callers arriving while a discovery runs wait for that one; after a failure
// the next caller tries again.
func (c *Connector) upstream(ctx context.Context) (*upstream, error) {
	c.mu.Lock()
	if up := c.up; up != nil {
		c.mu.Unlock()
		return up, nil
	}
	d := c.pending
	if d == nil {
		d = &discovery{done: make(chan struct{})}
		c.pending = d
		go c.discover(d)
	}
	c.mu.Unlock()
	select {
	case <-d.done:
		return d.up, d.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// discover runs one discovery, detached from any caller's cancellation so
// that one impatient browser does not fail the others waiting for it.
func (c *Connector) discover(d *discovery) {
	ctx, cancel := context.WithTimeout(context.Background(), discoveryTimeout)
	defer cancel()
	d.up, d.err = c.fetch(ctx)
	c.mu.Lock()
	if d.err == nil && c.up == nil {
		c.up = d.up
	}
	c.pending = nil
	c.mu.Unlock()
	if d.err != nil {
		c.log.Warn("upstream discovery failed", "issuer", c.issuer, "err", d.err)
	} else {
		c.log.Info("upstream discovered", "issuer", c.issuer)
	}
	close(d.done)
}

// fetch reads the upstream's discovery document.
func (c *Connector) fetch(ctx context.Context) (*upstream, error) {
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, c.http), c.issuer)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	var meta struct {
		IssParam             bool     `json:"authorization_response_iss_parameter_supported"`
		CodeChallengeMethods []string `json:"code_challenge_methods_supported"`
	}
	if err := p.Claims(&meta); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	ep := p.Endpoint()
	for what, e := range map[string]string{"authorization_endpoint": ep.AuthURL, "token_endpoint": ep.TokenURL} {
		u, err := url.Parse(e)
		if err != nil || u.Host == "" || (u.Scheme != "https" && (u.Scheme != "http" || strings.HasPrefix(c.issuer, "https:"))) {
			return nil, fmt.Errorf("discovery: unusable %s %q", what, e)
		}
	}
	if len(meta.CodeChallengeMethods) > 0 && !slices.Contains(meta.CodeChallengeMethods, "S256") {
		c.log.WarnContext(ctx, "upstream does not advertise PKCE S256; sending it anyway")
	}
	return &upstream{
		provider: p,
		verifier: p.Verifier(&oidc.Config{ClientID: c.clientID, Now: c.now}),
		endpoint: ep,
		issuer:   c.issuer,
		issParam: meta.IssParam,
	}, nil
}

func (c *Connector) oauth2Config(up *upstream, redirectURI string) *oauth2.Config {
	ep := up.endpoint
	ep.AuthStyle = c.authStyle
	return &oauth2.Config{
		ClientID: c.clientID, ClientSecret: c.clientSecret,
		Endpoint: ep, RedirectURL: redirectURI, Scopes: c.scopes,
	}
}

func (c *Connector) unreachable() error {
	return &login.UserError{Message: fmt.Sprintf(
		"%s is not reachable right now. Please try again in a few minutes, or choose another way to sign in.", c.name)}
}

// Begin implements brokers.RedirectConnector: it stores a fresh nonce, PKCE
// verifier and the redirect URI in flow.Data (keys DataNonce, DataVerifier,
// DataRedirectURI) and answers with a 303 to the upstream's authorization
// endpoint. When the upstream cannot be discovered it returns a
// *login.UserError.
//
// Step-up: flow.ForceAuthn sends prompt=login and flow.MaxAge > 0 sends
// max_age; MaxAge 0 or less sends nothing (a zero Flow asks for nothing, so
// a caller wanting max_age=0 sets ForceAuthn, which is the same request).
// What was asked is kept in flow.Data (DataStarted, always; DataForceAuthn,
// DataMaxAge) for Finish to hold the ID token to it.
func (c *Connector) Begin(ctx context.Context, w http.ResponseWriter, r *http.Request, flow *brokers.Flow) error {
	if flow == nil || flow.State == "" || flow.Callback == "" {
		return fmt.Errorf("oidc %s: flow without state or callback", c.id)
	}
	up, err := c.upstream(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return c.unreachable()
	}
	nonce, err := randomString()
	if err != nil {
		return err
	}
	verifier := oauth2.GenerateVerifier()
	if flow.Data == nil {
		flow.Data = map[string]string{}
	}
	flow.Data[DataNonce] = nonce
	flow.Data[DataVerifier] = verifier
	flow.Data[DataRedirectURI] = flow.Callback
	flow.Data[DataStarted] = strconv.FormatInt(c.now().Unix(), 10)
	delete(flow.Data, DataForceAuthn)
	delete(flow.Data, DataMaxAge)
	opts := []oauth2.AuthCodeOption{oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)}
	if flow.ForceAuthn {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "login"))
		flow.Data[DataForceAuthn] = "1"
	}
	if flow.MaxAge > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("max_age", strconv.Itoa(flow.MaxAge)))
		flow.Data[DataMaxAge] = strconv.Itoa(flow.MaxAge)
	}
	to := c.oauth2Config(up, flow.Callback).AuthCodeURL(flow.State, opts...)
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// Finish implements brokers.RedirectConnector: it verifies the upstream's
// answer to flow and returns the identity it proves, with AuthTime, AMR and
// ACR from the ID token's auth_time, amr and acr (an auth_time later than
// now counts as now).
//
// When Begin forced a login (prompt=login), an ID token whose auth_time is
// missing or earlier than the flow's start minus AuthTimeSkew is refused;
// when Begin sent max_age, one whose auth_time is missing or older than
// max_age plus AuthTimeSkew is refused. Both refusals wrap
// ErrNotReauthenticated and a *login.UserError.
func (c *Connector) Finish(ctx context.Context, r *http.Request, flow *brokers.Flow) (login.Identity, error) {
	if flow == nil || flow.State == "" {
		return login.Identity{}, fmt.Errorf("oidc %s: no upstream login", c.id)
	}
	if subtle.ConstantTimeCompare([]byte(r.FormValue("state")), []byte(flow.State)) != 1 {
		return login.Identity{}, fmt.Errorf("oidc %s: %w", c.id, ErrState)
	}
	if code := r.FormValue("error"); code != "" {
		return login.Identity{}, c.upstreamError(ctx, code, r.FormValue("error_description"))
	}
	code := r.FormValue("code")
	if code == "" {
		return login.Identity{}, fmt.Errorf("oidc %s: the upstream's answer has no code", c.id)
	}
	nonce, verifier := flow.Data[DataNonce], flow.Data[DataVerifier]
	redirectURI := flow.Data[DataRedirectURI]
	if redirectURI == "" {
		redirectURI = flow.Callback
	}
	if nonce == "" || verifier == "" || redirectURI == "" {
		return login.Identity{}, fmt.Errorf("oidc %s: the upstream login lacks its nonce, verifier or redirect URI", c.id)
	}
	up, err := c.upstream(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return login.Identity{}, ctx.Err()
		}
		return login.Identity{}, c.unreachable()
	}
	// RFC 9207: an iss parameter must name our upstream (mix-up defence).
	if iss, ok := r.Form["iss"]; ok || up.issParam {
		if len(iss) != 1 || iss[0] != up.issuer {
			return login.Identity{}, fmt.Errorf("oidc %s: the answer's iss parameter does not name the upstream", c.id)
		}
	}
	// The login data is single-use even if a caller hands the same flow twice.
	delete(flow.Data, DataNonce)
	delete(flow.Data, DataVerifier)

	ctx = oidc.ClientContext(ctx, c.http)
	tok, err := c.oauth2Config(up, redirectURI).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			c.log.WarnContext(ctx, "upstream refused the code", "error", safeCode(re.ErrorCode),
				"error_description", truncate(re.ErrorDescription, 200), "status", statusOf(re))
			return login.Identity{}, fmt.Errorf("oidc %s: %w (%s)", c.id, ErrCodeRefused, safeCode(re.ErrorCode))
		}
		if ctx.Err() != nil {
			return login.Identity{}, ctx.Err()
		}
		c.log.WarnContext(ctx, "code exchange failed", "err", err)
		return login.Identity{}, c.unreachable()
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return login.Identity{}, fmt.Errorf("oidc %s: the token response has no id_token", c.id)
	}
	idt, err := up.verifier.Verify(ctx, rawID)
	if err != nil {
		return login.Identity{}, fmt.Errorf("oidc %s: ID token rejected: %w", c.id, err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return login.Identity{}, fmt.Errorf("oidc %s: %w", c.id, ErrNonce)
	}
	if idt.Subject == "" {
		return login.Identity{}, fmt.Errorf("oidc %s: ID token has no sub", c.id)
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		return login.Identity{}, fmt.Errorf("oidc %s: ID token claims: %w", c.id, err)
	}
	// OIDC Core 3.1.3.7: with several audiences azp must be us; if present it must be us.
	azp, hasAzp := claims["azp"].(string)
	if (hasAzp || len(idt.Audience) > 1) && azp != c.clientID {
		return login.Identity{}, fmt.Errorf("oidc %s: ID token azp is not our client", c.id)
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return login.Identity{}, fmt.Errorf("oidc %s: at_hash: %w", c.id, err)
		}
	}
	authTime := c.authTime(claims["auth_time"])
	if err := c.checkFresh(ctx, flow, authTime); err != nil {
		return login.Identity{}, err
	}
	if c.useUserinfo {
		if err := c.mergeUserinfo(ctx, up, tok, idt.Subject, claims); err != nil {
			return login.Identity{}, err
		}
	}
	return login.Identity{
		Connector:     c.id,
		Subject:       idt.Issuer + "|" + idt.Subject,
		Username:      str(claims[c.claims.username]),
		Email:         str(claims[c.claims.email]),
		EmailVerified: boolish(claims[c.claims.emailVerified]),
		Name:          str(claims[c.claims.name]),
		Groups:        strs(claims[c.claims.groups]),
		Raw:           claims,
		AuthTime:      authTime,
		AMR:           strs(claims["amr"]),
		ACR:           str(claims["acr"]),
		Upstream:      keep(tok, ""),
	}, nil
}

// authTime reads the auth_time claim (seconds since the epoch); zero when it
// is absent or not a positive number, and never later than now.
func (c *Connector) authTime(v any) time.Time {
	var secs float64
	switch v := v.(type) {
	case float64:
		secs = v
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return time.Time{}
		}
		secs = f
	default:
		return time.Time{}
	}
	if secs <= 0 || secs > 1<<40 {
		return time.Time{}
	}
	t := time.Unix(int64(secs), 0)
	if now := c.now(); t.After(now) {
		return now
	}
	return t
}

// checkFresh holds auth_time to what Begin asked of the upstream: a login
// now (prompt=login) and one no older than max_age.
func (c *Connector) checkFresh(ctx context.Context, flow *brokers.Flow, authTime time.Time) error {
	force := flow.ForceAuthn || flow.Data[DataForceAuthn] == "1"
	maxAge := -1
	if s, ok := flow.Data[DataMaxAge]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("oidc %s: the upstream login has an invalid max_age %q", c.id, s)
		}
		maxAge = n
	} else if flow.MaxAge > 0 {
		maxAge = flow.MaxAge
	}
	if !force && maxAge < 0 {
		return nil
	}
	refuse := func(reason string, args ...any) error {
		c.log.WarnContext(ctx, "ID token refused: the upstream did not authenticate the person again",
			append([]any{"reason", reason, "auth_time", authTime, "force_authn", force, "max_age", maxAge}, args...)...)
		return fmt.Errorf("oidc %s: %w (%s): %w", c.id, ErrNotReauthenticated, reason, &login.UserError{Message: fmt.Sprintf(
			"%s did not ask for your credentials again, which this sign-in requires. Please try again; if it keeps happening, sign out of %s first.",
			c.name, c.name)})
	}
	if authTime.IsZero() {
		return refuse("no auth_time in the ID token")
	}
	if force {
		secs, err := strconv.ParseInt(flow.Data[DataStarted], 10, 64)
		if err != nil {
			return fmt.Errorf("oidc %s: the upstream login lacks its start time", c.id)
		}
		started := time.Unix(secs, 0)
		if authTime.Before(started.Add(-AuthTimeSkew)) {
			return refuse("auth_time is before the login began (prompt=login ignored)", "started", started)
		}
	}
	if maxAge >= 0 && c.now().Sub(authTime) > time.Duration(maxAge)*time.Second+AuthTimeSkew {
		return refuse("auth_time is older than max_age")
	}
	return nil
}

// MultiFactor reports whether the upstream says the login used several
// factors: amr holds "mfa" (RFC 8176), or acr is one of the configured
// MFAACRValues. Other amr values, even two of them, do not count.
func (c *Connector) MultiFactor(id login.Identity) bool {
	return slices.Contains(id.AMR, "mfa") || (id.ACR != "" && slices.Contains(c.mfaACR, id.ACR))
}

// protocolClaims describe the ID token itself: userinfo never overrides them.
var protocolClaims = map[string]bool{
	"iss": true, "sub": true, "aud": true, "exp": true, "iat": true, "nbf": true, "jti": true,
	"nonce": true, "azp": true, "at_hash": true, "c_hash": true, "auth_time": true,
	"acr": true, "amr": true, "sid": true,
}

// mergeUserinfo adds the userinfo claims to claims, after checking that they
// are about the same subject (OIDC Core 5.3.2).
func (c *Connector) mergeUserinfo(ctx context.Context, up *upstream, tok *oauth2.Token, sub string, claims map[string]any) error {
	ui, err := up.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return fmt.Errorf("oidc %s: userinfo: %w", c.id, err)
	}
	if ui.Subject != sub {
		return fmt.Errorf("oidc %s: %w", c.id, ErrUserinfoSubject)
	}
	var uc map[string]any
	if err := ui.Claims(&uc); err != nil {
		return fmt.Errorf("oidc %s: userinfo claims: %w", c.id, err)
	}
	for k, v := range uc {
		if !protocolClaims[k] {
			claims[k] = v
		}
	}
	return nil
}

// upstreamError turns an error answer of the upstream into a message for
// the person; only a well-formed error code is shown, never the description.
func (c *Connector) upstreamError(ctx context.Context, code, description string) error {
	code = safeCode(code)
	c.log.InfoContext(ctx, "upstream answered with an error", "error", code,
		"error_description", truncate(description, 200))
	var msg string
	switch code {
	case "access_denied":
		msg = fmt.Sprintf("Sign-in with %s was cancelled or not allowed. You can try again or choose another way to sign in.", c.name)
	case "login_required", "interaction_required", "consent_required", "account_selection_required":
		msg = fmt.Sprintf("%s needs you to sign in there again. Please try again.", c.name)
	case "temporarily_unavailable", "server_error":
		msg = fmt.Sprintf("%s could not sign you in right now. Please try again in a few minutes, or choose another way to sign in.", c.name)
	default:
		msg = fmt.Sprintf("%s could not sign you in (error %s). Please try again or choose another way to sign in.", c.name, code)
	}
	return &login.UserError{Message: msg}
}

// Health implements brokers.HealthChecker: it fetches the discovery document.
func (c *Connector) Health(ctx context.Context) error {
	up, err := c.fetch(ctx)
	if err != nil {
		return fmt.Errorf("oidc %s: %w", c.id, err)
	}
	c.mu.Lock()
	if c.up == nil {
		c.up = up
	}
	c.mu.Unlock()
	return nil
}

func randomString() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// safeCode returns an OAuth error code fit to show and log, or "invalid".
func safeCode(code string) string {
	if code == "" || len(code) > 64 {
		return "invalid"
	}
	for _, r := range code {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return "invalid"
		}
	}
	return code
}

func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func statusOf(re *oauth2.RetrieveError) int {
	if re.Response == nil {
		return 0
	}
	return re.Response.StatusCode
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// boolish accepts true and "true" (some upstreams send strings).
func boolish(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true")
	}
	return false
}

// strs accepts an array of strings or a single string.
func strs(v any) []string {
	switch v := v.(type) {
	case string:
		if v == "" {
			return nil
		}
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
