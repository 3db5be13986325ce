package brokers

import (
	"context"
	"net/http"

	"github.com/fedhub/fedhub/login"
)

// Issuer is the narrow part of the OpenID Provider that the dispatcher uses.
type Issuer interface {
	// CompleteLogin hands a finished sign-in to the issuer: t becomes done in
	// the same database transaction as the browser's new SSO session, and the
	// code (for an application) is issued. It returns where to send the
	// browser ("" when nobody waits).
	CompleteLogin(w http.ResponseWriter, r *http.Request, t *login.Transaction, a login.Authentication) (redirect string, err error)
	// SignedIn is this browser's SSO session (a zero UserID when none).
	SignedIn(r *http.Request) (login.SignedIn, error)
	// EndOtherSessions ends a user's sessions but keep, and their grants.
	EndOtherSessions(ctx context.Context, userID, keep string) error
	// RedirectAllowed reports whether uri is registered for the client.
	RedirectAllowed(ctx context.Context, clientID, uri string) bool
	// Consents lists what a user allowed third-party applications;
	// RevokeConsent forgets one and ends that application's grants.
	Consents(ctx context.Context, userID string) ([]login.Consent, error)
	RevokeConsent(ctx context.Context, userID, clientID string) error
}
