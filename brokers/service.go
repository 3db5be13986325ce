package brokers

import (
	"cmp"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/firstlogin"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/mfa"
	"github.com/fedhub/fedhub/passkey"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/throttle"
	"github.com/fedhub/fedhub/web"
)

// linkingLocal is the local accounts' connector ID.
const linkingLocal = linking.LocalConnector

// Options are what the broker is built from.
type Options struct {
	Connectors []Connector // in login-page order; the local connector among them
	Users      *linking.Service
	Issuer     Issuer
	Limiter    *throttle.Limiter
	Audit      *audit.Log
	FirstLogin *firstlogin.Service
	Factors    *mfa.Service // second factors
	// Passkeys is nil where passkeys are not offered (an IP address in the issuer URL).
	Passkeys     *passkey.Service
	Passwordless bool     // offer passwordless sign-in with a passkey on the login page
	DB           *gorm.DB // for sign-ins in progress
	BaseURL      string   // the issuer URL: callbacks are BaseURL/broker/{id}/callback
	Sealer       Sealer   // encrypts upstream tokens at rest; nil keeps them as they are
	Log          *slog.Logger
	Now          func() time.Time
}

// Service owns the login page and the broker routes.
type Service struct {
	conns        atomic.Pointer[connectorSet] // swapped by SetConnectors
	users        *linking.Service
	issuer       Issuer
	limiter      *throttle.Limiter
	audit        *audit.Log
	firstLogin   *firstlogin.Service
	factors      *mfa.Service
	passkeys     *passkey.Service
	passwordless bool
	db           *gorm.DB
	txns         login.Transactions
	// throttleNotes remembers which addresses' throttled refusals were
	// recorded lately (in the connector values' table, purged with it).
	throttleNotes ConnectorStore
	baseURL       string
	sealer        Sealer
	cookies       web.Cookies
	log           *slog.Logger
}

// New returns the broker.
func New(o Options) *Service {
	s := &Service{users: o.Users, issuer: o.Issuer, limiter: o.Limiter,
		audit: o.Audit, firstLogin: o.FirstLogin, factors: o.Factors, passkeys: o.Passkeys, passwordless: o.Passwordless, db: o.DB, txns: login.NewTransactions(o.DB, o.Now), throttleNotes: NewConnectorStore(o.DB, "fedhub.throttled", nil /* notes only: no values */), baseURL: o.BaseURL, sealer: o.Sealer, log: o.Log,
		cookies: web.Cookies{Secure: len(o.BaseURL) > 8 && o.BaseURL[:8] == "https://"}}
	s.SetConnectors(o.Connectors)
	return s
}

// connectorSet is the connectors in force and the extra routes they serve.
type connectorSet struct {
	list   []Connector
	routes map[string]http.HandlerFunc // by "METHOD /broker/{id}/path"
}

// connectors are the connectors in force, in login-page order.
func (s *Service) connectors() []Connector { return s.conns.Load().list }

// SetConnectors puts list in force at once (a configuration reload) and
// returns the list it replaced. Sign-ins in flight are records in the
// database that name their connector by ID: they go on with the connector
// of that ID in list, and fail as with a switched-off one if there is none.
func (s *Service) SetConnectors(list []Connector) []Connector {
	set := &connectorSet{list: list, routes: map[string]http.HandlerFunc{}}
	for _, conn := range list {
		if rr, ok := conn.Impl.(RouteRegistrar); ok {
			prefix := "/broker/" + conn.ID
			rr.Routes(func(method, path string, h http.HandlerFunc) { set.routes[method+" "+prefix+path] = h })
		}
	}
	if old := s.conns.Swap(set); old != nil {
		return old.list
	}
	return nil
}

// connectorRoute serves a route a connector registered (SAML metadata), from
// the connectors in force.
func (s *Service) connectorRoute(c echo.Context) error {
	r := c.Request()
	h, ok := s.conns.Load().routes[r.Method+" /broker/"+c.Param("id")+"/"+c.Param("*")]
	if !ok {
		return echo.ErrNotFound
	}
	h(c.Response(), r)
	return nil
}

// NewConnectorStore returns the database space of one connector; the values
// it keeps are sealed with secrets (nil: stored as they are).
func NewConnectorStore(db *gorm.DB, connectorID string, secrets *secret.Keyring) ConnectorStore {
	return dbConnectorStore{db: db, secrets: secrets, prefix: connectorID + ":"}
}

// Routes registers the login page and the broker routes.
func (s *Service) Routes(e *echo.Echo) {
	e.GET("/", func(c echo.Context) error { return c.Render(http.StatusOK, "index.html", nil) })
	e.GET("/login", s.loginPage)
	e.POST("/broker/:id/login", s.brokerLogin)
	e.GET("/broker/:id/callback", s.callback)
	e.POST("/broker/:id/callback", s.callback)
	e.GET("/broker/continue", s.continueLogin)
	e.GET("/broker/:id/negotiate", s.negotiate)
	s.firstLoginRoutes(e)
	s.factorRoutes(e)
	s.accountRoutes(e)
	e.Any("/broker/:id/*", s.connectorRoute) // the connectors' own routes, as SetConnectors last set them
}

// Enabled returns a connector that is switched on, for the work done beside
// sign-ins (the directory sync).
func (s *Service) Enabled(id string) (Connector, bool) { return s.enabled(id) }

// enabled returns a connector that is switched on (for re-authentication,
// which proves control of an account and logs nobody in).
func (s *Service) enabled(id string) (Connector, bool) {
	for _, c := range s.connectors() {
		if c.ID == id {
			return c, c.Enabled
		}
	}
	return Connector{}, false
}

