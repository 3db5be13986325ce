package issuer

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/audit"
)

// Token exchange (RFC 8693), for delegation: a service that received a
// user's access token exchanges it for one meant for another API, with the
// same or fewer scopes, that says who acts (act: the service). The new token
// lives no longer than the one it came from and dies with its grant.

// tokenTypeAccess is the only token type exchanged and issued.
const tokenTypeAccess = "urn:ietf:params:oauth:token-type:access_token"

func (iss *Issuer) exchangeGrant(c echo.Context, client *Client, form url.Values) (*tokenResponse, error) {
	ctx := c.Request().Context()
	switch {
	case form.Get("subject_token") == "" || form.Get("subject_token_type") == "":
		return nil, invalidRequest("subject_token and subject_token_type are required")
	case form.Get("subject_token_type") != tokenTypeAccess:
		return nil, invalidRequest("only access tokens (" + tokenTypeAccess + ") can be exchanged")
	case form.Get("requested_token_type") != "" && form.Get("requested_token_type") != tokenTypeAccess:
		return nil, invalidRequest("only access tokens can be issued")
	case form.Get("actor_token") != "" || form.Get("actor_token_type") != "":
		return nil, invalidRequest("actor_token is not supported: the client that exchanges is the actor")
	}
	// The API is named by audience, or by resource when its name is a URI
	// (RFC 8693 §2.1: an absolute URI without a fragment, as RFC 8707 §2).
	for _, r := range form["resource"] {
		if u, err := url.Parse(r); err != nil || !u.IsAbs() || u.Fragment != "" {
			return nil, &oauthError{http.StatusBadRequest, "invalid_target", "resource must be an absolute URI without a fragment", false}
		}
	}
	var audiences []string
	for _, a := range slices.Concat(form["audience"], form["resource"]) {
		if !slices.Contains(audiences, a) {
			audiences = append(audiences, a)
		}
	}
	if len(audiences) == 0 {
		return nil, invalidRequest("audience (or resource) is required: the API the new token is for")
	}
	for _, a := range audiences {
		if !slices.Contains(client.ExchangeAudiences, a) {
			return nil, &oauthError{http.StatusBadRequest, "invalid_target", "this client may not exchange tokens for " + a, false}
		}
	}
	subject, g, err := iss.accessToken(ctx, form.Get("subject_token"))
	if err != nil {
		return nil, invalidGrant("the subject token is not valid: expired, revoked or not issued by fedhub")
	}
	if subject.GrantID == "" {
		return nil, invalidGrant("the subject token is not a user's")
	}
	if !slices.Contains(subject.audiences(), client.ID) {
		return nil, invalidGrant("the subject token was not issued to this client")
	}
	scope := strings.Join(slices.DeleteFunc(strings.Fields(subject.Scope), func(s string) bool { return s == "offline_access" }), " ")
	if s := form.Get("scope"); s != "" {
		if !subsetScope(s, scope) {
			return nil, &oauthError{http.StatusBadRequest, "invalid_scope", "scope exceeds the subject token's", false}
		}
		scope = s
	}
	if g.UserID != subject.Subject {
		return nil, invalidGrant("the subject token's grant has ended")
	}
	u, err := iss.users.UserByID(ctx, g.UserID)
	if err != nil || u.Disabled {
		return nil, invalidGrant("the user of the subject token cannot sign in")
	}

	now := iss.now()
	at := iss.accessClaims(iss.scopes.Load().of(client.ID), g, u, scope, now)
	at["aud"] = audiences
	at["client_id"] = client.ID
	act := map[string]any{"sub": client.ID}
	if len(subject.Act) > 0 { // a chain of delegations: the earlier actors nest (RFC 8693 §4.1)
		var prior map[string]any
		if json.Unmarshal(subject.Act, &prior) == nil {
			act["act"] = prior
		}
	}
	at["act"] = act
	exp := min(now.Add(iss.tokens.AccessTTL).Unix(), subject.Expiry)
	at["exp"] = exp
	access, err := iss.keys.sign(ctx, at, typAccess)
	if err != nil {
		return nil, err
	}
	if err := iss.audit.Record(ctx, audit.Event{Type: audit.TokenExchanged, Actor: client.ID, ClientID: client.ID,
		UserID: u.ID, Detail: fmt.Sprintf("for %s, scope %q, from a token of %s", strings.Join(audiences, " "), scope,
			subject.ClientID)}); err != nil {
		return nil, err
	}
	return &tokenResponse{AccessToken: access, TokenType: "Bearer", ExpiresIn: exp - now.Unix(), Scope: scope,
		IssuedTokenType: tokenTypeAccess}, nil
}
