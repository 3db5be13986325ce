package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/fedhub/fedhub/admin"
	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/brokers/local"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/dirsync"
	"github.com/fedhub/fedhub/firstlogin"
	"github.com/fedhub/fedhub/issuer"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/metrics"
	"github.com/fedhub/fedhub/mfa"
	"github.com/fedhub/fedhub/passkey"
	"github.com/fedhub/fedhub/requestid"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/store"
	"github.com/fedhub/fedhub/templates"
	"github.com/fedhub/fedhub/throttle"
	"github.com/fedhub/fedhub/web"
)

// app is a wired fedhub.
type app struct {
	db     *gorm.DB
	users  *linking.Service
	issuer *issuer.Issuer
	audit  *audit.Log
	echo   *echo.Echo
	sync   *dirsync.Syncer
	// purgers delete what expired in the packages outside the issuer (whose
	// Maintain purges its own).
	purgers []purger
	// secrets seals what sealed holds (nil: no key is configured).
	secrets *secret.Keyring
	sealed  []sealedSecrets
	metrics *metrics.Metrics
	broker  *brokers.Service
	pages   *templates.Renderer
	// inForce are the connectors as the broker has them (a reload swaps them).
	inForce []brokers.Connector
}

// theme is the configured branding as the templates take it.
func theme(b config.Branding) templates.Theme {
	return templates.Theme{Product: b.ProductName, Dir: b.ThemeDir, Primary: b.PrimaryColor, Locale: b.DefaultLocale}
}

// sealedSecrets is one package's secrets kept sealed in the database.
type sealedSecrets struct {
	what  string // "signing keys"
	table any    // the model they are kept in
	r     interface {
		Reseal(ctx context.Context) (changed, total int, err error)
	}
}

// passkeys is the WebAuthn service of fedhub's issuer URL: its host is the
// RP ID, which must be a domain name (an error for an IP address).
func passkeys(db *gorm.DB, cfg *config.Config, now func() time.Time) (*passkey.Service, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	return passkey.New(db, passkey.Config{RPID: u.Hostname(), RPName: "fedhub", Origins: []string{u.Scheme + "://" + u.Host}, Now: now})
}

// purgersOf lists the purgers that exist (passkeys may not).
func purgersOf(keys *passkey.Service, ps ...purger) []purger {
	if keys != nil {
		ps = append(ps, keys)
	}
	return ps
}

// purger deletes a package's expired rows.
type purger interface {
	Purge(ctx context.Context) error
}

// purgeEvery is how often purge runs.
const purgeEvery = time.Minute