// Kind says how an enabled connector signs people in: "password",
// "redirect", or "" (unknown or disabled).
func (s *Service) Kind(id string) string {
	c, ok := s.enabled(id)
	if !ok {
		return ""
	}
	return kindOf(c.Impl)
}

// Has says whether a connector is configured (enabled or not).
func (s *Service) Has(id string) bool {
	return slices.ContainsFunc(s.connectors(), func(c Connector) bool { return c.ID == id })
}

// Name is how people know a connector ("Corporate AD").
func (s *Service) Name(id string) string {
	if c, ok := s.enabled(id); ok {
		return c.Name
	}
	return id
}

// Label is a connector's button text.
func (s *Service) Label(id string) string {
	if c, ok := s.enabled(id); ok {
		return c.Label
	}
	return id
}

// usable returns a connector that may be used to log in now. Disabled and
// link-only connectors are refused here, on every entry point.
func (s *Service) usable(id string) (Connector, bool) {
	for _, c := range s.connectors() {
		if c.ID == id {
			return c, c.Enabled && !c.LinkOnly
		}
	}
	return Connector{}, false
}

type loginView struct {
	RequestID  string
	CSRF       string
	ClientName string
	Username   string
	Error      string
	Buttons    []Connector // redirect and Negotiate connectors: a button each
	Links      []Connector // other password connectors: a button that opens their form
	Form       *Connector  // the password form shown
	Others     bool        // the form of a chosen connector is shown: offer the other ways back
	Passkey    string      // the WebAuthn options of a passwordless sign-in; "" where not offered
}

func (s *Service) loginPage(c echo.Context) error {
	token := c.QueryParam("req")
	t, err := s.load(c, token)
	if err != nil {
		return shown(err)
	}
	if t.Step != login.StepChoose { // the sign-in is further on: its own page
		return s.show(c, t, token)
	}
	chosen := c.QueryParam("connector")
	if chosen == "" && t.IDPHint != "" { // idp_hint skips the choice
		chosen = t.IDPHint
		conn, ok := s.usable(chosen)
		switch conn.Impl.(type) {
		case RedirectConnector:
			if ok {
				return s.startFlow(c, t, conn)
			}
		case NegotiateConnector:
			if ok && c.QueryParam(negotiatedParam) == "" {
				return c.Redirect(http.StatusSeeOther, negotiateURL(conn, token))
			}
		}
	}
	if conn, ok := s.automaticNegotiate(c); ok && chosen == "" {
		return c.Redirect(http.StatusSeeOther, negotiateURL(conn, token))
	}
	return s.renderLogin(c, http.StatusOK, t, token, chosen, t.LoginHint, "")
}

// renderLogin shows the login page: one button per visible connector, and
// the form of the chosen password connector (by default the local one).
func (s *Service) renderLogin(c echo.Context, status int, t *login.Transaction, token, chosen, username, msg string) error {
	v := loginView{RequestID: token, CSRF: login.CSRF(token, s.browser(c)), ClientName: cmp.Or(t.ClientName, "your fedhub account"),
		Username: username, Error: msg}
	if conn, ok := s.usable(chosen); ok {
		if _, pw := conn.Impl.(PasswordConnector); pw {
			v.Form, v.Others = &conn, chosen != linkingLocal
		}
	}
	for _, conn := range s.connectors() {
		if !conn.Enabled || conn.LinkOnly || (conn.Hidden && conn.ID != chosen) {
			continue
		}
		switch conn.Impl.(type) {
		case RedirectConnector, NegotiateConnector:
			if !v.Others {
				v.Buttons = append(v.Buttons, conn)
			}
		case PasswordConnector:
			switch {
			case v.Form == nil && conn.ID == linkingLocal:
				v.Form = &conn
			case !v.Others && conn.ID != linkingLocal:
				v.Links = append(v.Links, conn)
			}
		}
	}
	if !v.Others {
		opts, err := s.passwordlessOptions(c.Request().Context(), t)
		if err != nil {
			return err
		}
		v.Passkey = opts
	}
	web.NoStore(c)
	return c.Render(status, "login.html", v)
}

// errPageShown says that the person was already answered with a page.
var errPageShown = errors.New("error page shown")

// shown turns errPageShown into "handled".
func shown(err error) error {
	if errors.Is(err, errPageShown) {
		return nil
	}
	return err
}

// page answers with an error page and returns errPageShown.
func page(c echo.Context, status int, p web.ErrorPage) error {
	return errors.Join(errPageShown, web.RenderError(c, status, p))
}

var unknownMethod = web.ErrorPage{Title: "This sign-in method is not available",
	What: "It does not exist, or it is switched off.", Next: "Go back and choose one of the options on the sign-in page."}

// brokerLogin is where the login page's forms and buttons post to.
func (s *Service) brokerLogin(c echo.Context) error {
	token, t, err := s.loadForm(c, "req", login.StepChoose)
	if err != nil {
		return shown(err)
	}
	conn, ok := s.usable(c.Param("id"))
	if !ok {
		return web.RenderError(c, http.StatusNotFound, unknownMethod)
	}
	switch impl := conn.Impl.(type) {
	case PasswordConnector:
		return s.formLogin(c, t, token, conn, impl)
	case RedirectConnector:
		return s.startFlow(c, t, conn)
	case NegotiateConnector:
		return c.Redirect(http.StatusSeeOther, negotiateURL(conn, token))
	}
	return web.RenderError(c, http.StatusNotFound, unknownMethod)
}
