package issuer

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/store"
	"github.com/fedhub/fedhub/web"
)

// Consent: a third-party client (third_party: true) gets a code only once
// the person has allowed it the scopes it asks for. The answer is remembered
// per user and client; a request for more scopes asks again, prompt=consent
// always asks, and revoking it (/account) ends the client's grants.

// consentTTL is how long a consent page may be answered.
const consentTTL = 10 * time.Minute

// Consent is what a person allowed a third-party client.
type Consent struct {
	UserID    string   `gorm:"primaryKey;size:36"`
	ClientID  string   `gorm:"primaryKey;size:255"`
	Scopes    []string `gorm:"serializer:json"`
	GrantedAt time.Time
}

// ConsentRequest is an authorization request waiting on the consent page,
// bound to the browser and the SSO session it was made in.
type ConsentRequest struct {
	TokenHash   string    `gorm:"primaryKey;size:64"`
	BrowserHash string    `gorm:"size:64;not null"`
	SessionID   string    `gorm:"size:64;not null"`
	ClientID    string    `gorm:"size:255;not null"`
	RedirectURI string    `gorm:"size:2048;not null"`
	State       string    `gorm:"size:2048"`
	Scope       string    `gorm:"size:2048"` // as granted to the client (grantable)
	Nonce       string    `gorm:"size:2048"`
	Challenge   string    `gorm:"size:128"`
	Claims      string    `gorm:"size:4096"`
	ExpiresAt   time.Time `gorm:"index"`
}

// scopeWords say what each scope lets an application do, on the consent page.
var scopeWords = map[string]string{
	"openid":         "Know who you are (your account ID)",
	"profile":        "See your name and username",
	"email":          "See your email address",
	"offline_access": "Keep access while you are not using it",
	AdminScope:       "Administer fedhub with your rights",
}

// scopeWord is how the consent page names scope.
func scopeWord(scope string) string {
	return cmp.Or(scopeWords[scope], "Use “"+scope+"”")
}

// afterSignIn is where the browser goes once req is authenticated in sess:
// the consent page when a third-party client needs the person's consent,
// else the application with a code.
func (iss *Issuer) afterSignIn(ctx context.Context, w http.ResponseWriter, r *http.Request, req *authzRequest, sess *Session) (string, error) {
	if !req.client.ThirdParty {
		return iss.issueCode(ctx, req, sess)
	}
	scope := iss.grantedScope(ctx, req, sess)
	var given Consent
	err := iss.db.WithContext(ctx).Take(&given, "user_id = ? AND client_id = ?", sess.UserID, req.client.ID).Error
	if err != nil && !store.IsNotFound(err) {
		return "", fmt.Errorf("load consent: %w", err)
	}
	covered := err == nil && !slices.ContainsFunc(strings.Fields(scope), func(s string) bool { return !slices.Contains(given.Scopes, s) })
	if covered && !req.prompt["consent"] {
		return iss.issueCode(ctx, req, sess)
	}
	if req.prompt["none"] {
		v := url.Values{"error": {"consent_required"}, "error_description": {"the user must allow the application first"}}
		return iss.responseURL(req.redirectURI, v, req.state), nil
	}
	token := secret.Token(32)
	row := ConsentRequest{TokenHash: secret.Hash(token), BrowserHash: secret.Hash(iss.cookies.BrowserID(w, r)),
		SessionID: sess.ID, ClientID: req.client.ID, RedirectURI: req.redirectURI, State: req.state, Scope: scope,
		Nonce: req.nonce, Challenge: req.challenge, Claims: req.claims, ExpiresAt: iss.now().Add(consentTTL)}
	if err := iss.db.WithContext(ctx).Create(&row).Error; err != nil {
		return "", fmt.Errorf("save consent request: %w", err)
	}
	return "/consent?c=" + url.QueryEscape(token), nil
}

// consentRequest loads the request the page names, if this browser may
// answer it in its current session.
func (iss *Issuer) consentRequest(c echo.Context, token string) (*ConsentRequest, *Session, error) {
	ctx := c.Request().Context()
	var row ConsentRequest
	err := iss.db.WithContext(ctx).Take(&row, "token_hash = ? AND expires_at > ?", secret.Hash(token), iss.now()).Error
	if store.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load consent request: %w", err)
	}
	sess, err := iss.currentSession(c.Request())
	if err != nil || sess == nil || sess.ID != row.SessionID ||
		row.BrowserHash != secret.Hash(iss.cookies.BrowserID(c.Response(), c.Request())) {
		return nil, nil, err
	}
	return &row, sess, nil
}

func (iss *Issuer) consentCSRF(c echo.Context, token string) string {
	return secret.Hash("consent:" + token + ":" + iss.cookies.BrowserID(c.Response(), c.Request()))[:32]
}

func (iss *Issuer) consentGone(c echo.Context) error {
	return web.RenderError(c, http.StatusBadRequest, web.ErrorPage{Title: "This request has expired",
		What: "The application's request is no longer waiting for your answer, or was made in another browser or session.",
		Next: "Go back to the application and sign in again."})
}

