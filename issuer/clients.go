package issuer

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/linking"
)

// HashClientSecret is the stored form of a client secret. Client secrets are
// random and high-entropy, so a fast hash is enough: a slow password hash here
// would make every token request slow for no gain.
func HashClientSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// SyncClients applies the clients, client scopes and APIs of a reloaded
// configuration, as at start-up.
func (iss *Issuer) SyncClients(ctx context.Context, cfg *config.Config) error {
	return iss.syncClients(ctx, cfg)
}

// syncClients writes the configured clients, enables those that are back in
// the configuration and disables those no longer in it. Whatever it wrote,
// even when it failed halfway, it then tells every node's client cache.
func (iss *Issuer) syncClients(ctx context.Context, cfg *config.Config) (err error) {
	scopes, err := newScopeSet(cfg)
	if err != nil {
		return err
	}
	iss.scopes.Store(scopes)
	defer func() {
		err = errors.Join(err, iss.clients.bump(ctx, iss.db))
		iss.clients.Invalidate()
	}()
	configured := []string{AdminClientID}
	for _, c := range cfg.Clients {
		hash := c.SecretHash
		if c.Secret != "" {
			hash = HashClientSecret(c.Secret)
		}
		var jwks []byte
		if len(c.JWKS) > 0 {
			if jwks, err = json.Marshal(c.JWKS); err != nil {
				return fmt.Errorf("client %s: jwks: %w", c.ID, err)
			}
		}
		row := Client{
			ID: c.ID, Name: c.Name, SecretHash: hash, Public: c.Public,
			AuthMethod: c.AuthMethod, JWKS: string(jwks), JWKSURI: c.JWKSURI,
			RedirectURIs: c.RedirectURIs, PostLogoutRedirectURIs: c.PostLogoutRedirectURIs, BackchannelLogoutURI: c.BackchannelLogoutURI,
			GrantTypes: c.GrantTypes, ExchangeAudiences: c.ExchangeAudiences, ThirdParty: c.ThirdParty, Scopes: c.Scopes, MFA: c.MFA,
		}
		if row.Name == "" {
			row.Name = c.ID
		}
		if err := iss.saveClient(ctx, row); err != nil {
			return err
		}
		if err := iss.enableReadded(ctx, c.ID); err != nil {
			return err
		}
		configured = append(configured, c.ID)
	}
	// The admin UI signs in through this issuer like any other client.
	err = iss.saveClient(ctx, Client{ID: AdminClientID, Name: "fedhub administration", Public: true,
		RedirectURIs: []string{iss.url + "/admin/callback"}, GrantTypes: []string{config.GrantAuthorizationCode},
		Scopes: []string{AdminScope}})
	if err != nil {
		return err
	}
	return iss.disableRemoved(ctx, configured)
}

// configActor is the audit actor of what the configuration file decided.
const configActor = "config"

// enableReadded enables a client that was removed from the configuration and
// is back in it. The grants revoked when it was removed stay revoked.
func (iss *Issuer) enableReadded(ctx context.Context, id string) error {
	res := iss.db.WithContext(ctx).Model(&Client{}).Where("id = ? AND removed_at IS NOT NULL", id).Update("removed_at", nil)
	if res.Error != nil {
		return fmt.Errorf("enable client %s: %w", id, res.Error)
	}
	if res.RowsAffected == 0 { // it was not removed, or another node enabled it first
		return nil
	}
	iss.log.Info("client is back in the configuration: enabled again", "client", id)
	return iss.audit.Record(ctx, audit.Event{Type: audit.ClientEnabled, Actor: configActor, ClientID: id})
}

