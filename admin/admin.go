package admin

import (
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/issuer"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/web"
)

// Options are what the admin service is built from.
type Options struct {
	DB        *gorm.DB
	Users     *linking.Service
	Issuer    *issuer.Issuer
	Broker    *brokers.Service
	Audit     *audit.Log
	Handler   http.Handler  // fedhub itself: the admin UI is a client of its issuer, reached in-process
	FreshAge  time.Duration // destructive actions need a login younger than this
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
	ui.GET("", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/admin/users") })
	ui.POST("/logout", s.logout)
	ui.GET("/users", s.usersPage)
	ui.GET("/users/:id", s.userPage)
	ui.GET("/users/:id/confirm", s.confirmPage)
	ui.POST("/users/:id/do", s.doAction)
	ui.GET("/connectors", s.connectorsPage)
	ui.GET("/clients", s.clientsPage)
	ui.GET("/clients/:id/confirm", s.confirmRotatePage)
	ui.POST("/clients/:id/rotate", s.rotatePage)
	ui.GET("/audit", s.auditPage)

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
	guarded.GET("/connectors", s.apiConnectors)
	guarded.GET("/clients", s.apiClients)
	guarded.POST("/clients/:id/rotate-secret", s.apiRotate)
	guarded.GET("/audit", s.apiAudit)
}

// isAdmin says whether a user may administer fedhub.
func isAdmin(u *linking.User) bool {
	return u != nil && !u.Disabled && slices.Contains(u.Roles, issuer.AdminRole)
}

func (s *Service) connectorExists(id string) bool { return s.broker.Has(id) }
