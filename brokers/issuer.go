package brokers

import (
	"context"
	"errors"
	"net/http"
)

// LoginRequest is what the login page knows of a pending authorization request.
type LoginRequest struct {
	ID         string
	ClientName string
	LoginHint  string
	IDPHint    string
	CSRF       string
}

// Authentication tells the issuer who logged in and how.
type Authentication struct {
	UserID    string
	Connector string
	AMR       []string
}

// Issuer is the narrow part of the OpenID Provider that brokers uses.
type Issuer interface {
	PendingLogin(r *http.Request, id string) (*LoginRequest, error)
	CompleteLogin(w http.ResponseWriter, r *http.Request, id string, a Authentication) (redirect string, err error)
	// StartSession signs the browser in without an application waiting
	// (IdP-initiated SAML).
	StartSession(w http.ResponseWriter, r *http.Request, a Authentication) error
	// SessionUser is the user signed in to this browser, or "".
	SessionUser(r *http.Request) (string, error)
	// BeginLocalLogin starts a login that returns to a fedhub page; it gives the login page's URL.
	BeginLocalLogin(w http.ResponseWriter, r *http.Request, returnTo string) (string, error)
	// RedirectAllowed reports whether uri is registered for the client.
	RedirectAllowed(ctx context.Context, clientID, uri string) bool
}

// Errors an Issuer returns for a login request.
var (
	ErrLoginNotFound = errors.New("login request not found")
	ErrLoginExpired  = errors.New("login request expired")
	ErrLoginDone     = errors.New("login request already completed")
)