// disableRemoved disables the clients the configuration no longer has and
// revokes their grants: removing a client from the file ends its access at
// once, rather than leaving its refresh tokens working for weeks. The rows
// stay, for the admin pages and the audit trail.
func (iss *Issuer) disableRemoved(ctx context.Context, configured []string) error {
	db := iss.db.WithContext(ctx)
	var gone []string
	if err := db.Model(&Client{}).Where("removed_at IS NULL AND id NOT IN ?", configured).Order("id").Pluck("id", &gone).Error; err != nil {
		return fmt.Errorf("find removed clients: %w", err)
	}
	for _, id := range gone {
		now := iss.now()
		var disabled bool
		var revoked int64
		err := db.Transaction(func(tx *gorm.DB) error {
			res := tx.Model(&Client{}).Where("id = ? AND removed_at IS NULL", id).Update("removed_at", now)
			if res.Error != nil || res.RowsAffected == 0 { // another node disabled it first
				return res.Error
			}
			disabled = true
			res = tx.Model(&Grant{}).Where("client_id = ? AND revoked_at IS NULL", id).Update("revoked_at", now)
			revoked = res.RowsAffected
			return res.Error
		})
		if err != nil {
			return fmt.Errorf("disable client %s: %w", id, err)
		}
		if !disabled {
			continue
		}
		iss.log.Warn("client is no longer in the configuration: disabled, its grants revoked", "client", id, "grants", revoked)
		if err := iss.audit.Record(ctx, audit.Event{Type: audit.ClientDisabled, Actor: configActor, ClientID: id,
			Detail: fmt.Sprintf("removed from the configuration; %d grants revoked", revoked)}); err != nil {
			return err
		}
	}
	return nil
}

// saveClient writes a client, keeping a secret an administrator rotated.
func (iss *Issuer) saveClient(ctx context.Context, row Client) error {
	cols := []string{"name", "public", "auth_method", "jwks", "jwks_uri", "redirect_uris", "post_logout_redirect_uris", "backchannel_logout_uri", "grant_types", "exchange_audiences", "third_party", "scopes", "updated_at"}
	err := iss.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns: []clause.Column{{Name: "id"}},
		DoUpdates: append(clause.AssignmentColumns(cols), clause.Assignment{Column: clause.Column{Name: "secret_hash"},
			Value: gorm.Expr("CASE WHEN clients.secret_rotated_at IS NULL THEN ? ELSE clients.secret_hash END", row.SecretHash)}),
	}).Create(&row).Error
	if err != nil {
		return fmt.Errorf("save client %s: %w", row.ID, err)
	}
	return nil
}

// AdminClientID is the built-in client of the admin UI; AdminScope is the
// scope that opens the admin API, granted only to users with the admin role
// and to clients configured with it.
const (
	AdminClientID = "fedhub-admin"
	AdminScope    = "fedhub:admin"
	AdminRole     = "admin"
)

// adminUser reports whether u may get the admin scope.
func adminUser(u *linking.User) bool {
	return u != nil && !u.Disabled && slices.Contains(u.Roles, AdminRole)
}

// grantable narrows requested to what the client may get (OpenID Connect's
// protocol scopes, its client scopes, its APIs' scopes and its own) and, for a user's
// grant, what that user may get (RFC 6749 §3.3 lets the server issue less).
// userIsAdmin is nil for a client's own grant (client credentials); for a
// user's grant it is asked only when the admin scope is at stake, so that an
// ordinary login pays nothing for it.
func (iss *Issuer) grantable(c *Client, userIsAdmin func() bool, requested string) string {
	cs := iss.scopes.Load().of(c.ID)
	var out []string
	for _, s := range strings.Fields(requested) {
		switch {
		case slices.Contains(config.ProtocolScopes, s), cs.mayAsk(s):
		case !slices.Contains(c.Scopes, s):
			continue
		case s == AdminScope && userIsAdmin != nil && !userIsAdmin():
			continue
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

var errUnknownClient = errors.New("unknown client")

// client returns the client with this ID, from the cache. A removed client
// (no longer in the configuration) is unknown to every endpoint. The client
// is shared: callers only read it.
func (iss *Issuer) client(ctx context.Context, id string) (*Client, error) {
	c, err := iss.clients.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errUnknownClient
	}
	return c, nil
}

func (c *Client) allows(grant string) bool { return slices.Contains(c.GrantTypes, grant) }

// checkSecret compares in constant time.
func (c *Client) checkSecret(secret string) bool {
	if c.SecretHash == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.SecretHash), []byte(HashClientSecret(secret))) == 1
}

// redirectAllowed matches a redirect URI exactly against the registered ones;
// only for loopback IPs may the port vary (RFC 8252 §7.3, RFC 9700 §4.1.1).
func (c *Client) redirectAllowed(uri string) bool {
	return matchURI(c.RedirectURIs, uri)
}

func matchURI(registered []string, uri string) bool {
	if slices.Contains(registered, uri) {
		return true
	}
	host, rest, ok := splitLoopback(uri)
	if !ok {
		return false
	}
	for _, r := range registered {
		if rh, rr, ok := splitLoopback(r); ok && rh == host && rr == rest {
			return true
		}
	}
	return false
}

