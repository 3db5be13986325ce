package issuer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/locale"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/web"
)

func (iss *Issuer) discovery(c echo.Context) error {
	algs := []string{}
	for _, a := range iss.keys.algorithms() {
		algs = append(algs, string(a))
	}
	scopes := iss.scopes.Load()
	c.Response().Header().Set("Access-Control-Allow-Origin", "*")
	return c.JSON(http.StatusOK, map[string]any{
		"issuer":                                                   iss.url,
		"authorization_endpoint":                                   iss.url + "/authorize",
		"token_endpoint":                                           iss.url + "/token",
		"userinfo_endpoint":                                        iss.url + "/userinfo",
		"jwks_uri":                                                 iss.url + "/jwks",
		"introspection_endpoint":                                   iss.url + "/introspect",
		"device_authorization_endpoint":                            iss.url + "/device_authorization",
		"revocation_endpoint":                                      iss.url + "/revoke",
		"end_session_endpoint":                                     iss.url + "/logout",
		"scopes_supported":                                         scopes.scopesSupported,
		"response_types_supported":                                 []string{"code"},
		"response_modes_supported":                                 []string{"query"},
		"grant_types_supported":                                    []string{"authorization_code", "refresh_token", "client_credentials", "password", config.GrantTokenExchange, config.GrantDeviceCode},
		"subject_types_supported":                                  []string{"public"},
		"id_token_signing_alg_values_supported":                    algs,
		"token_endpoint_auth_methods_supported":                    []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"},
		"introspection_endpoint_auth_methods_supported":            []string{"client_secret_basic", "client_secret_post", "private_key_jwt"},
		"revocation_endpoint_auth_methods_supported":               []string{"client_secret_basic", "client_secret_post", "private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported":         assertionAlgorithmNames(),
		"introspection_endpoint_auth_signing_alg_values_supported": assertionAlgorithmNames(),
		"revocation_endpoint_auth_signing_alg_values_supported":    assertionAlgorithmNames(),
		"code_challenge_methods_supported":                         []string{"S256"},
		"claims_supported":                                         scopes.claimsSupported,
		"claims_parameter_supported":                               true,
		"ui_locales_supported":                                     locale.Shipped(),
		"request_parameter_supported":                              false,
		"request_uri_parameter_supported":                          false,
		"authorization_response_iss_parameter_supported":           true,
		"frontchannel_logout_supported":                            false,
		"backchannel_logout_supported":                             true,
		"backchannel_logout_session_supported":                     true,
	})
}

func (iss *Issuer) jwks(c echo.Context) error {
	iss.keys.fresh(c.Request().Context())
	h := c.Response().Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cache-Control", "public, max-age=60") // no longer than a new key is published before it signs
	return c.JSONBlob(http.StatusOK, iss.keys.encodedJWKS())
}

// accessToken verifies one of our access tokens and that it was not
// revoked, and returns its live grant (nil for client credentials) for the
// callers that need it, read once.
func (iss *Issuer) accessToken(ctx context.Context, token string) (*tokenClaims, *Grant, error) {
	claims, err := iss.keys.verify(ctx, token, typAccess, iss.url)
	if err != nil {
		return nil, nil, err
	}
	if claims.expired(iss.now()) {
		return nil, nil, errBadToken
	}
	// One read answers both: the token was not revoked, and its client is
	// still in the configuration (a removed client's tokens die with it).
	var n int64
	err = iss.db.WithContext(ctx).Model(&Client{}).Where("id = ? AND removed_at IS NULL AND NOT EXISTS "+
		"(SELECT 1 FROM revoked_access_tokens WHERE jti = ?)", claims.ClientID, claims.JTI).Count(&n).Error
	if err != nil {
		return nil, nil, fmt.Errorf("check access token: %w", err)
	}
	if n == 0 {
		return nil, nil, errBadToken
	}
	if claims.GrantID == "" {
		return claims, nil, nil
	}
	g, active, err := iss.grantActive(ctx, claims.GrantID)
	if err != nil {
		return nil, nil, err
	}
	if !active {
		return nil, nil, errBadToken
	}
	return claims, g, nil
}

func (iss *Issuer) userinfo(c echo.Context) error {
	web.NoStore(c)
	r := c.Request()
	token, ok := web.BearerToken(r)
	if !ok && r.Method == http.MethodPost { // RFC 6750 §2.2: form-encoded body parameter
		r.Body = http.MaxBytesReader(c.Response(), r.Body, web.MaxBody)
		if err := r.ParseForm(); err == nil && len(r.PostForm["access_token"]) == 1 {
			token = r.PostForm.Get("access_token")
		}
	}
	unauthorized := func(code string) error {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="fedhub", error="`+code+`"`)
		return c.JSON(http.StatusUnauthorized, map[string]string{"error": code})
	}
	if token == "" {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="fedhub"`)
		return c.JSON(http.StatusUnauthorized, map[string]string{"error": "invalid_request"})
	}
	claims, g, err := iss.accessToken(r.Context(), strings.TrimSpace(token))
	if errors.Is(err, errBadToken) {
		return unauthorized("invalid_token")
	}
	if err != nil {
		return err
	}
	if claims.GrantID == "" || !hasScope(claims.Scope, "openid") { // client credentials, or not an OIDC grant
		return unauthorized("insufficient_scope")
	}
	u, err := iss.users.UserByID(r.Context(), claims.Subject)
	if err != nil || u.Disabled {
		return unauthorized("invalid_token")
	}
	out := map[string]any{}
	iss.scopes.Load().of(claims.ClientID).userClaims(out, u, claims.Scope, g.Claims, toUserinfo)
	out["sub"] = u.ID
	return c.JSON(http.StatusOK, out)
}

