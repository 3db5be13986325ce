package issuer

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/store"
)

// sessionCookie holds the SSO session's secret token.
const sessionCookie = "fedhub_session"

// currentSession returns the browser's live SSO session of an enabled user
// whose upstream still vouches for the identity it came through, or nil.
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
	if live, err := iss.alive(ctx, &s); !live || err != nil {
		return nil, err
	}
	u, err := iss.users.UserByID(ctx, s.UserID)
	if err != nil || u.Disabled {
		return nil, nil
	}
	if ok, err := iss.sessionStillVouched(ctx, &s); !ok {
		return nil, err
	}
	return &s, nil
}

// alive reports whether s is live — not ended, expired or idle — and counts
// this use as activity, so that a session in use does not go idle.
func (iss *Issuer) alive(ctx context.Context, s *Session) (bool, error) {
	now := iss.now()
	if s.EndedAt != nil || now.After(s.ExpiresAt) || now.After(s.LastSeenAt.Add(iss.tokens.SSOIdle)) {
		return false, nil
	}
	if now.Sub(s.LastSeenAt) > time.Minute { // spare a write on every request
		if err := iss.db.WithContext(ctx).Model(s).Update("last_seen_at", now).Error; err != nil {
			return false, fmt.Errorf("touch session: %w", err)
		}
	}
	return true, nil
}

// SessionLive reports whether the SSO session with this ID (its "sid") is
// live and its upstream still vouches for it, for what was started from it
// and must end with it (the admin UI's session); such use keeps it from
// going idle, as its cookie would.
func (iss *Issuer) SessionLive(ctx context.Context, sid string) (bool, error) {
	if sid == "" {
		return false, nil
	}
	var s Session
	err := iss.db.WithContext(ctx).Take(&s, "id = ?", sid).Error
	if store.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("load session %s: %w", sid, err)
	}
	if live, err := iss.alive(ctx, &s); !live || err != nil {
		return false, err
	}
	return iss.sessionStillVouched(ctx, &s)
}

// CompleteLogin finishes a sign-in: t becomes done in the same database
// transaction as the browser's new SSO session (a new session ID on every
// login), and a code is issued to the application that waits. It returns
// where to send the browser: the application, the fedhub page that waits, or
// "" when nobody waits.
func (iss *Issuer) CompleteLogin(w http.ResponseWriter, r *http.Request, t *login.Transaction, a login.Authentication) (string, error) {
	sess, err := iss.newSession(w, r, a, func(tx *gorm.DB) error {
		t.Step = login.StepDone
		return iss.txns.WithTx(tx).Save(r.Context(), t)
	})
	if err != nil {
		return "", fmt.Errorf("complete login: %w", err)
	}
	switch t.Purpose {
	case login.ForPage:
		return t.ReturnTo, nil
	case login.ForClient:
	default:
		return "", nil
	}
	client, err := iss.client(r.Context(), t.ClientID)
	if err != nil {
		return "", fmt.Errorf("complete login: %w", err)
	}
	req := &authzRequest{client: client, redirectURI: t.RedirectURI, state: t.State, scope: t.Scope,
		nonce: t.Nonce, challenge: t.CodeChallenge, claims: t.Claims}
	return iss.afterSignIn(r.Context(), w, r, req, sess)
}

// newSession replaces the browser's SSO session with a new one (a new session
// ID on every login), in one transaction with whatever also has to happen.
func (iss *Issuer) newSession(w http.ResponseWriter, r *http.Request, a login.Authentication, also func(tx *gorm.DB) error) (*Session, error) {
	now := iss.now()
	authTime := a.AuthTime
	if authTime.IsZero() || authTime.After(now) {
		authTime = now
	}
	token := secret.Token(32)
	sess := &Session{
		ID: secret.Token(16), TokenHash: secret.Hash(token), UserID: a.UserID, AuthTime: authTime.Truncate(time.Second),
		AMR: strings.Join(a.AMR, " "), ACR: a.ACR, IDP: a.Connector, Subject: a.Subject, CreatedAt: now, LastSeenAt: now,
		ExpiresAt: now.Add(iss.tokens.SSOMax),
	}
	err := iss.db.WithContext(r.Context()).Transaction(func(tx *gorm.DB) error {
		if err := also(tx); err != nil {
			return err
		}
		if old := iss.cookies.Get(r, sessionCookie); old != "" {
			if err := iss.endSessions(tx, "token_hash = ?", secret.Hash(old)); err != nil {
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

// EndSessions ends every SSO session of a user and revokes their grants.
func (iss *Issuer) EndSessions(ctx context.Context, userID string) error {
	return iss.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error { return iss.RevokeUser(ctx, tx, userID) })
}

// EndOtherSessions ends a user's SSO sessions but keep (a session ID) and
// revokes the grants made outside it (for a changed password).
func (iss *Issuer) EndOtherSessions(ctx context.Context, userID, keep string) error {
	return iss.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// A session's own ID is id; a grant names its session in session_id.
		if err := iss.endSessions(tx, "user_id = ? AND id <> ?", userID, keep); err != nil {
			return err
		}
		return iss.endGrants(tx, "user_id = ? AND (session_id IS NULL OR session_id <> ?)", userID, keep)
	})
}

// SignedIn is the browser's SSO session (a zero UserID when there is none).
func (iss *Issuer) SignedIn(r *http.Request) (login.SignedIn, error) {
	sess, err := iss.currentSession(r)
	if err != nil || sess == nil {
		return login.SignedIn{}, err
	}
	return login.SignedIn{SessionID: sess.ID, UserID: sess.UserID, AuthTime: sess.AuthTime}, nil
}

// RedirectAllowed reports whether uri is registered for the client (for
// application-initiated account linking).
func (iss *Issuer) RedirectAllowed(ctx context.Context, clientID, uri string) bool {
	c, err := iss.client(ctx, clientID)
	return err == nil && c.redirectAllowed(uri)
}
