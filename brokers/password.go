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

// The brute-force limiter counts failures per account and per client address.
// An account is the one the username resolved to at a connector (the local
// user ID, a directory entry's subject), however the username was spelled; a
// username that names no account counts for the address only. Failures are
// decided once an attempt is over: a wrong password at one connector followed
// by a success at another is no failure, and a success never touches the
// address's count.

// passwordLogin runs one password connector behind the brute-force limiter.
func (s *Service) passwordLogin(ctx context.Context, connector string, pc PasswordConnector, username, password, ip string) (login.Identity, error) {
	if username == "" || password == "" { // an empty password must never reach a bind (RFC 4513 §5.1.2)
		return login.Identity{}, login.ErrInvalidCredentials
	}
	err := s.wait(ctx, "", throttle.IPKey(ip))
	if err == nil {
		var id login.Identity
		if id, err = s.tryPassword(ctx, connector, pc, username, password); err == nil {
			return id, nil
		}
	}
	var f failures
	f.add(connector, err)
	return login.Identity{}, s.refused(ctx, connector, username, ip, err, f)
}

// tryPassword asks one connector, the account it finds admitted only when the
// limiter lets it try. It records a success (the account's failures are
// forgotten), never a failure: the caller decides those.
func (s *Service) tryPassword(ctx context.Context, connector string, pc PasswordConnector, username, password string) (login.Identity, error) {
	admitted := false
	id, err := pc.Login(ctx, username, password, func(account string) error {
		admitted = true
		return s.wait(ctx, throttle.UserKey(connector, account), "")
	})
	if err != nil {
		return login.Identity{}, err
	}
	key := throttle.UserKey(connector, id.Subject)
	if !admitted { // a connector that never asked: its account must not be waiting all the same
		if err := s.wait(ctx, key, ""); err != nil {
			return login.Identity{}, err
		}
	}
	if err := s.limiter.Succeeded(ctx, key); err != nil {
		return login.Identity{}, err
	}
	id.Connector = connector
	return id, nil
}

// throttledError refuses an attempt that must wait; it is a *login.UserError
// (errors.As) that says how long.
type throttledError struct {
	wait time.Duration
	msg  *login.UserError
}

func (e *throttledError) Error() string { return e.msg.Message }
func (e *throttledError) Unwrap() error { return e.msg }

func throttled(err error) bool { return errors.As(err, new(*throttledError)) }

// wait is a *throttledError when the limiter makes the account of userKey or
// the address of ipKey ("" for none) wait.
func (s *Service) wait(ctx context.Context, userKey, ipKey string) error {
	wait, err := s.limiter.Wait(ctx, userKey, ipKey)
	if err != nil {
		return err
	}
	if wait > 0 {
		return &throttledError{wait: wait, msg: &login.UserError{
			Message: fmt.Sprintf("Too many failed sign-in attempts. Try again in %s.", roundUp(wait))}}
	}
	return nil
}

// failures are what one attempt, over one connector or several, failed with.
type failures struct {
	accounts  []string // limiter keys of the accounts whose password was wrong
	wrong     bool     // some connector found the username or password wrong
	busy      bool     // the password could not be checked now (the hashing bound): it counts for the address
	throttled bool     // the limiter refused the address, or an account
}

// add takes the error of connector into f.
func (f *failures) add(connector string, err error) {
	switch {
	case throttled(err):
		f.throttled = true
	case errors.Is(err, login.ErrBusy):
		f.busy = true
	case errors.Is(err, login.ErrInvalidCredentials):
		f.wrong = true
		if account := login.AccountOf(err); account != "" {
			f.accounts = append(f.accounts, throttle.UserKey(connector, account))
		}
	}
}

// record counts f: each account with a wrong password, and the address once,
// unless the limiter refused part of the attempt (a refused attempt is no
// failure, as it checked no password there).
func (s *Service) record(ctx context.Context, f failures, ip string) error {
	keys := f.accounts
	if (f.wrong || f.busy) && !f.throttled {
		keys = append(keys, throttle.IPKey(ip))
	}
	if len(keys) == 0 {
		return nil
	}
	return s.limiter.Failed(ctx, keys...)
}