// consentPage asks the person whether the client may have the scopes.
func (iss *Issuer) consentPage(c echo.Context) error {
	web.NoStore(c)
	token := c.QueryParam("c")
	row, _, err := iss.consentRequest(c, token)
	if err != nil {
		return err
	}
	if row == nil {
		return iss.consentGone(c)
	}
	client, err := iss.client(c.Request().Context(), row.ClientID)
	if err != nil {
		return iss.consentGone(c)
	}
	var words []string
	for _, s := range strings.Fields(row.Scope) {
		words = append(words, scopeWord(s))
	}
	return c.Render(http.StatusOK, "consent.html", map[string]any{"CSRF": iss.consentCSRF(c, token), "Token": token,
		"ClientName": cmp.Or(client.Name, client.ID), "Scopes": words})
}

// answerConsent records the person's answer and sends the browser back to
// the application: with a code, or with access_denied.
func (iss *Issuer) answerConsent(c echo.Context) error {
	web.NoStore(c)
	ctx := c.Request().Context()
	token := c.FormValue("c")
	if c.FormValue("csrf") != iss.consentCSRF(c, token) {
		return iss.consentGone(c)
	}
	row, sess, err := iss.consentRequest(c, token)
	if err != nil {
		return err
	}
	if row == nil {
		return iss.consentGone(c)
	}
	if err := iss.db.WithContext(ctx).Delete(&ConsentRequest{}, "token_hash = ?", row.TokenHash).Error; err != nil {
		return fmt.Errorf("consent: %w", err)
	}
	client, err := iss.client(ctx, row.ClientID)
	if err != nil {
		return iss.consentGone(c)
	}
	allowed := c.FormValue("answer") == "allow"
	outcome := "failure"
	if allowed {
		outcome = "success"
		if err := iss.remember(ctx, sess.UserID, client.ID, strings.Fields(row.Scope)); err != nil {
			return err
		}
	}
	if err := iss.audit.Record(ctx, audit.Event{Type: audit.ConsentAnswered, Actor: sess.UserID, UserID: sess.UserID,
		ClientID: client.ID, IP: c.RealIP(), Outcome: outcome, Detail: "scope " + row.Scope}); err != nil {
		return err
	}
	if !allowed {
		v := url.Values{"error": {"access_denied"}, "error_description": {"the user did not allow the application"}}
		return c.Redirect(http.StatusSeeOther, iss.responseURL(row.RedirectURI, v, row.State))
	}
	req := &authzRequest{client: client, redirectURI: row.RedirectURI, state: row.State, scope: row.Scope,
		nonce: row.Nonce, challenge: row.Challenge, claims: row.Claims}
	to, err := iss.issueCode(ctx, req, sess)
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, to)
}

// remember adds scopes to what the user allowed the client.
func (iss *Issuer) remember(ctx context.Context, userID, clientID string, scopes []string) error {
	return iss.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var c Consent
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Take(&c, "user_id = ? AND client_id = ?", userID, clientID).Error
		if err != nil && !store.IsNotFound(err) {
			return fmt.Errorf("load consent: %w", err)
		}
		for _, s := range scopes {
			if !slices.Contains(c.Scopes, s) {
				c.Scopes = append(c.Scopes, s)
			}
		}
		c.UserID, c.ClientID, c.GrantedAt = userID, clientID, iss.now()
		return tx.Save(&c).Error
	})
}

// Consents lists what a user allowed third-party clients, for /account.
func (iss *Issuer) Consents(ctx context.Context, userID string) ([]login.Consent, error) {
	var rows []Consent
	if err := iss.db.WithContext(ctx).Where("user_id = ?", userID).Order("granted_at DESC").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list consents: %w", err)
	}
	out := make([]login.Consent, 0, len(rows))
	for _, r := range rows {
		name := r.ClientID
		if c, err := iss.client(ctx, r.ClientID); err == nil {
			name = cmp.Or(c.Name, c.ID)
		}
		var words []string
		for _, s := range r.Scopes {
			words = append(words, scopeWord(s))
		}
		out = append(out, login.Consent{ClientID: r.ClientID, ClientName: name, Scopes: words, GrantedAt: r.GrantedAt})
	}
	return out, nil
}

// RevokeConsent forgets what a user allowed a client and ends the client's
// grants of that user, with their refresh tokens.
func (iss *Issuer) RevokeConsent(ctx context.Context, userID, clientID string) error {
	err := iss.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Delete(&Consent{}, "user_id = ? AND client_id = ?", userID, clientID).Error; err != nil {
			return fmt.Errorf("revoke consent: %w", err)
		}
		return iss.endGrants(tx, "user_id = ? AND client_id = ?", userID, clientID)
	})
	if err != nil {
		return err
	}
	return iss.audit.Record(ctx, audit.Event{Type: audit.ConsentRevoked, Actor: userID, UserID: userID, ClientID: clientID,
		Detail: "revoked by the user; the application's grants are revoked"})
}
