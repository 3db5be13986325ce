package issuer

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/throttle"
	"github.com/fedhub/fedhub/web"
)

// Users is what the issuer reads of users, for claims.
type Users interface {
	UserByID(ctx context.Context, id string) (*linking.User, error)
	// UserOf is the user a row read with linking.UserSelect holds
	// (linking.ErrNotFound for none).
	UserOf(ctx context.Context, row *linking.UserRow) (*linking.User, error)
}

// Broker is what the issuer asks of brokers, which implements it.
type Broker interface {
	// PasswordLogin checks a username and password (for the password grant)
	// the way the login page would, brute-force protection included, and
	// refuses where a second factor would be asked (clientMFA is the client's
	// policy): the grant cannot carry one.
	PasswordLogin(ctx context.Context, clientMFA, username, password, clientIP string) (login.Authentication, error)
	// Recheck asks the upstream whether the person who signed in as user
	// through the identity (connector, subject) still may (nil: yes). Its
	// no wraps login.ErrUpstreamRefused; login.ErrUpstreamUnreachable is an
	// upstream that could not answer.
	Recheck(ctx context.Context, userID, connector, subject string) error
}

// Issuer is fedhub's OpenID Provider.
type Issuer struct {
	url     string
	tokens  config.Tokens
	db      *gorm.DB
	users   Users
	broker  Broker
	txns    login.Transactions
	audit   *audit.Log
	keys    *Keys
	clients *clientCache
	scopes  atomic.Pointer[scopeSet] // the clients' scopes, mappers and APIs, replaced on reload
	// clientKeys are the keys of private_key_jwt clients.
	clientKeys *clientKeySets
	refreshSQL string            // refreshSelect's
	limiter    *throttle.Limiter // user codes entered at /device
	cookies    web.Cookies
	log        *slog.Logger
	now        func() time.Time
}

// New builds the issuer, writes the configured clients to the database and
// makes sure there is a current signing key. secrets seals the signing keys
// (nil: no key is configured).
func New(ctx context.Context, cfg *config.Config, db *gorm.DB, secrets *secret.Keyring, users Users, events *audit.Log, log *slog.Logger, now func() time.Time) (*Issuer, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("issuer url: %w", err)
	}
	// A replaced key stays published for as long as anything it signed is valid.
	overlap := max(cfg.Tokens.IDTTL, cfg.Tokens.AccessTTL) + time.Hour
	iss := &Issuer{
		url: cfg.Issuer, tokens: cfg.Tokens, db: db, users: users, audit: events, txns: login.NewTransactions(db, now),
		keys:    newKeys(db, secrets, cfg.Signing.Algorithm, cfg.Signing.RotationPeriod, overlap, log, now),
		cookies: web.Cookies{Secure: u.Scheme == "https"},
		log:     log, now: func() time.Time { return now().UTC() },
	}
	iss.clients = newClientCache(db, iss.now)
	iss.clientKeys = newClientKeySets(iss.now)
	if iss.refreshSQL, err = refreshSelect(db); err != nil {
		return nil, err
	}
	if err := iss.syncClients(ctx, cfg); err != nil {
		return nil, err
	}
	if err := iss.keys.Ensure(ctx); err != nil {
		return nil, err
	}
	return iss, nil
}

// Keys gives access to the signing keys (for `fedhub keys rotate`).
func (iss *Issuer) Keys() *Keys { return iss.keys }

// URL is the issuer identifier.
func (iss *Issuer) URL() string { return iss.url }

// Routes registers every OpenID Provider endpoint. The password grant and
// the re-checks after login ask the broker, which itself needs the issuer: it
// is given here, where both exist.
func (iss *Issuer) Routes(e *echo.Echo, broker Broker) {
	iss.broker = broker
	e.GET("/.well-known/openid-configuration", iss.discovery)
	e.GET("/jwks", iss.jwks)
	e.GET("/authorize", iss.authorize)
	e.POST("/authorize", iss.authorize)
	e.POST("/token", iss.token)
	e.GET("/userinfo", iss.userinfo)
	e.POST("/userinfo", iss.userinfo)
	e.POST("/introspect", iss.introspect)
	e.POST("/revoke", iss.revoke)
	e.POST("/device_authorization", iss.deviceAuthorization)
	e.GET("/consent", iss.consentPage)
	e.POST("/consent", iss.answerConsent)
	e.GET("/device", iss.devicePage)
	e.POST("/device", iss.enterUserCode)
	e.GET("/device/confirm", iss.deviceConfirmPage)
	e.POST("/device/confirm", iss.answerDevice)
	e.GET("/logout", iss.logout)
	e.POST("/logout", iss.logout)
}

// Maintain rotates keys on schedule, rereads keys rotated by other nodes and
// deletes expired rows, until ctx ends.
func (iss *Issuer) Maintain(ctx context.Context) {
	tick := time.NewTicker(keyReload)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := iss.keys.Ensure(ctx); err != nil {
				iss.log.Error("signing key maintenance failed", "err", err)
			}
			if err := iss.purgeExpired(ctx); err != nil {
				iss.log.Error("purging expired rows failed", "err", err)
			}
		}
	}
}

// purgeExpired deletes rows nothing can use any more.
func (iss *Issuer) purgeExpired(ctx context.Context) error {
	db := iss.db.WithContext(ctx)
	now := iss.now()
	for _, m := range []any{&AuthCode{}, &RefreshToken{}, &RevokedAccessToken{}, &Session{}, &UsedAssertion{}, &DeviceAuthorization{}, &ConsentRequest{}} {
		if err := db.Where("expires_at < ?", now.Add(-time.Hour)).Delete(m).Error; err != nil {
			return err
		}
	}
	// A grant ends with its tokens: no refresh token of it is left, and every
	// access token it could have had has expired.
	if err := db.Where("created_at < ? AND NOT EXISTS (SELECT 1 FROM refresh_tokens WHERE refresh_tokens.grant_id = grants.id)",
		now.Add(-iss.tokens.AccessTTL-time.Hour)).Delete(&Grant{}).Error; err != nil {
		return err
	}
	return db.Where("publish_until < ?", now).Delete(&SigningKey{}).Error
}
