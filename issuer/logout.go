package issuer

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/web"
)

// logout is RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0). With a
// valid id_token_hint of this browser's session (its sub, and its sid when it
// has one) it signs out at once; otherwise it asks the person first, so that a
// cross-site link cannot sign anyone out, not even with another user's ID token.
func (iss *Issuer) logout(c echo.Context) error {
	web.NoStore(c)
	form, err := requestParams(c.Request())
	if err != nil {
		return iss.logoutError(c, "The sign-out request could not be read.")
	}
	ctx := c.Request().Context()
	clientID := form.Get("client_id")
	var hint *tokenClaims
	if raw := form.Get("id_token_hint"); raw != "" {
		claims, err := iss.keys.verify(ctx, raw, typID, iss.url)
		if err != nil {
			return iss.logoutError(c, "The application sent an ID token that fedhub did not issue.")
		}
		aud := claims.audiences()
		if clientID != "" && (len(aud) == 0 || aud[0] != clientID) {
			return iss.logoutError(c, "The ID token and the client do not match.")
		}
		if len(aud) > 0 {
			clientID = aud[0]
		}
		hint = claims
	}
	var client *Client
	if clientID != "" {
		if client, err = iss.client(ctx, clientID); err != nil {
			return iss.logoutError(c, "The application asking to sign you out is not known to fedhub.")
		}
	}
	redirect := form.Get("post_logout_redirect_uri")
	if redirect != "" && (client == nil || !matchURI(client.PostLogoutRedirectURIs, redirect)) {
		return iss.logoutError(c, "The address to return to after signing out is not registered for this application.")
	}

	token := iss.cookies.Get(c.Request(), sessionCookie)
	sess, err := iss.currentSession(c.Request())
	if err != nil {
		return err
	}
	if sess != nil && !hintOf(hint, sess) {
		csrf := secret.Hash("logout:" + token)
		if form.Get("confirm") != "yes" || subtle.ConstantTimeCompare([]byte(form.Get("csrf")), []byte(csrf)) != 1 {
			params := map[string]string{}
			for _, k := range []string{"post_logout_redirect_uri", "state"} {
				if v := form.Get(k); v != "" {
					params[k] = v
				}
			}
			if clientID != "" { // the hint's audience when the request named no client
				params["client_id"] = clientID
			}
			name := ""
			if client != nil {
				name = client.Name
			}
			return c.Render(http.StatusOK, "logout.html", map[string]any{"CSRF": csrf, "Params": params, "ClientName": name})
		}
	}
	if sess != nil {
		if err := iss.endSession(c, sess); err != nil {
			return err
		}
	}
	iss.cookies.Clear(c.Response(), sessionCookie)
	if redirect == "" {
		return c.Render(http.StatusOK, "logged_out.html", nil)
	}
	u, _ := url.Parse(redirect)
	if state := form.Get("state"); state != "" {
		q := u.Query()
		q.Set("state", state)
		u.RawQuery = q.Encode()
	}
	return c.Redirect(http.StatusSeeOther, u.String())
}

// hintOf says whether an id_token_hint was issued in sess: the same user and,
// when the token names its session, the same session. A hint of another user
// or another session does not stand for the person at this browser.
func hintOf(hint *tokenClaims, sess *Session) bool {
	return hint != nil && hint.Subject == sess.UserID && (hint.SessionID == "" || hint.SessionID == sess.ID)
}

// endSession ends an SSO session and revokes the grants made in it.
func (iss *Issuer) endSession(c echo.Context, sess *Session) error {
	err := iss.db.WithContext(c.Request().Context()).Transaction(func(tx *gorm.DB) error {
		if err := iss.endSessions(tx, "id = ?", sess.ID); err != nil {
			return err
		}
		return tx.Model(&Grant{}).Where("session_id = ? AND revoked_at IS NULL", sess.ID).Update("revoked_at", iss.now()).Error
	})
	if err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return iss.audit.Record(c.Request().Context(), audit.Event{Type: audit.Logout, Actor: sess.UserID, UserID: sess.UserID,
		IP: c.RealIP(), Detail: "session " + sess.ID})
}

func (iss *Issuer) logoutError(c echo.Context, what string) error {
	return web.RenderError(c, http.StatusBadRequest, web.ErrorPage{
		Title: "Sign-out request not accepted",
		What:  what,
		Next:  "Close this window or go back to the application. Your session was not changed.",
	})
}

func unixTime(sec int64) time.Time { return time.Unix(sec, 0).UTC() }
