package issuer

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/store"
	"github.com/fedhub/fedhub/web"
)

// sessionCookie holds the SSO session's secret token.
const sessionCookie = "fedhub_session"

// Errors of the login hand-off.
var (
	ErrLoginNotFound = errors.New("login request not found")
	ErrLoginExpired  = errors.New("login request expired")
	ErrLoginDone     = errors.New("login request already completed")
)

// currentSession returns the browser's live SSO session of an enabled user, or nil.
func (iss *Issuer) currentSession(r *http.Request) (*Session, error) {
	token := iss.cookies.Get(r, sessionCookie)
	if token == "" {
		return nil, nil
	}
	ctx := r.Context()
	var s Session
	err := iss.db.WithContext(ctx).Take(&s, "token_hash = ?", secret.Hash(token)).Error
	if store.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	now := iss.now()
	if s.EndedAt != nil || now.After(s.ExpiresAt) || now.After(s.LastSeenAt.Add(iss.tokens.SSOIdle)) {
		return nil, nil
	}
	u, err := iss.users.UserByID(ctx, s.UserID)
	if err != nil || u.Disabled {
		return nil, nil
	}
	if now.Sub(s.LastSeenAt) > time.Minute { // spare a write on every request
		if err := iss.db.WithContext(ctx).Model(&s).Update("last_seen_at", now).Error; err != nil {
			return nil, fmt.Errorf("touch session: %w", err)
		}
	}
	return &s, nil
}

// LoginRequest is what the login page needs to know of a pending authorization request.
type LoginRequest struct {
	ID         string
	ClientID   string
	ClientName string
	LoginHint  string
	IDPHint    string
	CSRF       string
}

// PendingLogin returns a pending login request, only to the browser that started it.
func (iss *Issuer) PendingLogin(r *http.Request, id string) (*LoginRequest, error) {
	ar, err := iss.pending(r, iss.db, id)
	if err != nil {
		return nil, err
	}
	name := ar.ClientID
	if ar.ReturnTo != "" {
		name = "your fedhub account"
	} else if c, err := iss.client(r.Context(), ar.ClientID); err == nil {
		name = c.Name
	}
	return &LoginRequest{ID: ar.ID, ClientID: ar.ClientID, ClientName: name,
		LoginHint: ar.LoginHint, IDPHint: ar.IDPHint, CSRF: ar.CSRFToken}, nil
}

func (iss *Issuer) pending(r *http.Request, db *gorm.DB, id string) (*AuthRequest, error) {
	browser := iss.cookies.Get(r, web.BrowserCookie)
	if id == "" || len(id) > 64 || browser == "" {
		return nil, ErrLoginNotFound
	}
	var ar AuthRequest
	err := db.WithContext(r.Context()).Take(&ar, "id = ?", id).Error
	if store.IsNotFound(err) {
		return nil, ErrLoginNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load login request: %w", err)
	}
	switch {
	case subtle.ConstantTimeCompare([]byte(ar.BrowserHash), []byte(secret.Hash(browser))) != 1:
		return nil, ErrLoginNotFound
	case ar.CompletedAt != nil:
		return nil, ErrLoginDone
	case iss.now().After(ar.ExpiresAt):
		return nil, ErrLoginExpired
	}
	return &ar, nil
}

// Authentication is what a connector proved about the person.
type Authentication struct {
	UserID    string
	Connector string   // the "idp" claim
	AMR       []string // e.g. ["pwd"]
}

