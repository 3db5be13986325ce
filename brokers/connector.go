package brokers

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/fedhub/fedhub/firstlogin"
	"github.com/fedhub/fedhub/login"
)

// PasswordConnector checks a username and password (local accounts, LDAP):
// the login page shows a form for it.
type PasswordConnector interface {
	// Login checks username and password. Once it found the account the
	// username names, and before it checks the password, it calls admit (when
	// not nil) with the account's subject, what Identity.Subject is after a
	// success; if admit returns an error, Login returns that error without
	// checking the password. A wrong password is a *login.CredentialsError
	// naming the account; a username that names no account is
	// login.ErrInvalidCredentials alone.
	Login(ctx context.Context, username, password string, admit func(account string) error) (login.Identity, error)
}

// RedirectConnector sends the browser to the upstream and verifies what comes
// back (OIDC, SAML): the login page shows a button for it.
type RedirectConnector interface {
	// Begin starts the upstream login for flow (its State is set; the
	// connector may fill Data, which Finish gets back) and answers the browser.
	Begin(ctx context.Context, w http.ResponseWriter, r *http.Request, flow *Flow) error
	// Finish verifies the upstream's answer to flow.
	Finish(ctx context.Context, r *http.Request, flow *Flow) (login.Identity, error)
}

// NegotiateConnector signs people in with what their browser already holds,
// through HTTP Negotiate (RFC 4559: Kerberos in SPNEGO): the login page tries it
// without a click for the addresses it names, and shows a button for it.
type NegotiateConnector interface {
	// Negotiate verifies the token of "Authorization: Negotiate <token>"
	// (decoded). A token of another mechanism (NTLM) is ErrNoNegotiation: the
	// browser cannot sign in this way, and the login page is shown instead.
	// The identity's Connector is "" or, when the connector resolves its
	// people through another connector's directory, that connector's ID:
	// the identity is then that connector's, with its subject.
	Negotiate(ctx context.Context, token []byte) (login.Identity, error)
	// Automatic says whether the login page tries it without a click for a
	// browser at the address ip.
	Automatic(ip string) bool
}

// ErrNoNegotiation is a Negotiate token the connector cannot use: the browser
// offered no Kerberos ticket.
var ErrNoNegotiation = errors.New("the browser offered no Kerberos ticket")

// Flow is one upstream login in progress, stored by brokers, bound to the
// browser that started it, single-use and short-lived.
type Flow struct {
	State    string            // opaque, random: OIDC state, SAML RelayState
	Callback string            // the absolute URL the upstream answers to
	Data     map[string]string // connector data: nonce, PKCE verifier, SAML request ID…
	// Step-up: the person must present a credential to the upstream now (OIDC
	// prompt=login, SAML ForceAuthn), not ride on its SSO session; MaxAge
	// (seconds, -1 for none) is passed on as OIDC max_age.
	ForceAuthn bool
	MaxAge     int
}

// Refresher re-checks an identity with its upstream after the login (on a
// refresh-token use, on SSO reuse; see Service.Recheck).
type Refresher interface {
	// Refresh asks whether the person of id may still sign in. id carries the
	// link's subject, username and email, and in Upstream the connector's
	// state from the last login or re-check; authAt is when the person last
	// authenticated at the upstream. An error wrapping login.ErrUpstreamRefused
	// is the upstream's no; any other error says it could not answer.
	Refresh(ctx context.Context, id login.Identity, authAt time.Time) (Rechecked, error)
}

// Rechecked is an upstream's yes to a re-check.
type Rechecked struct {
	Upstream []byte // the connector's state from now on (kept, sealed)
	// Current is the identity as the upstream describes it now, when it said
	// (a directory entry read again): its profile is synced, as at a login,
	// where the connector syncs. nil when the upstream only said yes.
	Current *login.Identity
}