// splitLoopback splits an http URI on a loopback IP into that IP and what
// follows the port. It works on the string, not a parsed URL: parsing would
// drop or normalise what must still match exactly (user info, a fragment, an
// empty query, the scheme's case).
func splitLoopback(uri string) (host, rest string, ok bool) {
	after, ok := strings.CutPrefix(uri, "http://")
	if !ok {
		return "", "", false
	}
	if _, err := url.Parse(uri); err != nil {
		return "", "", false
	}
	i := strings.IndexAny(after, "/?#")
	if i < 0 {
		i = len(after)
	}
	authority, rest := after[:i], after[i:]
	host, bracketed := authority, false
	if h, port, err := net.SplitHostPort(authority); err == nil {
		if port == "" || strings.Trim(port, "0123456789") != "" {
			return "", "", false
		}
		host, bracketed = h, strings.HasPrefix(authority, "[")
	} else if inner, ok := strings.CutPrefix(authority, "["); ok {
		if host, ok = strings.CutSuffix(inner, "]"); !ok {
			return "", "", false
		}
		bracketed = true
	}
	ip := net.ParseIP(host)
	// An IPv6 literal is bracketed, an IPv4 one is not (RFC 3986 §3.2.2):
	// "[127.0.0.1]", "::1" and stray brackets are no loopback variants.
	if ip == nil || !ip.IsLoopback() || strings.ContainsAny(host, "[]") || (ip.To4() == nil) != bracketed ||
		strings.Contains(rest, "#") {
		return "", "", false
	}
	return host, rest, true
}

// clientAuthError says why client authentication failed; basic tells whether
// the client tried HTTP Basic (it then gets a 401 with WWW-Authenticate).
type clientAuthError struct{ basic bool }

func (clientAuthError) Error() string { return "client authentication failed" }

// authenticateClient implements client_secret_basic, client_secret_post,
// private_key_jwt and, for public clients, client_id alone. Exactly one method
// may be used, and only the one the client is configured for.
func (iss *Issuer) authenticateClient(r *http.Request, form url.Values) (*Client, error) {
	if form.Has("client_assertion") || form.Has("client_assertion_type") {
		return iss.authenticateAssertion(r, form)
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id) // RFC 6749 §2.3.1: form-encoded before Basic
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil || form.Has("client_secret") {
			return nil, clientAuthError{basic: true}
		}
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	if form.Has("client_id") && form.Get("client_id") != id {
		return nil, clientAuthError{basic: basic}
	}
	c, err := iss.client(r.Context(), id)
	if errors.Is(err, errUnknownClient) {
		return nil, clientAuthError{basic: basic}
	}
	if err != nil {
		return nil, err
	}
	if c.Public {
		if secret != "" {
			return nil, clientAuthError{basic: basic}
		}
		return c, nil
	}
	wrongMethod := c.AuthMethod == config.AuthPrivateKey || (c.AuthMethod == config.AuthSecretBasic && !basic) ||
		(c.AuthMethod == config.AuthSecretPost && basic)
	if wrongMethod || !c.checkSecret(secret) {
		return nil, clientAuthError{basic: basic}
	}
	return c, nil
}

// authenticateAssertion implements private_key_jwt.
func (iss *Issuer) authenticateAssertion(r *http.Request, form url.Values) (*Client, error) {
	_, _, basic := r.BasicAuth()
	if basic || form.Has("client_secret") || form.Get("client_assertion_type") != assertionType {
		return nil, clientAuthError{basic: basic}
	}
	ctx := r.Context()
	raw := form.Get("client_assertion")
	id, err := assertionClient(raw)
	if err != nil || (form.Has("client_id") && form.Get("client_id") != id) {
		return nil, clientAuthError{}
	}
	c, err := iss.client(ctx, id)
	if errors.Is(err, errUnknownClient) {
		return nil, clientAuthError{}
	}
	if err != nil {
		return nil, err
	}
	if c.AuthMethod != config.AuthPrivateKey {
		return nil, clientAuthError{}
	}
	if err := iss.checkAssertion(ctx, c, raw, iss.url+"/"+path.Base(r.URL.Path)); err != nil {
		iss.log.InfoContext(ctx, "client assertion refused", "client", c.ID, "reason", err)
		return nil, clientAuthError{}
	}
	return c, nil
}