// refused records the failures f of an attempt that ends with err, logs and
// audits it, and returns err (or the failure to record it).
func (s *Service) refused(ctx context.Context, connector, username, ip string, err error, f failures) error {
	if rerr := s.record(ctx, f, ip); rerr != nil {
		return rerr
	}
	if te := (*throttledError)(nil); errors.As(err, &te) {
		// A refusal that checked nothing is recorded once a minute per
		// address: an attacker kept waiting must not grow the audit log
		// (and the log) by a row per request.
		first, nerr := s.throttleNotes.Once(ctx, ip, s.txns.Now().Add(throttleNoteEvery))
		if nerr != nil || !first {
			return errors.Join(err, nerr)
		}
		s.log.WarnContext(ctx, "login throttled", "connector", connector, "username", username, "ip", ip, "wait", te.wait)
		return s.failed(ctx, connector, username, ip, fmt.Errorf("%w (more attempts from this address within a minute are not recorded)", err))
	}
	s.log.InfoContext(ctx, "login failed", "connector", connector, "username", username, "ip", ip, "err", err)
	return s.failed(ctx, connector, username, ip, err)
}

// throttleNoteEvery is how often a throttled address's refusals are recorded.
const throttleNoteEvery = time.Minute

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
// The failures are recorded only once none of them let the person in.
func (s *Service) PasswordLogin(ctx context.Context, clientMFA, username, password, ip string) (login.Authentication, error) {
	if username == "" || password == "" {
		return login.Authentication{}, errors.New(login.Message(login.ErrInvalidCredentials))
	}
	var f failures
	err, connector := s.wait(ctx, "", throttle.IPKey(ip)), ""
	if err != nil {
		f.add(connector, err)
	} else {
		err = login.ErrInvalidCredentials
		for _, conn := range s.connectors() {
			pc, ok := conn.Impl.(PasswordConnector)
			if !ok || !conn.Enabled || conn.LinkOnly {
				continue
			}
			id, cerr := s.tryPassword(ctx, conn.ID, pc, username, password)
			if cerr == nil {
				return s.passwordGranted(ctx, conn, id, clientMFA, username, ip)
			}
			f.add(conn.ID, cerr)
			if throttled(err) && errors.Is(cerr, login.ErrInvalidCredentials) {
				continue // the wait is what the person is told
			}
			err, connector = cerr, conn.ID
			if !errors.Is(cerr, login.ErrInvalidCredentials) && !throttled(cerr) {
				break // expired, disabled, unreachable: the person is told
			}
		}
	}
	err = s.refused(ctx, connector, username, ip, err, f)
	if errors.Is(err, login.ErrBusy) { // the issuer answers 503 with Retry-After
		return login.Authentication{}, err
	}
	return login.Authentication{}, errors.New(login.Message(err))
}

// passwordGranted finishes a password grant that connector conn let in as id.
func (s *Service) passwordGranted(ctx context.Context, conn Connector, id login.Identity, clientMFA, username, ip string) (login.Authentication, error) {
	u, up, err := s.resolve(ctx, conn, id)
	if err == nil && up != nil { // a first login without pages: only a plain "create" works
		u, err = s.firstLogin.Enroll(ctx, conn.Policy, *up, ip)
	}
	if errors.Is(err, firstlogin.ErrNeedsBrowser) {
		return login.Authentication{}, errors.New("Sign in through the login page once to set up your account.")
	}
	if err != nil {
		return login.Authentication{}, errors.New(login.Message(err))
	}
	// The password grant cannot carry a second factor: never a silent bypass.
	needs, err := s.hasMFA(ctx, conn.ID, clientMFA, u)
	if err != nil { // never a database's words in error_description
		s.log.ErrorContext(ctx, "password grant: second-factor policy", "user", u.ID, "err", err)
		return login.Authentication{}, errors.New(login.Message(err))
	}
	if needs {
		err := errors.New("This account signs in with a second factor, which the password grant cannot carry. Use the authorization code flow.")
		_ = s.failed(ctx, conn.ID, username, ip, err)
		return login.Authentication{}, err
	}
	now := s.txns.Now()
	if conn.ID != linkingLocal {
		if err := s.users.SignedInThrough(ctx, conn.ID, id.Subject, nil, now); err != nil {
			s.log.ErrorContext(ctx, "password grant", "connector", conn.ID, "err", err)
			return login.Authentication{}, errors.New(login.Message(err))
		}
	}
	s.loggedIn(ctx, u.ID, conn.ID, ip, "password grant")
	return login.Authentication{UserID: u.ID, Connector: conn.ID, Subject: id.Subject, AMR: []string{"pwd"},
		ACR: login.ACRSingleFactor, AuthTime: now}, nil
}

func roundUp(d time.Duration) time.Duration {
	return d.Round(time.Second) + time.Second
}
