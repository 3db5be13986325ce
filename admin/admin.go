package admin

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/dirsync"
	"github.com/fedhub/fedhub/issuer"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/mfa"
	"github.com/fedhub/fedhub/passkey"
	"github.com/fedhub/fedhub/web"
)

// Options are what the admin service is built from.
type Options struct {
	DB        *gorm.DB
	Users     *linking.Service
	Issuer    *issuer.Issuer
	Broker    *brokers.Service
	Audit     *audit.Log
	Factors   *mfa.Service     // users' authenticator apps and recovery codes
	Passkeys  *passkey.Service // users' passkeys; nil where passkeys are unavailable
	Sync      *dirsync.Syncer  // the directory syncs ("Sync now" on the connectors page)
	Handler   http.Handler     // fedhub itself: the admin UI is a client of its issuer, reached in-process
	FreshAge  time.Duration    // destructive actions need a login younger than this
	SessionTT time.Duration
	Log       *slog.Logger
}

// Service serves /admin and /api/admin/v1.
type Service struct {
	db       *gorm.DB
	users    *linking.Service
	issuer   *issuer.Issuer
	broker   *brokers.Service
	audit    *audit.Log
	factors  *mfa.Service
	passkeys *passkey.Service // nil: passkeys are unavailable
	sync     *dirsync.Syncer
	rp       *relyingParty
	fresh    time.Duration
	ttl      time.Duration
	cookies  web.Cookies
	log      *slog.Logger
	issuerID string
}

// New returns the admin service.
func New(o Options) *Service {
	url := o.Issuer.URL()
	return &Service{db: o.DB, users: o.Users, issuer: o.Issuer, broker: o.Broker, audit: o.Audit,
		factors: o.Factors, passkeys: o.Passkeys, sync: o.Sync,
		rp: newRelyingParty(url, o.Handler), fresh: o.FreshAge, ttl: o.SessionTT, log: o.Log, issuerID: url,
		cookies: web.Cookies{Secure: len(url) > 8 && url[:8] == "https://"}}
}

// Models are the tables this package owns, for store.Migrate.
func Models() []any { return []any{&Session{}} }

// Routes registers the pages and the API.
func (s *Service) Routes(e *echo.Echo) {
	e.GET("/admin/login", s.login)
	e.GET("/admin/callback", s.callback)
	ui := e.Group("/admin", s.requireAdminPage)
	for _, r := range pageRoutes {
		ui.Add(r.method, strings.TrimPrefix(r.path, "/admin"), func(c echo.Context) error { return r.handler(s, c) })
	}

	api := e.Group("/api/admin/v1")
	api.GET("/openapi.json", s.openAPI) // public: it describes, it grants nothing
	guarded := api.Group("", s.requireAdminToken)
	guarded.GET("/users", s.apiUsers)
	guarded.GET("/users/:id", s.apiUser)
	guarded.POST("/users/:id/disable", s.apiDisable)
	guarded.POST("/users/:id/enable", s.apiEnable)
	guarded.POST("/users/:id/revoke-sessions", s.apiRevoke)
	guarded.POST("/users/:id/links", s.apiLink)
	guarded.DELETE("/users/:id/links/:link", s.apiUnlink)
	guarded.POST("/users/:id/links/:link/move", s.apiMove)
	guarded.POST("/users/:id/merge", s.apiMerge)
	guarded.GET("/users/:id/factors", s.apiFactors)
	guarded.POST("/users/:id/factors/reset", s.apiResetFactors)
	guarded.PUT("/users/:id/mfa", s.apiSetMFAPolicy)
	guarded.POST("/users/:id/groups", s.apiJoinGroup)
	guarded.DELETE("/users/:id/groups/:group", s.apiLeaveGroup)
	guarded.GET("/groups-and-roles", s.apiDefinitions)
	guarded.PUT("/groups/:group", s.apiSaveGroup)
	guarded.DELETE("/groups/:group", s.apiDeleteGroup)
	guarded.PUT("/roles/:role", s.apiSaveRole)
	guarded.DELETE("/roles/:role", s.apiDeleteRole)
	guarded.GET("/connectors", s.apiConnectors)
	guarded.POST("/connectors/:id/sync", s.apiSync)
	guarded.GET("/clients", s.apiClients)
	guarded.POST("/clients/:id/rotate-secret", s.apiRotate)
	guarded.GET("/audit", s.apiAudit)
}

// pageRoutes are the admin pages, all behind requireAdminPage.
var pageRoutes = []struct {
	method, path string
	handler      func(*Service, echo.Context) error
}{
	{http.MethodGet, "/admin", func(_ *Service, c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/admin/users") }},
	{http.MethodPost, "/admin/logout", (*Service).logout},
	{http.MethodGet, "/admin/users", (*Service).usersPage},
	{http.MethodGet, "/admin/users/:id", (*Service).userPage},
	{http.MethodGet, "/admin/users/:id/confirm", (*Service).confirmPage},
	{http.MethodPost, "/admin/users/:id/do", (*Service).doAction},
	{http.MethodPost, "/admin/users/:id/groups", (*Service).membershipPage},
	{http.MethodGet, "/admin/groups", (*Service).groupsPage},
	{http.MethodPost, "/admin/groups", (*Service).changeGroupsPage},
	{http.MethodGet, "/admin/connectors", (*Service).connectorsPage},
	{http.MethodPost, "/admin/connectors/:id/sync", (*Service).syncNow},
	{http.MethodGet, "/admin/clients", (*Service).clientsPage},
	{http.MethodGet, "/admin/clients/:id/confirm", (*Service).confirmRotatePage},
	{http.MethodPost, "/admin/clients/:id/rotate", (*Service).rotatePage},
	{http.MethodGet, "/admin/audit", (*Service).auditPage},
}

// PageRoutes lists the admin pages' methods and paths (":id" for a parameter),
// for tests that must walk every one.
func PageRoutes() [][2]string {
	out := make([][2]string, len(pageRoutes))
	for i, r := range pageRoutes {
		out[i] = [2]string{r.method, r.path}
	}
	return out
}

// isAdmin says whether a user may administer fedhub.
func isAdmin(u *linking.User) bool {
	return u != nil && !u.Disabled && slices.Contains(u.Roles, issuer.AdminRole)
}

func (s *Service) connectorExists(id string) bool { return s.broker.Has(id) }
