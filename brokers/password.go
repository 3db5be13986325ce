package brokers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/firstlogin"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/throttle"
)

// formLogin handles the login page's username/password form of one connector.
func (s *Service) formLogin(c echo.Context, t *login.Transaction, token string, conn Connector, pc PasswordConnector) error {
	r := c.Request()
	username := strings.TrimSpace(r.PostForm.Get("username"))
	id, err := s.passwordLogin(r.Context(), conn.ID, pc, username, r.PostForm.Get("password"), c.RealIP())
	if err != nil {
		return s.renderLogin(c, failedStatus(c, err), t, token, conn.ID, username, login.Message(err))
	}
	return s.identified(c, t, token, conn, id)
}

// passwordLogin runs one password connector behind the brute-force limiter.
func (s *Service) passwordLogin(ctx context.Context, connector string, pc PasswordConnector, username, password, ip string) (login.Identity, error) {
	if username == "" || password == "" { // an empty password must never reach a bind (RFC 4513 §5.1.2)
		return login.Identity{}, login.ErrInvalidCredentials
	}
	userKey, ipKey := throttle.UserKey(connector, strings.ToLower(username)), throttle.IPKey(ip)
	wait, err := s.limiter.Wait(ctx, userKey, ipKey)
	if err != nil {
		return login.Identity{}, err
	}
	if wait > 0 {
		s.log.Warn("login throttled", "connector", connector, "username", username, "ip", ip, "wait", wait)
		err := &login.UserError{Message: fmt.Sprintf("Too many failed sign-in attempts. Try again in %s.", roundUp(wait))}
		return login.Identity{}, s.failed(ctx, connector, username, ip, err)
	}
	id, err := pc.Login(ctx, username, password)
	if err != nil {
		if errors.Is(err, login.ErrBusy) { // unchecked: it counts for the address only
			if ferr := s.limiter.Busy(ctx, ipKey); ferr != nil {
				return login.Identity{}, ferr
			}
		}
		if errors.Is(err, login.ErrInvalidCredentials) {
			if ferr := s.limiter.Failed(ctx, userKey, ipKey); ferr != nil {
				return login.Identity{}, ferr
			}
		}
		s.log.Info("login failed", "connector", connector, "username", username, "ip", ip, "err", err)
		return login.Identity{}, s.failed(ctx, connector, username, ip, err)
	}
	if err := s.limiter.Succeeded(ctx, userKey); err != nil {
		return login.Identity{}, err
	}
	id.Connector = connector
	return id, nil
}

// failed audits a failed login and returns err (or the audit's own failure).
func (s *Service) failed(ctx context.Context, connector, who, ip string, err error) error {
	if aerr := s.audit.Record(ctx, audit.Event{Type: audit.LoginFailed, Actor: who, Connector: connector,
		IP: ip, Outcome: "failure", Detail: login.Message(err)}); aerr != nil {
		return aerr
	}
	return err
}

// PasswordLogin serves the issuer's password grant: the usable password
// connectors are tried in order, with the same limiter as the login form.
func (s *Service) PasswordLogin(ctx context.Context, clientMFA, username, password, ip string) (string, string, error) {
	err := error(login.ErrInvalidCredentials)
	for _, conn := range s.connectors {
		pc, ok := conn.Impl.(PasswordConnector)
		if !ok || !conn.Enabled || conn.LinkOnly {
			continue
		}
		var id login.Identity
		id, err = s.passwordLogin(ctx, conn.ID, pc, username, password, ip)
		if errors.Is(err, login.ErrInvalidCredentials) {
			continue
		}
		if errors.Is(err, login.ErrBusy) { // the issuer answers 503
			return "", "", err
		}
		if err != nil {
			return "", "", errors.New(login.Message(err))
		}
		u, up, err := s.resolve(ctx, conn, id)
		if err == nil && up != nil { // a first login without pages: only a plain "create" works
			u, err = s.firstLogin.Enroll(ctx, conn.Policy, *up, ip)
		}
		if errors.Is(err, firstlogin.ErrNeedsBrowser) {
			return "", "", errors.New("Sign in through the login page once to set up your account.")
		}
		if err != nil {
			return "", "", errors.New(login.Message(err))
		}
		// The password grant cannot carry a second factor: never a silent bypass.
		if needs, err := s.hasMFA(ctx, conn.ID, clientMFA, u); err != nil || needs {
			if err == nil {
				err = errors.New("This account signs in with a second factor, which the password grant cannot carry. Use the authorization code flow.")
			}
			_ = s.failed(ctx, conn.ID, username, ip, err)
			return "", "", err
		}
		s.loggedIn(ctx, u.ID, conn.ID, ip, "password grant")
		return u.ID, conn.ID, nil
	}
	return "", "", errors.New(login.Message(err))
}

func roundUp(d time.Duration) time.Duration {
	return d.Round(time.Second) + time.Second
}