// CompleteLogin finishes a pending login: it starts a new SSO session (a new
// session ID on every login), issues the code and returns where to send the browser.
func (iss *Issuer) CompleteLogin(w http.ResponseWriter, r *http.Request, id string, a Authentication) (string, error) {
	var ar *AuthRequest
	sess, err := iss.newSession(w, r, a, func(tx *gorm.DB, now time.Time) error {
		var err error
		if ar, err = iss.pending(r, tx, id); err != nil {
			return err
		}
		res := tx.Model(&AuthRequest{}).Where("id = ? AND completed_at IS NULL", id).Update("completed_at", now)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return ErrLoginDone
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("complete login: %w", err)
	}
	if ar.ReturnTo != "" {
		return ar.ReturnTo, nil
	}
	client, err := iss.client(r.Context(), ar.ClientID)
	if err != nil {
		return "", fmt.Errorf("complete login: %w", err)
	}
	req := &authzRequest{client: client, redirectURI: ar.RedirectURI, state: ar.State, scope: ar.Scope,
		nonce: ar.Nonce, challenge: ar.CodeChallenge, claims: ar.Claims}
	return iss.issueCode(r.Context(), req, sess, "1")
}

// StartSession signs the browser in with no application waiting (IdP-initiated SAML).
func (iss *Issuer) StartSession(w http.ResponseWriter, r *http.Request, a Authentication) error {
	if _, err := iss.newSession(w, r, a, nil); err != nil {
		return fmt.Errorf("start session: %w", err)
	}
	return nil
}

// newSession replaces the browser's SSO session with a new one (a new session
// ID on every login), in one transaction with whatever also has to happen.
func (iss *Issuer) newSession(w http.ResponseWriter, r *http.Request, a Authentication, also func(tx *gorm.DB, now time.Time) error) (*Session, error) {
	now := iss.now()
	token := secret.Token(32)
	sess := &Session{
		ID: secret.Token(16), TokenHash: secret.Hash(token), UserID: a.UserID, AuthTime: now.Truncate(time.Second),
		AMR: strings.Join(a.AMR, " "), IDP: a.Connector, CreatedAt: now, LastSeenAt: now,
		ExpiresAt: now.Add(iss.tokens.SSOMax),
	}
	err := iss.db.WithContext(r.Context()).Transaction(func(tx *gorm.DB) error {
		if also != nil {
			if err := also(tx, now); err != nil {
				return err
			}
		}
		if old := iss.cookies.Get(r, sessionCookie); old != "" {
			if err := tx.Model(&Session{}).Where("token_hash = ? AND ended_at IS NULL", secret.Hash(old)).
				Update("ended_at", now).Error; err != nil {
				return err
			}
		}
		return tx.Create(sess).Error
	})
	if err != nil {
		return nil, err
	}
	iss.cookies.Set(w, sessionCookie, token, 0)
	return sess, nil
}

// EndSessions ends every SSO session of a user and revokes the grants made in
// them (for disabling a user).
func (iss *Issuer) EndSessions(ctx context.Context, userID string) error {
	now := iss.now()
	return iss.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&Session{}).Where("user_id = ? AND ended_at IS NULL", userID).Update("ended_at", now).Error; err != nil {
			return err
		}
		return tx.Model(&Grant{}).Where("user_id = ? AND revoked_at IS NULL", userID).Update("revoked_at", now).Error
	})
}

// SessionUser returns the user signed in to this browser, or "".
func (iss *Issuer) SessionUser(r *http.Request) (string, error) {
	sess, err := iss.currentSession(r)
	if err != nil || sess == nil {
		return "", err
	}
	return sess.UserID, nil
}

// BeginLocalLogin starts a login that no client asked for, which returns to
// a fedhub page (returnTo, a path) with an SSO session: the account page's.
func (iss *Issuer) BeginLocalLogin(w http.ResponseWriter, r *http.Request, returnTo string) (string, error) {
	if !strings.HasPrefix(returnTo, "/") || strings.HasPrefix(returnTo, "//") { // never off-site
		return "", fmt.Errorf("begin local login: %q is not a local path", returnTo)
	}
	now := iss.now()
	ar := AuthRequest{ID: secret.Token(24), BrowserHash: secret.Hash(iss.cookies.BrowserID(w, r)),
		CSRFToken: secret.Token(24), ClientID: "", RedirectURI: "", ReturnTo: returnTo, ForceLogin: true,
		CreatedAt: now, ExpiresAt: now.Add(authRequestTTL)}
	if err := iss.db.WithContext(r.Context()).Create(&ar).Error; err != nil {
		return "", fmt.Errorf("begin local login: %w", err)
	}
	return "/login?req=" + ar.ID, nil
}

// RedirectAllowed reports whether uri is registered for the client (for
// application-initiated account linking).
func (iss *Issuer) RedirectAllowed(ctx context.Context, clientID, uri string) bool {
	c, err := iss.client(ctx, clientID)
	return err == nil && c.redirectAllowed(uri)
}