// Recheck is how often, and how strictly, a connector's identities are
// re-checked after login.
type Recheck struct {
	// Interval is how long an upstream's yes holds: a busy application's
	// refreshes ask the upstream at most once per identity per Interval.
	Interval time.Duration
	// FailOpen lets an upstream that cannot answer count as a yes for one
	// more Interval after its last one; never longer. Otherwise (the
	// default) no token is issued until it answers.
	FailOpen bool
}

// MultiFactorReporter says whether an upstream reports that its login of id
// used several factors (OIDC amr "mfa", a configured SAML AuthnContextClassRef).
type MultiFactorReporter interface {
	MultiFactor(id login.Identity) bool
}

// DirectoryWalker lists the users of an upstream directory (LDAP, Active
// Directory), for the directory sync (package dirsync).
type DirectoryWalker interface {
	// Walk calls fn with every entry the connector's user filter finds, a page
	// (at most 1,000) at a time, each as the Identity a login of it would give
	// (same subject, groups included). since is the Mark of the last complete
	// walk, or "": where the directory can tell, only the entries changed after
	// it are walked (Walked.Full is false then).
	Walk(ctx context.Context, since string, fn func(page []DirectoryEntry) error) (Walked, error)
	// Subjects calls fn with the subject of every entry the user filter finds,
	// disabled ones included, a page at a time: what an incremental walk cannot
	// see are the entries that left.
	Subjects(ctx context.Context, fn func(page []string) error) error
}

// DirectoryEntry is one user of a directory.
type DirectoryEntry struct {
	Identity login.Identity
	Disabled bool // the directory says it may not sign in (AD userAccountControl bit 2)
}

// Walked is what a walk covered.
type Walked struct {
	Full bool   // every entry, not only the changed ones
	Mark string // where the next walk may start from; "" when the directory cannot tell
}

// HealthChecker reports whether the upstream is reachable (for the admin page).
type HealthChecker interface {
	Health(ctx context.Context) error
}

// RouteRegistrar lets a connector serve extra routes under /broker/{id}/
// (SAML metadata and the ACS, for example).
type RouteRegistrar interface {
	Routes(add func(method, path string, h http.HandlerFunc))
}

// ConnectorStore is the database space brokers lends to connectors, shared by
// every node.
type ConnectorStore interface {
	// Once records key until the given time and reports whether this was the
	// first time (false: a replay).
	Once(ctx context.Context, key string, until time.Time) (bool, error)
	// Value returns the value stored under key, made by create the first time;
	// when several nodes race, all get the value that was stored first.
	Value(ctx context.Context, key string, create func() ([]byte, error)) ([]byte, error)
}

// Connector is one configured upstream as the login page shows it.
type Connector struct {
	ID       string
	Name     string // how people know the upstream, e.g. "Corporate AD"
	Label    string // the button or form heading, e.g. "Login with Corporate AD"
	Icon     string
	Hidden   bool // reachable only through idp_hint
	LinkOnly bool // for linking from /account, never for logging in
	Enabled  bool
	Sync     bool // update profile, roles and groups on every login, not just the first
	Mappers  Mappers
	// GroupsPassthrough keeps the upstream groups no group_to_group mapper
	// maps, as "<ID>:<group>" (`groups: passthrough`); otherwise they are dropped.
	GroupsPassthrough bool
	Policy            firstlogin.Policy // what happens at an identity's first login
	MFA               string            // second-factor policy: off | optional | required ("" optional)
	// TrustUpstreamMFA lets an upstream's own multi-factor login (as its
	// MultiFactorReporter says) satisfy the second factor.
	TrustUpstreamMFA bool
	Recheck          Recheck
	Impl             any // a PasswordConnector, a RedirectConnector or a NegotiateConnector, maybe more
}

// profile maps an identity of this connector to a local profile.
func (c Connector) profile(id login.Identity) (Profile, error) {
	namespace := ""
	if c.GroupsPassthrough {
		namespace = c.ID
	}
	return c.Mappers.Apply(id, namespace)
}