// purge runs every purger at once and then every purgeEvery until ctx ends.
func (a *app) purge(ctx context.Context, log *slog.Logger) {
	tick := time.NewTicker(purgeEvery)
	defer tick.Stop()
	for {
		a.purgeOnce(ctx, log)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// purgeOnce runs every purger once; one that fails does not stop the others.
func (a *app) purgeOnce(ctx context.Context, log *slog.Logger) {
	for _, p := range a.purgers {
		if err := p.Purge(ctx); err != nil {
			log.Error("purging expired rows failed", "err", err)
		}
	}
}

// migrate brings the database to every package's tables and the steps
// below, once per schema: a start on a database already migrated to this
// binary's schema skips it (store.MigrateSchema).
func migrate(ctx context.Context, db *gorm.DB, log *slog.Logger) error {
	var models []any
	models = append(models, linking.Models()...)
	models = append(models, issuer.Models()...)
	models = append(models, throttle.Models()...)
	models = append(models, audit.Models()...)
	models = append(models, brokers.Models()...)
	models = append(models, login.Models()...)
	models = append(models, mfa.Models()...)
	models = append(models, passkey.Models()...)
	models = append(models, admin.Models()...)
	models = append(models, dirsync.Models()...)
	var steps []store.Step
	// Sign-ins in progress lived in three tables before login.Transaction;
	// they held only rows of minutes, so nothing is lost with them.
	for _, table := range []string{"auth_requests", "flow_records", "pendings"} {
		steps = append(steps, store.Step{Name: "drop table " + table, Run: func(ctx context.Context, db *gorm.DB) error {
			return db.Migrator().DropTable(table)
		}})
	}
	// TOTP keys may be sealed, and sealed values are never equal: the unique
	// index over (user, key) meant nothing any more (mfa.ConfirmTOTP checks).
	// LOWER(email) alone is covered by idx_users_email_key, which also gives
	// the admin search its order.
	for _, old := range []struct {
		model any
		index string
	}{{&mfa.Factor{}, "idx_mfa_factors_user_secret"}, {&linking.User{}, "idx_users_email_lower"}} {
		steps = append(steps, store.Step{Name: "drop index " + old.index, Run: func(ctx context.Context, db *gorm.DB) error {
			if m := db.Migrator(); m.HasIndex(old.model, old.index) {
				return m.DropIndex(old.model, old.index)
			}
			return nil
		}})
	}
	steps = append(steps, store.Step{Name: "rekey usernames", Run: func(ctx context.Context, db *gorm.DB) error {
		stuck, err := linking.New(db, now).RekeyUsernames(ctx)
		for _, u := range stuck {
			log.Warn("username kept under its old key: typing it no longer finds this user (its links still sign it in)", "user", u.UserID,
				"username", u.Username, "reason", u.Reason)
		}
		return err
	}})
	migrated, err := store.MigrateSchema(ctx, db, models, steps)
	if migrated {
		log.Info("database migrated")
	}
	return err
}

func newApp(ctx context.Context, cfg *config.Config, log *slog.Logger) (*app, error) {
	db, err := store.Open(ctx, cfg.Storage)
	if err != nil {
		return nil, err
	}
	var a *app
	// Nodes starting together take turns: migrating, creating the bootstrap
	// users and the first signing key are each meant to happen once.
	err = store.Exclusive(ctx, db, "fedhub-startup", func() error {
		if err := migrate(ctx, db, log); err != nil {
			return err
		}
		a, err = wire(ctx, cfg, db, log)
		return err
	})
	if err != nil {
		_ = store.Close(db)
		return nil, err
	}
	return a, nil
}

// now is fedhub's clock; tests of packages pass their own.
func now() time.Time { return time.Now().UTC() }

// wire builds fedhub over a migrated db; extra connectors (tests' fakes) follow the configured ones.
func wire(ctx context.Context, cfg *config.Config, db *gorm.DB, log *slog.Logger, extra ...brokers.Connector) (*app, error) {
	secrets, err := secret.NewKeyring(cfg.Secrets.Key, cfg.Secrets.PreviousKeys...)
	if err != nil {
		return nil, err
	}
	users := linking.New(db, now)
	if err := bootstrapUsers(ctx, users, cfg.Users, log); err != nil {
		return nil, err
	}
	m := metrics.New()
	events := audit.New(db, log, now)
	events.Observe(m.Audit)
	bf := cfg.BruteForce
	limiter := throttle.New(db, bf.FailureFactor, bf.WaitIncrement, bf.MaxWait, now)
	limiter.OnLockout(m.Lockout)
	upstream, err := upstreamConnectors(ctx, cfg, db, secrets, log, m)
	if err != nil {
		return nil, err
	}
	connectors := append([]brokers.Connector{
		{ID: linking.LocalConnector, Name: "fedhub password", Label: "Sign in with your fedhub account", Enabled: true, Impl: local.New(users)},
	}, append(upstream, extra...)...)
	factors := mfa.New(db, secrets, "fedhub", now)
	if err := factors.CheckSecrets(ctx); err != nil {
		return nil, err
	}
	keys, err := passkeys(db, cfg, now)
	if err != nil {
		log.Info("passkeys are not offered", "err", err)
	}
	iss, err := issuer.New(ctx, cfg, db, secrets, users, events, log, now)
	if err != nil {
		return nil, err
	}
	users.RevokeWith(iss) // unlink, move, merge and disable end what came through
	iss.Throttle(limiter) // user codes typed at /device
	broker := brokers.New(brokers.Options{Connectors: connectors, Users: users, Issuer: iss,
		Limiter: limiter, Audit: events, FirstLogin: firstlogin.New(users, events, log), Factors: factors, Passkeys: keys, Passwordless: keys != nil && cfg.Passkeys.Passwordless, DB: db, BaseURL: cfg.Issuer, Sealer: secrets,
		Log: log, Now: now})

	syncer := dirsync.New(dirsync.Options{DB: db, Broker: broker, Users: users, FirstLogin: firstlogin.New(users, events, log),
		Audit: events, Imports: imports(cfg), Log: log, Now: now})

	renderer, err := templates.NewThemed(theme(cfg.Branding))
	if err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.IPExtractor = ipExtractor(cfg.TrustedProxies)
	e.Renderer = renderer
	e.HTTPErrorHandler = errorHandler(e, log)
	e.Use(web.Requests(log, m), web.SecurityHeaders(),
		templates.RememberLocale(web.Cookies{Secure: strings.HasPrefix(cfg.Issuer, "https://")}, "/authorize"))
	e.GET("/static/*", echo.WrapHandler(renderer.Static()))
	iss.Routes(e, countedRechecks{broker, m})
	broker.Routes(e)
	adm := admin.New(admin.Options{DB: db, Users: users, Issuer: iss, Broker: broker, Audit: events, Factors: factors, Passkeys: keys, Sync: syncer, Handler: e,
		FreshAge: cfg.Admin.FreshLoginAge, SessionTT: cfg.Admin.SessionTTL, Log: log})
	adm.Routes(e)
	values := brokers.NewConnectorValues(db, secrets, now)
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("database pool: %w", err)
	}
	m.Database(sqlDB)
	m.KeyAge(iss.Keys().SigningSince, now)
	// Every table whose rows expire, but the issuer's (its Maintain purges
	// them); audit events are kept.
	return &app{db: db, users: users, issuer: iss, audit: events, echo: e, sync: syncer,
		purgers: purgersOf(keys, login.NewTransactions(db, now), factors, limiter, values, adm),
		secrets: secrets, sealed: []sealedSecrets{{"signing keys", &issuer.SigningKey{}, iss.Keys()}, {"TOTP keys", &mfa.Factor{}, factors},
			{"connector keys", &brokers.ConnectorValue{}, values}, {"upstream tokens", &linking.Link{}, users.UpstreamStates(secrets)}},
		metrics: m, broker: broker, pages: renderer, inForce: connectors}, nil
}

// ipExtractor finds the client's address: the connecting one, or, from the
// configured proxies only, the one they put in X-Forwarded-For. Nothing is
// trusted by default — not even private networks, as echo would.
func ipExtractor(proxies []string) echo.IPExtractor {
	if len(proxies) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range proxies {
		_, ipnet, _ := net.ParseCIDR(p) // validated with the configuration
		opts = append(opts, echo.TrustIPRange(ipnet))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// errorHandler logs unexpected errors and answers without their details: a
// page for people, JSON for programs.
func errorHandler(e *echo.Echo, log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		var he *echo.HTTPError
		if !errors.As(err, &he) {
			log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err,
				"request_id", requestid.From(c.Request().Context())) // the ID the error page quotes
			he = echo.NewHTTPError(http.StatusInternalServerError, "fedhub could not complete the request")
		}
		if c.Response().Committed || forPrograms(c.Request().URL.Path) {
			e.DefaultHTTPErrorHandler(he, c)
			return
		}
		page := web.ErrorPage{Title: "Something went wrong", What: "fedhub could not complete the request.",
			Next: "Go back and try again in a moment."}
		if he.Code == http.StatusNotFound {
			page = web.ErrorPage{Title: "Page not found", What: "There is no page at this address.",
				Next: "Go back to the application you came from."}
		}
		if rerr := web.RenderError(c, he.Code, page); rerr != nil {
			log.Error("rendering the error page failed", "err", rerr)
		}
	}
}

// forPrograms says whether a path answers programs (JSON), not people.
func forPrograms(path string) bool {
	for _, p := range []string{"/api/", "/token", "/userinfo", "/introspect", "/revoke", "/jwks", "/.well-known/"} {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

func bootstrapUsers(ctx context.Context, users *linking.Service, list []config.User, log *slog.Logger) error {
	for _, u := range list {
		_, err := users.UserByUsername(ctx, u.Username)
		if err == nil {
			continue // bootstrap users are created once and never overwritten
		}
		if !errors.Is(err, linking.ErrNotFound) {
			return err
		}
		_, err = users.CreateUser(ctx, linking.NewUser{
			Username: u.Username, Email: u.Email, EmailVerified: u.EmailVerified, Name: u.Name,
			Password: u.Password, PasswordHash: u.PasswordHash, Roles: u.Roles, Groups: u.Groups,
		})
		if err != nil && !errors.Is(err, linking.ErrUsernameTaken) { // another node was quicker
			return fmt.Errorf("bootstrap user %s: %w", u.Username, err)
		}
		log.Info("bootstrap user created", "username", u.Username)
	}
	return nil
}