func (iss *Issuer) introspect(c echo.Context) error {
	web.NoStore(c)
	form, err := tokenForm(c)
	if err != nil {
		return iss.writeOAuthError(c, err)
	}
	client, err := iss.authenticateClient(c.Request(), form)
	if err != nil {
		return iss.writeOAuthError(c, err)
	}
	if client.Public { // a client_id alone proves nothing: anyone could scan tokens (RFC 7662 §2.1)
		return iss.writeOAuthError(c, clientAuthError{})
	}
	token := form.Get("token")
	if token == "" {
		return iss.writeOAuthError(c, invalidRequest("token is required"))
	}
	ctx := c.Request().Context()
	inactive := map[string]any{"active": false}
	if claims, _, err := iss.accessToken(ctx, token); err == nil {
		out := map[string]any{
			"active": true, "token_type": "Bearer", "client_id": claims.ClientID, "sub": claims.Subject,
			"exp": claims.Expiry, "iat": claims.IssuedAt, "iss": claims.Issuer, "aud": claims.audiences(), "jti": claims.JTI,
		}
		if claims.Scope != "" {
			out["scope"] = claims.Scope
		}
		if claims.Username != "" {
			out["username"] = claims.Username
		}
		if err := iss.introspectedClaims(ctx, claims, out); err != nil {
			return iss.writeOAuthError(c, err)
		}
		return c.JSON(http.StatusOK, out)
	} else if !errors.Is(err, errBadToken) {
		return iss.writeOAuthError(c, err)
	}
	row, err := iss.refreshToken(ctx, secret.Hash(token))
	if err != nil {
		return iss.writeOAuthError(c, err)
	}
	if row == nil || row.Grant.ID == "" || row.Grant.RevokedAt != nil || row.Refresh.UsedAt != nil || iss.now().After(row.Refresh.ExpiresAt) {
		return c.JSON(http.StatusOK, inactive)
	}
	rt, g := &row.Refresh, &row.Grant
	return c.JSON(http.StatusOK, map[string]any{
		"active": true, "token_type": "refresh_token", "client_id": rt.ClientID, "sub": g.UserID,
		"exp": rt.ExpiresAt.Unix(), "scope": rt.Scope, "iss": iss.url,
	})
}

// introspectedClaims adds to an introspection answer the claims of the
// token's scopes whose mappers go into introspection. Only a client with such
// a mapper pays for reading the user.
func (iss *Issuer) introspectedClaims(ctx context.Context, claims *tokenClaims, out map[string]any) error {
	cs := iss.scopes.Load().of(claims.ClientID)
	if !cs.introspected {
		return nil
	}
	var u *linking.User
	if claims.GrantID != "" {
		var err error
		if u, err = iss.users.UserByID(ctx, claims.Subject); err != nil {
			return fmt.Errorf("introspect: load user: %w", err)
		}
	}
	mapped := map[string]any{}
	cs.addClaims(mapped, u, claims.Scope, toIntrospection)
	for k, v := range mapped {
		if _, set := out[k]; !set { // the answer's own members stay
			out[k] = v
		}
	}
	return nil
}

// revoke implements RFC 7009: unknown tokens, and tokens of other clients, get
// a 200 and nothing changes. Revoking a refresh token revokes its whole grant.
func (iss *Issuer) revoke(c echo.Context) error {
	web.NoStore(c)
	form, err := tokenForm(c)
	if err != nil {
		return iss.writeOAuthError(c, err)
	}
	client, err := iss.authenticateClient(c.Request(), form)
	if err != nil {
		return iss.writeOAuthError(c, err)
	}
	token := form.Get("token")
	if token == "" {
		return iss.writeOAuthError(c, invalidRequest("token is required"))
	}
	ctx := c.Request().Context()
	if claims, _, err := iss.accessToken(ctx, token); err == nil {
		if claims.ClientID == client.ID {
			row := RevokedAccessToken{JTI: claims.JTI, ExpiresAt: unixTime(claims.Expiry)}
			if err := iss.db.WithContext(ctx).Where(RevokedAccessToken{JTI: claims.JTI}).FirstOrCreate(&row).Error; err != nil {
				return iss.writeOAuthError(c, err)
			}
			if err := iss.audit.Record(ctx, audit.Event{Type: audit.TokenRevoked, Actor: client.ID, ClientID: client.ID,
				UserID: userOf(claims), IP: c.RealIP(), Detail: "access token " + claims.JTI}); err != nil {
				return iss.writeOAuthError(c, err)
			}
		}
		return c.NoContent(http.StatusOK)
	}
	var rt RefreshToken
	if err := iss.db.WithContext(ctx).Take(&rt, "hash = ?", secret.Hash(token)).Error; err == nil && rt.ClientID == client.ID {
		if err := iss.revokeGrant(ctx, rt.GrantID, rt.ClientID); err != nil {
			return iss.writeOAuthError(c, err)
		}
	}
	return c.NoContent(http.StatusOK)
}

// userOf is the user an access token was issued for ("" for client credentials).
func userOf(c *tokenClaims) string {
	if c.GrantID == "" {
		return ""
	}
	return c.Subject
}
