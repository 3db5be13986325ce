package main

import (
	"context"
	"errors"
	"net/http"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/brokers/local"
	"github.com/fedhub/fedhub/issuer"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
)

// issuerAdapter gives brokers its narrow view of the issuer.
type issuerAdapter struct{ iss *issuer.Issuer }

func (a issuerAdapter) PendingLogin(r *http.Request, id string) (*brokers.LoginRequest, error) {
	req, err := a.iss.PendingLogin(r, id)
	if err != nil {
		return nil, loginError(err)
	}
	return &brokers.LoginRequest{ID: req.ID, ClientName: req.ClientName, LoginHint: req.LoginHint,
		IDPHint: req.IDPHint, CSRF: req.CSRF}, nil
}

func (a issuerAdapter) CompleteLogin(w http.ResponseWriter, r *http.Request, id string, auth brokers.Authentication) (string, error) {
	to, err := a.iss.CompleteLogin(w, r, id, issuer.Authentication{UserID: auth.UserID, Connector: auth.Connector, AMR: auth.AMR})
	return to, loginError(err)
}

func (a issuerAdapter) StartSession(w http.ResponseWriter, r *http.Request, auth brokers.Authentication) error {
	return a.iss.StartSession(w, r, issuer.Authentication{UserID: auth.UserID, Connector: auth.Connector, AMR: auth.AMR})
}

func (a issuerAdapter) SessionUser(r *http.Request) (string, error) { return a.iss.SessionUser(r) }

func (a issuerAdapter) BeginLocalLogin(w http.ResponseWriter, r *http.Request, returnTo string) (string, error) {
	return a.iss.BeginLocalLogin(w, r, returnTo)
}

func (a issuerAdapter) RedirectAllowed(ctx context.Context, clientID, uri string) bool {
	return a.iss.RedirectAllowed(ctx, clientID, uri)
}

func loginError(err error) error {
	switch {
	case errors.Is(err, issuer.ErrLoginNotFound):
		return brokers.ErrLoginNotFound
	case errors.Is(err, issuer.ErrLoginExpired):
		return brokers.ErrLoginExpired
	case errors.Is(err, issuer.ErrLoginDone):
		return brokers.ErrLoginDone
	}
	return err
}

// localAccounts lets the local connector check passwords against linking.
type localAccounts struct{ users *linking.Service }

func (a localAccounts) VerifyLocalPassword(ctx context.Context, username, password string) (local.Account, error) {
	u, err := a.users.VerifyPassword(ctx, username, password)
	switch {
	case errors.Is(err, linking.ErrInvalidCredentials):
		return local.Account{}, login.ErrInvalidCredentials
	case errors.Is(err, linking.ErrDisabled):
		return local.Account{}, login.ErrAccountDisabled
	case err != nil:
		return local.Account{}, err
	}
	return local.Account{ID: u.ID, Username: u.Username, Email: u.Email, EmailVerified: u.EmailVerified, Name: u.Name}, nil
}

// passwordLoginFunc adapts a function to issuer.PasswordLogin.
type passwordLoginFunc func(ctx context.Context, username, password, ip string) (string, string, error)

func (f passwordLoginFunc) PasswordLogin(ctx context.Context, username, password, ip string) (string, string, error) {
	return f(ctx, username, password, ip)
}
